//! The persistent cache through the real binary: no-op rebuilds, several
//! processes on one cache dir, `kill -9` at random moments, `cache du` and
//! `cache prune`, automatic collection next to a running build,
//! `--no-cache` and `--no-cache-filter`, secrets, damaged blobs.
//!
//! RUN steps need root (the built-in sandbox makes namespaces and mounts);
//! these tests run as root here and in CI.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

fn engine() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_engine"));
    c.env("NO_COLOR", "1")
        .env_remove("ENGINE_CACHE_DIR")
        .env_remove("ENGINE_CACHE_MAX_SIZE")
        .env_remove("SOURCE_DATE_EPOCH");
    c
}

fn check(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what} failed ({:?}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A context directory with a Dockerfile and files.
fn context(dockerfile: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("Dockerfile"), dockerfile).unwrap();
    for (name, body) in files {
        let p = d.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
    d
}

#[derive(Debug)]
struct Built {
    ok: bool,
    stderr: String,
    events: Vec<Value>,
    digest: Option<String>,
}

impl Built {
    fn statuses(&self) -> Vec<(String, String)> {
        self.events
            .iter()
            .filter(|e| e.get("status").is_some_and(|s| s != "started"))
            .map(|e| {
                (
                    e["name"].as_str().unwrap_or_default().to_string(),
                    e["status"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    fn count(&self, status: &str) -> usize {
        self.statuses().iter().filter(|(_, s)| s == status).count()
    }

    fn status_of(&self, name_part: &str) -> String {
        let matching: Vec<_> = self
            .statuses()
            .into_iter()
            .filter(|(n, _)| n.contains(name_part))
            .collect();
        assert_eq!(
            matching.len(),
            1,
            "one step named like {name_part:?}: {matching:?}"
        );
        matching[0].1.clone()
    }
}

fn build_cmd(ctx: &Path, cache: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = engine();
    c.args(["build", "--progress", "json", "--cache-dir"])
        .arg(cache)
        .arg("--build-context")
        .arg(common::busybox_context_flag())
        .arg("-o")
        .arg(format!("type=oci,dest={},tar=false", out.display()))
        .args(extra)
        .arg(ctx);
    c
}

fn parse(out: Output) -> Built {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let events = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("status").is_some())
        .collect();
    // --progress json ends with a summary event naming each image's digest.
    let digest = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| {
            let images = v.get("summary")?.get("images")?.as_object()?.clone();
            images.values().next()?.as_str().map(str::to_string)
        });
    Built {
        ok: out.status.success(),
        stderr,
        events,
        digest,
    }
}

fn build(ctx: &Path, cache: &Path, out: &Path, extra: &[&str]) -> Built {
    let b = parse(build_cmd(ctx, cache, out, extra).output().unwrap());
    assert!(b.ok, "build failed:\n{}", b.stderr);
    assert!(b.digest.is_some(), "no digest line:\n{}", b.stderr);
    b
}

fn du(cache: &Path) -> Value {
    let out = check(
        engine()
            .args(["cache", "du", "--format", "json", "--cache-dir"])
            .arg(cache)
            .output()
            .unwrap(),
        "cache du",
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn prune(cache: &Path, args: &[&str]) -> Value {
    let out = check(
        engine()
            .args(["cache", "prune", "--format", "json", "--cache-dir"])
            .arg(cache)
            .args(args)
            .output()
            .unwrap(),
        "cache prune",
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn row(du: &Value, kind: &str) -> Option<Value> {
    du["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == kind)
        .cloned()
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap()
}

const TEN_STEPS: &str = "FROM busybox
RUN echo one > /one
COPY f1.txt /f1
RUN cat /f1 > /two
COPY f2.txt /f2
RUN echo three > /three
COPY f3.txt /f3
RUN echo four > /four
COPY f4.txt /f4
RUN echo five > /five
COPY dir/ /dir/
";

fn ten_step_context() -> tempfile::TempDir {
    context(
        TEN_STEPS,
        &[
            ("f1.txt", "1"),
            ("f2.txt", "2"),
            ("f3.txt", "3"),
            ("f4.txt", "4"),
            ("dir/a", "a"),
            ("dir/b/c", "c"),
            ("unused.txt", "not copied"),
        ],
    )
}

/// (steps, cached, executed) of the summary event of `--progress json`.
fn summary_counts(stderr: &str) -> (u64, u64, u64) {
    let s = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| v.get("summary").cloned())
        .expect("a summary event");
    let n = |k: &str| s[k].as_u64().unwrap();
    (n("steps"), n("cached"), n("executed"))
}

#[test]
fn a_no_op_rebuild_executes_nothing_and_gives_the_same_digest() {
    let ctx = ten_step_context();
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let first = build(ctx.path(), cache.path(), &out.path().join("1"), &[]);
    assert_eq!(first.count("done"), 11, "{:?}", first.statuses());
    // The summary is an event of --progress json.
    assert_eq!(
        summary_counts(&first.stderr),
        (11, 0, 11),
        "{}",
        first.stderr
    );

    // A new process, same inputs: nothing runs.
    let t = Instant::now();
    let second = build(ctx.path(), cache.path(), &out.path().join("2"), &[]);
    let took = t.elapsed();
    assert_eq!(second.count("cached"), 11, "{:?}", second.statuses());
    assert_eq!(second.count("done"), 0);
    for e in second.events.iter().filter(|e| e["status"] == "cached") {
        assert!(
            e["id"].is_u64() && e["name"].is_string() && e["duration_ms"].is_u64(),
            "{e}"
        );
    }
    assert!(
        summary_counts(&second.stderr) == (11, 11, 0),
        "{}",
        second.stderr
    );
    assert_eq!(second.digest, first.digest);
    println!("no-op rebuild of 11 steps (whole process, with export): {took:?}");
    // The solve itself (lookups) as the summary reports it: a generous
    // bound, to catch a lookup that went from a stat to real work.
    let solve_secs: f64 = second
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| v["summary"]["duration_ms"].as_u64())
        .expect("summary event") as f64
        / 1000.0;
    assert!(solve_secs <= 0.5, "no-op solve took {solve_secs}s");

    // Same content elsewhere, every mtime changed, an unselected file
    // edited: still all cached (keys hold no path, no mtime).
    let moved = ten_step_context();
    for f in ["f1.txt", "f2.txt", "dir/a", "dir/b/c"] {
        let file = std::fs::File::options()
            .write(true)
            .open(moved.path().join(f))
            .unwrap();
        file.set_modified(std::time::SystemTime::now() - Duration::from_secs(86_400))
            .unwrap();
    }
    std::fs::write(moved.path().join("unused.txt"), "edited").unwrap();
    let third = build(moved.path(), cache.path(), &out.path().join("3"), &[]);
    assert_eq!(third.count("cached"), 11, "{:?}", third.statuses());
    assert_eq!(third.digest, first.digest);

    // The keys (snapshot names) do not depend on the cache dir or the
    // context's path either: a fresh cache gets the same ones.
    let other_cache = tempfile::tempdir().unwrap();
    build(
        moved.path(),
        other_cache.path(),
        &out.path().join("3b"),
        &[],
    );
    let keys = |c: &Path| -> std::collections::BTreeSet<String> {
        std::fs::read_dir(c.join("snapshots"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(keys(other_cache.path()), keys(cache.path()));
    assert_eq!(keys(cache.path()).len(), 11);

    // A selected file changes: its COPY and what follows run again.
    std::fs::write(moved.path().join("f3.txt"), "three").unwrap();
    let fourth = build(moved.path(), cache.path(), &out.path().join("4"), &[]);
    assert_eq!(fourth.status_of("COPY f2.txt"), "cached");
    assert_eq!(fourth.status_of("COPY f3.txt"), "done");
    assert_eq!(fourth.status_of("RUN echo five"), "done");
    assert_ne!(fourth.digest, first.digest);
}

#[test]
fn six_concurrent_builds_share_one_cache_and_run_a_shared_step_once() {
    let ctx = context(
        "FROM busybox
COPY a.txt /a
RUN --mount=type=cache,target=/count,id=runs echo ran >> /count/runs && sleep 1 && echo built > /built
COPY b.txt /b
",
        &[("a.txt", "a"), ("b.txt", "b")],
    );
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let children: Vec<Child> = (0..6)
        .map(|i| {
            build_cmd(
                ctx.path(),
                cache.path(),
                &out.path().join(i.to_string()),
                &[],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let results: Vec<Built> = children
        .into_iter()
        .map(|c| parse(c.wait_with_output().unwrap()))
        .collect();
    println!("6 concurrent builds took {:?}", t.elapsed());
    for (i, r) in results.iter().enumerate() {
        assert!(r.ok, "build {i} failed:\n{}", r.stderr);
    }
    let digests: std::collections::BTreeSet<_> = results.iter().map(|r| r.digest.clone()).collect();
    assert_eq!(digests.len(), 1, "one image: {digests:?}");
    // The RUN step ran in exactly one process; the others waited for it
    // and used its result.
    let ran: usize = results
        .iter()
        .map(|r| (r.status_of("RUN") == "done") as usize)
        .sum();
    assert_eq!(ran, 1);
    let mounts = cache.path().join("mounts");
    let runs: Vec<String> = std::fs::read_dir(&mounts)
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path().join("runs")).ok())
        .collect();
    assert_eq!(runs, vec!["ran\n".to_string()]);
    // Every step was built once overall.
    for step in ["FROM busybox", "COPY a.txt", "COPY b.txt"] {
        let n: usize = results
            .iter()
            .map(|r| (r.status_of(step) == "done") as usize)
            .sum();
        assert_eq!(n, 1, "{step} built {n} times");
    }
    // No session is left behind.
    assert_eq!(
        std::fs::read_dir(cache.path().join("leases"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(cache.path().join("tmp")).unwrap().count(),
        0
    );
}

fn mounts_under(dir: &Path) -> usize {
    let dir = std::fs::canonicalize(dir).unwrap();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| Path::new(m).starts_with(&dir))
        .count()
}

#[test]
fn builds_killed_at_random_moments_leave_a_cache_that_builds_correctly() {
    let ctx = context(
        "FROM busybox
COPY a.txt /a
RUN echo one > /one && sleep 0.3
COPY dir/ /dir/
RUN --mount=type=bind,source=dir,target=/src cat /src/x /src/y > /xy && sleep 0.4
RUN dd if=/dev/zero of=/big bs=1024 count=2048 2>/dev/null
COPY b.txt /b
RUN echo done > /done
",
        &[
            ("a.txt", "a"),
            ("b.txt", "b"),
            ("dir/x", "x"),
            ("dir/y", "y"),
        ],
    );
    let epoch = [("SOURCE_DATE_EPOCH", "1700000000")];
    let out = tempfile::tempdir().unwrap();
    let clean_cache = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let clean = parse(
        build_cmd(
            ctx.path(),
            clean_cache.path(),
            &out.path().join("clean"),
            &[],
        )
        .envs(epoch)
        .output()
        .unwrap(),
    );
    let clean_ms = t.elapsed().as_millis() as u64;
    assert!(clean.ok, "{}", clean.stderr);

    let cache = tempfile::tempdir().unwrap();
    // Deterministic "random" moments across the whole build, export and
    // index bookkeeping included.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let want_kills = 8;
    let (mut killed, mut runs) = (0, 0);
    while killed < want_kills && runs < 40 {
        runs += 1;
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = Duration::from_millis(5 + seed % (clean_ms * 4 / 5).max(100));
        let mut child = build_cmd(
            ctx.path(),
            cache.path(),
            &out.path().join(format!("k{runs}")),
            &[],
        )
        .envs(epoch)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed += 1;
            child.wait().unwrap();
        } else {
            // It finished first: start the next one from an empty cache
            // so that it has work to be killed in.
            prune(cache.path(), &["--all"]);
        }
    }
    println!("killed {killed} of {runs} builds with SIGKILL");
    assert_eq!(killed, want_kills, "builds were killed mid-way");
    // And processes killed inside the index (`cache du` spends its time
    // there: reconciling and writing records).
    for i in 0..6u64 {
        let mut child = engine()
            .args(["cache", "du", "--cache-dir"])
            .arg(cache.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(3 + i * 7));
        let _ = child.kill();
        child.wait().unwrap();
    }
    let last = parse(
        build_cmd(ctx.path(), cache.path(), &out.path().join("final"), &[])
            .envs(epoch)
            .output()
            .unwrap(),
    );
    assert!(last.ok, "{}", last.stderr);
    assert_eq!(last.digest, clean.digest, "same image as a clean build");
    // Killed builds left no mounts, sessions or scratch behind once the
    // next process swept.
    assert_eq!(mounts_under(cache.path()), 0);
    assert_eq!(
        std::fs::read_dir(cache.path().join("leases"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(cache.path().join("tmp")).unwrap().count(),
        0
    );
    let d = du(cache.path());
    assert!(u(&d["total"]) > 0);
}

#[test]
fn du_adds_up_and_prune_honours_keep_storage_until_and_all() {
    let ctx = ten_step_context();
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let first = build(ctx.path(), cache.path(), &out.path().join("1"), &[]);

    let d = du(cache.path());
    let rows = d["rows"].as_array().unwrap();
    let sum: u64 = rows.iter().map(|r| u(&r["size"])).sum();
    let reclaimable: u64 = rows.iter().map(|r| u(&r["reclaimable"])).sum();
    assert_eq!(sum, u(&d["total"]), "rows add up to the total");
    assert_eq!(reclaimable, u(&d["reclaimable"]));
    assert_eq!(u(&row(&d, "exec").unwrap()["items"]), 5);
    assert_eq!(u(&row(&d, "file").unwrap()["items"]), 5);
    assert_eq!(u(&row(&d, "source").unwrap()["items"]), 1);
    assert!(u(&row(&d, "layer-blob").unwrap()["size"]) > 0);
    for r in rows {
        assert!(u(&r["reclaimable"]) <= u(&r["size"]), "{r}");
    }
    // The total is what the directory takes on disk.
    let on_disk = String::from_utf8(
        Command::new("du")
            .args(["-s", "-B1"])
            .arg(cache.path())
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let on_disk: u64 = on_disk.split_whitespace().next().unwrap().parse().unwrap();
    let total = u(&d["total"]);
    assert!(
        total.abs_diff(on_disk) < 256 * 1024,
        "du says {total}, the disk {on_disk}"
    );

    // Nothing is older than an hour.
    let r = prune(cache.path(), &["--filter", "until=1h"]);
    assert_eq!(u(&r["records"]), 0);

    // Keep just under what there is: the least recently used records go
    // until it fits, not everything. (Records are ordered by their last use
    // in whole seconds, then by key, so which ones go depends on timing; a
    // target of half the content could legitimately empty the cache when
    // the record used last is larger than half.)
    let content_of = |d: &Value| u(&d["total"]) - u(&row(d, "metadata").unwrap()["size"]);
    let content = content_of(&d);
    let keep = content - 1;
    let r = prune(cache.path(), &["--keep-storage", &keep.to_string()]);
    assert!(u(&r["records"]) > 0, "{r}");
    let content2 = content_of(&du(cache.path()));
    assert!(content2 <= keep, "{content2} > {keep}");
    assert!(content2 > 0, "keep-storage kept something");
    // About half: whatever goes, what is left fits.
    let half = content2 / 2;
    prune(cache.path(), &["--keep-storage", &half.to_string()]);
    let content3 = content_of(&du(cache.path()));
    assert!(content3 <= half, "{content3} > {half}");

    // --all empties it; the next build runs everything and gives the same image.
    prune(cache.path(), &["--all"]);
    let d3 = du(cache.path());
    let kinds: Vec<&str> = d3["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["metadata"], "{d3}");
    assert_eq!(u(&d3["reclaimable"]), 0);
    assert!(std::fs::read_dir(cache.path().join("blobs/sha256"))
        .unwrap()
        .next()
        .is_none());
    assert!(std::fs::read_dir(cache.path().join("snapshots"))
        .unwrap()
        .next()
        .is_none());
    let again = build(ctx.path(), cache.path(), &out.path().join("2"), &[]);
    assert_eq!(again.count("done"), 11);
    assert_eq!(again.count("cached"), 0);
    // (RUN output has build-time mtimes; compare the COPY-only prefix instead.)
    assert!(first.digest.is_some() && again.digest.is_some());

    // Table output for people.
    let out = check(
        engine()
            .args(["cache", "du", "-v", "--cache-dir"])
            .arg(cache.path())
            .output()
            .unwrap(),
        "du table",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("RECLAIMABLE") && text.contains("total"),
        "{text}"
    );
    assert!(text.contains("RUN echo five"), "{text}");
    let bad = engine()
        .args(["cache", "prune", "--keep-storage", "lots", "--cache-dir"])
        .arg(cache.path())
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("error: invalid size `lots`"));
}

/// Wait until the build's progress shows a step named like `needle` started.
fn wait_for_step(child: &mut Child, needle: &str) -> std::thread::JoinHandle<String> {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let needle = needle.to_string();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        let mut sent = false;
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            if !sent && line.contains(&needle) && line.contains("\"started\"") {
                tx.send(()).unwrap();
                sent = true;
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the step started");
    reader
}

#[test]
fn collection_never_deletes_what_a_running_build_uses() {
    let slow = context(
        "FROM busybox
COPY a.txt /a
RUN echo one > /one
COPY b.txt /b
RUN sleep 4 && cat /a /b /one > /all
COPY c.txt /c
",
        &[("a.txt", "a"), ("b.txt", "b"), ("c.txt", "c")],
    );
    let other = ten_step_context();
    let epoch = [("SOURCE_DATE_EPOCH", "1700000000")];
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let clean_cache = tempfile::tempdir().unwrap();
    let clean = parse(
        build_cmd(
            slow.path(),
            clean_cache.path(),
            &out.path().join("clean"),
            &[],
        )
        .envs(epoch)
        .output()
        .unwrap(),
    );
    assert!(clean.ok, "{}", clean.stderr);

    // Something else in the cache, then the slow build.
    build(other.path(), cache.path(), &out.path().join("other"), &[]);
    let mut running = build_cmd(slow.path(), cache.path(), &out.path().join("slow"), &[])
        .envs(epoch)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let log = wait_for_step(&mut running, "RUN sleep 4");

    // While it runs: prune everything, and a build whose automatic
    // collection wants the cache at 1 byte.
    let d = du(cache.path());
    assert_eq!(d["live_builds"], 1);
    let in_use: Vec<&Value> = d["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["in_use"] == true)
        .collect();
    assert_eq!(
        in_use.len(),
        4,
        "FROM and the three finished steps: {in_use:?}"
    );
    let p = prune(cache.path(), &["--all"]);
    assert!(
        u(&p["records"]) >= 10,
        "the other build's entries went: {p}"
    );
    let tiny = build(
        other.path(),
        cache.path(),
        &out.path().join("tiny"),
        &["--cache-max-size", "1"],
    );
    assert_eq!(
        tiny.status_of("FROM busybox"),
        "cached",
        "leased by the slow build"
    );
    assert_eq!(tiny.count("done"), 10, "its cache was pruned above");
    for r in &in_use {
        let key = r["key"].as_str().unwrap();
        assert!(
            cache
                .path()
                .join("snapshots")
                .join(key)
                .join("done")
                .exists(),
            "{r} was deleted while in use"
        );
    }

    let status = running.wait().unwrap();
    let log = log.join().unwrap();
    assert!(status.success(), "{log}");
    let slow_built = parse(Output {
        status,
        stdout: Vec::new(),
        stderr: log.into_bytes(),
    });
    assert_eq!(slow_built.digest, clean.digest, "the right image");
    // After both: the tiny build's own entries were collected at its end
    // except what it used, which stays until the next collection.
    let r = prune(cache.path(), &["--all"]);
    assert!(u(&r["records"]) > 0);
}

#[test]
fn no_cache_and_no_cache_filter() {
    let ctx = context(
        "FROM busybox AS base
RUN echo base > /base

FROM base AS build
COPY src.txt /src
RUN cat /src /base > /out

FROM busybox AS final
COPY --from=build /out /out
RUN cat /out > /final
",
        &[("src.txt", "source")],
    );
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let o = |n: &str| out.path().join(n);
    build(ctx.path(), cache.path(), &o("1"), &[]);

    let f = build(
        ctx.path(),
        cache.path(),
        &o("2"),
        &["--no-cache-filter", "build"],
    );
    assert_eq!(f.status_of("RUN echo base"), "cached");
    assert_eq!(f.status_of("COPY src.txt"), "done");
    assert_eq!(f.status_of("RUN cat /src"), "done");
    // Built on the re-run stage: runs again too.
    assert_eq!(f.status_of("COPY --from=build"), "done");
    assert_eq!(f.status_of("RUN cat /out"), "done");

    let all = build(ctx.path(), cache.path(), &o("3"), &["--no-cache"]);
    assert_eq!(all.count("cached"), 0, "{:?}", all.statuses());

    let again = build(ctx.path(), cache.path(), &o("4"), &[]);
    assert_eq!(again.count("done"), 0, "{:?}", again.statuses());
    assert_eq!(
        again.digest, all.digest,
        "the re-run results replaced the old ones"
    );

    // A single-stage Dockerfile: its stage by name.
    let single = context("FROM busybox AS only\nRUN echo x > /x\n", &[]);
    build(single.path(), cache.path(), &o("5"), &[]);
    let s = build(
        single.path(),
        cache.path(),
        &o("6"),
        &["--no-cache-filter", "only"],
    );
    assert_eq!(s.status_of("RUN echo x"), "done");
    // A stage the Dockerfile does not have is an error, with a suggestion
    // when a name is close (it used to be ignored silently).
    let typo = parse(
        build_cmd(
            single.path(),
            cache.path(),
            &o("7"),
            &["--no-cache-filter", "onyl"],
        )
        .output()
        .unwrap(),
    );
    assert!(!typo.ok);
    assert!(
        typo.stderr.contains("no stage named `onyl`")
            && typo.stderr.contains("did you mean `only`?"),
        "{}",
        typo.stderr
    );
    let other = parse(
        build_cmd(
            single.path(),
            cache.path(),
            &o("8"),
            &["--no-cache-filter", "other"],
        )
        .output()
        .unwrap(),
    );
    assert!(!other.ok);
    assert!(
        other.stderr.contains("the stages are: only"),
        "{}",
        other.stderr
    );
}

#[test]
fn secret_values_enter_neither_keys_nor_layers() {
    let ctx = context(
        "FROM busybox
RUN --mount=type=secret,id=tok cat /run/secrets/tok | wc -c > /len && echo ok > /ok
",
        &[],
    );
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let secret_a = "s3cr3t-value-AAAA";
    let b = |dest: &str, value: &str| {
        // An uncompressed copy too, to search the layers for the secret.
        let raw = format!(
            "type=oci,dest={},tar=false,compression=uncompressed",
            out.path().join(format!("{dest}-raw")).display()
        );
        let mut c = build_cmd(
            ctx.path(),
            cache.path(),
            &out.path().join(dest),
            &["--secret", "id=tok,env=TOK", "-o", &raw],
        );
        c.env("TOK", value);
        let r = parse(c.output().unwrap());
        assert!(r.ok, "{}", r.stderr);
        r
    };
    let first = b("1", secret_a);
    assert_eq!(first.status_of("RUN"), "done");
    let second = b("2", "another-secret-BBBB");
    assert_eq!(
        second.status_of("RUN"),
        "cached",
        "the value is not in the key"
    );
    for dir in [out.path().join("1-raw"), cache.path().to_path_buf()] {
        for e in walk(&dir) {
            let bytes = std::fs::read(&e).unwrap_or_default();
            assert!(
                !bytes
                    .windows(secret_a.len())
                    .any(|w| w == secret_a.as_bytes()),
                "the secret is in {}",
                e.display()
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if m.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else if m.is_file() {
            out.push(p);
        }
    }
    out
}

#[test]
fn damaged_blobs_and_a_lost_index_are_misses_never_failures() {
    let ctx = context(
        "FROM busybox\nCOPY a.txt /a\nCOPY b.txt /b\n",
        &[("a.txt", "aaaa"), ("b.txt", "bbbb")],
    );
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let first = build(ctx.path(), cache.path(), &out.path().join("1"), &[]);
    let blobs = cache.path().join("blobs/sha256");
    let all: Vec<PathBuf> = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(all.len() >= 3);
    // Flip a byte in every blob (same size), delete nothing.
    for p in &all {
        let mut bytes = std::fs::read(p).unwrap();
        let n = bytes.len() / 2;
        bytes[n] ^= 0xff;
        let mut perm = std::fs::metadata(p).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perm.set_readonly(false);
        std::fs::set_permissions(p, perm).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    let second = build(ctx.path(), cache.path(), &out.path().join("2"), &[]);
    assert_eq!(second.digest, first.digest, "repaired, same image");
    // Lose blobs and the index altogether.
    for e in std::fs::read_dir(&blobs).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    std::fs::remove_dir_all(cache.path().join("index-v1")).unwrap();
    let third = build(ctx.path(), cache.path(), &out.path().join("3"), &[]);
    assert_eq!(third.digest, first.digest);
    assert_eq!(third.count("cached"), 3, "snapshots are still the truth");
    // A garbage index is set aside and rebuilt.
    std::fs::remove_dir_all(cache.path().join("index-v1")).unwrap();
    std::fs::create_dir_all(cache.path().join("index-v1")).unwrap();
    std::fs::write(cache.path().join("index-v1/db"), b"garbage").unwrap();
    std::fs::write(cache.path().join("index-v1/conf"), b"garbage").unwrap();
    let d = du(cache.path());
    assert_eq!(u(&row(&d, "file").unwrap()["items"]), 2);
    let fourth = build(ctx.path(), cache.path(), &out.path().join("4"), &[]);
    assert_eq!(fourth.digest, first.digest);
}
