//! Incremental COPY: a COPY whose key changed (one file of a big context
//! edited) reuses the unchanged files of its previous result instead of
//! writing every file again.
//!
//! A COPY written straight into its step's upper directory leaves a
//! manifest beside its snapshot: for every regular file it wrote, the
//! content hash and the metadata the file got. The next run of the same
//! COPY (same op, same base; the *lineage*) finds that snapshot through a
//! pointer file and hard-links every file whose content hash and resulting
//! metadata are equal, copying only the rest. Snapshots are immutable once
//! committed, so sharing inodes between them is safe; a manifest that does
//! not match its snapshot (or a snapshot collected meanwhile) only costs the
//! reuse, never correctness, because every linked file is checked against
//! the manifest's metadata first.
//!
//! ```text
//! <root>/lineage/<lineage>            the key of the lineage's latest result
//! <root>/snapshots/<key>/copy-manifest.json
//! ```

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const MANIFEST_FILE: &str = "copy-manifest.json";
const MANIFEST_VERSION: u32 = 1;

/// What a regular file of a COPY result is: its content and the metadata
/// the COPY gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    #[serde(with = "hex32")]
    pub hash: [u8; 32],
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime_ns: i64,
}

impl FileRecord {
    /// Whether the file at `meta` (in a snapshot) still is what the record
    /// says, apart from its content.
    pub fn matches_meta(&self, meta: &fs::Metadata) -> bool {
        meta.is_file()
            && meta.size() == self.size
            && meta.mode() & 0o7777 == self.mode
            && meta.uid() == self.uid
            && meta.gid() == self.gid
            && mtime_ns(meta) == self.mtime_ns
    }
}

pub fn mtime_ns(meta: &fs::Metadata) -> i64 {
    meta.mtime().saturating_mul(1_000_000_000) + meta.mtime_nsec()
}

/// Regular files of one COPY result, by path relative to the layer root.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub files: HashMap<String, FileRecord>,
}

impl Manifest {
    pub fn new() -> Self {
        Manifest {
            version: MANIFEST_VERSION,
            files: HashMap::new(),
        }
    }

    pub fn load(snapshot_dir: &Path) -> Option<Manifest> {
        let bytes = fs::read(snapshot_dir.join(MANIFEST_FILE)).ok()?;
        let m: Manifest = serde_json::from_slice(&bytes).ok()?;
        (m.version == MANIFEST_VERSION).then_some(m)
    }

    /// Written into a staging directory before it is committed.
    pub fn save(&self, staging: &Path) -> io::Result<()> {
        let bytes = serde_json::to_vec(self).map_err(io::Error::other)?;
        fs::write(staging.join(MANIFEST_FILE), bytes)
    }
}

/// The previous result of a COPY, to take unchanged files from.
pub struct Previous {
    /// The layer root of the previous snapshot (`.../snapshots/<key>/fs`).
    pub root: PathBuf,
    pub manifest: Manifest,
}

fn lineage_path(root: &Path, lineage: &str) -> PathBuf {
    root.join("lineage").join(lineage)
}

/// The key of the latest result of `lineage`, if one was recorded.
pub fn latest(root: &Path, lineage: &str) -> Option<String> {
    let s = fs::read_to_string(lineage_path(root, lineage)).ok()?;
    let key = s.trim();
    // Keys are hex digests; anything else is a damaged pointer.
    (!key.is_empty() && key.bytes().all(|b| b.is_ascii_hexdigit())).then(|| key.to_string())
}

/// Record `key` as the latest result of `lineage` (atomically: a reader
/// sees the old key or the new one).
pub fn set_latest(root: &Path, lineage: &str, key: &str) -> io::Result<()> {
    let p = lineage_path(root, lineage);
    let dir = p.parent().expect("lineage path has a parent");
    fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    io::Write::write_all(&mut tmp, key.as_bytes())?;
    tmp.persist(&p).map_err(|e| e.error)?;
    Ok(())
}

mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        let mut out = String::with_capacity(64);
        for b in v {
            out.push_str(&format!("{b:02x}"));
        }
        s.serialize_str(&out)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let bad = || serde::de::Error::custom("expected 64 hex digits");
        if s.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let mut m = Manifest::new();
        m.files.insert(
            "src/a.txt".into(),
            FileRecord {
                hash: [7; 32],
                size: 3,
                mode: 0o644,
                uid: 0,
                gid: 0,
                mtime_ns: 1_700_000_000_123_456_789,
            },
        );
        m.save(d.path()).unwrap();
        let back = Manifest::load(d.path()).unwrap();
        assert_eq!(back.files, m.files);
    }

    #[test]
    fn lineage_pointer_round_trips_and_rejects_garbage() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(latest(d.path(), "l1"), None);
        set_latest(d.path(), "l1", "abc123").unwrap();
        assert_eq!(latest(d.path(), "l1").as_deref(), Some("abc123"));
        set_latest(d.path(), "l1", "def456").unwrap();
        assert_eq!(latest(d.path(), "l1").as_deref(), Some("def456"));
        fs::write(lineage_path(d.path(), "l2"), "../../etc").unwrap();
        assert_eq!(latest(d.path(), "l2"), None);
    }
}
