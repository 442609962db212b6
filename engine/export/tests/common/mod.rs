//! Shared helpers for the exporter/importer tests: hand-made gzip layers,
//! a small image, OCI JSON-schema validation, blob checks, tar reading.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use engine_export::{
    BlobStore, Digest, ImageToExport, LayerBlob, LayerMediaType, Platform, MAX_DOCUMENT_SIZE,
};
use flate2::write::GzEncoder;
use flate2::Compression;
use oci_spec::image::{
    Arch, ConfigBuilder, HistoryBuilder, ImageConfigurationBuilder, Os, RootFsBuilder,
};
use serde_json::Value;

/// An uncompressed tar of `files` (mtime 0, root-owned, 0644), gzip'd.
/// Returns (compressed, diff_id digest of the uncompressed tar).
pub fn gzip_layer(files: &[(&str, &[u8])]) -> (Vec<u8>, Digest) {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let diff_id = Digest::of(&tar);
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&tar).unwrap();
    (gz.finish().unwrap(), diff_id)
}

/// Put a layer made of `files` into the store.
pub fn add_layer(store: &BlobStore, files: &[(&str, &[u8])]) -> LayerBlob {
    let (gz, diff_id) = gzip_layer(files);
    let (digest, size) = store.put_bytes(&gz).unwrap();
    LayerBlob {
        digest,
        diff_id,
        size,
        media_type: LayerMediaType::TarGzip,
    }
}

/// A two-layer image for `arch` (`amd64` or `arm64`), with labels, env,
/// ports and volumes, so HashMap ordering in oci_spec would show up in the
/// config digest if it leaked.
pub fn small_image(store: &BlobStore, arch: &str) -> ImageToExport {
    let l1 = add_layer(
        store,
        &[
            ("etc/hello.txt", b"hello from layer one\n"),
            ("etc/arch", arch.as_bytes()),
        ],
    );
    let l2 = add_layer(store, &[("app/run.sh", b"#!/bin/sh\necho hi\n")]);
    let labels: HashMap<String, String> = (0..20)
        .map(|i| (format!("org.example.label{i:02}"), format!("value {i}")))
        .collect();
    let config = ConfigBuilder::default()
        .env(vec![
            "PATH=/usr/local/bin:/usr/bin:/bin".to_string(),
            "GREETING=hi".to_string(),
        ])
        .cmd(vec!["/app/run.sh".to_string()])
        .working_dir("/app")
        .labels(labels)
        .exposed_ports(vec![
            "80/tcp".to_string(),
            "443/tcp".to_string(),
            "53/udp".to_string(),
            "8080/tcp".to_string(),
        ])
        .volumes(vec!["/data".to_string(), "/cache".to_string()])
        .build()
        .unwrap();
    let arch_v = if arch == "arm64" {
        Arch::ARM64
    } else {
        Arch::Amd64
    };
    let image_config = ImageConfigurationBuilder::default()
        .created("2024-01-02T03:04:05Z")
        .architecture(arch_v)
        .os(Os::Linux)
        .config(config)
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(vec![l1.diff_id.to_string(), l2.diff_id.to_string()])
                .build()
                .unwrap(),
        )
        .history(vec![
            HistoryBuilder::default()
                .created("2024-01-02T03:04:05Z")
                .created_by("COPY etc /etc")
                .build()
                .unwrap(),
            HistoryBuilder::default()
                .created("2024-01-02T03:04:05Z")
                .created_by("COPY app /app")
                .build()
                .unwrap(),
        ])
        .build()
        .unwrap();
    let mut image = ImageToExport::new(
        image_config,
        vec![l1, l2],
        Platform::new("linux", arch, None),
    );
    image
        .annotations
        .insert("org.opencontainers.image.title".into(), "small".into());
    image
}

pub fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn blob(dir: &Path, digest: &str) -> PathBuf {
    let d = Digest::parse(digest).unwrap();
    dir.join("blobs/sha256").join(d.hex())
}

/// Every file under `blobs/sha256` hashes to its name.
pub fn assert_blobs_match_names(dir: &Path) {
    let mut n = 0;
    for e in fs::read_dir(dir.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        assert!(!name.starts_with(".tmp"), "temp file left: {name}");
        let data = fs::read(e.path()).unwrap();
        assert_eq!(Digest::of(&data).hex(), name, "blob {name} content");
        n += 1;
    }
    assert!(n > 0, "no blobs in {}", dir.display());
}

/// Check a descriptor against the blob it names: size and digest.
pub fn assert_descriptor(dir: &Path, desc: &Value) {
    let digest = desc["digest"].as_str().unwrap();
    let size = desc["size"].as_u64().unwrap();
    let data = fs::read(blob(dir, digest)).unwrap_or_else(|e| panic!("blob {digest}: {e}"));
    assert_eq!(data.len() as u64, size, "size of {digest}");
    assert_eq!(Digest::of(&data).to_string(), digest);
}

/// Walk a layout from index.json: every descriptor matches its blob, every
/// document validates against the OCI schemas (when available). Returns the
/// number of documents validated.
pub fn check_layout(dir: &Path, schemas: Option<&Conformance>) -> usize {
    let mut validated = 0;
    if let Some(s) = schemas {
        s.validate(
            "image-layout-schema.json",
            &read_json(&dir.join("oci-layout")),
        );
        s.validate(
            "image-index-schema.json",
            &read_json(&dir.join("index.json")),
        );
        validated += 2;
    }
    let index = read_json(&dir.join("index.json"));
    for m in index["manifests"].as_array().unwrap() {
        validated += walk(dir, m, schemas);
    }
    validated
}

fn walk(dir: &Path, desc: &Value, schemas: Option<&Conformance>) -> usize {
    assert_descriptor(dir, desc);
    let mt = desc["mediaType"].as_str().unwrap();
    let doc: Value =
        serde_json::from_slice(&fs::read(blob(dir, desc["digest"].as_str().unwrap())).unwrap())
            .unwrap();
    let mut validated = 0;
    if mt.ends_with("index.v1+json") || mt.ends_with("list.v2+json") {
        if let Some(s) = schemas {
            s.validate("image-index-schema.json", &doc);
            validated += 1;
        }
        for m in doc["manifests"].as_array().unwrap() {
            validated += walk(dir, m, schemas);
        }
    } else {
        if let Some(s) = schemas {
            s.validate("image-manifest-schema.json", &doc);
            validated += 1;
        }
        assert_descriptor(dir, &doc["config"]);
        let config = read_json(&blob(dir, doc["config"]["digest"].as_str().unwrap()));
        if let Some(s) = schemas {
            s.validate("config-schema.json", &config);
            validated += 1;
        }
        for l in doc["layers"].as_array().unwrap() {
            assert_descriptor(dir, l);
        }
    }
    validated
}

/// The OCI image-spec JSON schemas from the shared conformance data.
pub struct Conformance {
    dir: PathBuf,
}

#[path = "../../../../tests/src/conformance.rs"]
mod conformance_dir;

/// `$ENGINE_CONFORMANCE_DIR/oci-image-spec`, else
/// `<repo>/../shared/conformance/oci-image-spec`; missing: a failure, or
/// `None` with `ENGINE_SKIP_CONFORMANCE=1` (see tests/src/conformance.rs).
pub fn conformance() -> Option<Conformance> {
    let dir = conformance_dir::path("oci-image-spec/image-manifest-schema.json")?;
    Some(Conformance {
        dir: dir
            .parent()
            .expect("schema file has a folder")
            .to_path_buf(),
    })
}

/// Resolves every `$ref`/`id` URI (`https://opencontainers.org/schema/…/defs.json`)
/// to the file of the same name in the local schema folder. No network.
struct LocalRetriever {
    dir: PathBuf,
}

impl jsonschema::Retrieve for LocalRetriever {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let name = uri
            .path()
            .as_str()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let file = if name.ends_with(".json") {
            name
        } else {
            format!("{name}.json")
        };
        let path = self.dir.join(&file);
        let text = fs::read_to_string(&path)
            .map_err(|e| format!("schema {uri} -> {}: {e}", path.display()))?;
        Ok(serde_json::from_str(&text)?)
    }
}

impl Conformance {
    pub fn validate(&self, schema_file: &str, doc: &Value) {
        let schema = read_json(&self.dir.join(schema_file));
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft4)
            .should_validate_formats(true)
            .with_retriever(LocalRetriever {
                dir: self.dir.clone(),
            })
            .build(&schema)
            .unwrap_or_else(|e| panic!("compiling {schema_file}: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(doc)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{schema_file} rejects {doc}:\n{}",
            errors.join("\n")
        );
    }

    /// The schema really is strict: a broken document fails.
    pub fn rejects(&self, schema_file: &str, doc: &Value) -> bool {
        let schema = read_json(&self.dir.join(schema_file));
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft4)
            .should_validate_formats(true)
            .with_retriever(LocalRetriever {
                dir: self.dir.clone(),
            })
            .build(&schema)
            .unwrap();
        !validator.is_valid(doc)
    }
}

/// Entries of a tar, in archive order, with their headers' key fields.
pub struct TarEntry {
    pub name: String,
    pub kind: tar::EntryType,
    pub mtime: u64,
    pub uid: u64,
    pub gid: u64,
    pub mode: u32,
    pub data: Vec<u8>,
}

pub fn read_tar(bytes: &[u8]) -> Vec<TarEntry> {
    let mut a = tar::Archive::new(bytes);
    let mut out = Vec::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.push(TarEntry {
            name: String::from_utf8(h.path_bytes().to_vec()).unwrap(),
            kind: h.entry_type(),
            mtime: h.mtime().unwrap(),
            uid: h.uid().unwrap(),
            gid: h.gid().unwrap(),
            mode: h.mode().unwrap(),
            data,
        });
    }
    out
}

pub fn tar_files(entries: &[TarEntry]) -> BTreeMap<String, Vec<u8>> {
    entries
        .iter()
        .filter(|e| e.kind == tar::EntryType::Regular)
        .map(|e| (e.name.clone(), e.data.clone()))
        .collect()
}

/// Unpack the regular files of a tar into `dir`.
pub fn unpack_files(entries: &[TarEntry], dir: &Path) {
    for (name, data) in tar_files(entries) {
        let p = dir.join(&name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, data).unwrap();
    }
}

pub fn copy_dir(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap();
    for e in fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            fs::copy(e.path(), &to).unwrap();
        }
    }
}

pub const DOC_LIMIT: u64 = MAX_DOCUMENT_SIZE;
