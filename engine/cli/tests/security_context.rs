//! The build context is read only as `.dockerignore` filters it, its special
//! files are never opened, and the files that define a build (Dockerfile,
//! `.dockerignore`, `engine.toml`) are never read from outside their
//! context. Each test fails on an engine without the matching fix.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The first line of a file outside every context: invalid as a
/// Dockerfile instruction, as a `.dockerignore` pattern and as TOML, so
/// that an engine that reads it would echo it in its error.
const SECRET: &str = "host-secret-canary [";

struct Canary {
    dir: tempfile::TempDir,
}

impl Canary {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("secret"),
            format!("{SECRET}\nsecond line\n"),
        )
        .unwrap();
        Canary { dir }
    }
    fn file(&self) -> PathBuf {
        self.dir.path().join("secret")
    }
    fn assert_not_echoed(&self, out: &Run) {
        for (what, s) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            assert!(
                !s.contains("host-secret-canary"),
                "the outside file's content reached {what}:\n{s}"
            );
        }
    }
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// How long a build may take before the test calls it hung.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Run the engine, killing it (and failing the test) after [`TIMEOUT`].
fn run(cmd: &mut Command) -> Run {
    let logs = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (logs.path().join("out"), logs.path().join("err"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let Some(status) = status else {
        panic!("the engine did not finish within {TIMEOUT:?}:\n{stderr}");
    };
    assert!(!stderr.contains("panicked"), "{stderr}");
    Run {
        ok: status.success(),
        stdout,
        stderr,
    }
}

/// Build `ctx` (its Dockerfile as it is) with a given cache dir, into a
/// local rootfs under `out`.
fn build_in(ctx: &Path, cache: &Path, out: &Path, extra: &[&str]) -> Run {
    run(engine()
        .args(["build", "--progress", "plain", "--cache-dir"])
        .arg(cache)
        .args(["--build-context", &busybox_context_flag()])
        .args(extra)
        .arg("-o")
        .arg(format!("type=local,dest={}", out.display()))
        .arg(ctx))
}

/// Write the Dockerfile and build with a fresh cache: (run, rootfs).
fn build(ctx: &Path, dockerfile: &str) -> (Run, tempfile::TempDir) {
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let r = build_in(ctx, cache.path(), &out.path().join("rootfs"), &[]);
    (r, out)
}

fn read(root: &Path, p: &str) -> String {
    std::fs::read_to_string(root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
}

// ---------------------------------------------------------------------------
// Hole 6: a bind mount of the context sees the filtered context, and its
// cache key covers exactly what it sees.

fn ignoring_context() -> tempfile::TempDir {
    let ctx = tempfile::tempdir().unwrap();
    let p = ctx.path();
    std::fs::create_dir_all(p.join("sub")).unwrap();
    std::fs::create_dir_all(p.join("docs/old")).unwrap();
    std::fs::create_dir_all(p.join("secrets")).unwrap();
    std::fs::write(p.join("secret.txt"), "secret-v1\n").unwrap();
    std::fs::write(p.join("keep.txt"), "keep-v1\n").unwrap();
    std::fs::write(p.join("sub/hidden"), "hidden-v1\n").unwrap();
    std::fs::write(p.join("sub/shown"), "shown\n").unwrap();
    std::fs::write(p.join("docs/keep.md"), "kept doc\n").unwrap();
    std::fs::write(p.join("docs/drop.md"), "dropped-doc\n").unwrap();
    std::fs::write(p.join("docs/old/x.md"), "dropped-old\n").unwrap();
    std::fs::write(p.join("secrets/key"), "secret-key\n").unwrap();
    std::os::unix::fs::symlink("secrets", p.join("keys")).unwrap();
    std::fs::write(
        p.join(".dockerignore"),
        "secret.txt\nsub/hidden\ndocs\n!docs/keep.md\nsecrets\n",
    )
    .unwrap();
    ctx
}

const BIND_DOCKERFILE: &str = "FROM busybox
RUN --mount=type=bind,target=/m sh -c 'cd /m && find . | sort > /listing; cat keep.txt > /kept; cat secret.txt > /copied 2>/dev/null || echo absent > /copied'
RUN --mount=type=bind,source=sub,target=/s,rw sh -c 'ls -a /s > /sublisting; cat /s/hidden >> /sublisting 2>/dev/null; true'
";

#[test]
fn a_bind_mount_of_the_context_sees_only_the_filtered_context() {
    // The mount is made by the engine, the same for every runtime: check all.
    for runtime in ["builtin", "runc", "crun"] {
        bind_mount_sees_only_the_filtered_context(runtime);
    }
}

fn bind_mount_sees_only_the_filtered_context(runtime: &str) {
    let ctx = ignoring_context();
    std::fs::write(ctx.path().join("Dockerfile"), BIND_DOCKERFILE).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let r = build_in(
        ctx.path(),
        cache.path(),
        &out.path().join("rootfs"),
        &["--runtime", runtime],
    );
    assert!(r.ok, "{runtime}: {}", r.stderr);
    let root = out.path().join("rootfs");
    let listing = read(&root, "listing");
    for absent in ["secret.txt", "hidden", "drop.md", "old", "secrets/key"] {
        assert!(!listing.contains(absent), "{absent} is visible:\n{listing}");
    }
    for present in ["./keep.txt", "./sub/shown", "./docs/keep.md", "./keys"] {
        assert!(
            listing.lines().any(|l| l == present),
            "{present} is missing:\n{listing}"
        );
    }
    assert_eq!(read(&root, "copied"), "absent\n");
    assert_eq!(read(&root, "kept"), "keep-v1\n");
    let sub = read(&root, "sublisting");
    assert!(sub.contains("shown") && !sub.contains("hidden"), "{sub}");
    for leaked in [
        "secret-v1",
        "hidden-v1",
        "dropped-doc",
        "dropped-old",
        "secret-key",
    ] {
        assert!(!grep_tree(&root, leaked), "{leaked} reached the image");
    }
}

#[test]
fn a_bind_mount_of_the_context_is_keyed_by_what_it_sees() {
    let ctx = ignoring_context();
    let p = ctx.path();
    std::fs::write(p.join("Dockerfile"), BIND_DOCKERFILE).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let root = out.path().join("rootfs");
    let first = build_in(p, cache.path(), &root, &[]);
    assert!(first.ok, "{}", first.stderr);
    let cached = |r: &Run| r.stderr.lines().filter(|l| l.ends_with(" CACHED")).count();

    // An excluded file changes: nothing the mounts see changed.
    std::fs::write(p.join("secret.txt"), "secret-v2\n").unwrap();
    std::fs::write(p.join("sub/hidden"), "hidden-v2\n").unwrap();
    let again = build_in(p, cache.path(), &root, &[]);
    assert!(again.ok, "{}", again.stderr);
    // The base and both RUN steps.
    assert_eq!(cached(&again), 3, "{}", again.stderr);
    assert_eq!(read(&root, "copied"), "absent\n");
    assert!(!grep_tree(&root, "secret-v"), "an excluded file leaked");

    // An included file the first mount sees changes: that step runs again.
    std::fs::write(p.join("keep.txt"), "keep-v2\n").unwrap();
    let changed = build_in(p, cache.path(), &root, &[]);
    assert!(changed.ok, "{}", changed.stderr);
    // Only the base: the second RUN step is built on the first.
    assert_eq!(cached(&changed), 1, "{}", changed.stderr);
    assert_eq!(read(&root, "kept"), "keep-v2\n");
}

#[test]
fn a_symlink_does_not_reach_into_an_excluded_directory() {
    let ctx = ignoring_context();
    // `keys` -> `secrets`, which .dockerignore excludes.
    for df in [
        "FROM busybox\nCOPY keys/ /k/\n",
        "FROM busybox\nCOPY keys/key /k\n",
        "FROM busybox\nRUN --mount=type=bind,source=keys,target=/k cat /k/key > /k2\n",
    ] {
        let (r, out) = build(ctx.path(), df);
        assert!(!r.ok, "{df}: an excluded directory was read through a link");
        assert!(r.stderr.contains("not found"), "{df}\n{}", r.stderr);
        assert!(!grep_tree(&out.path().join("rootfs"), "secret-key"), "{df}");
    }
}

// ---------------------------------------------------------------------------
// Hole 7: FIFOs, sockets and devices of the context are never opened.

fn mkfifo(p: &Path) {
    run_ok(Command::new("mkfifo").arg(p));
}

#[test]
fn a_fifo_in_the_context_is_copied_as_a_fifo_without_being_opened() {
    use std::os::unix::fs::FileTypeExt;
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("file"), "data\n").unwrap();
    mkfifo(&ctx.path().join("fifo"));
    std::fs::create_dir(ctx.path().join("dir")).unwrap();
    mkfifo(&ctx.path().join("dir/pipe"));
    let (r, out) = build(
        ctx.path(),
        "FROM busybox\nCOPY . /ctx/\nCOPY fifo /f\nADD fifo /a\nCOPY dir /d/\n\
         RUN --mount=type=bind,target=/m test -p /m/fifo && test -p /m/dir/pipe && touch /bound\n",
    );
    assert!(r.ok, "{}", r.stderr);
    let root = out.path().join("rootfs");
    for p in ["ctx/fifo", "ctx/dir/pipe", "f", "a", "d/pipe"] {
        let m = std::fs::symlink_metadata(root.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
        assert!(m.file_type().is_fifo(), "{p} is not a fifo: {m:?}");
    }
    assert_eq!(read(&root, "ctx/file"), "data\n");
    assert!(root.join("bound").exists());
}

#[test]
fn a_socket_in_the_context_is_skipped_with_a_warning() {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("file"), "data\n").unwrap();
    std::fs::create_dir(ctx.path().join("run")).unwrap();
    let _l1 = std::os::unix::net::UnixListener::bind(ctx.path().join("sock")).unwrap();
    let _l2 = std::os::unix::net::UnixListener::bind(ctx.path().join("run/agent.sock")).unwrap();
    let (r, out) = build(
        ctx.path(),
        "FROM busybox\nCOPY . /ctx/\nCOPY run/ /run2/\n\
         RUN --mount=type=bind,target=/m sh -c 'test -e /m/sock && echo seen > /bound || echo unseen > /bound'\n",
    );
    assert!(r.ok, "{}", r.stderr);
    let root = out.path().join("rootfs");
    assert_eq!(read(&root, "ctx/file"), "data\n");
    assert!(std::fs::symlink_metadata(root.join("ctx/sock")).is_err());
    assert!(std::fs::symlink_metadata(root.join("ctx/run/agent.sock")).is_err());
    assert!(root.join("run2").is_dir());
    assert!(std::fs::symlink_metadata(root.join("run2/agent.sock")).is_err());
    assert_eq!(read(&root, "bound"), "unseen\n");
    assert!(
        r.stderr.contains("sock") && r.stderr.contains("socket"),
        "no warning names the socket:\n{}",
        r.stderr
    );
    assert!(r.stderr.contains("run/agent.sock"), "{}", r.stderr);
}

// ---------------------------------------------------------------------------
// Hole 9: the definition files are read inside their context.

fn plain_build(args: &[&str], ctx: &Path) -> Run {
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    run(engine()
        .args(["build", "--progress", "plain", "--cache-dir"])
        .arg(cache.path())
        .args(["--build-context", &busybox_context_flag()])
        .args(args)
        .arg("-o")
        .arg(format!(
            "type=local,dest={}",
            out.path().join("rootfs").display()
        ))
        .arg(ctx))
}

#[test]
fn a_dockerfile_linking_outside_the_context_is_refused_unread() {
    let canary = Canary::new();
    let ctx = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(canary.file(), ctx.path().join("Dockerfile")).unwrap();
    let r = plain_build(&[], ctx.path());
    assert!(!r.ok);
    canary.assert_not_echoed(&r);
    assert!(r.stderr.contains("Dockerfile"), "{}", r.stderr);
    assert!(r.stderr.contains("outside"), "{}", r.stderr);
    // A relative link climbing out, and -f naming such a link.
    let ctx = tempfile::tempdir().unwrap();
    let rel = format!("../../../../../../..{}", canary.file().display());
    std::os::unix::fs::symlink(&rel, ctx.path().join("build.df")).unwrap();
    let df = ctx.path().join("build.df");
    let r = plain_build(&["-f", df.to_str().unwrap()], ctx.path());
    assert!(!r.ok);
    canary.assert_not_echoed(&r);
    assert!(r.stderr.contains("build.df"), "{}", r.stderr);
    // `engine graph` plans the same way.
    let r = run(engine()
        .args(["graph", "-f", df.to_str().unwrap()])
        .arg(ctx.path()));
    assert!(!r.ok);
    canary.assert_not_echoed(&r);
}

#[test]
fn a_dockerfile_linking_inside_the_context_still_builds() {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::create_dir(ctx.path().join("docker")).unwrap();
    std::fs::write(
        ctx.path().join("docker/real.Dockerfile"),
        "FROM busybox\nRUN echo linked > /linked\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("docker/real.Dockerfile", ctx.path().join("Dockerfile")).unwrap();
    std::fs::write(ctx.path().join("docker/ignore"), "secret.txt\n").unwrap();
    std::os::unix::fs::symlink("docker/ignore", ctx.path().join(".dockerignore")).unwrap();
    std::fs::write(ctx.path().join("secret.txt"), "in-context-secret\n").unwrap();
    std::fs::write(
        ctx.path().join("docker/real.Dockerfile"),
        "FROM busybox\nRUN echo linked > /linked\nCOPY . /ctx/\n",
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let root = out.path().join("rootfs");
    let r = build_in(ctx.path(), cache.path(), &root, &[]);
    assert!(r.ok, "{}", r.stderr);
    assert_eq!(read(&root, "linked"), "linked\n");
    assert!(
        !root.join("ctx/secret.txt").exists(),
        "the linked .dockerignore applies"
    );
    // -f naming a link into a subdirectory of the context.
    std::fs::write(ctx.path().join("docker/Dockerfile.app"), "FROM busybox\n").unwrap();
    std::os::unix::fs::symlink("../docker/Dockerfile.app", ctx.path().join("docker/app.df"))
        .unwrap();
    let df = ctx.path().join("docker/app.df");
    let r = plain_build(&["-f", df.to_str().unwrap()], ctx.path());
    assert!(r.ok, "{}", r.stderr);
}

#[test]
fn a_dockerignore_linking_outside_the_context_is_refused_unread() {
    let canary = Canary::new();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nCOPY . /ctx/\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(canary.file(), ctx.path().join(".dockerignore")).unwrap();
    let r = plain_build(&[], ctx.path());
    assert!(!r.ok, "{}", r.stderr);
    canary.assert_not_echoed(&r);
    assert!(r.stderr.contains(".dockerignore"), "{}", r.stderr);
    // The per-Dockerfile ignore file too.
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("app.df"), "FROM busybox\nCOPY . /ctx/\n").unwrap();
    std::os::unix::fs::symlink(canary.file(), ctx.path().join("app.df.dockerignore")).unwrap();
    let df = ctx.path().join("app.df");
    let r = plain_build(&["-f", df.to_str().unwrap()], ctx.path());
    assert!(!r.ok, "{}", r.stderr);
    canary.assert_not_echoed(&r);
    assert!(r.stderr.contains("app.df.dockerignore"), "{}", r.stderr);
}

#[test]
fn a_toml_spec_linking_outside_the_context_is_refused_unread() {
    let canary = Canary::new();
    let ctx = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(canary.file(), ctx.path().join("engine.toml")).unwrap();
    let r = plain_build(&["--frontend", "toml"], ctx.path());
    assert!(!r.ok);
    canary.assert_not_echoed(&r);
    assert!(r.stderr.contains("engine.toml"), "{}", r.stderr);
    // Found without --frontend (no Dockerfile beside it).
    let r = plain_build(&[], ctx.path());
    assert!(!r.ok);
    canary.assert_not_echoed(&r);
    // A Dockerfile or ignore file the spec names, linked outside.
    let ctx = tempfile::tempdir().unwrap();
    std::fs::create_dir(ctx.path().join("app")).unwrap();
    std::fs::write(
        ctx.path().join("engine.toml"),
        "[image.app]\ncontext = \"app\"\ndockerfile = \"app/Dockerfile\"\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(canary.file(), ctx.path().join("app/Dockerfile")).unwrap();
    let r = plain_build(&[], ctx.path());
    assert!(!r.ok);
    canary.assert_not_echoed(&r);
    assert!(r.stderr.contains("app/Dockerfile"), "{}", r.stderr);
}
