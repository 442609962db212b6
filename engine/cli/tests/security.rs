//! Nothing in a build context or an image reaches outside its root: symlinks
//! and `..` in the context, hostile symlinks in images, magic /proc paths.
//! Each test puts a canary on the host and checks it is neither read nor
//! touched.

mod common;

use std::path::Path;

use common::*;

struct Canary {
    dir: tempfile::TempDir,
}

impl Canary {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), "host-secret-canary\n").unwrap();
        Canary { dir }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn assert_untouched(&self) {
        assert_eq!(
            std::fs::read_to_string(self.path().join("secret")).unwrap(),
            "host-secret-canary\n"
        );
        let names: Vec<_> = std::fs::read_dir(self.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names.len(),
            1,
            "nothing was written beside the canary: {names:?}"
        );
    }
}

/// Build and return (success, stderr, rootfs dir).
fn build(ctx: &Path, dockerfile: &str) -> (bool, String, tempfile::TempDir) {
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let o = engine()
        .args(["build", "--progress", "plain", "--cache-dir"])
        .arg(cache.path())
        .args(["--build-context", &busybox_context_flag()])
        .arg("-o")
        .arg(format!(
            "type=local,dest={}",
            out.path().join("rootfs").display()
        ))
        .arg(ctx)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!err.contains("panicked"), "{err}");
    (o.status.success(), err, out)
}

#[test]
fn context_symlinks_to_the_host_are_not_followed_out() {
    let canary = Canary::new();
    let ctx = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(canary.path().join("secret"), ctx.path().join("abs-link")).unwrap();
    std::os::unix::fs::symlink(
        "../../../../../../..".to_string() + &canary.path().display().to_string(),
        ctx.path().join("rel-link"),
    )
    .unwrap();
    std::os::unix::fs::symlink(canary.path(), ctx.path().join("dir-link")).unwrap();
    for src in [
        "abs-link",
        "rel-link",
        "dir-link/secret",
        "../../../..".to_string().as_str(),
    ] {
        let (ok, err, out) = build(ctx.path(), &format!("FROM busybox\nCOPY {src} /stolen\n"));
        assert!(
            !grep_tree(&out.path().join("rootfs"), "host-secret-canary"),
            "{src}: host file leaked\n{err}"
        );
        let _ = ok;
    }
    // A whole-context copy keeps the links as links.
    let (ok, err, out) = build(ctx.path(), "FROM busybox\nCOPY . /ctx/\n");
    assert!(ok, "{err}");
    let link = std::fs::read_link(out.path().join("rootfs/ctx/abs-link")).unwrap();
    assert_eq!(
        link,
        canary.path().join("secret"),
        "copied as a symlink, target not read"
    );
    assert!(!grep_tree(&out.path().join("rootfs"), "host-secret-canary"));
    canary.assert_untouched();
}

#[test]
fn parent_paths_in_copy_stay_inside_the_context() {
    let canary = Canary::new();
    let ctx = tempfile::tempdir().unwrap();
    let rel = format!("../../../../../..{}/secret", canary.path().display());
    let (ok, err, out) = build(ctx.path(), &format!("FROM busybox\nCOPY {rel} /x\n"));
    assert!(!ok, "a path outside the context is not found: {err}");
    assert!(err.contains("not found"), "{err}");
    assert!(!grep_tree(&out.path().join("rootfs"), "host-secret-canary"));
    canary.assert_untouched();
}

#[test]
fn image_symlinks_do_not_redirect_writes_to_the_host() {
    let canary = Canary::new();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("payload"), "payload\n").unwrap();
    let target = canary.path().display().to_string();
    let df = format!(
        "FROM busybox\nRUN ln -s {target} /app && ln -s / /root-link\nCOPY payload /app/payload\nCOPY payload /root-link{target}/p2\nWORKDIR /app/work\n"
    );
    let (ok, err, out) = build(ctx.path(), &df);
    assert!(ok, "{err}");
    // The writes landed inside the image, under the link's in-root target.
    let inside = out
        .path()
        .join("rootfs")
        .join(target.trim_start_matches('/'));
    assert!(inside.join("payload").exists(), "{err}");
    assert!(inside.join("p2").exists());
    assert!(inside.join("work").is_dir());
    canary.assert_untouched();
}

#[test]
fn proc_fd_workdir_cannot_reach_the_host() {
    // CVE-2024-21626 class: a leaked fd as working directory.
    for fd in [3, 5, 7, 9] {
        let ctx = tempfile::tempdir().unwrap();
        let df = format!("FROM busybox\nWORKDIR /proc/self/fd/{fd}\nRUN ls -la . > /listing\n");
        let (ok, err, _) = build(ctx.path(), &df);
        // The sandbox refuses a magic /proc link as working directory, and
        // the step fails with a clear error instead of running on the host.
        assert!(!ok, "fd {fd}: expected a refusal");
        assert!(
            err.contains(&format!("working directory /proc/self/fd/{fd}")),
            "{err}"
        );
    }
}
