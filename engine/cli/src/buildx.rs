//! buildx's shorthands and image decorations, for every target of a build
//! (a Dockerfile's one, or each TOML target): `--push` (an output
//! `type=registry` under the target's tags), `--load` (an output
//! `type=docker` loaded into the local Docker daemon).

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
    let daemon = daemon.ok_or_else(|| Failure::msg("--load: no docker daemon was checked"))?;
    let (result, loaded) = daemon.load(|w| {
        engine_export::write_docker_archive(image, store, w, opts)
            .map_err(|e| Failure::msg(format!("--load: {e}")))
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
