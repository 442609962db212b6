//! Sharing the build cache through a registry: `--cache-to type=registry`
//! pushes the exported cache (the same OCI artifact `type=local` writes: a
//! manifest whose config is the records blob and whose layers are the
//! steps' layer blobs) under a tag; `--cache-from type=registry` fetches
//! the manifest and the records into a local layout and downloads a layer
//! blob only when a step is restored from it.

use std::fs;
use std::path::Path;

use engine_cache::Digest;
use engine_registry::{Client, Reference};

use crate::cache_share::{blob_path, CACHE_REF_NAME, MAX_DOC, MEDIA_TYPE_CACHE};
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

fn descriptor(v: &serde_json::Value) -> Option<(Digest, u64)> {
    Some((
        Digest::parse(v.get("digest")?.as_str()?).ok()?,
        v.get("size")?.as_u64()?,
    ))
}

/// Push the cache exported into `dir` (by `cache_share::export`) to `r`.
pub fn push(client: &Client, dir: &Path, r: &Reference) -> Result<(), StepError> {
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("index.json")).map_err(io_err(format!(
            "reading the exported cache in {}",
            dir.display()
        )))?)
        .map_err(|e| err(format!("exported cache index: {e}")))?;
    let entry = index
        .get("manifests")
        .and_then(|m| m.as_array())
        .and_then(|m| m.first())
        .ok_or_else(|| err("the exported cache has no manifest"))?;
    let media_type = entry
        .get("mediaType")
        .and_then(|m| m.as_str())
        .unwrap_or("application/vnd.oci.image.manifest.v1+json")
        .to_string();
    let (manifest_digest, _) =
        descriptor(entry).ok_or_else(|| err("bad manifest descriptor in the exported cache"))?;
    let manifest_bytes = fs::read(blob_path(dir, &manifest_digest))
        .map_err(io_err("reading the cache manifest".into()))?;
    let manifest: serde_json::Value =
        serde_json::from_slice(&manifest_bytes).map_err(|e| err(format!("cache manifest: {e}")))?;
    let mut blobs = Vec::new();
    blobs.extend(manifest.get("config").and_then(descriptor));
    if let Some(layers) = manifest.get("layers").and_then(|l| l.as_array()) {
        blobs.extend(layers.iter().filter_map(descriptor));
    }
    let fail = || registry(format!("pushing the cache to `{r}`"));
    for (d, size) in blobs {
        let mut f = fs::File::open(blob_path(dir, &d))
            .map_err(io_err(format!("reading cache blob {d}")))?;
        client.push_blob(r, &d, size, &mut f).map_err(fail())?;
    }
    client
        .push_manifest(r, &media_type, &manifest_bytes)
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
    let manifest: serde_json::Value = serde_json::from_slice(&fetched.bytes)
        .map_err(|e| err(format!("cache manifest of `{r}`: {e}")))?;
    let config = manifest.get("config");
    let is_cache = config
        .and_then(|c| c.get("mediaType"))
        .and_then(|m| m.as_str())
        == Some(MEDIA_TYPE_CACHE);
    if !is_cache {
        return Err(err(format!("`{r}` is not an engine build cache")));
    }
    let (config_digest, config_size) = config
        .and_then(descriptor)
        .ok_or_else(|| err(format!("cache manifest of `{r}` has no config")))?;
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
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(io)?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": fetched.media_type,
            "digest": fetched.digest.to_string(),
            "size": fetched.bytes.len(),
            "artifactType": MEDIA_TYPE_CACHE,
            "annotations": { "org.opencontainers.image.ref.name": CACHE_REF_NAME },
        }],
    });
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&index).map_err(|e| err(e.to_string()))?,
    )
    .map_err(io)?;
    Ok(true)
}
