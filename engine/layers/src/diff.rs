//! Copy-based layer diffs, for when overlayfs is not available.
//!
//! Semantics follow containerd's continuity "double walking" differ:
//! - a path only in `upper` is added (with everything below it);
//! - a path only in `lower` gets a `.wh.NAME` whiteout (one for a deleted
//!   directory, none for its children);
//! - a path in both is unchanged when it is the same inode, or when type,
//!   mode, owner, device number and carried xattrs match and, for
//!   non-directories, size and mtime seconds match and then: nanoseconds
//!   match, or (both nanoseconds zero, i.e. possibly truncated) the content
//!   or symlink target is equal. Symlink targets are always compared.
//!   Directory mtimes are ignored.
//! - a changed type replaces the old object (appliers remove it first).
//!
//! Like containerd's change writer, every emitted entry is preceded by its
//! (unchanged) parent directories, and hardlinks inside the emitted set are
//! kept, including unchanged paths that share an inode with a changed one.

use std::collections::{HashMap, HashSet};
use std::fs::Metadata;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::error::{Error, Result};
use crate::walk::{host_path, join_rel, read_dir_sorted, Emitted, Emitter, Node};
use crate::write::{list_xattrs, LayerDigests, LayerOptions};
use crate::xattrs;

/// One name of a directory in both trees.
struct Pair {
    name: Vec<u8>,
    lower: Option<Node>,
    upper: Option<Node>,
}

fn merge(lower: Vec<Node>, upper: Vec<Node>) -> Vec<Pair> {
    let mut out = Vec::with_capacity(upper.len().max(lower.len()));
    let mut l = lower.into_iter().peekable();
    let mut u = upper.into_iter().peekable();
    loop {
        let pick = match (l.peek(), u.peek()) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(a), Some(b)) => a.name.cmp(&b.name),
        };
        let pair = match pick {
            std::cmp::Ordering::Less => l.next().map(|n| Pair {
                name: n.name.clone(),
                lower: Some(n),
                upper: None,
            }),
            std::cmp::Ordering::Greater => u.next().map(|n| Pair {
                name: n.name.clone(),
                lower: None,
                upper: Some(n),
            }),
            std::cmp::Ordering::Equal => {
                let a = l.next();
                let b = u.next();
                b.map(|b| Pair {
                    name: b.name.clone(),
                    lower: a,
                    upper: Some(b),
                })
            }
        };
        if let Some(p) = pair {
            out.push(p);
        }
    }
    out
}

fn same_kind(a: &Metadata, b: &Metadata) -> bool {
    (a.mode() & 0o170000) == (b.mode() & 0o170000)
}

fn files_equal(a: &Path, b: &Path) -> Result<bool> {
    let mut fa = std::fs::File::open(a).map_err(|e| Error::io("open", a, e))?;
    let mut fb = std::fs::File::open(b).map_err(|e| Error::io("open", b, e))?;
    let mut ba = vec![0u8; 128 * 1024];
    let mut bb = vec![0u8; 128 * 1024];
    loop {
        let n = read_full(&mut fa, &mut ba).map_err(|e| Error::io("read", a, e))?;
        let m = read_full(&mut fb, &mut bb).map_err(|e| Error::io("read", b, e))?;
        if n != m || ba[..n] != bb[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match f.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// continuity's `sameFile`, plus all carried xattrs and symlink targets.
fn unchanged(lhost: &Path, l: &Metadata, uhost: &Path, u: &Metadata) -> Result<bool> {
    if l.dev() == u.dev() && l.ino() == u.ino() {
        return Ok(true);
    }
    if l.mode() != u.mode() || l.uid() != u.uid() || l.gid() != u.gid() || l.rdev() != u.rdev() {
        return Ok(false);
    }
    let lx = xattrs::read_kept(lhost).map_err(|e| Error::io("read xattrs of", lhost, e))?;
    let ux = xattrs::read_kept(uhost).map_err(|e| Error::io("read xattrs of", uhost, e))?;
    if lx != ux {
        return Ok(false);
    }
    if l.is_dir() {
        return Ok(true);
    }
    if l.len() != u.len() || l.mtime() != u.mtime() {
        return Ok(false);
    }
    if l.file_type().is_symlink() {
        let a = std::fs::read_link(lhost).map_err(|e| Error::io("read link", lhost, e))?;
        let b = std::fs::read_link(uhost).map_err(|e| Error::io("read link", uhost, e))?;
        return Ok(a == b && l.mtime_nsec() == u.mtime_nsec());
    }
    if l.mtime_nsec() == 0 && u.mtime_nsec() == 0 {
        // Possibly truncated timestamps: only the content can tell.
        if !l.is_file() || l.len() == 0 {
            return Ok(true);
        }
        return files_equal(lhost, uhost);
    }
    Ok(l.mtime_nsec() == u.mtime_nsec())
}

struct Differ<'a, W: Write> {
    upper_root: &'a Path,
    em: Emitter<W>,
    /// Directories already emitted (archive paths without trailing slash).
    added_dirs: HashSet<Vec<u8>>,
    /// Unchanged multiply-linked paths by inode, waiting for a changed peer.
    inode_refs: HashMap<(u64, u64), Vec<Vec<u8>>>,
}

impl<W: Write> Differ<'_, W> {
    /// Emits the unchanged ancestors of `rel` that are not in the stream yet.
    fn include_parents(&mut self, rel: &[u8]) -> Result<()> {
        let mut ends: Vec<usize> = rel
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'/')
            .map(|(i, _)| i)
            .collect();
        ends.retain(|&i| i > 0);
        for end in ends {
            let dir = &rel[..end];
            if self.added_dirs.contains(dir) {
                continue;
            }
            let host = host_path(self.upper_root, dir);
            let meta = std::fs::symlink_metadata(&host).map_err(|e| Error::io("stat", &host, e))?;
            let names = list_xattrs(&host)?;
            self.em.entry(&host, dir, &meta, &names)?;
            self.added_dirs.insert(dir.to_vec());
        }
        Ok(())
    }

    /// Emits an added or changed object.
    fn emit(&mut self, rel: &[u8], meta: &Metadata) -> Result<()> {
        self.include_parents(rel)?;
        let host = host_path(self.upper_root, rel);
        let names = list_xattrs(&host)?;
        let emitted = self.em.entry(&host, rel, meta, &names)?;
        if meta.is_dir() {
            self.added_dirs.insert(rel.to_vec());
        } else if meta.nlink() > 1 && matches!(emitted, Emitted::Entry) {
            if let Some(refs) = self.inode_refs.remove(&(meta.dev(), meta.ino())) {
                for r in refs {
                    self.include_parents(&r)?;
                    let rhost = host_path(self.upper_root, &r);
                    self.em.hardlink(&rhost, &r, rel, meta)?;
                }
            }
        }
        Ok(())
    }

    fn unchanged_link(&mut self, rel: &[u8], meta: &Metadata) -> Result<()> {
        if meta.is_dir() || meta.nlink() < 2 {
            return Ok(());
        }
        if let Some(src) = self.em.link_source(meta).map(<[u8]>::to_vec) {
            self.include_parents(rel)?;
            let host = host_path(self.upper_root, rel);
            self.em.hardlink(&host, rel, &src, meta)?;
        } else {
            self.inode_refs
                .entry((meta.dev(), meta.ino()))
                .or_default()
                .push(rel.to_vec());
        }
        Ok(())
    }

    fn whiteout(&mut self, dir: &[u8], name: &[u8]) -> Result<()> {
        let rel = join_rel(dir, name);
        self.include_parents(&rel)?;
        let host = host_path(self.upper_root, &rel);
        self.em.whiteout(&host, dir, name)
    }
}

/// Streams a layer holding the changes from `lower` to `upper` into `out`.
///
/// `opts.overlay_upper` is ignored (both trees are plain directories).
pub fn write_diff_layer(
    lower: &Path,
    upper: &Path,
    out: impl Write,
    opts: &LayerOptions,
) -> Result<LayerDigests> {
    let mut d = Differ {
        upper_root: upper,
        em: Emitter::new(out, opts)?,
        added_dirs: HashSet::new(),
        inode_refs: HashMap::new(),
    };
    struct Frame {
        rel: Vec<u8>,
        pairs: std::vec::IntoIter<Pair>,
    }
    let mut stack = vec![Frame {
        rel: Vec::new(),
        pairs: merge(read_dir_sorted(lower)?, read_dir_sorted(upper)?).into_iter(),
    }];
    while let Some(top) = stack.last_mut() {
        let Some(pair) = top.pairs.next() else {
            stack.pop();
            continue;
        };
        let dir = top.rel.clone();
        let rel = join_rel(&dir, &pair.name);
        let lhost = host_path(lower, &rel);
        let uhost = host_path(upper, &rel);
        match (pair.lower, pair.upper) {
            (Some(_), None) => d.whiteout(&dir, &pair.name)?,
            (None, None) => {}
            (lower_node, Some(u)) => {
                if u.meta.file_type().is_socket() {
                    // Not representable: make sure the old object is gone.
                    if lower_node.is_some() {
                        d.whiteout(&dir, &pair.name)?;
                    }
                    continue;
                }
                let lower_meta = lower_node.map(|n| n.meta);
                let changed = match &lower_meta {
                    None => true,
                    Some(l) if !same_kind(l, &u.meta) => true,
                    Some(l) => !unchanged(&lhost, l, &uhost, &u.meta)?,
                };
                if changed {
                    d.emit(&rel, &u.meta)?;
                } else {
                    d.unchanged_link(&rel, &u.meta)?;
                }
                if u.meta.is_dir() {
                    let lower_children = match &lower_meta {
                        Some(l) if l.is_dir() => read_dir_sorted(&lhost)?,
                        _ => Vec::new(),
                    };
                    let pairs = merge(lower_children, read_dir_sorted(&uhost)?).into_iter();
                    stack.push(Frame { rel, pairs });
                }
            }
        }
    }
    d.em.finish()
}
