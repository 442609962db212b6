//! One build: solve the graph with the scheduler, then hand each target's
//! image to the exporters.

use std::path::Path;
use std::time::Instant;

use engine_ir::{Graph, Op};

use crate::progress::Progress;
use crate::run::{Runner, SolveOptions, StepError, Value};
use crate::scheduler::{self, CancelToken, Options};
use crate::state::StateDir;

#[derive(Debug)]
pub struct Solved {
    /// (target name, image value), in target order.
    pub targets: Vec<(String, Value)>,
    pub executed: usize,
    pub cached: usize,
    /// Every RUN/COPY/ADD/WORKDIR step of the graph: (value, kind, name).
    pub steps: Vec<(Value, engine_cache::Kind, String)>,
    pub elapsed: std::time::Duration,
    /// What failed (only from [`solve_all`]; [`solve`] returns the first as
    /// its error).
    pub failures: Vec<BuildError>,
    /// How each target of the graph fared, in target order.
    pub states: Vec<(String, TargetState)>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{name}: {error}")]
    Step {
        name: String,
        location: Option<engine_ir::SourceLocation>,
        error: StepError,
    },
    #[error("build cancelled")]
    Cancelled,
}

pub fn solve(
    graph: &Graph,
    state: &StateDir,
    opts: &SolveOptions,
    executor: &dyn engine_sandbox::Executor,
    progress: &dyn Progress,
    sched: Options,
    cancel: &CancelToken,
) -> Result<Solved, BuildError> {
    let mut solved = solve_all(graph, state, opts, executor, progress, sched, cancel, false);
    if !solved.failures.is_empty() {
        return Err(solved.failures.swap_remove(0));
    }
    if solved.targets.len() < graph.targets().len() {
        return Err(BuildError::Cancelled);
    }
    Ok(solved)
}

/// How a target of the graph fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetState {
    /// Done, and at least one of its steps ran.
    Built,
    /// Done from the cache alone.
    Cached,
    /// One of its steps failed.
    Failed,
    /// Stopped before it could run: another target's failure (without
    /// `--keep-going`) or a cancellation.
    NotStarted,
}

/// [`solve`], keeping what finished: `Solved::targets` holds the targets
/// that were built, `failures` what failed, `states` how each target
/// fared. With `keep_going` a failure stops only the steps that depend on
/// it (`--keep-going`); without, the first failure cancels the rest.
#[allow(clippy::too_many_arguments)]
pub fn solve_all(
    graph: &Graph,
    state: &StateDir,
    opts: &SolveOptions,
    executor: &dyn engine_sandbox::Executor,
    progress: &dyn Progress,
    sched: Options,
    cancel: &CancelToken,
    keep_going: bool,
) -> Solved {
    let start = Instant::now();
    let runner = Runner::new(graph, state, opts, executor, progress);
    let partial = scheduler::run_partial(graph, &runner, sched, cancel, keep_going);
    let values = &partial.outputs;
    let failed_nodes: Vec<engine_ir::NodeId> = partial.failures.iter().map(|f| f.node).collect();
    let mut targets = Vec::new();
    let mut states = Vec::new();
    for t in graph.targets() {
        let below = subgraph(graph, t.node);
        let state = match &values[t.node.0 as usize] {
            Some(v) => {
                targets.push((t.name.clone(), v.clone()));
                let ran = below.iter().any(|id| {
                    matches!(graph.node(*id).op, Op::Exec(_) | Op::File(_))
                        && values[id.0 as usize].as_ref().is_some_and(|v| !v.cached)
                });
                if ran {
                    TargetState::Built
                } else {
                    TargetState::Cached
                }
            }
            None if below.iter().any(|id| failed_nodes.contains(id)) => TargetState::Failed,
            None => TargetState::NotStarted,
        };
        states.push((t.name.clone(), state));
    }
    let steps = graph
        .nodes()
        .filter_map(|(id, node)| {
            let kind = match node.op {
                Op::Exec(_) => engine_cache::Kind::Exec,
                Op::File(_) => engine_cache::Kind::File,
                _ => return None,
            };
            let v = values[id.0 as usize].clone()?;
            Some((v, kind, node.meta.name.clone()))
        })
        .collect();
    let failures = partial
        .failures
        .into_iter()
        .map(|f| {
            let node = graph.node(f.node);
            BuildError::Step {
                name: node.meta.name.clone(),
                location: node.meta.location.clone(),
                error: f.error,
            }
        })
        .collect();
    Solved {
        targets,
        steps,
        executed: runner.executed.load(std::sync::atomic::Ordering::SeqCst),
        cached: runner.cached.load(std::sync::atomic::Ordering::SeqCst),
        elapsed: start.elapsed(),
        failures,
        states,
    }
}

/// `from` and every node it depends on.
fn subgraph(graph: &Graph, from: engine_ir::NodeId) -> Vec<engine_ir::NodeId> {
    let mut seen = std::collections::BTreeSet::new();
    let mut stack = vec![from];
    while let Some(id) = stack.pop() {
        if seen.insert(id) {
            stack.extend(graph.node(id).inputs.iter().copied());
        }
    }
    seen.into_iter().collect()
}

/// The stage a step belongs to, read from its BuildKit-style name:
/// `[build 2/3] RUN make` → `build`, `[2/3] RUN make` (a single-stage
/// Dockerfile) → `""`, `[build] image config` → `build`. `None` for names
/// not in that form.
pub fn step_stage(name: &str) -> Option<&str> {
    let inner = name.strip_prefix('[')?.split_once(']')?.0.trim();
    match inner.rsplit_once(' ') {
        Some((stage, pos)) if is_position(pos) => Some(stage.trim()),
        _ if is_position(inner) => Some(""),
        _ => Some(inner),
    }
}

/// `2/3` (BuildKit pads the index: ` 2/12`).
fn is_position(s: &str) -> bool {
    s.trim().split_once('/').is_some_and(|(a, b)| {
        !a.trim().is_empty()
            && !b.is_empty()
            && a.trim().bytes().all(|c| c.is_ascii_digit())
            && b.bytes().all(|c| c.is_ascii_digit())
    })
}

/// The platform of a target (from its image node).
pub fn target_platform(graph: &Graph, name: &str) -> Option<engine_ir::Platform> {
    let t = graph.target(name).ok()?;
    match &graph.node(t.node).op {
        Op::Image(i) => Some(i.platform.clone()),
        _ => None,
    }
}

/// Write the merged root filesystem of a value as an uncompressed tar.
pub fn write_rootfs_tar(
    state: &StateDir,
    value: &Value,
    out: impl std::io::Write,
) -> Result<(), StepError> {
    let snap = value.fs.clone().unwrap_or_default();
    let guard = crate::snapshot::mount_overlay(&snap, None, state.tmp()).map_err(|source| {
        StepError::Io {
            context: "cannot mount the image filesystem".into(),
            source,
        }
    })?;
    let opts = engine_layers::LayerOptions {
        source_date_epoch: None,
        compression: engine_layers::Compression::None,
        overlay_upper: false,
    };
    engine_layers::write_layer(guard.path(), out, &opts)
        .map_err(|source| StepError::layer("cannot write the filesystem", source))?;
    Ok(())
}

/// Copy the merged root filesystem of a value into `dest`.
pub fn write_rootfs_dir(value: &Value, dest: &Path) -> Result<(), StepError> {
    // Replaying the layers is the merged tree: no mount and no temporary
    // tar of the whole filesystem.
    let snap = value.fs.clone().unwrap_or_default();
    crate::snapshot::materialize(&snap, dest).map_err(|source| StepError::Io {
        context: format!("cannot write the filesystem to {}", dest.display()),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::step_stage;

    #[test]
    fn stages_from_step_names() {
        assert_eq!(step_stage("[build 2/3] RUN make"), Some("build"));
        assert_eq!(step_stage("[stage-1  2/12] COPY . ."), Some("stage-1"));
        assert_eq!(step_stage("[ 2/12] RUN x"), Some(""));
        assert_eq!(step_stage("[2/3] RUN make"), Some(""));
        assert_eq!(step_stage("[build] image config"), Some("build"));
        assert_eq!(
            step_stage("[internal] load build context"),
            Some("internal")
        );
        assert_eq!(step_stage("RUN make"), None);
    }
}
