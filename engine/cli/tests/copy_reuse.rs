//! Incremental COPY: after a one-file edit, a `COPY . /src` hard-links the
//! unchanged files of its previous result and copies only the rest. The
//! image must be the one a cold build of the edited context gives, whatever
//! the cache holds (a pruned previous result, a damaged manifest, a file
//! whose content changed behind an unchanged size and mtime).
//!
//! Needs root (RUN and overlay mounts), as the other build tests.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::{busybox_context_flag, engine, image_digest, run_ok};

const DOCKERFILE: &str = "FROM busybox\nCOPY . /src\nRUN cat /src/d1/f3.txt > /seen\n";

fn context() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let p = t.path();
    fs::write(p.join("Dockerfile"), DOCKERFILE).unwrap();
    for d in 0..4 {
        fs::create_dir_all(p.join(format!("d{d}"))).unwrap();
        for f in 0..10 {
            fs::write(
                p.join(format!("d{d}/f{f}.txt")),
                format!("file {f} of directory {d}\n"),
            )
            .unwrap();
        }
    }
    fs::set_permissions(p.join("d0/f1.txt"), fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("d0/f0.txt", p.join("link")).unwrap();
    fs::create_dir_all(p.join("empty")).unwrap();
    t
}

fn build(ctx: &Path, cache: &Path, extra: &[&str]) -> String {
    let out = run_ok(
        engine()
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args(["build", "--progress", "plain", "--cache-dir"])
            .arg(cache)
            .args(["--build-context", &busybox_context_flag()])
            .args(extra)
            .arg(ctx),
    );
    image_digest(&out.stderr)
}

/// The snapshot directories of COPY results (the ones with a manifest).
fn copy_snapshots(cache: &Path) -> Vec<PathBuf> {
    fs::read_dir(cache.join("snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("copy-manifest.json").exists())
        .collect()
}

/// The latest COPY result, as the lineage pointer names it.
fn latest_copy(cache: &Path) -> PathBuf {
    let pointers: Vec<_> = fs::read_dir(cache.join("lineage"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(pointers.len(), 1, "one COPY lineage");
    let key = fs::read_to_string(pointers[0].path()).unwrap();
    cache.join("snapshots").join(key.trim())
}

/// Inode of every regular file under `root/src`, by path.
fn inodes(snapshot: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let root = snapshot.join("fs/src");
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let m = fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() {
                let rel = e.path().strip_prefix(&root).unwrap().display().to_string();
                out.insert(rel, m.ino());
            }
        }
    }
    out
}

fn cold_digest(ctx: &Path) -> String {
    let cache = tempfile::tempdir().unwrap();
    build(ctx, cache.path(), &[])
}

#[test]
fn one_file_edit_links_the_rest_and_gives_the_cold_image() {
    let ctx = context();
    let cache = tempfile::tempdir().unwrap();
    build(ctx.path(), cache.path(), &[]);
    let first = latest_copy(cache.path());
    let before = inodes(&first);
    assert_eq!(before.len(), 41, "40 files and the Dockerfile: {before:?}");

    fs::write(ctx.path().join("d1/f3.txt"), "edited\n").unwrap();
    let incremental = build(ctx.path(), cache.path(), &[]);
    let second = latest_copy(cache.path());
    assert_ne!(first, second, "the edit makes a new COPY result");
    let after = inodes(&second);
    assert_eq!(after.len(), 41);
    let linked: Vec<_> = after
        .iter()
        .filter(|(p, ino)| before.get(*p) == Some(ino))
        .map(|(p, _)| p.clone())
        .collect();
    assert_eq!(
        linked.len(),
        40,
        "every unchanged file is linked: {linked:?}"
    );
    assert!(
        !linked.contains(&"d1/f3.txt".to_string()),
        "the edited file is written anew"
    );
    assert_eq!(
        fs::read_to_string(second.join("fs/src/d1/f3.txt")).unwrap(),
        "edited\n"
    );
    assert_eq!(
        fs::read_to_string(first.join("fs/src/d1/f3.txt")).unwrap(),
        "file 3 of directory 1\n",
        "the previous result is untouched"
    );
    assert_eq!(copy_snapshots(cache.path()).len(), 2);
    assert_eq!(incremental, cold_digest(ctx.path()));
}

#[test]
fn content_change_behind_same_size_and_mtime_is_copied() {
    let ctx = context();
    let cache = tempfile::tempdir().unwrap();
    build(ctx.path(), cache.path(), &[]);
    let first = latest_copy(cache.path());
    let victim = ctx.path().join("d2/f5.txt");
    let old = fs::read(&victim).unwrap();
    let mtime = fs::metadata(&victim).unwrap().modified().unwrap();
    let mut new = old.clone();
    new[0] = b'F';
    fs::write(&victim, &new).unwrap();
    fs::File::options()
        .write(true)
        .open(&victim)
        .unwrap()
        .set_times(fs::FileTimes::new().set_modified(mtime))
        .unwrap();
    let digest = build(ctx.path(), cache.path(), &[]);
    let second = latest_copy(cache.path());
    assert_ne!(first, second);
    assert_eq!(fs::read(second.join("fs/src/d2/f5.txt")).unwrap(), new);
    assert_ne!(
        inodes(&first)["d2/f5.txt"],
        inodes(&second)["d2/f5.txt"],
        "a changed file is never linked"
    );
    assert_eq!(digest, cold_digest(ctx.path()));
}

#[test]
fn mode_change_is_copied_with_the_new_mode() {
    let ctx = context();
    let cache = tempfile::tempdir().unwrap();
    build(ctx.path(), cache.path(), &[]);
    let first = latest_copy(cache.path());
    fs::set_permissions(
        ctx.path().join("d0/f1.txt"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let digest = build(ctx.path(), cache.path(), &[]);
    let second = latest_copy(cache.path());
    let m = fs::metadata(second.join("fs/src/d0/f1.txt")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o600);
    let m = fs::metadata(first.join("fs/src/d0/f1.txt")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o755, "the previous result is untouched");
    assert_eq!(digest, cold_digest(ctx.path()));
}

#[test]
fn damaged_manifest_or_pruned_result_only_costs_the_reuse() {
    let ctx = context();
    let cache = tempfile::tempdir().unwrap();
    build(ctx.path(), cache.path(), &[]);
    let first = latest_copy(cache.path());
    fs::write(first.join("copy-manifest.json"), b"{not json").unwrap();
    fs::write(ctx.path().join("d3/f9.txt"), "one\n").unwrap();
    let digest = build(ctx.path(), cache.path(), &[]);
    let second = latest_copy(cache.path());
    let (a, b) = (inodes(&first), inodes(&second));
    assert!(
        a.iter().all(|(p, ino)| b.get(p) != Some(ino)),
        "nothing is linked from a result whose manifest is unreadable"
    );
    assert_eq!(digest, cold_digest(ctx.path()));

    // The previous result is collected: the pointer dangles.
    run_ok(
        engine()
            .args(["cache", "prune", "--all", "--cache-dir"])
            .arg(cache.path()),
    );
    fs::write(ctx.path().join("d3/f9.txt"), "two\n").unwrap();
    let digest = build(ctx.path(), cache.path(), &[]);
    assert_eq!(digest, cold_digest(ctx.path()));
}

#[test]
fn no_cache_links_nothing() {
    let ctx = context();
    let cache = tempfile::tempdir().unwrap();
    build(ctx.path(), cache.path(), &[]);
    let first = inodes(&latest_copy(cache.path()));
    fs::write(ctx.path().join("d1/f3.txt"), "edited\n").unwrap();
    build(ctx.path(), cache.path(), &["--no-cache"]);
    let second = inodes(&latest_copy(cache.path()));
    assert!(first.iter().all(|(p, ino)| second.get(p) != Some(ino)));
}
