//! Pushing to and pulling from a real registry: Debian's `docker-registry`
//! on 127.0.0.1:5000, which `scripts/setup-host` (and so CI) starts. An
//! image pushed with `-o type=registry` is pulled back by `FROM` in a fresh
//! cache (config and layers), by skopeo with the same digest, and by
//! dockerd, which runs it.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// A repository name no other test run uses.
fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{REGISTRY}/engine-test/{name}-{}-{nanos}",
        std::process::id()
    )
}

fn build(ctx: &Path, cache: &Path, extra: &[&str]) -> std::process::Output {
    run_ok(
        engine()
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args(["build", "--progress", "plain", "--cache-dir"])
            .arg(cache)
            .args(extra)
            .arg(ctx),
    )
}

/// A build that must fail with exit code `code` (README, "Exit codes"); its
/// stderr.
fn build_fails(code: i32, ctx: &Path, cache: &Path, extra: &[&str]) -> String {
    let out = engine()
        .args(["build", "--progress", "plain", "--cache-dir"])
        .arg(cache)
        .args(extra)
        .arg(ctx)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{err}");
    err
}

fn dockerfile(text: &str) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("Dockerfile"), text).unwrap();
    t
}

#[test]
fn pushed_image_is_pulled_by_from_skopeo_and_docker() {
    require_registry();
    let base = unique("app");
    let tag = format!("{base}:1");

    // Push: busybox (from the layout context) plus an ENV and a file.
    let ctx = dockerfile(
        "FROM busybox\nENV GREETING=hello\nRUN echo pushed > /pushed.txt\nCMD [\"cat\", \"/pushed.txt\"]\n",
    );
    let cache = tempfile::tempdir().unwrap();
    let out = build(
        ctx.path(),
        cache.path(),
        &[
            "--build-context",
            &busybox_context_flag(),
            "-o",
            &format!("type=registry,name={tag}"),
        ],
    );
    let pushed = image_digest(&out.stderr);
    let manifest_digest = pushed.split(' ').next().unwrap().to_string();
    assert!(manifest_digest.starts_with("sha256:"), "{pushed}");

    // skopeo sees the same manifest.
    require_tool("/usr/bin/skopeo");
    let inspect = run_ok(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{tag}"),
    ]));
    let v: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(v["Digest"].as_str().unwrap(), manifest_digest);

    // FROM the registry in a fresh cache, no layout context: the config
    // (ENV) is read while planning, the layers are pulled.
    let down = dockerfile(&format!(
        "FROM {tag}\nRUN echo \"$GREETING $(cat /pushed.txt)\" > /pulled.txt\n"
    ));
    let fresh = tempfile::tempdir().unwrap();
    let dest = down.path().join("rootfs");
    build(
        down.path(),
        fresh.path(),
        &["-o", &format!("type=local,dest={}", dest.display())],
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("pulled.txt")).unwrap(),
        "hello pushed\n"
    );
    // Pinned by digest: the rebuild runs nothing, and pulls nothing again.
    let again = build(down.path(), fresh.path(), &[]);
    let text = String::from_utf8_lossy(&again.stderr);
    assert!(text.contains(" 0 executed"), "{text}");

    // A pull by digest gives the same image.
    let by_digest = dockerfile(&format!(
        "FROM {base}@{manifest_digest}\nRUN cat /pushed.txt\n"
    ));
    build(by_digest.path(), fresh.path(), &[]);

    // dockerd pulls it (127.0.0.0/8 is an insecure registry by default) and runs it.
    require_tool("/usr/bin/docker");
    run_ok(Command::new("/usr/bin/docker").args(["pull", "-q", &tag]));
    let run = run_ok(Command::new("/usr/bin/docker").args(["run", "--rm", &tag]));
    assert_eq!(String::from_utf8_lossy(&run.stdout), "pushed\n");
    let _ = Command::new("/usr/bin/docker")
        .args(["rmi", "-f", &tag])
        .output();
}

#[test]
fn a_missing_image_or_registry_fails_clearly() {
    require_registry();
    let ctx = dockerfile(&format!("FROM {}:nope\nRUN true\n", unique("missing")));
    let cache = tempfile::tempdir().unwrap();
    // An image the registry does not have: a bad name, an input error.
    let err = build_fails(2, ctx.path(), cache.path(), &[]);
    assert!(err.contains("Dockerfile:1"), "located at the FROM: {err}");
    assert!(err.contains("404"), "the registry's answer: {err}");

    // Nothing listens on port 1.
    let ctx = dockerfile("FROM 127.0.0.1:1/app:1\n");
    let err = build_fails(3, ctx.path(), cache.path(), &[]);
    assert!(err.contains("127.0.0.1:1"), "{err}");
}

#[test]
fn pushing_needs_a_name() {
    let ctx = dockerfile("FROM scratch\nENV A=1\n");
    let cache = tempfile::tempdir().unwrap();
    let err = build_fails(2, ctx.path(), cache.path(), &["-o", "type=registry"]);
    assert!(err.contains("no name to push to"), "{err}");
}

#[test]
fn a_registry_cache_serves_a_fresh_machine() {
    require_registry();
    let cache_ref = format!("{}:buildcache", unique("cache"));
    let ctx = dockerfile(
        "FROM busybox AS build\nRUN echo built > /artifact\nFROM busybox\nCOPY --from=build /artifact /artifact\nRUN cat /artifact > /copy\n",
    );
    let cache_to = format!("type=registry,ref={cache_ref},mode=max");
    let cache_from = format!("type=registry,ref={cache_ref}");
    // The first machine: no cache there yet (a warning, not a failure).
    let first = tempfile::tempdir().unwrap();
    let out = build(
        ctx.path(),
        first.path(),
        &[
            "--build-context",
            &busybox_context_flag(),
            "--cache-from",
            &cache_from,
            "--cache-to",
            &cache_to,
        ],
    );
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("no cache at"), "{text}");
    let digest = image_digest(&out.stderr);

    // Another machine: every RUN and COPY comes from the registry (only the
    // base image is imported from its layout), and the image is the same.
    let second = tempfile::tempdir().unwrap();
    let out = build(
        ctx.path(),
        second.path(),
        &[
            "--build-context",
            &busybox_context_flag(),
            "--cache-from",
            &cache_from,
        ],
    );
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(text.matches("CACHED").count(), 3, "{text}");
    assert!(text.contains("3 cached, 1 executed"), "{text}");
    assert_eq!(image_digest(&out.stderr), digest);
}

#[test]
fn a_registry_image_is_not_a_cache() {
    require_registry();
    let tag = format!("{}:1", unique("notcache"));
    let ctx = dockerfile("FROM busybox\nENV A=1\n");
    let cache = tempfile::tempdir().unwrap();
    build(
        ctx.path(),
        cache.path(),
        &[
            "--build-context",
            &busybox_context_flag(),
            "-o",
            &format!("type=registry,name={tag}"),
        ],
    );
    let other = tempfile::tempdir().unwrap();
    let out = build(
        ctx.path(),
        other.path(),
        &[
            "--build-context",
            &busybox_context_flag(),
            "--cache-from",
            &format!("type=registry,ref={tag}"),
        ],
    );
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("is not an engine build cache"), "{text}");
}
