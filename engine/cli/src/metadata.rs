//! What a build reports for machines, as buildx does: `--metadata-file`
//! (buildx's JSON keys; one object per target for a TOML build, as
//! `docker buildx bake --metadata-file`), `-q/--quiet` (the image ID alone
//! on standard output) and `--iidfile`. Humans read standard error; these
//! go to files and standard output only.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use engine_export::{Descriptor, ExportResult};
use serde_json::{Map, Value};

use crate::Failure;

/// What the exports of one graph target produced.
#[derive(Debug, Default, Clone)]
pub struct TargetReport {
    /// The config digest: the image ID (`docker images`, `--iidfile`).
    pub image_id: Option<String>,
    /// The document the first image output wrote or pushed (a manifest, or
    /// an image index).
    pub descriptor: Option<Descriptor>,
    /// The names the image was exported, pushed or loaded under, as given.
    pub names: Vec<String>,
}

/// Per graph target, in name order.
#[derive(Debug, Default)]
pub struct Reports {
    targets: BTreeMap<String, TargetReport>,
}

impl Reports {
    /// An image output of `target` wrote (or pushed, or loaded) `result`
    /// under `names`. The first image output gives the descriptor: every
    /// output of a target holds the same config, and outputs with other
    /// media types (a docker archive beside an OCI layout) have other
    /// manifest digests, so "the" digest is the first one's.
    pub fn exported(&mut self, target: &str, result: &ExportResult, names: &[String]) {
        let t = self.targets.entry(target.to_string()).or_default();
        if t.descriptor.is_none() {
            t.descriptor = Some(result.root.clone());
        }
        if t.image_id.is_none() {
            // Several platforms have no one config: the index digest is
            // the ID, as buildx's getImageID falls back to it.
            t.image_id = Some(
                result
                    .config_digest()
                    .unwrap_or_else(|| result.manifest_digest())
                    .to_string(),
            );
        }
        for n in names {
            if !t.names.contains(n) {
                t.names.push(n.clone());
            }
        }
    }

    /// The image ID of a target exported as no image (no output at all).
    pub fn image_id(&mut self, target: &str, id: String) {
        let t = self.targets.entry(target.to_string()).or_default();
        t.image_id.get_or_insert(id);
    }

    /// A target that was built (its outputs, if any, hold no image).
    pub fn built(&mut self, target: &str) {
        self.targets.entry(target.to_string()).or_default();
    }

    /// Image IDs by target, for `--iidfile` and `-q`.
    pub fn image_ids(&self) -> impl Iterator<Item = (&str, &str)> {
        self.targets
            .iter()
            .filter_map(|(k, t)| Some((k.as_str(), t.image_id.as_deref()?)))
    }
}

/// buildx's metadata object for one target: `containerimage.digest`,
/// `containerimage.config.digest`, `containerimage.descriptor` and
/// `image.name` (the names joined by commas), each when there is one.
pub fn target_json(t: &TargetReport) -> Value {
    let mut m = Map::new();
    if let Some(id) = &t.image_id {
        m.insert("containerimage.config.digest".into(), id.clone().into());
    }
    if let Some(d) = &t.descriptor {
        m.insert("containerimage.digest".into(), d.digest.to_string().into());
        let mut desc = d.clone();
        // As BuildKit's image exporters report a single manifest.
        if let (Some(id), true) = (
            &t.image_id,
            engine_oci::media_type::is_manifest(&d.media_type),
        ) {
            desc.annotations.insert("config.digest".into(), id.clone());
        }
        let desc = serde_json::to_value(&desc).unwrap_or(Value::Null);
        m.insert("containerimage.descriptor".into(), desc);
    }
    if !t.names.is_empty() {
        m.insert("image.name".into(), t.names.join(",").into());
    }
    Value::Object(m)
}

/// The whole file: the one target's object for a Dockerfile build, an
/// object of objects keyed by target name for a TOML build.
pub fn document(reports: &Reports, keyed: bool) -> Value {
    if !keyed {
        return reports
            .targets
            .values()
            .next()
            .map(target_json)
            .unwrap_or_else(|| Value::Object(Map::new()));
    }
    Value::Object(
        reports
            .targets
            .iter()
            .map(|(k, t)| (k.clone(), target_json(t)))
            .collect(),
    )
}

/// Write `value` to `path` as indented JSON, atomically (a temporary file
/// beside it, renamed into place), as buildx does.
pub fn write_json(path: &Path, value: &Value, flag: &str) -> Result<(), Failure> {
    let fail = |e: std::io::Error| {
        Failure::infra(format!("cannot write {flag} `{}`", path.display())).caused_by(&e)
    };
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(fail)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".metadata-")
        .tempfile_in(parent)
        .map_err(fail)?;
    let mut text = serde_json::to_vec_pretty(value).map_err(|e| fail(std::io::Error::other(e)))?;
    text.push(b'\n');
    tmp.write_all(&text).map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

/// Checked before anything is built: a metadata file cannot be a
/// directory.
pub fn check_path(path: &Path, flag: &str) -> Result<(), Failure> {
    if path.is_dir() {
        return Err(Failure::hint(
            format!("{flag} `{}` is a directory", path.display()),
            "name a file, e.g. --metadata-file metadata.json",
        ));
    }
    Ok(())
}

/// `-q`: the image ID of each target on standard output, nothing else
/// (`TARGET ID` per line when a TOML build has several targets).
pub fn print_quiet(reports: &Reports, several: bool) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    let mut text = String::new();
    for (target, id) in reports.image_ids() {
        if several {
            text.push_str(&format!("{target} {id}\n"));
        } else {
            text.push_str(&format!("{id}\n"));
        }
    }
    if text.is_empty() {
        eprintln!(
            "warning: --quiet: the build exported no image (type=local and type=tar outputs \
             have no image ID)"
        );
        return Ok(());
    }
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Failure::infra("cannot write to standard output").caused_by(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine_export::{Digest, ExportedImage};

    fn result() -> ExportResult {
        let m = Descriptor::new(engine_oci::media_type::OCI_MANIFEST, Digest::of(b"m"), 1);
        let c = Descriptor::new(engine_oci::media_type::OCI_CONFIG, Digest::of(b"c"), 1);
        ExportResult {
            root: m.clone(),
            images: vec![ExportedImage {
                manifest: m,
                config: c,
            }],
        }
    }

    #[test]
    fn buildx_keys() {
        let mut r = Reports::default();
        r.exported("default", &result(), &["a:1".into(), "b:2".into()]);
        r.exported("default", &result(), &["a:1".into()]);
        let v = document(&r, false);
        assert_eq!(v["containerimage.digest"], Digest::of(b"m").to_string());
        assert_eq!(
            v["containerimage.config.digest"],
            Digest::of(b"c").to_string()
        );
        assert_eq!(v["image.name"], "a:1,b:2");
        let d = &v["containerimage.descriptor"];
        assert_eq!(d["mediaType"], engine_oci::media_type::OCI_MANIFEST);
        assert_eq!(d["size"], 1);
        assert_eq!(
            d["annotations"]["config.digest"],
            v["containerimage.config.digest"]
        );
        let keyed = document(&r, true);
        assert_eq!(keyed["default"], v);
    }

    #[test]
    fn a_target_without_an_image_is_an_empty_object() {
        let mut r = Reports::default();
        r.built("rootfs");
        assert_eq!(document(&r, true)["rootfs"], serde_json::json!({}));
        assert_eq!(r.image_ids().count(), 0);
    }
}
