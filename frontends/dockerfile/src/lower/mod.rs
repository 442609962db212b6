//! Lowering: typed instructions → IR graph.
//!
//! Mirrors BuildKit's dockerfile2llb: stages are found first (so `FROM` and
//! `--from` can name them), then each stage needed by the target is
//! dispatched instruction by instruction, carrying the filesystem node, the
//! image config seen so far (for expansion) and the config changes the stage
//! makes.

mod args;
mod dispatch;
mod stages;

use std::collections::BTreeMap;

use engine_ir::{Graph, ImageResolver, Platform};

pub use args::PROXY_ARGS;

use crate::error::Result;

/// How a name given with `--build-context NAME=...` resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedContext {
    /// A local directory: `FROM NAME` is an error, `COPY --from=NAME` reads it.
    Local,
    /// A local OCI layout: an image.
    Layout,
    /// Another image reference (`docker-image://REF`).
    Image(String),
}

pub struct PlanOptions<'a> {
    /// The Dockerfile's name, as source locations show it.
    pub filename: String,
    /// The text of the `.dockerignore` that applies to the main context.
    pub dockerignore: Option<&'a str>,
    pub target: Option<String>,
    pub build_args: BTreeMap<String, String>,
    pub target_platform: Platform,
    pub build_platform: Platform,
    pub named_contexts: BTreeMap<String, NamedContext>,
    pub resolver: &'a dyn ImageResolver,
    /// The name of the main context's source node (`context`). The TOML
    /// frontend gives each Dockerfile target its own.
    pub context_name: String,
}

impl<'a> PlanOptions<'a> {
    /// Defaults for tests and tools: linux/amd64, no args, nothing resolvable.
    pub fn new(resolver: &'a dyn ImageResolver) -> Self {
        PlanOptions {
            filename: "Dockerfile".into(),
            dockerignore: None,
            target: None,
            build_args: BTreeMap::new(),
            target_platform: Platform::linux_amd64(),
            build_platform: Platform::linux_amd64(),
            named_contexts: BTreeMap::new(),
            resolver,
            context_name: "context".into(),
        }
    }
}

#[derive(Debug)]
pub struct Planned {
    pub graph: Graph,
    /// Non-fatal findings (unused build args, …), one line each.
    pub warnings: Vec<String>,
}

/// Parse, check and lower a Dockerfile. The graph's one target is the stage
/// named by `opts.target` (default: the last stage), under that name.
pub fn plan(source: &str, opts: &PlanOptions<'_>) -> Result<Planned> {
    let ast = crate::parser::parse(source)?;
    let parsed = crate::instructions::parse_all(&ast)?;
    dispatch::lower(&ast, parsed, opts)
}
