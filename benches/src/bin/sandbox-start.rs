//! Sandbox start-to-exit latency of a no-op command: `true` run N times
//! (default 100) in a busybox root filesystem by each executor the engine
//! has (the built-in sandbox, runc, crun), through the same `RunSpec`, with
//! the engine's defaults (private network with slirp4netns, seccomp, the
//! cgroup with its pids limit). Prints the median and the 90th percentile.
//!
//!   cargo run --release -p engine-benches --bin sandbox-start -- ENGINE [N]
//!
//! ENGINE is the `engine` binary: the built-in sandbox re-executes it as its
//! helper. Needs root, /bin/busybox, runc and crun.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use engine_sandbox::{CancelToken, Executor, OciRuntime, Rootfs, RunSpec, Sandbox};

fn main() {
    let mut args = std::env::args().skip(1);
    let engine = PathBuf::from(args.next().expect("usage: sandbox-start ENGINE [N]"));
    let n: usize = args
        .next()
        .map_or(100, |s| s.parse().expect("N is a number"));
    let work = tempfile::tempdir().expect("temporary directory");
    let lower = work.path().join("lower");
    std::fs::create_dir_all(lower.join("bin")).unwrap();
    std::fs::create_dir_all(lower.join("etc")).unwrap();
    std::fs::copy("/bin/busybox", lower.join("bin/busybox")).expect("/bin/busybox");
    for applet in ["sh", "true"] {
        std::os::unix::fs::symlink("busybox", lower.join("bin").join(applet)).unwrap();
    }
    std::fs::write(lower.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();

    let executors: Vec<(&str, Box<dyn Executor>)> = vec![
        ("builtin", Box::new(Sandbox::with_helper(&engine))),
        (
            "runc",
            Box::new(OciRuntime::new("runc").expect("runc").with_helper(&engine)),
        ),
        (
            "crun",
            Box::new(OciRuntime::new("crun").expect("crun").with_helper(&engine)),
        ),
    ];
    println!("| executor | runs | median | p90 |");
    println!("|---|---:|---:|---:|");
    for (name, exec) in executors {
        let mut times = Vec::with_capacity(n);
        for i in 0..n + 1 {
            let upper = work.path().join(format!("{name}-{i}/upper"));
            let wk = work.path().join(format!("{name}-{i}/work"));
            std::fs::create_dir_all(&upper).unwrap();
            std::fs::create_dir_all(&wk).unwrap();
            let spec = RunSpec::new(
                Rootfs::Overlay {
                    lowers: vec![lower.clone()],
                    upper,
                    work: wk,
                },
                vec!["/bin/true".into()],
            );
            let t = Instant::now();
            let status = exec
                .run(
                    &spec,
                    &mut std::io::sink(),
                    &mut std::io::sink(),
                    &CancelToken::new(),
                )
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let took = t.elapsed();
            assert!(status.success(), "{name}: {status}");
            if i > 0 {
                // The first run warms the page cache.
                times.push(took);
            }
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "| {name} | {n} | {:.1} ms | {:.1} ms |",
            ms(times[n / 2]),
            ms(times[n * 9 / 10])
        );
    }
}
