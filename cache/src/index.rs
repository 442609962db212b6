//! The sled index: cache key → [`Record`].
//!
//! sled lets one process at a time open a database, and several `engine`
//! processes share a cache dir. So the index is never held open: every
//! use is a short critical section under an exclusive `flock` on
//! `<root>/index.lock` that opens the database, does its work, flushes and
//! closes it ([`Index::with`]). Builds use it once, at the end (to record
//! what they built and used); `cache du` and `cache prune` once each.
//!
//! The index is derived data. Snapshots (`snapshots/<key>/done`) and blobs
//! are the truth: a database that cannot be opened is moved to `trash/` and
//! rebuilt from them by the next reconcile (see [`crate::gc`]).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::lock::FileLock;
use crate::record::Record;
use crate::CacheError;

/// Directory of the database under the cache root. A new record format
/// gets a new directory; the old one is then garbage for `prune`.
pub const INDEX_DIR: &str = "index-v1";
const RECORDS_TREE: &str = "records";

/// Serializes index sessions between threads of this process (the flock
/// does between processes).
static IN_PROCESS: Mutex<()> = Mutex::new(());

#[derive(Debug, Clone)]
pub struct Index {
    root: PathBuf,
}

/// An open index, valid inside [`Index::with`].
pub struct IndexTxn {
    records: sled::Tree,
}

fn sled_err(e: sled::Error) -> CacheError {
    CacheError::Index(e.to_string())
}

impl Index {
    pub fn new(root: &Path) -> Self {
        Index {
            root: root.to_path_buf(),
        }
    }

    pub fn dir(&self) -> PathBuf {
        self.root.join(INDEX_DIR)
    }

    fn open_db(&self) -> Result<sled::Db, sled::Error> {
        sled::Config::new()
            .path(self.dir())
            .flush_every_ms(None)
            .cache_capacity(8 * 1024 * 1024)
            .open()
    }

    /// Run `f` with the index open, under the index lock; flush before
    /// returning. A database that fails to open is set aside (moved to
    /// `trash/`) and replaced by an empty one.
    pub fn with<T>(
        &self,
        f: impl FnOnce(&IndexTxn) -> Result<T, CacheError>,
    ) -> Result<T, CacheError> {
        let _local = IN_PROCESS.lock().unwrap_or_else(|p| p.into_inner());
        let lock_path = self.root.join("index.lock");
        let _lock =
            FileLock::exclusive(&lock_path).map_err(CacheError::io("locking", &lock_path))?;
        // Whatever happens below, the database is closed for good before
        // the index lock is released.
        let _closed = WaitClosed(self.dir().join("db"));
        let db = match self.open_db() {
            Ok(db) => db,
            Err(e) if is_lock_contention(&e) => {
                // sled's own flock on `db`: held only by an instance that is
                // still shutting down (in this process, or a process that
                // just exited). Wait for it, then open.
                wait_closed(&self.dir().join("db"));
                self.open_db().map_err(sled_err)?
            }
            Err(_) => {
                self.set_aside();
                self.open_db().map_err(sled_err)?
            }
        };
        let records = db.open_tree(RECORDS_TREE).map_err(sled_err)?;
        let txn = IndexTxn { records };
        let out = f(&txn);
        let flushed = db.flush().map_err(sled_err);
        drop(txn);
        drop(db);
        let out = out?;
        flushed?;
        Ok(out)
    }

    /// Move the database out of the way (it is rebuilt from the store).
    fn set_aside(&self) {
        let trash = self.root.join("trash");
        let _ = std::fs::create_dir_all(&trash);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dest = trash.join(format!("{INDEX_DIR}.{nanos}"));
        if std::fs::rename(self.dir(), &dest).is_err() {
            let _ = std::fs::remove_dir_all(self.dir());
        }
    }
}

fn is_lock_contention(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
}

/// sled closes its files from background threads, after the `Db` handle is
/// dropped. Its `flock` on `db` is held until then: wait until we can take
/// it ourselves (at most a few seconds).
fn wait_closed(db_file: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match FileLock::try_exclusive_existing(db_file) {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) if !db_file.exists() => return,
            Ok(None) => {}
        }
        if std::time::Instant::now() > deadline {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Runs [`wait_closed`] when dropped (after the `Db` it outlives).
struct WaitClosed(PathBuf);

impl Drop for WaitClosed {
    fn drop(&mut self) {
        wait_closed(&self.0);
    }
}

impl IndexTxn {
    pub fn get(&self, key: &str) -> Result<Option<Record>, CacheError> {
        Ok(self
            .records
            .get(key.as_bytes())
            .map_err(sled_err)?
            .and_then(|v| Record::from_json(&v)))
    }

    pub fn put(&self, r: &Record) -> Result<(), CacheError> {
        self.records
            .insert(r.key.as_bytes(), r.to_json())
            .map_err(sled_err)?;
        Ok(())
    }

    pub fn remove(&self, key: &str) -> Result<(), CacheError> {
        self.records.remove(key.as_bytes()).map_err(sled_err)?;
        Ok(())
    }

    /// Every readable record, in key order. Unreadable entries are dropped
    /// from the index on the way.
    /// The size of the cache as the index knows it (snapshots, cache mounts
    /// and the blobs records refer to), without touching the disk.
    pub(crate) fn indexed_size(&self) -> Result<u64, CacheError> {
        let mut total = 0u64;
        let mut seen = std::collections::HashSet::new();
        for r in self.all()? {
            total += r.snapshot_size.unwrap_or(0);
            for (d, size) in r.blobs() {
                if seen.insert(*d) {
                    total += size;
                }
            }
        }
        Ok(total)
    }

    pub fn all(&self) -> Result<Vec<Record>, CacheError> {
        let mut out = Vec::new();
        let mut bad = Vec::new();
        for item in self.records.iter() {
            let (k, v) = item.map_err(sled_err)?;
            match Record::from_json(&v) {
                Some(r) if r.key.as_bytes() == &*k => out.push(r),
                _ => bad.push(k),
            }
        }
        for k in bad {
            self.records.remove(k).map_err(sled_err)?;
        }
        Ok(out)
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Kind;

    #[test]
    fn put_get_remove_across_sessions() {
        let d = tempfile::tempdir().unwrap();
        let idx = Index::new(d.path());
        let k = "ab".repeat(32);
        idx.with(|t| t.put(&Record::new(&k, Kind::Exec, 3)))
            .unwrap();
        let got = idx.with(|t| t.get(&k)).unwrap().unwrap();
        assert_eq!(got.last_used, 3);
        idx.with(|t| {
            t.records.insert(b"junk", b"not json".to_vec()).unwrap();
            Ok(())
        })
        .unwrap();
        let all = idx.with(|t| t.all()).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(idx.with(|t| Ok(t.len())).unwrap(), 1, "junk dropped");
        idx.with(|t| t.remove(&k)).unwrap();
        assert!(idx
            .with(|t| t
                .is_empty()
                .then_some(())
                .ok_or(CacheError::Index("x".into())))
            .is_ok());
    }

    #[test]
    fn a_broken_database_is_set_aside() {
        let d = tempfile::tempdir().unwrap();
        let idx = Index::new(d.path());
        std::fs::create_dir_all(idx.dir()).unwrap();
        std::fs::write(idx.dir().join("conf"), b"\xff\xfe garbage").unwrap();
        std::fs::write(idx.dir().join("db"), b"garbage garbage").unwrap();
        let k = "cd".repeat(32);
        idx.with(|t| t.put(&Record::new(&k, Kind::File, 1)))
            .unwrap();
        assert!(idx.with(|t| t.get(&k)).unwrap().is_some());
    }

    #[test]
    fn concurrent_threads_take_turns() {
        let d = tempfile::tempdir().unwrap();
        let idx = Index::new(d.path());
        std::thread::scope(|s| {
            for i in 0..4u8 {
                let idx = &idx;
                s.spawn(move || {
                    for j in 0..5u8 {
                        let k = format!("{:02x}", i * 16 + j).repeat(32);
                        idx.with(|t| t.put(&Record::new(&k, Kind::Exec, 1)))
                            .unwrap();
                    }
                });
            }
        });
        assert_eq!(idx.with(|t| t.all()).unwrap().len(), 20);
    }
}
