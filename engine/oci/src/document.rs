//! The OCI (and Docker schema 2) documents: descriptors, image manifests,
//! image indexes.
//!
//! These are the engine's own types rather than `oci_spec`'s because (1)
//! maps are `BTreeMap`s and fields serialise in declaration order, so the
//! same document always serialises to the same bytes (and digest), and (2)
//! digests are [`Digest`]s, so a descriptor naming a non-sha256 or
//! malformed digest (`../../x`) fails to parse and can never become a path.

use std::collections::BTreeMap;

use engine_ir::Platform;
use serde::{Deserialize, Serialize};

use crate::annotation;
use crate::digest::Digest;

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
            .get(annotation::REF_NAME)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media_type;

    #[test]
    fn serialises_in_a_fixed_order_and_skips_empty_fields() {
        let config = Descriptor::new(media_type::OCI_CONFIG, Digest::of(b"{}"), 2);
        let mut layer = Descriptor::new(media_type::OCI_LAYER_GZIP, Digest::of(b"l"), 1);
        layer.annotations.insert("z".into(), "1".into());
        layer.annotations.insert("a".into(), "2".into());
        let m = Manifest {
            schema_version: 2,
            media_type: Some(media_type::OCI_MANIFEST.into()),
            artifact_type: None,
            config,
            layers: vec![layer],
            subject: None,
            annotations: BTreeMap::new(),
        };
        let json = String::from_utf8(serde_json::to_vec(&m).unwrap()).unwrap();
        let expected = format!(
            concat!(
                r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":2}},"#,
                r#""layers":[{{"mediaType":"{}","digest":"{}","size":1,"annotations":{{"a":"2","z":"1"}}}}]}}"#
            ),
            media_type::OCI_MANIFEST,
            media_type::OCI_CONFIG,
            Digest::of(b"{}"),
            media_type::OCI_LAYER_GZIP,
            Digest::of(b"l"),
        );
        assert_eq!(json, expected);
        assert_eq!(serde_json::from_str::<Manifest>(&json).unwrap(), m);
    }

    #[test]
    fn a_malformed_digest_is_not_a_descriptor() {
        let bad = r#"{"mediaType":"m","digest":"sha256:../../etc/passwd","size":1}"#;
        assert!(serde_json::from_str::<Descriptor>(bad).is_err());
    }

    #[test]
    fn descriptor_platforms_normalise() {
        let p: DescriptorPlatform = serde_json::from_str(
            r#"{"architecture":"aarch64","os":"linux","variant":"v8","os.features":["x"]}"#,
        )
        .unwrap();
        assert_eq!(p.to_platform(), Platform::parse("linux/arm64").unwrap());
        assert_eq!(p.os_features, ["x"]);
    }
}
