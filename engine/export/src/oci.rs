//! The OCI (and Docker schema 2) documents the exporters write and the
//! importer reads: descriptors, manifests, indexes.
//!
//! These are our own types rather than `oci_spec`'s because (1) maps are
//! `BTreeMap`, so serialising them is deterministic and digests are stable,
//! and (2) digests are [`Digest`]s, so a descriptor naming a non-sha256 or
//! malformed digest (`../../x`) fails to parse and can never become a path.

use std::collections::BTreeMap;

use engine_cache::Digest;
use engine_ir::Platform;
use serde::{Deserialize, Serialize};

pub const OCI_LAYOUT_FILE: &str = "oci-layout";
pub const OCI_LAYOUT_VERSION: &str = "1.0.0";
pub const INDEX_FILE: &str = "index.json";

pub const MEDIA_TYPE_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_TYPE_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_TYPE_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MEDIA_TYPE_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MEDIA_TYPE_OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const MEDIA_TYPE_OCI_LAYER_ND: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
pub const MEDIA_TYPE_OCI_LAYER_ND_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
pub const MEDIA_TYPE_OCI_LAYER_ND_ZSTD: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";

pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_TYPE_DOCKER_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MEDIA_TYPE_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MEDIA_TYPE_DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const MEDIA_TYPE_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const MEDIA_TYPE_DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
pub const MEDIA_TYPE_DOCKER_FOREIGN_LAYER_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// `org.opencontainers.image.ref.name`: the tag of an entry in `index.json`.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// `io.containerd.image.name`: the full image name, as BuildKit and
/// containerd write it next to the ref name.
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";

pub fn is_manifest_type(mt: &str) -> bool {
    mt == MEDIA_TYPE_OCI_MANIFEST || mt == MEDIA_TYPE_DOCKER_MANIFEST
}

pub fn is_index_type(mt: &str) -> bool {
    mt == MEDIA_TYPE_OCI_INDEX || mt == MEDIA_TYPE_DOCKER_LIST
}

pub fn is_config_type(mt: &str) -> bool {
    mt == MEDIA_TYPE_OCI_CONFIG || mt == MEDIA_TYPE_DOCKER_CONFIG
}

/// Media types of filesystem layers this engine can unpack.
pub fn is_layer_type(mt: &str) -> bool {
    matches!(
        mt,
        MEDIA_TYPE_OCI_LAYER
            | MEDIA_TYPE_OCI_LAYER_GZIP
            | MEDIA_TYPE_OCI_LAYER_ZSTD
            | MEDIA_TYPE_OCI_LAYER_ND
            | MEDIA_TYPE_OCI_LAYER_ND_GZIP
            | MEDIA_TYPE_OCI_LAYER_ND_ZSTD
            | MEDIA_TYPE_DOCKER_LAYER
            | MEDIA_TYPE_DOCKER_LAYER_GZIP
            | MEDIA_TYPE_DOCKER_LAYER_ZSTD
            | MEDIA_TYPE_DOCKER_FOREIGN_LAYER_GZIP
    )
}

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<DescriptorPlatform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    pub fn new(media_type: impl Into<String>, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
            platform: None,
            artifact_type: None,
        }
    }

    /// The `org.opencontainers.image.ref.name` annotation.
    pub fn ref_name(&self) -> Option<&str> {
        self.annotations
            .get(ANNOTATION_REF_NAME)
            .map(String::as_str)
    }
}

/// The `platform` object of a descriptor in an index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DescriptorPlatform {
    pub architecture: String,
    pub os: String,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl DescriptorPlatform {
    /// Normalised (`x86_64` → `amd64`, `arm64/v8` → `arm64`, …).
    pub fn to_platform(&self) -> Platform {
        Platform::new(&self.os, &self.architecture, self.variant.as_deref())
    }
}

impl From<&Platform> for DescriptorPlatform {
    fn from(p: &Platform) -> Self {
        DescriptorPlatform {
            architecture: p.architecture.clone(),
            os: p.os.clone(),
            os_version: None,
            os_features: Vec::new(),
            variant: p.variant.clone(),
        }
    }
}

/// An image manifest (OCI, or Docker schema 2: the same shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image index (OCI, or a Docker manifest list: the same shape). Also
/// the format of a layout's `index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Index {
    pub fn new(media_type: Option<&str>, manifests: Vec<Descriptor>) -> Self {
        Index {
            schema_version: 2,
            media_type: media_type.map(str::to_string),
            artifact_type: None,
            manifests,
            subject: None,
            annotations: BTreeMap::new(),
        }
    }
}

/// The `oci-layout` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OciLayoutFile {
    pub image_layout_version: String,
}
