//! The engine's local cache. For now: the content-addressed blob store that
//! holds layers, configs and manifests, addressed by sha256 [`Digest`].

pub mod blobs;
pub mod digest;

pub use blobs::{BlobError, BlobStore, BlobWriter, INGEST_MAX_AGE};
pub use digest::{Digest, DigestError, SHA256};
