//! What the exporters take: an image (config + layer blobs in a
//! [`BlobStore`](engine_cache::BlobStore)) and options; and what they return.

use std::collections::BTreeMap;

use engine_ir::Platform;
use engine_oci::{Descriptor, Digest, LayerMediaType};
use oci_spec::image::ImageConfiguration;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::json;

/// One layer of an image: a blob in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerBlob {
    /// Digest of the blob as stored (compressed).
    pub digest: Digest,
    /// Digest of the uncompressed tar; must equal the config's
    /// `rootfs.diff_ids` entry for this layer.
    pub diff_id: Digest,
    /// Size of the blob as stored, in bytes.
    pub size: u64,
    pub media_type: LayerMediaType,
}

/// The image config, in one of three forms.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigSource {
    /// Serialised as canonical JSON (keys sorted), so the digest is stable
    /// even though `oci_spec` keeps labels etc. in `HashMap`s.
    Oci(Box<ImageConfiguration>),
    /// Arbitrary JSON (e.g. with Docker's `Healthcheck`, `Shell`, `OnBuild`,
    /// which `oci_spec` does not model); serialised as canonical JSON.
    Json(Value),
    /// Exact bytes, written as they are (e.g. re-exporting an imported
    /// image without changing its config digest).
    Raw(Vec<u8>),
}

/// An image to export: its config, its layers (blobs in the store passed to
/// the exporter), manifest annotations and platform.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageToExport {
    pub config: ConfigSource,
    pub layers: Vec<LayerBlob>,
    /// Annotations of the image manifest.
    pub annotations: BTreeMap<String, String>,
    /// Must agree with the config's `os`/`architecture`/`variant`; written
    /// as the manifest descriptor's `platform`.
    pub platform: Platform,
}

impl ImageToExport {
    pub fn new(config: ImageConfiguration, layers: Vec<LayerBlob>, platform: Platform) -> Self {
        ImageToExport {
            config: ConfigSource::Oci(Box::new(config)),
            layers,
            annotations: BTreeMap::new(),
            platform,
        }
    }

    /// The exact config blob the exporters write.
    pub fn config_bytes(&self) -> Result<Vec<u8>> {
        let invalid = |e: serde_json::Error| Error::InvalidImage(format!("config: {e}"));
        match &self.config {
            ConfigSource::Oci(c) => json::to_canonical_vec(c.as_ref()).map_err(invalid),
            ConfigSource::Json(v) => json::value_to_canonical_vec(v).map_err(invalid),
            ConfigSource::Raw(b) => Ok(b.clone()),
        }
    }
}

/// Options shared by the exporters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportOptions {
    /// Image names (`foo`, `foo:v1`, `registry.example.com/a/b:tag`),
    /// normalised as Docker does. Each becomes an `index.json` entry with
    /// `io.containerd.image.name` = the full name and
    /// `org.opencontainers.image.ref.name` = the tag (as BuildKit writes
    /// them), and for docker archives a `RepoTags` entry.
    pub names: Vec<String>,
    /// Timestamp for tar entries and the `org.opencontainers.image.created`
    /// annotation in `index.json`. `None`: mtime 0 and no annotation.
    pub source_date_epoch: Option<u64>,
    /// Docker archive only: `Some(true)` forces OCI media types, `None`
    /// uses Docker media types unless a layer is zstd (BuildKit's default).
    pub oci_mediatypes: Option<bool>,
    /// Annotations of the image index (`--annotation index:KEY=VALUE`).
    /// When there are any, a single image is exported under an OCI image
    /// index too (the root is then that index), so that they have a
    /// document to live in.
    pub index_annotations: BTreeMap<String, String>,
}

impl ExportOptions {
    pub fn with_names<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ExportOptions {
            names: names.into_iter().map(Into::into).collect(),
            ..Default::default()
        }
    }

    /// `SOURCE_DATE_EPOCH` from the environment, if set to an integer.
    pub fn source_date_epoch_from_env() -> Option<u64> {
        std::env::var("SOURCE_DATE_EPOCH").ok()?.trim().parse().ok()
    }
}

/// One exported image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedImage {
    pub manifest: Descriptor,
    /// The config descriptor; its digest is the image ID.
    pub config: Descriptor,
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportResult {
    /// What `index.json` points at (without the name annotations): the
    /// manifest for one image, an image index for several.
    pub root: Descriptor,
    pub images: Vec<ExportedImage>,
}

impl ExportResult {
    /// The digest of the manifest (or of the image index, for several
    /// images): what a registry would call the image digest.
    pub fn manifest_digest(&self) -> Digest {
        self.root.digest
    }

    /// The config digest (the image ID) when exactly one image was exported.
    pub fn config_digest(&self) -> Option<Digest> {
        match self.images.as_slice() {
            [one] => Some(one.config.digest),
            _ => None,
        }
    }
}
