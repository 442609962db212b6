//! The cache store: blobs, snapshots, cache mounts and the index under one
//! root, shared safely by any number of processes.
//!
//! ## Protocol
//!
//! * **Using** anything (looking a key up, committing a snapshot, writing a
//!   blob a build will export, opening a cache mount) happens under a
//!   *shared* flock on `gc.lock` ([`CacheStore::using`]) and adds the item
//!   to the session's lease before the guard is dropped. **Collecting**
//!   takes the lock *exclusively*, reads all live leases and deletes only
//!   what no lease holds. So nothing a live build has looked at can vanish.
//! * **Building** a key happens under an exclusive flock on
//!   `locks/<key>.lock` ([`CacheStore::lock_key`]): a second process that
//!   wants the same key waits, then finds it done.
//! * **Committing** is atomic: a snapshot is made in the session's scratch
//!   directory, marked `done` and renamed to `snapshots/<key>`; blobs are
//!   renamed into place by the [`BlobStore`] (fsynced first, or, for the
//!   layers a build writes, in the background with the snapshots:
//!   `durable.rs`); the index is written last, at the end of the build,
//!   once those syncs are done. A build killed at any point leaves either no
//!   snapshot or a complete one, and at worst a snapshot the index does not
//!   know yet, which lookups (they go by the `done` marker) use anyway and
//!   the next reconcile records.
//!
//! Lookups never open the index: a no-op rebuild costs a `stat` per step.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::blobs::{BlobStore, BlobWriter};
use crate::durable::BackgroundSync;
use crate::index::{Index, IndexTxn};
use crate::lease::{self, LeaseItem, Session};
use crate::lock::FileLock;
use crate::memo::{FileHashMemo, FileStamp};
use crate::record::{Kind, Record, SnapshotMeta, StepLayer};
use crate::{now_secs, valid_key, CacheError};
use engine_oci::Digest;

/// Held while using the store (shared `gc.lock`).
#[derive(Debug)]
pub struct UseGuard(#[allow(dead_code)] FileLock);

/// Held while building one key.
#[derive(Debug)]
pub struct KeyLock(#[allow(dead_code)] FileLock);

/// Journal files (one per build that only reused results) folded into
/// the index by whichever build finds more than this many.
const MAX_JOURNAL_FILES: usize = 64;

#[derive(Debug)]
pub struct CacheStore {
    root: PathBuf,
    blobs: BlobStore,
    index: Index,
    session: Session,
    pending: Mutex<BTreeMap<String, Record>>,
    /// Keys whose snapshot this build replaced: their old records go.
    replaced: Mutex<HashSet<String>>,
    /// Whether this build committed anything new (see [`flush`](Self::flush)).
    made_new: AtomicBool,
    file_memo: OnceLock<FileHashMemo>,
    blob_memo: OnceLock<FileHashMemo>,
    /// Writeback of committed snapshots, off the steps' critical path.
    sync: BackgroundSync,
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CacheError + use<> {
    CacheError::io(op, path)
}

fn check_key(key: &str) -> Result<(), CacheError> {
    if valid_key(key) {
        Ok(())
    } else {
        Err(CacheError::InvalidKey(key.chars().take(80).collect()))
    }
}

/// A settings tag names a file: keep it to a safe alphabet.
fn valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= 64
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub(crate) fn nonce() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}-{nanos:x}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

impl CacheStore {
    /// Open (creating) the cache at `root`, sweep what dead processes left
    /// behind, and start this process's session.
    pub fn open(root: &Path) -> Result<Self, CacheError> {
        fs::create_dir_all(root).map_err(io_err("creating", root))?;
        let root = fs::canonicalize(root).map_err(io_err("resolving", root))?;
        for d in ["snapshots", "mounts", "tmp", "locks", "leases", "trash"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(io_err("creating", &p))?;
        }
        let tag = root.join("CACHEDIR.TAG");
        if !tag.exists() {
            let _ = fs::write(
                &tag,
                "Signature: 8a477f597d28d172789f06886806bc55\n# engine build cache\n",
            );
        }
        let blobs = BlobStore::open(&root)?;
        // Sweep dead sessions before ours exists.
        let _ = lease::live_leases(&root);
        lease::sweep_orphan_tmp(&root, &lease::live_session_ids(&root));
        let session = Session::start(&root).map_err(io_err("starting a session in", &root))?;
        Ok(CacheStore {
            index: Index::new(&root),
            sync: BackgroundSync::new(root.clone()),
            root,
            blobs,
            session,
            pending: Mutex::new(BTreeMap::new()),
            replaced: Mutex::new(Default::default()),
            made_new: AtomicBool::new(false),
            file_memo: OnceLock::new(),
            blob_memo: OnceLock::new(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    /// This process's scratch directory (removed when it ends; swept if it
    /// dies).
    pub fn tmp_dir(&self) -> &Path {
        self.session.tmp_dir()
    }

    /// `<root>/snapshots/<key>` (whether or not it exists). Panics on an
    /// invalid key: keys are made by the solver, never read from users.
    pub fn snapshot_dir(&self, key: &str) -> PathBuf {
        assert!(valid_key(key), "invalid cache key {key:?}");
        self.root.join("snapshots").join(key)
    }

    /// `<root>/mounts/<id>` for a hashed cache-mount id.
    pub fn mount_dir(&self, id: &str) -> PathBuf {
        assert!(valid_key(id), "invalid cache mount id {id:?}");
        self.root.join("mounts").join(id)
    }

    /// Keep collection out while the guard lives.
    pub fn using(&self) -> Result<UseGuard, CacheError> {
        let p = self.root.join("gc.lock");
        FileLock::shared(&p)
            .map(UseGuard)
            .map_err(io_err("locking", &p))
    }

    /// Add items to this session's lease.
    pub fn lease<I: IntoIterator<Item = LeaseItem>>(&self, items: I) -> Result<(), CacheError> {
        let mut items = items
            .into_iter()
            .filter(|i| !self.session.holds(i))
            .peekable();
        if items.peek().is_none() {
            return Ok(());
        }
        let _g = self.using()?;
        for i in items {
            self.session
                .add(i)
                .map_err(io_err("writing lease in", &self.root.join("leases")))?;
        }
        Ok(())
    }

    /// Lease `key` and tell whether its snapshot is complete.
    pub fn acquire(&self, key: &str) -> Result<bool, CacheError> {
        check_key(key)?;
        let _g = self.using()?;
        self.session
            .add(LeaseItem::Key(key.to_string()))
            .map_err(io_err("writing lease in", &self.root.join("leases")))?;
        Ok(self.snapshot_dir(key).join("done").exists())
    }

    /// Wait until no other thread or process builds `key`.
    pub fn lock_key(&self, key: &str) -> Result<KeyLock, CacheError> {
        check_key(key)?;
        let p = self.root.join("locks").join(format!("{key}.lock"));
        FileLock::exclusive_deletable(&p)
            .map(KeyLock)
            .map_err(io_err("locking", &p))
    }

    /// A fresh staging directory for a snapshot, in the session's scratch.
    pub fn staging(&self, key: &str) -> Result<PathBuf, CacheError> {
        check_key(key)?;
        let p = self
            .tmp_dir()
            .join(format!("snap-{}-{}", &key[..key.len().min(16)], nonce()));
        fs::create_dir_all(&p).map_err(io_err("creating", &p))?;
        Ok(p)
    }

    /// Make a finished staging directory (holding `fs/`) the snapshot of
    /// `key`: write its metadata and `done` marker and rename it into place.
    /// With `replace`, an existing snapshot is moved to the trash first
    /// (builds that use it keep it until they end); otherwise an existing
    /// complete snapshot wins and the staging directory is dropped.
    pub fn commit_snapshot(
        &self,
        staging: &Path,
        record: &Record,
        replace: bool,
    ) -> Result<(), CacheError> {
        let key = record.key.as_str();
        check_key(key)?;
        let meta = SnapshotMeta {
            version: crate::record::RECORD_VERSION,
            key: key.to_string(),
            kind: record.kind,
            description: record.description.clone(),
            created: record.created,
            base_layers: record.base_layers.clone(),
            base_config: record.base_config,
        };
        let meta_path = staging.join("meta.json");
        fs::write(
            &meta_path,
            serde_json::to_vec(&meta).expect("meta serializes"),
        )
        .map_err(io_err("writing", &meta_path))?;
        let done = staging.join("done");
        fs::write(&done, b"").map_err(io_err("writing", &done))?;
        let dir = self.snapshot_dir(key);
        let _g = self.using()?;
        self.session
            .add(LeaseItem::Key(key.to_string()))
            .map_err(io_err("writing lease in", &self.root.join("leases")))?;
        if replace && dir.exists() {
            self.to_trash(&dir, key)?;
            self.replaced
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key.to_string());
        }
        match fs::rename(staging, &dir) {
            Ok(()) => {
                self.made_new.store(true, Ordering::SeqCst);
                self.sync.request_fs();
            }
            Err(_) if dir.join("done").exists() => {
                let _ = crate::sweep::remove_tree(staging);
            }
            Err(_) => {
                // A directory without `done` (left by an older engine): replace it.
                if dir.exists() {
                    self.to_trash(&dir, key)?;
                }
                fs::rename(staging, &dir).map_err(io_err("committing snapshot", &dir))?;
                self.made_new.store(true, Ordering::SeqCst);
            }
        }
        let _ = crate::durable::sync_dir(&self.root.join("snapshots"));
        self.note(record.clone());
        Ok(())
    }

    /// When the snapshot of `key` was first made (Unix seconds), from its
    /// `meta.json`: the time an image takes for the step's layer (see
    /// `specs/cache-keys.md`, "Image creation times"). `None` when there
    /// is no complete snapshot of `key`.
    pub fn snapshot_created(&self, key: &str) -> Option<u64> {
        if !valid_key(key) {
            return None;
        }
        let dir = self.snapshot_dir(key);
        if !dir.join("done").exists() {
            return None;
        }
        crate::record::read_meta(&dir).map(|m| m.created)
    }

    /// Move `path` (belonging to `key`) into `trash/`; collection deletes
    /// it once no live session holds the key.
    pub(crate) fn to_trash(&self, path: &Path, key: &str) -> Result<(), CacheError> {
        let dest = self.root.join("trash").join(format!("{key}.{}", nonce()));
        match fs::rename(path, &dest) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(CacheError::Io {
                op: "moving to trash",
                path: path.to_path_buf(),
                source: e,
            }),
        }
    }

    /// Remember that this build used (or made) a record; written to the
    /// index by [`flush`](Self::flush).
    pub fn note(&self, record: Record) {
        let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        match p.get_mut(&record.key) {
            Some(r) => r.merge(&record),
            None => {
                p.insert(record.key.clone(), record);
            }
        }
    }

    fn layer_file(&self, key: &str, tag: &str) -> Option<PathBuf> {
        (valid_key(key) && valid_tag(tag))
            .then(|| self.snapshot_dir(key).join(format!("layer-{tag}.json")))
    }

    /// The layer `key` exports as under settings `tag`, if it was made
    /// before and its blob is still intact (a missing or corrupt blob makes
    /// this a miss; a corrupt blob is deleted). The blob is leased.
    pub fn step_layer(&self, key: &str, tag: &str) -> Result<Option<StepLayer>, CacheError> {
        let Some(path) = self.layer_file(key, tag) else {
            return Ok(None);
        };
        let Ok(bytes) = fs::read(&path) else {
            return Ok(None);
        };
        let Ok(layer) = serde_json::from_slice::<StepLayer>(&bytes) else {
            let _ = fs::remove_file(&path);
            return Ok(None);
        };
        if let StepLayer::Blob(b) = &layer {
            let _g = self.using()?;
            if !self.blob_ok(&b.digest, Some(b.size)) {
                let _ = fs::remove_file(&path);
                return Ok(None);
            }
            self.session
                .add(LeaseItem::Blob(b.digest))
                .map_err(io_err("writing lease in", &self.root.join("leases")))?;
        }
        Ok(Some(layer))
    }

    /// Remember the layer `key` exports as under `tag` (its blob already
    /// committed). Written atomically beside the snapshot.
    pub fn put_step_layer(
        &self,
        key: &str,
        tag: &str,
        layer: &StepLayer,
    ) -> Result<(), CacheError> {
        let Some(path) = self.layer_file(key, tag) else {
            return Err(CacheError::InvalidKey(format!("{key}/{tag}")));
        };
        if let StepLayer::Blob(b) = layer {
            self.lease([LeaseItem::Blob(b.digest)])?;
        }
        let dir = self.snapshot_dir(key);
        if dir.join("done").exists() {
            let tmp = dir.join(format!(".layer-{tag}.{}.tmp", nonce()));
            fs::write(&tmp, serde_json::to_vec(layer).expect("layers serialize"))
                .map_err(io_err("writing", &tmp))?;
            fs::rename(&tmp, &path).map_err(io_err("writing", &path))?;
            self.made_new.store(true, Ordering::SeqCst);
        }
        let mut r = Record::new(key, Kind::File, now_secs());
        r.layers.insert(tag.to_string(), layer.clone());
        self.note_layers(r);
        Ok(())
    }

    fn note_layers(&self, r: Record) {
        // Only the layers: kind and dates come from the snapshot's own note.
        let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        match p.get_mut(&r.key) {
            Some(existing) => {
                for (k, v) in r.layers {
                    existing.layers.insert(k, v);
                }
            }
            None => {
                p.insert(r.key.clone(), r);
            }
        }
    }

    /// Commit a blob written for this store without waiting for the disk:
    /// its data is synced by the background sync, which [`flush`](Self::flush)
    /// waits for (see [`BlobWriter::commit_unsynced`] for why a crash before
    /// then is safe).
    pub fn commit_blob(&self, w: BlobWriter) -> Result<(Digest, u64), CacheError> {
        let (digest, size) = w.commit_unsynced(None)?;
        let path = self.blobs.path(&digest);
        match fs::File::open(&path) {
            Ok(f) => self
                .sync
                .request_file(f, Some(self.blobs.blobs_dir().to_path_buf())),
            Err(_) => self.sync.request_fs(),
        }
        Ok((digest, size))
    }

    /// Whether the blob is present and intact (size, and sha256 unless an
    /// earlier check of this very file is remembered). A corrupt blob is
    /// deleted. Call under [`using`](Self::using).
    pub fn blob_ok(&self, digest: &Digest, size: Option<u64>) -> bool {
        let path = self.blobs.path(digest);
        let Ok(meta) = fs::metadata(&path) else {
            return false;
        };
        if !meta.is_file() || size.is_some_and(|s| s != meta.len()) {
            let _ = self.blobs.delete(digest);
            return false;
        }
        if self.blobs.known_intact(digest, &meta) {
            return true;
        }
        let stamp = FileStamp::of(&meta);
        let memo = self.blob_memo();
        if memo.get(&stamp) == Some(*digest.as_bytes()) {
            return true;
        }
        match self.blobs.verify(digest) {
            Ok(true) => {
                memo.insert(stamp, *digest.as_bytes(), std::time::SystemTime::now());
                true
            }
            Ok(false) => {
                let _ = self.blobs.delete(digest);
                false
            }
            Err(_) => false,
        }
    }

    /// The memo of context file hashes (loaded on first use).
    pub fn file_memo(&self) -> &FileHashMemo {
        self.file_memo
            .get_or_init(|| FileHashMemo::load_named(&self.root, "files-v1"))
    }

    fn blob_memo(&self) -> &FileHashMemo {
        self.blob_memo
            .get_or_init(|| FileHashMemo::load_named(&self.root, "blobs-v1"))
    }

    /// Write what this build used and made to the index, and save the
    /// hash memos. A build that made something (a snapshot, a layer) does
    /// it in one short index session and gets the cache's size as the
    /// index knows it (for automatic collection). A build that only reused
    /// results appends its uses to `journal/` instead (no index session, so
    /// a no-op rebuild stays cheap) and gets `None`; the next index session
    /// folds the journal in.
    pub fn flush(&self) -> Result<Option<u64>, CacheError> {
        // The index names snapshots only once their contents are on disk.
        self.sync.wait();
        if let Some(m) = self.file_memo.get() {
            let _ = m.save();
        }
        if let Some(m) = self.blob_memo.get() {
            let _ = m.save();
        }
        let pending: Vec<Record> =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()))
                .into_values()
                .collect();
        let replaced =
            std::mem::take(&mut *self.replaced.lock().unwrap_or_else(|p| p.into_inner()));
        if !self.made_new.swap(false, Ordering::SeqCst) {
            if !pending.is_empty() {
                self.write_journal(&pending)?;
            }
            let journaled = fs::read_dir(self.root.join("journal")).map_or(0, |d| d.count());
            if journaled <= MAX_JOURNAL_FILES {
                return Ok(None);
            }
            return self.index.with(|txn| {
                self.fold_journal(txn)?;
                txn.indexed_size().map(Some)
            });
        }
        self.index.with(|txn| {
            self.fold_journal(txn)?;
            self.apply(txn, pending, &replaced)?;
            txn.indexed_size().map(Some)
        })
    }

    fn write_journal(&self, records: &[Record]) -> Result<(), CacheError> {
        let dir = self.root.join("journal");
        fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        let mut text = Vec::new();
        for r in records {
            text.extend_from_slice(&r.to_json());
            text.push(b'\n');
        }
        let n = nonce();
        let tmp = dir.join(format!(".{n}.tmp"));
        fs::write(&tmp, &text).map_err(io_err("writing", &tmp))?;
        let dest = dir.join(format!("{n}.jsonl"));
        fs::rename(&tmp, &dest).map_err(io_err("writing", &dest))
    }

    /// Merge the journal's records into the index and delete it. Merging
    /// is idempotent, so a crash before the delete only merges again.
    pub(crate) fn fold_journal(&self, txn: &IndexTxn) -> Result<(), CacheError> {
        let dir = self.root.join("journal");
        let Ok(rd) = fs::read_dir(&dir) else {
            return Ok(());
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !name.ends_with(".jsonl") {
                // A temp file: of a live writer, or of a dead one if old.
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|m| m.elapsed().ok())
                    .is_some_and(|age| age.as_secs() > 3600);
                if old {
                    let _ = fs::remove_file(e.path());
                }
                continue;
            }
            let text = fs::read(e.path()).unwrap_or_default();
            let records: Vec<Record> = text
                .split(|b| *b == b'\n')
                .filter_map(Record::from_json)
                .collect();
            self.apply(txn, records, &HashSet::new())?;
            let _ = fs::remove_file(e.path());
        }
        Ok(())
    }

    /// Merge records of this (or a journaled) build into the index, for
    /// keys whose snapshot or cache mount still exists.
    fn apply(
        &self,
        txn: &IndexTxn,
        records: Vec<Record>,
        replaced: &HashSet<String>,
    ) -> Result<(), CacheError> {
        for mut r in records {
            let mount = r.kind == Kind::CacheMount;
            let dir = if mount {
                self.mount_dir(&r.key)
            } else {
                self.snapshot_dir(&r.key)
            };
            let on_disk = if mount {
                dir.is_dir()
            } else {
                dir.join("done").exists()
            };
            if !on_disk {
                continue;
            }
            match txn.get(&r.key)?.filter(|_| !replaced.contains(&r.key)) {
                Some(mut old) => {
                    // Kind and creation come from the first record.
                    old.merge(&r);
                    r = old;
                }
                None if !mount => {
                    if let Some(meta) = crate::record::read_meta(&dir) {
                        r.kind = meta.kind;
                        r.created = meta.created;
                        if r.description.is_empty() {
                            r.description = meta.description;
                        }
                        if r.base_layers.is_empty() {
                            r.base_layers = meta.base_layers;
                            r.base_config = meta.base_config;
                        }
                    }
                }
                None => {}
            }
            // Cache mounts change with every use: collection measures them.
            if r.snapshot_size.is_none() && !mount {
                r.snapshot_size = Some(crate::sweep::disk_usage(&dir));
            }
            txn.put(&r)?;
        }
        Ok(())
    }

    /// Note a cache mount this build uses and lease it.
    pub fn use_mount(&self, id: &str) -> Result<PathBuf, CacheError> {
        check_key(id)?;
        let dir = self.mount_dir(id);
        let _g = self.using()?;
        self.session
            .add(LeaseItem::Mount(id.to_string()))
            .map_err(io_err("writing lease in", &self.root.join("leases")))?;
        fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        drop(_g);
        let mut r = Record::new(id, Kind::CacheMount, now_secs());
        r.description = "cache mount".into();
        self.note(r);
        Ok(dir)
    }
}

impl FileHashMemo {
    /// The memo named `name` under `<root>/memo/`.
    pub fn load_named(root: &Path, name: &str) -> FileHashMemo {
        FileHashMemo::load_path(root.join("memo").join(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::LayerRef;

    fn key(n: u8) -> String {
        format!("{n:02x}").repeat(32)
    }

    fn stage(store: &CacheStore, k: &str, content: &[u8]) -> PathBuf {
        let s = store.staging(k).unwrap();
        fs::create_dir_all(s.join("fs")).unwrap();
        fs::write(s.join("fs/file"), content).unwrap();
        s
    }

    #[test]
    fn commit_then_acquire_and_flush() {
        let d = tempfile::tempdir().unwrap();
        let store = CacheStore::open(d.path()).unwrap();
        let k = key(1);
        assert!(!store.acquire(&k).unwrap());
        let s = stage(&store, &k, b"one");
        let mut rec = Record::new(&k, Kind::Exec, 100);
        rec.description = "RUN one".into();
        store.commit_snapshot(&s, &rec, false).unwrap();
        assert!(!s.exists());
        assert!(store.acquire(&k).unwrap());
        assert_eq!(
            fs::read(store.snapshot_dir(&k).join("fs/file")).unwrap(),
            b"one"
        );

        // A second commit of the same key keeps the first.
        let s2 = stage(&store, &k, b"two");
        store.commit_snapshot(&s2, &rec, false).unwrap();
        assert_eq!(
            fs::read(store.snapshot_dir(&k).join("fs/file")).unwrap(),
            b"one"
        );
        assert!(!s2.exists());
        // Unless replacing.
        let s3 = stage(&store, &k, b"three");
        store.commit_snapshot(&s3, &rec, true).unwrap();
        assert_eq!(
            fs::read(store.snapshot_dir(&k).join("fs/file")).unwrap(),
            b"three"
        );
        assert_eq!(fs::read_dir(d.path().join("trash")).unwrap().count(), 1);

        let total = store.flush().unwrap();
        assert!(total.unwrap() > 0);
        let r = store.index().with(|t| t.get(&k)).unwrap().unwrap();
        assert_eq!(r.kind, Kind::Exec);
        assert_eq!(r.description, "RUN one");
        assert!(r.snapshot_size.unwrap() > 0);
    }

    #[test]
    fn step_layers_are_misses_when_their_blob_is_missing_or_corrupt() {
        let d = tempfile::tempdir().unwrap();
        let store = CacheStore::open(d.path()).unwrap();
        let k = key(2);
        let s = stage(&store, &k, b"x");
        store
            .commit_snapshot(&s, &Record::new(&k, Kind::File, 1), false)
            .unwrap();
        assert_eq!(store.step_layer(&k, "Gzip-none").unwrap(), None);
        let (dg, size) = store.blobs().put_bytes(b"layer bytes").unwrap();
        let layer = StepLayer::Blob(LayerRef {
            digest: dg,
            diff_id: dg,
            size,
            media_type: "x".into(),
        });
        store.put_step_layer(&k, "Gzip-none", &layer).unwrap();
        assert_eq!(
            store.step_layer(&k, "Gzip-none").unwrap(),
            Some(layer.clone())
        );
        store
            .put_step_layer(&k, "Zstd-none", &StepLayer::Empty)
            .unwrap();
        assert_eq!(
            store.step_layer(&k, "Zstd-none").unwrap(),
            Some(StepLayer::Empty)
        );

        // Corrupt (same size): a miss, and the blob is gone.
        let p = store.blobs().path(&dg);
        let mut perm = fs::metadata(&p).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perm.set_readonly(false);
        fs::set_permissions(&p, perm).unwrap();
        fs::write(&p, b"layer bytez").unwrap();
        assert_eq!(store.step_layer(&k, "Gzip-none").unwrap(), None);
        assert!(!store.blobs().contains(&dg));
        // Missing: a miss.
        store.put_step_layer(&k, "Gzip-none", &layer).unwrap();
        assert_eq!(store.step_layer(&k, "Gzip-none").unwrap(), None);
        assert!(store.step_layer(&k, "../../x").unwrap().is_none());
    }

    #[test]
    fn key_locks_exclude_across_stores() {
        let d = tempfile::tempdir().unwrap();
        let a = CacheStore::open(d.path()).unwrap();
        let b = CacheStore::open(d.path()).unwrap();
        let k = key(3);
        let held = a.lock_key(&k).unwrap();
        let p = d.path().join("locks").join(format!("{k}.lock"));
        assert!(FileLock::try_exclusive(&p).unwrap().is_none());
        drop(held);
        let _again = b.lock_key(&k).unwrap();
        assert_ne!(a.session().id(), b.session().id());
    }

    #[test]
    fn invalid_keys_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let s = CacheStore::open(d.path()).unwrap();
        assert!(s.acquire("../etc").is_err());
        assert!(s.lock_key("").is_err());
        assert!(s.staging("ABC").is_err());
    }
}
