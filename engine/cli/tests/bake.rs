//! buildx bake conventions for TOML builds: `--print`, `-o` given for
//! several targets, `--keep-going` and the per-target summary.

mod common;

use std::path::Path;

use common::*;

/// A spec of three images on busybox: `ok` (slow, independent), `bad`
/// (its RUN fails) and `after` (built on `bad`'s stage).
fn spec(dir: &Path) {
    std::fs::write(
        dir.join("engine.toml"),
        r#"
[vars]
VERSION = "1.2"

[template.svc]
tags = ["localhost:5000/${target}:${VERSION}"]

[stage.broken]
from = "busybox"

[[stage.broken.steps]]
run = "echo about to fail; exit 3"

[image.ok]
from = "busybox"
inherits = ["svc"]

[[image.ok.steps]]
run = "sleep 1; echo ok > /ok"

[image.bad]
from = "broken"
inherits = ["svc"]

[image.after]
from = "broken"

[[image.after.steps]]
run = "echo never > /never"
"#,
    )
    .unwrap();
}

fn build(dir: &Path, cache: &Path, extra: &[&str]) -> std::process::Output {
    engine()
        .args(["build", "--frontend", "toml", "--progress", "plain"])
        .arg("--cache-dir")
        .arg(cache)
        .arg("--build-context")
        .arg(busybox_context_flag())
        .args(extra)
        .arg(dir)
        .output()
        .unwrap()
}

#[test]
fn print_shows_the_resolved_targets_and_builds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    spec(dir.path());
    let cache = tempfile::tempdir().unwrap();
    let out = build(
        dir.path(),
        cache.path(),
        &[
            "--print",
            "--set",
            "VERSION=2.0",
            "--target",
            "ok",
            "--target",
            "bad",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        doc["target"]["ok"]["tags"],
        serde_json::json!(["localhost:5000/ok:2.0"]),
        "templates and vars applied: {doc}"
    );
    assert_eq!(doc["target"]["bad"]["kind"], "image");
    assert!(
        doc["target"].get("after").is_none(),
        "only the selected targets"
    );
    assert!(doc["target"]["ok"]["platforms"].as_array().unwrap().len() == 1);
    // Nothing ran: the cache holds no snapshot.
    assert!(
        !cache.path().join("snapshots").exists()
            || std::fs::read_dir(cache.path().join("snapshots"))
                .unwrap()
                .next()
                .is_none()
    );
    // Without a TOML spec, --print says what it is for.
    let df = tempfile::tempdir().unwrap();
    std::fs::write(df.path().join("Dockerfile"), "FROM busybox\n").unwrap();
    let out = engine()
        .args(["build", "--print"])
        .arg(df.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TOML spec"));
}

#[test]
fn an_output_flag_applies_to_every_target_named_by_target() {
    let dir = tempfile::tempdir().unwrap();
    spec(dir.path());
    let cache = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    // Without ${target}, two targets would write one file: refused first.
    let same = format!("type=oci,dest={}/img.tar", out_dir.path().display());
    let r = build(
        dir.path(),
        cache.path(),
        &["--target", "ok", "--target", "after", "-o", &same],
    );
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success(), "{stderr}");
    assert!(stderr.contains("every target"), "{stderr}");
    assert!(!stderr.contains("RUN"), "refused before building: {stderr}");
    // With ${target}: one file per target (only `ok` can build: `after`
    // depends on the failing stage, so build `ok` and its twin).
    let per = format!("type=oci,dest={}/${{target}}.tar", out_dir.path().display());
    let r = build(
        dir.path(),
        cache.path(),
        &[
            "--target",
            "ok",
            "--keep-going",
            "--target",
            "after",
            "-o",
            &per,
        ],
    );
    assert!(!r.status.success());
    assert!(out_dir.path().join("ok.tar").is_file());
    assert!(!out_dir.path().join("after.tar").exists());
    assert!(!out_dir.path().join("${target}.tar").exists());
}

#[test]
fn keep_going_builds_what_does_not_depend_on_the_failure() {
    let dir = tempfile::tempdir().unwrap();
    spec(dir.path());
    let out_dir = tempfile::tempdir().unwrap();
    let o = format!("type=local,dest={}/${{target}}", out_dir.path().display());
    // Without --keep-going the first failure stops the rest.
    let cache = tempfile::tempdir().unwrap();
    let r = build(dir.path(), cache.path(), &["-o", &o]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success(), "{stderr}");
    assert!(stderr.contains("targets:"), "{stderr}");
    assert!(summary_line(&stderr, "bad").ends_with("failed"), "{stderr}");
    assert!(
        summary_line(&stderr, "after").ends_with("failed"),
        "{stderr}"
    );
    assert!(
        summary_line(&stderr, "ok").ends_with("not started"),
        "{stderr}"
    );
    assert!(!out_dir.path().join("ok").exists(), "nothing exported");
    // With it, `ok` is built and exported; the build still fails.
    let cache = tempfile::tempdir().unwrap();
    let r = build(dir.path(), cache.path(), &["--keep-going", "-o", &o]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "the build failed: {stderr}");
    assert!(summary_line(&stderr, "ok").ends_with("built"), "{stderr}");
    assert!(summary_line(&stderr, "bad").ends_with("failed"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(out_dir.path().join("ok/ok")).unwrap(),
        "ok\n"
    );
    assert!(!out_dir.path().join("after").exists());
    assert!(stderr.contains("exit code: 3"), "{stderr}");
    // Again: `ok` comes from the cache.
    let r = build(dir.path(), cache.path(), &["--keep-going", "-o", &o]);
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(summary_line(&stderr, "ok").ends_with("cached"), "{stderr}");
}

fn summary_line<'a>(stderr: &'a str, target: &str) -> &'a str {
    let mut in_summary = false;
    for l in stderr.lines() {
        if l == "targets:" {
            in_summary = true;
            continue;
        }
        if in_summary && l.trim_start().starts_with(&format!("{target} ")) {
            return l.trim();
        }
    }
    panic!("no summary line for {target} in:\n{stderr}")
}

#[test]
fn a_bad_output_is_refused_before_base_images_are_resolved() {
    // The base image's registry does not answer: the -o error must come
    // first, not a registry error after waiting on it.
    let df = tempfile::tempdir().unwrap();
    std::fs::write(df.path().join("Dockerfile"), "FROM 127.0.0.1:1/nothing\n").unwrap();
    let out = engine()
        .args(["build", "-o", "type=bogus,dest=x"])
        .arg(df.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bogus"), "{stderr}");
    assert!(!stderr.contains("127.0.0.1:1"), "{stderr}");
}

#[test]
fn progress_json_is_json_to_the_end_with_a_summary_and_error_messages() {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nRUN echo hello\n",
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let run = |cache: &Path| {
        engine()
            .args(["build", "--progress", "json", "--cache-dir"])
            .arg(cache)
            .arg("--build-context")
            .arg(busybox_context_flag())
            .arg(ctx.path())
            .output()
            .unwrap()
    };
    let out = run(cache.path());
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect();
    let summary = &events.last().unwrap()["summary"];
    assert_eq!(summary["executed"], 2, "{stderr}");
    assert!(
        summary["images"].as_object().unwrap().len() == 1,
        "{stderr}"
    );
    let done: Vec<&serde_json::Value> = events.iter().filter(|e| e["status"] == "done").collect();
    assert!(done.iter().all(|e| e["cached"] == false), "{stderr}");
    // A failing step's event says why.
    std::fs::write(ctx.path().join("Dockerfile"), "FROM busybox\nRUN exit 7\n").unwrap();
    let out = run(cache.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let error = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["status"] == "error")
        .expect("an error event");
    assert!(
        error["error"].as_str().unwrap().contains("exit code: 7"),
        "{error}"
    );
    assert_eq!(error["cached"], false);
}
