//! Sharing the build cache through a registry: `--cache-to type=registry`
//! pushes the exported cache (the same OCI artifact `type=local` writes: a
//! manifest whose config is the records blob and whose layers are the
//! steps' layer blobs) under a tag; `--cache-from type=registry` fetches
//! the manifest and the records into a local layout and downloads a layer
//! blob only when a step is restored from it.

use std::fs;
use std::path::Path;

use engine_oci::layout::{self, blob_path};
use engine_oci::{annotation, media_type, Descriptor, Index, Manifest, Reference};
use engine_registry::Client;

use crate::cache_share::{CACHE_REF_NAME, MAX_DOC, MEDIA_TYPE_CACHE};
use crate::run::StepError;

fn err(s: impl Into<String>) -> StepError {
    StepError::Other(s.into())
}

fn registry(context: String) -> impl FnOnce(engine_registry::Error) -> StepError {
    move |source| StepError::registry(context, source)
}

fn io_err(context: String) -> impl FnOnce(std::io::Error) -> StepError {
    move |source| StepError::Io { context, source }
}

/// Push the cache exported into `dir` (by `cache_share::export`) to `r`.
pub fn push(client: &Client, dir: &Path, r: &Reference) -> Result<(), StepError> {
    let index: Index = serde_json::from_slice(&fs::read(dir.join(layout::INDEX_FILE)).map_err(
        io_err(format!("reading the exported cache in {}", dir.display())),
    )?)
    .map_err(|e| err(format!("exported cache index: {e}")))?;
    let entry = index
        .manifests
        .first()
        .ok_or_else(|| err("the exported cache has no manifest"))?;
    let manifest_bytes = fs::read(blob_path(dir, &entry.digest))
        .map_err(io_err("reading the cache manifest".into()))?;
    let manifest: Manifest =
        serde_json::from_slice(&manifest_bytes).map_err(|e| err(format!("cache manifest: {e}")))?;
    let fail = || registry(format!("pushing the cache to `{r}`"));
    for d in std::iter::once(&manifest.config).chain(&manifest.layers) {
        let mut f = fs::File::open(blob_path(dir, &d.digest))
            .map_err(io_err(format!("reading cache blob {}", d.digest)))?;
        client
            .push_blob(r, &d.digest, d.size, &mut f)
            .map_err(fail())?;
    }
    client
        .push_manifest(r, &entry.media_type, &manifest_bytes)
        .map_err(fail())?;
    Ok(())
}

/// Fetch the cache manifest and records of `r` into `dir` as a layout that
/// `cache_share::read_records` reads (layer blobs stay remote). `Ok(false)`
/// when the registry has no such tag: a first build has no cache yet.
pub fn fetch(client: &Client, r: &Reference, dir: &Path) -> Result<bool, StepError> {
    let fetched = match client.manifest(r) {
        Ok(f) => f,
        Err(engine_registry::Error::Status { status: 404, .. }) => return Ok(false),
        Err(e) => return Err(registry(format!("reading the cache `{r}`"))(e)),
    };
    let manifest = match serde_json::from_slice::<Manifest>(&fetched.bytes) {
        Ok(m) if m.config.media_type == MEDIA_TYPE_CACHE => m,
        _ => return Err(err(format!("`{r}` is not an engine build cache"))),
    };
    let (config_digest, config_size) = (manifest.config.digest, manifest.config.size);
    let cap = engine_registry::Cap {
        size: MAX_DOC,
        of: "a cache's records",
    };
    let records = client
        .blob_bytes(r, &config_digest, config_size, cap)
        .map_err(registry(format!("reading the cache `{r}`")))?;
    let io = |e: std::io::Error| io_err(format!("writing {}", dir.display()))(e);
    let manifest_path = blob_path(dir, &fetched.digest);
    fs::create_dir_all(manifest_path.parent().expect("blob paths have a parent")).map_err(io)?;
    fs::write(manifest_path, &fetched.bytes).map_err(io)?;
    fs::write(blob_path(dir, &config_digest), &records).map_err(io)?;
    fs::write(
        dir.join(layout::LAYOUT_FILE),
        layout::LayoutFile::current_json(),
    )
    .map_err(io)?;
    let mut entry = Descriptor::new(
        fetched.media_type.clone(),
        fetched.digest,
        fetched.bytes.len() as u64,
    );
    entry.artifact_type = Some(MEDIA_TYPE_CACHE.to_string());
    entry
        .annotations
        .insert(annotation::REF_NAME.to_string(), CACHE_REF_NAME.to_string());
    let index = Index::new(Some(media_type::OCI_INDEX), vec![entry]);
    fs::write(
        dir.join(layout::INDEX_FILE),
        serde_json::to_vec(&index).map_err(|e| err(e.to_string()))?,
    )
    .map_err(io)?;
    Ok(true)
}
