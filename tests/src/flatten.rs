//! Images as comparable data: every layer applied in order into a fresh
//! directory (whiteouts honoured by `engine_layers::apply_layer`), the tree
//! listed with `engine_layers::flatten`, and the config JSON.

use std::fs::{self, File};
use std::io::BufReader;
use std::path::{Path, PathBuf};

use engine_layers::{FileKind, FlatEntry};
use serde_json::Value;

/// One flattened image.
#[derive(Debug, Clone)]
pub struct Image {
    pub entries: Vec<FlatEntry>,
    pub config: Value,
    /// Number of layers applied.
    pub layers: usize,
}

fn read_json(p: &Path) -> Result<Value, String> {
    let bytes = fs::read(p).map_err(|e| format!("cannot read `{}`: {e}", p.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("`{}` is not JSON: {e}", p.display()))
}

fn apply_all(layers: &[PathBuf], root: &Path) -> Result<Vec<FlatEntry>, String> {
    fs::create_dir_all(root).map_err(|e| format!("cannot create `{}`: {e}", root.display()))?;
    for l in layers {
        let f = File::open(l).map_err(|e| format!("cannot open layer `{}`: {e}", l.display()))?;
        engine_layers::apply_layer(root, BufReader::new(f), None)
            .map_err(|e| format!("cannot apply layer `{}`: {e}", l.display()))?;
    }
    engine_layers::flatten(root).map_err(|e| format!("cannot list `{}`: {e}", root.display()))
}

fn blob_path(layout: &Path, digest: &str) -> Result<PathBuf, String> {
    let (alg, hex) = digest
        .split_once(':')
        .ok_or_else(|| format!("invalid digest `{digest}`"))?;
    Ok(layout.join("blobs").join(alg).join(hex))
}

const INDEX_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// Reads an OCI layout directory holding one image and applies its layers
/// into `root`.
pub fn from_oci_dir(layout: &Path, root: &Path) -> Result<Image, String> {
    let mut doc = read_json(&layout.join("index.json"))?;
    // Follow nested indexes down to the (first) manifest.
    let manifest = loop {
        let is_index = doc.get("manifests").is_some()
            || doc["mediaType"]
                .as_str()
                .is_some_and(|m| INDEX_TYPES.contains(&m));
        if !is_index {
            break doc;
        }
        let manifests = doc["manifests"].as_array().cloned().unwrap_or_default();
        if manifests.len() != 1 {
            return Err(format!(
                "`{}`: expected one manifest, found {}",
                layout.display(),
                manifests.len()
            ));
        }
        let digest = manifests[0]["digest"].as_str().unwrap_or_default();
        doc = read_json(&blob_path(layout, digest)?)?;
    };
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .ok_or_else(|| format!("`{}`: manifest without config", layout.display()))?;
    let config = read_json(&blob_path(layout, config_digest)?)?;
    let layers: Vec<PathBuf> = manifest["layers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|l| blob_path(layout, l["digest"].as_str().unwrap_or_default()))
        .collect::<Result<_, _>>()?;
    let entries = apply_all(&layers, root)?;
    Ok(Image {
        entries,
        config,
        layers: layers.len(),
    })
}

/// Reads a `docker save` archive holding one image: unpacked into
/// `scratch`, its layers applied into `root`.
pub fn from_docker_save(archive: &Path, scratch: &Path, root: &Path) -> Result<Image, String> {
    fs::create_dir_all(scratch)
        .map_err(|e| format!("cannot create `{}`: {e}", scratch.display()))?;
    let f = File::open(archive).map_err(|e| format!("cannot open `{}`: {e}", archive.display()))?;
    tar::Archive::new(BufReader::new(f))
        .unpack(scratch)
        .map_err(|e| format!("cannot unpack `{}`: {e}", archive.display()))?;
    let manifest = read_json(&scratch.join("manifest.json"))?;
    let images = manifest.as_array().cloned().unwrap_or_default();
    if images.len() != 1 {
        return Err(format!(
            "`{}`: expected one image in manifest.json, found {}",
            archive.display(),
            images.len()
        ));
    }
    let config_file = images[0]["Config"].as_str().unwrap_or_default();
    let config = read_json(&scratch.join(config_file))?;
    let layers: Vec<PathBuf> = images[0]["Layers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|l| scratch.join(l.as_str().unwrap_or_default()))
        .collect();
    let entries = apply_all(&layers, root)?;
    Ok(Image {
        entries,
        config,
        layers: layers.len(),
    })
}

fn kind_name(k: FileKind) -> &'static str {
    match k {
        FileKind::File => "file",
        FileKind::Dir => "dir",
        FileKind::Symlink => "symlink",
        FileKind::CharDevice => "chardev",
        FileKind::BlockDevice => "blockdev",
        FileKind::Fifo => "fifo",
        FileKind::Socket => "socket",
    }
}

/// One line describing an entry: kind, mode, owner and what identifies its
/// content.
pub fn describe(e: &FlatEntry) -> String {
    let mut s = format!("{} {:04o} {}:{}", kind_name(e.kind), e.mode, e.uid, e.gid);
    if let Some(h) = &e.sha256 {
        s.push_str(&format!(" sha256={}", &h[..12.min(h.len())]));
    }
    if let Some(t) = &e.link_target {
        s.push_str(&format!(" -> {}", t.display()));
    }
    if let Some(l) = &e.hardlink_to {
        s.push_str(&format!(" hardlink={}", l.display()));
    }
    s
}

/// Differences between two trees as stable, readable lines (mtimes and
/// sizes of directories are ignored; hardlink groups are compared through
/// the first path of each group).
pub fn diff(engine: &[FlatEntry], buildkit: &[FlatEntry]) -> Vec<String> {
    use std::collections::BTreeMap;
    let a: BTreeMap<&Path, &FlatEntry> = engine.iter().map(|e| (e.path.as_path(), e)).collect();
    let b: BTreeMap<&Path, &FlatEntry> = buildkit.iter().map(|e| (e.path.as_path(), e)).collect();
    let mut out = Vec::new();
    let mut paths: Vec<&Path> = a.keys().chain(b.keys()).copied().collect();
    paths.sort();
    paths.dedup();
    for p in paths {
        match (a.get(p), b.get(p)) {
            (Some(x), None) => out.push(format!(
                "fs /{}: only in engine ({})",
                p.display(),
                describe(x)
            )),
            (None, Some(y)) => out.push(format!(
                "fs /{}: only in buildkit ({})",
                p.display(),
                describe(y)
            )),
            (Some(x), Some(y)) => {
                let mut fields = Vec::new();
                if x.kind != y.kind {
                    fields.push(format!(
                        "kind engine={} buildkit={}",
                        kind_name(x.kind),
                        kind_name(y.kind)
                    ));
                }
                if x.mode != y.mode {
                    fields.push(format!(
                        "mode engine={:04o} buildkit={:04o}",
                        x.mode, y.mode
                    ));
                }
                if (x.uid, x.gid) != (y.uid, y.gid) {
                    fields.push(format!(
                        "owner engine={}:{} buildkit={}:{}",
                        x.uid, x.gid, y.uid, y.gid
                    ));
                }
                if x.sha256 != y.sha256 || x.size != y.size {
                    fields.push(format!(
                        "content engine={} bytes sha256={} buildkit={} bytes sha256={}",
                        x.size,
                        x.sha256.as_deref().unwrap_or("-"),
                        y.size,
                        y.sha256.as_deref().unwrap_or("-")
                    ));
                }
                if x.link_target != y.link_target {
                    fields.push(format!(
                        "link engine={:?} buildkit={:?}",
                        x.link_target, y.link_target
                    ));
                }
                if x.hardlink_to != y.hardlink_to {
                    fields.push(format!(
                        "hardlink engine={:?} buildkit={:?}",
                        x.hardlink_to, y.hardlink_to
                    ));
                }
                if x.rdev != y.rdev {
                    fields.push(format!("rdev engine={:?} buildkit={:?}", x.rdev, y.rdev));
                }
                if x.xattrs != y.xattrs {
                    let show = |v: &[(Vec<u8>, Vec<u8>)]| {
                        v.iter()
                            .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
                            .collect::<Vec<_>>()
                            .join(",")
                    };
                    fields.push(format!(
                        "xattrs engine=[{}] buildkit=[{}]",
                        show(&x.xattrs),
                        show(&y.xattrs)
                    ));
                }
                for f in fields {
                    out.push(format!("fs /{}: {f}", p.display()));
                }
            }
            (None, None) => {}
        }
    }
    out
}

/// The content of a regular file of a flattened tree, for messages.
pub fn file_text(root: &Path, path: &str) -> Option<String> {
    fs::read(root.join(path.trim_start_matches('/')))
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}
