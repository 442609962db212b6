//! OCI layer tarballs: write them deterministically from directory trees
//! (plain trees, overlayfs upper dirs, or a copy-based diff of two trees),
//! and apply them onto directories without ever touching anything outside
//! the target root.
//!
//! Modules:
//! - [`mod@write`]: [`write_layer`] streams a directory into a (compressed) layer
//!   and returns its digests.
//! - [`mod@diff`]: [`write_diff_layer`] is the copy-based fallback when overlayfs
//!   is unavailable (containerd's "double walking" differ semantics).
//! - [`mod@apply`]: [`apply_layer`] / [`apply_layer_verified`] unpack a layer
//!   safely (all lookups resolved inside the root), handling whiteouts.
//! - [`mod@flatten`]: [`flatten()`] lists a tree in a comparable form for tests.
//!
//! Nothing in this crate panics on malformed layers: they come from
//! untrusted images and every problem is reported as an [`Error`].

mod compress;
mod digest;
mod error;
mod fsutil;
mod options;
pub mod pipe;
mod resolve;
mod tar_read;
mod tar_write;
mod walk;
mod xattrs;

pub mod apply;
pub mod diff;
pub mod flatten;
pub mod write;

pub use apply::{
    apply_layer, apply_layer_verified, apply_layer_with, ApplyOptions, ApplyStats, ResolveMode,
    WhiteoutFormat,
};
pub use compress::{detect_compression, Compression};
pub use diff::write_diff_layer;
pub use error::{Error, Result};
pub use flatten::{flatten, FileKind, FlatEntry};
pub use write::{write_layer, write_layer_unhashed, LayerDigests, LayerOptions};
pub use xattrs::keep_xattr;

/// Prefix of a whiteout entry: `.wh.NAME` deletes `NAME` from lower layers.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// Prefix of whiteout metadata entries (`.wh..wh.*`).
pub const WHITEOUT_META_PREFIX: &str = ".wh..wh.";
/// Marker entry that makes its directory opaque (hides lower contents).
pub const WHITEOUT_OPAQUE: &str = ".wh..wh..opq";
