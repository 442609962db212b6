//! The engine's state directory: the cache store (blobs, snapshots, index,
//! locks, leases; see `engine_cache::store`), cache mounts and this
//! process's scratch space, all under one root (the cache dir).
//!
//! ```text
//! <root>/blobs/sha256/<hex>      content store
//! <root>/snapshots/<key>/fs/     a layer's tree (overlay-upper form)
//! <root>/snapshots/<key>/done    present once the snapshot is complete
//! <root>/mounts/<id>/            RUN --mount=type=cache directories
//! <root>/tmp/<session>/          this process's work dirs and mount points;
//!                                swept when the process is gone
//! ```

use std::io;
use std::path::{Path, PathBuf};

use engine_cache::{BlobStore, CacheError, CacheStore, GcReport};

#[derive(Debug)]
pub struct StateDir {
    pub root: PathBuf,
    pub blobs: BlobStore,
    pub store: CacheStore,
}

impl StateDir {
    pub fn open(root: &Path) -> io::Result<Self> {
        let store = CacheStore::open(root).map_err(io::Error::other)?;
        Ok(StateDir {
            root: store.root().to_path_buf(),
            blobs: store.blobs().clone(),
            store,
        })
    }

    pub fn snapshot_dir(&self, key: &str) -> PathBuf {
        self.store.snapshot_dir(key)
    }

    /// The directory of a cache mount, leased for this build (collection
    /// leaves it alone while the build runs).
    pub fn cache_mount_dir(&self, id: &str) -> PathBuf {
        // Ids come from Dockerfiles: hash them so `../..` cannot escape.
        let h = blake3::hash(id.as_bytes()).to_hex();
        let h = &h[..32];
        self.store
            .use_mount(h)
            .unwrap_or_else(|_| self.store.mount_dir(h))
    }

    /// This process's scratch directory.
    pub fn tmp(&self) -> &Path {
        self.store.tmp_dir()
    }

    /// A fresh private directory for one step's scratch space.
    pub fn tempdir(&self, prefix: &str) -> io::Result<tempfile::TempDir> {
        tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(self.tmp())
    }

    /// End of a build: record what it used and made in the index, then
    /// collect least recently used entries down to `limit` (if given and
    /// exceeded). Nothing this build used is collected.
    pub fn finish(&self, limit: Option<u64>) -> Result<GcReport, CacheError> {
        self.store.finish(limit)
    }
}
