//! The importer for `--build-context NAME=oci-layout://PATH[:TAG|@DIGEST]`.
//!
//! Everything read from the layout is untrusted:
//! - digests are parsed as [`Digest`] (`sha256:<64 lowercase hex>`) before
//!   any path is built from them, and the resolved blob path must stay inside
//!   the layout directory (symlinks included) and be a regular file;
//! - every blob read is checked against its descriptor's size and digest;
//!   manifests, indexes and configs are refused above [`MAX_DOCUMENT_SIZE`];
//! - a document must be what its descriptor says: a manifest has no
//!   `manifests`, an index no `config`/`layers`, a document with both is
//!   refused, and an embedded `mediaType` must equal the descriptor's
//!   (the CVE-2021-41190 class of ambiguity).

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use engine_cache::BlobStore;
use engine_ir::Platform;
use engine_oci::layout::{self, blob_path as blob_file, LayoutFile};
use engine_oci::{
    annotation, media_type, reference, Descriptor, Digest, Index, LayerMediaType, Manifest,
    PlatformMatcher,
};
use oci_spec::image::ImageConfiguration;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{io_err, Error, Result};
use crate::model::LayerBlob;

/// Limit for `index.json`, `oci-layout`, manifests, indexes and configs.
pub const MAX_DOCUMENT_SIZE: u64 = 4 * 1024 * 1024;
/// How many image indexes may be nested below `index.json`.
pub const MAX_INDEX_DEPTH: usize = 4;

const OCI_LAYOUT_SCHEME: &str = "oci-layout://";

/// Which image of a layout: by `org.opencontainers.image.ref.name` (or full
/// `io.containerd.image.name`), or by digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagOrDigest {
    Tag(String),
    Digest(Digest),
}

impl fmt::Display for TagOrDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TagOrDigest::Tag(t) => write!(f, "tagged `{t}`"),
            TagOrDigest::Digest(d) => write!(f, "with digest {d}"),
        }
    }
}

/// Split `oci-layout://PATH[:TAG|@DIGEST]` (the scheme is optional).
/// A `:` only starts a tag when no `/` follows it.
pub fn parse_oci_layout_ref(s: &str) -> Result<(PathBuf, Option<TagOrDigest>)> {
    let bad = |reason: String| Error::InvalidReference {
        input: s.chars().take(300).collect(),
        reason,
    };
    let rest = s.strip_prefix(OCI_LAYOUT_SCHEME).unwrap_or(s);
    let (path, reference) = if let Some((path, digest)) = rest.rsplit_once('@') {
        let d = Digest::parse(digest).map_err(|e| bad(e.to_string()))?;
        (path, Some(TagOrDigest::Digest(d)))
    } else {
        match rest.rsplit_once(':') {
            Some((path, tag)) if !tag.contains('/') => {
                if !reference::is_valid_tag(tag) {
                    return Err(bad(format!("invalid tag `{tag}`")));
                }
                (path, Some(TagOrDigest::Tag(tag.to_string())))
            }
            _ => (rest, None),
        }
    };
    if path.is_empty() {
        return Err(bad("empty path".into()));
    }
    Ok((PathBuf::from(path), reference))
}

/// An image found in an OCI layout, every document verified.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedImage {
    /// The layout directory (canonical).
    pub layout: PathBuf,
    pub manifest_digest: Digest,
    /// The descriptor the manifest was reached through (media type, size,
    /// and platform if it came from an index).
    pub manifest_descriptor: Descriptor,
    pub manifest: Manifest,
    pub manifest_bytes: Vec<u8>,
    pub config_descriptor: Descriptor,
    /// The config as `oci_spec` parses it (Docker-only fields such as
    /// `Healthcheck` are in `config_bytes` only).
    pub config: ImageConfiguration,
    pub config_bytes: Vec<u8>,
    pub layers: Vec<Descriptor>,
    /// The image's platform according to its config (normalised).
    pub platform: Platform,
    /// The image indexes followed to reach the manifest, outermost first.
    pub index_digests: Vec<Digest>,
}

impl ResolvedImage {
    /// The layers as [`LayerBlob`]s (diff ids from the config), e.g. to
    /// build an image on top of this one and export it.
    pub fn layer_blobs(&self) -> Result<Vec<LayerBlob>> {
        let diff_ids = self.config.rootfs().diff_ids();
        self.layers
            .iter()
            .zip(diff_ids)
            .map(|(l, diff_id)| {
                let media_type =
                    LayerMediaType::from_media_type(&l.media_type).ok_or_else(|| {
                        Error::UnsupportedMediaType {
                            what: "layer",
                            media_type: l.media_type.clone(),
                            digest: l.digest,
                        }
                    })?;
                let diff_id = Digest::parse(diff_id).map_err(|e| self.bad_config(e.to_string()))?;
                Ok(LayerBlob {
                    digest: l.digest,
                    diff_id,
                    size: l.size,
                    media_type,
                })
            })
            .collect()
    }

    fn bad_config(&self, reason: String) -> Error {
        Error::InvalidDocument {
            what: format!("config {}", self.config_descriptor.digest),
            path: blob_file(&self.layout, &self.config_descriptor.digest),
            reason,
        }
    }
}

/// An opened, validated layout directory.
struct Layout {
    root: PathBuf,
}

impl Layout {
    fn open(path: &Path) -> Result<Self> {
        let not_layout = |reason: String| Error::NotALayout {
            path: path.to_path_buf(),
            reason,
        };
        let root = fs::canonicalize(path).map_err(|e| not_layout(e.to_string()))?;
        if !root.is_dir() {
            return Err(not_layout("not a directory".into()));
        }
        let layout_file = root.join(layout::LAYOUT_FILE);
        if !layout_file.is_file() {
            return Err(not_layout("no oci-layout file".into()));
        }
        let bytes = read_limited(&layout_file)?;
        let parsed: LayoutFile = serde_json::from_slice(&bytes)
            .map_err(|e| not_layout(format!("invalid oci-layout file: {e}")))?;
        if !parsed.image_layout_version.starts_with("1.") {
            return Err(not_layout(format!(
                "unsupported imageLayoutVersion `{}`",
                parsed.image_layout_version
            )));
        }
        Ok(Layout { root })
    }

    /// The path of a blob, checked to be a regular file inside the layout.
    fn blob_path(&self, digest: &Digest) -> Result<PathBuf> {
        let path = blob_file(&self.root, digest);
        let target = match fs::canonicalize(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::MissingBlob {
                    digest: *digest,
                    layout: self.root.clone(),
                })
            }
            Err(e) => return Err(io_err("resolving", &path)(e)),
        };
        if !target.starts_with(&self.root) {
            return Err(Error::PathEscape {
                digest: *digest,
                target,
                layout: self.root.clone(),
            });
        }
        let meta = fs::metadata(&target).map_err(io_err("reading metadata of", &target))?;
        if !meta.is_file() {
            return Err(Error::InvalidDocument {
                what: format!("blob {digest}"),
                path,
                reason: "not a regular file".into(),
            });
        }
        Ok(target)
    }

    /// Open a blob for streaming, checking its size against the descriptor.
    fn open_blob(&self, desc: &Descriptor) -> Result<(File, PathBuf)> {
        let path = self.blob_path(&desc.digest)?;
        let f = File::open(&path).map_err(io_err("opening", &path))?;
        let actual = f
            .metadata()
            .map_err(io_err("reading metadata of", &path))?
            .len();
        if actual != desc.size {
            return Err(Error::SizeMismatch {
                digest: desc.digest,
                path,
                expected: desc.size,
                actual,
            });
        }
        Ok((f, path))
    }

    /// Read a small blob (manifest, index, config), verified.
    fn read_document(&self, desc: &Descriptor, what: &'static str) -> Result<Vec<u8>> {
        if desc.size > MAX_DOCUMENT_SIZE {
            return Err(Error::TooLarge {
                what,
                digest: desc.digest,
                size: desc.size,
                limit: MAX_DOCUMENT_SIZE,
            });
        }
        let (f, path) = self.open_blob(desc)?;
        let mut bytes = Vec::with_capacity(desc.size as usize);
        f.take(desc.size + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err("reading", &path))?;
        if bytes.len() as u64 != desc.size {
            return Err(Error::SizeMismatch {
                digest: desc.digest,
                path,
                expected: desc.size,
                actual: bytes.len() as u64,
            });
        }
        let actual = Digest::of(&bytes);
        if actual != desc.digest {
            return Err(Error::DigestMismatch {
                digest: desc.digest,
                path,
                actual,
            });
        }
        Ok(bytes)
    }

    /// A blob named only by digest (`@DIGEST` not listed in `index.json`):
    /// read it (size limited), verify it, and work out what it is.
    fn sniff(&self, digest: &Digest) -> Result<Descriptor> {
        let path = self.blob_path(digest)?;
        let size = fs::metadata(&path)
            .map_err(io_err("reading metadata of", &path))?
            .len();
        let mut desc = Descriptor::new("", *digest, size);
        let bytes = self.read_document(&desc, "manifest")?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| Error::InvalidDocument {
            what: format!("manifest {digest}"),
            path: path.clone(),
            reason: e.to_string(),
        })?;
        desc.media_type = match v.get("mediaType").and_then(Value::as_str) {
            Some(mt) => mt.to_string(),
            None if v.get("manifests").is_some() => media_type::OCI_INDEX.to_string(),
            None if v.get("config").is_some() => media_type::OCI_MANIFEST.to_string(),
            None => {
                return Err(Error::InvalidDocument {
                    what: format!("blob {digest}"),
                    path,
                    reason: "neither an image manifest nor an image index".into(),
                })
            }
        };
        Ok(desc)
    }
}

fn read_limited(path: &Path) -> Result<Vec<u8>> {
    let f = File::open(path).map_err(io_err("opening", path))?;
    let mut bytes = Vec::new();
    f.take(MAX_DOCUMENT_SIZE + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err("reading", path))?;
    if bytes.len() as u64 > MAX_DOCUMENT_SIZE {
        return Err(Error::InvalidDocument {
            what: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            path: path.to_path_buf(),
            reason: format!("larger than {MAX_DOCUMENT_SIZE} bytes"),
        });
    }
    Ok(bytes)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum DocKind {
    Manifest,
    Index,
}

/// Parse a manifest or index, refusing documents that are not what the
/// descriptor says they are.
fn parse_document<T: DeserializeOwned>(
    bytes: &[u8],
    kind: DocKind,
    descriptor_media_type: Option<&str>,
    what: &str,
    path: &Path,
) -> Result<T> {
    let invalid = |reason: String| Error::InvalidDocument {
        what: what.to_string(),
        path: path.to_path_buf(),
        reason,
    };
    let v: Value = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    let obj = v
        .as_object()
        .ok_or_else(|| invalid("not a json object".into()))?;
    let has_manifests = obj.contains_key("manifests");
    let has_image_fields = obj.contains_key("layers") || obj.contains_key("config");
    if has_manifests && has_image_fields {
        return Err(invalid(
            "ambiguous document: has both `manifests` and `config`/`layers`".into(),
        ));
    }
    match kind {
        DocKind::Manifest if has_manifests => {
            return Err(invalid(
                "expected an image manifest, found an image index".into(),
            ))
        }
        DocKind::Index if has_image_fields => {
            return Err(invalid(
                "expected an image index, found an image manifest".into(),
            ))
        }
        _ => {}
    }
    if let Some(mt) = obj.get("mediaType") {
        let mt = mt
            .as_str()
            .ok_or_else(|| invalid("`mediaType` is not a string".into()))?;
        if let Some(expected) = descriptor_media_type {
            if mt != expected {
                return Err(invalid(format!(
                    "mediaType `{mt}` does not match the descriptor's `{expected}`"
                )));
            }
        }
        let kind_ok = match kind {
            DocKind::Manifest => media_type::is_manifest(mt),
            DocKind::Index => media_type::is_index(mt),
        };
        if !kind_ok {
            return Err(invalid(format!("unexpected mediaType `{mt}`")));
        }
    }
    match obj.get("schemaVersion").and_then(Value::as_u64) {
        Some(2) => {}
        Some(v) => return Err(invalid(format!("unsupported schemaVersion {v}"))),
        None => return Err(invalid("missing schemaVersion".into())),
    }
    serde_json::from_value(v).map_err(|e| invalid(e.to_string()))
}

fn platforms_of(descs: &[&Descriptor]) -> Vec<String> {
    let mut out: Vec<String> = descs
        .iter()
        .filter_map(|d| d.platform.as_ref().map(|p| p.to_platform().to_string()))
        .collect();
    out.dedup();
    out
}

fn entry_label(d: &Descriptor) -> String {
    d.ref_name()
        .map(str::to_string)
        .or_else(|| d.annotations.get(annotation::IMAGE_NAME).cloned())
        .unwrap_or_else(|| d.digest.to_string())
}

/// Find an image in the OCI layout at `path`: by tag or digest if given,
/// else the only image (or the one tagged `latest`); through nested image
/// indexes, picking the manifest for `platform`. Accepts OCI and Docker
/// schema 2 manifests and indexes/lists. See the module docs for what is
/// verified.
pub fn open_oci_layout(
    path: &Path,
    reference: Option<&TagOrDigest>,
    platform: &Platform,
) -> Result<ResolvedImage> {
    let want = PlatformMatcher::new(platform);
    let layout = Layout::open(path)?;
    let index_path = layout.root.join(layout::INDEX_FILE);
    if !index_path.is_file() {
        return Err(Error::NotALayout {
            path: path.to_path_buf(),
            reason: "no index.json".into(),
        });
    }
    let index_bytes = read_limited(&index_path)?;
    let index: Index = parse_document(
        &index_bytes,
        DocKind::Index,
        None,
        layout::INDEX_FILE,
        &index_path,
    )?;
    let all: Vec<&Descriptor> = index.manifests.iter().collect();
    let available = || {
        let mut v: Vec<String> = all.iter().map(|d| entry_label(d)).collect();
        v.sort();
        v.dedup();
        v
    };

    let mut candidates: Vec<&Descriptor> = match reference {
        Some(TagOrDigest::Tag(t)) => all
            .iter()
            .copied()
            .filter(|d| {
                d.ref_name() == Some(t.as_str())
                    || d.annotations.get(annotation::IMAGE_NAME) == Some(t)
            })
            .collect(),
        Some(TagOrDigest::Digest(dg)) => {
            let listed: Vec<&Descriptor> =
                all.iter().copied().filter(|d| d.digest == *dg).collect();
            if listed.is_empty() {
                // Not in index.json: any manifest or index blob in the layout.
                let desc = match layout.sniff(dg) {
                    Ok(d) => d,
                    Err(Error::MissingBlob { .. }) => {
                        return Err(Error::NoSuchImage {
                            reference: reference.map(|r| r.to_string()).unwrap_or_default(),
                            layout: layout.root.clone(),
                            available: available(),
                        })
                    }
                    Err(e) => return Err(e),
                };
                return resolve(&layout, &desc, &want, Vec::new());
            }
            listed
        }
        None => all.clone(),
    };
    if candidates.is_empty() {
        return Err(Error::NoSuchImage {
            reference: reference
                .map(|r| r.to_string())
                .unwrap_or_else(|| "at all".into()),
            layout: layout.root.clone(),
            available: available(),
        });
    }

    let distinct = |c: &[&Descriptor]| {
        let mut ds: Vec<Digest> = c.iter().map(|d| d.digest).collect();
        ds.sort();
        ds.dedup();
        ds.len()
    };
    if reference.is_none() && distinct(&candidates) > 1 {
        let latest: Vec<&Descriptor> = candidates
            .iter()
            .copied()
            .filter(|d| d.ref_name() == Some("latest"))
            .collect();
        let all_unnamed_with_platform = candidates
            .iter()
            .all(|d| d.ref_name().is_none() && d.platform.is_some());
        if !latest.is_empty() {
            candidates = latest;
        } else if !all_unnamed_with_platform {
            return Err(Error::AmbiguousImage {
                layout: layout.root.clone(),
                available: available(),
            });
        }
    }
    let chosen = if distinct(&candidates) == 1 {
        candidates[0]
    } else {
        want.best_descriptor(candidates.iter().copied())
            .ok_or_else(|| Error::NoMatchingPlatform {
                platform: want.wanted().to_string(),
                source_desc: format!("index.json of {}", layout.root.display()),
                available: platforms_of(&candidates),
            })?
    };
    resolve(&layout, chosen, &want, Vec::new())
}

fn resolve(
    layout: &Layout,
    desc: &Descriptor,
    want: &PlatformMatcher,
    mut index_digests: Vec<Digest>,
) -> Result<ResolvedImage> {
    let path = blob_file(&layout.root, &desc.digest);
    if media_type::is_index(&desc.media_type) {
        if index_digests.len() >= MAX_INDEX_DEPTH {
            return Err(Error::TooDeep(MAX_INDEX_DEPTH));
        }
        let bytes = layout.read_document(desc, "image index")?;
        let what = format!("image index {}", desc.digest);
        let index: Index =
            parse_document(&bytes, DocKind::Index, Some(&desc.media_type), &what, &path)?;
        let children: Vec<&Descriptor> = index.manifests.iter().collect();
        let child = want
            .best_descriptor(children.iter().copied())
            .ok_or_else(|| Error::NoMatchingPlatform {
                platform: want.wanted().to_string(),
                source_desc: what.clone(),
                available: platforms_of(&children),
            })?;
        index_digests.push(desc.digest);
        return resolve(layout, child, want, index_digests);
    }
    if !media_type::is_manifest(&desc.media_type) {
        return Err(Error::UnsupportedMediaType {
            what: "manifest",
            media_type: desc.media_type.clone(),
            digest: desc.digest,
        });
    }
    let manifest_bytes = layout.read_document(desc, "image manifest")?;
    let what = format!("image manifest {}", desc.digest);
    let manifest: Manifest = parse_document(
        &manifest_bytes,
        DocKind::Manifest,
        Some(&desc.media_type),
        &what,
        &path,
    )?;
    let invalid = |reason: String| Error::InvalidDocument {
        what: what.clone(),
        path: path.clone(),
        reason,
    };
    if !media_type::is_config(&manifest.config.media_type) {
        return Err(Error::UnsupportedMediaType {
            what: "image config",
            media_type: manifest.config.media_type.clone(),
            digest: manifest.config.digest,
        });
    }
    for l in &manifest.layers {
        if !media_type::is_layer(&l.media_type) {
            return Err(Error::UnsupportedMediaType {
                what: "layer",
                media_type: l.media_type.clone(),
                digest: l.digest,
            });
        }
    }

    let config_bytes = layout.read_document(&manifest.config, "image config")?;
    let config_path = blob_file(&layout.root, &manifest.config.digest);
    let config: ImageConfiguration =
        serde_json::from_slice(&config_bytes).map_err(|e| Error::InvalidDocument {
            what: format!("image config {}", manifest.config.digest),
            path: config_path,
            reason: e.to_string(),
        })?;
    let diff_ids = config.rootfs().diff_ids().len();
    if diff_ids != manifest.layers.len() {
        return Err(invalid(format!(
            "{} layers but the config lists {diff_ids} diff ids",
            manifest.layers.len()
        )));
    }
    let found = Platform::new(
        &config.os().to_string(),
        &config.architecture().to_string(),
        config.variant().as_deref(),
    );
    if !want.matches(&found) {
        return Err(Error::PlatformMismatch {
            digest: desc.digest,
            found: found.to_string(),
            wanted: want.wanted().to_string(),
        });
    }
    Ok(ResolvedImage {
        layout: layout.root.clone(),
        manifest_digest: desc.digest,
        manifest_descriptor: desc.clone(),
        config_descriptor: manifest.config.clone(),
        layers: manifest.layers.clone(),
        manifest,
        manifest_bytes,
        config,
        config_bytes,
        platform: found,
        index_digests,
    })
}

/// What [`import_blobs`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportStats {
    /// Blobs copied into the store.
    pub copied: usize,
    /// Blobs the store already had.
    pub skipped: usize,
    /// Bytes copied.
    pub bytes: u64,
}

/// Copy the layer blobs (and the config) of `resolved` from the layout at
/// `layout_path` into `store`, streaming, each checked against its digest
/// and size before it is committed.
pub fn import_blobs(
    resolved: &ResolvedImage,
    layout_path: &Path,
    store: &BlobStore,
) -> Result<ImportStats> {
    let layout = Layout::open(layout_path)?;
    let mut stats = ImportStats::default();
    for desc in &resolved.layers {
        if store.contains(&desc.digest) && store.size(&desc.digest)? == desc.size {
            stats.skipped += 1;
            continue;
        }
        let (f, path) = layout.open_blob(desc)?;
        let mut w = store.writer()?;
        io::copy(&mut f.take(desc.size + 1), &mut w).map_err(io_err("copying", &path))?;
        if w.bytes_written() != desc.size {
            return Err(Error::SizeMismatch {
                digest: desc.digest,
                path,
                expected: desc.size,
                actual: w.bytes_written(),
            });
        }
        let actual = w.digest_so_far();
        if actual != desc.digest {
            return Err(Error::DigestMismatch {
                digest: desc.digest,
                path,
                actual,
            });
        }
        w.commit(Some(&desc.digest))?;
        stats.copied += 1;
        stats.bytes += desc.size;
    }
    let cfg = &resolved.config_descriptor;
    if store.contains(&cfg.digest) {
        stats.skipped += 1;
    } else {
        // Already verified when the image was resolved; commit checks again.
        let mut w = store.writer()?;
        io::Write::write_all(&mut w, &resolved.config_bytes)
            .map_err(io_err("writing config into", store.root()))?;
        w.commit(Some(&cfg.digest))?;
        stats.copied += 1;
        stats.bytes += cfg.size;
    }
    Ok(stats)
}
