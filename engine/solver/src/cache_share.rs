//! Sharing the build cache through a directory: `--cache-to type=local`
//! writes the records and layer blobs of a build into an OCI image layout,
//! `--cache-from type=local` reads them back so that a step missing from
//! the local cache is re-created from its layer blob instead of being run.
//! The format is documented in `specs/cache-format.md` ("Exported cache").

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use engine_cache::{Digest, Kind, LayerRef, Record, StepLayer};
use engine_oci::layout::{self, blob_path, INDEX_FILE};
use engine_oci::{annotation, media_type, Descriptor, Index, Manifest};
use serde::{Deserialize, Serialize};

use crate::image::{layer_tag, LayerSettings};
use crate::run::{StepError, Value};
use crate::snapshot::Layer;
use crate::state::StateDir;

/// Media type (and artifact type) of the records blob.
pub const MEDIA_TYPE_CACHE: &str = "application/vnd.engine.cache.v1+json";
/// `org.opencontainers.image.ref.name` of the cache manifest in `index.json`.
pub const CACHE_REF_NAME: &str = "engine-cache";
/// Largest records blob or manifest read back (64 MiB).
pub(crate) const MAX_DOC: u64 = 64 << 20;

/// The records blob.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheDocument {
    pub version: u32,
    /// By cache key.
    pub records: BTreeMap<String, Record>,
}

/// Which steps `--cache-to` exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportMode {
    /// The steps of the final images' layer chains.
    Min,
    /// Every RUN/COPY/ADD/WORKDIR step the build used.
    Max,
}

fn err(s: impl Into<String>) -> StepError {
    StepError::Other(s.into())
}

fn ioe(what: &str, p: &Path) -> impl FnOnce(io::Error) -> StepError {
    let c = format!("{what} {}", p.display());
    move |source| StepError::Io { context: c, source }
}

/// Write `data` to `path` atomically (temp file in the same directory,
/// fsync, rename).
fn write_atomic(path: &Path, data: &[u8]) -> Result<(), StepError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    let mut t = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(parent)
        .map_err(ioe("creating a temp file in", parent))?;
    t.write_all(data).map_err(ioe("writing", t.path()))?;
    t.as_file().sync_all().map_err(ioe("syncing", path))?;
    t.persist(path).map_err(|e| StepError::Io {
        context: format!("writing {}", path.display()),
        source: e.error,
    })?;
    Ok(())
}

/// Store a blob under its digest (kept when already present with the right
/// size).
fn put_blob_bytes(dir: &Path, data: &[u8]) -> Result<Descriptor, StepError> {
    let d = Digest::of(data);
    let p = blob_path(dir, &d);
    if !fs::metadata(&p).is_ok_and(|m| m.len() == data.len() as u64) {
        write_atomic(&p, data)?;
    }
    Ok(Descriptor::new("", d, data.len() as u64))
}

/// Read a document blob of the layout, checking its digest and size.
fn read_doc(dir: &Path, desc: &Descriptor) -> Result<Vec<u8>, StepError> {
    if desc.size > MAX_DOC {
        return Err(err(format!("{} is too large", desc.digest)));
    }
    let p = blob_path(dir, &desc.digest);
    let mut data = Vec::new();
    fs::File::open(&p)
        .map_err(ioe("opening", &p))?
        .take(MAX_DOC + 1)
        .read_to_end(&mut data)
        .map_err(ioe("reading", &p))?;
    if data.len() as u64 != desc.size || Digest::of(&data) != desc.digest {
        return Err(err(format!(
            "{} does not match its digest or size",
            p.display()
        )));
    }
    Ok(data)
}

/// The records held by an exported cache directory (empty when it holds
/// none; an error when it holds a damaged one).
pub fn read_records(dir: &Path) -> Result<BTreeMap<String, Record>, StepError> {
    let index_path = dir.join(INDEX_FILE);
    let bytes = match fs::read(&index_path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(ioe("reading", &index_path)(e)),
    };
    let index: Index = serde_json::from_slice(&bytes)
        .map_err(|e| err(format!("{}: {e}", index_path.display())))?;
    let mut out = BTreeMap::new();
    for m in &index.manifests {
        if m.artifact_type.as_deref() != Some(MEDIA_TYPE_CACHE)
            && m.ref_name() != Some(CACHE_REF_NAME)
        {
            continue;
        }
        let manifest: Manifest = serde_json::from_slice(&read_doc(dir, m)?)
            .map_err(|e| err(format!("cache manifest {}: {e}", m.digest)))?;
        if manifest.config.media_type != MEDIA_TYPE_CACHE {
            continue;
        }
        let doc: CacheDocument = serde_json::from_slice(&read_doc(dir, &manifest.config)?)
            .map_err(|e| err(format!("cache records {}: {e}", manifest.config.digest)))?;
        for (k, v) in doc.records {
            // Only records that read back as records of this version, under
            // their own key.
            let Some(r) = Record::from_json(&v.to_json()) else {
                continue;
            };
            if r.key == k && matches!(r.kind, Kind::Exec | Kind::File) {
                out.insert(k, r);
            }
        }
    }
    Ok(out)
}

/// An imported cache (`--cache-from type=local,src=DIR`).
#[derive(Debug, Default)]
pub struct ImportedCache {
    /// (layout dir, records), in the order given.
    pub sources: Vec<(PathBuf, BTreeMap<String, Record>)>,
    /// Layout dirs fetched from a registry (`cache_registry::fetch`): they
    /// hold no layer blobs, which are downloaded when a step needs one.
    pub remotes: BTreeMap<PathBuf, engine_oci::Reference>,
    /// One client for every download, so a registry's token is asked once.
    pub client: engine_registry::Client,
}

impl ImportedCache {
    pub fn load(dirs: &[PathBuf]) -> Result<Self, StepError> {
        let mut sources = Vec::new();
        for d in dirs {
            sources.push((d.clone(), read_records(d)?));
        }
        Ok(ImportedCache {
            sources,
            ..Default::default()
        })
    }

    pub fn len(&self) -> usize {
        self.sources.iter().map(|(_, r)| r.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first source holding `key`.
    pub fn get(&self, key: &str) -> Option<(&Path, &Record)> {
        self.sources
            .iter()
            .find_map(|(d, r)| r.get(key).map(|r| (d.as_path(), r)))
    }

    /// Re-create the snapshot of `key` in `staging/fs` from an imported
    /// record. Every blob is copied into the local blob store with its
    /// digest checked and applied with its diff id checked. `Ok(None)`
    /// when the record cannot serve (no record, damaged or missing blob):
    /// the caller then builds the step. On success returns the step layers
    /// to remember (by settings tag) once the snapshot is committed.
    pub fn restore(
        &self,
        state: &StateDir,
        key: &str,
        fs_dir: &Path,
    ) -> Option<Vec<(String, StepLayer)>> {
        let (src, record) = self.get(key)?;
        let empty: Vec<(String, StepLayer)> = record
            .layers
            .iter()
            .filter(|(_, l)| matches!(l, StepLayer::Empty))
            .map(|(t, l)| (t.clone(), l.clone()))
            .collect();
        if !empty.is_empty() {
            // The step changed nothing: its snapshot is an empty directory.
            return Some(empty);
        }
        let mut usable = Vec::new();
        let mut applied = false;
        for (tag, layer) in &record.layers {
            let StepLayer::Blob(b) = layer else { continue };
            let remote = self.remotes.get(src).map(|r| (&self.client, r));
            if !import_blob(state, src, b, remote) {
                continue;
            }
            if !applied {
                if apply_blob(state, b, fs_dir).is_err() {
                    let _ = fs::remove_dir_all(fs_dir);
                    let _ = fs::create_dir_all(fs_dir);
                    continue;
                }
                applied = true;
            }
            usable.push((tag.clone(), layer.clone()));
        }
        applied.then_some(usable)
    }
}

/// Copy a blob of an exported cache into the local store, checking its
/// digest (and size). False when it is missing or damaged.
fn import_blob(
    state: &StateDir,
    src: &Path,
    b: &LayerRef,
    remote: Option<(&engine_registry::Client, &engine_oci::Reference)>,
) -> bool {
    let store = &state.store;
    let Ok(_using) = store.using() else {
        return false;
    };
    if store.blob_ok(&b.digest, Some(b.size)) {
        return store
            .lease([engine_cache::LeaseItem::Blob(b.digest)])
            .is_ok();
    }
    let p = blob_path(src, &b.digest);
    let Ok(f) = fs::File::open(&p) else {
        // A registry cache: download it, held to the recorded size (the
        // store checks the digest).
        let Some((client, r)) = remote else {
            return false;
        };
        return match client.blob_into_store(r, &b.digest, b.size, &state.blobs) {
            Ok(_) => store
                .session()
                .add(engine_cache::LeaseItem::Blob(b.digest))
                .is_ok(),
            _ => false,
        };
    };
    if !f.metadata().is_ok_and(|m| m.len() == b.size) {
        return false;
    }
    let mut r = io::BufReader::new(f);
    match state.blobs.put_reader(&mut r, Some(&b.digest)) {
        Ok(_) => store
            .session()
            .add(engine_cache::LeaseItem::Blob(b.digest))
            .is_ok(),
        Err(_) => false,
    }
}

fn apply_blob(state: &StateDir, b: &LayerRef, fs_dir: &Path) -> Result<(), StepError> {
    let f = state.blobs.open_blob(&b.digest)?;
    engine_layers::apply_layer_with(
        fs_dir,
        io::BufReader::new(f),
        &engine_layers::ApplyOptions {
            expected_digest: Some(b.digest.to_string()),
            expected_diff_id: Some(b.diff_id.to_string()),
            whiteouts: engine_layers::WhiteoutFormat::Overlay,
            ..Default::default()
        },
    )
    .map_err(|source| StepError::layer(format!("cannot apply layer {}", b.digest), source))?;
    Ok(())
}

/// The step layers (not base image layers) of a value, bottom first.
fn step_layers(v: &Value) -> Vec<Arc<Layer>> {
    v.fs.clone()
        .unwrap_or_default()
        .layers
        .into_iter()
        .filter(|l| {
            !l.key.is_empty() && l.blobs.lock().unwrap_or_else(|p| p.into_inner()).is_none()
        })
        .collect()
}

/// What an export writes: the steps to export and how their layers are
/// encoded.
pub struct ExportRequest<'a> {
    pub dir: &'a Path,
    pub mode: ExportMode,
    /// Final images (targets).
    pub targets: &'a [Value],
    /// Every RUN/COPY step value of the build (for `mode=max`).
    pub steps: &'a [(Value, Kind, String)],
    pub settings: LayerSettings,
}

/// Write (merge) the cache of a build into `req.dir`. Returns the number of
/// records written by this build.
pub fn export(state: &StateDir, req: &ExportRequest<'_>) -> Result<usize, StepError> {
    let dir = req.dir;
    let blobs = layout::blobs_dir(dir);
    fs::create_dir_all(&blobs).map_err(ioe("creating", &blobs))?;
    // Kind and name of each step, by key.
    let info: BTreeMap<&str, (Kind, &str)> = req
        .steps
        .iter()
        .map(|(v, k, n)| (v.key.as_str(), (*k, n.as_str())))
        .collect();
    let mut layers: BTreeMap<String, Arc<Layer>> = BTreeMap::new();
    match req.mode {
        ExportMode::Min => {
            for t in req.targets {
                for l in step_layers(t) {
                    layers.insert(l.key.clone(), l);
                }
            }
        }
        ExportMode::Max => {
            for (v, _, _) in req.steps {
                if let Some(l) = step_layers(v).pop() {
                    layers.insert(l.key.clone(), l);
                }
            }
        }
    }
    let mut records = read_records(dir).unwrap_or_default();
    let tag = layer_tag(req.settings);
    let now = engine_cache::now_secs();
    let written = layers.len();
    for (key, layer) in &layers {
        let blob = crate::image::step_blob(state, layer, req.settings)?;
        let (kind, name) = info.get(key.as_str()).copied().unwrap_or((Kind::File, ""));
        // The step's own date (when its snapshot was made), which images
        // built from it carry: an importing machine writes the same image.
        let created = state.store.snapshot_created(key).unwrap_or(now);
        let mut r = Record::new(key, kind, created);
        r.last_used = now;
        r.description = name.to_string();
        let step_layer = match blob {
            None => StepLayer::Empty,
            Some(b) => {
                let dest = blob_path(dir, &b.digest);
                if !fs::metadata(&dest).is_ok_and(|m| m.len() == b.size) {
                    copy_blob_atomic(state, &b.digest, &dest)?;
                }
                StepLayer::Blob(LayerRef {
                    digest: b.digest,
                    diff_id: b.diff_id,
                    size: b.size,
                    media_type: b.media_type.oci().to_string(),
                })
            }
        };
        r.layers.insert(tag.clone(), step_layer);
        records.insert(key.clone(), r);
    }
    // Every blob the merged records name, once, in digest order; records
    // whose blobs are gone from the directory are dropped.
    records.retain(|_, r| {
        r.layers.values().all(|l| match l {
            StepLayer::Empty => true,
            StepLayer::Blob(b) => {
                fs::metadata(blob_path(dir, &b.digest)).is_ok_and(|m| m.len() == b.size)
            }
        })
    });
    let mut blobs: BTreeMap<Digest, Descriptor> = BTreeMap::new();
    for r in records.values() {
        for l in r.layers.values() {
            if let StepLayer::Blob(b) = l {
                blobs.insert(
                    b.digest,
                    Descriptor::new(b.media_type.clone(), b.digest, b.size),
                );
            }
        }
    }
    let doc = CacheDocument {
        version: engine_cache::record::RECORD_VERSION,
        records,
    };
    let doc_bytes = engine_export::json::to_canonical_vec(&doc).map_err(|e| err(e.to_string()))?;
    let mut config = put_blob_bytes(dir, &doc_bytes)?;
    config.media_type = MEDIA_TYPE_CACHE.to_string();
    let mut layer_descs: Vec<Descriptor> = blobs.into_values().collect();
    if layer_descs.is_empty() {
        let mut d = put_blob_bytes(dir, b"{}")?;
        // The OCI "empty" blob: a manifest should list at least one layer.
        d.media_type = media_type::OCI_EMPTY.to_string();
        layer_descs.push(d);
    }
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media_type::OCI_MANIFEST.to_string()),
        artifact_type: Some(MEDIA_TYPE_CACHE.to_string()),
        config,
        layers: layer_descs,
        subject: None,
        annotations: Default::default(),
    };
    let manifest_bytes =
        engine_export::json::to_canonical_vec(&manifest).map_err(|e| err(e.to_string()))?;
    let mut mdesc = put_blob_bytes(dir, &manifest_bytes)?;
    mdesc.media_type = media_type::OCI_MANIFEST.to_string();
    mdesc.artifact_type = Some(MEDIA_TYPE_CACHE.to_string());
    mdesc
        .annotations
        .insert(annotation::REF_NAME.to_string(), CACHE_REF_NAME.to_string());
    let layout_bytes = layout::LayoutFile::current_json();
    let layout_path = dir.join(layout::LAYOUT_FILE);
    if fs::read(&layout_path).ok().as_deref() != Some(layout_bytes.as_slice()) {
        write_atomic(&layout_path, &layout_bytes)?;
    }
    // Keep whatever else index.json lists (images someone put there); the
    // cache manifest replaces the previous one.
    let mut manifests: Vec<Descriptor> = fs::read(dir.join(INDEX_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice::<Index>(&b).ok())
        .map(|i| i.manifests)
        .unwrap_or_default()
        .into_iter()
        .filter(|m| {
            m.artifact_type.as_deref() != Some(MEDIA_TYPE_CACHE)
                && m.ref_name() != Some(CACHE_REF_NAME)
        })
        .collect();
    manifests.push(mdesc);
    let index = Index::new(Some(media_type::OCI_INDEX), manifests);
    let index_bytes =
        engine_export::json::to_canonical_vec(&index).map_err(|e| err(e.to_string()))?;
    write_atomic(&dir.join(INDEX_FILE), &index_bytes)?;
    let _ = engine_cache::durable::sync_dir(dir);
    Ok(written)
}

fn copy_blob_atomic(state: &StateDir, d: &Digest, dest: &Path) -> Result<(), StepError> {
    let parent = dest.parent().unwrap_or(Path::new("."));
    let mut t = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(parent)
        .map_err(ioe("creating a temp file in", parent))?;
    let mut src = state.blobs.open_blob(d)?;
    let mut hasher = HashingWriter {
        inner: t.as_file_mut(),
        hasher: <sha2_shim::Sha256 as sha2_shim::Digest>::new(),
    };
    io::copy(&mut src, &mut hasher).map_err(ioe("copying to", dest))?;
    let got = Digest::from_hasher(hasher.hasher);
    if got != *d {
        return Err(err(format!("blob {d} in the local cache is damaged")));
    }
    t.as_file().sync_all().map_err(ioe("syncing", dest))?;
    t.persist(dest).map_err(|e| StepError::Io {
        context: format!("writing {}", dest.display()),
        source: e.error,
    })?;
    Ok(())
}

mod sha2_shim {
    pub use sha2::{Digest, Sha256};
}

struct HashingWriter<'a> {
    inner: &'a mut fs::File,
    hasher: sha2_shim::Sha256,
}

impl Write for HashingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        sha2_shim::Digest::update(&mut self.hasher, &buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
