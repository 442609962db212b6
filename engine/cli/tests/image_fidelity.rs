//! What the images the engine writes carry, where BuildKit is the
//! reference and the differential corpus cannot check it (it compares no
//! times, and BuildKit 0.8 in docker 20.10 fails or differs): the owner of
//! a WORKDIR made under an unknown USER with no /etc/passwd at all, and the
//! `created` times of images. Needs root, and dockerd for `docker load`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use common::*;

/// Builds `dockerfile` (and `files`) from scratch into a rootfs tar; returns
/// the (uid, gid) of every directory in it.
fn built_dirs(dockerfile: &str, files: &[(&str, &str)]) -> BTreeMap<String, (u64, u64)> {
    let ctx = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    for (name, text) in files {
        std::fs::write(ctx.path().join(name), text).unwrap();
    }
    let tar = ctx.path().join("rootfs.tar");
    run_ok(
        engine()
            .args(["build", "--progress", "plain", "--cache-dir"])
            .arg(cache.path())
            .arg("-o")
            .arg(format!("type=tar,dest={}", tar.display()))
            .arg(ctx.path()),
    );
    dirs_of(&tar)
}

fn dirs_of(tar: &Path) -> BTreeMap<String, (u64, u64)> {
    let mut ar = tar::Archive::new(std::fs::File::open(tar).unwrap());
    ar.entries()
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.header().entry_type().is_dir())
        .map(|e| {
            let h = e.header();
            let name = e
                .path()
                .unwrap()
                .to_string_lossy()
                .trim_end_matches('/')
                .to_string();
            (name, (h.uid().unwrap(), h.gid().unwrap()))
        })
        .collect()
}

#[test]
fn workdir_under_a_user_no_passwd_lists_is_roots() {
    // No /etc/passwd or /etc/group at all: BuildKit since 0.9 (moby/buildkit
    // 449d010) takes that as "user not found", which makes the directory
    // root's; BuildKit 0.8 (docker 20.10) fails to open /etc/passwd instead.
    let dirs = built_dirs(
        "FROM scratch\nCOPY f /f\nUSER ghost:ghostgroup\nWORKDIR /w/a\nUSER 1234:ghostgroup\nWORKDIR /n\n",
        &[("f", "x\n")],
    );
    assert_eq!(dirs.get("w"), Some(&(0, 0)), "{dirs:?}");
    assert_eq!(dirs.get("w/a"), Some(&(0, 0)), "{dirs:?}");
    // a numeric user keeps its id as gid when the group name is unknown
    assert_eq!(dirs.get("n"), Some(&(1234, 1234)), "{dirs:?}");
}

#[test]
fn workdir_under_a_user_name_on_an_empty_scratch_stage_is_refused() {
    // BuildKit: "invalid user index: -1" (nothing to read a passwd from);
    // the engine says so when planning, with the line.
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nUSER app:1000\nWORKDIR /srv\n",
    )
    .unwrap();
    let out = engine().arg("graph").arg(ctx.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("Dockerfile:3:1"), "{stderr}");
    assert!(stderr.contains("USER app:1000 is a name"), "{stderr}");
    // numeric ids (and root) need no lookup
    let dirs = built_dirs("FROM scratch\nUSER 1000:root\nWORKDIR /srv\n", &[]);
    assert_eq!(dirs.get("srv"), Some(&(1000, 0)), "{dirs:?}");
}

const CREATED_DOCKERFILE: &str = "FROM busybox\nCOPY f /f\nRUN echo ran > /ran\nENV X=1\n";

/// One build of [`CREATED_DOCKERFILE`] into an OCI layout (and a docker
/// archive when `archive` is given); returns the image digest line.
fn build_created(
    ctx: &Path,
    cache: &Path,
    layout: &Path,
    archive: Option<(&Path, &str)>,
    extra: &[&str],
    epoch: Option<&str>,
) -> String {
    let mut c = engine();
    c.args(["build", "--progress", "plain", "--cache-dir"])
        .arg(cache)
        .args(["--build-context", &busybox_context_flag()])
        .arg("-o")
        .arg(format!("type=oci,dest={},tar=false", layout.display()));
    if let Some((tar, name)) = archive {
        c.arg("-o")
            .arg(format!("type=docker,dest={},name={name}", tar.display()));
    }
    match epoch {
        Some(e) => c.env("SOURCE_DATE_EPOCH", e),
        None => c.env_remove("SOURCE_DATE_EPOCH"),
    };
    image_digest(&run_ok(c.args(extra).arg(ctx)).stderr)
}

fn created_context() -> tempfile::TempDir {
    context_with(CREATED_DOCKERFILE)
}

fn context_with(dockerfile: &str) -> tempfile::TempDir {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    std::fs::write(ctx.path().join("f"), "f\n").unwrap();
    ctx
}

/// The config blob of the one image of an OCI layout.
fn config_of(layout: &Path) -> Value {
    let blob = |d: &str| -> Value {
        let hex = d.strip_prefix("sha256:").unwrap();
        serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap())
            .unwrap()
    };
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest = blob(index["manifests"][0]["digest"].as_str().unwrap());
    blob(manifest["config"]["digest"].as_str().unwrap())
}

/// Unix seconds of an RFC 3339 UTC time as the engine writes it
/// (`YYYY-MM-DDTHH:MM:SSZ`).
fn unix(t: &str) -> i64 {
    let n = |r: std::ops::Range<usize>| t[r].parse::<i64>().unwrap();
    assert_eq!((t.len(), &t[19..]), (20, "Z"), "{t}");
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // days from civil (Howard Hinnant)
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn docker(args: &[&str]) -> String {
    let out = run_ok(Command::new("/usr/bin/docker").args(args));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn created_is_when_the_last_step_first_ran_and_a_no_op_rebuild_keeps_it() {
    require_tool("/usr/bin/docker");
    let ctx = created_context();
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let name = format!("engine-created-test:{}", std::process::id());
    let tar = out.path().join("img.tar");
    let before = now();
    let first = build_created(
        ctx.path(),
        cache.path(),
        &out.path().join("a"),
        Some((&tar, &name)),
        &[],
        None,
    );
    let after = now();
    let config = config_of(&out.path().join("a"));
    let created = config["created"]
        .as_str()
        .expect("the config has `created`");
    assert!(
        (before..=after).contains(&unix(created)),
        "{created} is not the time of this build ({before}..={after})"
    );
    // Every history entry is dated; the build's own entries (COPY, RUN and
    // the ENV after them) with the time of their layers, the last one the
    // image's.
    let history = config["history"].as_array().unwrap();
    assert!(
        history.iter().all(|h| h["created"].is_string()),
        "{history:?}"
    );
    let last = history.last().unwrap();
    assert_eq!(last["created_by"], "ENV X=1");
    assert_eq!(last["created"], created);

    // Later, nothing changed: the very same image.
    std::thread::sleep(Duration::from_millis(1100));
    let again = build_created(
        ctx.path(),
        cache.path(),
        &out.path().join("b"),
        None,
        &[],
        None,
    );
    assert_eq!(again, first, "a no-op rebuild changed the digest");

    // Running the steps again (--no-cache) is a new image, made now.
    let fresh = build_created(
        ctx.path(),
        cache.path(),
        &out.path().join("c"),
        None,
        &["--no-cache"],
        None,
    );
    assert_ne!(fresh, first);
    let recreated = config_of(&out.path().join("c"))["created"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(unix(&recreated) > unix(created), "{recreated} vs {created}");

    // docker reads it (docker images shows its age, not N/A).
    run_ok(
        Command::new("/usr/bin/docker")
            .arg("load")
            .arg("-i")
            .arg(&tar),
    );
    let inspected = docker(&["image", "inspect", "--format", "{{.Created}}", &name]);
    let _ = Command::new("/usr/bin/docker")
        .args(["rmi", &name])
        .output();
    assert_eq!(inspected, created);
}

#[test]
fn source_date_epoch_sets_created_exactly() {
    require_tool("/usr/bin/docker");
    let ctx = created_context();
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let name = format!("engine-created-epoch:{}", std::process::id());
    let tar = out.path().join("img.tar");
    build_created(
        ctx.path(),
        cache.path(),
        &out.path().join("a"),
        Some((&tar, &name)),
        &[],
        Some("1234567890"),
    );
    let config = config_of(&out.path().join("a"));
    assert_eq!(config["created"], "2009-02-13T23:31:30Z");
    // the entries of this build (the last three) are dated at the epoch
    let history = config["history"].as_array().unwrap();
    for h in &history[history.len() - 3..] {
        assert_eq!(h["created"], "2009-02-13T23:31:30Z", "{h}");
    }
    run_ok(
        Command::new("/usr/bin/docker")
            .arg("load")
            .arg("-i")
            .arg(&tar),
    );
    let inspected = docker(&["image", "inspect", "--format", "{{.Created}}", &name]);
    let _ = Command::new("/usr/bin/docker")
        .args(["rmi", &name])
        .output();
    assert_eq!(inspected, "2009-02-13T23:31:30Z");
}

#[test]
fn an_imported_cache_gives_the_same_created_and_digest() {
    // The machine that restores a step from a shared cache dates it as the
    // machine that ran it did: the same image, byte for byte. (The step
    // outlasts a second, so that the export comes later than its start.)
    let ctx = context_with("FROM busybox\nCOPY f /f\nRUN sleep 1.2 && echo ran > /ran\n");
    let out = tempfile::tempdir().unwrap();
    let shared = out.path().join("shared");
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = build_created(
        ctx.path(),
        one.path(),
        &out.path().join("a"),
        None,
        &[
            "--cache-to",
            &format!("type=local,dest={}", shared.display()),
        ],
        None,
    );
    std::thread::sleep(Duration::from_millis(1100));
    let second = build_created(
        ctx.path(),
        two.path(),
        &out.path().join("b"),
        None,
        &[
            "--cache-from",
            &format!("type=local,src={}", shared.display()),
        ],
        None,
    );
    assert_eq!(
        config_of(&out.path().join("b"))["created"],
        config_of(&out.path().join("a"))["created"]
    );
    assert_eq!(second, first);
}
