//! A dependency-driven parallel scheduler over an IR graph.
//!
//! A node starts as soon as all its inputs are done; independent nodes run
//! at once on a rayon pool; nodes whose op is heavy (RUN) additionally take
//! one of `jobs` permits. The first failure stops new work and raises the
//! cancel flag so running steps can stop; dependents of a failed node never
//! start. Every node runs at most once per call (the graph already merged
//! nodes with equal digests).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use engine_ir::{Graph, NodeId};

/// Raised on the first failure; runners poll it to stop early.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

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

    /// Whether the node needs one of the `jobs` permits (RUN steps do).
    fn is_heavy(&self, id: NodeId) -> bool {
        let _ = id;
        false
    }
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
    /// Threads in the pool (at least 1).
    pub threads: usize,
    /// Heavy nodes at once (at least 1).
    pub jobs: usize,
}

impl Default for Options {
    fn default() -> Self {
        let n = std::thread::available_parallelism().map_or(2, |n| n.get());
        Options {
            threads: n.max(2),
            jobs: n,
        }
    }
}

/// Counting semaphore for heavy nodes.
struct Permits {
    free: Mutex<usize>,
    cv: Condvar,
}

impl Permits {
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
    failure: Mutex<Option<Failure<R::Error>>>,
    cancel: CancelToken,
    permits: Permits,
}

/// Run every node of `graph` that the targets need. Returns each node's
/// output, indexed by node id, or the first failure.
pub fn run<R: NodeRunner>(
    graph: &Graph,
    runner: &R,
    opts: Options,
    cancel: &CancelToken,
) -> Result<Vec<R::Output>, Stopped<R::Error>> {
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
        failure: Mutex::new(None),
        cancel: cancel.clone(),
        permits: Permits {
            free: Mutex::new(opts.jobs.max(1)),
            cv: Condvar::new(),
        },
    };
    let roots: Vec<NodeId> = graph
        .ids()
        .filter(|id| shared.pending[id.0 as usize].load(Ordering::SeqCst) == 0)
        .collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.threads.max(1))
        .thread_name(|i| format!("engine-solve-{i}"))
        .build();
    match pool {
        Ok(pool) => pool.scope(|s| spawn_roots(&shared, &roots, s)),
        // No dedicated pool (resource limits): run on the global one.
        Err(_) => rayon::scope(|s| spawn_roots(&shared, &roots, s)),
    }
    if let Some(f) = shared
        .failure
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
    {
        return Err(Stopped::Failed(f));
    }
    let mut out = Vec::with_capacity(n);
    for slot in shared.outputs {
        match slot.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(v) => out.push(v),
            // Only a cancellation from outside leaves nodes unrun without a failure.
            None => return Err(Stopped::Cancelled),
        }
    }
    Ok(out)
}

fn spawn_roots<'s, R: NodeRunner>(
    shared: &'s Shared<'s, R>,
    roots: &[NodeId],
    scope: &rayon::Scope<'s>,
) {
    for &r in roots {
        scope.spawn(move |s| step(shared, r, s));
    }
}

fn step<'s, R: NodeRunner>(shared: &'s Shared<'s, R>, id: NodeId, scope: &rayon::Scope<'s>) {
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
    let heavy = shared.runner.is_heavy(id);
    if heavy {
        shared.permits.acquire();
    }
    // Re-check: the wait for a permit may have outlived a failure.
    let result = if shared.cancel.is_cancelled() {
        None
    } else {
        Some(shared.runner.run(id, &inputs, &shared.cancel))
    };
    if heavy {
        shared.permits.release();
    }
    match result {
        None => {}
        Some(Err(error)) => {
            let mut f = shared.failure.lock().unwrap_or_else(|e| e.into_inner());
            if f.is_none() {
                *f = Some(Failure { node: id, error });
            }
            shared.cancel.cancel();
        }
        Some(Ok(output)) => {
            *shared.outputs[id.0 as usize]
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(output);
            for &u in &shared.users[id.0 as usize] {
                if shared.pending[u.0 as usize].fetch_sub(1, Ordering::SeqCst) == 1 {
                    scope.spawn(move |s| step(shared, u, s));
                }
            }
        }
    }
}
