//! RUN steps for another platform, under QEMU user emulation through
//! binfmt_misc (`scripts/setup-host` installs qemu-user-static, registers
//! its aarch64 and arm handlers with the F flag and unpacks Debian's arm64
//! busybox-static), and the clear error when no handler can run a step.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{engine, require_tool, run_ok};

const ARM64_BUSYBOX: &str = "/var/lib/engine-test/busybox-arm64/bin/busybox";

/// An OCI layout holding an arm64 `busybox:latest`, built once per process.
fn arm64_busybox_layout() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        require_tool(ARM64_BUSYBOX);
        let base =
            std::env::temp_dir().join(format!("engine-test-busybox-arm64-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let rootfs = base.join("ctx/rootfs");
        for d in ["bin", "etc", "tmp"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::copy(ARM64_BUSYBOX, rootfs.join("bin/busybox")).unwrap();
        for applet in ["sh", "uname", "cat", "echo", "mkdir", "ls"] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
        std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        std::fs::write(
            base.join("ctx/Dockerfile"),
            "FROM scratch\nCOPY rootfs/ /\nENV PATH=/bin\nCMD [\"sh\"]\n",
        )
        .unwrap();
        run_ok(
            engine()
                .args(["build", "--progress", "quiet", "--platform", "linux/arm64"])
                .arg("--cache-dir")
                .arg(base.join("cache"))
                .arg("-o")
                .arg(format!(
                    "type=oci,dest={},tar=false",
                    base.join("layout").display()
                ))
                .arg(base.join("ctx")),
        );
        base.join("layout")
    })
}

fn context(dockerfile: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("Dockerfile"), dockerfile).unwrap();
    d
}

#[test]
fn an_arm64_run_step_runs_under_qemu() {
    let layout = arm64_busybox_layout();
    let ctx = context("FROM busybox\nRUN uname -m > /arch\n");
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("rootfs");
    run_ok(
        engine()
            .args(["build", "--progress", "plain", "--platform", "linux/arm64"])
            .arg("--cache-dir")
            .arg(cache.path())
            .arg("--build-context")
            .arg(format!("busybox=oci-layout://{}", layout.display()))
            .arg("-o")
            .arg(format!("type=local,dest={}", dest.display()))
            .arg(ctx.path()),
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("arch")).unwrap(),
        "aarch64\n"
    );
    // The binary that ran is the arm64 one from the image.
    let elf = std::fs::read(dest.join("bin/busybox")).unwrap();
    assert_eq!(&elf[18..20], &[0xb7, 0x00], "e_machine is EM_AARCH64");
}

#[test]
fn a_platform_without_a_handler_fails_before_running_with_the_fix() {
    // s390x: setup-host registers no handler for it. The check happens
    // before the step's root is even mounted, so any base will do.
    let s390x = Path::new("/proc/sys/fs/binfmt_misc/qemu-s390x");
    let ctx = context("FROM --platform=linux/s390x scratch\nCOPY Dockerfile /\nRUN true\n");
    let cache = tempfile::tempdir().unwrap();
    let out = engine()
        .args(["build", "--progress", "plain", "--platform", "linux/s390x"])
        .arg("--cache-dir")
        .arg(cache.path())
        .arg(ctx.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if s390x.exists() {
        // Someone registered it: then the step gets past the check (and
        // fails for want of /bin/sh in this root, not for want of QEMU).
        assert!(!stderr.contains("needs emulation"), "{stderr}");
        return;
    }
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("Dockerfile:3:1"), "located: {stderr}");
    assert!(
        stderr.contains("no binfmt_misc handler for s390x"),
        "{stderr}"
    );
    assert!(
        stderr.contains("apt-get install qemu-user-static"),
        "{stderr}"
    );
    assert!(
        stderr.contains("/usr/lib/binfmt.d/qemu-s390x.conf"),
        "{stderr}"
    );
    assert!(!stderr.contains("Exec format error"), "{stderr}");
}
