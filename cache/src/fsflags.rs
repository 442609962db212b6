//! Filesystem placement hints.

use std::path::Path;

/// Mark `dir` as a top of unrelated directory trees (`chattr +T`): ext4's
/// Orlov allocator then spreads its subdirectories over block groups with
/// room, instead of packing them into the group of `dir`.
///
/// Why: step snapshots are made in the session's scratch directory. On ext4
/// without a journal, the inode allocator skips inodes freed in the last
/// minute, or the last six while their inode-table block is dirty, and
/// rescans them for every new inode. A cache emptied and refilled at the
/// same place (a cold rebuild after `cache prune`) then spent most of a
/// 20,000-file COPY in that scan (`recently_deleted` in perf). Spread, a
/// snapshot's inodes start in a group without that history. Elsewhere the
/// flag is unsupported and nothing happens.
pub fn spread_subdirectories(dir: &Path) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        const FS_TOPDIR_FL: libc::c_long = 0x0002_0000;
        let Ok(f) = std::fs::File::open(dir) else {
            return;
        };
        let mut flags: libc::c_long = 0;
        // SAFETY: FS_IOC_GETFLAGS/SETFLAGS read and write one long through
        // a valid pointer on an open directory descriptor.
        unsafe {
            if libc::ioctl(f.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) != 0 {
                return;
            }
            if flags & FS_TOPDIR_FL == 0 {
                flags |= FS_TOPDIR_FL;
                libc::ioctl(f.as_raw_fd(), libc::FS_IOC_SETFLAGS, &flags);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = dir;
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::os::fd::AsRawFd;

    fn flags(dir: &std::path::Path) -> Option<libc::c_long> {
        let f = std::fs::File::open(dir).ok()?;
        let mut flags: libc::c_long = 0;
        // SAFETY: as in `spread_subdirectories`.
        let r = unsafe { libc::ioctl(f.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) };
        (r == 0).then_some(flags)
    }

    #[test]
    fn marks_the_directory_on_ext4() {
        let d = tempfile::tempdir().unwrap();
        super::spread_subdirectories(d.path());
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        let path = std::ffi::CString::new(d.path().as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: valid path and out-pointer.
        assert_eq!(unsafe { libc::statfs(path.as_ptr(), &mut st) }, 0);
        const EXT4_SUPER_MAGIC: libc::c_long = 0xEF53;
        if st.f_type as libc::c_long == EXT4_SUPER_MAGIC {
            let f = flags(d.path()).expect("ext4 has inode flags");
            assert_ne!(f & 0x0002_0000, 0, "FS_TOPDIR_FL set");
        } else {
            eprintln!(
                "not ext4 here (f_type {:#x}): only checked that nothing fails",
                st.f_type
            );
        }
    }
}
