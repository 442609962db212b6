//! Deferred durability: snapshot contents and layer blobs reach the disk in
//! the background, and the store's `flush` waits for them before it writes
//! the index.
//!
//! Why not on the step's critical path: a RUN step's overlay used to be
//! unmounted with a full `sync_filesystem` of the upper filesystem
//! (overlayfs syncs its upper layer when its super block goes away), which
//! put the writeback of everything dirty on that filesystem, other steps'
//! output included, inside the step: 0.27 s for a step writing 512 MiB.
//! The sandbox now mounts its overlays `volatile`; a committed snapshot asks
//! here for one `syncfs(2)` of the cache's filesystem (a snapshot is many
//! files), a committed layer blob for an fsync of its file. Requests made
//! while a round runs are served by the next round, so N steps cost a few
//! syncs, not N. [`BackgroundSync::wait`] returns when everything requested
//! before it is on disk.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

#[derive(Debug, Default)]
struct State {
    /// Requests made so far.
    requested: u64,
    /// Requests served by a finished round.
    synced: u64,
    /// Whether the next round syncs the whole filesystem.
    whole_fs: bool,
    /// Files (with their directories) the next round fsyncs.
    files: Vec<(File, Option<PathBuf>)>,
    /// Whether a syncing thread is alive.
    running: bool,
}

#[derive(Debug)]
pub(crate) struct BackgroundSync {
    root: PathBuf,
    shared: Arc<(Mutex<State>, Condvar)>,
}

impl BackgroundSync {
    pub(crate) fn new(root: PathBuf) -> BackgroundSync {
        BackgroundSync {
            root,
            shared: Arc::default(),
        }
    }

    /// Ask for everything written so far under the root to reach the disk.
    pub(crate) fn request_fs(&self) {
        self.request(|st| st.whole_fs = true);
    }

    /// Ask for `file`'s data, and the directory entry naming it, to reach
    /// the disk.
    pub(crate) fn request_file(&self, file: File, dir: Option<PathBuf>) {
        self.request(move |st| st.files.push((file, dir)));
    }

    fn request(&self, add: impl FnOnce(&mut State)) {
        let (lock, _) = &*self.shared;
        let mut st = lock.lock().unwrap_or_else(|p| p.into_inner());
        add(&mut st);
        st.requested += 1;
        if st.running {
            return;
        }
        st.running = true;
        drop(st);
        let shared = Arc::clone(&self.shared);
        let root = self.root.clone();
        let spawned = std::thread::Builder::new()
            .name("cache-sync".into())
            .spawn(move || sync_loop(&root, &shared));
        if spawned.is_err() {
            // No thread: sync here instead of losing the request.
            sync_loop(&self.root, &self.shared);
        }
    }

    /// Wait until every request made before this call is served.
    pub(crate) fn wait(&self) {
        let (lock, cv) = &*self.shared;
        let mut st = lock.lock().unwrap_or_else(|p| p.into_inner());
        let target = st.requested;
        while st.synced < target && st.running {
            st = cv.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }
}

fn sync_loop(root: &Path, shared: &(Mutex<State>, Condvar)) {
    let (lock, cv) = shared;
    loop {
        let (target, whole_fs, files) = {
            let mut st = lock.lock().unwrap_or_else(|p| p.into_inner());
            (
                st.requested,
                std::mem::take(&mut st.whole_fs),
                std::mem::take(&mut st.files),
            )
        };
        // Errors are not reported: an unsynced write leaves the cache as
        // durable as before, which every reader tolerates (snapshots are
        // checked by their `done` marker, blobs by their digest).
        if whole_fs {
            syncfs(root);
        } else {
            let mut dirs: Vec<PathBuf> = Vec::new();
            for (f, dir) in files {
                let _ = f.sync_data();
                if let Some(d) = dir {
                    if !dirs.contains(&d) {
                        dirs.push(d);
                    }
                }
            }
            for d in dirs {
                let _ = sync_dir(&d);
            }
        }
        let mut st = lock.lock().unwrap_or_else(|p| p.into_inner());
        st.synced = st.synced.max(target);
        cv.notify_all();
        if st.requested == st.synced {
            st.running = false;
            return;
        }
    }
}

/// fsync a directory, so that a rename or removal in it is durable. The one
/// `sync_dir` of the workspace (export and solver use it too).
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// `syncfs(2)` of the filesystem holding `root`.
fn syncfs(root: &Path) {
    if let Ok(f) = File::open(root) {
        // SAFETY: a valid open descriptor.
        unsafe {
            libc::syncfs(f.as_raw_fd());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_covered_and_wait_returns() {
        let d = tempfile::tempdir().unwrap();
        let s = BackgroundSync::new(d.path().to_path_buf());
        s.wait(); // nothing requested: returns at once
        for _ in 0..5 {
            std::fs::write(d.path().join("f"), b"x").unwrap();
            s.request_fs();
        }
        s.wait();
        let st = s.shared.0.lock().unwrap();
        assert_eq!(st.requested, 5);
        assert_eq!(st.synced, 5);
        assert!(!st.running);
    }

    #[test]
    fn file_requests_are_served() {
        let d = tempfile::tempdir().unwrap();
        let s = BackgroundSync::new(d.path().to_path_buf());
        for i in 0..3 {
            let p = d.path().join(format!("f{i}"));
            std::fs::write(&p, b"x").unwrap();
            s.request_file(File::open(&p).unwrap(), Some(d.path().to_path_buf()));
        }
        s.wait();
        let st = s.shared.0.lock().unwrap();
        assert_eq!(st.synced, 3);
        assert!(st.files.is_empty());
    }

    #[test]
    fn concurrent_requests_all_complete() {
        let d = tempfile::tempdir().unwrap();
        let s = Arc::new(BackgroundSync::new(d.path().to_path_buf()));
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let s = Arc::clone(&s);
                let p = d.path().join(format!("f{i}"));
                std::thread::spawn(move || {
                    std::fs::write(p, b"x").unwrap();
                    s.request_fs();
                    s.wait();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let st = s.shared.0.lock().unwrap();
        assert_eq!(st.synced, 8);
    }
}
