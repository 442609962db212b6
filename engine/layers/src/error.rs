use std::io;
use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors from writing, diffing and applying layers.
///
/// Paths inside archives are shown lossily (non-UTF-8 bytes replaced).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A filesystem operation on a host path failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Reading the layer stream or writing the output stream failed.
    #[error("{op}: {source}")]
    Stream {
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// The tar stream is malformed.
    #[error("invalid tar archive: {0}")]
    InvalidArchive(String),
    /// An entry uses a tar type this crate does not support.
    #[error("unsupported tar entry type {typeflag:?} for {path}")]
    UnsupportedEntry { typeflag: char, path: String },
    /// An entry name is unusable (contains NUL, is empty where a name is needed, ...).
    #[error("invalid entry path {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    /// An entry (or hardlink target) would land outside the root.
    #[error("entry {path:?} escapes the root directory")]
    PathEscape { path: String },
    /// A whiteout entry names nothing that can be deleted.
    #[error("invalid whiteout {path:?}")]
    InvalidWhiteout { path: String },
    /// A hardlink entry cannot be created.
    #[error("invalid hardlink {path:?} -> {target:?}: {reason}")]
    InvalidHardlink {
        path: String,
        target: String,
        reason: &'static str,
    },
    /// A component on the way to an entry is not a directory.
    #[error("parent of entry {path:?} is not a directory")]
    NotADirectory { path: String },
    /// Resolving an entry's parent hit too many symlinks.
    #[error("too many levels of symbolic links resolving {path:?}")]
    SymlinkLoop { path: String },
    /// An overlayfs upper dir uses a feature that cannot be expressed in a layer.
    #[error("unsupported overlayfs xattr {name} on {}", path.display())]
    UnsupportedOverlay { path: PathBuf, name: String },
    /// A file changed while it was being archived.
    #[error("file {} changed while it was being archived", path.display())]
    FileChanged { path: PathBuf },
    /// A value does not fit the tar format.
    #[error("cannot archive {}: {reason}", path.display())]
    Unrepresentable { path: PathBuf, reason: String },
    /// An expected digest string is malformed or uses an unknown algorithm.
    #[error("invalid digest {0:?}")]
    InvalidDigest(String),
    /// The compressed blob does not hash to the expected digest.
    #[error("layer digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: String, actual: String },
    /// The uncompressed tar does not hash to the expected diff id.
    #[error("layer diff id mismatch: expected {expected}, got {actual}")]
    DiffIdMismatch { expected: String, actual: String },
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn stream(op: &'static str, source: io::Error) -> Self {
        Error::Stream { op, source }
    }
}

/// Lossy display form of raw path bytes.
pub(crate) fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
