//! Context hashing: `engine_solver::hash::hash_selection` over a generated
//! tree, the whole tree (`COPY . /src`) and with a `.dockerignore`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use engine_benches::make_tree;
use engine_ir::ignore::IgnorePatterns;
use engine_solver::hash::hash_selection;

const FILES: usize = 2_000;
const FILE_SIZE: usize = 1024;

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    make_tree(dir.path(), FILES, FILE_SIZE).expect("tree");
    let all = vec![".".to_string()];
    let ignore = IgnorePatterns::parse("d000/d00[0-4]\n**/f004*.txt\n").expect("patterns");
    // Warm the page cache once so every sample measures the same thing.
    let first = hash_selection(dir.path(), None, &all).expect("hash");
    assert_ne!(
        first,
        hash_selection(dir.path(), Some(&ignore), &all).expect("hash"),
        "the ignore file changes the selection"
    );

    let mut group = c.benchmark_group("context_hash");
    group.sample_size(10);
    group.throughput(Throughput::Elements(FILES as u64));
    group.bench_function("hash_selection/2000_files_1KiB", |b| {
        b.iter(|| hash_selection(black_box(dir.path()), None, &all).expect("hash"))
    });
    group.bench_function("hash_selection/2000_files_1KiB_dockerignore", |b| {
        b.iter(|| hash_selection(black_box(dir.path()), Some(&ignore), &all).expect("hash"))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
