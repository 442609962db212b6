//! The TOML frontend: one declarative file (`engine.toml`) that builds every
//! image of a monorepo in one graph.
//!
//! A spec declares `[vars]`, reusable `[stage.NAME]`s, `[image.NAME]`s
//! (inline, or backed by a Dockerfile), `[template.NAME]`s of shared
//! settings, `[group.NAME]`s of targets and the `[limits]` of RUN steps;
//! `specs/toml.md` is the reference.
//! [`plan`] lowers the selected targets onto one [`engine_ir::Graph`]:
//! inline stages are lowered through the Dockerfile frontend (as the
//! Dockerfile text [`dockerfile_of`] shows), so their semantics are the
//! Dockerfile's, and equal nodes merge, so a stage every image uses is built
//! once.
//!
//! Like every frontend this crate does no I/O: the caller passes the spec's
//! text, a resolver for base images and a function that reads files
//! (Dockerfiles, `.dockerignore`s) relative to the spec's directory.

pub mod error;
mod gen;
mod plan;
mod spec;
mod tree;
mod vars;

use std::collections::BTreeMap;

use engine_dockerfile::lower::NamedContext;
use engine_ir::{Graph, ImageResolver, Platform};
use serde::Serialize;

pub use error::{Location, TomlError};
pub use spec::{Exporter, Limits};

/// The spec's file name when none is given.
pub const DEFAULT_FILE: &str = "engine.toml";

/// See [`TomlPlanOptions::check_dir`].
pub type CheckDir<'a> = dyn Fn(&str) -> Result<(), String> + 'a;

pub struct TomlPlanOptions<'a> {
    /// The spec's name as errors and node locations show it.
    pub file_name: String,
    /// Stages, images or groups to build. Empty: the `default` group if the
    /// spec has one, else every image.
    pub targets: Vec<String>,
    /// `--set NAME=VALUE` / `--build-arg NAME=VALUE`: overrides of `[vars]`;
    /// names `[vars]` does not declare are build arguments for the ARGs of
    /// every stage and Dockerfile.
    pub vars: BTreeMap<String, String>,
    /// The platform of targets that do not list `platforms`.
    pub platform: Platform,
    pub build_platform: Platform,
    /// `--build-context NAME=…` from the command line (an `oci-layout://`
    /// base, for example). A stage's own `contexts` take precedence.
    pub named_contexts: BTreeMap<String, NamedContext>,
    pub resolver: &'a dyn ImageResolver,
    /// Reads a file, by its path relative to the spec's directory
    /// (`services/legacy/Dockerfile`, `services/api/.dockerignore`). A
    /// `NotFound` error means "no such file", which is fine for ignore files.
    pub read_file: &'a dyn Fn(&str) -> std::io::Result<String>,
    /// Checks that a context directory (relative to the spec's directory,
    /// `services/api`) is one, before anything is built: `Err` says why not
    /// (`` `/abs/services/apii` does not exist ``) and fails the plan at the
    /// `context` that names it. `None`: not checked.
    pub check_dir: Option<&'a CheckDir<'a>>,
}

impl<'a> TomlPlanOptions<'a> {
    /// Defaults: `engine.toml`, the default targets, linux/amd64.
    pub fn new(
        resolver: &'a dyn ImageResolver,
        read_file: &'a dyn Fn(&str) -> std::io::Result<String>,
    ) -> Self {
        TomlPlanOptions {
            file_name: DEFAULT_FILE.into(),
            targets: Vec::new(),
            vars: BTreeMap::new(),
            platform: Platform::linux_amd64(),
            build_platform: Platform::linux_amd64(),
            named_contexts: BTreeMap::new(),
            resolver,
            read_file,
            check_dir: None,
        }
    }
}

#[derive(Debug)]
pub struct TomlPlan {
    /// One graph for every selected target (and platform).
    pub graph: Graph,
    /// The selected targets, in the order they were asked for (groups
    /// expanded, each target once).
    pub targets: Vec<TargetInfo>,
    /// `[limits]`: resource limits of the build's RUN steps (the command
    /// line's flags win over them).
    pub limits: Limits,
    pub warnings: Vec<String>,
}

/// What the caller needs to export one selected target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetInfo {
    pub name: String,
    /// `image` or `stage`.
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A Dockerfile target's Dockerfile, relative to the spec's directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    /// A Dockerfile target's build arguments, after `[vars]` and `--set`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, String>,
    pub tags: Vec<String>,
    pub platforms: Vec<Platform>,
    /// The graph target of each platform: the target's name when it has one
    /// platform, `NAME@os/arch[/variant]` when it has several.
    pub images: Vec<PlatformImage>,
    pub outputs: Vec<Exporter>,
    pub cache_to: Vec<Exporter>,
    pub cache_from: Vec<Exporter>,
    /// Local sources the target reads: source name → directory relative to
    /// the spec's directory (the name is the directory, so each service's
    /// context is distinct and the same on every machine).
    pub context_dirs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlatformImage {
    pub platform: Platform,
    /// The name of the graph target (`Graph::target`).
    pub target: String,
}

fn read_spec(
    text: &str,
    file_name: &str,
    vars: &BTreeMap<String, String>,
) -> Result<(spec::Spec, error::SourceMap), TomlError> {
    let map = error::SourceMap::new(file_name, text);
    let root = tree::parse(text, &map)?;
    let spec = spec::read(&root, &map, vars)?;
    Ok((spec, map))
}

/// Parse, check and lower a spec.
pub fn plan(text: &str, opts: &TomlPlanOptions<'_>) -> Result<TomlPlan, TomlError> {
    let (spec, map) = read_spec(text, &opts.file_name, &opts.vars)?;
    plan::plan(&spec, &map, opts)
}

/// Parse and check a spec without lowering it (no file is read): syntax,
/// keys, types, variables, references and cycles.
pub fn check(
    text: &str,
    file_name: &str,
    vars: &BTreeMap<String, String>,
) -> Result<(), TomlError> {
    read_spec(text, file_name, vars).map(|_| ())
}

/// The names a spec defines: (name, `stage` | `image` | `group`), in
/// document order, for completion and `--target` listings.
pub fn target_names(text: &str, file_name: &str) -> Result<Vec<(String, String)>, TomlError> {
    let (spec, _) = read_spec(text, file_name, &BTreeMap::new())?;
    let mut out: Vec<(String, String)> = spec
        .units
        .iter()
        .map(|u| (u.name.clone(), u.kind.word().to_string()))
        .collect();
    out.extend(
        spec.groups
            .iter()
            .map(|g| (g.name.clone(), "group".to_string())),
    );
    Ok(out)
}

/// The Dockerfile an inline stage or image means (one stage: other stages
/// of the spec appear by name, as named contexts).
pub fn dockerfile_of(
    text: &str,
    file_name: &str,
    vars: &BTreeMap<String, String>,
    name: &str,
) -> Result<String, TomlError> {
    let (spec, map) = read_spec(text, file_name, vars)?;
    let Some(u) = spec.unit(name) else {
        return Err(TomlError::new(file_name, format!("unknown stage `{name}`")));
    };
    match &u.body {
        spec::Body::Inline(i) => Ok(gen::dockerfile(&u.name, i, &map)?.text),
        spec::Body::Dockerfile(d) => Err(map
            .error(&u.span, format!("`{name}` is built from a Dockerfile"))
            .with_hint(format!("its Dockerfile is `{}`", d.dockerfile.value))),
    }
}

/// The spec as JSON (the data model the JSON Schema describes).
pub fn to_json(text: &str, file_name: &str) -> Result<serde_json::Value, TomlError> {
    let map = error::SourceMap::new(file_name, text);
    Ok(tree::to_json(&tree::parse(text, &map)?))
}
