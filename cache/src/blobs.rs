//! A content-addressed blob store on the local file system.
//!
//! Layout under the store's root:
//!
//! ```text
//! <root>/blobs/sha256/<hex>   committed blobs, named by the sha256 of their content
//! <root>/ingest/              temp files of writers in progress
//! ```
//!
//! `blobs/sha256/` is laid out as in an OCI image layout, so a store root can
//! also be (the blobs half of) an OCI layout.
//!
//! Writes are crash-safe: a [`BlobWriter`] streams into a temp file in
//! `ingest/`, hashing and counting as it goes; [`BlobWriter::commit`] fsyncs
//! the file, checks the digest, renames it into place (atomic on POSIX) and
//! fsyncs the directory. A blob is therefore either absent or complete under
//! its final name, never truncated. Several writers (threads or processes)
//! may commit the same content at once: each has its own temp file and the
//! renames are atomic, so all of them succeed and the blob is written whole.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use sha2::{Digest as _, Sha256};
use tempfile::NamedTempFile;

use crate::memo::FileStamp;
use engine_oci::Digest;

/// Temp files in `ingest/` older than this are left over from crashed
/// writers and are removed by [`BlobStore::open`].
pub const INGEST_MAX_AGE: Duration = Duration::from_secs(60 * 60);

const TEMP_PREFIX: &str = "ingest-";

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("blob {digest} not found in {}", root.display())]
    NotFound { digest: Digest, root: PathBuf },
    #[error("digest mismatch: expected {expected}, got {actual} ({size} bytes)")]
    DigestMismatch {
        expected: Digest,
        actual: Digest,
        size: u64,
    },
}

impl BlobError {
    fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> BlobError {
        let path = path.into();
        move |source| BlobError::Io { op, path, source }
    }
}

pub type Result<T, E = BlobError> = std::result::Result<T, E>;

/// A content-addressed store of sha256 blobs under one root directory.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
    blobs: PathBuf,
    ingest: PathBuf,
    checked: Checked,
}

/// Blobs this process committed or verified, with the stamp their file had
/// then. A file with the same (device, inode, size, mtime, ctime) still
/// holds that content: every write changes ctime, and users cannot set it.
/// (The one blind spot, a write within the same timestamp tick as the
/// stamp, needs a writer racing the commit on purpose; the cache's readers
/// are no defence against that anyway.) Kept in memory only: another
/// process re-checks, through the persistent memo of the cache store.
type Checked = Arc<Mutex<HashMap<Digest, FileStamp>>>;

fn remember(checked: &Checked, digest: Digest, meta: &fs::Metadata) {
    checked
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(digest, FileStamp::of(meta));
}

impl BlobStore {
    /// Open (creating if needed) a store at `root`, and remove temp files
    /// left in `ingest/` by writers that crashed more than an hour ago.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        let blobs = engine_oci::layout::blobs_dir(&root);
        let ingest = root.join("ingest");
        for dir in [&blobs, &ingest] {
            fs::create_dir_all(dir).map_err(BlobError::io("creating directory", dir))?;
        }
        let store = BlobStore {
            root,
            blobs,
            ingest,
            checked: Checked::default(),
        };
        store.sweep_ingest(INGEST_MAX_AGE)?;
        Ok(store)
    }

    /// Remove temp files in `ingest/` last modified more than `max_age` ago.
    /// Returns how many were removed. Errors removing single files are
    /// ignored (another process may be sweeping too).
    pub fn sweep_ingest(&self, max_age: Duration) -> Result<usize> {
        let entries =
            fs::read_dir(&self.ingest).map_err(BlobError::io("reading directory", &self.ingest))?;
        let now = SystemTime::now();
        let mut removed = 0;
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let old = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age > max_age);
            if old && fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/blobs/sha256`.
    pub fn blobs_dir(&self) -> &Path {
        &self.blobs
    }

    /// Where the blob with this digest lives (whether or not it exists).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        engine_oci::layout::blob_path(&self.root, digest)
    }

    /// Start writing a new blob.
    pub fn writer(&self) -> Result<BlobWriter> {
        let temp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(&self.ingest)
            .map_err(BlobError::io("creating temp file in", &self.ingest))?;
        Ok(BlobWriter {
            file: BufWriter::with_capacity(128 * 1024, temp),
            hasher: Sha256::new(),
            size: 0,
            blobs: self.blobs.clone(),
            checked: Arc::clone(&self.checked),
        })
    }

    /// Store `data`; returns its digest and size.
    pub fn put_bytes(&self, data: &[u8]) -> Result<(Digest, u64)> {
        let mut w = self.writer()?;
        w.write_all(data)
            .map_err(BlobError::io("writing", w.temp_path()))?;
        w.commit(None)
    }

    /// Stream everything `reader` yields into the store, checking the
    /// digest when `expected` is given.
    pub fn put_reader(
        &self,
        reader: &mut dyn Read,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64)> {
        let mut w = self.writer()?;
        io::copy(reader, &mut w).map_err(BlobError::io("copying into", w.temp_path()))?;
        w.commit(expected)
    }

    /// Stream the file at `path` into the store.
    pub fn put_file(&self, path: impl AsRef<Path>) -> Result<(Digest, u64)> {
        let path = path.as_ref();
        let mut f = File::open(path).map_err(BlobError::io("opening", path))?;
        let mut w = self.writer()?;
        io::copy(&mut f, &mut w).map_err(BlobError::io("copying", path))?;
        w.commit(None)
    }

    /// Open a blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let path = self.path(digest);
        File::open(&path).map_err(|e| self.not_found_or(e, digest, "opening", path))
    }

    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// The size of a stored blob in bytes.
    pub fn size(&self, digest: &Digest) -> Result<u64> {
        let path = self.path(digest);
        fs::metadata(&path)
            .map(|m| m.len())
            .map_err(|e| self.not_found_or(e, digest, "reading metadata of", path))
    }

    /// Rehash a stored blob: `Ok(false)` if its content no longer matches
    /// its name.
    pub fn verify(&self, digest: &Digest) -> Result<bool> {
        let mut f = self.open_blob(digest)?;
        let before = f.metadata().ok();
        let mut hasher = Sha256::new();
        io::copy(&mut f, &mut hasher).map_err(BlobError::io("reading", self.path(digest)))?;
        let ok = Digest::from_hasher(hasher) == *digest;
        if let (true, Some(meta)) = (ok, before) {
            remember(&self.checked, *digest, &meta);
        }
        Ok(ok)
    }

    /// Whether the blob file described by `meta` is known to hold `digest`
    /// without reading it: this process committed or verified it, and the
    /// file has not changed since (see [`Checked`]). Readers that would
    /// rehash a blob to guard against damage may skip the hash when this
    /// says yes.
    pub fn known_intact(&self, digest: &Digest, meta: &fs::Metadata) -> bool {
        self.checked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(digest)
            .is_some_and(|s| *s == FileStamp::of(meta))
    }

    /// Remove a blob. `Ok(false)` if it was not there.
    pub fn delete(&self, digest: &Digest) -> Result<bool> {
        let path = self.path(digest);
        self.checked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(digest);
        match fs::remove_file(&path) {
            Ok(()) => {
                sync_dir(&self.blobs)?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(BlobError::Io {
                op: "removing",
                path,
                source: e,
            }),
        }
    }

    /// Every stored blob, sorted. Files whose names are not 64 lowercase hex
    /// characters are ignored.
    pub fn list(&self) -> Result<Vec<Digest>> {
        let entries =
            fs::read_dir(&self.blobs).map_err(BlobError::io("reading directory", &self.blobs))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(BlobError::io("reading directory", &self.blobs))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Ok(d) = Digest::parse(&format!("sha256:{name}")) {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }

    fn not_found_or(
        &self,
        e: io::Error,
        digest: &Digest,
        op: &'static str,
        path: PathBuf,
    ) -> BlobError {
        if e.kind() == io::ErrorKind::NotFound {
            BlobError::NotFound {
                digest: *digest,
                root: self.root.clone(),
            }
        } else {
            BlobError::Io {
                op,
                path,
                source: e,
            }
        }
    }
}

/// A blob being written. Dropping it without [`commit`](Self::commit)
/// removes the temp file.
pub struct BlobWriter {
    file: BufWriter<NamedTempFile>,
    hasher: Sha256,
    size: u64,
    blobs: PathBuf,
    checked: Checked,
}

impl std::fmt::Debug for BlobWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobWriter")
            .field("temp", &self.temp_path())
            .field("size", &self.size)
            .finish()
    }
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.size
    }

    /// The digest of what was written so far.
    pub fn digest_so_far(&self) -> Digest {
        Digest::from_hasher(self.hasher.clone())
    }

    fn temp_path(&self) -> PathBuf {
        self.file.get_ref().path().to_path_buf()
    }

    /// Make the blob durable under its digest: fsync the temp file, check
    /// `expected` (the temp file is dropped on a mismatch), rename it into
    /// place and fsync the directory. If the blob already exists it is kept
    /// and the temp file dropped.
    pub fn commit(self, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        self.commit_with(expected, true)
    }

    /// [`commit`](Self::commit) without the fsyncs, for a caller that has
    /// the data synced later (the cache store's background sync, see
    /// `CacheStore::commit_blob`). A crash before that sync
    /// may leave a damaged blob under its name: every reader in another
    /// process rehashes a blob it does not know (or its memo of a hash taken
    /// after the sync), so such a blob is a miss, never a wrong result.
    pub fn commit_unsynced(self, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        self.commit_with(expected, false)
    }

    fn commit_with(self, expected: Option<&Digest>, sync: bool) -> Result<(Digest, u64)> {
        let temp_path = self.temp_path();
        let BlobWriter {
            file,
            hasher,
            size,
            blobs,
            checked,
        } = self;
        let temp = file.into_inner().map_err(|e| BlobError::Io {
            op: "flushing",
            path: temp_path.clone(),
            source: e.into_error(),
        })?;
        let actual = Digest::from_hasher(hasher);
        if let Some(expected) = expected {
            if *expected != actual {
                return Err(BlobError::DigestMismatch {
                    expected: *expected,
                    actual,
                    size,
                });
            }
        }
        let dest = blobs.join(actual.hex());
        // Same digest and same size: the existing blob is this content.
        // (A different size means something damaged it: replace it.)
        if fs::metadata(&dest).is_ok_and(|m| m.is_file() && m.len() == size) {
            return Ok((actual, size));
        }
        if sync {
            temp.as_file()
                .sync_all()
                .map_err(BlobError::io("syncing", &temp_path))?;
        }
        set_read_only(temp.as_file(), &temp_path)?;
        temp.persist(&dest).map_err(|e| BlobError::Io {
            op: "committing blob to",
            path: dest.clone(),
            source: e.error,
        })?;
        if sync {
            sync_dir(&blobs)?;
        }
        if let Ok(meta) = fs::metadata(&dest) {
            remember(&checked, actual, &meta);
        }
        Ok((actual, size))
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(unix)]
fn set_read_only(f: &File, path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(fs::Permissions::from_mode(0o444))
        .map_err(BlobError::io("setting permissions of", path))
}

#[cfg(not(unix))]
fn set_read_only(_: &File, _: &Path) -> Result<()> {
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    crate::durable::sync_dir(dir).map_err(BlobError::io("syncing directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    fn store() -> (tempfile::TempDir, BlobStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        (dir, store)
    }

    fn ingest_files(store: &BlobStore) -> usize {
        fs::read_dir(store.root().join("ingest")).unwrap().count()
    }

    #[test]
    fn put_read_and_list() {
        let (_d, s) = store();
        let (dg, size) = s.put_bytes(b"hello").unwrap();
        assert_eq!(dg, Digest::of(b"hello"));
        assert_eq!(size, 5);
        assert!(s.contains(&dg));
        assert_eq!(s.size(&dg).unwrap(), 5);
        assert_eq!(
            s.path(&dg),
            s.root().join("blobs/sha256").join(dg.hex()),
            "layout is <root>/blobs/sha256/<hex>"
        );
        let mut text = String::new();
        s.open_blob(&dg).unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "hello");
        assert!(s.verify(&dg).unwrap());

        let (dg2, _) = s.put_bytes(b"world").unwrap();
        let mut want = vec![dg, dg2];
        want.sort();
        // Junk in the blobs dir is not a blob.
        fs::write(s.blobs_dir().join("not-a-digest"), b"x").unwrap();
        assert_eq!(s.list().unwrap(), want);
        assert_eq!(ingest_files(&s), 0);
    }

    #[test]
    fn put_file_streams_large_content() {
        let (d, s) = store();
        let src = d.path().join("big");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&src, &data).unwrap();
        let (dg, size) = s.put_file(&src).unwrap();
        assert_eq!((dg, size), (Digest::of(&data), data.len() as u64));
        assert!(s.verify(&dg).unwrap());
    }

    #[test]
    fn writer_checks_expected_digest() {
        let (_d, s) = store();
        let mut w = s.writer().unwrap();
        w.write_all(b"abc").unwrap();
        assert_eq!(w.bytes_written(), 3);
        assert_eq!(w.digest_so_far(), Digest::of(b"abc"));
        let wrong = Digest::of(b"abd");
        let err = w.commit(Some(&wrong)).unwrap_err();
        assert!(matches!(err, BlobError::DigestMismatch { .. }), "{err}");
        assert!(err
            .to_string()
            .starts_with("digest mismatch: expected sha256:"));
        assert!(!s.contains(&wrong));
        assert!(!s.contains(&Digest::of(b"abc")));
        assert_eq!(ingest_files(&s), 0, "temp file dropped");

        let mut w = s.writer().unwrap();
        w.write_all(b"abc").unwrap();
        let good = Digest::of(b"abc");
        assert_eq!(w.commit(Some(&good)).unwrap(), (good, 3));
    }

    #[test]
    fn dropped_writer_leaves_nothing() {
        let (_d, s) = store();
        let mut w = s.writer().unwrap();
        w.write_all(b"partial").unwrap();
        drop(w);
        assert_eq!(ingest_files(&s), 0);
        assert!(s.list().unwrap().is_empty());
    }

    #[test]
    fn committing_existing_content_keeps_it() {
        let (_d, s) = store();
        let (dg, _) = s.put_bytes(b"same").unwrap();
        let ino_before = file_id(&s.path(&dg));
        let (dg2, size) = s.put_bytes(b"same").unwrap();
        assert_eq!((dg2, size), (dg, 4));
        assert_eq!(file_id(&s.path(&dg)), ino_before, "existing blob kept");
        assert_eq!(ingest_files(&s), 0);
    }

    #[cfg(unix)]
    fn file_id(p: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(p).unwrap().ino()
    }

    #[cfg(not(unix))]
    fn file_id(_: &Path) -> u64 {
        0
    }

    #[test]
    fn truncated_existing_blob_is_replaced() {
        let (_d, s) = store();
        let (dg, _) = s.put_bytes(b"complete content").unwrap();
        make_writable(&s.path(&dg));
        fs::write(s.path(&dg), b"compl").unwrap();
        assert!(!s.verify(&dg).unwrap());
        s.put_bytes(b"complete content").unwrap();
        assert!(s.verify(&dg).unwrap());
    }

    fn make_writable(p: &Path) {
        let mut perm = fs::metadata(p).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perm.set_readonly(false);
        fs::set_permissions(p, perm).unwrap();
    }

    #[test]
    fn verify_detects_corruption() {
        let (_d, s) = store();
        let (dg, _) = s.put_bytes(b"precious bytes").unwrap();
        assert!(s.verify(&dg).unwrap());
        make_writable(&s.path(&dg));
        fs::write(s.path(&dg), b"precious bytez").unwrap();
        assert!(!s.verify(&dg).unwrap());
    }

    #[test]
    fn missing_blobs() {
        let (_d, s) = store();
        let dg = Digest::of(b"nope");
        assert!(!s.contains(&dg));
        let e = s.open_blob(&dg).unwrap_err();
        assert!(matches!(e, BlobError::NotFound { .. }));
        assert!(e.to_string().contains(&dg.to_string()), "{e}");
        assert!(matches!(s.size(&dg), Err(BlobError::NotFound { .. })));
        assert!(matches!(s.verify(&dg), Err(BlobError::NotFound { .. })));
        assert!(!s.delete(&dg).unwrap());
    }

    #[test]
    fn delete_removes() {
        let (_d, s) = store();
        let (dg, _) = s.put_bytes(b"gone").unwrap();
        assert!(s.delete(&dg).unwrap());
        assert!(!s.contains(&dg));
        assert!(s.list().unwrap().is_empty());
    }

    #[test]
    fn concurrent_writers_of_same_content_all_succeed() {
        let (_d, s) = store();
        let s = Arc::new(s);
        let data: Arc<Vec<u8>> = Arc::new((0..1_000_000u32).map(|i| (i % 97) as u8).collect());
        let n = 8;
        let barrier = Arc::new(Barrier::new(n));
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let (s, data, barrier) = (s.clone(), data.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let mut w = s.writer().unwrap();
                    barrier.wait();
                    for chunk in data.chunks(4096) {
                        w.write_all(chunk).unwrap();
                    }
                    w.commit(Some(&Digest::of(&data)))
                })
            })
            .collect();
        let want = Digest::of(&data);
        for h in handles {
            let (dg, size) = h.join().unwrap().unwrap();
            assert_eq!((dg, size), (want, data.len() as u64));
        }
        assert!(s.verify(&want).unwrap());
        assert_eq!(s.list().unwrap(), vec![want]);
        assert_eq!(ingest_files(&s), 0);
    }

    #[test]
    fn open_sweeps_only_old_temp_files() {
        let (d, s) = store();
        let ingest = s.root().join("ingest");
        let old = ingest.join("ingest-old");
        let fresh = ingest.join("ingest-fresh");
        fs::write(&old, b"left by a crash").unwrap();
        fs::write(&fresh, b"in progress").unwrap();
        let two_hours_ago = SystemTime::now() - Duration::from_secs(2 * 60 * 60);
        File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(two_hours_ago)
            .unwrap();
        drop(s);
        let s = BlobStore::open(d.path()).unwrap();
        assert!(!old.exists());
        assert!(fresh.exists());
        assert_eq!(s.sweep_ingest(Duration::ZERO).unwrap(), 1);
        assert!(!fresh.exists());
    }
}
