//! Tar writing: `engine_layers::write_layer` of a generated tree, gzip and
//! uncompressed, into a sink (the digests are still computed).

use std::hint::black_box;
use std::io;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use engine_benches::make_tree;
use engine_layers::{write_layer, Compression, LayerOptions};

const FILES: usize = 1_000;
const FILE_SIZE: usize = 8 * 1024;

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    make_tree(dir.path(), FILES, FILE_SIZE).expect("tree");

    let mut group = c.benchmark_group("tar_write");
    group.sample_size(10);
    group.throughput(Throughput::Bytes((FILES * FILE_SIZE) as u64));
    for (name, compression) in [
        ("uncompressed", Compression::None),
        ("gzip", Compression::Gzip),
    ] {
        let opts = LayerOptions {
            compression,
            source_date_epoch: Some(0),
            ..LayerOptions::default()
        };
        group.bench_function(format!("write_layer/1000_files_8KiB/{name}"), |b| {
            b.iter(|| write_layer(black_box(dir.path()), io::sink(), &opts).expect("layer"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
