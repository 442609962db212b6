//! Resolution of directories *inside* a root, like `openat2(RESOLVE_IN_ROOT)`
//! or filepath-securejoin: symlinks met on the way are interpreted as if the
//! root were `/`, and `..` never climbs above the root.
//!
//! Two implementations: `openat2` with `RESOLVE_IN_ROOT` where the kernel
//! has it, and a manual component walk that holds a directory fd per level
//! and opens every component with `O_NOFOLLOW`, so a concurrent rename
//! cannot redirect it either. Missing directories can be created on the way
//! (mode 0755, like `mkdir -p` in containerd's unpacker).

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::rc::Rc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// How [`crate::apply_layer_with`] resolves paths inside the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResolveMode {
    /// `openat2(RESOLVE_IN_ROOT)` when the kernel supports it, otherwise the
    /// manual walk.
    #[default]
    Auto,
    /// Always use the manual component walk (mainly for tests).
    Manual,
}

/// Why a directory could not be resolved.
#[derive(Debug)]
pub(crate) enum ResolveError {
    /// A component exists but is not a directory (nor a symlink to one).
    NotDir,
    /// Too many symlinks.
    Loop,
    Io(Errno),
}

impl From<Errno> for ResolveError {
    fn from(e: Errno) -> Self {
        match e {
            Errno::NOTDIR => ResolveError::NotDir,
            Errno::LOOP => ResolveError::Loop,
            e => ResolveError::Io(e),
        }
    }
}

const MAX_SYMLINKS: usize = 40;

fn opath_dir() -> OFlags {
    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC
}

/// A root directory and a one-entry cache of the last resolved directory.
pub(crate) struct InRoot {
    root: OwnedFd,
    use_openat2: bool,
    cache: Option<(Vec<Vec<u8>>, Rc<OwnedFd>)>,
}

impl InRoot {
    pub(crate) fn open(root: &Path, mode: ResolveMode) -> std::io::Result<Self> {
        let root = rustix::fs::open(root, opath_dir(), Mode::empty())?;
        Ok(InRoot {
            root,
            use_openat2: mode == ResolveMode::Auto,
            cache: None,
        })
    }

    /// Forgets the cached directory. Must be called after anything was
    /// removed under the root, since the cached fd could then point at a
    /// directory that is no longer reachable.
    pub(crate) fn invalidate(&mut self) {
        self.cache = None;
    }

    /// Opens (as an `O_PATH` fd) the directory at `comps` inside the root.
    /// Returns `Ok(None)` when something is missing and `create` is false.
    pub(crate) fn dir(
        &mut self,
        comps: &[Vec<u8>],
        create: bool,
    ) -> Result<Option<Rc<OwnedFd>>, ResolveError> {
        if let Some((key, fd)) = &self.cache {
            if key.as_slice() == comps {
                return Ok(Some(fd.clone()));
            }
        }
        let fd = match self.resolve(comps, create)? {
            Some(fd) => Rc::new(fd),
            None => return Ok(None),
        };
        self.cache = Some((comps.to_vec(), fd.clone()));
        Ok(Some(fd))
    }

    fn resolve(
        &mut self,
        comps: &[Vec<u8>],
        create: bool,
    ) -> Result<Option<OwnedFd>, ResolveError> {
        if comps.is_empty() {
            return Ok(Some(rustix::fs::openat(
                &self.root,
                c".",
                opath_dir(),
                Mode::empty(),
            )?));
        }
        if self.use_openat2 {
            let path = comps.join(&b'/');
            for _ in 0..8 {
                match rustix::fs::openat2(
                    &self.root,
                    path.as_slice(),
                    opath_dir(),
                    Mode::empty(),
                    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
                ) {
                    Ok(fd) => return Ok(Some(fd)),
                    Err(Errno::NOENT) if !create => return Ok(None),
                    // Missing directories: create them with the manual walk.
                    Err(Errno::NOENT) => break,
                    // A rename somewhere on the system raced the lookup.
                    Err(Errno::AGAIN) | Err(Errno::INTR) => continue,
                    // Path longer than PATH_MAX: the walk has no such limit.
                    Err(Errno::NAMETOOLONG) => break,
                    // No openat2 (old kernel, seccomp): never try again.
                    Err(Errno::NOSYS) | Err(Errno::PERM) | Err(Errno::INVAL)
                    | Err(Errno::TOOBIG) => {
                        self.use_openat2 = false;
                        break;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        self.walk(comps, create)
    }

    /// The manual in-root walk.
    fn walk(&self, comps: &[Vec<u8>], create: bool) -> Result<Option<OwnedFd>, ResolveError> {
        let mut stack: Vec<OwnedFd> = vec![rustix::fs::openat(
            &self.root,
            c".",
            opath_dir(),
            Mode::empty(),
        )?];
        let mut queue: VecDeque<Vec<u8>> = comps.iter().cloned().collect();
        let mut links = 0usize;
        while let Some(c) = queue.pop_front() {
            if c.is_empty() || c == b"." {
                continue;
            }
            if c == b".." {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            let Some(top) = stack.last() else {
                return Err(ResolveError::Io(Errno::NOENT));
            };
            let st = match rustix::fs::statat(top, c.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) if create => {
                    match rustix::fs::mkdirat(top, c.as_slice(), Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    queue.push_front(c);
                    continue;
                }
                Err(Errno::NOENT) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => {
                    let fd = rustix::fs::openat(
                        top,
                        c.as_slice(),
                        opath_dir() | OFlags::NOFOLLOW,
                        Mode::empty(),
                    )?;
                    stack.push(fd);
                }
                FileType::Symlink => {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(ResolveError::Loop);
                    }
                    let target = rustix::fs::readlinkat(top, c.as_slice(), Vec::new())?;
                    let target = target.into_bytes();
                    if target.starts_with(b"/") {
                        stack.truncate(1);
                    }
                    for part in target.rsplit(|b| *b == b'/') {
                        queue.push_front(part.to_vec());
                    }
                }
                _ => return Err(ResolveError::NotDir),
            }
        }
        stack.pop().map(Some).ok_or(ResolveError::Io(Errno::NOENT))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comps(p: &str) -> Vec<Vec<u8>> {
        p.split('/').map(|c| c.as_bytes().to_vec()).collect()
    }

    #[test]
    fn both_resolvers_agree_and_stay_inside() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("real/sub")).unwrap();
        std::os::unix::fs::symlink("/real", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../real", root.join("rel")).unwrap();
        std::os::unix::fs::symlink("/", root.join("top")).unwrap();
        for mode in [ResolveMode::Auto, ResolveMode::Manual] {
            let mut r = InRoot::open(&root, mode).unwrap();
            for p in [
                "abs/sub",
                "rel/sub",
                "top/real/sub",
                "real/../real/sub",
                "../../real/sub",
            ] {
                let fd = r.dir(&comps(p), false).unwrap().unwrap();
                let st = rustix::fs::fstat(&*fd).unwrap();
                let want = std::fs::metadata(root.join("real/sub")).unwrap();
                assert_eq!(
                    st.st_ino,
                    std::os::unix::fs::MetadataExt::ino(&want),
                    "{p} {mode:?}"
                );
                r.invalidate();
            }
            assert!(r.dir(&comps("top/missing"), false).unwrap().is_none());
            let created = r.dir(&comps("top/new/dirs"), true).unwrap();
            assert!(created.is_some());
            assert!(root.join("new/dirs").is_dir());
            if mode == ResolveMode::Auto {
                // This kernel has openat2: the fast path must stay enabled.
                assert!(r.use_openat2, "openat2 unexpectedly disabled");
            }
        }
    }
}
