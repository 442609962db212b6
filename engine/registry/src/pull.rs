//! Pulling an image for one platform: its manifest and config into a small
//! OCI layout (what the engine already reads base images from), its layers
//! straight into the blob store.

use std::fs;
use std::path::{Path, PathBuf};

use engine_cache::{BlobStore, Digest};
use engine_ir::Platform;
use serde_json::Value;

use crate::{Client, Error, Reference, Result, CONFIG_CAP};

/// A pulled image: the layout that holds its manifest and config, and the
/// manifest's digest (the platform-specific one).
#[derive(Debug, Clone)]
pub struct Pulled {
    pub layout: PathBuf,
    pub manifest_digest: Digest,
}

fn is_index(media_type: &str) -> bool {
    media_type == "application/vnd.oci.image.index.v1+json"
        || media_type == "application/vnd.docker.distribution.manifest.list.v2+json"
}

fn bad(r: &Reference, what: &str) -> Error {
    Error::Other(format!("{r}: {what}"))
}

fn descriptor(v: &Value) -> Option<(String, Digest, u64)> {
    let mt = v.get("mediaType")?.as_str().unwrap_or_default().to_string();
    let d = Digest::parse(v.get("digest")?.as_str()?).ok()?;
    Some((mt, d, v.get("size")?.as_u64()?))
}

/// The entry of an index for `want`: os and architecture must match; the
/// variant must match when both name one (`arm64` without a variant is
/// `v8`).
fn choose(index: &Value, want: &Platform) -> Option<(String, Digest, u64)> {
    let norm = |arch: &str, v: Option<&str>| -> Option<String> {
        match (arch, v) {
            ("arm64", None) => Some("v8".into()),
            (_, v) => v.map(str::to_string),
        }
    };
    let want_variant = norm(&want.architecture, want.variant.as_deref());
    let mut fallback = None;
    for m in index.get("manifests")?.as_array()? {
        let Some(p) = m.get("platform") else { continue };
        let os = p.get("os").and_then(Value::as_str).unwrap_or_default();
        let arch = p
            .get("architecture")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if os != want.os || arch != want.architecture {
            continue;
        }
        let variant = norm(arch, p.get("variant").and_then(Value::as_str));
        if variant == want_variant {
            return descriptor(m);
        }
        if want_variant.is_none() || variant.is_none() {
            fallback = fallback.or_else(|| descriptor(m));
        }
    }
    fallback
}

/// Resolve `r` to the manifest for `platform`: `(manifest, its digest)`.
pub fn resolve(client: &Client, r: &Reference, platform: &Platform) -> Result<(Vec<u8>, Digest)> {
    let top = client.manifest(r)?;
    if !is_index(&top.media_type) {
        return Ok((top.bytes, top.digest));
    }
    let index: Value =
        serde_json::from_slice(&top.bytes).map_err(|e| bad(r, &format!("index: {e}")))?;
    let (_, digest, size) = choose(&index, platform)
        .ok_or_else(|| bad(r, &format!("the image has no manifest for {platform}")))?;
    let m = client.manifest_in_index(&r.with_digest(digest), size)?;
    if is_index(&m.media_type) {
        return Err(bad(r, "an index inside an index is not supported"));
    }
    Ok((m.bytes, m.digest))
}

/// The config of `r` for `platform`, and the manifest digest: what
/// planning needs.
pub fn resolve_config(
    client: &Client,
    r: &Reference,
    platform: &Platform,
) -> Result<(Vec<u8>, Digest)> {
    let (manifest, digest) = resolve(client, r, platform)?;
    let m: Value =
        serde_json::from_slice(&manifest).map_err(|e| bad(r, &format!("manifest: {e}")))?;
    let (_, config, size) = m
        .get("config")
        .and_then(descriptor)
        .ok_or_else(|| bad(r, "manifest without a config"))?;
    Ok((client.blob_bytes(r, &config, size, CONFIG_CAP)?, digest))
}

/// Make `<pulls>/<manifest hex>` an OCI layout of `r` for `platform` (its
/// manifest and config), with every layer in `store`. Layers already in the
/// store with the right size are not downloaded again; a layout already
/// made is reused.
pub fn pull(
    client: &Client,
    r: &Reference,
    platform: &Platform,
    store: &BlobStore,
    pulls: &Path,
) -> Result<Pulled> {
    let (manifest, digest) = match r.digest() {
        // Pinned and pulled before: nothing to ask the registry but layers.
        Some(d) => match fs::read(blob_file(&pulls.join(d.hex()), d)) {
            Ok(bytes) if Digest::of(&bytes) == *d => (bytes, *d),
            _ => resolve(client, r, platform)?,
        },
        None => resolve(client, r, platform)?,
    };
    let m: Value =
        serde_json::from_slice(&manifest).map_err(|e| bad(r, &format!("manifest: {e}")))?;
    let (_, config, config_size) = m
        .get("config")
        .and_then(descriptor)
        .ok_or_else(|| bad(r, "manifest without a config"))?;
    let layers: Vec<(String, Digest, u64)> = m
        .get("layers")
        .and_then(Value::as_array)
        .ok_or_else(|| bad(r, "manifest without layers"))?
        .iter()
        .map(|l| descriptor(l).ok_or_else(|| bad(r, "bad layer descriptor")))
        .collect::<Result<_>>()?;
    for (_, d, size) in &layers {
        if store.contains(d) && store.size(d).ok() == Some(*size) {
            continue;
        }
        // Held to the declared size: a longer or shorter body is discarded.
        client.blob_into_store(r, d, *size, store)?;
    }
    let layout = pulls.join(digest.hex());
    if !layout.join("index.json").is_file() {
        let config_bytes = match fs::read(blob_file(&layout, &config)) {
            Ok(b) if Digest::of(&b) == config => b,
            _ => client.blob_bytes(r, &config, config_size, CONFIG_CAP)?,
        };
        write_layout(&layout, &m, &manifest, &digest, &config, &config_bytes)
            .map_err(|e| bad(r, &format!("writing {}: {e}", layout.display())))?;
    }
    Ok(Pulled {
        layout,
        manifest_digest: digest,
    })
}

fn blob_file(layout: &Path, d: &Digest) -> PathBuf {
    layout.join("blobs").join("sha256").join(d.hex())
}

/// Written in a temporary directory renamed into place: a layout is
/// complete or absent.
fn write_layout(
    layout: &Path,
    m: &Value,
    manifest: &[u8],
    digest: &Digest,
    config: &Digest,
    config_bytes: &[u8],
) -> std::io::Result<()> {
    let parent = layout.parent().expect("layout has a parent");
    fs::create_dir_all(parent)?;
    let tmp = tempfile::Builder::new()
        .prefix(".pull-")
        .tempdir_in(parent)?;
    let blobs = tmp.path().join("blobs").join("sha256");
    fs::create_dir_all(&blobs)?;
    fs::write(blobs.join(digest.hex()), manifest)?;
    fs::write(blobs.join(config.hex()), config_bytes)?;
    fs::write(
        tmp.path().join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    let media_type = m
        .get("mediaType")
        .and_then(Value::as_str)
        .unwrap_or("application/vnd.oci.image.manifest.v1+json");
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": media_type,
            "digest": digest.to_string(),
            "size": manifest.len(),
        }],
    });
    fs::write(
        tmp.path().join("index.json"),
        serde_json::to_vec(&index).map_err(std::io::Error::other)?,
    )?;
    let tmp = tmp.keep();
    match fs::rename(&tmp, layout) {
        Ok(()) => Ok(()),
        // Another process made it meanwhile: the same content.
        Err(_) if layout.join("index.json").is_file() => {
            let _ = fs::remove_dir_all(&tmp);
            Ok(())
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chooses_the_platform_of_an_index() {
        let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let index = serde_json::json!({"manifests": [
            {"mediaType": "m", "digest": d('a'), "size": 1, "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": "m", "digest": d('b'), "size": 2, "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
            {"mediaType": "m", "digest": d('c'), "size": 3, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        ]});
        let pick = |p: &str| choose(&index, &Platform::parse(p).unwrap()).map(|c| c.2);
        assert_eq!(pick("linux/amd64"), Some(1));
        assert_eq!(pick("linux/arm/v7"), Some(2));
        assert_eq!(pick("linux/arm/v6"), None);
        assert_eq!(pick("linux/arm64"), Some(3));
        assert_eq!(pick("windows/amd64"), None);
    }
}
