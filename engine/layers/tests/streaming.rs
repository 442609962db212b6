//! Writing and applying a large layer must stream: peak RSS may not grow
//! with the layer size. Alone in its own test binary so no other test
//! shares the process while VmHWM is measured.

mod common;

use std::fs;
use std::io::{Read, Write};

use common::*;
use engine_layers::{apply_layer_verified, write_layer, Compression, LayerOptions};

fn vm_hwm_kib() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

/// A sink that keeps the stream's bytes on disk, not in memory.
fn spool() -> fs::File {
    tempfile::tempfile().unwrap()
}

#[test]
fn large_layer_streams_in_bounded_memory() {
    const SIZE: u64 = 256 << 20;
    const LIMIT_KIB: u64 = 64 << 10;
    let tmp = tempdir();
    let src = tmp.path().join("src");
    mkdir(&src, 0o755);
    {
        let mut f = fs::File::create(src.join("big")).unwrap();
        let zeros = vec![0u8; 1 << 20];
        let mut chunk = vec![0u8; 1 << 20];
        for i in 0..(SIZE >> 20) {
            // Mostly zeros with a little data so compression has work to do.
            if i % 16 == 0 {
                for (j, b) in chunk.iter_mut().enumerate().take(4096) {
                    *b = (i as usize + j) as u8;
                }
                f.write_all(&chunk).unwrap();
            } else {
                f.write_all(&zeros).unwrap();
            }
        }
    }

    let before = vm_hwm_kib();
    let mut out = spool();
    let start = std::time::Instant::now();
    let digests = write_layer(
        &src,
        &mut out,
        &LayerOptions {
            compression: Compression::Gzip,
            ..LayerOptions::default()
        },
    )
    .unwrap();
    let after_write = vm_hwm_kib();
    println!(
        "wrote {} MiB layer ({} bytes compressed) in {:?}; VmHWM {} -> {} KiB",
        SIZE >> 20,
        digests.size,
        start.elapsed(),
        before,
        after_write
    );
    assert!(
        after_write - before < LIMIT_KIB,
        "write_layer grew peak RSS by {} KiB",
        after_write - before
    );

    // And back: applying must stream as well.
    let dst = tmp.path().join("dst");
    mkdir(&dst, 0o755);
    let mut input = out;
    std::io::Seek::seek(&mut input, std::io::SeekFrom::Start(0)).unwrap();
    let start = std::time::Instant::now();
    let stats =
        apply_layer_verified(&dst, &mut input, &digests.digest, Some(&digests.diff_id)).unwrap();
    let after_apply = vm_hwm_kib();
    println!(
        "applied in {:?}; VmHWM -> {} KiB",
        start.elapsed(),
        after_apply
    );
    assert_eq!(stats.diff_id, digests.diff_id);
    assert!(
        after_apply - before < LIMIT_KIB,
        "apply grew peak RSS by {} KiB",
        after_apply - before
    );
    let mut f = fs::File::open(dst.join("big")).unwrap();
    assert_eq!(f.metadata().unwrap().len(), SIZE);
    let mut head = vec![0u8; 4096];
    f.read_exact(&mut head).unwrap();
    assert_eq!(head[1], 1);
}
