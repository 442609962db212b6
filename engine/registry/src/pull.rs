//! Pulling an image for one platform: its manifest and config into a small
//! OCI layout (what the engine already reads base images from), its layers
//! straight into the blob store.

use std::fs;
use std::path::{Path, PathBuf};

use engine_cache::BlobStore;
use engine_ir::Platform;
use engine_oci::layout::{self, blob_path};
use engine_oci::{media_type, Descriptor, Digest, Index, Manifest, PlatformMatcher, Reference};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::{Client, Error, Result, CONFIG_CAP};

/// A pulled image: the layout that holds its manifest and config, and the
/// manifest's digest (the platform-specific one).
#[derive(Debug, Clone)]
pub struct Pulled {
    pub layout: PathBuf,
    pub manifest_digest: Digest,
}

fn bad(r: &Reference, what: &str) -> Error {
    Error::Other(format!("{r}: {what}"))
}

fn parse<T: DeserializeOwned>(r: &Reference, what: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| bad(r, &format!("{what}: {e}")))
}

/// The entries of an image index that are descriptors the engine can
/// follow; an entry it cannot (say, a sha512 digest) is skipped rather
/// than failing the whole index, as a pull only needs one of them.
fn index_entries(r: &Reference, bytes: &[u8]) -> Result<Vec<Descriptor>> {
    #[derive(Deserialize)]
    struct Entries {
        manifests: Vec<serde_json::Value>,
    }
    let entries: Entries = parse(r, "index", bytes)?;
    Ok(entries
        .manifests
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect())
}

/// Resolve `r` to the manifest for `platform`: `(manifest, its digest)`.
/// From an index, the entry [`PlatformMatcher`] picks.
pub fn resolve(client: &Client, r: &Reference, platform: &Platform) -> Result<(Vec<u8>, Digest)> {
    let top = client.manifest(r)?;
    if !media_type::is_index(&top.media_type) {
        return Ok((top.bytes, top.digest));
    }
    let entries = index_entries(r, &top.bytes)?;
    let chosen = PlatformMatcher::new(platform)
        .best_descriptor(&entries)
        .ok_or_else(|| bad(r, &format!("the image has no manifest for {platform}")))?;
    let m = client.manifest_in_index(&r.with_digest(chosen.digest), chosen.size)?;
    if media_type::is_index(&m.media_type) {
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
    let m: Manifest = parse(r, "manifest", &manifest)?;
    Ok((
        client.blob_bytes(r, &m.config.digest, m.config.size, CONFIG_CAP)?,
        digest,
    ))
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
        Some(d) => match fs::read(blob_path(&pulls.join(d.hex()), d)) {
            Ok(bytes) if Digest::of(&bytes) == *d => (bytes, *d),
            _ => resolve(client, r, platform)?,
        },
        None => resolve(client, r, platform)?,
    };
    let m: Manifest = parse(r, "manifest", &manifest)?;
    for l in &m.layers {
        if store.contains(&l.digest) && store.size(&l.digest).ok() == Some(l.size) {
            continue;
        }
        // Held to the declared size: a longer or shorter body is discarded.
        client.blob_into_store(r, &l.digest, l.size, store)?;
    }
    let dir = pulls.join(digest.hex());
    if !dir.join(layout::INDEX_FILE).is_file() {
        let config = &m.config;
        let config_bytes = match fs::read(blob_path(&dir, &config.digest)) {
            Ok(b) if Digest::of(&b) == config.digest => b,
            _ => client.blob_bytes(r, &config.digest, config.size, CONFIG_CAP)?,
        };
        write_layout(&dir, &m, &manifest, &digest, &config_bytes)
            .map_err(|e| bad(r, &format!("writing {}: {e}", dir.display())))?;
    }
    Ok(Pulled {
        layout: dir,
        manifest_digest: digest,
    })
}

/// Written in a temporary directory renamed into place: a layout is
/// complete or absent.
fn write_layout(
    dir: &Path,
    m: &Manifest,
    manifest: &[u8],
    digest: &Digest,
    config_bytes: &[u8],
) -> std::io::Result<()> {
    let parent = dir.parent().expect("layout has a parent");
    fs::create_dir_all(parent)?;
    let tmp = tempfile::Builder::new()
        .prefix(".pull-")
        .tempdir_in(parent)?;
    let manifest_path = blob_path(tmp.path(), digest);
    fs::create_dir_all(manifest_path.parent().expect("blob paths have a parent"))?;
    fs::write(manifest_path, manifest)?;
    fs::write(blob_path(tmp.path(), &m.config.digest), config_bytes)?;
    fs::write(
        tmp.path().join(layout::LAYOUT_FILE),
        layout::LayoutFile::current_json(),
    )?;
    let media_type = m.media_type.as_deref().unwrap_or(media_type::OCI_MANIFEST);
    let index = Index::new(
        Some(media_type::OCI_INDEX),
        vec![Descriptor::new(media_type, *digest, manifest.len() as u64)],
    );
    fs::write(
        tmp.path().join(layout::INDEX_FILE),
        serde_json::to_vec(&index).map_err(std::io::Error::other)?,
    )?;
    let tmp = tmp.keep();
    match fs::rename(&tmp, dir) {
        Ok(()) => Ok(()),
        // Another process made it meanwhile: the same content.
        Err(_) if dir.join(layout::INDEX_FILE).is_file() => {
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

    /// The registry's pick from an index is the one platform matcher's:
    /// arm/v7 takes an arm/v6 image (layout imports always did; pulls did
    /// not), arm64 is arm64/v8, and entries the engine cannot follow are
    /// skipped, not fatal.
    #[test]
    fn chooses_the_platform_of_an_index() {
        let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let m = media_type::OCI_MANIFEST;
        let index = serde_json::json!({"manifests": [
            {"mediaType": m, "digest": format!("sha512:{}", "f".repeat(128)), "size": 9, "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": m, "digest": d('a'), "size": 1, "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": m, "digest": d('b'), "size": 2, "platform": {"os": "linux", "architecture": "arm", "variant": "v6"}},
            {"mediaType": m, "digest": d('c'), "size": 3, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            {"mediaType": m, "digest": d('e'), "size": 5, "platform": {"os": "unknown", "architecture": "unknown"}},
        ]});
        let r = Reference::parse("localhost:5000/app").unwrap();
        let entries = index_entries(&r, &serde_json::to_vec(&index).unwrap()).unwrap();
        assert_eq!(entries.len(), 4, "the sha512 entry is skipped");
        let pick = |p: &str| {
            PlatformMatcher::new(&Platform::parse(p).unwrap())
                .best_descriptor(&entries)
                .map(|c| c.size)
        };
        assert_eq!(pick("linux/amd64"), Some(1));
        assert_eq!(pick("linux/arm/v7"), Some(2));
        assert_eq!(pick("linux/arm/v6"), Some(2));
        assert_eq!(pick("linux/arm/v5"), None);
        assert_eq!(pick("linux/arm64"), Some(3));
        assert_eq!(pick("linux/arm64/v8"), Some(3));
        assert_eq!(pick("windows/amd64"), None);
        assert!(index_entries(&r, b"{}").is_err());
    }
}
