//! Interoperability with real tools: skopeo reads all three outputs, umoci
//! unpacks the OCI layout, and our importer reads what skopeo writes.
//!
//! These tests FAIL (they do not skip) when `skopeo` or `umoci` is missing:
//! install them with `apt-get install -y skopeo umoci`.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use engine_export::{
    import_blobs, open_oci_layout, write_docker_archive, write_oci_layout_dir,
    write_oci_layout_tar, BlobStore, ExportOptions, ExportResult, ImageToExport, Platform,
    TagOrDigest,
};
use serde_json::Value;

fn require_tool(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "`{name}` is not installed, so this interoperability test cannot run; \
             install it with `apt-get install -y skopeo umoci`"
        )
    })
}

fn run<I, S>(tool: &Path, args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let out = Command::new(tool)
        .args(&args)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", tool.display()));
    assert!(
        out.status.success(),
        "{} {:?} failed ({}):\nstdout: {}\nstderr: {}",
        tool.display(),
        args,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn skopeo_inspect(skopeo: &Path, reference: &str) -> Value {
    let out = run(skopeo, ["inspect", reference]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("skopeo output {out}: {e}"))
}

struct Fixture {
    tmp: tempfile::TempDir,
    store: BlobStore,
    image: ImageToExport,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let store = BlobStore::open(tmp.path().join("store")).unwrap();
    let image = small_image(&store, "amd64");
    Fixture { tmp, store, image }
}

fn assert_inspect(v: &Value, f: &Fixture) {
    assert_eq!(v["Architecture"], "amd64", "{v}");
    assert_eq!(v["Os"], "linux", "{v}");
    assert_eq!(v["Labels"]["org.example.label07"], "value 7", "{v}");
    assert_eq!(v["Env"][1], "GREETING=hi", "{v}");
    assert_eq!(
        v["Layers"].as_array().unwrap().len(),
        f.image.layers.len(),
        "{v}"
    );
}

fn assert_same_layers(v: &Value, f: &Fixture) {
    let layers: Vec<String> = f
        .image
        .layers
        .iter()
        .map(|l| l.digest.to_string())
        .collect();
    assert_eq!(v["Layers"], serde_json::json!(layers), "{v}");
}

fn assert_digest(v: &Value, res: &ExportResult) {
    assert_eq!(v["Digest"], res.manifest_digest().to_string(), "{v}");
}

#[test]
fn skopeo_inspects_oci_layout_dir() {
    let skopeo = require_tool("skopeo");
    let f = fixture();
    let dir = f.tmp.path().join("layout");
    let res = write_oci_layout_dir(
        std::slice::from_ref(&f.image),
        &f.store,
        &dir,
        &ExportOptions::with_names(["app:v1"]),
    )
    .unwrap();
    let v = skopeo_inspect(&skopeo, &format!("oci:{}:v1", dir.display()));
    assert_inspect(&v, &f);
    assert_same_layers(&v, &f);
    assert_digest(&v, &res);
    // The raw manifest skopeo sees is our blob, byte for byte.
    let raw = run(
        &skopeo,
        ["inspect", "--raw", &format!("oci:{}:v1", dir.display())],
    );
    assert_eq!(
        raw.as_bytes(),
        fs::read(blob(&dir, &res.manifest_digest().to_string())).unwrap()
    );
    let config = run(
        &skopeo,
        [
            "inspect",
            "--config",
            "--raw",
            &format!("oci:{}:v1", dir.display()),
        ],
    );
    assert_eq!(
        config.as_bytes(),
        fs::read(blob(&dir, &res.config_digest().unwrap().to_string())).unwrap()
    );
}

#[test]
fn skopeo_inspects_oci_archive() {
    let skopeo = require_tool("skopeo");
    let f = fixture();
    let path = f.tmp.path().join("image.tar");
    let res = write_oci_layout_tar(
        std::slice::from_ref(&f.image),
        &f.store,
        fs::File::create(&path).unwrap(),
        &ExportOptions::with_names(["app:v1"]),
    )
    .unwrap();
    let v = skopeo_inspect(&skopeo, &format!("oci-archive:{}:v1", path.display()));
    assert_inspect(&v, &f);
    assert_same_layers(&v, &f);
    assert_digest(&v, &res);
}

#[test]
fn skopeo_inspects_docker_archive_and_copies_it_to_a_layout_we_can_import() {
    let skopeo = require_tool("skopeo");
    let f = fixture();
    let path = f.tmp.path().join("docker.tar");
    write_docker_archive(
        &f.image,
        &f.store,
        fs::File::create(&path).unwrap(),
        &ExportOptions::with_names(["example.com/app:v1"]),
    )
    .unwrap();
    let v = skopeo_inspect(&skopeo, &format!("docker-archive:{}", path.display()));
    assert_inspect(&v, &f);
    assert_eq!(v["RepoTags"], serde_json::json!([]), "{v}");
    let v = skopeo_inspect(
        &skopeo,
        &format!("docker-archive:{}:example.com/app:v1", path.display()),
    );
    assert_inspect(&v, &f);

    // skopeo decompresses docker-archive layers: the result must carry
    // the same diff ids, and our importer must read skopeo's layout.
    let copied = f.tmp.path().join("copied");
    run(
        &skopeo,
        [
            "--insecure-policy",
            "copy",
            "--quiet",
            &format!("docker-archive:{}", path.display()),
            &format!("oci:{}:copied", copied.display()),
        ],
    );
    let r = open_oci_layout(
        &copied,
        Some(&TagOrDigest::Tag("copied".into())),
        &Platform::linux_amd64(),
    )
    .unwrap();
    let diff_ids: Vec<_> = r.layer_blobs().unwrap().iter().map(|l| l.diff_id).collect();
    let want: Vec<_> = f.image.layers.iter().map(|l| l.diff_id).collect();
    assert_eq!(diff_ids, want);
    let store = BlobStore::open(f.tmp.path().join("import")).unwrap();
    let stats = import_blobs(&r, &copied, &store).unwrap();
    assert_eq!(stats.copied, 3);
}

#[test]
fn umoci_unpacks_oci_layout() {
    let umoci = require_tool("umoci");
    let f = fixture();
    let dir = f.tmp.path().join("layout");
    write_oci_layout_dir(
        std::slice::from_ref(&f.image),
        &f.store,
        &dir,
        &ExportOptions::with_names(["app:v1"]),
    )
    .unwrap();
    let bundle = f.tmp.path().join("bundle");
    // --rootless works for root too and does not chown.
    run(
        &umoci,
        [
            OsStr::new("unpack"),
            OsStr::new("--rootless"),
            OsStr::new("--image"),
            OsStr::new(&format!("{}:v1", dir.display())),
            bundle.as_os_str(),
        ],
    );
    let rootfs = bundle.join("rootfs");
    assert_eq!(
        fs::read_to_string(rootfs.join("etc/hello.txt")).unwrap(),
        "hello from layer one\n"
    );
    assert_eq!(
        fs::read_to_string(rootfs.join("etc/arch")).unwrap(),
        "amd64"
    );
    assert_eq!(
        fs::read_to_string(rootfs.join("app/run.sh")).unwrap(),
        "#!/bin/sh\necho hi\n"
    );
    // umoci turned our config into a runtime config.
    let runtime: Value =
        serde_json::from_slice(&fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        runtime["process"]["args"],
        serde_json::json!(["/app/run.sh"])
    );
    assert_eq!(runtime["process"]["cwd"], "/app");
}
