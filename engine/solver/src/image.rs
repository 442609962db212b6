//! From a solved image value to exportable blobs: each step's layer
//! directory becomes a layer blob (once; remembered by the cache store),
//! empty diffs are dropped and their history marked `empty_layer`, and the
//! config is written with diff ids, history and platform.

use std::fs;
use std::sync::Arc;

use engine_cache::{Digest, LayerRef, StepLayer};
use engine_export::{ConfigSource, ImageToExport, LayerBlob};
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
    e.into()
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
    let media_type = s.compression.media_type();
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
    let mut w = state.blobs.writer()?;
    let opts = LayerOptions {
        source_date_epoch: s.source_date_epoch,
        compression: s.compression,
        overlay_upper: true,
    };
    // The store's writer hashes the blob; the layer writer only the tar.
    let (diff_id, _) =
        engine_layers::write_layer_unhashed(&layer.dir, &mut w, &opts).map_err(|source| {
            StepError::layer(
                format!("cannot write the layer of {}", layer.dir.display()),
                source,
            )
        })?;
    let (digest, size) = store.commit_blob(w).map_err(cache_err)?;
    let diff_id = Digest::parse(&diff_id)
        .map_err(|e| StepError::Other(format!("the layer writer's diff id: {e}")))?;
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
    let mut step_keys: Vec<&str> = Vec::new();
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
                step_keys.push(&layer.key);
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
        let step = step_nonempty.len() - n + k;
        let entry = &mut config.history[*idx];
        if !step_nonempty[step] {
            entry.empty_layer = true;
        } else if entry.created.is_none() {
            // The step's layer dates from when the step first ran: its
            // snapshot's creation, which a no-op rebuild does not change.
            let secs = s.source_date_epoch.or_else(|| {
                state
                    .store
                    .snapshot_created(step_keys[step])
                    .and_then(|t| i64::try_from(t).ok())
            });
            entry.created = secs.map(crate::image_config::rfc3339);
        }
    }
    let created = creation_times(&mut config.history, s.source_date_epoch);
    let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.to_string()).collect();
    let json = crate::image_config::to_json(&config, platform, &diff_ids, created.as_deref());
    Ok(ImageToExport {
        config: ConfigSource::Json(json),
        layers,
        annotations: Default::default(),
        platform: platform.clone(),
    })
}

/// Gives the history entries that have no `created` one, as BuildKit's
/// image exporter does, and returns the image's `created`.
///
/// With `SOURCE_DATE_EPOCH` every entry of this build is dated at it (a base
/// image's entries keep their own), and so is the image. Otherwise the
/// entries of steps that made a layer carry that layer's time (set by the
/// caller), an entry without one takes the time of the nearest dated entry
/// before it (or, before any entry of this build is dated, the first
/// layer time of this build), and the image is as old as its last entry.
/// `None` when nothing is dated (a `FROM scratch` image with no layer).
pub(crate) fn creation_times(
    history: &mut [engine_ir::config::HistoryEntry],
    epoch: Option<i64>,
) -> Option<String> {
    if let Some(e) = epoch {
        let t = crate::image_config::rfc3339(e);
        for h in history.iter_mut().filter(|h| h.created.is_none()) {
            h.created = Some(t.clone());
        }
        return Some(t);
    }
    // BuildKit's normalizeLayersAndHistory: the first time found after an
    // undated entry (or the last time of all), then a running fill.
    let mut created: Option<String> = None;
    let mut undated = false;
    for h in history.iter() {
        match &h.created {
            Some(t) => {
                created = Some(t.clone());
                if undated {
                    break;
                }
            }
            None => undated = true,
        }
    }
    let mut undated = false;
    for h in history.iter_mut() {
        match &h.created {
            Some(t) => {
                if undated {
                    created = Some(t.clone());
                }
            }
            None => {
                undated = true;
                h.created = created.clone();
            }
        }
    }
    history.last().and_then(|h| h.created.clone())
}

/// Layers of a value, bottom first, for the rootfs exporters.
pub fn layer_dirs(value: &Value) -> Vec<Arc<Layer>> {
    value.fs.clone().unwrap_or_default().layers
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine_ir::config::HistoryEntry;

    fn entry(created: Option<&str>, by: &str) -> HistoryEntry {
        HistoryEntry {
            created: created.map(str::to_string),
            created_by: by.into(),
            ..Default::default()
        }
    }

    fn times(h: &[HistoryEntry]) -> Vec<Option<&str>> {
        h.iter().map(|e| e.created.as_deref()).collect()
    }

    #[test]
    fn undated_entries_are_dated_as_buildkit_does() {
        // base (dated), ENV, COPY (its layer's time), RUN (its layer's), CMD
        let mut h = vec![
            entry(Some("B"), "base"),
            entry(None, "ENV"),
            entry(Some("T1"), "COPY"),
            entry(Some("T2"), "RUN"),
            entry(None, "CMD"),
        ];
        assert_eq!(creation_times(&mut h, None).as_deref(), Some("T2"));
        assert_eq!(
            times(&h),
            [Some("B"), Some("T1"), Some("T1"), Some("T2"), Some("T2")]
        );
        // an undated base takes the first time of the build
        let mut h = vec![entry(None, "base"), entry(Some("T1"), "COPY")];
        assert_eq!(creation_times(&mut h, None).as_deref(), Some("T1"));
        assert_eq!(times(&h), [Some("T1"), Some("T1")]);
        // no layer of its own: the base's time
        let mut h = vec![entry(Some("B"), "base"), entry(None, "ENV")];
        assert_eq!(creation_times(&mut h, None).as_deref(), Some("B"));
        // nothing dated at all
        let mut h = vec![entry(None, "ENV")];
        assert_eq!(creation_times(&mut h, None), None);
        assert_eq!(times(&h), [None]);
    }

    #[test]
    fn source_date_epoch_dates_the_build_and_keeps_the_base() {
        let mut h = vec![entry(Some("B"), "base"), entry(None, "ENV")];
        let t = creation_times(&mut h, Some(1_700_000_000));
        assert_eq!(t.as_deref(), Some("2023-11-14T22:13:20Z"));
        assert_eq!(times(&h), [Some("B"), Some("2023-11-14T22:13:20Z")]);
    }
}
