//! The three exporters: structure, schema conformance, blob integrity,
//! determinism, and a round trip through the importer.

mod common;

use std::fs;

use common::*;
use engine_export::{
    import_blobs, open_oci_layout, write_docker_archive, write_oci_layout_dir,
    write_oci_layout_tar, BlobStore, ConfigSource, Digest, Error, ExportOptions, ImageToExport,
    LayerMediaType, Platform, TagOrDigest,
};
use serde_json::{json, Value};

fn opts(names: &[&str]) -> ExportOptions {
    ExportOptions::with_names(names.iter().copied())
}

#[test]
fn oci_layout_dir_is_valid_and_reopens_with_same_digests() {
    let tmp = tempfile::tempdir().unwrap();
    let store = BlobStore::open(tmp.path().join("store")).unwrap();
    let image = small_image(&store, "amd64");
    let out = tmp.path().join("layout");
    let res = write_oci_layout_dir(
        std::slice::from_ref(&image),
        &store,
        &out,
        &opts(&["example.com/team/app:v1", "app"]),
    )
    .unwrap();

    // Files and media types.
    assert_eq!(
        read_json(&out.join("oci-layout")),
        json!({"imageLayoutVersion": "1.0.0"})
    );
    let index = read_json(&out.join("index.json"));
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    let names: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["annotations"]["io.containerd.image.name"]
                    .as_str()
                    .unwrap(),
                e["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("example.com/team/app:v1", "v1"),
            ("docker.io/library/app:latest", "latest")
        ]
    );
    for e in entries {
        assert_eq!(e["mediaType"], "application/vnd.oci.image.manifest.v1+json");
        assert_eq!(e["digest"], res.manifest_digest().to_string());
        assert_eq!(
            e["platform"],
            json!({"architecture": "amd64", "os": "linux"})
        );
    }
    let manifest = read_json(&blob(&out, &res.manifest_digest().to_string()));
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    assert_eq!(
        manifest["config"]["digest"],
        res.config_digest().unwrap().to_string()
    );
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.title"],
        "small"
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    for (l, want) in layers.iter().zip(&image.layers) {
        assert_eq!(
            l["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        assert_eq!(l["digest"], want.digest.to_string());
        assert_eq!(l["size"], want.size);
    }

    // Integrity and conformance.
    assert_blobs_match_names(&out);
    let schemas = conformance();
    let n = check_layout(&out, schemas.as_ref());
    if schemas.is_some() {
        assert_eq!(n, 2 + 2 * 2, "oci-layout, index.json, 2×(manifest, config)");
    }
    // The config carries the labels, sorted (canonical JSON).
    let config_bytes = fs::read(blob(&out, &res.config_digest().unwrap().to_string())).unwrap();
    let text = String::from_utf8(config_bytes.clone()).unwrap();
    let l00 = text.find("org.example.label00").unwrap();
    let l19 = text.find("org.example.label19").unwrap();
    assert!(l00 < l19, "labels are sorted");
    assert!(text.find("\"443/tcp\"").unwrap() < text.find("\"53/udp\"").unwrap());

    // Re-open with the importer: same digests.
    for reference in [
        None,
        Some(TagOrDigest::Tag("v1".into())),
        Some(TagOrDigest::Tag("latest".into())),
        Some(TagOrDigest::Tag("example.com/team/app:v1".into())),
        Some(TagOrDigest::Digest(res.manifest_digest())),
    ] {
        // Two entries point at the same manifest: not ambiguous.
        let r = open_oci_layout(&out, reference.as_ref(), &Platform::linux_amd64())
            .unwrap_or_else(|e| panic!("{reference:?}: {e}"));
        assert_eq!(r.manifest_digest, res.manifest_digest());
        assert_eq!(r.config_descriptor.digest, res.config_digest().unwrap());
        assert_eq!(Digest::of(&r.config_bytes), res.config_digest().unwrap());
        assert_eq!(r.config_bytes, config_bytes);
        assert_eq!(r.layers.len(), 2);
        assert_eq!(r.layer_blobs().unwrap(), image.layers);
        assert_eq!(r.platform, Platform::linux_amd64());
        assert!(r.index_digests.is_empty());
    }
    // x86_64 is amd64.
    open_oci_layout(&out, None, &Platform::parse("linux/x86_64").unwrap()).unwrap();
    let e = open_oci_layout(&out, None, &Platform::parse("linux/arm64").unwrap()).unwrap_err();
    assert!(matches!(e, Error::PlatformMismatch { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("is for platform linux/amd64, not linux/arm64"),
        "{e}"
    );
    let e = open_oci_layout(
        &out,
        Some(&TagOrDigest::Tag("v2".into())),
        &Platform::linux_amd64(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::NoSuchImage { .. }), "{e}");
    assert!(e.to_string().contains("available: latest, v1"), "{e}");

    // Re-export from the resolved image with raw config bytes: identical.
    let r = open_oci_layout(&out, None, &Platform::linux_amd64()).unwrap();
    let store2 = BlobStore::open(tmp.path().join("store2")).unwrap();
    let stats = import_blobs(&r, &out, &store2).unwrap();
    assert_eq!((stats.copied, stats.skipped), (3, 0));
    for l in &image.layers {
        assert!(store2.verify(&l.digest).unwrap());
    }
    let stats = import_blobs(&r, &out, &store2).unwrap();
    assert_eq!((stats.copied, stats.skipped), (0, 3));
    let again = ImageToExport {
        config: ConfigSource::Raw(r.config_bytes.clone()),
        layers: r.layer_blobs().unwrap(),
        annotations: r.manifest.annotations.clone(),
        platform: r.platform.clone(),
    };
    let res2 =
        write_oci_layout_dir(&[again], &store2, &tmp.path().join("layout2"), &opts(&[])).unwrap();
    assert_eq!(res2.manifest_digest(), res.manifest_digest());
}

#[test]
fn exports_are_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    // Two independent stores and images built separately.
    let s1 = BlobStore::open(tmp.path().join("s1")).unwrap();
    let s2 = BlobStore::open(tmp.path().join("s2")).unwrap();
    let i1 = small_image(&s1, "amd64");
    let i2 = small_image(&s2, "amd64");
    assert_eq!(i1.config_bytes().unwrap(), i2.config_bytes().unwrap());
    let o = opts(&["app:1"]);

    let mut t1 = Vec::new();
    let mut t2 = Vec::new();
    let r1 = write_oci_layout_tar(std::slice::from_ref(&i1), &s1, &mut t1, &o).unwrap();
    let r2 = write_oci_layout_tar(std::slice::from_ref(&i2), &s2, &mut t2, &o).unwrap();
    assert_eq!(r1, r2);
    assert!(t1 == t2, "oci tars differ");

    let mut d1 = Vec::new();
    let mut d2 = Vec::new();
    write_docker_archive(&i1, &s1, &mut d1, &o).unwrap();
    write_docker_archive(&i2, &s2, &mut d2, &o).unwrap();
    assert!(d1 == d2, "docker archives differ");

    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    write_oci_layout_dir(std::slice::from_ref(&i1), &s1, &a, &o).unwrap();
    write_oci_layout_dir(std::slice::from_ref(&i2), &s2, &b, &o).unwrap();
    let files = |d: &std::path::Path| {
        let mut v: Vec<(String, Vec<u8>)> = Vec::new();
        v.push(("index.json".into(), fs::read(d.join("index.json")).unwrap()));
        v.push(("oci-layout".into(), fs::read(d.join("oci-layout")).unwrap()));
        let mut blobs: Vec<_> = fs::read_dir(d.join("blobs/sha256"))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().into_string().unwrap(),
                    fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        blobs.sort();
        v.extend(blobs);
        v
    };
    assert!(files(&a) == files(&b), "layout dirs differ");

    // The tar holds exactly the directory's files.
    let entries = read_tar(&t1);
    let from_tar: Vec<(String, Vec<u8>)> = tar_files(&entries)
        .into_iter()
        .map(|(k, v)| (k.trim_start_matches("blobs/sha256/").to_string(), v))
        .collect();
    let mut from_dir = files(&a);
    from_dir.sort();
    assert!(from_tar == from_dir, "tar and dir content differ");
}

#[test]
fn oci_tar_is_sorted_root_owned_and_timestamped() {
    let tmp = tempfile::tempdir().unwrap();
    let store = BlobStore::open(tmp.path().join("store")).unwrap();
    let image = small_image(&store, "amd64");
    for epoch in [None, Some(1_700_000_000u64)] {
        let o = ExportOptions {
            names: vec!["app:1".into()],
            source_date_epoch: epoch,
            oci_mediatypes: None,
            ..Default::default()
        };
        let mut out = Vec::new();
        let res = write_oci_layout_tar(std::slice::from_ref(&image), &store, &mut out, &o).unwrap();
        let entries = read_tar(&out);
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(names[0], "blobs/");
        assert_eq!(names[1], "blobs/sha256/");
        assert_eq!(&names[names.len() - 2..], ["index.json", "oci-layout"]);
        assert_eq!(
            names.len(),
            2 + 4 + 2,
            "dirs, 2 layers+config+manifest, 2 files"
        );
        for e in &entries {
            assert_eq!(e.mtime, epoch.unwrap_or(0), "{}", e.name);
            assert_eq!((e.uid, e.gid), (0, 0));
            let want_mode = if e.kind == tar::EntryType::Directory {
                0o755
            } else {
                0o644
            };
            assert_eq!(e.mode, want_mode);
        }
        let dir = tmp.path().join(format!("unpacked-{epoch:?}"));
        unpack_files(&entries, &dir);
        assert_blobs_match_names(&dir);
        check_layout(&dir, conformance().as_ref());
        let index = read_json(&dir.join("index.json"));
        let created = &index["manifests"][0]["annotations"]["org.opencontainers.image.created"];
        match epoch {
            Some(_) => assert_eq!(created, "2023-11-14T22:13:20Z"),
            None => assert!(created.is_null()),
        }
        let r = open_oci_layout(
            &dir,
            Some(&TagOrDigest::Tag("1".into())),
            &Platform::linux_amd64(),
        )
        .unwrap();
        assert_eq!(r.manifest_digest, res.manifest_digest());
    }
}

#[test]
fn docker_archive_has_manifest_json_and_oci_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let store = BlobStore::open(tmp.path().join("store")).unwrap();
    let image = small_image(&store, "amd64");
    let mut out = Vec::new();
    let res = write_docker_archive(
        &image,
        &store,
        &mut out,
        &opts(&["app:1", "example.com/team/app", "me/tool:dev"]),
    )
    .unwrap();
    let entries = read_tar(&out);
    let files = tar_files(&entries);
    let config_hex = res.config_digest().unwrap().hex();

    let manifest_json: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(
        manifest_json,
        json!([{
            "Config": format!("blobs/sha256/{config_hex}"),
            "RepoTags": ["app:1", "example.com/team/app:latest", "me/tool:dev"],
            "Layers": image.layers.iter().map(|l| format!("blobs/sha256/{}", l.digest.hex())).collect::<Vec<_>>(),
        }])
    );
    let repositories: Value = serde_json::from_slice(&files["repositories"]).unwrap();
    let top = image.layers[1].digest.hex();
    assert_eq!(
        repositories,
        json!({
            "app": {"1": top},
            "example.com/team/app": {"latest": top},
            "me/tool": {"dev": top},
        })
    );
    // Every manifest.json path is in the archive and matches its digest.
    for p in std::iter::once(&manifest_json[0]["Config"])
        .chain(manifest_json[0]["Layers"].as_array().unwrap())
    {
        let p = p.as_str().unwrap();
        let data = &files[p];
        assert_eq!(
            Digest::of(data).hex(),
            p.trim_start_matches("blobs/sha256/")
        );
    }

    // Docker media types, as BuildKit's docker exporter writes by default.
    let dir = tmp.path().join("unpacked");
    unpack_files(&entries, &dir);
    assert_blobs_match_names(&dir);
    check_layout(&dir, conformance().as_ref());
    let index = read_json(&dir.join("index.json"));
    assert_eq!(index["manifests"].as_array().unwrap().len(), 3);
    let m = &index["manifests"][0];
    assert_eq!(
        m["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        m["annotations"]["io.containerd.image.name"],
        "docker.io/library/app:1"
    );
    let manifest = read_json(&blob(&dir, m["digest"].as_str().unwrap()));
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.docker.container.image.v1+json"
    );
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    // The same config blob as the OCI export: the image ID is the same.
    let mut oci = Vec::new();
    let oci_res =
        write_oci_layout_tar(std::slice::from_ref(&image), &store, &mut oci, &opts(&[])).unwrap();
    assert_eq!(oci_res.config_digest(), res.config_digest());
    assert_ne!(oci_res.manifest_digest(), res.manifest_digest());

    // The importer accepts Docker media types too.
    let r = open_oci_layout(
        &dir,
        Some(&TagOrDigest::Tag("dev".into())),
        &Platform::linux_amd64(),
    )
    .unwrap();
    assert_eq!(r.manifest_digest, res.manifest_digest());
    assert_eq!(r.layer_blobs().unwrap(), image.layers);

    // Forced OCI media types.
    let mut forced = Vec::new();
    let o = ExportOptions {
        oci_mediatypes: Some(true),
        ..opts(&["app:1"])
    };
    let fres = write_docker_archive(&image, &store, &mut forced, &o).unwrap();
    assert_eq!(fres.manifest_digest(), oci_res.manifest_digest());
}

#[test]
fn zstd_layers_switch_docker_archive_to_oci_media_types() {
    let tmp = tempfile::tempdir().unwrap();
    let store = BlobStore::open(tmp.path().join("store")).unwrap();
    let mut image = small_image(&store, "amd64");
    // Not real zstd data: media types only.
    image.layers[1].media_type = LayerMediaType::TarZstd;
    let mut out = Vec::new();
    let res = write_docker_archive(&image, &store, &mut out, &opts(&["z:1"])).unwrap();
    assert_eq!(
        res.root.media_type,
        "application/vnd.oci.image.manifest.v1+json"
    );
    let files = tar_files(&read_tar(&out));
    let manifest: Value =
        serde_json::from_slice(&files[&format!("blobs/sha256/{}", res.manifest_digest().hex())])
            .unwrap();
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    assert_eq!(
        manifest["layers"][1]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
}

#[test]
fn multi_platform_layout_and_platform_selection() {
    let tmp = tempfile::tempdir().unwrap();
    let store = BlobStore::open(tmp.path().join("store")).unwrap();
    let amd = small_image(&store, "amd64");
    let arm = small_image(&store, "arm64");
    let out = tmp.path().join("layout");
    let res = write_oci_layout_dir(
        &[amd.clone(), arm.clone()],
        &store,
        &out,
        &opts(&["multi:1"]),
    )
    .unwrap();
    assert_eq!(
        res.root.media_type,
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(res.images.len(), 2);
    assert_eq!(res.config_digest(), None);
    assert_blobs_match_names(&out);
    let schemas = conformance();
    let n = check_layout(&out, schemas.as_ref());
    if schemas.is_some() {
        assert_eq!(
            n,
            2 + 1 + 2 * 2,
            "layout, index.json, nested index, 2×(manifest, config)"
        );
    }
    let nested = read_json(&blob(&out, &res.root.digest.to_string()));
    let platforms: Vec<&Value> = nested["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["platform"])
        .collect();
    assert_eq!(
        platforms,
        [
            &json!({"architecture": "amd64", "os": "linux"}),
            &json!({"architecture": "arm64", "os": "linux"})
        ]
    );

    for (p, want) in [
        ("linux/amd64", &res.images[0]),
        ("linux/x86_64", &res.images[0]),
        ("linux/arm64", &res.images[1]),
        ("linux/arm64/v8", &res.images[1]),
        ("linux/aarch64", &res.images[1]),
    ] {
        let r = open_oci_layout(&out, None, &Platform::parse(p).unwrap()).unwrap();
        assert_eq!(r.manifest_digest, want.manifest.digest, "{p}");
        assert_eq!(r.config_descriptor.digest, want.config.digest, "{p}");
        assert_eq!(r.index_digests, vec![res.root.digest]);
        assert_eq!(r.platform, Platform::parse(p).unwrap());
    }
    let e = open_oci_layout(&out, None, &Platform::parse("linux/s390x").unwrap()).unwrap_err();
    assert!(matches!(e, Error::NoMatchingPlatform { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("available: linux/amd64, linux/arm64"),
        "{e}"
    );
    // A platform-specific manifest by digest, although not in index.json.
    let r = open_oci_layout(
        &out,
        Some(&TagOrDigest::Digest(res.images[1].manifest.digest)),
        &Platform::parse("linux/arm64").unwrap(),
    )
    .unwrap();
    assert_eq!(r.config_descriptor.digest, res.images[1].config.digest);
}

#[test]
fn layout_dir_merges_tags_and_refuses_foreign_dirs() {
    let tmp = tempfile::tempdir().unwrap();
    let store = BlobStore::open(tmp.path().join("store")).unwrap();
    let amd = small_image(&store, "amd64");
    let arm = small_image(&store, "arm64");
    let out = tmp.path().join("layout");
    let r1 = write_oci_layout_dir(
        std::slice::from_ref(&amd),
        &store,
        &out,
        &opts(&["a:one", "a:two"]),
    )
    .unwrap();
    let r2 =
        write_oci_layout_dir(std::slice::from_ref(&arm), &store, &out, &opts(&["a:two"])).unwrap();
    let index = read_json(&out.join("index.json"));
    let tags: Vec<(&str, &str)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .unwrap(),
                m["digest"].as_str().unwrap(),
            )
        })
        .collect();
    let (d1, d2) = (
        r1.manifest_digest().to_string(),
        r2.manifest_digest().to_string(),
    );
    assert_eq!(tags, [("one", d1.as_str()), ("two", d2.as_str())]);
    assert_blobs_match_names(&out);
    check_layout(&out, conformance().as_ref());
    let e = open_oci_layout(&out, None, &Platform::linux_amd64()).unwrap_err();
    assert!(matches!(e, Error::AmbiguousImage { .. }), "{e}");
    assert!(e.to_string().contains("one, two"), "{e}");

    let foreign = tmp.path().join("foreign");
    fs::create_dir_all(&foreign).unwrap();
    fs::write(foreign.join("precious.txt"), b"x").unwrap();
    let e =
        write_oci_layout_dir(std::slice::from_ref(&amd), &store, &foreign, &opts(&[])).unwrap_err();
    assert!(matches!(e, Error::NotALayout { .. }), "{e}");
}

#[test]
fn export_rejects_inconsistent_images() {
    let tmp = tempfile::tempdir().unwrap();
    let store = BlobStore::open(tmp.path().join("store")).unwrap();
    let image = small_image(&store, "amd64");
    let dir = tmp.path().join("o");

    let mut wrong_platform = image.clone();
    wrong_platform.platform = Platform::parse("linux/arm64").unwrap();
    let e = write_oci_layout_dir(&[wrong_platform], &store, &dir, &opts(&[])).unwrap_err();
    assert!(
        e.to_string().contains("config is for platform linux/amd64"),
        "{e}"
    );

    let mut missing_layer = image.clone();
    missing_layer.layers.pop();
    let e = write_oci_layout_dir(&[missing_layer], &store, &dir, &opts(&[])).unwrap_err();
    assert!(e.to_string().contains("rootfs.diff_ids"), "{e}");

    let mut bad_size = image.clone();
    bad_size.layers[0].size += 1;
    let e = write_oci_layout_dir(&[bad_size], &store, &dir, &opts(&[])).unwrap_err();
    assert!(matches!(e, Error::SizeMismatch { .. }), "{e}");

    let e = write_oci_layout_dir(
        std::slice::from_ref(&image),
        &store,
        &dir,
        &opts(&["Bad:Name!"]),
    )
    .unwrap_err();
    assert!(matches!(e, Error::InvalidName { .. }), "{e}");

    let e = write_oci_layout_dir(&[], &store, &dir, &opts(&[])).unwrap_err();
    assert!(e.to_string().contains("no image"), "{e}");

    // A layer corrupted in the store is caught while streaming.
    let mut out = Vec::new();
    let victim = store.path(&image.layers[0].digest);
    let mut perm = fs::metadata(&victim).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perm.set_readonly(false);
    fs::set_permissions(&victim, perm).unwrap();
    let mut data = fs::read(&victim).unwrap();
    let last = data.len() - 1;
    data[last] ^= 0xff;
    fs::write(&victim, &data).unwrap();
    let e = write_oci_layout_tar(std::slice::from_ref(&image), &store, &mut out, &opts(&[]))
        .unwrap_err();
    assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");
    let e = write_oci_layout_dir(
        std::slice::from_ref(&image),
        &store,
        &tmp.path().join("o2"),
        &opts(&[]),
    )
    .unwrap_err();
    assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");
}

#[test]
fn json_config_with_docker_fields_is_canonical() {
    let tmp = tempfile::tempdir().unwrap();
    let store = BlobStore::open(tmp.path().join("store")).unwrap();
    let l = add_layer(&store, &[("x", b"x")]);
    let config = json!({
        "os": "linux",
        "architecture": "amd64",
        "config": {"Healthcheck": {"Test": ["CMD", "true"]}, "Labels": {"b": "2", "a": "1"}},
        "rootfs": {"type": "layers", "diff_ids": [l.diff_id.to_string()]},
    });
    let image = ImageToExport {
        config: ConfigSource::Json(config),
        layers: vec![l],
        annotations: Default::default(),
        platform: Platform::linux_amd64(),
    };
    let bytes = image.config_bytes().unwrap();
    assert!(String::from_utf8(bytes.clone()).unwrap().starts_with(
        r#"{"architecture":"amd64","config":{"Healthcheck":{"Test":["CMD","true"]},"Labels":{"a":"1","b":"2"}},"os":"linux""#
    ));
    let dir = tmp.path().join("o");
    let res = write_oci_layout_dir(std::slice::from_ref(&image), &store, &dir, &opts(&[])).unwrap();
    assert_eq!(res.config_digest(), Some(Digest::of(&bytes)));
    check_layout(&dir, conformance().as_ref());
    let r = open_oci_layout(&dir, None, &Platform::linux_amd64()).unwrap();
    assert_eq!(
        r.config_bytes, bytes,
        "docker-only fields kept in the raw bytes"
    );
}

#[test]
fn schemas_are_actually_enforced() {
    let Some(s) = conformance() else { return };
    s.validate(
        "image-layout-schema.json",
        &json!({"imageLayoutVersion": "1.0.0"}),
    );
    assert!(s.rejects(
        "image-layout-schema.json",
        &json!({"imageLayoutVersion": "2"})
    ));
    assert!(s.rejects(
        "image-manifest-schema.json",
        &json!({"schemaVersion": 2, "layers": []})
    ));
    assert!(s.rejects(
        "image-index-schema.json",
        &json!({"schemaVersion": 2, "manifests": [{"mediaType": "x/y", "size": 1, "digest": "nocolon"}]})
    ));
    assert!(s.rejects(
        "config-schema.json",
        &json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}, "created": "yesterday"})
    ));
}

/// `index_annotations` put even one image under an OCI index that carries
/// them (the root, in index.json and in a push plan), deterministically.
#[test]
fn index_annotations_wrap_one_image_in_an_index() {
    let tmp = tempfile::tempdir().unwrap();
    let store = BlobStore::open(tmp.path().join("store")).unwrap();
    let image = small_image(&store, "amd64");
    let plain = write_oci_layout_dir(
        std::slice::from_ref(&image),
        &store,
        &tmp.path().join("plain"),
        &opts(&["app:1"]),
    )
    .unwrap();
    let mut o = opts(&["app:1"]);
    o.index_annotations
        .insert("org.opencontainers.image.title".into(), "app".into());
    let out = tmp.path().join("annotated");
    let res = write_oci_layout_dir(std::slice::from_ref(&image), &store, &out, &o).unwrap();
    assert_eq!(
        res.root.media_type,
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(res.images[0].manifest.digest, plain.root.digest);
    let index = read_json(&blob(&out, &res.root.digest.to_string()));
    assert_eq!(
        index["annotations"]["org.opencontainers.image.title"],
        "app"
    );
    assert_eq!(
        index["manifests"][0]["digest"],
        plain.root.digest.to_string()
    );
    let top = read_json(&out.join("index.json"));
    assert_eq!(top["manifests"][0]["digest"], res.root.digest.to_string());
    // The same everywhere, and every time.
    let mut tar = Vec::new();
    let again = write_oci_layout_tar(std::slice::from_ref(&image), &store, &mut tar, &o).unwrap();
    assert_eq!(again.root, res.root);
    let push = engine_export::plan_registry_push(std::slice::from_ref(&image), &store, &o).unwrap();
    assert_eq!(push.root.1, res.root.digest);
    assert_eq!(push.manifests.len(), 1);
    let mut archive = Vec::new();
    let docker = write_docker_archive(&image, &store, &mut archive, &o).unwrap();
    assert_eq!(
        docker.root.media_type,
        "application/vnd.oci.image.index.v1+json"
    );
}
