//! Key computation: IR node digests (`engine_ir::graph::node_digest`) and the
//! solver's cache keys, over every node of the monorepo workload's graph.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use engine_benches::{solver_key, MONOREPO_DOCKERFILE};
use engine_dockerfile::lower::{plan, PlanOptions};
use engine_ir::graph::node_digest;
use engine_ir::{Graph, NoResolver, NodeDigest};

fn graph() -> Graph {
    let resolver = NoResolver;
    plan(MONOREPO_DOCKERFILE, &PlanOptions::new(&resolver))
        .expect("the monorepo Dockerfile plans")
        .graph
}

/// Every node's digest, inputs first (node order is topological).
fn all_node_digests(g: &Graph) -> Vec<NodeDigest> {
    let mut out: Vec<NodeDigest> = Vec::with_capacity(g.len());
    for (_, node) in g.nodes() {
        let inputs: Vec<NodeDigest> = node.inputs.iter().map(|i| out[i.0 as usize]).collect();
        out.push(node_digest(&node.op, &inputs));
    }
    out
}

/// Every node's solver cache key, chained through the inputs' keys.
fn all_solver_keys(g: &Graph) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(g.len());
    for (_, node) in g.nodes() {
        let inputs: Vec<String> = node
            .inputs
            .iter()
            .map(|i| out[i.0 as usize].clone())
            .collect();
        out.push(solver_key(&node.op, &inputs, &[]));
    }
    out
}

fn bench(c: &mut Criterion) {
    let g = graph();
    // The helpers index results by node id: check ids are dense and ordered.
    for (n, (id, _)) in g.nodes().enumerate() {
        assert_eq!(id.0 as usize, n, "node ids are dense and in order");
    }
    let computed = all_node_digests(&g);
    for ((_, node), d) in g.nodes().zip(&computed) {
        assert_eq!(
            node.digest, *d,
            "node_digest reproduces the graph's digests"
        );
    }

    let mut group = c.benchmark_group("keys");
    group.sample_size(20);
    group.throughput(Throughput::Elements(g.len() as u64));
    group.bench_function("node_digest/monorepo_graph", |b| {
        b.iter(|| all_node_digests(black_box(&g)))
    });
    group.bench_function("solver_key/monorepo_graph", |b| {
        b.iter(|| all_solver_keys(black_box(&g)))
    });
    group.throughput(Throughput::Bytes(MONOREPO_DOCKERFILE.len() as u64));
    group.bench_function("plan/monorepo_dockerfile", |b| {
        let resolver = NoResolver;
        let opts = PlanOptions::new(&resolver);
        b.iter(|| plan(black_box(MONOREPO_DOCKERFILE), &opts).expect("plans"))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
