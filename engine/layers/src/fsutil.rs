//! fd-relative filesystem helpers that never follow symlinks.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;

pub(crate) fn rdonly_dir() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// `/proc/self/fd/N`: reaches exactly the inode `fd` refers to.
pub(crate) fn proc_fd(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// `/proc/self/fd/N/name`: `name` inside the directory `dir` refers to,
/// without following `name` itself when used with `l*` calls.
pub(crate) fn proc_fd_child(dir: BorrowedFd<'_>, name: &[u8]) -> PathBuf {
    proc_fd(dir).join(OsStr::from_bytes(name))
}

/// Lists a directory (given as any fd, `O_PATH` allowed): names and types.
pub(crate) fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<(Vec<u8>, FileType)>> {
    let fd = rustix::fs::openat(dir, c".", rdonly_dir(), Mode::empty())?;
    let mut d = Dir::new(fd)?;
    let mut out = Vec::new();
    while let Some(ent) = d.read() {
        let ent = ent?;
        let name = ent.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let mut ty = ent.file_type();
        if ty == FileType::Unknown {
            let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
            ty = FileType::from_raw_mode(st.st_mode);
        }
        out.push((name.to_vec(), ty));
    }
    Ok(out)
}

/// Removes `name` in `parent`, recursively for directories. Never follows
/// symlinks; missing entries are not an error. Iterative, so arbitrarily
/// deep trees cannot overflow the stack.
pub(crate) fn remove_all_at(parent: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    match rustix::fs::unlinkat(parent, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR) => {}
        Err(e) => return Err(e.into()),
    }
    struct Level {
        fd: OwnedFd,
        entries: std::vec::IntoIter<(Vec<u8>, FileType)>,
        name: Vec<u8>,
    }
    let open = |at: BorrowedFd<'_>, n: &[u8]| -> io::Result<Level> {
        let fd = rustix::fs::openat(at, n, rdonly_dir(), Mode::empty())?;
        let entries = list_dir(fd.as_fd())?.into_iter();
        Ok(Level {
            fd,
            entries,
            name: n.to_vec(),
        })
    };
    let mut stack = vec![open(parent, name)?];
    while let Some(top) = stack.last_mut() {
        match top.entries.next() {
            Some((n, FileType::Directory)) => {
                let lvl = open(top.fd.as_fd(), &n)?;
                stack.push(lvl);
            }
            Some((n, _)) => match rustix::fs::unlinkat(&top.fd, n.as_slice(), AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(e.into()),
            },
            None => {
                let done = match stack.pop() {
                    Some(d) => d,
                    None => break,
                };
                let at = match stack.last() {
                    Some(p) => p.fd.as_fd(),
                    None => parent,
                };
                match rustix::fs::unlinkat(at, done.name.as_slice(), AtFlags::REMOVEDIR) {
                    Ok(()) | Err(Errno::NOENT) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Ok(())
}
