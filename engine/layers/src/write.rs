//! Deterministic layer tarballs from directory trees.
//!
//! Entry order is a depth-first walk with each directory's children sorted
//! by name bytes (what BuildKit/containerd produce with `filepath.Walk`):
//! parents come before children, and entry names are relative, without a
//! leading `./`, directories ending in `/`. The root directory itself is
//! not an entry.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};
pub use crate::options::{LayerDigests, LayerOptions};
use crate::walk::{host_path, is_whiteout_device, join_rel, read_dir_sorted, Emitter, Node};
use crate::xattrs;

const OVERLAY_REFUSED: [&[u8]; 4] = [
    b"trusted.overlay.redirect",
    b"trusted.overlay.metacopy",
    b"user.overlay.redirect",
    b"user.overlay.metacopy",
];

fn is_opaque(host: &Path, names: &[Vec<u8>]) -> Result<bool> {
    for key in [&b"trusted.overlay.opaque"[..], b"user.overlay.opaque"] {
        if names.iter().any(|n| n == key) {
            let v = xattrs::get(host, key).map_err(|e| Error::io("read xattrs of", host, e))?;
            if v.as_deref() == Some(b"y") {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

fn check_overlay(host: &Path, names: &[Vec<u8>]) -> Result<()> {
    for n in names {
        if OVERLAY_REFUSED.contains(&n.as_slice()) {
            return Err(Error::UnsupportedOverlay {
                path: host.to_path_buf(),
                name: String::from_utf8_lossy(n).into_owned(),
            });
        }
    }
    Ok(())
}

pub(crate) fn list_xattrs(host: &Path) -> Result<Vec<Vec<u8>>> {
    xattrs::list(host).map_err(|e| Error::io("list xattrs of", host, e))
}

struct Frame {
    rel: Vec<u8>,
    children: std::vec::IntoIter<Node>,
}

/// Streams `dir` as a layer into `out` and returns its digests.
///
/// Nothing is buffered beyond one directory listing per tree level and a
/// fixed-size copy buffer, so layers of any size can be written. `out` is
/// flushed but not otherwise finalised (e.g. not `fsync`ed).
pub fn write_layer(dir: &Path, out: impl Write, opts: &LayerOptions) -> Result<LayerDigests> {
    let mut em = Emitter::new(out, opts)?;
    walk_layer(dir, &mut em, opts)?;
    em.finish()
}

/// [`write_layer`] into a writer that hashes the blob itself (the blob
/// store's, which checks and names blobs by their digest): the compressed
/// bytes are not hashed a second time here. Returns the diff id and the
/// blob's size; the blob's digest is the writer's.
///
/// `out` is written by a second thread (see [`crate::pipe`]): the blob's
/// hash and write run beside the walk, the tar's hash and the compressor.
pub fn write_layer_unhashed(
    dir: &Path,
    mut out: impl Write + Send,
    opts: &LayerOptions,
) -> Result<(String, u64)> {
    let r: std::io::Result<Result<(String, u64)>> =
        crate::pipe::with_writer_thread(&mut out, |pipe| {
            Ok((|| {
                let mut em = Emitter::with_blob_hash(pipe, opts, false)?;
                walk_layer(dir, &mut em, opts)?;
                let (_, diff_id, size) = em.finish_parts()?;
                Ok((diff_id, size))
            })())
        });
    r.map_err(|e| Error::stream("write layer", e))?
}

fn walk_layer<W: Write>(dir: &Path, em: &mut Emitter<W>, opts: &LayerOptions) -> Result<()> {
    // The root path itself may be a symlink (it is the caller's path, not
    // part of the tree); nothing below it is ever followed.
    let root_meta = std::fs::metadata(dir).map_err(|e| Error::io("stat", dir, e))?;
    if !root_meta.is_dir() {
        return Err(Error::io(
            "open layer directory",
            dir,
            std::io::Error::from_raw_os_error(rustix::io::Errno::NOTDIR.raw_os_error()),
        ));
    }
    if opts.overlay_upper {
        let names = list_xattrs(dir)?;
        check_overlay(dir, &names)?;
        if is_opaque(dir, &names)? {
            em.marker(dir, b"", crate::WHITEOUT_OPAQUE.as_bytes())?;
        }
    }
    let mut stack = vec![Frame {
        rel: Vec::new(),
        children: read_dir_sorted(dir)?.into_iter(),
    }];
    while let Some(top) = stack.last_mut() {
        let Some(node) = top.children.next() else {
            stack.pop();
            continue;
        };
        let rel = join_rel(&top.rel, &node.name);
        let host = host_path(dir, &rel);
        if opts.overlay_upper && is_whiteout_device(&node.meta) {
            let parent = top.rel.clone();
            em.whiteout(&host, &parent, &node.name)?;
            continue;
        }
        let names = list_xattrs(&host)?;
        if opts.overlay_upper {
            check_overlay(&host, &names)?;
        }
        em.entry(&host, &rel, &node.meta, &names)?;
        if node.meta.is_dir() {
            if opts.overlay_upper && is_opaque(&host, &names)? {
                em.marker(&host, &rel, crate::WHITEOUT_OPAQUE.as_bytes())?;
            }
            let children = read_dir_sorted(&host)?.into_iter();
            stack.push(Frame { rel, children });
        }
    }
    Ok(())
}
