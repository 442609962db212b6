//! Concurrency follows the graph: every ready RUN step runs at once unless
//! `-j` caps them, read from the build's own trace (`--trace`), and the
//! end-of-build summary names the critical path.

mod common;

use std::path::Path;

use common::*;

/// Eight independent service stages each waiting 1 s, and a final stage
/// copying from all of them.
fn waiting_dockerfile() -> String {
    let mut d = String::from("FROM busybox AS base\nRUN echo base > /base\n");
    for i in 1..=8 {
        d.push_str(&format!(
            "FROM base AS svc{i}\nRUN sleep 1 && echo {i} > /out{i}\n"
        ));
    }
    d.push_str("FROM busybox\n");
    for i in 1..=8 {
        d.push_str(&format!("COPY --from=svc{i} /out{i} /out{i}\n"));
    }
    d
}

struct Traced {
    stderr: String,
    events: Vec<serde_json::Value>,
}

fn build_traced(extra: &[&str]) -> Traced {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), waiting_dockerfile()).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let trace = ctx.path().join("trace.json");
    let out = run_ok(
        engine()
            .args(["build", "--progress", "plain", "--cache-dir"])
            .arg(cache.path())
            .args(["--build-context", &busybox_context_flag()])
            .arg("--trace")
            .arg(&trace)
            .args(extra)
            .arg(ctx.path()),
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&trace).unwrap()).expect("the trace is JSON");
    Traced {
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        events: doc["traceEvents"].as_array().unwrap().clone(),
    }
}

/// Complete spans (`ph: X`) of a category.
fn spans<'a>(events: &'a [serde_json::Value], cat: &str) -> Vec<&'a serde_json::Value> {
    events
        .iter()
        .filter(|e| e["ph"] == "X" && e["cat"] == cat)
        .collect()
}

/// The most spans open at one moment.
fn max_overlap(spans: &[&serde_json::Value]) -> usize {
    let mut edges: Vec<(u64, i32)> = Vec::new();
    for s in spans {
        let ts = s["ts"].as_u64().unwrap();
        let dur = s["dur"].as_u64().unwrap();
        edges.push((ts, 1));
        edges.push((ts + dur, -1));
    }
    // Ends before starts at the same instant: touching spans do not overlap.
    edges.sort();
    let (mut now, mut max) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        max = max.max(now);
    }
    max as usize
}

#[test]
fn every_ready_run_step_runs_at_once_without_a_cap() {
    let t = build_traced(&[]);
    let runs = spans(&t.events, "run");
    assert_eq!(runs.len(), 9, "{}", t.stderr);
    // The eight waiting services overlap (2 cores here: concurrency is not
    // tied to them).
    assert_eq!(max_overlap(&runs), 8, "{:#?}", runs);
    // Each span names its step, stage and key, on a lane of its own.
    let svc3 = runs
        .iter()
        .find(|s| s["name"].as_str().unwrap().starts_with("[svc3 "))
        .unwrap();
    assert_eq!(svc3["args"]["stage"], "svc3");
    assert_eq!(svc3["args"]["cached"], false);
    assert_eq!(svc3["args"]["key"].as_str().unwrap().len(), 12);
    let lanes: std::collections::BTreeSet<u64> =
        runs.iter().map(|s| s["tid"].as_u64().unwrap()).collect();
    assert!(lanes.len() >= 8, "{lanes:?}");
    // The COPYs, and lane names for the viewer.
    assert_eq!(spans(&t.events, "file").len(), 8);
    assert!(t.events.iter().any(|e| e["name"] == "thread_name"));
    // The summary: critical path through base, one service and the COPYs.
    let line = t
        .stderr
        .lines()
        .find(|l| l.starts_with("critical path "))
        .unwrap_or_else(|| panic!("no summary:\n{}", t.stderr));
    assert!(
        line.contains("[base 2/2] RUN → [svc") && line.contains("COPY"),
        "{line}"
    );
    assert!(t.stderr.contains("slowest steps: [svc"), "{}", t.stderr);
}

#[test]
fn a_cap_keeps_run_steps_within_it() {
    let t = build_traced(&["-j", "2"]);
    let runs = spans(&t.events, "run");
    assert_eq!(runs.len(), 9);
    let m = max_overlap(&runs);
    assert!((1..=2).contains(&m), "{m} RUN steps at once under -j 2");
}

#[test]
fn exports_and_context_hashing_are_on_the_timeline() {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nCOPY a /a\nRUN cat /a\n",
    )
    .unwrap();
    std::fs::write(ctx.path().join("a"), "x\n").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let trace = ctx.path().join("t.json");
    let out = ctx.path().join("img.tar");
    run_ok(
        engine()
            .args(["build", "--progress", "quiet", "--cache-dir"])
            .arg(cache.path())
            .args(["--build-context", &busybox_context_flag()])
            .arg("--trace")
            .arg(&trace)
            .arg("-o")
            .arg(format!("type=docker,dest={},name=t:1", out.display()))
            .arg(ctx.path()),
    );
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&trace).unwrap()).unwrap();
    let events = doc["traceEvents"].as_array().unwrap();
    assert_eq!(spans(events, "context").len(), 1);
    let exports = spans(events, "export");
    assert_eq!(exports.len(), 1);
    assert!(exports[0]["name"]
        .as_str()
        .unwrap()
        .contains(&out.display().to_string()));
    assert!(Path::new(&out).exists());
}

#[test]
fn a_failed_build_still_writes_its_trace() {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nRUN echo first > /f\nRUN exit 3\n",
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let trace = ctx.path().join("t.json");
    let o = engine()
        .args(["build", "--progress", "quiet", "--cache-dir"])
        .arg(cache.path())
        .args(["--build-context", &busybox_context_flag()])
        .arg("--trace")
        .arg(&trace)
        .arg(ctx.path())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&trace).unwrap()).unwrap();
    let events = doc["traceEvents"].as_array().unwrap();
    let runs = spans(events, "run");
    assert_eq!(runs.len(), 2, "{runs:?}");
}
