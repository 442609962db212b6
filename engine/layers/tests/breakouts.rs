//! Hostile layers (containerd's TestBreakouts class): every case must either
//! fail or stay inside the root; a canary directory beside the root must be
//! untouched. Each case runs with both path resolvers.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::*;
use engine_layers::{
    apply_layer_with, ApplyOptions, Compression, Error, ResolveMode, WhiteoutFormat,
};

struct Case<'a> {
    name: &'static str,
    entries: Vec<Raw<'a>>,
    /// Must the apply fail?
    must_fail: bool,
    /// Extra check of the root after a successful apply.
    check: Option<fn(&Path)>,
}

fn run(case: &Case<'_>, mode: ResolveMode, base_layer: Option<&[Raw<'_>]>) {
    run_with(case, mode, base_layer, WhiteoutFormat::Remove)
}

fn run_with(
    case: &Case<'_>,
    mode: ResolveMode,
    base_layer: Option<&[Raw<'_>]>,
    whiteouts: WhiteoutFormat,
) {
    let sb = Sandbox::new();
    let opts = ApplyOptions {
        compression: Some(Compression::None),
        resolve: mode,
        whiteouts,
        ..ApplyOptions::default()
    };
    if let Some(base) = base_layer {
        apply_layer_with(&sb.root, &raw_tar(base)[..], &opts).unwrap();
    }
    let tar = raw_tar(&case.entries);
    let res = apply_layer_with(&sb.root, &tar[..], &opts);
    sb.assert_canary_intact(case.name);
    match (&res, case.must_fail) {
        (Ok(_), true) => panic!("case {} ({mode:?}) unexpectedly succeeded", case.name),
        (Err(e), false) => panic!("case {} ({mode:?}) failed: {e}", case.name),
        (Err(e), true) => {
            let msg = e.to_string();
            assert!(!msg.is_empty() && !msg.ends_with('.'), "{msg}");
        }
        (Ok(_), false) => {
            if let Some(check) = case.check {
                check(&sb.root);
            }
        }
    }
}

fn run_all(cases: &[Case<'_>]) {
    for mode in [ResolveMode::Auto, ResolveMode::Manual] {
        for case in cases {
            run(case, mode, None);
        }
    }
}

/// The sandbox's canary, as an absolute path string.
fn canary_abs(root: &Path) -> String {
    root.parent().unwrap().join("canary").display().to_string()
}

#[test]
fn dotdot_and_absolute_paths() {
    let cases = vec![
        Case {
            name: "../canary/secret",
            entries: vec![Raw::file("../canary/secret", b"pwned")],
            must_fail: true,
            check: None,
        },
        Case {
            name: "a/../../canary/secret",
            entries: vec![
                Raw::dir("a/", 0o755),
                Raw::file("a/../../canary/secret", b"pwned"),
            ],
            must_fail: true,
            check: None,
        },
        Case {
            name: "/../canary/secret",
            entries: vec![Raw::file("/../canary/secret", b"pwned")],
            must_fail: true,
            check: None,
        },
        Case {
            name: "../ directory",
            entries: vec![Raw::dir("../", 0o777)],
            must_fail: true,
            check: None,
        },
        Case {
            name: "/abs/x",
            entries: vec![Raw::file("/abs/x", b"inside")],
            must_fail: false,
            check: Some(|root| assert_eq!(fs::read(root.join("abs/x")).unwrap(), b"inside")),
        },
        Case {
            name: "a/./b/../x",
            entries: vec![Raw::file("a/./b/../x", b"inside")],
            must_fail: false,
            check: Some(|root| assert_eq!(fs::read(root.join("a/x")).unwrap(), b"inside")),
        },
        Case {
            name: "./ root entry is ignored",
            entries: vec![Raw::dir("./", 0o777), Raw::dir("/", 0o777)],
            must_fail: false,
            check: Some(|root| {
                assert_eq!(
                    fs::metadata(root).unwrap().permissions().mode() & 0o777,
                    0o755
                )
            }),
        },
    ];
    run_all(&cases);

    // An absolute path naming the real canary lands inside the root.
    for mode in [ResolveMode::Auto, ResolveMode::Manual] {
        let sb = Sandbox::new();
        let abs = format!("{}/secret", canary_abs(&sb.root));
        let tar = raw_tar(&[Raw::file(&abs, b"pwned")]);
        let opts = ApplyOptions {
            resolve: mode,
            ..ApplyOptions::default()
        };
        apply_layer_with(&sb.root, &tar[..], &opts).unwrap();
        sb.assert_canary_intact("absolute canary path");
        let inside = sb.root.join(abs.trim_start_matches('/'));
        assert_eq!(fs::read(inside).unwrap(), b"pwned");
    }
}

#[test]
fn symlinks_in_parent_chain() {
    let cases = vec![
        Case {
            name: "a -> / then a/x",
            entries: vec![Raw::symlink("a", "/"), Raw::file("a/x", b"inside")],
            must_fail: false,
            check: Some(|root| assert_eq!(fs::read(root.join("x")).unwrap(), b"inside")),
        },
        Case {
            name: "a -> ../.. then a/canary/secret",
            entries: vec![
                Raw::symlink("a", "../.."),
                Raw::file("a/canary/secret", b"pwned"),
            ],
            must_fail: false,
            check: Some(|root| assert_eq!(fs::read(root.join("canary/secret")).unwrap(), b"pwned")),
        },
        Case {
            name: "a -> .. then a/canary/secret",
            entries: vec![
                Raw::symlink("a", ".."),
                Raw::file("a/canary/secret", b"pwned"),
            ],
            must_fail: false,
            check: None,
        },
        Case {
            name: "chain b -> a/.., a -> ../../.. then b/canary/sub/deep",
            entries: vec![
                Raw::dir("d/", 0o755),
                Raw::symlink("d/a", "../../.."),
                Raw::symlink("b", "d/a/.."),
                Raw::file("b/canary/sub/deep", b"pwned"),
            ],
            must_fail: false,
            check: Some(|root| {
                assert_eq!(fs::read(root.join("canary/sub/deep")).unwrap(), b"pwned")
            }),
        },
        Case {
            name: "symlink loop",
            entries: vec![Raw::symlink("loop", "loop"), Raw::file("loop/x", b"x")],
            must_fail: true,
            check: None,
        },
        Case {
            name: "file as parent",
            entries: vec![Raw::file("f", b"x"), Raw::file("f/x", b"x")],
            must_fail: true,
            check: None,
        },
        Case {
            name: "symlink to file as parent",
            entries: vec![
                Raw::file("f", b"x"),
                Raw::symlink("s", "f"),
                Raw::file("s/x", b"x"),
            ],
            must_fail: true,
            check: None,
        },
    ];
    run_all(&cases);

    // Symlinks to the canary's absolute path.
    for mode in [ResolveMode::Auto, ResolveMode::Manual] {
        let sb = Sandbox::new();
        let abs = canary_abs(&sb.root);
        let secret = format!("{abs}/secret");
        let cases = vec![
            Case {
                name: "c -> /abs/canary then c/secret",
                entries: vec![Raw::symlink("c", &abs), Raw::file("c/secret", b"pwned")],
                must_fail: false,
                check: None,
            },
            Case {
                name: "c -> /abs/canary then c/sub/ dir chmod",
                entries: vec![Raw::symlink("c", &abs), Raw::dir("c/sub/", 0o777)],
                must_fail: false,
                check: None,
            },
            Case {
                name: "s -> /abs/canary/secret then file s",
                entries: vec![Raw::symlink("s", &secret), Raw::file("s", b"pwned")],
                must_fail: false,
                check: Some(|root| {
                    let m = fs::symlink_metadata(root.join("s")).unwrap();
                    assert!(m.is_file());
                    assert_eq!(fs::read(root.join("s")).unwrap(), b"pwned");
                }),
            },
        ];
        for case in &cases {
            run(case, mode, None);
        }
    }
}

#[test]
fn symlink_then_same_name_entries_never_follow() {
    for mode in [ResolveMode::Auto, ResolveMode::Manual] {
        let sb = Sandbox::new();
        let abs = canary_abs(&sb.root);
        let secret = format!("{abs}/secret");
        let cases = vec![
            // Directory entry over a symlink to an outside directory, with a
            // mode: the symlink is replaced, the canary is not chmod'ed.
            Case {
                name: "symlink then dir then chmod",
                entries: vec![
                    Raw::symlink("d", &abs),
                    Raw::dir("d/", 0o777),
                    Raw::dir("d", 0o700),
                ],
                must_fail: false,
                check: Some(|root| {
                    let m = fs::symlink_metadata(root.join("d")).unwrap();
                    assert!(m.is_dir());
                    assert_eq!(m.mode() & 0o7777, 0o700);
                }),
            },
            Case {
                name: "symlink then fifo of the same name",
                entries: vec![
                    Raw::symlink("f", &secret),
                    Raw {
                        name: b"f",
                        kind: tar::EntryType::Fifo,
                        link: b"",
                        mode: 0o777,
                        data: b"",
                    },
                ],
                must_fail: false,
                check: None,
            },
            Case {
                name: "symlink then char device of the same name",
                entries: vec![
                    Raw::symlink("f", &secret),
                    Raw {
                        name: b"f",
                        kind: tar::EntryType::Char,
                        link: b"",
                        mode: 0o777,
                        data: b"",
                    },
                ],
                must_fail: false,
                check: None,
            },
            Case {
                name: "symlink then symlink of the same name",
                entries: vec![Raw::symlink("f", &secret), Raw::symlink("f", &abs)],
                must_fail: false,
                check: Some(|root| {
                    assert!(fs::symlink_metadata(root.join("f")).unwrap().is_symlink())
                }),
            },
            Case {
                name: "hardlink to outside-pointing symlink, then write the link name",
                entries: vec![
                    Raw::symlink("s", &secret),
                    Raw::hardlink("l", "s"),
                    Raw::file("l", b"pwned"),
                ],
                must_fail: false,
                check: Some(|root| {
                    assert!(fs::symlink_metadata(root.join("s")).unwrap().is_symlink());
                    assert_eq!(fs::read(root.join("l")).unwrap(), b"pwned");
                }),
            },
        ];
        for case in &cases {
            run(case, mode, None);
        }
    }
}

#[test]
fn hardlinks_stay_inside() {
    let cases = vec![
        Case {
            name: "hardlink to ../../etc/x",
            entries: vec![Raw::hardlink("l", "../../etc/x")],
            must_fail: true,
            check: None,
        },
        Case {
            name: "hardlink to ../canary/secret",
            entries: vec![Raw::hardlink("l", "../canary/secret")],
            must_fail: true,
            check: None,
        },
        Case {
            name: "hardlink to absolute /etc/passwd (not inside root)",
            entries: vec![Raw::hardlink("l", "/etc/passwd")],
            must_fail: true,
            check: None,
        },
        Case {
            name: "hardlink through symlinked parent to /",
            entries: vec![Raw::symlink("a", "/"), Raw::hardlink("l", "a/etc/passwd")],
            must_fail: true,
            check: None,
        },
        Case {
            name: "hardlink to a directory",
            entries: vec![Raw::dir("d/", 0o755), Raw::hardlink("l", "d")],
            must_fail: true,
            check: None,
        },
        Case {
            name: "hardlink to itself",
            entries: vec![Raw::file("f", b"x"), Raw::hardlink("f", "f")],
            must_fail: true,
            check: None,
        },
        Case {
            name: "hardlink to the root",
            entries: vec![Raw::hardlink("l", "/")],
            must_fail: true,
            check: None,
        },
        Case {
            name: "absolute hardlink target inside root",
            entries: vec![Raw::file("t", b"target"), Raw::hardlink("l", "/t")],
            must_fail: false,
            check: Some(|root| {
                assert_eq!(
                    fs::metadata(root.join("l")).unwrap().ino(),
                    fs::metadata(root.join("t")).unwrap().ino()
                )
            }),
        },
        Case {
            name: "hardlink to a symlink links the symlink itself",
            entries: vec![Raw::symlink("s", "/etc/passwd"), Raw::hardlink("l", "s")],
            must_fail: false,
            check: Some(|root| {
                let m = fs::symlink_metadata(root.join("l")).unwrap();
                assert!(m.is_symlink());
                assert_eq!(m.nlink(), 2);
            }),
        },
    ];
    run_all(&cases);

    for mode in [ResolveMode::Auto, ResolveMode::Manual] {
        let sb = Sandbox::new();
        let abs = canary_abs(&sb.root);
        let secret = format!("{abs}/secret");
        let cases = vec![
            Case {
                name: "hardlink to the canary's absolute path",
                entries: vec![Raw::hardlink("l", &secret)],
                must_fail: true,
                check: None,
            },
            Case {
                name: "hardlink through symlink to canary dir, then overwrite",
                entries: vec![
                    Raw::symlink("c", &abs),
                    Raw::hardlink("l", "c/secret"),
                    Raw::file("l", b"pwned"),
                ],
                must_fail: true,
                check: None,
            },
        ];
        for case in &cases {
            run(case, mode, None);
        }
    }
}

#[test]
fn whiteouts_stay_inside() {
    let cases = vec![
        Case {
            name: ".wh..",
            entries: vec![Raw::file(".wh..", b"")],
            must_fail: true,
            check: None,
        },
        Case {
            name: ".wh.",
            entries: vec![Raw::file(".wh.", b"")],
            must_fail: true,
            check: None,
        },
        Case {
            name: ".wh...",
            entries: vec![Raw::file(".wh...", b"")],
            must_fail: true,
            check: None,
        },
        Case {
            name: "d/.wh..",
            entries: vec![Raw::dir("d/", 0o755), Raw::file("d/.wh..", b"")],
            must_fail: true,
            check: None,
        },
        Case {
            name: "../.wh.canary",
            entries: vec![Raw::file("../.wh.canary", b"")],
            must_fail: true,
            check: None,
        },
        Case {
            name: "a -> .. then a/.wh.canary",
            entries: vec![Raw::symlink("a", ".."), Raw::file("a/.wh.canary", b"")],
            must_fail: false,
            check: None,
        },
        Case {
            name: "a -> ../../.. then a/.wh.canary",
            entries: vec![
                Raw::symlink("a", "../../.."),
                Raw::file("a/.wh.canary", b""),
            ],
            must_fail: false,
            check: None,
        },
        Case {
            name: "a -> / then a/.wh..wh..opq",
            entries: vec![Raw::symlink("a", "/"), Raw::file("a/.wh..wh..opq", b"")],
            must_fail: false,
            check: None,
        },
    ];
    for mode in [ResolveMode::Auto, ResolveMode::Manual] {
        for format in [WhiteoutFormat::Remove, WhiteoutFormat::Overlay] {
            for case in &cases {
                run_with(case, mode, None, format);
            }
        }
    }

    for (mode, format) in [
        (ResolveMode::Auto, WhiteoutFormat::Remove),
        (ResolveMode::Manual, WhiteoutFormat::Remove),
        (ResolveMode::Auto, WhiteoutFormat::Overlay),
        (ResolveMode::Manual, WhiteoutFormat::Overlay),
    ] {
        let sb = Sandbox::new();
        let abs = canary_abs(&sb.root);
        let cases = vec![
            Case {
                name: "c -> /abs/canary then c/.wh.secret",
                entries: vec![Raw::symlink("c", &abs), Raw::file("c/.wh.secret", b"")],
                must_fail: false,
                check: None,
            },
            Case {
                name: "c -> /abs/canary then c/.wh..wh..opq",
                entries: vec![Raw::symlink("c", &abs), Raw::file("c/.wh..wh..opq", b"")],
                must_fail: false,
                check: None,
            },
            Case {
                name: "c -> /abs/canary then c/sub/.wh.deep",
                entries: vec![Raw::symlink("c", &abs), Raw::file("c/sub/.wh.deep", b"")],
                must_fail: false,
                check: None,
            },
        ];
        for case in &cases {
            run_with(case, mode, None, format);
        }
    }
}

#[test]
fn lower_layer_symlinks_are_resolved_in_root() {
    // The dangerous symlink comes from an earlier layer.
    for mode in [ResolveMode::Auto, ResolveMode::Manual] {
        let sb = Sandbox::new();
        let abs = canary_abs(&sb.root);
        let base = vec![Raw::symlink("etc", &abs), Raw::symlink("up", "../..")];
        let case = Case {
            name: "lower symlinks",
            entries: vec![
                Raw::file("etc/secret", b"pwned"),
                Raw::file("up/canary/secret", b"pwned"),
                Raw::dir("up/canary/", 0o777),
                Raw::file("etc/.wh.secret", b""),
            ],
            must_fail: false,
            check: None,
        };
        run(&case, mode, Some(&base));
    }
}

#[test]
fn devices_are_allowed_inside_only() {
    let dev = |name: &'static str| Raw {
        name: name.as_bytes(),
        kind: tar::EntryType::Char,
        link: b"",
        mode: 0o666,
        data: b"",
    };
    let cases = vec![
        Case {
            name: "device outside",
            entries: vec![dev("../canary/null")],
            must_fail: true,
            check: None,
        },
        Case {
            name: "device inside",
            entries: vec![dev("dev/null")],
            must_fail: false,
            check: Some(|root| {
                use std::os::unix::fs::FileTypeExt;
                assert!(fs::symlink_metadata(root.join("dev/null"))
                    .unwrap()
                    .file_type()
                    .is_char_device())
            }),
        },
    ];
    run_all(&cases);
}

#[test]
fn malformed_archives_error_without_panicking() {
    let sb = Sandbox::new();
    let good = raw_tar(&[Raw::file("a", b"hello"), Raw::file("b", b"world")]);
    // Every truncation and many single-byte corruptions.
    for cut in (0..good.len()).step_by(97) {
        let _ = engine_layers::apply_layer(&sb.root, &good[..cut], Some(Compression::None));
    }
    let scratch = tempdir();
    for i in (0..1024).step_by(7) {
        let mut bad = good.clone();
        bad[i] ^= 0x5a;
        let dst = scratch.path().join(format!("c{i}"));
        fs::create_dir(&dst).unwrap();
        let _ = engine_layers::apply_layer(&dst, &bad[..], None);
    }
    // Garbage with compression magic.
    for junk in [
        &[0x1f, 0x8b, 8, 0, 1, 2, 3][..],
        &[0x28, 0xb5, 0x2f, 0xfd, 9, 9, 9][..],
    ] {
        assert!(engine_layers::apply_layer(&sb.root, junk, None).is_err());
    }
    // Unsupported entry types are reported with their path.
    let mut t = raw_tar(&[Raw::file("weird", b"")]);
    t[156] = b'V';
    let mut h = tar::Header::from_byte_slice(&t[..512]).clone();
    h.set_cksum();
    t[..512].copy_from_slice(h.as_bytes());
    match engine_layers::apply_layer(&sb.root, &t[..], None) {
        Err(Error::UnsupportedEntry { path, .. }) => assert_eq!(path, "weird"),
        other => panic!("unexpected {other:?}"),
    }
    sb.assert_canary_intact("malformed");
}
