use std::io;
use std::path::PathBuf;

use engine_cache::{BlobError, Digest};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Blob(#[from] BlobError),

    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Writing to the caller's output stream failed (or reading a blob
    /// while streaming it into the archive).
    #[error("writing {entry} to the archive: {source}")]
    Write {
        entry: String,
        #[source]
        source: io::Error,
    },

    #[error("invalid image name `{name}`: {reason}")]
    InvalidName { name: String, reason: &'static str },

    #[error("invalid image to export: {0}")]
    InvalidImage(String),

    #[error("blob {digest} at {}: expected {expected} bytes, found {actual}", path.display())]
    SizeMismatch {
        digest: Digest,
        path: PathBuf,
        expected: u64,
        actual: u64,
    },

    #[error("blob {digest} at {}: content does not match its digest (hashes to {actual})", path.display())]
    DigestMismatch {
        digest: Digest,
        path: PathBuf,
        actual: Digest,
    },

    #[error("{} is not an oci layout: {reason}", path.display())]
    NotALayout { path: PathBuf, reason: String },

    #[error("invalid {what} at {}: {reason}", path.display())]
    InvalidDocument {
        what: String,
        path: PathBuf,
        reason: String,
    },

    #[error("blob {digest} not found in oci layout {}", layout.display())]
    MissingBlob { digest: Digest, layout: PathBuf },

    #[error("blob {digest} resolves to {}, outside oci layout {}", target.display(), layout.display())]
    PathEscape {
        digest: Digest,
        target: PathBuf,
        layout: PathBuf,
    },

    #[error("{what} {digest} is too large: {size} bytes (limit {limit})")]
    TooLarge {
        what: &'static str,
        digest: Digest,
        size: u64,
        limit: u64,
    },

    #[error("unsupported media type `{media_type}` for {what} {digest}")]
    UnsupportedMediaType {
        what: &'static str,
        media_type: String,
        digest: Digest,
    },

    #[error("no image {reference} in oci layout {}{}", layout.display(), available_suffix(available))]
    NoSuchImage {
        reference: String,
        layout: PathBuf,
        available: Vec<String>,
    },

    #[error("oci layout {} holds several images ({}); choose one with :TAG or @DIGEST", layout.display(), available.join(", "))]
    AmbiguousImage {
        layout: PathBuf,
        available: Vec<String>,
    },

    #[error(
        "no manifest for platform {platform} in {source_desc}{}",
        available_suffix(available)
    )]
    NoMatchingPlatform {
        platform: String,
        source_desc: String,
        available: Vec<String>,
    },

    #[error("image {digest} is for platform {found}, not {wanted}")]
    PlatformMismatch {
        digest: Digest,
        found: String,
        wanted: String,
    },

    #[error("image index nesting deeper than {0} levels")]
    TooDeep(usize),

    #[error("invalid oci layout reference `{input}`: {reason}")]
    InvalidReference { input: String, reason: String },
}

fn available_suffix(available: &[String]) -> String {
    if available.is_empty() {
        String::new()
    } else {
        format!(" (available: {})", available.join(", "))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { op, path, source }
}
