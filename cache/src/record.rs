//! What the index remembers about one cache key: the result of one build
//! step (or one imported base image, or one cache mount). The format is
//! documented in `specs/cache-format.md`; it is also the unit that cache
//! export and import will move between machines, so it names blobs by
//! digest and never holds a machine path.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use engine_oci::Digest;

/// The record format version, stored in every record.
pub const RECORD_VERSION: u32 = 1;

/// What produced a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A RUN step's filesystem diff.
    Exec,
    /// A COPY/ADD/WORKDIR (file op) step's filesystem diff.
    File,
    /// A base image imported from an OCI layout, unpacked.
    Source,
    /// A `RUN --mount=type=cache` directory.
    CacheMount,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Exec => "exec",
            Kind::File => "file",
            Kind::Source => "source",
            Kind::CacheMount => "cache-mount",
        }
    }
}

/// One layer blob: its digest (of the blob as stored, possibly
/// compressed), its diff id (of the uncompressed tar), size and media type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRef {
    pub digest: Digest,
    pub diff_id: Digest,
    pub size: u64,
    pub media_type: String,
}

/// The layer a step exports as under one set of layer settings
/// (compression, SOURCE_DATE_EPOCH): a blob, or nothing when the step
/// changed no file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum StepLayer {
    Empty,
    Blob(LayerRef),
}

/// The value stored in the index under a cache key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    pub key: String,
    pub kind: Kind,
    /// The step's name when it was last used, for humans (`du --verbose`).
    #[serde(default)]
    pub description: String,
    /// Unix seconds.
    pub created: u64,
    /// Unix seconds; what LRU collection orders by.
    pub last_used: u64,
    /// Bytes on disk of the unpacked snapshot (or cache mount directory),
    /// when one exists on this machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_size: Option<u64>,
    /// Step layers by settings tag (see `layer_tag` in the solver).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub layers: BTreeMap<String, StepLayer>,
    /// For a base image: its layers, bottom first, and its config blob.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub base_layers: Vec<LayerRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_config: Option<Digest>,
}

impl Record {
    pub fn new(key: &str, kind: Kind, now: u64) -> Self {
        Record {
            version: RECORD_VERSION,
            key: key.to_string(),
            kind,
            description: String::new(),
            created: now,
            last_used: now,
            snapshot_size: None,
            layers: BTreeMap::new(),
            base_layers: Vec::new(),
            base_config: None,
        }
    }

    /// Every blob this record refers to.
    pub fn blobs(&self) -> impl Iterator<Item = (&Digest, u64)> + '_ {
        let layers = self.layers.values().filter_map(|l| match l {
            StepLayer::Blob(b) => Some((&b.digest, b.size)),
            StepLayer::Empty => None,
        });
        let base = self.base_layers.iter().map(|b| (&b.digest, b.size));
        layers
            .chain(base)
            .chain(self.base_config.iter().map(|d| (d, 0)))
    }

    /// Fold what `other` knows (a newer use of the same key) into `self`.
    pub fn merge(&mut self, other: &Record) {
        self.last_used = self.last_used.max(other.last_used);
        self.created = self.created.min(other.created);
        if !other.description.is_empty() {
            self.description = other.description.clone();
        }
        if other.snapshot_size.is_some() {
            self.snapshot_size = other.snapshot_size;
        }
        for (k, v) in &other.layers {
            self.layers.insert(k.clone(), v.clone());
        }
        if !other.base_layers.is_empty() {
            self.base_layers = other.base_layers.clone();
        }
        if other.base_config.is_some() {
            self.base_config = other.base_config;
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("records serialize")
    }

    /// `None` for anything that is not a record of this version: an index
    /// entry that cannot be read is treated as absent, never as an error.
    pub fn from_json(bytes: &[u8]) -> Option<Record> {
        serde_json::from_slice::<Record>(bytes)
            .ok()
            .filter(|r| r.version == RECORD_VERSION && crate::valid_key(&r.key))
    }
}

/// `snapshots/<key>/meta.json`: enough to rebuild the index record.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SnapshotMeta {
    pub version: u32,
    pub key: String,
    pub kind: Kind,
    #[serde(default)]
    pub description: String,
    pub created: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub base_layers: Vec<LayerRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_config: Option<Digest>,
}

/// `snapshots/<key>/meta.json` of the snapshot directory `dir`, if readable.
pub(crate) fn read_meta(dir: &std::path::Path) -> Option<SnapshotMeta> {
    let bytes = std::fs::read(dir.join("meta.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_reject_garbage() {
        let mut r = Record::new(&"ab".repeat(32), Kind::Exec, 10);
        r.layers.insert(
            "gzip-none".into(),
            StepLayer::Blob(LayerRef {
                digest: Digest::of(b"blob"),
                diff_id: Digest::of(b"tar"),
                size: 4,
                media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            }),
        );
        r.layers.insert("zstd-none".into(), StepLayer::Empty);
        let back = Record::from_json(&r.to_json()).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.blobs().count(), 1);
        assert!(Record::from_json(b"{").is_none());
        let mut bad = r.clone();
        bad.key = "../x".into();
        assert!(Record::from_json(&bad.to_json()).is_none());
        bad.key = r.key.clone();
        bad.version = 99;
        assert!(Record::from_json(&bad.to_json()).is_none());
    }

    #[test]
    fn merge_keeps_newest_use_and_union_of_layers() {
        let k = "cd".repeat(32);
        let mut a = Record::new(&k, Kind::File, 5);
        a.layers.insert("x".into(), StepLayer::Empty);
        let mut b = Record::new(&k, Kind::File, 9);
        b.snapshot_size = Some(7);
        b.layers.insert("y".into(), StepLayer::Empty);
        a.merge(&b);
        assert_eq!((a.created, a.last_used, a.snapshot_size), (5, 9, Some(7)));
        assert_eq!(a.layers.len(), 2);
    }
}
