//! A dependency-driven parallel scheduler over an IR graph.
//!
//! A node starts as soon as all its inputs are done, on a thread of its own:
//! concurrency follows the graph, not the core count, as in BuildKit. A step
//! that waits (a RUN's process, a registry download, a lock) holds a thread,
//! never a CPU worker, so eight waiting RUN steps really wait at once on two
//! cores. What bounds concurrency is the node's [`Class`]: RUN steps take one
//! of `jobs` permits when a cap is given (`-j N`), CPU-bound steps (file ops:
//! hashing, copying) one of `cpu` permits (the cores), so that many of them
//! ready at once do not thrash. The first failure stops new work and raises
//! the cancel flag so running steps can stop; dependents of a failed node
//! never start. Every node runs at most once per call (the graph already
//! merged nodes with equal digests).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use engine_ir::{Graph, NodeId};

/// Raised on the first failure; runners poll it to stop early. The
/// sandbox's token: a RUN step hands it to its executor as it is.
pub use engine_sandbox::CancelToken;

/// What the scheduler asks of the code that actually runs nodes.
pub trait NodeRunner: Sync {
    type Output: Clone + Send + Sync;
    type Error: Send;

    /// Run one node given its inputs' outputs (in slot order).
    fn run(
        &self,
        id: NodeId,
        inputs: &[Self::Output],
        cancel: &CancelToken,
    ) -> Result<Self::Output, Self::Error>;

    /// What bounds the node's concurrency.
    fn class(&self, id: NodeId) -> Class {
        let _ = id;
        Class::Light
    }
}

/// What a node spends its time on, which picks the permit it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Little work, or waiting on the network: no permit (sources, configs).
    Light,
    /// CPU and disk bound (file ops): one of the `cpu` permits.
    Cpu,
    /// A process in a sandbox, mostly waiting: one of the `jobs` permits when
    /// a cap is given.
    Exec,
}

#[derive(Debug)]
pub struct Failure<E> {
    pub node: NodeId,
    pub error: E,
}

/// Why a run ended without every output.
#[derive(Debug)]
pub enum Stopped<E> {
    /// A node failed (the first failure; later ones are dropped).
    Failed(Failure<E>),
    /// The caller's cancel token was raised.
    Cancelled,
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// RUN steps at once: `None` for every ready one (the default, as in
    /// BuildKit), `Some(n)` for at most `n` (`-j n`).
    pub jobs: Option<usize>,
    /// CPU-bound steps at once (at least 1): the number of cores.
    pub cpu: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            jobs: None,
            cpu: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// A counting semaphore.
struct Permits {
    free: Mutex<usize>,
    cv: Condvar,
}

impl Permits {
    /// `n` permits (at least 1).
    fn new(n: usize) -> Self {
        Permits {
            free: Mutex::new(n.max(1)),
            cv: Condvar::new(),
        }
    }

    fn acquire(&self) {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.cv.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
    }
    fn release(&self) {
        *self.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.cv.notify_one();
    }
}

struct Shared<'g, R: NodeRunner> {
    graph: &'g Graph,
    runner: &'g R,
    users: Vec<Vec<NodeId>>,
    pending: Vec<AtomicUsize>,
    outputs: Vec<Mutex<Option<R::Output>>>,
    failures: Mutex<Vec<Failure<R::Error>>>,
    /// `--keep-going`: a failure stops only its dependents.
    keep_going: bool,
    cancel: CancelToken,
    /// `None`: RUN steps are not capped.
    exec: Option<Permits>,
    cpu: Permits,
}

/// Run every node of `graph` that the targets need. Returns each node's
/// output, indexed by node id, or the first failure.
pub fn run<R: NodeRunner>(
    graph: &Graph,
    runner: &R,
    opts: Options,
    cancel: &CancelToken,
) -> Result<Vec<R::Output>, Stopped<R::Error>> {
    let partial = run_partial(graph, runner, opts, cancel, false);
    if let Some(f) = partial.failures.into_iter().next() {
        return Err(Stopped::Failed(f));
    }
    partial
        .outputs
        .into_iter()
        .collect::<Option<Vec<_>>>()
        // Only a cancellation from outside leaves nodes unrun without a failure.
        .ok_or(Stopped::Cancelled)
}

/// What a run produced when it may have stopped short.
#[derive(Debug)]
pub struct Partial<O, E> {
    /// Each node's output, indexed by node id: `None` for a node that
    /// failed, depends on one that did, or was not started.
    pub outputs: Vec<Option<O>>,
    /// Failures in the order they happened (at most one without
    /// `keep_going`, which stops everything at the first).
    pub failures: Vec<Failure<E>>,
}

/// [`run`], keeping what finished. With `keep_going` a failure stops only
/// the nodes that depend on it (`--keep-going`): everything else runs.
pub fn run_partial<R: NodeRunner>(
    graph: &Graph,
    runner: &R,
    opts: Options,
    cancel: &CancelToken,
    keep_going: bool,
) -> Partial<R::Output, R::Error> {
    let n = graph.len();
    let mut users = vec![Vec::new(); n];
    let mut pending = Vec::with_capacity(n);
    for (id, node) in graph.nodes() {
        // An input used in two slots still counts once per slot: each slot's
        // completion is the same event, so count distinct inputs.
        let mut distinct: Vec<NodeId> = node.inputs.clone();
        distinct.sort();
        distinct.dedup();
        for i in &distinct {
            users[i.0 as usize].push(id);
        }
        pending.push(AtomicUsize::new(distinct.len()));
    }
    let shared = Shared {
        graph,
        runner,
        users,
        pending,
        outputs: (0..n).map(|_| Mutex::new(None)).collect(),
        failures: Mutex::new(Vec::new()),
        keep_going,
        cancel: cancel.clone(),
        exec: opts.jobs.map(Permits::new),
        cpu: Permits::new(opts.cpu),
    };
    let roots: Vec<NodeId> = graph
        .ids()
        .filter(|id| shared.pending[id.0 as usize].load(Ordering::SeqCst) == 0)
        .collect();
    std::thread::scope(|scope| {
        for &r in &roots {
            spawn(&shared, r, scope);
        }
    });
    Partial {
        outputs: shared
            .outputs
            .into_iter()
            .map(|slot| slot.into_inner().unwrap_or_else(|e| e.into_inner()))
            .collect(),
        failures: shared
            .failures
            .into_inner()
            .unwrap_or_else(|e| e.into_inner()),
    }
}

/// Starts `id` on a thread of its own. Should the system refuse a thread,
/// the node runs on the calling one: slower, never lost.
fn spawn<'s, 'e, R: NodeRunner>(
    shared: &'s Shared<'s, R>,
    id: NodeId,
    scope: &'s std::thread::Scope<'s, 'e>,
) {
    let started = std::thread::Builder::new()
        .name(format!("engine-step-{}", id.0))
        .spawn_scoped(scope, move || step(shared, id, scope));
    if started.is_err() {
        step(shared, id, scope);
    }
}

fn step<'s, 'e, R: NodeRunner>(
    shared: &'s Shared<'s, R>,
    id: NodeId,
    scope: &'s std::thread::Scope<'s, 'e>,
) {
    if shared.cancel.is_cancelled() {
        return;
    }
    let node = shared.graph.node(id);
    let inputs: Vec<R::Output> = node
        .inputs
        .iter()
        .map(|i| {
            shared.outputs[i.0 as usize]
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .expect("inputs finish before their users start")
        })
        .collect();
    let permits = match shared.runner.class(id) {
        Class::Light => None,
        Class::Cpu => Some(&shared.cpu),
        Class::Exec => shared.exec.as_ref(),
    };
    if let Some(p) = permits {
        p.acquire();
    }
    // Re-check: the wait for a permit may have outlived a failure.
    let result = if shared.cancel.is_cancelled() {
        None
    } else {
        Some(shared.runner.run(id, &inputs, &shared.cancel))
    };
    if let Some(p) = permits {
        p.release();
    }
    match result {
        None => {}
        Some(Err(error)) => {
            let mut f = shared.failures.lock().unwrap_or_else(|e| e.into_inner());
            if shared.keep_going {
                f.push(Failure { node: id, error });
            } else {
                // The first failure wins; steps it cancels may fail too.
                if f.is_empty() {
                    f.push(Failure { node: id, error });
                }
                shared.cancel.cancel();
            }
        }
        Some(Ok(output)) => {
            *shared.outputs[id.0 as usize]
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(output);
            for &u in &shared.users[id.0 as usize] {
                if shared.pending[u.0 as usize].fetch_sub(1, Ordering::SeqCst) == 1 {
                    spawn(shared, u, scope);
                }
            }
        }
    }
}
