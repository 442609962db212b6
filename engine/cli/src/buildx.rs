//! buildx's shorthands and image decorations, for every target of a build
//! (a Dockerfile's one, or each TOML target): `--push` (an output
//! `type=registry` under the target's tags), `--load` (an output
//! `type=docker` loaded into the local Docker daemon), `--label` (image
//! config labels) and `--annotation` (manifest and index annotations).

use std::collections::BTreeMap;

use engine_layers::Compression;

use crate::cli::BuildArgs;
use crate::outputs::{Kind, Output};
use crate::Failure;

/// The outputs `--push` and `--load` stand for: each pushes or loads the
/// target under its names (`-t`, or a TOML target's `tags`).
fn flag_outputs(args: &BuildArgs) -> Vec<Output> {
    let mut v = Vec::new();
    for (on, kind) in [(args.push, Kind::Registry), (args.load, Kind::Load)] {
        if on {
            v.push(Output {
                kind,
                dest: Default::default(),
                names: vec![],
                compression: Compression::Gzip,
            });
        }
    }
    v
}

/// Add the outputs of `--push` and `--load` to every target (`exports`:
/// target → its outputs and tags), unless it has the same output already
/// (`--push` beside `-o type=registry`); then check, before anything is
/// built, that every registry output has a name to push to, and that a
/// Docker daemon answers when an image is to be loaded into it.
pub fn add_flag_outputs(
    args: &BuildArgs,
    exports: &mut BTreeMap<String, (Vec<Output>, Vec<String>)>,
    toml: bool,
) -> Result<Option<crate::docker::Daemon>, Failure> {
    let extra = flag_outputs(args);
    for (outs, _) in exports.values_mut() {
        for o in &extra {
            if !outs.iter().any(|x| x.kind == o.kind && x.names.is_empty()) {
                outs.push(o.clone());
            }
        }
    }
    let mut load = false;
    for (target, (outs, tags)) in exports.iter() {
        for o in outs {
            load |= o.kind == Kind::Load;
            if o.kind == Kind::Registry && o.names.is_empty() && tags.is_empty() {
                let message = if toml {
                    format!("target `{target}`: type=registry has no name to push to")
                } else {
                    "type=registry has no name to push to".to_string()
                };
                let hint = if toml {
                    "give the target tags = [\"REGISTRY/REPOSITORY:TAG\"], or pass -t"
                } else if args.push {
                    "--push pushes the -t names: pass -t REGISTRY/REPOSITORY:TAG"
                } else {
                    "add name=REGISTRY/REPOSITORY:TAG to the output, or pass -t"
                };
                return Err(Failure::hint(message, hint));
            }
        }
    }
    if !load {
        return Ok(None);
    }
    let daemon = crate::docker::Daemon::from_env()?;
    daemon.ping()?;
    Ok(Some(daemon))
}

/// `--load` (an output `type=docker` without a dest): the image streamed
/// into the daemon as a docker archive, tagged with `opts.names`.
pub fn load(
    daemon: Option<&crate::docker::Daemon>,
    image: &engine_export::ImageToExport,
    store: &engine_cache::BlobStore,
    opts: &engine_export::ExportOptions,
    quiet: bool,
) -> Result<engine_export::ExportResult, Failure> {
    let daemon = daemon.ok_or_else(|| Failure::infra("--load: no docker daemon was checked"))?;
    let (result, loaded) = daemon.load(|w| {
        engine_export::write_docker_archive(image, store, w, opts)
            .map_err(|e| Failure::infra("--load: cannot write the image").caused_by(&e))
    })?;
    if !quiet {
        let what = if loaded.is_empty() {
            result
                .config_digest()
                .map(|d| d.to_string())
                .unwrap_or_default()
        } else {
            loaded.join(", ")
        };
        eprintln!("loaded {what} into the docker daemon");
    }
    Ok(result)
}

/// `--label` and `--annotation`, applied to every image a build exports.
/// Both are written through canonical JSON and sorted maps, so they enter
/// the digests deterministically.
#[derive(Debug, Default, Clone)]
pub struct Decorations {
    /// Config labels; they win over a Dockerfile's `LABEL` of the same key,
    /// as `docker build --label` does.
    labels: BTreeMap<String, String>,
    /// Manifest annotations; one with a platform applies to that
    /// platform's image only.
    manifest: Vec<(Option<engine_ir::Platform>, String, String)>,
    /// Image index annotations (see `ExportOptions::index_annotations`).
    pub index: BTreeMap<String, String>,
}

const ANNOTATION_FORMS: &str = "write --annotation KEY=VALUE (the manifest), \
     manifest:KEY=VALUE, manifest[os/arch]:KEY=VALUE or index:KEY=VALUE";

/// `TYPE[PLATFORM]:` before a key, as buildx parses it
/// (`^(?:([a-z-]+)(?:\[([A-Za-z0-9_/-]+)\])?:)?(\S+)$`): the type, its
/// platform and the key. Without such a prefix the whole is the key.
fn split_annotation_key(k: &str) -> (&str, Option<&str>, &str) {
    let Some((prefix, key)) = k.split_once(':') else {
        return ("", None, k);
    };
    let (typ, platform) = match prefix.strip_suffix(']').and_then(|p| p.split_once('[')) {
        Some((t, p)) => (t, Some(p)),
        None => (prefix, None),
    };
    let typ_ok = !typ.is_empty() && typ.bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
    let platform_ok = platform.is_none_or(|p| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_/-".contains(&b))
    });
    if typ_ok && platform_ok {
        (typ, platform, key)
    } else {
        ("", None, k)
    }
}

pub fn decorations(args: &BuildArgs) -> Result<Decorations, Failure> {
    let mut d = Decorations::default();
    for raw in &args.labels {
        // docker build: KEY alone is a label with an empty value.
        let (k, v) = raw.split_once('=').unwrap_or((raw.as_str(), ""));
        if k.trim().is_empty() {
            return Err(Failure::hint(
                format!("invalid --label `{raw}`: empty key"),
                "write --label KEY=VALUE",
            ));
        }
        d.labels.insert(k.to_string(), v.to_string());
    }
    for raw in &args.annotations {
        let Some((k, v)) = raw.split_once('=') else {
            return Err(Failure::hint(
                format!("invalid --annotation `{raw}`: no `=`"),
                ANNOTATION_FORMS,
            ));
        };
        let (typ, platform, key) = split_annotation_key(k);
        if key.is_empty() || key.chars().any(char::is_whitespace) {
            return Err(Failure::hint(
                format!("invalid --annotation `{raw}`: the key is empty or has whitespace"),
                ANNOTATION_FORMS,
            ));
        }
        match typ {
            "" | "manifest" => {
                let platform = platform
                    .map(|p| {
                        engine_ir::Platform::parse(p)
                            .map_err(|e| Failure::msg(format!("invalid --annotation `{raw}`: {e}")))
                    })
                    .transpose()?;
                d.manifest.push((platform, key.to_string(), v.to_string()));
            }
            "index" if platform.is_none() => {
                d.index.insert(key.to_string(), v.to_string());
            }
            "index" => {
                return Err(Failure::hint(
                    format!("invalid --annotation `{raw}`: an index is not for one platform"),
                    "write index:KEY=VALUE",
                ))
            }
            "manifest-descriptor" | "index-descriptor" => {
                return Err(Failure::hint(
                    format!("--annotation `{raw}`: {typ} annotations are not supported"),
                    "annotate the document itself: manifest:KEY=VALUE or index:KEY=VALUE",
                ))
            }
            other => {
                return Err(Failure::hint(
                    format!("invalid --annotation `{raw}`: unknown annotation type `{other}`"),
                    ANNOTATION_FORMS,
                ))
            }
        }
    }
    Ok(d)
}

/// Why an image could not be assembled for export.
#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    #[error("cannot assemble the image")]
    Image(#[source] engine_solver::run::StepError),
    #[error("cannot add --label to the image config")]
    Labels(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// `engine_solver::image::assemble`, then `--label` and `--annotation`.
pub fn assemble(
    d: &Decorations,
    state: &engine_solver::state::StateDir,
    value: &engine_solver::run::Value,
    platform: &engine_ir::Platform,
    settings: engine_solver::image::LayerSettings,
) -> Result<engine_export::ImageToExport, AssembleError> {
    let mut image = engine_solver::image::assemble(state, value, platform, settings)
        .map_err(AssembleError::Image)?;
    if !d.labels.is_empty() {
        let labels_err = |e: Box<dyn std::error::Error + Send + Sync>| AssembleError::Labels(e);
        let bytes = image.config_bytes().map_err(|e| labels_err(Box::new(e)))?;
        let mut config: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| labels_err(Box::new(e)))?;
        let obj = config
            .as_object_mut()
            .ok_or_else(|| labels_err("the image config is not a json object".into()))?;
        let runtime = obj
            .entry("config")
            .or_insert_with(|| serde_json::json!({}))
            .as_object_mut()
            .ok_or_else(|| labels_err("the image config's `config` is not a json object".into()))?;
        let labels = runtime
            .entry("Labels")
            .or_insert_with(|| serde_json::json!({}));
        if !labels.is_object() {
            *labels = serde_json::json!({});
        }
        if let Some(labels) = labels.as_object_mut() {
            for (k, v) in &d.labels {
                labels.insert(k.clone(), v.clone().into());
            }
        }
        image.config = engine_export::ConfigSource::Json(config);
    }
    let own = platform.to_string();
    for (p, k, v) in &d.manifest {
        if p.as_ref().is_none_or(|p| p.to_string() == own) {
            image.annotations.insert(k.clone(), v.clone());
        }
    }
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotation_prefixes_as_buildx_reads_them() {
        assert_eq!(split_annotation_key("a.b"), ("", None, "a.b"));
        assert_eq!(split_annotation_key("index:a.b"), ("index", None, "a.b"));
        assert_eq!(
            split_annotation_key("manifest[linux/arm64]:a"),
            ("manifest", Some("linux/arm64"), "a")
        );
        // Not a type: a key with a colon.
        assert_eq!(
            split_annotation_key("org.example:a"),
            ("", None, "org.example:a")
        );
        assert_eq!(split_annotation_key("Foo:a"), ("", None, "Foo:a"));
    }
}
