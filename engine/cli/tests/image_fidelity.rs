//! What the images the engine writes carry, where BuildKit is the
//! reference and the differential corpus cannot check it (BuildKit 0.8 in
//! docker 20.10 fails or differs): the owner of a WORKDIR made under an
//! unknown USER with no /etc/passwd at all. Needs root.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

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
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Dockerfile:3:1"), "{stderr}");
    assert!(stderr.contains("USER app:1000 is a name"), "{stderr}");
    // numeric ids (and root) need no lookup
    let dirs = built_dirs("FROM scratch\nUSER 1000:root\nWORKDIR /srv\n", &[]);
    assert_eq!(dirs.get("srv"), Some(&(1000, 0)), "{dirs:?}");
}
