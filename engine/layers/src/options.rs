//! What a layer is written with ([`LayerOptions`]) and what comes out
//! ([`LayerDigests`]): shared by the writer (`write.rs`) and the tar
//! emitter it drives (`walk.rs`).

use crate::compress::Compression;

/// How [`write_layer`](crate::write_layer) builds a layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerOptions {
    /// `SOURCE_DATE_EPOCH`: when set, every mtime is clamped to
    /// `min(mtime, epoch)` and whiteouts get this mtime (BuildKit's
    /// behaviour); without it whiteouts get mtime 0. mtimes are always
    /// truncated to whole seconds and no atime/ctime is written.
    pub source_date_epoch: Option<i64>,
    /// Compression of the output stream.
    pub compression: Compression,
    /// Treat the directory as an overlayfs upper dir: 0/0 character devices
    /// become `.wh.NAME` whiteouts and opaque directories get a
    /// `.wh..wh..opq` entry. Redirect and metacopy directories are refused.
    pub overlay_upper: bool,
}

/// Digests of a written layer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LayerDigests {
    /// `sha256:<hex>` of the compressed blob (the descriptor digest).
    pub digest: String,
    /// `sha256:<hex>` of the uncompressed tar (the image config diff id).
    pub diff_id: String,
    /// Size of the compressed blob in bytes.
    pub size: u64,
}
