//! The documented exit codes (README, "Exit codes"): 1 the build failed (a
//! step did), 2 usage or input error (flags, Dockerfile, TOML, a missing
//! context or file), 3 infrastructure (registry, sandbox setup, cache or
//! export I/O); and library errors shown with their causes, one
//! `Caused by:` line each.

mod common;

use std::path::Path;

use common::*;

/// `engine build --progress plain --cache-dir CACHE EXTRA... CTX`: (exit
/// code, stderr).
fn build(ctx: &Path, cache: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let mut args = vec!["--progress", "plain"];
    args.extend_from_slice(extra);
    engine_build(ctx, cache, &args)
}

/// `engine build --cache-dir CACHE ARGS... CTX`: (exit code, stderr).
fn engine_build(ctx: &Path, cache: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = engine()
        .args(["build", "--cache-dir"])
        .arg(cache)
        .args(args)
        .arg(ctx)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.stdout.is_empty(), "errors go to stderr only: {err}");
    (out.status.code(), err)
}

fn dockerfile(text: &str) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("Dockerfile"), text).unwrap();
    t
}

/// The `Caused by:` lines of `err`, without the prefix.
fn causes(err: &str) -> Vec<&str> {
    err.lines()
        .filter_map(|l| l.trim_start().strip_prefix("Caused by: "))
        .collect()
}

#[test]
fn a_run_step_that_exits_non_zero_is_a_failed_build() {
    let ctx = dockerfile("FROM busybox\nRUN echo about-to-fail && exit 1\n");
    let cache = tempfile::tempdir().unwrap();
    let (code, err) = build(
        ctx.path(),
        cache.path(),
        &["--build-context", &busybox_context_flag()],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("Dockerfile:2:1"), "{err}");
    assert!(err.contains("exit code: 1"), "{err}");
    assert!(err.contains("about-to-fail"), "the step's output: {err}");
}

#[test]
fn a_copy_source_that_is_not_there_is_a_failed_build() {
    let ctx = dockerfile("FROM scratch\nCOPY missing.txt /\n");
    let cache = tempfile::tempdir().unwrap();
    let (code, err) = build(ctx.path(), cache.path(), &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("Dockerfile:2:1"), "{err}");
    assert!(err.contains("\"/missing.txt\": not found"), "{err}");
}

#[test]
fn a_dockerfile_that_does_not_parse_is_an_input_error() {
    let ctx = dockerfile("FROM scratch\nCPY a b\n");
    let cache = tempfile::tempdir().unwrap();
    let (code, err) = build(ctx.path(), cache.path(), &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("Dockerfile:2:1"), "{err}");
    assert!(
        std::fs::read_dir(cache.path()).unwrap().next().is_none(),
        "nothing was built, not even the cache dir"
    );
}

#[test]
fn a_toml_spec_that_does_not_plan_is_an_input_error() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(
        t.path().join("engine.toml"),
        "[image.app]\nfrom = \"scratch\"\nentrypoit = [\"/app\"]\n",
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let (code, err) = build(t.path(), cache.path(), &["--frontend", "toml"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("engine.toml:3:1"), "{err}");
}

#[test]
fn bad_flag_values_are_usage_errors() {
    let ctx = dockerfile("FROM scratch\nENV A=1\n");
    let cache = tempfile::tempdir().unwrap();
    // Checked by the engine.
    let (code, err) = engine_build(ctx.path(), cache.path(), &["--progress", "bogus"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("unknown progress mode `bogus`"), "{err}");
    // Checked by clap, which exits 2 itself.
    let (code, err) = build(ctx.path(), cache.path(), &["--frontend", "bogus"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("bogus"), "{err}");
    let (code, err) = build(ctx.path(), cache.path(), &["--no-such-flag"]);
    assert_eq!(code, Some(2), "{err}");
    // Checked before building: an output without a destination.
    let (code, err) = build(ctx.path(), cache.path(), &["-o", "type=oci"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("help:"), "{err}");
}

#[test]
fn a_missing_context_directory_is_an_input_error_with_its_cause() {
    let t = tempfile::tempdir().unwrap();
    let missing = t.path().join("no-such-dir");
    let cache = tempfile::tempdir().unwrap();
    let (code, err) = build(&missing, cache.path(), &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.starts_with(&format!("error: cannot use `{}`\n", missing.display())),
        "{err}"
    );
    assert_eq!(
        causes(&err),
        ["no such file or directory (os error 2)"],
        "{err}"
    );
}

#[test]
fn an_unreachable_registry_is_an_infrastructure_failure() {
    // Nothing listens on port 1.
    let ctx = dockerfile("FROM 127.0.0.1:1/x\nRUN true\n");
    let cache = tempfile::tempdir().unwrap();
    let (code, err) = build(ctx.path(), cache.path(), &[]);
    assert_eq!(code, Some(3), "{err}");
    let first = err.lines().next().unwrap_or_default();
    assert_eq!(
        first, "error: Dockerfile:1:1: cannot resolve image `127.0.0.1:1/x`",
        "the cause is said below, not on the error line: {err}"
    );
    let causes = causes(&err);
    assert_eq!(causes.len(), 2, "{err}");
    assert!(
        causes[0].starts_with("GET http://127.0.0.1:1/v2/"),
        "the request that failed: {err}"
    );
    assert_eq!(causes[1], "connection refused (os error 111)", "{err}");
    // The source line is shown below the causes, as for any located error.
    assert!(err.contains("FROM 127.0.0.1:1/x"), "{err}");
}

#[test]
fn a_cache_dir_that_cannot_be_made_is_an_infrastructure_failure() {
    let ctx = dockerfile("FROM scratch\nENV A=1\n");
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let (code, err) = build(ctx.path(), &file.join("cache"), &[]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.starts_with("error: cannot open cache dir"), "{err}");
    let causes = causes(&err);
    assert_eq!(
        causes.last().copied(),
        Some("not a directory (os error 20)"),
        "{err}"
    );
}

#[test]
fn an_output_that_cannot_be_written_is_an_infrastructure_failure() {
    let ctx = dockerfile("FROM scratch\nENV A=1\n");
    let cache = tempfile::tempdir().unwrap();
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    for output in [
        format!("type=docker,dest={}/image.tar,name=app:1", file.display()),
        format!("type=oci,dest={}/layout,tar=false", file.display()),
        format!("type=local,dest={}/rootfs", file.display()),
    ] {
        let (code, err) = build(ctx.path(), cache.path(), &["-o", &output]);
        assert_eq!(code, Some(3), "{output}: {err}");
        assert!(!causes(&err).is_empty(), "{output}: {err}");
        assert!(
            err.lines()
                .next()
                .is_some_and(|l| l.starts_with("error: cannot ")),
            "{output}: {err}"
        );
        assert!(
            err.contains(&file.display().to_string()),
            "{output}: names the path: {err}"
        );
    }
}
