//! Whiteouts and opaque directories, both when applying and when
//! converting a real overlayfs upper dir.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use engine_layers::{
    apply_layer, flatten, write_diff_layer, write_layer, Compression, Error, FlatEntry,
    LayerOptions,
};

fn plain() -> LayerOptions {
    LayerOptions {
        compression: Compression::None,
        ..LayerOptions::default()
    }
}

fn paths(v: &[FlatEntry]) -> Vec<String> {
    v.iter().map(|e| e.path.display().to_string()).collect()
}

/// Base tree used by the apply tests.
fn base_tree(dir: &Path) {
    mkdir(dir, 0o755);
    write_file(&dir.join("x"), b"x", 0o644);
    write_file(&dir.join("keep"), b"keep", 0o644);
    write_file(&dir.join("gone-dir/a"), b"a", 0o644);
    write_file(&dir.join("gone-dir/sub/b"), b"b", 0o644);
    write_file(&dir.join("d/old"), b"old", 0o644);
    write_file(&dir.join("d/sub/old2"), b"old2", 0o644);
    write_file(&dir.join("e/old"), b"old", 0o644);
    write_file(&dir.join("e/sub/deep"), b"deep", 0o644);
    write_file(&dir.join("e/kept"), b"lower version", 0o644);
    mkdir(&dir.join("e/sub2"), 0o755);
    write_file(&dir.join("e/sub2/lower"), b"lower", 0o644);
}

#[test]
fn whiteouts_and_opaque_dirs() {
    let tmp = tempdir();
    let base = tmp.path().join("base");
    base_tree(&base);
    let mut base_layer = Vec::new();
    write_layer(&base, &mut base_layer, &LayerOptions::default()).unwrap();

    let root = tmp.path().join("root");
    mkdir(&root, 0o755);
    apply_layer(&root, &base_layer[..], None).unwrap();

    let layer = raw_tar(&[
        Raw::file(".wh.x", b""),
        Raw::file(".wh.gone-dir", b""),
        Raw::file(".wh.never-existed", b""),
        // Opaque marker before the directory's new content.
        Raw::dir("d/", 0o755),
        Raw::file("d/.wh..wh..opq", b""),
        Raw::file("d/new", b"new"),
        // Opaque marker after this layer's content: still kept, and lower
        // content below kept directories is removed too.
        Raw::dir("e/", 0o755),
        Raw::file("e/kept", b"upper version"),
        Raw::file("e/sub2/mine", b"mine"),
        Raw::file("e/.wh..wh..opq", b""),
        // AUFS metadata is ignored.
        Raw::file(".wh..wh.plnk", b""),
    ]);
    apply_layer(&root, &layer[..], Some(Compression::None)).unwrap();

    let got = paths(&flatten(&root).unwrap());
    assert_eq!(
        got,
        vec!["d", "d/new", "e", "e/kept", "e/sub2", "e/sub2/mine", "keep",]
    );
    assert_eq!(fs::read(root.join("e/kept")).unwrap(), b"upper version");
}

#[test]
fn whiteout_of_directory_is_one_entry_in_diff() {
    let tmp = tempdir();
    let lower = tmp.path().join("lower");
    base_tree(&lower);
    let upper = tmp.path().join("upper");
    copy_tree(&lower, &upper);
    fs::remove_dir_all(upper.join("gone-dir")).unwrap();
    let mut blob = Vec::new();
    write_diff_layer(&lower, &upper, &mut blob, &plain()).unwrap();
    assert_eq!(tar_names(&blob), vec![".wh.gone-dir"]);
}

#[test]
fn invalid_whiteouts_are_errors() {
    let tmp = tempdir();
    for name in [".wh.", ".wh..", ".wh...", "a/.wh.."] {
        let root = tmp.path().join(format!("r{}", name.len()));
        mkdir(&root, 0o755);
        let layer = raw_tar(&[Raw::file(name, b"")]);
        match apply_layer(&root, &layer[..], None) {
            Err(Error::InvalidWhiteout { path }) => assert_eq!(path, name),
            other => panic!("{name}: {other:?}"),
        }
    }
}

fn copy_tree(from: &Path, to: &Path) {
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
    }
}

#[test]
fn overlay_upper_conversion() {
    let tmp = tempdir();
    let t = tmp.path();
    let (lower, upper, work, merged) = (
        t.join("lower"),
        t.join("upper"),
        t.join("work"),
        t.join("merged"),
    );
    mkdir(&lower, 0o755);
    write_file(&lower.join("gone.txt"), b"bye", 0o644);
    write_file(&lower.join("gonedir/a"), b"a", 0o644);
    write_file(&lower.join("gonedir/b/c"), b"c", 0o644);
    write_file(&lower.join("replaced/inner"), b"inner", 0o644);
    write_file(&lower.join("opq/old"), b"old", 0o644);
    write_file(&lower.join("opq/sub/old2"), b"old2", 0o644);
    write_file(&lower.join("unchanged"), b"same", 0o644);
    for d in [&upper, &work, &merged] {
        mkdir(d, 0o755);
    }
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    let data = std::ffi::CString::new(data).unwrap();
    let mounted = rustix::mount::mount(
        "overlay",
        &merged,
        "overlay",
        rustix::mount::MountFlags::empty(),
        data.as_c_str(),
    );
    if let Err(e) = mounted {
        println!("overlayfs mount failed ({e}); checking the copy-based differ instead");
        let new = t.join("new");
        copy_tree(&lower, &new);
        fs::remove_file(new.join("gone.txt")).unwrap();
        fs::remove_dir_all(new.join("gonedir")).unwrap();
        fs::remove_dir_all(new.join("replaced")).unwrap();
        write_file(&new.join("replaced"), b"now a file", 0o644);
        fs::remove_dir_all(new.join("opq")).unwrap();
        write_file(&new.join("opq/new"), b"new", 0o644);
        let mut blob = Vec::new();
        write_diff_layer(&lower, &new, &mut blob, &plain()).unwrap();
        let names = tar_names(&blob);
        for want in [
            ".wh.gone.txt",
            ".wh.gonedir",
            "replaced",
            "opq/",
            "opq/new",
            "opq/.wh.old",
            "opq/.wh.sub",
        ] {
            assert!(
                names.iter().any(|n| n == want),
                "{want} missing from {names:?}"
            );
        }
        return;
    }
    let guard = Mount(merged.clone());
    fs::remove_file(merged.join("gone.txt")).unwrap();
    fs::remove_dir_all(merged.join("gonedir")).unwrap();
    fs::remove_dir_all(merged.join("replaced")).unwrap();
    write_file(&merged.join("replaced"), b"now a file", 0o644);
    fs::remove_dir_all(merged.join("opq")).unwrap();
    mkdir(&merged.join("opq"), 0o755);
    write_file(&merged.join("opq/new"), b"new", 0o644);
    write_file(&merged.join("added/file"), b"added", 0o600);
    let expected = flatten(&merged).unwrap();
    drop(guard);
    // Must be unmounted before the upper dir is read.
    assert!(!merged.join("unchanged").exists());

    let mut blob = Vec::new();
    let opts = LayerOptions {
        overlay_upper: true,
        compression: Compression::None,
        source_date_epoch: Some(1_700_000_000),
    };
    write_layer(&upper, &mut blob, &opts).unwrap();
    let entries = list_tar(&blob);
    let names: Vec<String> = entries
        .iter()
        .map(|e| String::from_utf8_lossy(&e.0).into_owned())
        .collect();
    assert_eq!(
        names,
        vec![
            "added/",
            "added/file",
            ".wh.gone.txt",
            ".wh.gonedir",
            "opq/",
            "opq/.wh..wh..opq",
            "opq/new",
            "replaced",
        ]
    );
    for (name, kind, _, size) in &entries {
        if name.starts_with(b".wh.") || name.ends_with(b"/.wh..wh..opq") {
            assert_eq!(*kind, tar::EntryType::Regular);
            assert_eq!(*size, 0);
        }
    }
    // No overlay xattrs leak into the layer.
    let mut a = tar::Archive::new(&blob[..]);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if let Some(pax) = e.pax_extensions().unwrap() {
            for r in pax {
                assert!(!r.unwrap().key().unwrap().contains("overlay"));
            }
        }
    }

    // Applying lower + converted upper gives the merged view.
    let root = t.join("applied");
    mkdir(&root, 0o755);
    let mut lower_blob = Vec::new();
    write_layer(&lower, &mut lower_blob, &LayerOptions::default()).unwrap();
    apply_layer(&root, &lower_blob[..], None).unwrap();
    apply_layer(&root, &blob[..], None).unwrap();
    let got = flatten(&root).unwrap();
    let strip = |v: Vec<FlatEntry>| -> Vec<FlatEntry> {
        v.into_iter()
            .map(|mut e| {
                e.mtime = 0;
                e
            })
            .collect()
    };
    assert_eq!(strip(got), strip(expected));
}

#[test]
fn overlay_redirect_is_refused() {
    let tmp = tempdir();
    let upper = tmp.path().join("upper");
    mkdir(&upper.join("moved"), 0o755);
    set_xattr(&upper.join("moved"), "trusted.overlay.redirect", b"/orig");
    let opts = LayerOptions {
        overlay_upper: true,
        ..LayerOptions::default()
    };
    match write_layer(&upper, std::io::sink(), &opts) {
        Err(Error::UnsupportedOverlay { path, name }) => {
            assert_eq!(name, "trusted.overlay.redirect");
            assert!(path.ends_with("moved"));
        }
        other => panic!("{other:?}"),
    }
    // Without overlay_upper the xattr is simply not carried.
    write_layer(&upper, std::io::sink(), &LayerOptions::default()).unwrap();
}

#[test]
fn overlay_whiteout_devices_by_hand() {
    // Same conversion without mounting: 0/0 char devices and opaque xattrs.
    let tmp = tempdir();
    let upper = tmp.path().join("upper");
    mkdir(&upper, 0o755);
    mknod(
        &upper.join("deleted"),
        rustix::fs::FileType::CharacterDevice,
        0,
        0,
        0,
    );
    // overlayfs shares one whiteout inode between many names.
    fs::hard_link(upper.join("deleted"), upper.join("deleted-too")).unwrap();
    mknod(
        &upper.join("realdev"),
        rustix::fs::FileType::CharacterDevice,
        0o666,
        1,
        5,
    );
    mkdir(&upper.join("o"), 0o755);
    set_xattr(&upper.join("o"), "trusted.overlay.opaque", b"y");
    mkdir(&upper.join("u"), 0o755);
    set_xattr(&upper.join("u"), "user.overlay.opaque", b"y");
    mkdir(&upper.join("not-opaque"), 0o755);
    set_xattr(&upper.join("not-opaque"), "trusted.overlay.opaque", b"n");
    let mut blob = Vec::new();
    let opts = LayerOptions {
        overlay_upper: true,
        compression: Compression::None,
        ..LayerOptions::default()
    };
    write_layer(&upper, &mut blob, &opts).unwrap();
    assert_eq!(
        tar_names(&blob),
        vec![
            ".wh.deleted",
            ".wh.deleted-too",
            "not-opaque/",
            "o/",
            "o/.wh..wh..opq",
            "realdev",
            "u/",
            "u/.wh..wh..opq",
        ]
    );
    // Without overlay_upper they are ordinary devices (a hardlink pair).
    let mut blob = Vec::new();
    write_layer(&upper, &mut blob, &plain()).unwrap();
    let entries = list_tar(&blob);
    assert_eq!(entries[0].1, tar::EntryType::Char);
    assert_eq!(entries[1].1, tar::EntryType::Link);
}

#[test]
fn overlay_whiteout_format_matches_removal() {
    use engine_layers::{apply_layer_with, ApplyOptions, WhiteoutFormat};
    let tmp = tempdir();
    let t = tmp.path();
    let base = t.join("base");
    base_tree(&base);
    let mut base_layer = Vec::new();
    write_layer(&base, &mut base_layer, &LayerOptions::default()).unwrap();
    let top_layer = raw_tar(&[
        Raw::file(".wh.x", b""),
        Raw::file(".wh.gone-dir", b""),
        Raw::dir("d/", 0o755),
        Raw::file("d/.wh..wh..opq", b""),
        Raw::file("d/new", b"new"),
        Raw::dir("e/", 0o755),
        Raw::file("e/kept", b"upper version"),
        Raw::file("e/.wh.old", b""),
    ]);

    // Reference: both layers into one directory.
    let flat = t.join("flat");
    mkdir(&flat, 0o755);
    apply_layer(&flat, &base_layer[..], None).unwrap();
    apply_layer(&flat, &top_layer[..], None).unwrap();

    // Each layer into its own directory, whiteouts kept for overlayfs.
    let (l0, l1, merged) = (t.join("l0"), t.join("l1"), t.join("merged"));
    for d in [&l0, &l1, &merged] {
        mkdir(d, 0o755);
    }
    let overlay = ApplyOptions {
        whiteouts: WhiteoutFormat::Overlay,
        ..ApplyOptions::default()
    };
    apply_layer_with(&l0, &base_layer[..], &overlay).unwrap();
    apply_layer_with(&l1, &top_layer[..], &overlay).unwrap();
    {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let m = fs::symlink_metadata(l1.join("x")).unwrap();
        assert!(m.file_type().is_char_device() && m.rdev() == 0);
        let mut v = [0u8; 4];
        let n = rustix::fs::lgetxattr(l1.join("d"), "trusted.overlay.opaque", &mut v[..]).unwrap();
        assert_eq!(&v[..n], b"y");
        // Nothing of the lower layer is touched.
        assert!(l0.join("x").exists() && l0.join("d/old").exists());
    }
    let data = format!("lowerdir={}:{}", l1.display(), l0.display());
    let data = std::ffi::CString::new(data).unwrap();
    if let Err(e) = rustix::mount::mount(
        "overlay",
        &merged,
        "overlay",
        rustix::mount::MountFlags::RDONLY,
        data.as_c_str(),
    ) {
        println!("overlayfs mount failed ({e}); only the on-disk format was checked");
        return;
    }
    let guard = Mount(merged.clone());
    let got = flatten(&merged).unwrap();
    drop(guard);
    assert_eq!(got, flatten(&flat).unwrap());
}
