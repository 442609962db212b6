//! Shared pieces of the layer writers: sorted directory listings and the
//! emitter that turns filesystem objects into tar entries.

use std::collections::HashMap;
use std::fs::{File, Metadata, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::compress::Encoder;
use crate::digest::HashWriter;
use crate::error::{Error, Result};
use crate::options::{LayerDigests, LayerOptions};
use crate::tar_write::{self, Header, TarWriter};
use crate::xattrs;

/// One directory entry with its `lstat` metadata.
pub(crate) struct Node {
    pub(crate) name: Vec<u8>,
    pub(crate) meta: Metadata,
}

/// Lists `dir` (without `.`/`..`), sorted by name bytes.
pub(crate) fn read_dir_sorted(dir: &Path) -> Result<Vec<Node>> {
    let mut nodes = Vec::new();
    let rd = std::fs::read_dir(dir).map_err(|e| Error::io("read directory", dir, e))?;
    for ent in rd {
        let ent = ent.map_err(|e| Error::io("read directory", dir, e))?;
        let meta = ent
            .metadata()
            .map_err(|e| Error::io("stat", ent.path(), e))?;
        nodes.push(Node {
            name: ent.file_name().as_bytes().to_vec(),
            meta,
        });
    }
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(nodes)
}

/// `parent/name` for archive paths (parent may be empty).
pub(crate) fn join_rel(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(parent.len() + 1 + name.len());
    if !parent.is_empty() {
        p.extend_from_slice(parent);
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

pub(crate) fn host_path(root: &Path, rel: &[u8]) -> PathBuf {
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(std::ffi::OsStr::from_bytes(rel))
    }
}

pub(crate) fn is_whiteout_device(meta: &Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

type Sink<W> = HashWriter<Encoder<HashWriter<BufWriter<W>>>>;

/// Writes tar entries for filesystem objects through the compression and
/// hashing chain, tracking hardlinks.
pub(crate) struct Emitter<W: Write> {
    tar: TarWriter<Sink<W>>,
    epoch: Option<i64>,
    /// (dev, ino) of multiply-linked non-directories → archive name of the
    /// first occurrence.
    links: HashMap<(u64, u64), Vec<u8>>,
}

/// Result of emitting one object.
pub(crate) enum Emitted {
    /// Written as a full entry (or skipped socket).
    Entry,
    /// Written as a hardlink to an earlier entry.
    Link,
}

impl<W: Write> Emitter<W> {
    pub(crate) fn new(out: W, opts: &LayerOptions) -> Result<Self> {
        Self::with_blob_hash(out, opts, true)
    }

    /// `hash_blob: false` when `out` hashes the blob itself (the blob store's
    /// writer): the compressed bytes are then hashed once, there.
    pub(crate) fn with_blob_hash(out: W, opts: &LayerOptions, hash_blob: bool) -> Result<Self> {
        let buffered = BufWriter::with_capacity(256 * 1024, out);
        // Uncompressed, the blob is the tar: its digest is the diff id, so
        // the same bytes are not hashed twice (sha256 was 40 % of exporting
        // a 512 MiB layer).
        let inner = match opts.compression {
            _ if !hash_blob => HashWriter::counting(buffered),
            crate::Compression::None => HashWriter::counting(buffered),
            _ => HashWriter::new(buffered),
        };
        let enc = Encoder::new(inner, opts.compression)
            .map_err(|e| Error::stream("start compressor", e))?;
        Ok(Emitter {
            tar: TarWriter::new(HashWriter::new(enc)),
            epoch: opts.source_date_epoch,
            links: HashMap::new(),
        })
    }

    fn clamp(&self, mtime: i64) -> i64 {
        match self.epoch {
            Some(e) => mtime.min(e),
            None => mtime,
        }
    }

    /// Archive name of an earlier entry sharing this inode, if any.
    pub(crate) fn link_source(&self, meta: &Metadata) -> Option<&[u8]> {
        self.links.get(&(meta.dev(), meta.ino())).map(Vec::as_slice)
    }

    /// Emits the object at `host` as archive path `rel` (no trailing slash).
    /// `xattr_names` are the names listed on the object.
    pub(crate) fn entry(
        &mut self,
        host: &Path,
        rel: &[u8],
        meta: &Metadata,
        xattr_names: &[Vec<u8>],
    ) -> Result<Emitted> {
        let ft = meta.file_type();
        if ft.is_socket() {
            return Ok(Emitted::Entry);
        }
        let mut xattrs = Vec::new();
        for name in xattr_names {
            if xattrs::keep_xattr(name) {
                if let Some(v) =
                    xattrs::get(host, name).map_err(|e| Error::io("read xattrs of", host, e))?
                {
                    xattrs.push((name.clone(), v));
                }
            }
        }
        xattrs.sort();

        let mut name = rel.to_vec();
        let mut h = Header {
            name: &[],
            typeflag: tar_write::TYPE_REG,
            mode: meta.mode() & 0o7777,
            uid: u64::from(meta.uid()),
            gid: u64::from(meta.gid()),
            size: 0,
            mtime: self.clamp(meta.mtime()),
            linkname: &[],
            devmajor: 0,
            devminor: 0,
            xattrs: &xattrs,
        };
        let target;
        let link;
        if !ft.is_dir() && meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.links.get(&key) {
                link = first.clone();
                h.typeflag = tar_write::TYPE_LINK;
                h.linkname = &link;
                h.name = &name;
                self.tar.write_header(&h, host)?;
                return Ok(Emitted::Link);
            }
            self.links.insert(key, rel.to_vec());
        }
        let mut file = None;
        if ft.is_dir() {
            h.typeflag = tar_write::TYPE_DIR;
            name.push(b'/');
        } else if ft.is_symlink() {
            h.typeflag = tar_write::TYPE_SYMLINK;
            target = std::fs::read_link(host).map_err(|e| Error::io("read link", host, e))?;
            h.linkname = target.as_os_str().as_bytes();
        } else if ft.is_char_device() || ft.is_block_device() {
            h.typeflag = if ft.is_char_device() {
                tar_write::TYPE_CHAR
            } else {
                tar_write::TYPE_BLOCK
            };
            h.devmajor = rustix::fs::major(meta.rdev());
            h.devminor = rustix::fs::minor(meta.rdev());
        } else if ft.is_fifo() {
            h.typeflag = tar_write::TYPE_FIFO;
        } else if ft.is_file() {
            h.size = meta.len();
            if h.size > 0 {
                file = Some(open_same(host, meta)?);
            }
        } else {
            return Err(Error::Unrepresentable {
                path: host.to_path_buf(),
                reason: "unknown file type".into(),
            });
        }
        h.name = &name;
        self.tar.write_header(&h, host)?;
        if let Some(mut f) = file {
            self.tar.write_data(&mut f, h.size, host)?;
        }
        Ok(Emitted::Entry)
    }

    /// Emits a hardlink entry `rel` → `target` with `meta`'s attributes.
    pub(crate) fn hardlink(
        &mut self,
        host: &Path,
        rel: &[u8],
        target: &[u8],
        meta: &Metadata,
    ) -> Result<()> {
        let h = Header {
            name: rel,
            typeflag: tar_write::TYPE_LINK,
            mode: meta.mode() & 0o7777,
            uid: u64::from(meta.uid()),
            gid: u64::from(meta.gid()),
            size: 0,
            mtime: self.clamp(meta.mtime()),
            linkname: target,
            devmajor: 0,
            devminor: 0,
            xattrs: &[],
        };
        self.tar.write_header(&h, host)
    }

    /// Emits an empty regular file marker (`.wh.NAME` or `.wh..wh..opq`)
    /// inside archive directory `dir`.
    pub(crate) fn marker(&mut self, host: &Path, dir: &[u8], marker: &[u8]) -> Result<()> {
        let name = join_rel(dir, marker);
        let h = Header {
            name: &name,
            typeflag: tar_write::TYPE_REG,
            mode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: self.epoch.unwrap_or(0),
            linkname: &[],
            devmajor: 0,
            devminor: 0,
            xattrs: &[],
        };
        self.tar.write_header(&h, host)
    }

    /// Emits `.wh.NAME` in `dir`.
    pub(crate) fn whiteout(&mut self, host: &Path, dir: &[u8], name: &[u8]) -> Result<()> {
        let mut marker = crate::WHITEOUT_PREFIX.as_bytes().to_vec();
        marker.extend_from_slice(name);
        self.marker(host, dir, &marker)
    }

    /// Ends the archive, finishes compression and returns the digests.
    pub(crate) fn finish(self) -> Result<LayerDigests> {
        let (digest, diff_id, size) = self.finish_parts()?;
        // An emitter made by `new` hashes the blob unless it is uncompressed,
        // and then the blob is the tar.
        let digest = digest.unwrap_or_else(|| diff_id.clone());
        Ok(LayerDigests {
            digest,
            diff_id,
            size,
        })
    }

    /// The blob's digest (when it was hashed), the diff id and the size.
    pub(crate) fn finish_parts(self) -> Result<(Option<String>, String, u64)> {
        let outer = self.tar.finish()?;
        let (enc, diff_id, _) = outer.into_parts();
        let diff_id = diff_id.expect("the tar stream is always hashed");
        let inner = enc
            .finish()
            .map_err(|e| Error::stream("finish compression", e))?;
        let (mut buf, digest, size) = inner.into_parts();
        buf.flush().map_err(|e| Error::stream("write layer", e))?;
        Ok((digest, diff_id, size))
    }
}

/// Opens a regular file without following symlinks and checks that it is
/// still the inode that was listed.
fn open_same(host: &Path, meta: &Metadata) -> Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc_flags())
        .open(host)
        .map_err(|e| Error::io("open", host, e))?;
    let now = f.metadata().map_err(|e| Error::io("stat", host, e))?;
    if now.dev() != meta.dev() || now.ino() != meta.ino() || !now.is_file() {
        return Err(Error::FileChanged {
            path: host.to_path_buf(),
        });
    }
    Ok(f)
}

fn libc_flags() -> i32 {
    (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::CLOEXEC)
        .bits() as i32
}
