//! The OCI image layout: where its files and blobs are (no I/O here).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// The file that marks a directory as a layout.
pub const LAYOUT_FILE: &str = "oci-layout";
/// The `imageLayoutVersion` the engine writes.
pub const LAYOUT_VERSION: &str = "1.0.0";
/// The layout's root image index.
pub const INDEX_FILE: &str = "index.json";

/// The content of the `oci-layout` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayoutFile {
    pub image_layout_version: String,
}

impl LayoutFile {
    /// `{"imageLayoutVersion":"1.0.0"}`: the bytes of the `oci-layout`
    /// file the engine writes.
    pub fn current_json() -> Vec<u8> {
        serde_json::to_vec(&LayoutFile {
            image_layout_version: LAYOUT_VERSION.to_string(),
        })
        .expect("a struct of one string serialises")
    }
}

/// `<root>/blobs/sha256`: where a layout keeps its blobs.
pub fn blobs_dir(root: &Path) -> PathBuf {
    root.join("blobs").join(crate::digest::SHA256)
}

/// `<root>/blobs/sha256/<hex>`: where a layout keeps the blob `digest`.
/// Built only from a [`Digest`], so it never leaves `<root>/blobs/sha256`.
pub fn blob_path(root: &Path, digest: &Digest) -> PathBuf {
    blobs_dir(root).join(digest.hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_file_and_blob_paths() {
        assert_eq!(
            LayoutFile::current_json(),
            br#"{"imageLayoutVersion":"1.0.0"}"#
        );
        let d = Digest::of(b"");
        assert_eq!(blobs_dir(Path::new("/l")), Path::new("/l/blobs/sha256"));
        assert_eq!(
            blob_path(Path::new("/l"), &d),
            Path::new("/l/blobs/sha256").join(d.hex())
        );
    }
}
