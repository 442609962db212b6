//! The monorepo example, built for real through `--frontend toml`: every
//! image equals its standalone Dockerfile, the shared stage runs once, an
//! edit in one service rebuilds only that service, bad specs fail located.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const SERVICES: [&str; 4] = ["api", "worker", "web", "reports"];

fn example_copy() -> tempfile::TempDir {
    require_tool("/bin/busybox");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../specs/examples/monorepo");
    let t = tempfile::tempdir().unwrap();
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", src.display()))
            .arg(t.path()),
    );
    let _ = std::fs::remove_dir_all(t.path().join("out"));
    run_ok(Command::new("sh").arg(t.path().join("prepare.sh")));
    t
}

fn toml_build(dir: &Path, cache: &Path) -> std::process::Output {
    run_ok(
        engine()
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args([
                "build",
                "--frontend",
                "toml",
                "--progress",
                "json",
                "--cache-dir",
            ])
            .arg(cache)
            .arg(dir),
    )
}

/// (target, image digest) from the summary event of `--progress json`.
fn digests(stderr: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| {
            let images = v.get("summary")?.get("images")?.as_object()?.clone();
            Some(
                images
                    .iter()
                    .map(|(k, d)| (k.clone(), d.as_str().unwrap_or_default().to_string()))
                    .collect(),
            )
        })
        .unwrap_or_default()
}

/// (name, status) of every step event.
fn events(stderr: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            Some((
                v["name"].as_str()?.to_string(),
                v["status"].as_str()?.to_string(),
            ))
        })
        .collect()
}

#[test]
fn every_image_equals_its_dockerfile_and_shared_stages_run_once() {
    let ex = example_copy();
    let cache = tempfile::tempdir().unwrap();
    let out = toml_build(ex.path(), cache.path());
    let built = digests(&out.stderr);
    assert_eq!(built.len(), 4, "{}", String::from_utf8_lossy(&out.stderr));
    for s in SERVICES {
        assert!(
            ex.path().join(format!("out/{s}.tar")).exists(),
            "{s} exported where the spec says"
        );
    }
    let ev = events(&out.stderr);
    let common_runs = ev
        .iter()
        .filter(|(n, s)| n.starts_with("[common") && n.contains("RUN") && s == "started")
        .count();
    assert_eq!(common_runs, 1, "the shared stage runs once for four images");
    let busybox = ev
        .iter()
        .filter(|(n, s)| n.starts_with("[busybox") && s == "started")
        .count();
    assert_eq!(busybox, 1);

    // Each service as a standalone Dockerfile, in a separate cache.
    let other_cache = tempfile::tempdir().unwrap();
    for (name, digest) in &built {
        let dockerfile: PathBuf = ex.path().join(format!("equivalents/{name}.Dockerfile"));
        let o = run_ok(
            engine()
                .env("SOURCE_DATE_EPOCH", "1700000000")
                .args(["build", "--progress", "quiet", "--cache-dir"])
                .arg(other_cache.path())
                .arg("-f")
                .arg(&dockerfile)
                .args([
                    "--build-context",
                    &format!("base={}", ex.path().join("base").display()),
                ])
                .arg("-o")
                // The spec exports docker archives: same media types, same digest.
                .arg(format!(
                    "type=docker,dest={}",
                    ex.path().join(format!("eq-{name}.tar")).display()
                ))
                .arg(ex.path().join(format!("services/{name}"))),
        );
        let d = image_digest(&o.stderr);
        assert_eq!(
            &d.split(' ').next().unwrap().to_string(),
            digest,
            "{name}: TOML and Dockerfile images differ"
        );
    }
}

#[test]
fn an_edit_in_one_service_rebuilds_only_that_service() {
    let ex = example_copy();
    let cache = tempfile::tempdir().unwrap();
    let first = digests(&toml_build(ex.path(), cache.path()).stderr);
    let noop = toml_build(ex.path(), cache.path());
    assert!(
        events(&noop.stderr)
            .iter()
            .all(|(_, s)| s == "started" || s == "cached"),
        "a no-op rebuild executes nothing"
    );
    assert_eq!(digests(&noop.stderr), first);
    let web_src = ex.path().join("services/web/src");
    let file = std::fs::read_dir(&web_src)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("\n<!-- edited -->\n");
    std::fs::write(&file, text).unwrap();
    let again = toml_build(ex.path(), cache.path());
    let ev = events(&again.stderr);
    let executed: Vec<&String> = ev
        .iter()
        .filter(|(_, s)| s == "done")
        .map(|(n, _)| n)
        .collect();
    assert!(!executed.is_empty(), "the web steps ran again");
    assert!(
        executed.iter().all(|n| n.starts_with("[web")),
        "only web steps ran: {executed:?}"
    );
    let now = digests(&again.stderr);
    for ((n1, d1), (n2, d2)) in first.iter().zip(&now) {
        assert_eq!(n1, n2);
        assert_eq!(d1 == d2, n1 != "web", "{n1}: only web changes");
    }
}

#[test]
fn a_bad_spec_fails_with_its_location() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(
        t.path().join("engine.toml"),
        "[image.app]\nfrom = \"scratch\"\nentrypoit = [\"/app\"]\n",
    )
    .unwrap();
    let out = engine()
        .args(["graph", "--frontend", "toml"])
        .arg(t.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("engine.toml:3:1"), "{err}");
    assert!(err.contains("entrypoint"), "did-you-mean hint: {err}");
}

/// `engine build` in `dir` with a fresh cache: (exit code, stderr).
fn failing_build(dir: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let cache = tempfile::tempdir().unwrap();
    let out = engine()
        .args(["build", "--progress", "plain", "--cache-dir"])
        .arg(cache.path())
        .args(extra)
        .arg(dir)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_missing_context_directory_fails_before_building_at_its_line() {
    // was: `"/.": not found` when the COPY ran, after the other steps
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir(t.path().join("api")).unwrap();
    std::fs::write(t.path().join("api/main"), "x").unwrap();
    std::fs::write(
        t.path().join("engine.toml"),
        concat!(
            "[image.api]\nfrom = \"scratch\"\ncontext = \"api\"\n",
            "steps = [{ copy = \".\", to = \"/app/\" }]\n\n",
            "[image.web]\nfrom = \"scratch\"\ncontext = \"services/web\"\n",
            "steps = [{ copy = \".\", to = \"/app/\" }]\n",
        ),
    )
    .unwrap();
    let (code, err) = failing_build(t.path(), &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("engine.toml:8:11"), "{err}");
    let missing = std::fs::canonicalize(t.path())
        .unwrap()
        .join("services/web");
    assert!(
        err.contains(&format!("`{}` does not exist", missing.display())),
        "{err}"
    );
    assert!(!err.contains("COPY"), "nothing was built: {err}");
}

#[test]
fn an_output_without_a_destination_fails_before_building_with_an_example() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("Dockerfile"), "FROM scratch\nCOPY f /f\n").unwrap();
    std::fs::write(t.path().join("f"), "f").unwrap();
    for (flag, example) in [
        ("type=oci", "-o type=oci,dest=out/image.tar"),
        (
            "type=oci,tar=false,dest=",
            "-o type=oci,dest=out/image,tar=false",
        ),
        ("type=local", "-o type=local,dest=out/rootfs"),
        ("type=tar", "-o type=tar,dest=out/rootfs.tar"),
    ] {
        let (code, err) = failing_build(t.path(), &["-o", flag]);
        assert_eq!(code, Some(2), "{flag}: {err}");
        assert!(err.contains("has no destination"), "{flag}: {err}");
        assert!(err.contains(example), "{flag}: {err}");
        assert!(!err.contains("COPY"), "{flag}: nothing was built: {err}");
    }
    // in a spec: located at the entry
    std::fs::write(
        t.path().join("engine.toml"),
        "[image.app]\nfrom = \"scratch\"\noutputs = [\"type=tar\"]\n",
    )
    .unwrap();
    let (code, err) = failing_build(t.path(), &["--frontend", "toml"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("engine.toml:3:12"), "{err}");
    assert!(
        err.contains(r#"{ type = "tar", dest = "out/${target}.tar" }"#),
        "{err}"
    );
}

#[test]
fn per_image_cache_to_and_cache_from_are_used() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(
        t.path().join("engine.toml"),
        r#"
[image.a]
from = "busybox"
cache-to = ["type=local,dest=cache-a"]
cache-from = ["type=local,src=cache-a"]
steps = [{ run = "echo a > /a" }]

[image.b]
from = "busybox"
steps = [{ run = "echo b > /b" }]
"#,
    )
    .unwrap();
    let build = |cache: &Path| {
        run_ok(
            engine()
                .args(["build", "--frontend", "toml", "--progress", "json"])
                .args(["--build-context", &busybox_context_flag()])
                .arg("--cache-dir")
                .arg(cache)
                .arg(t.path()),
        )
    };
    let first_cache = tempfile::tempdir().unwrap();
    build(first_cache.path());
    assert!(
        t.path().join("cache-a/index.json").exists(),
        "image a's cache-to, relative to the spec"
    );
    // A fresh machine: a's step comes from a's exported cache, b's runs.
    let second_cache = tempfile::tempdir().unwrap();
    let out = build(second_cache.path());
    let done: Vec<String> = events(&out.stderr)
        .into_iter()
        .filter(|(n, s)| s == "done" && n.contains("RUN"))
        .map(|(n, _)| n)
        .collect();
    assert!(
        done.iter().any(|n| n.starts_with("[b")),
        "b has no cache to import: {done:?}"
    );
    assert!(
        !done.iter().any(|n| n.starts_with("[a")),
        "a is restored from its cache-from: {done:?}"
    );
}

#[test]
fn the_specs_limits_apply_and_the_command_line_wins() {
    let t = tempfile::tempdir().unwrap();
    // Bounded (300 short sleeps), so that a host where limits cannot be set
    // fails this test instead of going down.
    std::fs::write(
        t.path().join("engine.toml"),
        r#"
[limits]
pids-limit = 64

[image.flood]
from = "busybox"
steps = [{ run = "i=0; while [ $i -lt 300 ]; do sleep 1 & i=$((i+1)); done; wait" }]
"#,
    )
    .unwrap();
    let build = |extra: &[&str]| {
        let cache = tempfile::tempdir().unwrap();
        let o = engine()
            .args(["build", "--frontend", "toml", "--progress", "plain"])
            .args(["--build-context", &busybox_context_flag()])
            .arg("--cache-dir")
            .arg(cache.path())
            .args(extra)
            .arg(t.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(!stderr.contains("panicked"), "{stderr}");
        (o.status.success(), stderr)
    };
    let (ok, stderr) = build(&[]);
    assert!(!ok, "300 processes ran under the spec's limit of 64");
    assert!(stderr.contains("limit of 64 processes"), "{stderr}");
    let (ok, stderr) = build(&["--pids-limit", "1000"]);
    assert!(ok, "--pids-limit 1000 replaces the spec's 64: {stderr}");
}

/// `--set` of a name that is neither declared in [vars] nor read by an
/// ARG is an error (it was a warning), with the closest declared name.
#[test]
fn an_unused_set_is_an_error_with_a_suggestion() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(
        t.path().join("engine.toml"),
        r#"
[vars]
VERSION = "1"

[image.app]
from = "busybox"
steps = [{ run = "echo ${VERSION} > /v" }]
"#,
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let o = engine()
        .args(["build", "--frontend", "toml", "--progress", "plain"])
        .args(["--build-context", &busybox_context_flag()])
        .arg("--cache-dir")
        .arg(cache.path())
        .args(["--set", "VERSON=2"])
        .arg(t.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("variable `VERSON` is not declared")
            && err.contains("did you mean `VERSION`?"),
        "{err}"
    );
    assert!(!err.contains("RUN"), "a step ran: {err}");
}
