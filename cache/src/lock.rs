//! Advisory file locks (`flock(2)`), released by the kernel when the holder
//! closes the file or dies, `kill -9` included. That is what makes them the
//! right tool for cross-process coordination in the cache: a crashed
//! process can never leave a lock held.
//!
//! Locks conflict between open file descriptions, so two threads of one
//! process that each open the file also exclude each other.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
}

#[derive(Clone, Copy)]
enum Mode {
    Shared,
    Exclusive,
}

fn flock(file: &File, mode: Mode, block: bool) -> io::Result<bool> {
    let mut op = match mode {
        Mode::Shared => libc::LOCK_SH,
        Mode::Exclusive => libc::LOCK_EX,
    };
    if !block {
        op |= libc::LOCK_NB;
    }
    loop {
        // SAFETY: flock on a valid, open file descriptor.
        let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
        if rc == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) if !block => return Ok(false),
            _ => return Err(e),
        }
    }
}

fn open_create(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

impl FileLock {
    fn acquire(path: &Path, mode: Mode, block: bool, create: bool) -> io::Result<Option<Self>> {
        let file = if create {
            open_create(path)?
        } else {
            match OpenOptions::new().read(true).open(path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            }
        };
        if flock(&file, mode, block)? {
            Ok(Some(FileLock {
                file,
                path: path.to_path_buf(),
            }))
        } else {
            Ok(None)
        }
    }

    /// Wait for an exclusive lock on `path` (created if missing).
    pub fn exclusive(path: &Path) -> io::Result<Self> {
        Self::acquire(path, Mode::Exclusive, true, true).map(|l| l.expect("blocking lock"))
    }

    /// Wait for a shared lock on `path` (created if missing).
    pub fn shared(path: &Path) -> io::Result<Self> {
        Self::acquire(path, Mode::Shared, true, true).map(|l| l.expect("blocking lock"))
    }

    /// An exclusive lock if nobody holds one; `None` if it is held.
    pub fn try_exclusive(path: &Path) -> io::Result<Option<Self>> {
        Self::acquire(path, Mode::Exclusive, false, true)
    }

    /// Like [`try_exclusive`](Self::try_exclusive) but never creates the
    /// file: `None` also when it does not exist.
    pub fn try_exclusive_existing(path: &Path) -> io::Result<Option<Self>> {
        Self::acquire(path, Mode::Exclusive, false, false)
    }

    /// An exclusive lock on a lock file that others may delete (while
    /// holding it): after locking, check that `path` still names the locked
    /// file, and start over if it was replaced in between.
    pub fn exclusive_deletable(path: &Path) -> io::Result<Self> {
        loop {
            let lock = Self::exclusive(path)?;
            if lock.still_linked() {
                return Ok(lock);
            }
        }
    }

    /// Whether `path` still refers to the locked file.
    pub fn still_linked(&self) -> bool {
        match (self.file.metadata(), fs::metadata(&self.path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }

    /// Remove the lock file while holding the lock, so that a waiter who
    /// then gets it notices ([`exclusive_deletable`](Self::exclusive_deletable)).
    pub fn unlink(self) {
        let _ = fs::remove_file(&self.path);
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn exclusive_excludes_and_drop_releases() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.lock");
        let l = FileLock::exclusive(&p).unwrap();
        assert!(FileLock::try_exclusive(&p).unwrap().is_none());
        drop(l);
        assert!(FileLock::try_exclusive(&p).unwrap().is_some());
    }

    #[test]
    fn shared_locks_coexist_but_exclude_exclusive() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.lock");
        let a = FileLock::shared(&p).unwrap();
        let b = FileLock::shared(&p).unwrap();
        assert!(FileLock::try_exclusive(&p).unwrap().is_none());
        drop((a, b));
        assert!(FileLock::try_exclusive(&p).unwrap().is_some());
    }

    #[test]
    fn try_existing_does_not_create() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("none.lock");
        assert!(FileLock::try_exclusive_existing(&p).unwrap().is_none());
        assert!(!p.exists());
    }

    #[test]
    fn deletable_lock_waiter_retries_on_the_new_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k.lock");
        let held = FileLock::exclusive_deletable(&p).unwrap();
        let (tx, rx) = mpsc::channel();
        let p2 = p.clone();
        let t = std::thread::spawn(move || {
            let l = FileLock::exclusive_deletable(&p2).unwrap();
            tx.send(()).unwrap();
            assert!(l.still_linked());
        });
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
        held.unlink();
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
        t.join().unwrap();
        assert!(p.exists(), "the waiter re-created the lock file");
    }
}
