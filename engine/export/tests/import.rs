//! The OCI-layout importer against hostile or unusual layouts.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use engine_export::{
    import_blobs, open_oci_layout, parse_oci_layout_ref, write_oci_layout_dir, BlobStore, Digest,
    Error, ExportOptions, Platform, TagOrDigest,
};
use serde_json::{json, Value};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// A hand-written layout.
struct Crafted {
    dir: PathBuf,
}

impl Crafted {
    fn new(dir: &Path) -> Self {
        fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Crafted {
            dir: dir.to_path_buf(),
        }
    }

    fn put(&self, media_type: &str, bytes: &[u8]) -> Value {
        let d = Digest::of(bytes);
        fs::write(self.dir.join("blobs/sha256").join(d.hex()), bytes).unwrap();
        json!({"mediaType": media_type, "digest": d.to_string(), "size": bytes.len()})
    }

    fn put_json(&self, media_type: &str, v: &Value) -> Value {
        self.put(media_type, &serde_json::to_vec(v).unwrap())
    }

    fn index(&self, manifests: Vec<Value>) {
        self.raw_index(&json!({"schemaVersion": 2, "manifests": manifests}));
    }

    fn raw_index(&self, v: &Value) {
        fs::write(self.dir.join("index.json"), serde_json::to_vec(v).unwrap()).unwrap();
    }

    /// A one-layer image for `arch`; returns the manifest descriptor.
    fn image(&self, arch: &str, variant: Option<&str>, docker: bool) -> Value {
        let (gz, diff_id) = gzip_layer(&[("f", arch.as_bytes())]);
        let layer = self.put(if docker { DOCKER_GZIP } else { OCI_GZIP }, &gz);
        let mut config = json!({
            "architecture": arch, "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
        });
        if let Some(v) = variant {
            config["variant"] = json!(v);
        }
        let config = self.put_json(if docker { DOCKER_CONFIG } else { OCI_CONFIG }, &config);
        let mt = if docker {
            DOCKER_MANIFEST
        } else {
            OCI_MANIFEST
        };
        let manifest =
            json!({"schemaVersion": 2, "mediaType": mt, "config": config, "layers": [layer]});
        self.put_json(mt, &manifest)
    }
}

fn with_platform(mut desc: Value, arch: &str, variant: Option<&str>) -> Value {
    desc["platform"] = json!({"os": "linux", "architecture": arch});
    if let Some(v) = variant {
        desc["platform"]["variant"] = json!(v);
    }
    desc
}

fn tagged(mut desc: Value, tag: &str) -> Value {
    desc["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
    desc
}

fn amd64() -> Platform {
    Platform::linux_amd64()
}

fn p(s: &str) -> Platform {
    Platform::parse(s).unwrap()
}

fn exported_layout(tmp: &Path) -> (PathBuf, BlobStore, engine_export::ExportResult) {
    let store = BlobStore::open(tmp.join("store")).unwrap();
    let image = small_image(&store, "amd64");
    let dir = tmp.join("layout");
    let res = write_oci_layout_dir(
        std::slice::from_ref(&image),
        &store,
        &dir,
        &ExportOptions::with_names(["app:1"]),
    )
    .unwrap();
    (dir, store, res)
}

fn make_writable(p: &Path) {
    let mut perm = fs::metadata(p).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perm.set_readonly(false);
    fs::set_permissions(p, perm).unwrap();
}

fn flip_last_byte(p: &Path) {
    make_writable(p);
    let mut data = fs::read(p).unwrap();
    let last = data.len() - 1;
    data[last] ^= 0x01;
    fs::write(p, data).unwrap();
}

#[test]
fn tampered_layer_is_refused_on_import() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _store, res) = exported_layout(tmp.path());
    let r = open_oci_layout(&dir, None, &amd64()).unwrap();
    let layer = r.layers[1].digest;
    flip_last_byte(&blob(&dir, &layer.to_string()));
    let target = BlobStore::open(tmp.path().join("target")).unwrap();
    let e = import_blobs(&r, &dir, &target).unwrap_err();
    assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");
    assert!(e.to_string().contains(&layer.to_string()), "{e}");
    assert!(
        !target.contains(&layer),
        "a bad blob never lands in the store"
    );
    assert_eq!(r.manifest_digest, res.manifest_digest());

    // Truncated: caught by size before hashing.
    let p = blob(&dir, &layer.to_string());
    let data = fs::read(&p).unwrap();
    fs::write(&p, &data[..data.len() - 3]).unwrap();
    let e = import_blobs(&r, &dir, &target).unwrap_err();
    assert!(matches!(e, Error::SizeMismatch { .. }), "{e}");
}

#[test]
fn tampered_documents_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _store, res) = exported_layout(tmp.path());
    // Config.
    let cfg = blob(&dir, &res.config_digest().unwrap().to_string());
    let saved = fs::read(&cfg).unwrap();
    flip_last_byte(&cfg);
    let e = open_oci_layout(&dir, None, &amd64()).unwrap_err();
    assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");
    assert!(
        e.to_string().contains("content does not match its digest"),
        "{e}"
    );
    fs::write(&cfg, &saved[..saved.len() - 1]).unwrap();
    let e = open_oci_layout(&dir, None, &amd64()).unwrap_err();
    assert!(matches!(e, Error::SizeMismatch { .. }), "{e}");
    fs::write(&cfg, &saved).unwrap();
    open_oci_layout(&dir, None, &amd64()).unwrap();
    // Manifest.
    flip_last_byte(&blob(&dir, &res.manifest_digest().to_string()));
    let e = open_oci_layout(&dir, None, &amd64()).unwrap_err();
    assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");
}

#[test]
fn malicious_digests_in_index_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Crafted::new(&tmp.path().join("l"));
    let good = c.image("amd64", None, false);
    // A file the traversal would reach.
    fs::write(tmp.path().join("secret"), b"{}").unwrap();
    for bad in [
        "sha256:../../../secret",
        "sha256:../../secret",
        "../../secret",
        "sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
        "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
        "sha256:/etc/passwd",
    ] {
        let mut d = good.clone();
        d["digest"] = json!(bad);
        c.index(vec![d]);
        let e = open_oci_layout(&c.dir, None, &amd64()).unwrap_err();
        assert!(matches!(e, Error::InvalidDocument { .. }), "{bad}: {e}");
        assert!(e.to_string().contains("invalid digest"), "{bad}: {e}");
    }
    // The same inside a manifest (layer) and inside a nested index.
    let manifest: Value =
        serde_json::from_slice(&fs::read(blob(&c.dir, good["digest"].as_str().unwrap())).unwrap())
            .unwrap();
    let mut evil = manifest.clone();
    evil["layers"][0]["digest"] = json!("sha256:../../../secret");
    let evil_desc = c.put_json(OCI_MANIFEST, &evil);
    c.index(vec![evil_desc]);
    let e = open_oci_layout(&c.dir, None, &amd64()).unwrap_err();
    assert!(e.to_string().contains("invalid digest"), "{e}");
    let evil_index = c.put_json(
        OCI_INDEX,
        &json!({"schemaVersion": 2, "manifests": [{"mediaType": OCI_MANIFEST, "digest": "sha256:..", "size": 1}]}),
    );
    c.index(vec![evil_index]);
    let e = open_oci_layout(&c.dir, None, &amd64()).unwrap_err();
    assert!(e.to_string().contains("invalid digest"), "{e}");

    // And in the reference.
    let e = parse_oci_layout_ref("oci-layout:///x@sha256:../../etc").unwrap_err();
    assert!(e.to_string().contains("invalid digest"), "{e}");
}

#[test]
fn symlinked_blob_outside_layout_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Crafted::new(&tmp.path().join("l"));
    let good = c.image("amd64", None, false);
    let digest = good["digest"].as_str().unwrap();
    let inside = blob(&c.dir, digest);
    let outside = tmp.path().join("outside-manifest");
    fs::rename(&inside, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &inside).unwrap();
    c.index(vec![good.clone()]);
    let e = open_oci_layout(&c.dir, None, &amd64()).unwrap_err();
    assert!(matches!(e, Error::PathEscape { .. }), "{e}");
    assert!(e.to_string().contains("outside oci layout"), "{e}");

    // A symlink that stays inside the layout is fine.
    fs::remove_file(&inside).unwrap();
    fs::rename(&outside, c.dir.join("real-manifest")).unwrap();
    std::os::unix::fs::symlink("../../real-manifest", &inside).unwrap();
    open_oci_layout(&c.dir, None, &amd64()).unwrap();
}

#[test]
fn ambiguous_and_mistyped_documents_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Crafted::new(&tmp.path().join("l"));
    let good = c.image("amd64", None, false);
    let manifest: Value =
        serde_json::from_slice(&fs::read(blob(&c.dir, good["digest"].as_str().unwrap())).unwrap())
            .unwrap();

    // A manifest that also has `manifests` (CVE-2021-41190).
    let mut both = manifest.clone();
    both["manifests"] = json!([good.clone()]);
    c.index(vec![c.put_json(OCI_MANIFEST, &both)]);
    let e = open_oci_layout(&c.dir, None, &amd64()).unwrap_err();
    assert!(e.to_string().contains("ambiguous document"), "{e}");
    // The same document presented as an index.
    c.index(vec![c.put_json(OCI_INDEX, &both)]);
    let e = open_oci_layout(&c.dir, None, &amd64()).unwrap_err();
    assert!(e.to_string().contains("ambiguous document"), "{e}");
    // index.json itself with layers.
    c.raw_index(&json!({"schemaVersion": 2, "manifests": [good.clone()], "layers": []}));
    let e = open_oci_layout(&c.dir, None, &amd64()).unwrap_err();
    assert!(e.to_string().contains("ambiguous document"), "{e}");

    // Descriptor says manifest, document says index.
    let idx = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [with_platform(good.clone(), "amd64", None)]});
    let mut d = c.put_json(OCI_INDEX, &idx);
    d["mediaType"] = json!(OCI_MANIFEST);
    c.index(vec![d]);
    let e = open_oci_layout(&c.dir, None, &amd64()).unwrap_err();
    assert!(e.to_string().contains("found an image index"), "{e}");
    // Descriptor says OCI manifest, document says Docker manifest.
    let mut docker = manifest.clone();
    docker["mediaType"] = json!(DOCKER_MANIFEST);
    c.index(vec![c.put_json(OCI_MANIFEST, &docker)]);
    let e = open_oci_layout(&c.dir, None, &amd64()).unwrap_err();
    assert!(
        e.to_string().contains("does not match the descriptor"),
        "{e}"
    );
    // An artifact config is not an image.
    let mut artifact = manifest.clone();
    artifact["config"]["mediaType"] = json!("application/vnd.example.thing+json");
    c.index(vec![c.put_json(OCI_MANIFEST, &artifact)]);
    let e = open_oci_layout(&c.dir, None, &amd64()).unwrap_err();
    assert!(matches!(e, Error::UnsupportedMediaType { .. }), "{e}");
    // Unknown layer media type.
    let mut weird = manifest.clone();
    weird["layers"][0]["mediaType"] = json!("application/x-zip");
    c.index(vec![c.put_json(OCI_MANIFEST, &weird)]);
    let e = open_oci_layout(&c.dir, None, &amd64()).unwrap_err();
    assert!(
        e.to_string()
            .contains("unsupported media type `application/x-zip` for layer"),
        "{e}"
    );
    // Layers and diff_ids disagree.
    let mut extra = manifest.clone();
    extra["layers"] = json!([manifest["layers"][0], manifest["layers"][0]]);
    c.index(vec![c.put_json(OCI_MANIFEST, &extra)]);
    let e = open_oci_layout(&c.dir, None, &amd64()).unwrap_err();
    assert!(
        e.to_string()
            .contains("2 layers but the config lists 1 diff ids"),
        "{e}"
    );
    // Schema version 1.
    let mut v1 = manifest.clone();
    v1["schemaVersion"] = json!(1);
    c.index(vec![c.put_json(OCI_MANIFEST, &v1)]);
    let e = open_oci_layout(&c.dir, None, &amd64()).unwrap_err();
    assert!(e.to_string().contains("unsupported schemaVersion 1"), "{e}");
}

#[test]
fn size_limits() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Crafted::new(&tmp.path().join("l"));
    let mut big = c.image("amd64", None, false);
    big["size"] = json!(DOC_LIMIT + 1);
    c.index(vec![big]);
    let e = open_oci_layout(&c.dir, None, &amd64()).unwrap_err();
    assert!(matches!(e, Error::TooLarge { .. }), "{e}");
    assert!(e.to_string().contains("limit 4194304"), "{e}");

    // An oversized index.json is refused without reading it all.
    let huge = vec![b' '; (DOC_LIMIT + 10) as usize];
    fs::write(c.dir.join("index.json"), huge).unwrap();
    let e = open_oci_layout(&c.dir, None, &amd64()).unwrap_err();
    assert!(e.to_string().contains("larger than 4194304 bytes"), "{e}");
}

#[test]
fn not_a_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let e = open_oci_layout(&tmp.path().join("nope"), None, &amd64()).unwrap_err();
    assert!(matches!(e, Error::NotALayout { .. }), "{e}");
    fs::create_dir_all(tmp.path().join("empty")).unwrap();
    let e = open_oci_layout(&tmp.path().join("empty"), None, &amd64()).unwrap_err();
    assert!(
        e.to_string()
            .contains("is not an oci layout: no oci-layout file"),
        "{e}"
    );
    let c = Crafted::new(&tmp.path().join("l"));
    let e = open_oci_layout(&c.dir, None, &amd64()).unwrap_err();
    assert!(e.to_string().contains("no index.json"), "{e}");
    fs::write(
        c.dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"2.0.0"}"#,
    )
    .unwrap();
    let e = open_oci_layout(&c.dir, None, &amd64()).unwrap_err();
    assert!(
        e.to_string().contains("unsupported imageLayoutVersion"),
        "{e}"
    );
    // Missing blob.
    let c = Crafted::new(&tmp.path().join("m"));
    let d = c.image("amd64", None, false);
    fs::remove_file(blob(&c.dir, d["digest"].as_str().unwrap())).unwrap();
    c.index(vec![d]);
    let e = open_oci_layout(&c.dir, None, &amd64()).unwrap_err();
    assert!(matches!(e, Error::MissingBlob { .. }), "{e}");
}

#[test]
fn docker_manifest_list_platform_selection() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Crafted::new(&tmp.path().join("l"));
    let amd = c.image("amd64", None, true);
    let arm64 = c.image("arm64", Some("v8"), true);
    let armv6 = c.image("arm", Some("v6"), true);
    let list = json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_LIST,
        "manifests": [
            with_platform(amd.clone(), "amd64", None),
            with_platform(arm64.clone(), "arm64", Some("v8")),
            with_platform(armv6.clone(), "arm", Some("v6")),
        ],
    });
    let list_desc = c.put_json(DOCKER_LIST, &list);
    c.index(vec![tagged(list_desc.clone(), "multi")]);
    let tag = TagOrDigest::Tag("multi".into());
    for (plat, want) in [
        ("linux/amd64", &amd),
        ("linux/arm64", &arm64),
        ("linux/arm64/v8", &arm64),
        ("linux/arm/v7", &armv6), // v7 runs v6
        ("linux/arm/v6", &armv6),
    ] {
        let r = open_oci_layout(&c.dir, Some(&tag), &p(plat)).unwrap();
        assert_eq!(r.manifest_digest.to_string(), want["digest"], "{plat}");
        assert_eq!(r.manifest.media_type.as_deref(), Some(DOCKER_MANIFEST));
        assert_eq!(r.index_digests.len(), 1);
    }
    let e = open_oci_layout(&c.dir, Some(&tag), &p("linux/arm/v5")).unwrap_err();
    assert!(matches!(e, Error::NoMatchingPlatform { .. }), "{e}");

    // Top-level entries with platforms and no names: chosen by platform.
    c.index(vec![
        with_platform(amd.clone(), "amd64", None),
        with_platform(arm64.clone(), "arm64", None),
    ]);
    let r = open_oci_layout(&c.dir, None, &p("linux/arm64")).unwrap();
    assert_eq!(r.manifest_digest.to_string(), arm64["digest"]);
    // Two tags with the same name, one per platform (allowed by the spec).
    c.index(vec![
        tagged(with_platform(amd.clone(), "amd64", None), "v1"),
        tagged(with_platform(arm64.clone(), "arm64", None), "v1"),
    ]);
    let r = open_oci_layout(&c.dir, Some(&TagOrDigest::Tag("v1".into())), &amd64()).unwrap();
    assert_eq!(r.manifest_digest.to_string(), amd["digest"]);
    // `latest` wins when no reference is given.
    c.index(vec![
        tagged(amd.clone(), "old"),
        tagged(arm64.clone(), "latest"),
    ]);
    let r = open_oci_layout(&c.dir, None, &p("linux/arm64")).unwrap();
    assert_eq!(r.manifest_digest.to_string(), arm64["digest"]);
}

#[test]
fn index_nesting_is_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Crafted::new(&tmp.path().join("l"));
    let mut desc = with_platform(c.image("amd64", None, false), "amd64", None);
    for _ in 0..6 {
        let idx = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [desc]});
        desc = with_platform(c.put_json(OCI_INDEX, &idx), "amd64", None);
    }
    c.index(vec![desc]);
    let e = open_oci_layout(&c.dir, None, &amd64()).unwrap_err();
    assert!(matches!(e, Error::TooDeep(_)), "{e}");
}

#[test]
fn oci_layout_references() {
    let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    assert_eq!(
        parse_oci_layout_ref("oci-layout:///src/img").unwrap(),
        (PathBuf::from("/src/img"), None)
    );
    assert_eq!(
        parse_oci_layout_ref("oci-layout://./img:v1.2").unwrap(),
        (
            PathBuf::from("./img"),
            Some(TagOrDigest::Tag("v1.2".into()))
        )
    );
    assert_eq!(
        parse_oci_layout_ref(&format!("oci-layout:///a:b/img@{d}")).unwrap(),
        (
            PathBuf::from("/a:b/img"),
            Some(TagOrDigest::Digest(Digest::parse(d).unwrap()))
        )
    );
    assert_eq!(
        parse_oci_layout_ref("/a:b/img").unwrap(),
        (PathBuf::from("/a:b/img"), None)
    );
    assert!(parse_oci_layout_ref("oci-layout://").is_err());
    assert!(parse_oci_layout_ref("oci-layout://x:-bad").is_err());
    assert!(parse_oci_layout_ref("oci-layout://x@sha256:abc").is_err());
}
