//! Property tests of the scheduler on random DAGs.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use engine_ir::*;
use engine_solver::scheduler::{self, CancelToken, Class, NodeRunner, Options, Stopped};
use proptest::prelude::*;

/// A graph where node i reads the listed earlier nodes; every node is a target
/// so nothing is pruned.
fn build(edges: &[Vec<usize>]) -> Graph {
    let mut b = GraphBuilder::new();
    let mut ids = Vec::new();
    for (i, inputs) in edges.iter().enumerate() {
        let op = Op::Exec(Exec {
            args: vec![format!("node-{i}")],
            env: vec![],
            cwd: "/".into(),
            user: String::new(),
            network: NetworkMode::Default,
            security: SecurityMode::Sandbox,
            mounts: vec![],
            platform: Platform::linux_amd64(),
            proxy_env: vec![],
        });
        let inputs = inputs.iter().map(|&j| ids[j]).collect();
        ids.push(b.add(op, inputs, NodeMeta::default()).unwrap());
    }
    let targets = ids
        .iter()
        .enumerate()
        .map(|(i, &node)| Target {
            name: format!("t{i}"),
            node,
        })
        .collect();
    b.finish(targets)
}

fn dag() -> impl Strategy<Value = Vec<Vec<usize>>> {
    (1usize..40).prop_flat_map(|n| {
        let per_node: Vec<_> = (0..n)
            .map(|i| {
                if i == 0 {
                    Just(vec![]).boxed()
                } else {
                    proptest::collection::vec(0..i, 0..4.min(i + 1)).boxed()
                }
            })
            .collect();
        per_node
    })
}

struct Recorder<'g> {
    graph: &'g Graph,
    order: Mutex<Vec<NodeId>>,
    runs: Vec<AtomicUsize>,
    heavy_now: AtomicUsize,
    heavy_max: AtomicUsize,
    fail: Option<NodeId>,
    heavy_every: u32,
}

impl NodeRunner for Recorder<'_> {
    type Output = u32;
    type Error = String;

    fn run(&self, id: NodeId, inputs: &[u32], _: &CancelToken) -> Result<u32, String> {
        self.runs[id.0 as usize].fetch_add(1, Ordering::SeqCst);
        let done: HashSet<NodeId> = self.order.lock().unwrap().iter().copied().collect();
        for i in &self.graph.node(id).inputs {
            assert!(
                done.contains(i),
                "{id:?} started before its input {i:?} finished"
            );
        }
        let heavy = self.class(id) == Class::Exec;
        if heavy {
            let now = self.heavy_now.fetch_add(1, Ordering::SeqCst) + 1;
            self.heavy_max.fetch_max(now, Ordering::SeqCst);
        }
        std::thread::sleep(Duration::from_micros(200));
        if heavy {
            self.heavy_now.fetch_sub(1, Ordering::SeqCst);
        }
        if Some(id) == self.fail {
            return Err(format!("{id:?} failed"));
        }
        self.order.lock().unwrap().push(id);
        Ok(inputs.iter().sum::<u32>() + 1)
    }

    fn class(&self, id: NodeId) -> Class {
        if id.0.is_multiple_of(self.heavy_every) {
            Class::Exec
        } else {
            Class::Cpu
        }
    }
}

fn recorder(g: &Graph, fail: Option<NodeId>, heavy_every: u32) -> Recorder<'_> {
    Recorder {
        graph: g,
        order: Mutex::new(Vec::new()),
        runs: (0..g.len()).map(|_| AtomicUsize::new(0)).collect(),
        heavy_now: AtomicUsize::new(0),
        heavy_max: AtomicUsize::new(0),
        fail,
        heavy_every,
    }
}

fn descendants(g: &Graph, root: NodeId) -> HashSet<NodeId> {
    let mut seen = HashSet::new();
    let mut stack = vec![root];
    while let Some(n) = stack.pop() {
        for u in g.users(n) {
            if seen.insert(u) {
                stack.push(u);
            }
        }
    }
    seen
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_node_runs_once_in_topological_order(edges in dag(), jobs in 1usize..4, heavy_every in 1u32..4) {
        let g = build(&edges);
        let r = recorder(&g, None, heavy_every);
        let out = scheduler::run(&g, &r, Options { jobs: Some(jobs), cpu: 2 }, &CancelToken::new()).expect("no failure");
        prop_assert_eq!(out.len(), g.len());
        for c in &r.runs {
            prop_assert_eq!(c.load(Ordering::SeqCst), 1);
        }
        prop_assert!(r.heavy_max.load(Ordering::SeqCst) <= jobs, "concurrency bound exceeded");
        // Outputs flow along edges: each output is 1 + the sum of its inputs'.
        for (id, node) in g.nodes() {
            let expect: u32 = node.inputs.iter().map(|i| out[i.0 as usize]).sum::<u32>() + 1;
            prop_assert_eq!(out[id.0 as usize], expect);
        }
    }

    #[test]
    fn a_failure_never_lets_a_dependent_start(edges in dag(), pick in any::<prop::sample::Index>()) {
        let g = build(&edges);
        let fail = NodeId(pick.index(g.len()) as u32);
        let r = recorder(&g, Some(fail), 2);
        match scheduler::run(&g, &r, Options { jobs: Some(2), cpu: 2 }, &CancelToken::new()) {
            Err(Stopped::Failed(f)) => prop_assert_eq!(f.node, fail),
            other => prop_assert!(false, "expected the failure, got {:?}", other.map(|v| v.len())),
        }
        for d in descendants(&g, fail) {
            prop_assert_eq!(r.runs[d.0 as usize].load(Ordering::SeqCst), 0, "dependent {:?} ran", d);
        }
        for c in &r.runs {
            prop_assert!(c.load(Ordering::SeqCst) <= 1);
        }
    }
}

#[test]
fn independent_nodes_run_at_the_same_time() {
    // Two roots that each wait for the other to have started: this only
    // finishes if they really run concurrently.
    struct Rendezvous(std::sync::Barrier);
    impl NodeRunner for Rendezvous {
        type Output = ();
        type Error = ();
        fn run(&self, _: NodeId, _: &[()], _: &CancelToken) -> Result<(), ()> {
            self.0.wait();
            Ok(())
        }
    }
    let g = build(&[vec![], vec![]]);
    let r = Rendezvous(std::sync::Barrier::new(2));
    scheduler::run(
        &g,
        &r,
        Options {
            jobs: Some(2),
            cpu: 1,
        },
        &CancelToken::new(),
    )
    .unwrap();
}

/// Every node but those in `passes` waits until `n` have started (or gives
/// up after 10 s): only a scheduler that runs them all at once finishes fast.
struct Gather {
    n: usize,
    passes: Vec<NodeId>,
    started: Mutex<usize>,
    cv: std::sync::Condvar,
    max_seen: AtomicUsize,
}

impl NodeRunner for Gather {
    type Output = ();
    type Error = String;
    fn run(&self, id: NodeId, _: &[()], _: &CancelToken) -> Result<(), String> {
        if self.passes.contains(&id) {
            return Ok(());
        }
        let mut s = self.started.lock().unwrap();
        *s += 1;
        self.max_seen.fetch_max(*s, Ordering::SeqCst);
        self.cv.notify_all();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while *s < self.n && std::time::Instant::now() < deadline {
            s = self
                .cv
                .wait_timeout(s, Duration::from_millis(50))
                .unwrap()
                .0;
        }
        Ok(())
    }
    fn class(&self, _: NodeId) -> Class {
        Class::Exec
    }
}

fn gather(n: usize, passes: Vec<NodeId>) -> Gather {
    Gather {
        n,
        passes,
        started: Mutex::new(0),
        cv: std::sync::Condvar::new(),
        max_seen: AtomicUsize::new(0),
    }
}

/// Counts how many nodes of a class run at once (each takes 10 ms).
struct Overlap {
    class: Class,
    now: AtomicUsize,
    max: AtomicUsize,
}

impl NodeRunner for Overlap {
    type Output = ();
    type Error = String;
    fn run(&self, _: NodeId, _: &[()], _: &CancelToken) -> Result<(), String> {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(10));
        self.now.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
    fn class(&self, _: NodeId) -> Class {
        self.class
    }
}

fn overlap(g: &Graph, class: Class, opts: Options) -> usize {
    let r = Overlap {
        class,
        now: AtomicUsize::new(0),
        max: AtomicUsize::new(0),
    };
    scheduler::run(g, &r, opts, &CancelToken::new()).unwrap();
    r.max.load(Ordering::SeqCst)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    /// With no `-j`, every ready RUN step of a wide graph runs at once, far
    /// past the core count.
    #[test]
    fn without_a_cap_every_ready_run_step_runs_at_once(width in 2usize..48) {
        let g = build(&vec![vec![]; width]);
        let r = gather(width, vec![]);
        let t = std::time::Instant::now();
        scheduler::run(&g, &r, Options { jobs: None, cpu: 1 }, &CancelToken::new()).unwrap();
        prop_assert_eq!(r.max_seen.load(Ordering::SeqCst), width);
        prop_assert!(t.elapsed() < Duration::from_secs(5));
    }

    /// Behind a shared root too: the whole fan-out starts once the root is done.
    #[test]
    fn a_fan_out_runs_at_once(width in 2usize..32) {
        let mut edges = vec![vec![]];
        edges.extend(std::iter::repeat_n(vec![0], width));
        let g = build(&edges);
        let r = gather(width, vec![NodeId(0)]);
        scheduler::run(&g, &r, Options::default(), &CancelToken::new()).unwrap();
        prop_assert_eq!(r.max_seen.load(Ordering::SeqCst), width);
    }
}

#[test]
fn caps_bound_run_steps_and_cpu_steps() {
    let g = build(&vec![vec![]; 12]);
    let capped = Options {
        jobs: Some(3),
        cpu: 2,
    };
    assert!(overlap(&g, Class::Exec, capped) <= 3);
    assert!(overlap(&g, Class::Cpu, capped) <= 2);
    // Light nodes (sources, configs) take no permit.
    assert!(overlap(&g, Class::Light, capped) > 2);
}

#[test]
fn an_outside_cancel_stops_the_run() {
    let g = build(&[vec![], vec![0], vec![1]]);
    let cancel = CancelToken::new();
    cancel.cancel();
    let r = recorder(&g, None, 1);
    assert!(matches!(
        scheduler::run(&g, &r, Options::default(), &cancel),
        Err(Stopped::Cancelled)
    ));
    assert!(r.runs.iter().all(|c| c.load(Ordering::SeqCst) == 0));
}
