//! The engine's local cache: the content-addressed blob store, the
//! persistent index of build results over it, and the machinery that lets
//! several processes share one cache directory safely (locks, leases,
//! collection).
//!
//! ```text
//! <root>/blobs/sha256/<hex>        blobs (the truth)              blobs.rs
//! <root>/ingest/                   blob temp files                blobs.rs
//! <root>/snapshots/<key>/          unpacked step results          store.rs
//! <root>/mounts/<id>/              RUN --mount=type=cache dirs    store.rs
//! <root>/index-v1/                 sled: key → record (derived)   index.rs
//! <root>/index.lock                guards opening the index       index.rs
//! <root>/gc.lock                   shared: using; exclusive: GC   store.rs
//! <root>/locks/<key>.lock          one builder per key            store.rs
//! <root>/leases/<id>.{lock,lease}  what live builds use           lease.rs
//! <root>/tmp/<id>/                 a live build's scratch         lease.rs
//! <root>/trash/                    being deleted                  gc.rs
//! <root>/memo/files-v1             file hash memo                 memo.rs
//! ```

pub mod blobs;
pub mod durable;
mod fsflags;
pub mod gc;
pub mod index;
pub mod lease;
pub mod lock;
pub mod memo;
pub mod record;
pub mod store;
pub mod sweep;
pub mod units;

use std::io;
use std::path::PathBuf;

pub use blobs::{BlobError, BlobStore, BlobWriter, INGEST_MAX_AGE};
/// The blob store is keyed by the OCI vocabulary's digests.
pub use engine_oci::{Digest, DigestError, SHA256};
pub use gc::{GcReport, Policy, Usage, UsageRow};
pub use lease::{LeaseItem, Session};
pub use memo::{FileHashMemo, FileStamp};
pub use record::{Kind, LayerRef, Record, StepLayer};
pub use store::{CacheStore, KeyLock, UseGuard};

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error("cache index: {0}")]
    Index(String),
    #[error("invalid cache key `{0}`")]
    InvalidKey(String),
}

impl CacheError {
    pub(crate) fn io(
        op: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(io::Error) -> CacheError + use<> {
        let path = path.to_path_buf();
        move |source| CacheError::Io { op, path, source }
    }
}

/// Whether `s` can be a cache key (or a hashed cache-mount id): 1 to 128
/// lowercase hex characters. Keys become path components, so nothing else
/// is accepted, whoever wrote the record or lease that holds it.
pub fn valid_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
