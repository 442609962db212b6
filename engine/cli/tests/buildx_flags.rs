//! The flags CI scripts use with `docker buildx build` (issue 10):
//! `--metadata-file`, `-q`, `--push`, `--load`, `--label`, `--annotation`
//! and `--pull`. Every digest a flag reports is checked against what was
//! actually written, pushed or loaded.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use serde_json::Value;

fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = t.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    t
}

/// `engine build` with a cache dir and plain progress; the rest from `extra`.
fn build_cmd(ctx: &Path, cache: &Path, extra: &[&str]) -> Command {
    let mut c = engine();
    c.env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["build", "--progress", "plain", "--cache-dir"])
        .arg(cache)
        .args(extra)
        .arg(ctx);
    c
}

fn build(ctx: &Path, cache: &Path, extra: &[&str]) -> Output {
    run_ok(&mut build_cmd(ctx, cache, extra))
}

/// A build that must fail with exit code `code` (README, "Exit codes"):
/// its stderr.
fn build_fails(code: i32, ctx: &Path, cache: &Path, extra: &[&str]) -> String {
    let out = build_cmd(ctx, cache, extra).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn read_json(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", p.display()))
}

/// A blob of an OCI layout directory, checked against its digest.
fn layout_blob(layout: &Path, digest: &str) -> Vec<u8> {
    use sha2::Digest as _;
    let hex = digest.strip_prefix("sha256:").unwrap();
    let bytes = std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap();
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&bytes)),
        hex,
        "blob {digest}"
    );
    bytes
}

/// The one root descriptor of a layout's index.json (all its entries name
/// the same document) and that document.
fn layout_root(layout: &Path) -> (Value, Value) {
    let index = read_json(&layout.join("index.json"));
    let entries = index["manifests"].as_array().unwrap();
    assert!(!entries.is_empty(), "{index}");
    for e in entries {
        assert_eq!(e["digest"], entries[0]["digest"], "{index}");
    }
    let root = entries[0].clone();
    let doc: Value =
        serde_json::from_slice(&layout_blob(layout, root["digest"].as_str().unwrap())).unwrap();
    (root, doc)
}

/// The metadata object says exactly what the layout holds: the root
/// document's digest, media type and size, and its config's digest.
fn assert_metadata_matches_layout(meta: &Value, layout: &Path) {
    let (root, manifest) = layout_root(layout);
    assert_eq!(meta["containerimage.digest"], root["digest"], "{meta}");
    let desc = &meta["containerimage.descriptor"];
    assert_eq!(desc["digest"], root["digest"], "{meta}");
    assert_eq!(desc["mediaType"], root["mediaType"], "{meta}");
    assert_eq!(desc["size"], root["size"], "{meta}");
    let bytes = layout_blob(layout, root["digest"].as_str().unwrap());
    assert_eq!(desc["size"].as_u64().unwrap(), bytes.len() as u64);
    assert_eq!(
        meta["containerimage.config.digest"], manifest["config"]["digest"],
        "{meta}"
    );
    layout_blob(layout, manifest["config"]["digest"].as_str().unwrap());
}

#[test]
fn metadata_file_digests_are_those_of_the_written_layout() {
    let ctx = dir_with(&[
        ("Dockerfile", "FROM scratch\nCOPY hello /hello\n"),
        ("hello", "hi\n"),
    ]);
    let cache = tempfile::tempdir().unwrap();
    let layout = ctx.path().join("out/layout");
    let meta = ctx.path().join("meta/build.json");
    build(
        ctx.path(),
        cache.path(),
        &[
            "-t",
            "example.com/app:1",
            "-t",
            "app:latest",
            "-o",
            &format!("type=oci,dest={},tar=false", layout.display()),
            "--metadata-file",
            meta.to_str().unwrap(),
        ],
    );
    let m = read_json(&meta);
    assert_metadata_matches_layout(&m, &layout);
    assert_eq!(m["image.name"], "example.com/app:1,app:latest", "{m}");
    assert_eq!(
        m["containerimage.descriptor"]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );

    // The same build again: the same digests, the file rewritten.
    std::fs::write(&meta, "stale").unwrap();
    build(
        ctx.path(),
        cache.path(),
        &[
            "-t",
            "example.com/app:1",
            "-t",
            "app:latest",
            "-o",
            &format!("type=oci,dest={},tar=false", layout.display()),
            "--metadata-file",
            meta.to_str().unwrap(),
        ],
    );
    assert_eq!(read_json(&meta), m);

    // No image output: the image ID only; a rootfs output: nothing to report.
    build(
        ctx.path(),
        cache.path(),
        &["--metadata-file", meta.to_str().unwrap()],
    );
    let bare = read_json(&meta);
    assert_eq!(
        bare,
        serde_json::json!({"containerimage.config.digest": m["containerimage.config.digest"]})
    );
    build(
        ctx.path(),
        cache.path(),
        &[
            "-o",
            &format!("type=local,dest={}", ctx.path().join("rootfs").display()),
            "--metadata-file",
            meta.to_str().unwrap(),
        ],
    );
    assert_eq!(read_json(&meta), serde_json::json!({}));

    // A directory is refused before anything is built.
    let err = build_fails(
        2,
        ctx.path(),
        cache.path(),
        &["--metadata-file", ctx.path().to_str().unwrap()],
    );
    assert!(
        err.contains("--metadata-file") && err.contains("is a directory"),
        "{err}"
    );
}

#[test]
fn metadata_file_has_one_object_per_toml_target() {
    let spec = r#"
[image.one]
from = "scratch"
context = "one"
tags = ["one:1"]
outputs = ["type=oci,dest=out/one,tar=false"]

[[image.one.steps]]
copy = "f"
to = "/f"

[image.two]
from = "scratch"
context = "two"
tags = ["two:1", "two:latest"]
outputs = ["type=oci,dest=out/two,tar=false"]

[[image.two.steps]]
copy = "f"
to = "/f"
"#;
    let ctx = dir_with(&[
        ("engine.toml", spec),
        ("one/f", "one\n"),
        ("two/f", "two\n"),
    ]);
    let cache = tempfile::tempdir().unwrap();
    let meta = ctx.path().join("meta.json");
    build(
        ctx.path(),
        cache.path(),
        &[
            "--frontend",
            "toml",
            "--metadata-file",
            meta.to_str().unwrap(),
        ],
    );
    let m = read_json(&meta);
    let keys: Vec<&String> = m.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["one", "two"], "{m}");
    assert_metadata_matches_layout(&m["one"], &ctx.path().join("out/one"));
    assert_metadata_matches_layout(&m["two"], &ctx.path().join("out/two"));
    assert_eq!(m["one"]["image.name"], "one:1");
    assert_eq!(m["two"]["image.name"], "two:1,two:latest");
    assert_ne!(
        m["one"]["containerimage.digest"],
        m["two"]["containerimage.digest"]
    );
}

/// `engine build --help` documents each of these flags.
#[test]
fn help_lists_the_buildx_flags() {
    let o = run_ok(engine().args(["build", "--help"]));
    let help = String::from_utf8_lossy(&o.stdout);
    for flag in [
        "--metadata-file <FILE>",
        "containerimage.digest",
        "-q, --quiet",
        "--push",
        "--load",
        "DOCKER_HOST",
        "--label <KEY=VALUE>",
        "--annotation <KEY=VALUE>",
        "index:KEY=VALUE",
        "--pull",
    ] {
        assert!(help.contains(flag), "`{flag}` missing from --help:\n{help}");
    }
}

fn is_image_id(s: &str) -> bool {
    s.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[test]
fn quiet_prints_only_the_image_id() {
    let ctx = dir_with(&[
        ("Dockerfile", "FROM scratch\nCOPY hello /hello\nLABEL a=b\n"),
        ("hello", "hi\n"),
    ]);
    let cache = tempfile::tempdir().unwrap();
    let layout = ctx.path().join("layout");
    let iid = ctx.path().join("iid");
    let out = build(
        ctx.path(),
        cache.path(),
        &[
            "-q",
            "-o",
            &format!("type=oci,dest={},tar=false", layout.display()),
            "--iidfile",
            iid.to_str().unwrap(),
        ],
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let id = stdout.strip_suffix('\n').unwrap();
    assert!(is_image_id(id), "stdout: {stdout:?}");
    // The image ID: the config digest of the written manifest, as --iidfile.
    let (_, manifest) = layout_root(&layout);
    assert_eq!(manifest["config"]["digest"], id);
    assert_eq!(std::fs::read_to_string(&iid).unwrap(), id);
    // Nothing for humans: no progress, no summary, no digest line.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.trim().is_empty(), "stderr under -q: {stderr}");

    // Without an output, the same image has the same ID.
    let again = build(ctx.path(), cache.path(), &["--quiet"]);
    assert_eq!(String::from_utf8(again.stdout).unwrap(), stdout);

    // -q and a tar on standard output cannot share it.
    let err = build_fails(2, ctx.path(), cache.path(), &["-q", "-o", "-"]);
    assert!(
        err.contains("-q") && err.contains("standard output"),
        "{err}"
    );
}

#[test]
fn quiet_names_each_toml_target() {
    let spec = r#"
[image.one]
from = "scratch"
context = "one"

[[image.one.steps]]
copy = "f"
to = "/f"

[image.two]
from = "scratch"
context = "two"

[[image.two.steps]]
copy = "f"
to = "/f"
"#;
    let ctx = dir_with(&[("engine.toml", spec), ("one/f", "1\n"), ("two/f", "2\n")]);
    let cache = tempfile::tempdir().unwrap();
    let out = build(ctx.path(), cache.path(), &["--frontend", "toml", "-q"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<(&str, &str)> = stdout.lines().map(|l| l.split_once(' ').unwrap()).collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!((lines[0].0, lines[1].0), ("one", "two"), "{stdout}");
    assert!(
        is_image_id(lines[0].1) && is_image_id(lines[1].1),
        "{stdout}"
    );
    assert_ne!(lines[0].1, lines[1].1);
}

/// Standard output is for what a script asked for: RUN output, progress in
/// every mode, summaries, warnings and errors all go to standard error.
#[test]
fn nothing_else_ever_goes_to_standard_output() {
    let ctx = dir_with(&[(
        "Dockerfile",
        "FROM busybox\nRUN echo run-stdout; echo run-stderr >&2\nRUN echo built > /x\n",
    )]);
    let cache = tempfile::tempdir().unwrap();
    let base = busybox_context_flag();
    let layout = ctx.path().join("layout");
    let dest = format!("type=oci,dest={},tar=false", layout.display());
    let meta = ctx.path().join("meta.json");
    let iid = ctx.path().join("iid");
    for progress in ["plain", "json", "tty", "quiet", "auto"] {
        let out = run_ok(
            engine()
                .args(["build", "--no-cache", "--cache-dir"])
                .arg(cache.path())
                .args([
                    "--progress",
                    progress,
                    "--build-context",
                    &base,
                    "-t",
                    "app:1",
                    "-o",
                    &dest,
                    "--metadata-file",
                    meta.to_str().unwrap(),
                    "--iidfile",
                    iid.to_str().unwrap(),
                    // A warning too: this cache is not there.
                    "--cache-from",
                    "type=local,src=/nonexistent-engine-cache",
                ])
                .arg(ctx.path()),
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.is_empty(), "--progress {progress}: stdout: {stdout}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if progress == "plain" || progress == "json" {
            assert!(stderr.contains("run-stdout"), "{progress}: {stderr}");
        }
    }
    // A failing step: its output and the error on stderr only.
    let failing = dir_with(&[("Dockerfile", "FROM busybox\nRUN echo boom; exit 3\n")]);
    let out = engine()
        .args(["build", "--progress", "plain", "--cache-dir"])
        .arg(cache.path())
        .args(["--build-context", &base])
        .arg(failing.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("boom"));
}

/// A name no other test run uses.
fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

fn skopeo_inspect(reference: &str, raw: bool) -> Value {
    require_tool("/usr/bin/skopeo");
    let mut c = Command::new("/usr/bin/skopeo");
    c.args(["inspect", "--tls-verify=false"]);
    if raw {
        c.arg("--raw");
    }
    let out = run_ok(c.arg(format!("docker://{reference}")));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn docker(args: &[&str]) -> Output {
    require_tool("/usr/bin/docker");
    run_ok(Command::new("/usr/bin/docker").args(args))
}

/// Removes a tag from the daemon when the test ends, however it ends.
struct DockerTag(String);

impl Drop for DockerTag {
    fn drop(&mut self) {
        let _ = Command::new("/usr/bin/docker")
            .args(["rmi", "-f", &self.0])
            .output();
    }
}

#[test]
fn push_sends_every_tag_to_the_registry() {
    require_registry();
    let repo = format!("{REGISTRY}/engine-test/{}", unique("push"));
    let (one, two) = (format!("{repo}:1"), format!("{repo}:latest"));
    let ctx = dir_with(&[
        ("Dockerfile", "FROM scratch\nCOPY hello /hello\n"),
        ("hello", "pushed\n"),
    ]);
    let cache = tempfile::tempdir().unwrap();
    let meta = ctx.path().join("meta.json");
    let out = build(
        ctx.path(),
        cache.path(),
        &[
            "--push",
            "-t",
            &one,
            "-t",
            &two,
            "--metadata-file",
            meta.to_str().unwrap(),
        ],
    );
    let m = read_json(&meta);
    for tag in [&one, &two] {
        let seen = skopeo_inspect(tag, false);
        assert_eq!(seen["Digest"], m["containerimage.digest"], "{tag}: {m}");
    }
    let manifest = skopeo_inspect(&one, true);
    assert_eq!(
        manifest["config"]["digest"],
        m["containerimage.config.digest"]
    );
    assert_eq!(m["image.name"], format!("{one},{two}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("pushed {one}@")), "{stderr}");

    // Without a name, nothing is built: the check comes first.
    let failing = dir_with(&[("Dockerfile", "FROM busybox\nRUN echo must-not-run\n")]);
    let err = build_fails(
        2,
        failing.path(),
        cache.path(),
        &["--build-context", &busybox_context_flag(), "--push"],
    );
    assert!(
        err.contains("no name to push to") && err.contains("-t"),
        "{err}"
    );
    assert!(!err.contains("must-not-run"), "built before failing: {err}");
}

#[test]
fn push_and_metadata_apply_to_each_toml_target() {
    require_registry();
    let repo = format!("{REGISTRY}/engine-test/{}", unique("bake"));
    let spec = format!(
        r#"
[image.one]
from = "scratch"
context = "one"
tags = ["{repo}-one:1"]

[[image.one.steps]]
copy = "f"
to = "/f"

[image.two]
from = "scratch"
context = "two"
tags = ["{repo}-two:1"]

[[image.two.steps]]
copy = "f"
to = "/f"
"#
    );
    let ctx = dir_with(&[("engine.toml", &spec), ("one/f", "1\n"), ("two/f", "2\n")]);
    let cache = tempfile::tempdir().unwrap();
    let meta = ctx.path().join("meta.json");
    build(
        ctx.path(),
        cache.path(),
        &[
            "--frontend",
            "toml",
            "--push",
            "--metadata-file",
            meta.to_str().unwrap(),
        ],
    );
    let m = read_json(&meta);
    for t in ["one", "two"] {
        let tag = format!("{repo}-{t}:1");
        assert_eq!(m[t]["image.name"], tag.as_str(), "{m}");
        assert_eq!(
            skopeo_inspect(&tag, false)["Digest"],
            m[t]["containerimage.digest"]
        );
    }

    // A target without tags has nothing to push to: named, before building.
    let untagged = spec.replace(&format!("tags = [\"{repo}-two:1\"]"), "");
    std::fs::write(ctx.path().join("engine.toml"), untagged).unwrap();
    let err = build_fails(
        2,
        ctx.path(),
        cache.path(),
        &["--frontend", "toml", "--push"],
    );
    assert!(
        err.contains("target `two`") && err.contains("no name to push to"),
        "{err}"
    );
}

#[test]
fn load_puts_the_image_into_the_docker_daemon() {
    let tag = format!("engine-test/{}:1", unique("load"));
    let _cleanup = DockerTag(tag.clone());
    let ctx = dir_with(&[(
        "Dockerfile",
        "FROM busybox\nRUN echo loaded > /msg\nCMD [\"cat\", \"/msg\"]\n",
    )]);
    let cache = tempfile::tempdir().unwrap();
    let meta = ctx.path().join("meta.json");
    let out = build(
        ctx.path(),
        cache.path(),
        &[
            "--build-context",
            &busybox_context_flag(),
            "--load",
            "-t",
            &tag,
            "--metadata-file",
            meta.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("loaded {tag} into the docker daemon")),
        "{stderr}"
    );
    let listed = docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(
        String::from_utf8_lossy(&listed.stdout)
            .lines()
            .any(|l| l == tag),
        "docker images does not list {tag}:\n{}",
        String::from_utf8_lossy(&listed.stdout)
    );
    let id = docker(&["image", "inspect", "--format", "{{.Id}}", &tag]);
    let m = read_json(&meta);
    assert_eq!(
        String::from_utf8_lossy(&id.stdout).trim(),
        m["containerimage.config.digest"].as_str().unwrap()
    );
    let run = docker(&["run", "--rm", &tag]);
    assert_eq!(String::from_utf8_lossy(&run.stdout), "loaded\n");

    // -q --load: what is printed is what docker run takes.
    let again = build(
        ctx.path(),
        cache.path(),
        &[
            "--build-context",
            &busybox_context_flag(),
            "--load",
            "-t",
            &tag,
            "-q",
        ],
    );
    let printed = String::from_utf8(again.stdout).unwrap();
    let run = docker(&["run", "--rm", printed.trim()]);
    assert_eq!(String::from_utf8_lossy(&run.stdout), "loaded\n");
}

#[test]
fn load_without_a_daemon_fails_before_building() {
    let ctx = dir_with(&[("Dockerfile", "FROM busybox\nRUN echo must-not-run\n")]);
    let cache = tempfile::tempdir().unwrap();
    let base = busybox_context_flag();
    // A daemon that does not answer is infrastructure (3), a DOCKER_HOST
    // the engine cannot use a usage error (2).
    for (host, expect, code) in [
        (
            "unix:///nonexistent/docker.sock",
            "cannot connect to the docker daemon at unix:///nonexistent/docker.sock",
            3,
        ),
        (
            "tcp://127.0.0.1:2375",
            "DOCKER_HOST=tcp://127.0.0.1:2375 is not supported",
            2,
        ),
    ] {
        let out = build_cmd(
            ctx.path(),
            cache.path(),
            &["--build-context", &base, "--load"],
        )
        .env("DOCKER_HOST", host)
        .output()
        .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{err}");
        assert!(err.contains(expect), "{err}");
        assert!(
            err.contains("help:") && err.contains("type=docker,dest="),
            "{err}"
        );
        assert!(!err.contains("must-not-run"), "built before failing: {err}");
    }
}

/// The config's labels of a layout's one image.
fn layout_labels(layout: &Path) -> Value {
    let (_, manifest) = layout_root(layout);
    let config: Value = serde_json::from_slice(&layout_blob(
        layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    config["config"]["Labels"].clone()
}

#[test]
fn labels_are_set_as_docker_build_sets_them() {
    let ctx = dir_with(&[
        (
            "Dockerfile",
            "FROM scratch\nLABEL a=from-dockerfile keep=1\nCOPY f /f\n",
        ),
        ("f", "x\n"),
    ]);
    let cache = tempfile::tempdir().unwrap();
    let layout = |n: &str| ctx.path().join(n);
    let oci = |n: &str| format!("type=oci,dest={},tar=false", layout(n).display());
    let flags = ["--label", "a=cli", "--label", "b=2", "--label", "empty"];
    let out = build(
        ctx.path(),
        cache.path(),
        &[&flags[..], &["-o", &oci("one")]].concat(),
    );
    let labels = layout_labels(&layout("one"));
    assert_eq!(
        labels,
        serde_json::json!({"a": "cli", "b": "2", "empty": "", "keep": "1"})
    );
    // Deterministic: the same labels in another order, another cache, the
    // same image; no labels, another image.
    let other = tempfile::tempdir().unwrap();
    let again = build(
        ctx.path(),
        other.path(),
        &[
            "--label",
            "empty",
            "--label",
            "b=2",
            "--label",
            "a=cli",
            "-o",
            &oci("two"),
        ],
    );
    assert_eq!(image_digest(&again.stderr), image_digest(&out.stderr));
    let plain = build(ctx.path(), cache.path(), &["-o", &oci("three")]);
    assert_ne!(image_digest(&plain.stderr), image_digest(&out.stderr));

    // BuildKit gives the image the same labels.
    require_tool("/usr/bin/docker");
    let tag = format!("engine-test/{}:1", unique("labels"));
    let _cleanup = DockerTag(tag.clone());
    let mut reference = Command::new("/usr/bin/docker");
    reference
        .env("DOCKER_BUILDKIT", "1")
        .args(["build", "-q", "-t", &tag])
        .args(flags)
        .arg(ctx.path());
    run_ok(&mut reference);
    let inspected = docker(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.Labels}}",
        &tag,
    ]);
    let theirs: Value = serde_json::from_slice(&inspected.stdout).unwrap();
    assert_eq!(labels, theirs);

    let err = build_fails(2, ctx.path(), cache.path(), &["--label", "=x"]);
    assert!(err.contains("invalid --label"), "{err}");
}

#[test]
fn annotations_go_on_the_manifest_and_the_index() {
    let ctx = dir_with(&[("Dockerfile", "FROM scratch\nCOPY f /f\n"), ("f", "x\n")]);
    let cache = tempfile::tempdir().unwrap();
    let layout = |n: &str| ctx.path().join(n);
    let oci = |n: &str| format!("type=oci,dest={},tar=false", layout(n).display());
    let meta = ctx.path().join("meta.json");
    let manifest_only = [
        "--annotation",
        "org.opencontainers.image.title=app",
        "--annotation",
        "manifest:com.example.m=1=2",
        "--annotation",
        "manifest[windows/amd64]:com.example.elsewhere=no",
    ];
    // Manifest annotations only: the root is the manifest, carrying them.
    build(
        ctx.path(),
        cache.path(),
        &[&manifest_only[..], &["-o", &oci("m")]].concat(),
    );
    let (root, manifest) = layout_root(&layout("m"));
    assert_eq!(
        root["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["annotations"],
        serde_json::json!({"org.opencontainers.image.title": "app", "com.example.m": "1=2"})
    );
    let unannotated = build(ctx.path(), cache.path(), &["-o", &oci("plain")]);
    let (plain_root, _) = layout_root(&layout("plain"));
    assert_ne!(root["digest"], plain_root["digest"]);

    // An index annotation: the image gets an index, which carries it.
    let with_index = [
        &manifest_only[..],
        &[
            "--annotation",
            "index:com.example.i=2",
            "--metadata-file",
            meta.to_str().unwrap(),
        ],
    ]
    .concat();
    build(
        ctx.path(),
        cache.path(),
        &[&with_index[..], &["-o", &oci("i")]].concat(),
    );
    let (root, index) = layout_root(&layout("i"));
    assert_eq!(root["mediaType"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(
        index["annotations"],
        serde_json::json!({"com.example.i": "2"})
    );
    let inner = index["manifests"].as_array().unwrap();
    assert_eq!(inner.len(), 1);
    let (m_root, _) = layout_root(&layout("m"));
    assert_eq!(
        inner[0]["digest"], m_root["digest"],
        "the same manifest inside"
    );
    let m = read_json(&meta);
    assert_eq!(m["containerimage.digest"], root["digest"]);
    assert_eq!(
        m["containerimage.descriptor"]["mediaType"],
        root["mediaType"]
    );
    assert_eq!(m["containerimage.descriptor"]["size"], root["size"]);

    // Deterministic: flags in another order, another cache.
    let other = tempfile::tempdir().unwrap();
    let mut reversed: Vec<&str> = Vec::new();
    for pair in with_index.chunks(2).rev() {
        reversed.extend(pair);
    }
    build(
        ctx.path(),
        other.path(),
        &[&reversed[..], &["-o", &oci("i2")]].concat(),
    );
    assert_eq!(layout_root(&layout("i2")).0["digest"], root["digest"]);
    drop(unannotated);

    // Pushed, the registry holds the annotated index, and skopeo reads
    // the image through it.
    require_registry();
    let tag = format!("{REGISTRY}/engine-test/{}:1", unique("annotated"));
    build(
        ctx.path(),
        cache.path(),
        &[&with_index[..], &["--push", "-t", &tag]].concat(),
    );
    let raw = skopeo_inspect(&tag, true);
    assert_eq!(raw["annotations"]["com.example.i"], "2", "{raw}");
    assert_eq!(skopeo_inspect(&tag, false)["Digest"], root["digest"]);

    for (bad, expect) in [
        ("foo:bar=1", "unknown annotation type `foo`"),
        ("novalue", "no `=`"),
        ("index[linux/amd64]:a=1", "not for one platform"),
        ("manifest-descriptor:a=1", "not supported"),
    ] {
        let err = build_fails(2, ctx.path(), cache.path(), &["--annotation", bad]);
        assert!(err.contains(expect), "{bad}: {err}");
    }
}

/// A private registry on a free port, killed when dropped: for what the
/// shared one cannot do (go away in the middle of a test).
struct PrivateRegistry {
    child: std::process::Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl PrivateRegistry {
    fn start() -> Self {
        require_tool("/usr/bin/docker-registry");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let r = PrivateRegistry {
            child,
            addr,
            _dir: dir,
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(&r.addr).is_ok() {
                return r;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("docker-registry did not start on {}", r.addr);
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Push `FROM scratch` + `/v` holding `content` as `tag`.
fn push_base(tag: &str, content: &str, cache: &Path) {
    let ctx = dir_with(&[("Dockerfile", "FROM scratch\nCOPY v /v\n"), ("v", content)]);
    build(ctx.path(), cache, &["--push", "-t", tag]);
}

/// Build `FROM tag` + a file into a rootfs (and a layout, for the `image
/// digest` line): what `/v` holds.
fn build_on(tag: &str, cache: &Path, extra: &[&str]) -> (String, Output) {
    let ctx = dir_with(&[
        ("Dockerfile", &format!("FROM {tag}\nCOPY c /c\n")),
        ("c", "consumer\n"),
    ]);
    let rootfs = ctx.path().join("rootfs");
    let layout = ctx.path().join("layout");
    let out = build(
        ctx.path(),
        cache,
        &[
            extra,
            &[
                "-o",
                &format!("type=local,dest={}", rootfs.display()),
                "-o",
                &format!("type=oci,dest={},tar=false", layout.display()),
            ],
        ]
        .concat(),
    );
    (std::fs::read_to_string(rootfs.join("v")).unwrap(), out)
}

#[test]
fn pull_resolves_a_re_pushed_tag_again() {
    require_registry();
    let tag = format!("{REGISTRY}/engine-test/{}:1", unique("repushed"));
    let pusher = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    push_base(&tag, "one\n", pusher.path());
    assert_eq!(build_on(&tag, cache.path(), &[]).0, "one\n");
    // The tag moves; the same cache, which has resolved it before.
    push_base(&tag, "two\n", pusher.path());
    assert_eq!(build_on(&tag, cache.path(), &["--pull"]).0, "two\n");
    // Without --pull too: tags are resolved at every build, as BuildKit does.
    push_base(&tag, "three\n", pusher.path());
    assert_eq!(build_on(&tag, cache.path(), &[]).0, "three\n");
}

#[test]
fn without_the_registry_the_last_resolution_serves_unless_pull() {
    let mut registry = PrivateRegistry::start();
    let tag = format!("{}/engine-test/offline:1", registry.addr);
    let pusher = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    push_base(&tag, "kept\n", pusher.path());
    let (v, first) = build_on(&tag, cache.path(), &["--pull"]);
    assert_eq!(v, "kept\n");
    registry.stop();

    // The registry is gone: the build uses what the tag last resolved to.
    let (v, offline) = build_on(&tag, cache.path(), &[]);
    assert_eq!(v, "kept\n");
    let text = String::from_utf8_lossy(&offline.stderr);
    assert!(
        text.contains(&format!("warning: cannot reach the registry of `{tag}`")),
        "{text}"
    );
    assert!(text.contains("--pull refuses"), "{text}");
    assert_eq!(image_digest(&offline.stderr), image_digest(&first.stderr));

    // --pull asks the registry and fails, saying why.
    let ctx = dir_with(&[("Dockerfile", &format!("FROM {tag}\nRUN true\n"))]);
    let err = build_fails(3, ctx.path(), cache.path(), &["--pull"]);
    assert!(
        err.contains("Dockerfile:1") && err.contains("--pull"),
        "{err}"
    );
    // A cache that never resolved the tag has nothing to fall back on.
    let fresh = tempfile::tempdir().unwrap();
    let err = build_fails(3, ctx.path(), fresh.path(), &[]);
    assert!(
        err.contains(&registry.addr) && !err.contains("--pull"),
        "{err}"
    );
}
