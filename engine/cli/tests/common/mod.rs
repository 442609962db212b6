//! Shared by the binary's integration tests: running `engine`, and a busybox
//! base image that the engine builds itself from Debian's busybox-static.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub fn engine() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_engine"));
    c.env("NO_COLOR", "1");
    c
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({:?}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn require_tool(path: &str) {
    assert!(
        Path::new(path).exists(),
        "`{path}` is missing: run scripts/setup-host (CI's .ci/run does) to install the test dependencies"
    );
}

/// An OCI layout holding `busybox:latest`, built once per test process.
pub fn busybox_layout() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        require_tool("/bin/busybox");
        let base = std::env::temp_dir().join(format!("engine-test-busybox-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let rootfs = base.join("ctx/rootfs");
        for d in ["bin", "etc", "tmp", "root", "home/app"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" && !applet.is_empty() {
                std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
            }
        }
        std::fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\napp:x:1000:\n").unwrap();
        std::fs::write(
            base.join("ctx/Dockerfile"),
            "FROM scratch\nCOPY rootfs/ /\nCMD [\"sh\"]\n",
        )
        .unwrap();
        run_ok(
            engine()
                .args(["build", "--progress", "quiet", "--cache-dir"])
                .arg(base.join("cache"))
                .arg("-o")
                .arg(format!(
                    "type=oci,dest={},tar=false",
                    base.join("layout").display()
                ))
                .args(["-t", "busybox:latest"])
                .arg(base.join("ctx")),
        );
        base.join("layout")
    })
}

pub fn busybox_context_flag() -> String {
    format!("busybox=oci-layout://{}", busybox_layout().display())
}

/// The `image digest:` line of a build's stderr.
pub fn image_digest(stderr: &[u8]) -> String {
    let s = String::from_utf8_lossy(stderr);
    s.lines()
        .find_map(|l| l.strip_prefix("image digest: "))
        .unwrap_or_else(|| panic!("no image digest in:\n{s}"))
        .to_string()
}

/// Whether any regular file below `root` (symlinks not followed) contains
/// `needle`: did a canary reach an image?
pub fn grep_tree(root: &Path, needle: &str) -> bool {
    let Ok(entries) = std::fs::read_dir(root) else {
        return false;
    };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if m.is_dir() && grep_tree(&p, needle) {
            return true;
        }
        if m.is_file() && std::fs::read_to_string(&p).is_ok_and(|s| s.contains(needle)) {
            return true;
        }
    }
    false
}

/// The local registry `scripts/setup-host` starts.
pub const REGISTRY: &str = "127.0.0.1:5000";

/// Fail with what to run when the local registry is not up.
pub fn require_registry() {
    let up = std::net::TcpStream::connect_timeout(
        &REGISTRY.parse().unwrap(),
        std::time::Duration::from_secs(2),
    )
    .is_ok();
    assert!(
        up,
        "no registry on {REGISTRY}: run scripts/setup-host (CI's .ci/run does) to start Debian's docker-registry"
    );
}
