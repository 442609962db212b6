//! From a solved image value to exportable blobs: each step's layer
//! directory becomes a layer blob (once; remembered by the cache store),
//! empty diffs are dropped and their history marked `empty_layer`, and the
//! config is written with diff ids, history and platform.

use std::fs;
use std::sync::Arc;

use engine_cache::{Digest, LayerRef, StepLayer};
use engine_export::{ConfigSource, ImageToExport, LayerBlob, LayerMediaType};
use engine_ir::config::ImageConfig;
use engine_ir::Platform;
use engine_layers::{Compression, LayerOptions};

use crate::run::{StepError, Value};
use crate::snapshot::Layer;
use crate::state::StateDir;

#[derive(Debug, Clone, Copy)]
pub struct LayerSettings {
    pub compression: Compression,
    pub source_date_epoch: Option<i64>,
}

fn media(c: Compression) -> LayerMediaType {
    match c {
        Compression::Gzip => LayerMediaType::TarGzip,
        Compression::Zstd => LayerMediaType::TarZstd,
        Compression::None => LayerMediaType::Tar,
    }
}

fn dir_is_empty(p: &std::path::Path) -> bool {
    fs::read_dir(p)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}

/// The settings part of a layer record's name: one blob per step and
/// settings.
pub fn layer_tag(s: LayerSettings) -> String {
    // zstd layers are written in zstd's multi-threaded mode (engine-layers),
    // whose bytes differ from the single-threaded ones remembered before:
    // a new tag, so that no machine reuses an old blob where another would
    // write a new one (the same inputs must give the same digest).
    let compression = match s.compression {
        Compression::Zstd => "ZstdMt".to_string(),
        c => format!("{c:?}"),
    };
    format!(
        "{}-{}",
        compression,
        s.source_date_epoch
            .map_or("none".to_string(), |e| e.to_string())
    )
}

fn cache_err(e: engine_cache::CacheError) -> StepError {
    StepError::Message(format!("cache: {e}"))
}

/// The blob of one step layer, written on first use and remembered by the
/// cache store beside the snapshot (`layer-<tag>.json`) and in the index.
/// A remembered blob that is missing or damaged is made again.
pub(crate) fn step_blob(
    state: &StateDir,
    layer: &Layer,
    s: LayerSettings,
) -> Result<Option<LayerBlob>, StepError> {
    let tag = layer_tag(s);
    let store = &state.store;
    let media_type = media(s.compression);
    match store.step_layer(&layer.key, &tag).map_err(cache_err)? {
        Some(StepLayer::Empty) => return Ok(None),
        Some(StepLayer::Blob(b)) => {
            return Ok(Some(LayerBlob {
                digest: b.digest,
                diff_id: b.diff_id,
                size: b.size,
                media_type,
            }))
        }
        None => {}
    }
    if dir_is_empty(&layer.dir) {
        store
            .put_step_layer(&layer.key, &tag, &StepLayer::Empty)
            .map_err(cache_err)?;
        return Ok(None);
    }
    // Collection must not take the blob between its commit and the lease.
    let _using = store.using().map_err(cache_err)?;
    let mut w = state
        .blobs
        .writer()
        .map_err(|e| StepError::Message(e.to_string()))?;
    let opts = LayerOptions {
        source_date_epoch: s.source_date_epoch,
        compression: s.compression,
        overlay_upper: true,
    };
    // The store's writer hashes the blob; the layer writer only the tar.
    let (diff_id, _) = engine_layers::write_layer_unhashed(&layer.dir, &mut w, &opts)
        .map_err(|e| StepError::Message(format!("cannot write layer: {e}")))?;
    let (digest, size) = store.commit_blob(w).map_err(cache_err)?;
    let diff_id = Digest::parse(&diff_id).map_err(|e| StepError::Message(e.to_string()))?;
    let blob = LayerBlob {
        digest,
        diff_id,
        size,
        media_type,
    };
    store
        .put_step_layer(
            &layer.key,
            &tag,
            &StepLayer::Blob(LayerRef {
                digest,
                diff_id,
                size,
                media_type: media_type.oci().to_string(),
            }),
        )
        .map_err(cache_err)?;
    Ok(Some(blob))
}

/// Build the exportable image for a solved image value.
pub fn assemble(
    state: &StateDir,
    value: &Value,
    platform: &Platform,
    s: LayerSettings,
) -> Result<ImageToExport, StepError> {
    let fs_snap = value.fs.clone().unwrap_or_default();
    let mut config: ImageConfig = value
        .config
        .as_deref()
        .cloned()
        .unwrap_or_else(ImageConfig::scratch);
    let mut layers: Vec<LayerBlob> = Vec::new();
    // One flag per step layer (not base layers): did it produce a blob?
    let mut step_nonempty: Vec<bool> = Vec::new();
    for layer in &fs_snap.layers {
        let base = layer
            .blobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match base {
            Some(blobs) => layers.extend(blobs),
            None => {
                let b = step_blob(state, layer, s)?;
                step_nonempty.push(b.is_some());
                layers.extend(b);
            }
        }
    }
    // The last N history entries that claim a layer belong to the N steps.
    let claiming: Vec<usize> = config
        .history
        .iter()
        .enumerate()
        .filter(|(_, h)| !h.empty_layer)
        .map(|(i, _)| i)
        .collect();
    let n = step_nonempty.len().min(claiming.len());
    for (k, idx) in claiming[claiming.len() - n..].iter().enumerate() {
        if !step_nonempty[step_nonempty.len() - n + k] {
            config.history[*idx].empty_layer = true;
        }
    }
    let created = s.source_date_epoch.map(crate::image_config::rfc3339);
    let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.to_string()).collect();
    let json = crate::image_config::to_json(&config, platform, &diff_ids, created.as_deref());
    Ok(ImageToExport {
        config: ConfigSource::Json(json),
        layers,
        annotations: Default::default(),
        platform: platform.clone(),
    })
}

/// Layers of a value, bottom first, for the rootfs exporters.
pub fn layer_dirs(value: &Value) -> Vec<Arc<Layer>> {
    value.fs.clone().unwrap_or_default().layers
}
