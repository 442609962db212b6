//! Safe application of (untrusted) layers onto a directory.
//!
//! Every path is cleaned lexically (a leading `/` is dropped, `..` that
//! would climb above the root is an error) and every parent directory is
//! resolved *inside* the root (see [`ResolveMode`]), so symlinks planted by
//! the layer or by lower layers cannot redirect writes outside it. Objects
//! are created with calls that never follow a final symlink (`O_EXCL`,
//! `mkdirat`, `symlinkat`, `mknodat`, `linkat`); an existing object of a
//! different type is removed first, and metadata is set through file
//! descriptors or `AT_SYMLINK_NOFOLLOW` calls, never through a symlink.
//!
//! Whiteouts follow the OCI image spec: `.wh.NAME` removes `NAME`, and
//! `.wh..wh..opq` removes everything in its directory that this layer did
//! not itself provide, whatever the order of entries within the layer.
//!
//! With [`WhiteoutFormat::Overlay`] whiteouts are instead recorded the way
//! overlayfs expects them, for applying each layer into its own empty
//! directory that later serves as an overlayfs layer.
//!
//! On error the root is left partially written: apply into a fresh
//! directory and discard it on failure.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufReader, Cursor, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;

use crate::compress::{detect_compression, Compression, Decoder, MAGIC_LEN};
use crate::digest::{Algorithm, HashReader, ParsedDigest};
use crate::error::{show, Error, Result};
use crate::fsutil::{self, remove_all_at};
pub use crate::resolve::ResolveMode;
use crate::resolve::{InRoot, ResolveError};
use crate::tar_read::{TarEntry, TarReader};
use crate::xattrs::is_overlay_xattr;

/// What applying a whiteout does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhiteoutFormat {
    /// Delete what the whiteouts name (the root holds the lower layers).
    #[default]
    Remove,
    /// Record them for overlayfs: `.wh.NAME` becomes a 0/0 character device
    /// `NAME`, and `.wh..wh..opq` sets `trusted.overlay.opaque=y` on its
    /// directory. Nothing is deleted except objects this layer replaces.
    Overlay,
}

/// Options for [`apply_layer_with`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Compression of the stream; `None` detects it from the magic bytes.
    pub compression: Option<Compression>,
    /// Expected digest of the blob as read (`sha256:…` or `sha512:…`).
    pub expected_digest: Option<String>,
    /// Expected digest of the uncompressed tar (`sha256:…` or `sha512:…`).
    pub expected_diff_id: Option<String>,
    /// Path resolution strategy.
    pub resolve: ResolveMode,
    /// How whiteouts are applied.
    pub whiteouts: WhiteoutFormat,
}

/// What [`apply_layer_with`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyStats {
    /// Digest of the blob as read (algorithm of the expected digest, or sha256).
    pub digest: String,
    /// Digest of the uncompressed tar (the diff id).
    pub diff_id: String,
    /// Bytes read from the blob.
    pub size: u64,
    /// Compression that was used.
    pub compression: Compression,
    /// Tar entries processed (including whiteouts).
    pub entries: u64,
    /// Extended attributes that were not applied: overlayfs attributes, and
    /// ones the filesystem refused as unsupported or not permitted.
    pub ignored_xattrs: u64,
}

/// Applies a layer onto `root`; `compression: None` autodetects it.
pub fn apply_layer(
    root: &Path,
    layer: impl Read,
    compression: Option<Compression>,
) -> Result<ApplyStats> {
    apply_layer_with(
        root,
        layer,
        &ApplyOptions {
            compression,
            ..ApplyOptions::default()
        },
    )
}

/// Applies a layer while hashing it, failing with
/// [`Error::DigestMismatch`] / [`Error::DiffIdMismatch`] when the blob (as
/// read, i.e. compressed) or the uncompressed tar does not match.
///
/// The check can only complete once the whole stream was read, i.e. after
/// the entries were written: apply into a temporary directory and only
/// rename it into place (mark the snapshot valid) when this returns `Ok`.
pub fn apply_layer_verified(
    root: &Path,
    layer: impl Read,
    expected_digest: &str,
    expected_diff_id: Option<&str>,
) -> Result<ApplyStats> {
    apply_layer_with(
        root,
        layer,
        &ApplyOptions {
            expected_digest: Some(expected_digest.to_owned()),
            expected_diff_id: expected_diff_id.map(str::to_owned),
            ..ApplyOptions::default()
        },
    )
}

/// Applies a layer with explicit [`ApplyOptions`].
pub fn apply_layer_with(root: &Path, layer: impl Read, opts: &ApplyOptions) -> Result<ApplyStats> {
    // Validate expectations before touching anything.
    let expected = opts
        .expected_digest
        .as_deref()
        .map(ParsedDigest::parse)
        .transpose()?;
    let expected_diff = opts
        .expected_diff_id
        .as_deref()
        .map(ParsedDigest::parse)
        .transpose()?;
    let alg = expected.as_ref().map_or(Algorithm::Sha256, |d| d.algorithm);
    let diff_alg = expected_diff
        .as_ref()
        .map_or(Algorithm::Sha256, |d| d.algorithm);

    let mut applier = Applier::new(root, opts.resolve, opts.whiteouts)?;

    let mut raw = HashReader::new(layer, alg);
    let mut prefix = [0u8; MAGIC_LEN];
    let mut got = 0;
    while got < MAGIC_LEN {
        match raw.read(&mut prefix[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::stream("read layer", e)),
        }
    }
    let compression = opts
        .compression
        .unwrap_or_else(|| detect_compression(&prefix[..got]));
    let src = BufReader::with_capacity(128 * 1024, Cursor::new(prefix[..got].to_vec()).chain(raw));
    let dec = Decoder::new(src, compression).map_err(|e| Error::stream("start decompressor", e))?;
    let mut tar = TarReader::new(HashReader::new(dec, diff_alg));

    let mut entries = 0u64;
    while let Some(e) = tar.next_entry()? {
        entries += 1;
        applier.entry(&e, &mut tar.data())?;
    }
    applier.finish()?;

    // Hash whatever follows the end-of-archive marker too.
    let mut diff_reader = tar.into_inner();
    io::copy(&mut diff_reader, &mut io::sink()).map_err(|e| Error::stream("read layer", e))?;
    let (dec, diff_id, _) = diff_reader.into_parts();
    let mut src = dec.into_inner();
    io::copy(&mut src, &mut io::sink()).map_err(|e| Error::stream("read layer", e))?;
    let (_, raw) = src.into_inner().into_inner();
    let (_, digest, size) = raw.into_parts();

    if let Some(exp) = expected {
        if exp.text != digest {
            return Err(Error::DigestMismatch {
                expected: exp.text,
                actual: digest,
            });
        }
    }
    if let Some(exp) = expected_diff {
        if exp.text != diff_id {
            return Err(Error::DiffIdMismatch {
                expected: exp.text,
                actual: diff_id,
            });
        }
    }
    Ok(ApplyStats {
        digest,
        diff_id,
        size,
        compression,
        entries,
        ignored_xattrs: applier.ignored_xattrs,
    })
}

/// Lexically cleans an entry path into components; `..` above the root is
/// an error.
fn clean(path: &[u8]) -> Result<Vec<Vec<u8>>> {
    if path.contains(&0) {
        return Err(Error::InvalidPath {
            path: show(path),
            reason: "contains a nul byte",
        });
    }
    let mut out: Vec<Vec<u8>> = Vec::new();
    for c in path.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err(Error::PathEscape { path: show(path) });
                }
            }
            c => out.push(c.to_vec()),
        }
    }
    Ok(out)
}

fn ts(t: (i64, u32)) -> Timespec {
    Timespec {
        tv_sec: t.0,
        tv_nsec: i64::from(t.1.min(999_999_999)),
    }
}

fn is_unsupported_xattr(e: Errno) -> bool {
    e == Errno::NOTSUP || e == Errno::OPNOTSUPP || e == Errno::PERM
}

struct Applier {
    root_path: PathBuf,
    res: InRoot,
    /// Paths provided by this layer, plus all their ancestors.
    unpacked: HashSet<Vec<u8>>,
    /// Directories whose times are set at the end: (components, atime, mtime).
    dir_times: Vec<(Vec<Vec<u8>>, Timestamps)>,
    ignored_xattrs: u64,
    buf: Vec<u8>,
    have_proc: bool,
    whiteouts: WhiteoutFormat,
}

impl Applier {
    fn new(root: &Path, mode: ResolveMode, whiteouts: WhiteoutFormat) -> Result<Self> {
        let res = InRoot::open(root, mode).map_err(|e| Error::io("open root", root, e))?;
        Ok(Applier {
            root_path: root.to_path_buf(),
            res,
            unpacked: HashSet::new(),
            dir_times: Vec::new(),
            ignored_xattrs: 0,
            buf: vec![0; 256 * 1024],
            have_proc: Path::new("/proc/self/fd").is_dir(),
            whiteouts,
        })
    }

    fn host(&self, comps: &[Vec<u8>]) -> PathBuf {
        self.root_path.join(OsStr::from_bytes(&comps.join(&b'/')))
    }

    fn io_err(&self, op: &'static str, comps: &[Vec<u8>], e: impl Into<io::Error>) -> Error {
        Error::io(op, self.host(comps), e.into())
    }

    fn resolve_err(&self, entry: &[u8], comps: &[Vec<u8>], e: ResolveError) -> Error {
        match e {
            ResolveError::NotDir => Error::NotADirectory { path: show(entry) },
            ResolveError::Loop => Error::SymlinkLoop { path: show(entry) },
            ResolveError::Io(errno) => self.io_err("resolve", comps, errno),
        }
    }

    fn parent(
        &mut self,
        entry: &[u8],
        comps: &[Vec<u8>],
        create: bool,
    ) -> Result<Option<Rc<OwnedFd>>> {
        match self.res.dir(comps, create) {
            Ok(fd) => Ok(fd),
            Err(e) => Err(self.resolve_err(entry, comps, e)),
        }
    }

    fn mark_unpacked(&mut self, comps: &[Vec<u8>]) {
        for i in (1..=comps.len()).rev() {
            if !self.unpacked.insert(comps[..i].join(&b'/')) {
                break;
            }
        }
    }

    fn entry(&mut self, e: &TarEntry, data: &mut impl Read) -> Result<()> {
        let comps = clean(&e.path)?;
        let Some((base, parent)) = comps.split_last() else {
            // The root itself: its metadata belongs to the caller.
            return Ok(());
        };
        if let Some(victim) = base.strip_prefix(crate::WHITEOUT_PREFIX.as_bytes()) {
            if base == crate::WHITEOUT_OPAQUE.as_bytes() {
                return self.opaque(&e.path, parent);
            }
            if base.starts_with(crate::WHITEOUT_META_PREFIX.as_bytes()) {
                // Other AUFS metadata (.wh..wh.plnk, ...): not content.
                return Ok(());
            }
            if victim.is_empty() || victim == b"." || victim == b".." {
                return Err(Error::InvalidWhiteout {
                    path: show(&e.path),
                });
            }
            return self.whiteout(&e.path, parent, victim);
        }
        match e.typeflag {
            b'0' | b'7' | b'1' | b'2' | b'3' | b'4' | b'5' | b'6' => {}
            other => {
                return Err(Error::UnsupportedEntry {
                    typeflag: char::from(other),
                    path: show(&e.path),
                })
            }
        }
        let uid = rustix::fs::Uid::from_raw(u32::try_from(e.uid).map_err(|_| {
            Error::InvalidArchive(format!("uid {} of {} out of range", e.uid, show(&e.path)))
        })?);
        let gid = rustix::fs::Gid::from_raw(u32::try_from(e.gid).map_err(|_| {
            Error::InvalidArchive(format!("gid {} of {} out of range", e.gid, show(&e.path)))
        })?);

        // For hardlinks, find the target before removing anything.
        let link_target = if e.typeflag == b'1' {
            Some(self.link_target(e, &comps)?)
        } else {
            None
        };

        let pfd = self
            .parent(&e.path, parent, true)?
            .ok_or_else(|| self.io_err("resolve", parent, Errno::NOENT))?;
        let pfd = pfd.as_fd();

        // Replace whatever is there, except directory over directory.
        let mut existing_dir = false;
        match rustix::fs::statat(pfd, base.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
                if is_dir && e.typeflag == b'5' {
                    existing_dir = true;
                } else {
                    remove_all_at(pfd, base).map_err(|err| self.io_err("remove", &comps, err))?;
                    self.res.invalidate();
                }
            }
            Err(Errno::NOENT) => {}
            Err(err) => return Err(self.io_err("stat", &comps, err)),
        }

        let mode = Mode::from_raw_mode(e.mode & 0o7777);
        let times = Timestamps {
            last_access: ts(e.atime.unwrap_or(e.mtime)),
            last_modification: ts(e.mtime),
        };
        match e.typeflag {
            b'0' | b'7' => {
                let fd = rustix::fs::openat(
                    pfd,
                    base.as_slice(),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|err| self.io_err("create", &comps, err))?;
                let mut f = File::from(fd);
                self.copy_data(&mut f, data, e.size, &comps)?;
                rustix::fs::fchown(&f, Some(uid), Some(gid))
                    .map_err(|err| self.io_err("chown", &comps, err))?;
                self.fd_xattrs(f.as_fd(), e, &comps)?;
                rustix::fs::fchmod(&f, mode).map_err(|err| self.io_err("chmod", &comps, err))?;
                rustix::fs::futimens(&f, &times)
                    .map_err(|err| self.io_err("set times of", &comps, err))?;
            }
            b'5' => {
                if !existing_dir {
                    rustix::fs::mkdirat(pfd, base.as_slice(), Mode::from_raw_mode(0o700))
                        .map_err(|err| self.io_err("create directory", &comps, err))?;
                }
                let fd =
                    rustix::fs::openat(pfd, base.as_slice(), fsutil::rdonly_dir(), Mode::empty())
                        .map_err(|err| self.io_err("open directory", &comps, err))?;
                rustix::fs::fchown(&fd, Some(uid), Some(gid))
                    .map_err(|err| self.io_err("chown", &comps, err))?;
                self.fd_xattrs(fd.as_fd(), e, &comps)?;
                rustix::fs::fchmod(&fd, mode).map_err(|err| self.io_err("chmod", &comps, err))?;
                self.dir_times.push((comps.clone(), times));
            }
            b'2' => {
                if e.linkname.contains(&0) {
                    return Err(Error::InvalidPath {
                        path: show(&e.path),
                        reason: "symlink target contains a nul byte",
                    });
                }
                rustix::fs::symlinkat(e.linkname.as_slice(), pfd, base.as_slice())
                    .map_err(|err| self.io_err("create symlink", &comps, err))?;
                self.path_meta(pfd, base, e, &comps, uid, gid, mode, &times, false)?;
            }
            b'3' | b'4' | b'6' => {
                let ft = match e.typeflag {
                    b'3' => FileType::CharacterDevice,
                    b'4' => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let dev = rustix::fs::makedev(e.devmajor, e.devminor);
                rustix::fs::mknodat(pfd, base.as_slice(), ft, Mode::from_raw_mode(0o600), dev)
                    .map_err(|err| self.io_err("create node", &comps, err))?;
                self.path_meta(pfd, base, e, &comps, uid, gid, mode, &times, true)?;
            }
            b'1' => {
                let (tfd, tbase) = link_target.ok_or_else(|| {
                    Error::InvalidArchive(format!("hardlink {} without target", show(&e.path)))
                })?;
                rustix::fs::linkat(
                    &*tfd,
                    tbase.as_slice(),
                    pfd,
                    base.as_slice(),
                    AtFlags::empty(),
                )
                .map_err(|err| self.io_err("create hardlink", &comps, err))?;
                // Like containerd, a hardlink entry's metadata applies to the
                // shared inode (it is normally identical anyway).
                self.path_meta(pfd, base, e, &comps, uid, gid, mode, &times, true)?;
            }
            // Every other type was rejected above.
            _ => {}
        }
        self.mark_unpacked(&comps);
        Ok(())
    }

    /// Resolves a hardlink target inside the root: its parent directory fd
    /// and base name. The target must exist and not be a directory.
    fn link_target(&mut self, e: &TarEntry, comps: &[Vec<u8>]) -> Result<(Rc<OwnedFd>, Vec<u8>)> {
        let bad = |reason: &'static str| Error::InvalidHardlink {
            path: show(&e.path),
            target: show(&e.linkname),
            reason,
        };
        let tcomps = match clean(&e.linkname) {
            Ok(t) => t,
            Err(Error::PathEscape { .. }) => {
                return Err(Error::PathEscape {
                    path: show(&e.linkname),
                })
            }
            Err(err) => return Err(err),
        };
        let Some((tbase, tparent)) = tcomps.split_last() else {
            return Err(bad("target is the root directory"));
        };
        if tcomps.as_slice() == comps {
            return Err(bad("link to itself"));
        }
        let tfd = self
            .parent(&e.linkname, tparent, false)?
            .ok_or_else(|| bad("target does not exist"))?;
        match rustix::fs::statat(&*tfd, tbase.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                Err(bad("target is a directory"))
            }
            Ok(_) => Ok((tfd, tbase.clone())),
            Err(Errno::NOENT) => Err(bad("target does not exist")),
            Err(err) => Err(self.io_err("stat", &tcomps, err)),
        }
    }

    fn copy_data(
        &mut self,
        f: &mut File,
        data: &mut impl Read,
        size: u64,
        comps: &[Vec<u8>],
    ) -> Result<()> {
        let mut left = size;
        let mut hole_at_end = false;
        while left > 0 {
            let want = left.min(self.buf.len() as u64) as usize;
            let n = match data.read(&mut self.buf[..want]) {
                Ok(0) => {
                    return Err(Error::InvalidArchive(
                        "unexpected end of archive in entry data".into(),
                    ))
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::stream("read layer", e)),
            };
            let chunk = &self.buf[..n];
            // Leave holes for runs of zeros: a mostly-empty file stays sparse.
            if chunk.iter().all(|b| *b == 0) {
                f.seek(SeekFrom::Current(n as i64))
                    .map_err(|e| Error::io("seek", self.host(comps), e))?;
                hole_at_end = true;
            } else {
                f.write_all(chunk)
                    .map_err(|e| Error::io("write", self.host(comps), e))?;
                hole_at_end = false;
            }
            left -= n as u64;
        }
        if hole_at_end {
            f.set_len(size)
                .map_err(|e| Error::io("truncate", self.host(comps), e))?;
        }
        Ok(())
    }

    fn fd_xattrs(&mut self, fd: BorrowedFd<'_>, e: &TarEntry, comps: &[Vec<u8>]) -> Result<()> {
        for (k, v) in &e.xattrs {
            if is_overlay_xattr(k) || k.contains(&0) || k.is_empty() {
                self.ignored_xattrs += 1;
                continue;
            }
            match rustix::fs::fsetxattr(fd, k.as_slice(), v, XattrFlags::empty()) {
                Ok(()) => {}
                Err(err) if is_unsupported_xattr(err) => self.ignored_xattrs += 1,
                Err(err) => return Err(self.io_err("set xattr on", comps, err)),
            }
        }
        Ok(())
    }

    /// Metadata for objects we cannot (or must not) open: symlinks, device
    /// nodes, fifos and hardlinks. Nothing here follows a symlink.
    #[allow(clippy::too_many_arguments)]
    fn path_meta(
        &mut self,
        pfd: BorrowedFd<'_>,
        base: &[u8],
        e: &TarEntry,
        comps: &[Vec<u8>],
        uid: rustix::fs::Uid,
        gid: rustix::fs::Gid,
        mode: Mode,
        times: &Timestamps,
        chmod: bool,
    ) -> Result<()> {
        rustix::fs::chownat(pfd, base, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|err| self.io_err("chown", comps, err))?;
        if !e.xattrs.is_empty() {
            if !self.have_proc {
                self.ignored_xattrs += e.xattrs.len() as u64;
            } else {
                let p = fsutil::proc_fd_child(pfd, base);
                for (k, v) in &e.xattrs {
                    if is_overlay_xattr(k) || k.contains(&0) || k.is_empty() {
                        self.ignored_xattrs += 1;
                        continue;
                    }
                    match rustix::fs::lsetxattr(&p, k.as_slice(), v, XattrFlags::empty()) {
                        Ok(()) => {}
                        Err(err) if is_unsupported_xattr(err) => self.ignored_xattrs += 1,
                        Err(err) => return Err(self.io_err("set xattr on", comps, err)),
                    }
                }
            }
        }
        if chmod {
            self.chmod_nofollow(pfd, base, mode, comps)?;
        }
        rustix::fs::utimensat(pfd, base, times, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|err| self.io_err("set times of", comps, err))
    }

    /// chmod without following a final symlink (symlinks are left alone).
    fn chmod_nofollow(
        &self,
        pfd: BorrowedFd<'_>,
        base: &[u8],
        mode: Mode,
        comps: &[Vec<u8>],
    ) -> Result<()> {
        let fd = rustix::fs::openat(
            pfd,
            base,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|err| self.io_err("open", comps, err))?;
        let st = rustix::fs::fstat(&fd).map_err(|err| self.io_err("stat", comps, err))?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
            return Ok(());
        }
        let r = if self.have_proc {
            // Reaches exactly the inode behind `fd`.
            rustix::fs::chmod(fsutil::proc_fd(fd.as_fd()), mode)
        } else {
            // Without /proc: the object was just checked not to be a symlink
            // and nothing else writes inside the root while we apply.
            rustix::fs::chmodat(pfd, base, mode, AtFlags::empty())
        };
        r.map_err(|err| self.io_err("chmod", comps, err))
    }

    fn whiteout(&mut self, entry: &[u8], parent: &[Vec<u8>], victim: &[u8]) -> Result<()> {
        let overlay = self.whiteouts == WhiteoutFormat::Overlay;
        let Some(pfd) = self.parent(entry, parent, overlay)? else {
            return Ok(());
        };
        let mut comps = parent.to_vec();
        comps.push(victim.to_vec());
        remove_all_at(pfd.as_fd(), victim).map_err(|err| self.io_err("remove", &comps, err))?;
        self.res.invalidate();
        if overlay {
            rustix::fs::mknodat(
                pfd.as_fd(),
                victim,
                FileType::CharacterDevice,
                Mode::empty(),
                rustix::fs::makedev(0, 0),
            )
            .map_err(|err| self.io_err("create whiteout", &comps, err))?;
        }
        Ok(())
    }

    /// Marks `dir` opaque for overlayfs.
    fn overlay_opaque(&mut self, entry: &[u8], dir: &[Vec<u8>]) -> Result<()> {
        let dfd = self
            .parent(entry, dir, true)?
            .ok_or_else(|| self.io_err("resolve", dir, Errno::NOENT))?;
        let fd = rustix::fs::openat(&*dfd, c".", fsutil::rdonly_dir(), Mode::empty())
            .map_err(|err| self.io_err("open directory", dir, err))?;
        rustix::fs::fsetxattr(&fd, "trusted.overlay.opaque", b"y", XattrFlags::empty())
            .map_err(|err| self.io_err("mark opaque", dir, err))
    }

    /// Removes everything below `dir` that this layer did not provide.
    fn opaque(&mut self, entry: &[u8], dir: &[Vec<u8>]) -> Result<()> {
        if self.whiteouts == WhiteoutFormat::Overlay {
            return self.overlay_opaque(entry, dir);
        }
        let Some(dfd) = self.parent(entry, dir, false)? else {
            return Ok(());
        };
        let mut work: Vec<(Rc<OwnedFd>, Vec<Vec<u8>>)> = vec![(dfd, dir.to_vec())];
        while let Some((fd, comps)) = work.pop() {
            let children =
                fsutil::list_dir(fd.as_fd()).map_err(|err| self.io_err("list", &comps, err))?;
            for (name, ty) in children {
                let mut child = comps.clone();
                child.push(name);
                if self.unpacked.contains(&child.join(&b'/')) {
                    if ty == FileType::Directory {
                        let cfd = rustix::fs::openat(
                            &*fd,
                            child[child.len() - 1].as_slice(),
                            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                            Mode::empty(),
                        )
                        .map_err(|err| self.io_err("open directory", &child, err))?;
                        work.push((Rc::new(cfd), child));
                    }
                } else {
                    remove_all_at(fd.as_fd(), &child[child.len() - 1])
                        .map_err(|err| self.io_err("remove", &child, err))?;
                }
            }
        }
        self.res.invalidate();
        Ok(())
    }

    /// Sets directory times last, since creating children changes them.
    fn finish(&mut self) -> Result<()> {
        let dirs = std::mem::take(&mut self.dir_times);
        for (comps, times) in dirs.iter().rev() {
            let Some((base, parent)) = comps.split_last() else {
                continue;
            };
            let pfd = match self.res.dir(parent, false) {
                Ok(Some(fd)) => fd,
                // Removed or replaced later in the layer: nothing to do.
                Ok(None) | Err(ResolveError::NotDir) => continue,
                Err(e) => return Err(self.resolve_err(&comps.join(&b'/'), parent, e)),
            };
            match rustix::fs::statat(&*pfd, base.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {}
                Ok(_) | Err(Errno::NOENT) => continue,
                Err(err) => return Err(self.io_err("stat", comps, err)),
            }
            rustix::fs::utimensat(&*pfd, base.as_slice(), times, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|err| self.io_err("set times of", comps, err))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths() {
        let c = |p: &str| clean(p.as_bytes()).map(|v| v.join(&b'/'));
        assert_eq!(c("a/b").unwrap(), b"a/b");
        assert_eq!(c("/a/./b/").unwrap(), b"a/b");
        assert_eq!(c("a/../b").unwrap(), b"b");
        assert_eq!(c("./").unwrap(), b"");
        assert!(matches!(c("../x"), Err(Error::PathEscape { .. })));
        assert!(matches!(c("a/../../x"), Err(Error::PathEscape { .. })));
        assert!(matches!(c("/../x"), Err(Error::PathEscape { .. })));
        assert!(matches!(c("a\0b"), Err(Error::InvalidPath { .. })));
    }
}
