//! Removing the mount points a run had to create in the rootfs (like BuildKit's mount
//! stub cleaner), so they do not end up in the layer.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::path::{Component, Path};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};

use crate::proto::Stub;

fn open_dir_nofollow(dir: &OwnedFd, name: &OsStr) -> Option<OwnedFd> {
    rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()
}

/// Removes `stubs` (newest first) under `base` if they are still what was created: an
/// empty directory or an empty regular file. Symlinks are never followed (the command
/// may have replaced a directory with a link to a host path). The parent's timestamps
/// are put back after each removal.
pub(crate) fn cleanup(base: &Path, stubs: &[Stub]) {
    let Ok(base_fd) = rfs::open(
        base,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return;
    };
    for stub in stubs.iter().rev() {
        let mut parts: Vec<&OsStr> = Vec::new();
        for c in stub.path.components() {
            match c {
                Component::Normal(n) => parts.push(n),
                _ => {
                    parts.clear();
                    break;
                }
            }
        }
        let Some((name, dirs)) = parts.split_last() else {
            continue;
        };
        let mut parent = match base_fd.try_clone() {
            Ok(fd) => fd,
            Err(_) => return,
        };
        let mut ok = true;
        for d in dirs {
            match open_dir_nofollow(&parent, d) {
                Some(fd) => parent = fd,
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if !ok {
            continue;
        }
        let Ok(st) = rfs::statat(&parent, *name, AtFlags::SYMLINK_NOFOLLOW) else {
            continue;
        };
        let removed = match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory if stub.dir => {
                rfs::unlinkat(&parent, *name, AtFlags::REMOVEDIR).is_ok()
            }
            FileType::RegularFile if !stub.dir && st.st_size == 0 => {
                rfs::unlinkat(&parent, *name, AtFlags::empty()).is_ok()
            }
            _ => false,
        };
        if let (true, Some([asec, ansec, msec, mnsec])) = (removed, stub.parent_times) {
            let ts = Timestamps {
                last_access: Timespec {
                    tv_sec: asec,
                    tv_nsec: ansec as _,
                },
                last_modification: Timespec {
                    tv_sec: msec,
                    tv_nsec: mnsec as _,
                },
            };
            let _ = rfs::futimens(&parent, &ts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;

    fn stub(p: &str, dir: bool) -> Stub {
        Stub {
            path: PathBuf::from(p),
            dir,
            parent_times: None,
        }
    }

    #[test]
    fn removes_only_untouched_stubs() {
        let t = tempfile::tempdir().unwrap();
        let b = t.path();
        std::fs::create_dir_all(b.join("a/b")).unwrap();
        std::fs::write(b.join("a/b/f"), "").unwrap();
        std::fs::create_dir_all(b.join("kept")).unwrap();
        std::fs::write(b.join("kept/x"), "data").unwrap();
        std::fs::write(b.join("written"), "data").unwrap();
        cleanup(
            b,
            &[
                stub("a", true),
                stub("a/b", true),
                stub("a/b/f", false),
                stub("kept", true),
                stub("written", false),
            ],
        );
        assert!(!b.join("a").exists());
        assert!(b.join("kept/x").exists());
        assert!(b.join("written").exists());
    }

    #[test]
    fn never_follows_symlinks() {
        let t = tempfile::tempdir().unwrap();
        let host = tempfile::tempdir().unwrap();
        std::fs::write(host.path().join("f"), "").unwrap();
        symlink(host.path(), t.path().join("etc")).unwrap();
        cleanup(t.path(), &[stub("etc/f", false), stub("etc", true)]);
        assert!(host.path().join("f").exists());
        assert!(t.path().join("etc").symlink_metadata().is_ok());
    }

    #[test]
    fn restores_parent_times() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("etc")).unwrap();
        std::fs::write(t.path().join("etc/hosts"), "").unwrap();
        let mut s = stub("etc/hosts", false);
        s.parent_times = Some([1_000_000, 0, 2_000_000, 5]);
        cleanup(t.path(), &[s]);
        let m = std::fs::metadata(t.path().join("etc")).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!((m.mtime(), m.mtime_nsec()), (2_000_000, 5));
        assert!(!t.path().join("etc/hosts").exists());
    }
}
