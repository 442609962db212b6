//! RUN steps for another platform, under QEMU user emulation through
//! binfmt_misc (`scripts/setup-host` installs qemu-user-static, registers
//! its aarch64 and arm handlers with the F flag and unpacks Debian's arm64
//! busybox-static), and the clear error when no handler can run a step.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{engine, require_tool, run_ok};

const ARM64_BUSYBOX: &str = "/var/lib/engine-test/busybox-arm64/bin/busybox";

/// An OCI layout holding `busybox:latest` for linux/amd64 and linux/arm64
/// (an image index), built by the engine from Debian's busybox-static of
/// each architecture, once per process.
fn busybox_layout() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        require_tool(ARM64_BUSYBOX);
        require_tool("/bin/busybox");
        let base = std::env::temp_dir().join(format!(
            "engine-test-busybox-multi-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&base);
        for (arch, binary) in [("amd64", "/bin/busybox"), ("arm64", ARM64_BUSYBOX)] {
            let rootfs = base.join(format!("ctx/rootfs-{arch}"));
            for d in ["bin", "etc", "tmp"] {
                std::fs::create_dir_all(rootfs.join(d)).unwrap();
            }
            std::fs::copy(binary, rootfs.join("bin/busybox")).unwrap();
            for applet in ["sh", "uname", "cat", "echo", "mkdir", "ls"] {
                std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
            }
            std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        }
        std::fs::write(
            base.join("ctx/Dockerfile"),
            "FROM scratch\nARG TARGETARCH\nCOPY rootfs-$TARGETARCH/ /\nENV PATH=/bin\nCMD [\"sh\"]\n",
        )
        .unwrap();
        run_ok(
            engine()
                .args(["build", "--progress", "quiet"])
                .args(["--platform", "linux/amd64,linux/arm64"])
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

fn busybox_flag() -> String {
    format!("busybox=oci-layout://{}", busybox_layout().display())
}

fn context(dockerfile: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("Dockerfile"), dockerfile).unwrap();
    d
}

#[test]
fn an_arm64_run_step_runs_under_qemu() {
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
            .arg(busybox_flag())
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

/// The nested index of an OCI layout written by the engine: the manifests
/// of the image index its `index.json` points at.
fn platforms_in_layout(layout: &Path) -> Vec<String> {
    let read = |p: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let top = read(&layout.join("index.json"));
    let root = &top["manifests"][0];
    assert_eq!(
        root["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{top}"
    );
    let index = read(&blob(root["digest"].as_str().unwrap()));
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m["mediaType"], "application/vnd.oci.image.manifest.v1+json");
            assert!(blob(m["digest"].as_str().unwrap()).is_file());
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap(),
                m["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect()
}

fn app_build(ctx: &Path, cache: &Path, outputs: &[String]) -> std::process::Output {
    let mut c = engine();
    c.args(["build", "--progress", "plain"])
        .args(["--platform", "linux/amd64,linux/arm64"])
        .arg("--cache-dir")
        .arg(cache)
        .arg("--build-context")
        .arg(busybox_flag());
    for o in outputs {
        c.arg("-o").arg(o);
    }
    c.arg(ctx).output().unwrap()
}

#[test]
fn two_platforms_make_an_index_each_image_built_for_its_platform() {
    let ctx = context(
        "FROM busybox\nARG TARGETPLATFORM\nARG BUILDPLATFORM\nRUN echo \"$TARGETPLATFORM $BUILDPLATFORM $(uname -m)\" > /arch\n",
    );
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let layout = out.path().join("layout");
    let root = out.path().join("root");
    let outputs = [
        format!("type=oci,dest={},tar=false", layout.display()),
        format!("type=local,dest={}", root.display()),
    ];
    let first = app_build(ctx.path(), cache.path(), &outputs);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{stderr}");
    assert_eq!(platforms_in_layout(&layout), ["linux/amd64", "linux/arm64"]);
    let host = format!("linux/{}", engine_ir_host_arch());
    assert_eq!(
        std::fs::read_to_string(root.join("linux_amd64/arch")).unwrap(),
        format!("linux/amd64 {host} x86_64\n")
    );
    assert_eq!(
        std::fs::read_to_string(root.join("linux_arm64/arch")).unwrap(),
        format!("linux/arm64 {host} aarch64\n")
    );
    // Step names say their platform, as BuildKit's do.
    assert!(stderr.contains("[linux/arm64 2/2] RUN"), "{stderr}");
    assert!(stderr.contains("(index of 2 images)"), "{stderr}");
    // Each platform has its own cache key; a second build runs nothing.
    let second = app_build(ctx.path(), cache.path(), &outputs);
    let stderr2 = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{stderr2}");
    assert!(stderr2.contains("4 cached, 0 executed"), "{stderr2}");
}

fn engine_ir_host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[test]
fn a_docker_archive_takes_one_platform_and_says_so_before_building() {
    let ctx = context("FROM busybox\nRUN echo never > /ran\n");
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let r = app_build(
        ctx.path(),
        cache.path(),
        &[format!(
            "type=docker,dest={}",
            out.path().join("a.tar").display()
        )],
    );
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success(), "{stderr}");
    assert!(stderr.contains("takes one platform"), "{stderr}");
    assert!(stderr.contains("linux/amd64, linux/arm64"), "{stderr}");
    assert!(
        !stderr.contains("RUN echo never"),
        "nothing was built: {stderr}"
    );
    assert!(!out.path().join("a.tar").exists());
}

#[test]
fn a_pushed_two_platform_image_runs_as_arm64_in_docker() {
    require_tool("/usr/bin/skopeo");
    let ctx = context("FROM busybox\nRUN uname -m > /arch\nCMD [\"cat\", \"/arch\"]\n");
    let cache = tempfile::tempdir().unwrap();
    let name = format!(
        "127.0.0.1:5000/engine-test/multiplatform:{}",
        std::process::id()
    );
    let r = app_build(
        ctx.path(),
        cache.path(),
        &[format!("type=registry,name={name}")],
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let raw = run_ok(
        std::process::Command::new("/usr/bin/skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{name}")),
    );
    let index: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let archs: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, ["amd64", "arm64"]);
    run_ok(std::process::Command::new("/usr/bin/docker").args([
        "pull",
        "-q",
        "--platform",
        "linux/arm64",
        &name,
    ]));
    let ran = run_ok(std::process::Command::new("/usr/bin/docker").args([
        "run",
        "--rm",
        "--platform",
        "linux/arm64",
        &name,
    ]));
    assert_eq!(String::from_utf8_lossy(&ran.stdout), "aarch64\n");
    let _ = std::process::Command::new("/usr/bin/docker")
        .args(["rmi", "-f", &name])
        .output();
}

#[test]
fn a_toml_target_with_two_platforms_is_one_index() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("engine.toml"),
        r#"
[image.app]
from = "busybox"
platforms = ["linux/amd64", "linux/arm64"]
outputs = [{ type = "oci", dest = "out/app", tar = "false" }]

[[image.app.steps]]
run = "uname -m > /arch"
"#,
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    run_ok(
        engine()
            .args(["build", "--progress", "plain", "--frontend", "toml"])
            .arg("--cache-dir")
            .arg(cache.path())
            .arg("--build-context")
            .arg(busybox_flag())
            .arg(dir.path()),
    );
    // Both platforms in one index (each used to overwrite the other).
    assert_eq!(
        platforms_in_layout(&dir.path().join("out/app")),
        ["linux/amd64", "linux/arm64"]
    );
}

#[test]
fn a_build_platform_stage_is_one_step_for_every_target_platform() {
    let ctx = context(
        "FROM --platform=$BUILDPLATFORM busybox AS build\nRUN echo compiled > /bin.out\n\
         FROM busybox\nARG TARGETARCH\nCOPY --from=build /bin.out /app-$TARGETARCH\n",
    );
    let cache = tempfile::tempdir().unwrap();
    let out = engine()
        .args([
            "build",
            "--progress",
            "json",
            "--platform",
            "linux/amd64,linux/arm64",
        ])
        .arg("--cache-dir")
        .arg(cache.path())
        .arg("--build-context")
        .arg(busybox_flag())
        .arg(ctx.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let finished = |needle: &str| {
        stderr
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| {
                e["status"] == "done" && e["name"].as_str().is_some_and(|n| n.contains(needle))
            })
            .count()
    };
    assert_eq!(
        finished("RUN echo compiled"),
        1,
        "the build stage ran once: {stderr}"
    );
    assert_eq!(
        finished("COPY --from=build"),
        2,
        "one COPY per platform: {stderr}"
    );
}
