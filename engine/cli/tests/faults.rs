//! Faults outside the build's control: a full disk under an output. The
//! error is clear (exit 3, the cause named) and nothing is lost: the
//! previous output stays as it was, no partial file, no temporary file.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// A small tmpfs, unmounted when dropped.
struct SmallFs(tempfile::TempDir);

impl SmallFs {
    fn new(size: &str) -> SmallFs {
        let d = tempfile::tempdir().unwrap();
        run_ok(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(d.path()),
        );
        SmallFs(d)
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

fn build(ctx: &Path, cache: &Path, out: &Path) -> std::process::Output {
    engine()
        .args(["build", "--progress", "plain", "--cache-dir"])
        .arg(cache)
        .arg("--build-context")
        .arg(busybox_context_flag())
        .arg("-o")
        .arg(format!("type=oci,dest={}", out.display()))
        .arg(ctx)
        .output()
        .unwrap()
}

#[test]
fn a_full_disk_under_an_output_keeps_the_previous_one() {
    let fs = SmallFs::new("8m");
    let out = fs.path().join("image.tar");
    let cache = tempfile::tempdir().unwrap();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nRUN echo small > /f\n",
    )
    .unwrap();
    let first = build(ctx.path(), cache.path(), &out);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let good = std::fs::read(&out).unwrap();

    // 12 MB of random data does not fit: the export fails.
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nRUN head -c 12000000 /dev/urandom > /big\n",
    )
    .unwrap();
    let second = build(ctx.path(), cache.path(), &out);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("no space left on device"), "{stderr}");
    assert_eq!(
        std::fs::read(&out).unwrap(),
        good,
        "the previous output is intact"
    );
    let names: Vec<String> = std::fs::read_dir(fs.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["image.tar"], "no partial or temporary file is left");

    // The cache is fine: with room, the same build exports from it.
    let roomy = tempfile::tempdir().unwrap();
    let third = build(ctx.path(), cache.path(), &roomy.path().join("image.tar"));
    let stderr = String::from_utf8_lossy(&third.stderr);
    assert!(third.status.success(), "{stderr}");
    assert!(
        stderr.contains(" 0 executed"),
        "the RUN result was kept: {stderr}"
    );
}

#[test]
fn a_killed_exports_temporary_file_is_swept_by_the_next_export() {
    let out = tempfile::tempdir().unwrap();
    let stale = out.path().join(".engine-output-killed");
    let live = out.path().join(".engine-output-live");
    for p in [&stale, &live] {
        std::fs::write(p, b"partial").unwrap();
    }
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nRUN echo x > /x\n",
    )
    .unwrap();
    let r = build(ctx.path(), cache.path(), &out.path().join("image.tar"));
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(!stale.exists(), "an hour-old temporary output is swept");
    assert!(live.exists(), "a recent one may belong to a running export");
    assert!(out.path().join("image.tar").is_file());
}
