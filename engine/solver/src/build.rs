//! One build: solve the graph with the scheduler, then hand each target's
//! image to the exporters.

use std::path::Path;
use std::time::Instant;

use engine_ir::{Graph, Op};

use crate::progress::Progress;
use crate::run::{Runner, SolveOptions, StepError, Value};
use crate::scheduler::{self, CancelToken, Options, Stopped};
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
    let start = Instant::now();
    let runner = Runner::new(graph, state, opts, executor, progress);
    let values = scheduler::run(graph, &runner, sched, cancel).map_err(|s| match s {
        Stopped::Failed(f) => {
            let node = graph.node(f.node);
            BuildError::Step {
                name: node.meta.name.clone(),
                location: node.meta.location.clone(),
                error: f.error,
            }
        }
        Stopped::Cancelled => BuildError::Cancelled,
    })?;
    let targets = graph
        .targets()
        .iter()
        .map(|t| (t.name.clone(), values[t.node.0 as usize].clone()))
        .collect();
    let steps = graph
        .nodes()
        .filter_map(|(id, node)| {
            let kind = match node.op {
                Op::Exec(_) => engine_cache::Kind::Exec,
                Op::File(_) => engine_cache::Kind::File,
                _ => return None,
            };
            Some((values[id.0 as usize].clone(), kind, node.meta.name.clone()))
        })
        .collect();
    Ok(Solved {
        targets,
        steps,
        executed: runner.executed.load(std::sync::atomic::Ordering::SeqCst),
        cached: runner.cached.load(std::sync::atomic::Ordering::SeqCst),
        elapsed: start.elapsed(),
    })
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
    let guard = crate::snapshot::mount_overlay(&snap, None, state.tmp())
        .map_err(|e| StepError::Message(format!("cannot mount the image filesystem: {e}")))?;
    let opts = engine_layers::LayerOptions {
        source_date_epoch: None,
        compression: engine_layers::Compression::None,
        overlay_upper: false,
    };
    engine_layers::write_layer(guard.path(), out, &opts)
        .map_err(|e| StepError::Message(format!("cannot write the filesystem: {e}")))?;
    Ok(())
}

/// Copy the merged root filesystem of a value into `dest`.
pub fn write_rootfs_dir(value: &Value, dest: &Path) -> Result<(), StepError> {
    // Replaying the layers is the merged tree: no mount and no temporary
    // tar of the whole filesystem.
    let snap = value.fs.clone().unwrap_or_default();
    crate::snapshot::materialize(&snap, dest).map_err(|e| {
        StepError::Message(format!(
            "cannot write the filesystem to {}: {e}",
            dest.display()
        ))
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
