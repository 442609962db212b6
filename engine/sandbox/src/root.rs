//! Path resolution confined to a root directory.
//!
//! Every path given by a Dockerfile (mount targets, the working directory, `/etc/passwd`)
//! is resolved here one component at a time: each component is opened with `O_NOFOLLOW`
//! relative to the already-resolved parent, symlinks are read as *strings* and spliced
//! into the remaining path, absolute ones restarting at the root and `..` never going
//! above it. The kernel never follows a link for us, so neither a symlink to `/etc` nor
//! a `/proc/self/fd/N` magic link can lead to a host path.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};

use crate::proto::Stub;

/// Symlinks followed at most while resolving one path (Linux's limit).
const MAX_SYMLINKS: usize = 40;

const PROC_SUPER_MAGIC: i64 = 0x9fa0;
const PROC_ROOT_INO: u64 = 1;

/// Whether a symlink in directory `dir` is a procfs "magic link" (`/proc/N/fd/*`,
/// `/proc/N/cwd`, ...), which names an object rather than a path. Only the links at the
/// root of a procfs (`self`, `thread-self`, `mounts`, `net`...) are plain ones.
fn in_procfs_below_root(dir: BorrowedFd<'_>) -> io::Result<bool> {
    let fs = rfs::fstatfs(dir)?;
    if fs.f_type as i64 != PROC_SUPER_MAGIC {
        return Ok(false);
    }
    Ok(rfs::fstat(dir)?.st_ino as u64 != PROC_ROOT_INO)
}

/// What to create when a path component is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Create {
    /// Directories all the way.
    Dir,
    /// Directories, and an empty file as the last component.
    File,
}

/// A path resolved inside a root.
#[derive(Debug)]
pub(crate) struct Resolved {
    /// `O_PATH` descriptor of what the path names.
    pub fd: OwnedFd,
    /// Its path relative to the root, symlinks resolved (empty for the root itself).
    pub rel: PathBuf,
    pub file_type: FileType,
    /// For anything but a directory: the parent directory and the name in it.
    pub parent: Option<(OwnedFd, OsString)>,
}

impl Resolved {
    pub(crate) fn is_root(&self) -> bool {
        self.rel.as_os_str().is_empty()
    }
}

fn components(p: &[u8]) -> Vec<OsString> {
    p.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(|c| OsString::from_vec(c.to_vec()))
        .collect()
}

fn open_dir(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    Ok(rfs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Resolves `path` inside `root` (an `O_PATH` or regular fd of a directory).
///
/// With `create`, missing components are created (directories 0755, a final file 0644)
/// and recorded in `created`, in creation order.
pub(crate) fn resolve(
    root: BorrowedFd<'_>,
    path: &str,
    create: Option<Create>,
    created: &mut Vec<Stub>,
) -> io::Result<Resolved> {
    let mut pending: VecDeque<OsString> = components(path.as_bytes()).into();
    let mut dirs: Vec<OwnedFd> = vec![root.try_clone_to_owned()?];
    let mut names: Vec<OsString> = Vec::new();
    let mut links = 0usize;
    let rel_of = |names: &[OsString]| names.iter().collect::<PathBuf>();

    while let Some(comp) = pending.pop_front() {
        if comp == ".." {
            if !names.is_empty() {
                names.pop();
                dirs.pop();
            }
            continue;
        }
        let cur = dirs.last().expect("root is always there").as_fd();
        let last = pending.is_empty();
        match rfs::statat(cur, &comp, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => match FileType::from_raw_mode(st.st_mode) {
                FileType::Symlink => {
                    links += 1;
                    if links > MAX_SYMLINKS || in_procfs_below_root(cur)? {
                        // Magic links are refused, like RESOLVE_NO_MAGICLINKS does.
                        return Err(io::Error::from_raw_os_error(libc::ELOOP));
                    }
                    let target = rfs::readlinkat(cur, &comp, Vec::new())?;
                    let target = target.as_bytes();
                    if target.first() == Some(&b'/') {
                        dirs.truncate(1);
                        names.clear();
                    }
                    for c in components(target).into_iter().rev() {
                        pending.push_front(c);
                    }
                }
                FileType::Directory => {
                    let fd = open_dir(cur, &comp)?;
                    dirs.push(fd);
                    names.push(comp);
                }
                other => {
                    if !last {
                        return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
                    }
                    let fd = rfs::openat(
                        cur,
                        &comp,
                        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )?;
                    let parent = dirs.pop().expect("root is always there");
                    names.push(comp.clone());
                    return Ok(Resolved {
                        fd,
                        rel: rel_of(&names),
                        file_type: other,
                        parent: Some((parent, comp)),
                    });
                }
            },
            Err(rustix::io::Errno::NOENT) if create.is_some() => {
                let st = rfs::fstat(cur)?;
                let parent_times = Some([
                    st.st_atime,
                    st.st_atime_nsec as i64,
                    st.st_mtime,
                    st.st_mtime_nsec as i64,
                ]);
                let as_file = last && create == Some(Create::File);
                if as_file {
                    drop(rfs::openat(
                        cur,
                        &comp,
                        OFlags::CREATE
                            | OFlags::EXCL
                            | OFlags::WRONLY
                            | OFlags::NOFOLLOW
                            | OFlags::CLOEXEC,
                        Mode::from_raw_mode(0o644),
                    )?);
                } else {
                    rfs::mkdirat(cur, &comp, Mode::from_raw_mode(0o755))?;
                }
                let mut p = rel_of(&names);
                p.push(&comp);
                created.push(Stub {
                    path: p,
                    dir: !as_file,
                    parent_times,
                });
                // Look at it again, now that it exists.
                pending.push_front(comp);
            }
            Err(e) => return Err(e.into()),
        }
    }
    let fd = dirs.pop().expect("root is always there");
    Ok(Resolved {
        fd,
        rel: rel_of(&names),
        file_type: FileType::Directory,
        parent: None,
    })
}

/// Reads a regular file inside `root`, at most `max` bytes (more is an error).
/// `Ok(None)` when it does not exist. FIFOs, devices, sockets are refused without being
/// opened.
pub(crate) fn read_file(root: BorrowedFd<'_>, path: &str, max: u64) -> io::Result<Option<Vec<u8>>> {
    let r = match resolve(root, path, None, &mut Vec::new()) {
        Ok(r) => r,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let Some((parent, name)) = r
        .parent
        .as_ref()
        .filter(|_| r.file_type == FileType::RegularFile)
    else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{path} is not a regular file"),
        ));
    };
    let want = rfs::fstat(&r.fd)?;
    let fd = rfs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let got = rfs::fstat(&fd)?;
    if (got.st_dev, got.st_ino) != (want.st_dev, want.st_ino)
        || FileType::from_raw_mode(got.st_mode) != FileType::RegularFile
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{path} changed while being opened"),
        ));
    }
    let mut buf = Vec::new();
    std::fs::File::from(fd)
        .take(max + 1)
        .read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{path} is larger than {max} bytes"),
        ));
    }
    Ok(Some(buf))
}

/// Opens a directory (`O_PATH`) to use as a root.
pub(crate) fn open_root(path: &std::path::Path) -> io::Result<OwnedFd> {
    Ok(rfs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::symlink;

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        std::fs::write(t.path().join("secret"), "host secret\n").unwrap();
        (t, root)
    }

    #[test]
    fn absolute_symlink_stays_inside() {
        let (t, root) = setup();
        symlink("/etc", root.join("link")).unwrap();
        symlink("../../../../../secret", root.join("up")).unwrap();
        symlink(t.path().join("secret"), root.join("abs")).unwrap();
        let fd = open_root(&root).unwrap();
        let r = resolve(fd.as_fd(), "/link/passwd", None, &mut Vec::new()).unwrap();
        assert_eq!(r.rel, PathBuf::from("etc/passwd"));
        assert!(resolve(fd.as_fd(), "/up", None, &mut Vec::new()).is_err());
        assert!(read_file(fd.as_fd(), "/up", 100).unwrap().is_none());
        assert!(read_file(fd.as_fd(), "/abs", 100).unwrap().is_none());
        assert_eq!(
            read_file(fd.as_fd(), "/link/../link/./passwd", 100)
                .unwrap()
                .unwrap(),
            b"root:x:0:0::/root:/bin/sh\n"
        );
    }

    #[test]
    fn dotdot_is_clamped_at_root() {
        let (_t, root) = setup();
        let fd = open_root(&root).unwrap();
        let r = resolve(fd.as_fd(), "/../../etc/../..", None, &mut Vec::new()).unwrap();
        assert!(r.is_root());
    }

    #[test]
    fn create_records_stubs_through_dangling_symlink() {
        let (_t, root) = setup();
        symlink("../run/x/resolv.conf", root.join("etc/resolv.conf")).unwrap();
        let fd = open_root(&root).unwrap();
        let mut created = Vec::new();
        let r = resolve(
            fd.as_fd(),
            "/etc/resolv.conf",
            Some(Create::File),
            &mut created,
        )
        .unwrap();
        assert_eq!(r.rel, PathBuf::from("run/x/resolv.conf"));
        assert_eq!(r.file_type, FileType::RegularFile);
        let paths: Vec<_> = created.iter().map(|s| (s.path.clone(), s.dir)).collect();
        assert_eq!(
            paths,
            [
                (PathBuf::from("run"), true),
                (PathBuf::from("run/x"), true),
                (PathBuf::from("run/x/resolv.conf"), false)
            ]
        );
        assert!(root.join("run/x/resolv.conf").is_file());
    }

    #[test]
    fn symlink_loops_fail() {
        let (_t, root) = setup();
        symlink("b", root.join("a")).unwrap();
        symlink("a", root.join("b")).unwrap();
        let fd = open_root(&root).unwrap();
        let e = resolve(fd.as_fd(), "/a", Some(Create::Dir), &mut Vec::new()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP));
    }

    #[test]
    fn proc_magic_links_are_refused() {
        let proc = open_root(std::path::Path::new("/proc")).unwrap();
        // The plain link at the root of procfs is fine...
        let r = resolve(proc.as_fd(), "/self/status", None, &mut Vec::new()).unwrap();
        assert_eq!(r.file_type, FileType::RegularFile);
        // ... the magic ones are not.
        for p in [
            "/self/fd/0",
            "/self/cwd",
            "/self/root/etc",
            "/thread-self/exe",
        ] {
            let e = resolve(proc.as_fd(), p, Some(Create::Dir), &mut Vec::new()).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{p}");
        }
    }

    #[test]
    fn fifo_is_refused() {
        let (_t, root) = setup();
        let p = std::ffi::CString::new(root.join("etc/group").as_os_str().as_bytes()).unwrap();
        // SAFETY: valid path.
        assert_eq!(unsafe { libc::mkfifo(p.as_ptr(), 0o644) }, 0);
        let fd = open_root(&root).unwrap();
        let e = read_file(fd.as_fd(), "/etc/group", 100).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }

    #[test]
    fn size_is_capped() {
        let (_t, root) = setup();
        let fd = open_root(&root).unwrap();
        assert!(read_file(fd.as_fd(), "/etc/passwd", 5).is_err());
    }
}
