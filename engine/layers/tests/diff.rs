//! The copy-based differ (no overlayfs).

mod common;

use std::fs;
use std::path::Path;

use common::*;
use engine_layers::{
    apply_layer, flatten, write_diff_layer, write_layer, Compression, LayerOptions,
};

fn plain() -> LayerOptions {
    LayerOptions {
        compression: Compression::None,
        ..LayerOptions::default()
    }
}

fn cp_a(from: &Path, to: &Path) {
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

fn lower_tree(dir: &Path) {
    mkdir(dir, 0o755);
    write_file(&dir.join("modify.txt"), b"before", 0o644);
    write_file(&dir.join("delete.txt"), b"delete me", 0o644);
    write_file(&dir.join("chmod.txt"), b"mode", 0o644);
    write_file(&dir.join("same.txt"), b"unchanged", 0o644);
    write_file(&dir.join("dir1/x"), b"x", 0o644);
    write_file(&dir.join("dir1/untouched"), b"u", 0o644);
    write_file(&dir.join("deldir/y/z"), b"z", 0o644);
    write_file(&dir.join("deldir/w"), b"w", 0o644);
    write_file(&dir.join("typechange"), b"file", 0o644);
    mkdir(&dir.join("dir2file/child"), 0o755);
    symlink("same.txt", &dir.join("link"));
    set_all_mtimes(dir, 1_600_000_000);
}

#[test]
fn diff_emits_changes_and_whiteouts() {
    let tmp = tempdir();
    let lower = tmp.path().join("lower");
    let upper = tmp.path().join("upper");
    lower_tree(&lower);
    cp_a(&lower, &upper);

    // Nothing changed yet: an empty layer.
    let mut blob = Vec::new();
    write_diff_layer(&lower, &upper, &mut blob, &plain()).unwrap();
    assert!(tar_names(&blob).is_empty());

    write_file(&upper.join("modify.txt"), b"after!", 0o644);
    fs::remove_file(upper.join("delete.txt")).unwrap();
    fs::set_permissions(
        upper.join("chmod.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    write_file(&upper.join("dir1/x"), b"X", 0o644);
    set_mtime(&upper.join("dir1/x"), 1_600_000_000); // same size & mtime: content decides
    fs::remove_dir_all(upper.join("deldir")).unwrap();
    write_file(&upper.join("add.txt"), b"new", 0o644);
    write_file(&upper.join("newdir/deep/f"), b"f", 0o644);
    fs::remove_file(upper.join("typechange")).unwrap();
    mkdir(&upper.join("typechange"), 0o755);
    write_file(&upper.join("typechange/inner"), b"i", 0o644);
    fs::remove_dir_all(upper.join("dir2file")).unwrap();
    write_file(&upper.join("dir2file"), b"now a file", 0o644);
    fs::remove_file(upper.join("link")).unwrap();
    symlink("modify.txt", &upper.join("link"));
    // A new hardlink to an unchanged file: both names end up linked.
    fs::hard_link(upper.join("same.txt"), upper.join("same-link")).unwrap();

    let mut blob = Vec::new();
    write_diff_layer(&lower, &upper, &mut blob, &plain()).unwrap();
    let entries = list_tar(&blob);
    let names: Vec<String> = entries
        .iter()
        .map(|e| String::from_utf8_lossy(&e.0).into_owned())
        .collect();
    assert_eq!(
        names,
        vec![
            "add.txt",
            "chmod.txt",
            ".wh.deldir",
            ".wh.delete.txt",
            "dir1/",
            "dir1/x",
            "dir2file",
            "link",
            "modify.txt",
            "newdir/",
            "newdir/deep/",
            "newdir/deep/f",
            "same-link",
            "same.txt",
            "typechange/",
            "typechange/inner",
        ]
    );
    let same = entries.iter().find(|e| e.0 == b"same.txt").unwrap();
    assert_eq!(same.1, tar::EntryType::Link);
    assert_eq!(same.2, b"same-link");

    // lower + diff == upper.
    let root = tmp.path().join("root");
    mkdir(&root, 0o755);
    let mut lower_blob = Vec::new();
    write_layer(&lower, &mut lower_blob, &LayerOptions::default()).unwrap();
    apply_layer(&root, &lower_blob[..], None).unwrap();
    apply_layer(&root, &blob[..], None).unwrap();
    assert_eq!(flatten(&root).unwrap(), flatten(&upper).unwrap());
}

#[test]
fn metadata_only_and_nanosecond_changes() {
    let tmp = tempdir();
    let lower = tmp.path().join("lower");
    let upper = tmp.path().join("upper");
    mkdir(&lower, 0o755);
    write_file(&lower.join("owner"), b"o", 0o644);
    write_file(&lower.join("same-content-new-mtime"), b"c", 0o644);
    mkdir(&lower.join("d"), 0o755);
    set_all_mtimes(&lower, 1_600_000_000);
    cp_a(&lower, &upper);
    chown(&upper.join("owner"), 1, 1);
    set_mtime(&upper.join("same-content-new-mtime"), 1_600_000_001);
    // A directory's mtime alone is not a change.
    set_mtime(&upper.join("d"), 1_700_000_000);
    let mut blob = Vec::new();
    write_diff_layer(&lower, &upper, &mut blob, &plain()).unwrap();
    assert_eq!(tar_names(&blob), vec!["owner", "same-content-new-mtime"]);
}
