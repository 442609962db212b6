//! Content hashes of what a step reads from a local context: exactly the
//! files its sources select, after `.dockerignore`, by path, type, mode,
//! owner, link target and content (never mtime), files hashed in parallel.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use engine_ir::ignore::IgnorePatterns;
use rayon::prelude::*;

use crate::copy::{self, CopyError};

enum Item {
    File(String, fs::Metadata, PathBuf),
    Other(String, fs::Metadata, PathBuf),
}

/// Hash the selection of `sources` under `root`.
pub fn hash_selection(
    root: &Path,
    ignore: Option<&IgnorePatterns>,
    sources: &[String],
) -> Result<String, CopyError> {
    let src = copy::Source {
        src_root: root,
        ignore,
    };
    let selected = copy::selected(src, sources)?;
    let mut items = Vec::new();
    for (rel, path) in selected {
        collect(root, ignore, &rel, &path, &mut items).map_err(|e| CopyError::Io {
            path: rel.clone(),
            source: e,
        })?;
    }
    let hashes: Vec<io::Result<[u8; 32]>> = items.par_iter().map(hash_item).collect();
    let mut h = blake3::Hasher::new();
    h.update(b"engine/context-selection/v1\0");
    for (i, r) in hashes.into_iter().enumerate() {
        let bytes = r.map_err(|e| CopyError::Io {
            path: format!("item {i}"),
            source: e,
        })?;
        h.update(&bytes);
    }
    Ok(h.finalize().to_hex().to_string())
}

fn collect(
    root: &Path,
    ignore: Option<&IgnorePatterns>,
    rel: &str,
    path: &Path,
    out: &mut Vec<Item>,
) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if meta.is_dir() {
        out.push(Item::Other(rel.to_string(), meta, path.to_path_buf()));
        let mut names: Vec<_> = fs::read_dir(path)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for n in names {
            let child_rel = format!("{}/{}", rel.trim_end_matches('/'), n.to_string_lossy());
            let child = path.join(&n);
            let ctx_rel = child
                .strip_prefix(root)
                .map(|r| r.to_string_lossy().into_owned())
                .unwrap_or_default();
            if let Some(ig) = ignore {
                if ig.is_excluded(&ctx_rel) {
                    let is_dir = fs::symlink_metadata(&child)
                        .map(|m| m.is_dir())
                        .unwrap_or(false);
                    if !(is_dir && ig.may_reinclude_under(&ctx_rel)) {
                        continue;
                    }
                }
            }
            collect(root, ignore, &child_rel, &child, out)?;
        }
    } else if meta.is_file() {
        out.push(Item::File(rel.to_string(), meta, path.to_path_buf()));
    } else {
        out.push(Item::Other(rel.to_string(), meta, path.to_path_buf()));
    }
    Ok(())
}

fn header(h: &mut blake3::Hasher, rel: &str, meta: &fs::Metadata) {
    h.update(&(rel.len() as u64).to_le_bytes());
    h.update(rel.as_bytes());
    h.update(&meta.mode().to_le_bytes());
    h.update(&meta.uid().to_le_bytes());
    h.update(&meta.gid().to_le_bytes());
}

fn hash_item(item: &Item) -> io::Result<[u8; 32]> {
    let mut h = blake3::Hasher::new();
    match item {
        Item::File(rel, meta, path) => {
            header(&mut h, rel, meta);
            h.update(&meta.len().to_le_bytes());
            let mut f = fs::File::open(path)?;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
        }
        Item::Other(rel, meta, path) => {
            header(&mut h, rel, meta);
            if meta.file_type().is_symlink() {
                let t = fs::read_link(path)?;
                h.update(t.as_os_str().as_encoded_bytes());
            }
            h.update(&meta.rdev().to_le_bytes());
        }
    }
    Ok(*h.finalize().as_bytes())
}
