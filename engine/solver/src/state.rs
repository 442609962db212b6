//! The engine's state directory: the blob store, unpacked snapshots, cache
//! mounts and scratch space, all under one root (the cache dir).
//!
//! ```text
//! <root>/blobs/sha256/<hex>      content store (engine-cache)
//! <root>/snapshots/<key>/fs/     a layer's tree (overlay-upper form)
//! <root>/snapshots/<key>/done    present once the snapshot is complete
//! <root>/mounts/<id>/            RUN --mount=type=cache directories
//! <root>/tmp/                    work dirs, mount points; swept on start
//! ```

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use engine_cache::BlobStore;

#[derive(Debug)]
pub struct StateDir {
    pub root: PathBuf,
    pub blobs: BlobStore,
}

impl StateDir {
    pub fn open(root: &Path) -> io::Result<Self> {
        for d in ["snapshots", "mounts", "tmp"] {
            fs::create_dir_all(root.join(d))?;
        }
        let tag = root.join("CACHEDIR.TAG");
        if !tag.exists() {
            let _ = fs::write(
                &tag,
                "Signature: 8a477f597d28d172789f06886806bc55\n# engine build cache\n",
            );
        }
        let blobs = BlobStore::open(root).map_err(io::Error::other)?;
        Ok(StateDir {
            root: root.to_path_buf(),
            blobs,
        })
    }

    pub fn snapshot_dir(&self, key: &str) -> PathBuf {
        self.root.join("snapshots").join(key)
    }

    pub fn cache_mount_dir(&self, id: &str) -> PathBuf {
        // Ids come from Dockerfiles: hash them so `../..` cannot escape.
        let h = blake3::hash(id.as_bytes()).to_hex();
        self.root.join("mounts").join(&h[..32])
    }

    /// A fresh private directory for one step's scratch space.
    pub fn tempdir(&self, prefix: &str) -> io::Result<tempfile::TempDir> {
        tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(self.root.join("tmp"))
    }
}
