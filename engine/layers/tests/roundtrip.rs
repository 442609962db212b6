//! write_layer → apply_layer round trips, determinism and format checks.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::*;
use engine_layers::{
    apply_layer, flatten, write_layer, Compression, FileKind, FlatEntry, LayerOptions,
};
use rustix::fs::FileType;
use sha2::{Digest, Sha256};

const NON_UTF8: &[u8] = b"caf\xe9-\xff.bin";

/// Builds a tree exercising every supported kind of object. Returns whether
/// user xattrs were set.
fn build_tree(root: &Path) -> bool {
    mkdir(root, 0o755);
    write_file(&root.join("hello.txt"), b"hello world\n", 0o644);
    write_file(&root.join("empty"), b"", 0o600);
    let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    write_file(&root.join("d1/big.bin"), &big, 0o640);
    write_file(&root.join("d1/sub/setuid"), b"#!/bin/sh\n", 0o4755);
    write_file(&root.join("d1/sub/setgid"), b"x", 0o2711);
    mkdir(&root.join("sticky"), 0o1777);
    mkdir(&root.join("setgid-dir"), 0o2775);
    mkdir(&root.join("empty-dir"), 0o700);
    write_file(&root.join("owned"), b"owned by someone", 0o600);
    chown(&root.join("owned"), 1234, 5678);
    mkdir(&root.join("owned-dir"), 0o750);
    chown(&root.join("owned-dir"), 4321, 8765);
    symlink("hello.txt", &root.join("link-rel"));
    symlink("/etc/passwd", &root.join("link-abs"));
    symlink("d1/sub", &root.join("link-dir"));
    symlink("does/not/exist", &root.join("link-dangling"));
    // Hardlinks: three names for one inode, across directories.
    write_file(&root.join("d1/hl-a"), b"shared inode", 0o644);
    fs::hard_link(root.join("d1/hl-a"), root.join("hl-b")).unwrap();
    fs::hard_link(root.join("d1/hl-a"), root.join("d1/sub/hl-c")).unwrap();
    // Special files.
    mknod(&root.join("fifo"), FileType::Fifo, 0o640, 0, 0);
    mknod(
        &root.join("chardev"),
        FileType::CharacterDevice,
        0o666,
        1,
        3,
    );
    mknod(&root.join("blockdev"), FileType::BlockDevice, 0o660, 7, 200);
    // Sockets are skipped by the writer.
    let _sock = std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();
    // Long names: one component over 100 bytes (needs PAX), a path over
    // 255 bytes made of long components, and a long symlink target.
    let long_comp = "n".repeat(150);
    write_file(&root.join(&long_comp), b"long component", 0o644);
    let deep = root
        .join("x".repeat(120))
        .join("y".repeat(120))
        .join("z".repeat(60));
    write_file(&deep.join("file-in-deep-dir"), b"deep", 0o644);
    let splittable = root.join("s".repeat(90)).join("t".repeat(60));
    write_file(&splittable, b"ustar prefix split", 0o644);
    symlink("q".repeat(300), &root.join("long-link"));
    // Non-UTF-8 name.
    write_file(&bytes_path(root, NON_UTF8), b"latin-1 name", 0o644);
    mkdir(&bytes_path(root, b"dir-\xfe"), 0o755);
    write_file(&bytes_path(root, b"dir-\xfe/inner"), b"inner", 0o644);
    // A large uid/gid that needs PAX records.
    write_file(&root.join("big-ids"), b"ids", 0o644);
    chown(&root.join("big-ids"), 3_000_000, 4_000_000);

    let xattrs = user_xattrs_supported(root);
    if xattrs {
        set_xattr(&root.join("hello.txt"), "user.comment", b"greeting");
        set_xattr(&root.join("hello.txt"), "user.binary", &[0, 1, 2, 255]);
        set_xattr(&root.join("d1"), "user.dir-attr", b"on a dir");
        // Not carried into layers.
        set_xattr(&root.join("empty"), "trusted.overlay.opaque", b"y");
        set_xattr(&root.join("empty"), "user.overlay.foo", b"z");
    } else {
        println!(
            "user xattrs unsupported under {}: skipping xattr assertions",
            root.display()
        );
    }
    // Fixed, distinct mtimes (directories last so children do not bump them).
    set_all_mtimes(root, 1_600_000_000);
    set_mtime(&root.join("hello.txt"), 1_234_567_890);
    set_mtime(&root.join("link-rel"), 1_111_111_111);
    set_mtime(&root.join("d1"), 1_500_000_000);
    xattrs
}

fn without_sockets(v: Vec<FlatEntry>) -> Vec<FlatEntry> {
    v.into_iter()
        .filter(|e| e.kind != FileKind::Socket)
        .collect()
}

fn sha256_hex(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

#[test]
fn round_trip_all_compressions() {
    let tmp = tempdir();
    let src = tmp.path().join("src");
    let xattrs = build_tree(&src);
    let expected = without_sockets(flatten(&src).unwrap());
    assert!(expected.iter().any(|e| e.path.as_os_str().len() > 255));

    for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let opts = LayerOptions {
            compression,
            ..LayerOptions::default()
        };
        let mut blob = Vec::new();
        let digests = write_layer(&src, &mut blob, &opts).unwrap();
        assert_eq!(digests.digest, sha256_hex(&blob), "{compression:?}");
        assert_eq!(digests.size, blob.len() as u64);
        if compression == Compression::None {
            assert_eq!(digests.digest, digests.diff_id);
        }

        let dst = tmp.path().join(format!("dst-{compression:?}"));
        mkdir(&dst, 0o755);
        let stats = apply_layer(&dst, &blob[..], None).unwrap();
        assert_eq!(stats.compression, compression);
        assert_eq!(stats.digest, digests.digest);
        assert_eq!(stats.diff_id, digests.diff_id);
        assert_eq!(stats.size, digests.size);

        let got = flatten(&dst).unwrap();
        assert_eq!(got.len(), expected.len(), "{compression:?}");
        for (g, e) in got.iter().zip(&expected) {
            assert_eq!(g, e, "{compression:?}");
        }
        // Spot checks on what the comparison covers.
        let find = |p: &[u8]| {
            got.iter()
                .find(|e| e.path == bytes_path(Path::new(""), p))
                .unwrap_or_else(|| panic!("{} missing", String::from_utf8_lossy(p)))
        };
        assert_eq!(find(b"d1/sub/setuid").mode, 0o4755);
        assert_eq!(find(b"sticky").mode, 0o1777);
        assert_eq!((find(b"owned").uid, find(b"owned").gid), (1234, 5678));
        assert_eq!(find(b"big-ids").uid, 3_000_000);
        assert_eq!(find(b"chardev").rdev, Some((1, 3)));
        assert_eq!(find(b"blockdev").rdev, Some((7, 200)));
        assert_eq!(find(b"fifo").kind, FileKind::Fifo);
        assert_eq!(find(b"d1/hl-a").hardlink_to, None);
        assert_eq!(
            find(b"d1/sub/hl-c").hardlink_to.as_deref(),
            Some(Path::new("d1/hl-a"))
        );
        assert_eq!(
            find(b"hl-b").hardlink_to.as_deref(),
            Some(Path::new("d1/hl-a"))
        );
        assert_eq!(fs::symlink_metadata(dst.join("hl-b")).unwrap().nlink(), 3);
        assert_eq!(find(b"hello.txt").mtime, 1_234_567_890);
        assert_eq!(find(b"link-rel").mtime, 1_111_111_111);
        assert_eq!(find(b"d1").mtime, 1_500_000_000);
        assert_eq!(
            find(NON_UTF8).sha256,
            Some(hex::encode(Sha256::digest(b"latin-1 name")))
        );
        assert!(!dst.join("sock").exists());
        if xattrs {
            assert_eq!(
                find(b"hello.txt").xattrs,
                vec![
                    (b"user.binary".to_vec(), vec![0, 1, 2, 255]),
                    (b"user.comment".to_vec(), b"greeting".to_vec()),
                ]
            );
            assert_eq!(find(b"d1").xattrs.len(), 1);
            assert!(find(b"empty").xattrs.is_empty());
            assert!(rustix::fs::lgetxattr(
                dst.join("empty"),
                "trusted.overlay.opaque",
                &mut [0u8; 8][..]
            )
            .is_err());
        }
    }
}

#[test]
fn tar_format_matches_buildkit_conventions() {
    let tmp = tempdir();
    let src = tmp.path().join("src");
    let xattrs = build_tree(&src);
    let mut blob = Vec::new();
    let opts = LayerOptions {
        compression: Compression::None,
        ..LayerOptions::default()
    };
    write_layer(&src, &mut blob, &opts).unwrap();

    let entries = list_tar(&blob);
    let names: Vec<Vec<u8>> = entries.iter().map(|e| e.0.clone()).collect();
    // Depth-first, children sorted by name bytes; no "./", dirs end in "/".
    let pos = |n: &[u8]| names.iter().position(|x| x == n).unwrap();
    assert!(pos(b"d1/") < pos(b"d1/big.bin"));
    assert!(pos(b"d1/big.bin") < pos(b"d1/sub/"));
    assert!(pos(b"d1/sub/setuid") < pos(b"dir-\xfe/"));
    assert!(names
        .iter()
        .all(|n| !n.starts_with(b"./") && !n.starts_with(b"/")));
    assert!(!names.iter().any(|n| n == b"sock"));
    for (name, kind, link, _) in &entries {
        if kind.is_dir() {
            assert!(name.ends_with(b"/"), "{}", String::from_utf8_lossy(name));
        }
        if kind.is_hard_link() {
            // All links point at the first name in walk order.
            assert_eq!(link, b"d1/hl-a");
        }
    }
    let hardlinks: Vec<_> = entries
        .iter()
        .filter(|e| e.1.is_hard_link())
        .map(|e| e.0.clone())
        .collect();
    assert_eq!(hardlinks, vec![b"d1/sub/hl-c".to_vec(), b"hl-b".to_vec()]);
    assert!(names.contains(&NON_UTF8.to_vec()));
    assert!(names.iter().any(|n| n.len() == 150));
    let long_link = entries.iter().find(|e| e.0 == b"long-link").unwrap();
    assert_eq!(long_link.2, "q".repeat(300).into_bytes());

    // Raw header checks with the tar crate: uname/gname empty, ustar magic,
    // modes without type bits, PAX xattrs.
    let mut a = tar::Archive::new(&blob[..]);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        assert!(h.as_ustar().is_some());
        assert_eq!(h.username_bytes(), Some(&b""[..]));
        assert_eq!(h.groupname_bytes(), Some(&b""[..]));
        assert_eq!(h.mode().unwrap() & !0o7777, 0);
        if e.path_bytes().as_ref() == b"hello.txt" && xattrs {
            let pax: Vec<(String, Vec<u8>)> = e
                .pax_extensions()
                .unwrap()
                .unwrap()
                .map(|r| {
                    let r = r.unwrap();
                    (r.key().unwrap().to_owned(), r.value_bytes().to_vec())
                })
                .collect();
            assert!(pax.contains(&("SCHILY.xattr.user.comment".into(), b"greeting".to_vec())));
        }
        if e.path_bytes().as_ref() == b"empty" {
            // Overlay xattrs are never written.
            assert!(e.pax_extensions().unwrap().is_none());
        }
    }
}

#[test]
fn deterministic_with_source_date_epoch() {
    let tmp = tempdir();
    let a = tmp.path().join("a");
    let b = tmp.path().join("somewhere/else/b");
    build_tree(&a);
    build_tree(&b);
    let epoch = 1_700_000_000;
    // Different mtimes, all after the epoch...
    set_all_mtimes(&a, 1_800_000_000);
    set_all_mtimes(&b, 1_900_000_123);
    // ...except one file older than the epoch, which keeps its mtime.
    set_mtime(&a.join("hello.txt"), 1_000_000_000);
    set_mtime(&b.join("hello.txt"), 1_000_000_000);

    for compression in [Compression::Gzip, Compression::Zstd, Compression::None] {
        let opts = LayerOptions {
            source_date_epoch: Some(epoch),
            compression,
            overlay_upper: false,
        };
        let mut blob_a = Vec::new();
        let mut blob_a2 = Vec::new();
        let mut blob_b = Vec::new();
        let da = write_layer(&a, &mut blob_a, &opts).unwrap();
        let da2 = write_layer(&a, &mut blob_a2, &opts).unwrap();
        let db = write_layer(&b, &mut blob_b, &opts).unwrap();
        assert_eq!(da, da2, "{compression:?}");
        assert_eq!(da, db, "{compression:?}");
        assert_eq!(blob_a, blob_b, "{compression:?}");
    }

    let opts = LayerOptions {
        source_date_epoch: Some(epoch),
        compression: Compression::None,
        overlay_upper: false,
    };
    let mut blob = Vec::new();
    write_layer(&a, &mut blob, &opts).unwrap();
    let mut ar = tar::Archive::new(&blob[..]);
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        let mtime = e.header().mtime().unwrap();
        if e.path_bytes().as_ref() == b"hello.txt" {
            assert_eq!(mtime, 1_000_000_000);
        } else {
            assert_eq!(
                mtime,
                epoch as u64,
                "{}",
                String::from_utf8_lossy(&e.path_bytes())
            );
        }
    }

    // Without an epoch the differing mtimes show.
    let plain = LayerOptions {
        compression: Compression::None,
        ..LayerOptions::default()
    };
    let da = write_layer(&a, std::io::sink(), &plain).unwrap();
    let db = write_layer(&b, std::io::sink(), &plain).unwrap();
    assert_ne!(da.diff_id, db.diff_id);
}

#[test]
fn gzip_stream_is_deterministic_and_standard() {
    let tmp = tempdir();
    let src = tmp.path().join("src");
    mkdir(&src, 0o755);
    write_file(&src.join("f"), b"data", 0o644);
    let mut blob = Vec::new();
    write_layer(&src, &mut blob, &LayerOptions::default()).unwrap();
    // gzip header: magic, deflate, no flags (no name), mtime 0, OS unknown.
    assert_eq!(&blob[..4], &[0x1f, 0x8b, 8, 0]);
    assert_eq!(&blob[4..8], &[0, 0, 0, 0]);
    assert_eq!(blob[9], 255);
    assert_eq!(engine_layers::detect_compression(&blob), Compression::Gzip);
    let mut tar_bytes = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&blob[..]), &mut tar_bytes)
        .unwrap();
    assert_eq!(tar_names(&tar_bytes), vec!["f"]);
}

#[test]
fn detect_compression_magic() {
    use engine_layers::detect_compression;
    assert_eq!(detect_compression(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
    assert_eq!(
        detect_compression(&[0x28, 0xb5, 0x2f, 0xfd]),
        Compression::Zstd
    );
    assert_eq!(detect_compression(b"hello"), Compression::None);
    assert_eq!(detect_compression(b""), Compression::None);
    assert_eq!(detect_compression(&[0x1f]), Compression::None);
}

#[test]
fn empty_directory_gives_empty_tar() {
    let tmp = tempdir();
    let src = tmp.path().join("src");
    mkdir(&src, 0o755);
    let mut blob = Vec::new();
    let d = write_layer(
        &src,
        &mut blob,
        &LayerOptions {
            compression: Compression::None,
            ..LayerOptions::default()
        },
    )
    .unwrap();
    assert_eq!(blob, vec![0u8; 1024]);
    assert_eq!(d.diff_id, sha256_hex(&[0u8; 1024]));
}

#[test]
fn write_layer_errors_name_the_path() {
    let tmp = tempdir();
    let missing = tmp.path().join("missing");
    let err = write_layer(&missing, std::io::sink(), &LayerOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("missing"), "{msg}");
    assert!(msg.starts_with("stat "), "{msg}");
    assert!(!msg.ends_with('.'));
}
