//! Docker's COPY/ADD semantics over two directory trees: a source root (the
//! build context, a stage or an image) and a destination root (the stage's
//! writable filesystem). Both roots are treated as `/`: no path, symlink or
//! `..` can read or write outside them.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use engine_cache::{FileHashMemo, FileStamp};
use engine_ir::ignore::IgnorePatterns;
use engine_ir::CopyAction;

use crate::copy_reuse::{self, FileRecord, Manifest, Previous};
use crate::fsutil::{copy_xattrs, open_regular, resolve_in_root};
pub use crate::ownership::Ownership;
use crate::source::{expand_source, io_err, is_ignored, join_rel};
pub use crate::source::{selected, CopyError, Source};

pub struct CopyRequest<'a> {
    pub src_root: &'a Path,
    pub dest_root: &'a Path,
    pub action: &'a CopyAction,
    /// `.dockerignore` of the source, when it is a local context.
    pub ignore: Option<&'a IgnorePatterns>,
    pub ownership: Ownership,
    /// Unpack local archives (ADD).
    pub unpack: bool,
}

impl CopyRequest<'_> {
    fn source(&self) -> Source<'_> {
        Source {
            src_root: self.src_root,
            ignore: self.ignore,
        }
    }
}

pub fn copy(req: &CopyRequest<'_>) -> Result<(), CopyError> {
    copy_inner(req, false).map(|_| ())
}

/// A directory copy left for [`copy_deferred`]: its destination exists (and
/// is in the step's upper directory when the root is an overlay mount).
#[derive(Debug)]
pub struct DeferredDir {
    src: PathBuf,
    /// The resolved destination, relative to the destination root.
    dest_rel: PathBuf,
}

/// Like [`copy`], except that when the action copies exactly one directory,
/// only its destination is made (through `req.dest_root`, which resolves
/// symlinks and copies the directory up in an overlay) and the contents are
/// left for [`copy_deferred`], which can write them straight into the
/// step's upper directory once the overlay is unmounted.
pub fn copy_or_defer(req: &CopyRequest<'_>) -> Result<Option<DeferredDir>, CopyError> {
    copy_inner(req, true)
}

fn excludes_of(a: &CopyAction) -> Result<IgnorePatterns, CopyError> {
    Ok(IgnorePatterns::from_patterns(&a.excludes)?)
}

fn copy_inner(req: &CopyRequest<'_>, defer: bool) -> Result<Option<DeferredDir>, CopyError> {
    let a = req.action;
    let mut matched = Vec::new();
    for src in &a.sources {
        matched.extend(expand_source(req.source(), src)?);
    }
    let dest_is_dir_syntax = a.dest.ends_with('/');
    if matched.len() > 1 && !dest_is_dir_syntax {
        return Err(CopyError::NeedsDirDest);
    }
    let mut ctx = Ctx::new(req, None, None)?;
    if defer && matched.len() == 1 {
        let m = &matched[0];
        let meta = fs::metadata(&m.path).map_err(io_err(&m.path))?;
        if meta.is_dir() {
            let mut dest = a.dest.clone();
            if a.parents && !m.parents.is_empty() {
                dest = format!("{}/{}/", dest.trim_end_matches('/'), m.parents);
            }
            let dir = ctx.ensure_dir(&dest)?;
            // A metadata change copies a directory up (with its lower
            // attributes); chown to the same owner changes nothing else.
            let dm = fs::symlink_metadata(&dir).map_err(io_err(&dir))?;
            std::os::unix::fs::lchown(&dir, Some(dm.uid()), Some(dm.gid()))
                .map_err(io_err(&dir))?;
            let dest_rel = dir
                .strip_prefix(req.dest_root)
                .map(Path::to_path_buf)
                .unwrap_or_default();
            return Ok(Some(DeferredDir {
                src: m.path.clone(),
                dest_rel,
            }));
        }
    }
    for m in &matched {
        let meta = fs::metadata(&m.path).map_err(io_err(&m.path))?;
        let mut dest = a.dest.clone();
        if a.parents && !m.parents.is_empty() {
            dest = format!("{}/{}/", dest.trim_end_matches('/'), m.parents);
        }
        if meta.is_dir() {
            let dir = ctx.ensure_dir(&dest)?;
            ctx.copy_dir_contents(&m.path, &dir, "")?;
        } else if req.unpack && meta.is_file() && crate::archive::is_archive(&m.path) {
            let dir = ctx.ensure_dir(&dest)?;
            crate::archive::extract(&m.path, &dir, req.ownership).map_err(|source| {
                CopyError::Archive {
                    path: m.rel.clone(),
                    source,
                }
            })?;
        } else {
            let base = Path::new(&m.rel)
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let existing_dir = resolve_in_root(req.dest_root, &dest, true)
                .map(|p| p.is_dir())
                .unwrap_or(false);
            let target_rel = if dest.ends_with('/') || existing_dir {
                format!("{}/{}", dest.trim_end_matches('/'), base)
            } else {
                // As in BuildKit (fsutil's Copy resolves the destination
                // with continuity's fs.RootPath), a symlink named as the
                // destination is followed inside the root: the file is
                // written where it points (parents created), the link stays.
                let resolved =
                    resolve_in_root(req.dest_root, &dest, true).map_err(io_err(req.dest_root))?;
                match resolved.strip_prefix(req.dest_root) {
                    Ok(r) => format!("/{}", r.to_string_lossy()),
                    Err(_) => dest.clone(),
                }
            };
            let (parent, name) = split_parent(&target_rel);
            let dir = ctx.ensure_dir(&parent)?;
            ctx.copy_entry(&m.path, &dir.join(name), &meta_of(&m.path)?)?;
        }
    }
    Ok(None)
}

/// Copy the contents of a directory that [`copy_or_defer`] left, into
/// `req.dest_root` (the step's upper directory), taking unchanged files
/// from `previous` when given. Returns the manifest of the regular files
/// written, for the next run of the same COPY.
pub fn copy_deferred(
    req: &CopyRequest<'_>,
    d: &DeferredDir,
    previous: Option<&Previous>,
    memo: Option<&FileHashMemo>,
) -> Result<Manifest, CopyError> {
    let dest = req.dest_root.join(&d.dest_rel);
    // The destination was resolved in the merged tree; in the upper
    // directory the same path must be plain directories all the way down.
    let resolved = resolve_in_root(req.dest_root, &d.dest_rel.to_string_lossy(), true)
        .map_err(io_err(req.dest_root))?;
    if resolved != dest || !fs::symlink_metadata(&dest).is_ok_and(|m| m.is_dir()) {
        return Err(CopyError::Io {
            path: dest.display().to_string(),
            source: io::Error::other("destination is not a directory of the step's layer"),
        });
    }
    let mut ctx = Ctx::new(req, previous, memo)?;
    ctx.manifest = Some(Manifest::new());
    ctx.copy_dir_contents(&d.src, &dest, "")?;
    Ok(ctx.manifest.take().unwrap_or_default())
}

fn meta_of(p: &Path) -> Result<fs::Metadata, CopyError> {
    fs::symlink_metadata(p).map_err(io_err(p))
}

fn split_parent(p: &str) -> (String, String) {
    let t = p.trim_end_matches('/');
    match t.rsplit_once('/') {
        Some((a, b)) => (if a.is_empty() { "/".into() } else { a.into() }, b.into()),
        None => ("/".into(), t.into()),
    }
}

struct Ctx<'r, 'a> {
    req: &'r CopyRequest<'a>,
    excludes: IgnorePatterns,
    /// (dev, inode) of a copied multi-link file → where its first copy went.
    links: HashMap<(u64, u64), PathBuf>,
    /// Where unchanged files can be linked from.
    previous: Option<&'r Previous>,
    memo: Option<&'r FileHashMemo>,
    /// Set when writing straight into a layer directory: the regular files
    /// written, for the next run's reuse.
    manifest: Option<Manifest>,
}

impl<'r, 'a> Ctx<'r, 'a> {
    fn new(
        req: &'r CopyRequest<'a>,
        previous: Option<&'r Previous>,
        memo: Option<&'r FileHashMemo>,
    ) -> Result<Self, CopyError> {
        Ok(Ctx {
            req,
            excludes: excludes_of(req.action)?,
            links: HashMap::new(),
            previous,
            memo,
            manifest: None,
        })
    }
}

impl Ctx<'_, '_> {
    fn owner_of(&self, meta: &fs::Metadata) -> (u32, u32) {
        match self.req.ownership {
            Ownership::Set(u, g) => (u, g),
            Ownership::Preserve => (meta.uid(), meta.gid()),
            Ownership::Root => (0, 0),
        }
    }

    fn mode_of(&self, meta: &fs::Metadata) -> u32 {
        match &self.req.action.chmod {
            Some(m) => u32::from_str_radix(m, 8).unwrap_or(0o644),
            None => meta.mode() & 0o7777,
        }
    }

    /// Create `dest` (inside the destination root) and its parents; return
    /// its resolved location. New directories are 0755 and owned like the
    /// copied files when `--chown` is given, root otherwise.
    fn ensure_dir(&self, dest: &str) -> Result<PathBuf, CopyError> {
        let root = self.req.dest_root;
        let mut built = String::new();
        for seg in dest.split('/').filter(|s| !s.is_empty() && *s != ".") {
            built = if seg == ".." {
                split_parent(&built).0
            } else {
                format!("{built}/{seg}")
            };
            let p = resolve_in_root(root, &built, true).map_err(io_err(root))?;
            match fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    fs::remove_file(&p).map_err(io_err(&p))?;
                    self.mkdir(&p)?;
                }
                Err(_) => self.mkdir(&p)?,
            }
        }
        resolve_in_root(root, if built.is_empty() { "/" } else { &built }, true)
            .map_err(io_err(root))
    }

    fn mkdir(&self, p: &Path) -> Result<(), CopyError> {
        fs::create_dir(p).map_err(io_err(p))?;
        fs::set_permissions(p, fs::Permissions::from_mode(0o755)).map_err(io_err(p))?;
        let (u, g) = match self.req.ownership {
            Ownership::Set(u, g) => (u, g),
            _ => (0, 0),
        };
        std::os::unix::fs::lchown(p, Some(u), Some(g)).map_err(io_err(p))
    }

    fn copy_dir_contents(&mut self, src: &Path, dest: &Path, rel: &str) -> Result<(), CopyError> {
        let mut entries: Vec<_> = fs::read_dir(src)
            .map_err(io_err(src))?
            .filter_map(|e| e.ok())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name();
            let name_s = name.to_string_lossy();
            let child_rel = join_rel(rel, &name_s);
            if self.excludes.is_excluded(&child_rel) {
                continue;
            }
            let spath = e.path();
            // The context's .dockerignore is relative to the context root.
            // An excluded directory is only entered when an exception may
            // re-include something below it, and then it only appears as the
            // parent of what is re-included (fsutil emits such parents
            // lazily): an excluded directory with nothing included below it
            // is not copied, not even empty.
            if self.excluded_from_context(&spath)
                && !self.has_included_descendant(&spath, &child_rel)?
            {
                continue;
            }
            let meta = meta_of(&spath)?;
            self.copy_entry(&spath, &dest.join(&name), &meta)?;
            if meta.is_dir() {
                self.copy_dir_contents(&spath, &dest.join(&name), &child_rel)?;
                self.finish_dir(&dest.join(&name), &meta)?;
            }
        }
        Ok(())
    }

    /// Whether `p` (inside the source root) is excluded by the context's
    /// `.dockerignore`.
    fn excluded_from_context(&self, p: &Path) -> bool {
        self.context_rel(p)
            .is_some_and(|r| is_ignored(&self.req.source(), &r))
    }

    /// For an excluded `p` (`rel` to the copy source): whether it is a
    /// directory an exception may reach into with something included below.
    fn has_included_descendant(&self, p: &Path, rel: &str) -> Result<bool, CopyError> {
        let Some(ctx_rel) = self.context_rel(p) else {
            return Ok(false);
        };
        if !meta_of(p)?.is_dir()
            || !self
                .req
                .ignore
                .is_some_and(|i| i.may_reinclude_under(&ctx_rel))
        {
            return Ok(false);
        }
        for e in fs::read_dir(p).map_err(io_err(p))?.filter_map(|e| e.ok()) {
            let child = e.path();
            let child_rel = join_rel(rel, &e.file_name().to_string_lossy());
            if self.excludes.is_excluded(&child_rel) {
                continue;
            }
            if !self.excluded_from_context(&child)
                || self.has_included_descendant(&child, &child_rel)?
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn context_rel(&self, p: &Path) -> Option<String> {
        self.req.ignore?;
        p.strip_prefix(self.req.src_root)
            .ok()
            .map(|r| r.to_string_lossy().into_owned())
    }

    /// Copy one entry (not a directory's contents) to `to`, replacing what is
    /// there unless both are directories. Never writes through a symlink.
    fn copy_entry(&mut self, from: &Path, to: &Path, meta: &fs::Metadata) -> Result<(), CopyError> {
        let ft = meta.file_type();
        if ft.is_socket() {
            // A socket cannot be copied (nor is it part of a context: the
            // context's hash skips it with a warning); what is at `to` stays.
            return Ok(());
        }
        if let Ok(existing) = fs::symlink_metadata(to) {
            if !(existing.is_dir() && ft.is_dir()) {
                if existing.is_dir() {
                    fs::remove_dir_all(to).map_err(io_err(to))?;
                } else {
                    fs::remove_file(to).map_err(io_err(to))?;
                }
            }
        }
        let (uid, gid) = self.owner_of(meta);
        if ft.is_dir() {
            if fs::symlink_metadata(to).is_err() {
                fs::create_dir(to).map_err(io_err(to))?;
            }
            std::os::unix::fs::lchown(to, Some(uid), Some(gid)).map_err(io_err(to))?;
            fs::set_permissions(to, fs::Permissions::from_mode(self.mode_of(meta)))
                .map_err(io_err(to))?;
            copy_xattrs(from, to);
            return Ok(());
        }
        if ft.is_symlink() {
            let target = fs::read_link(from).map_err(io_err(from))?;
            std::os::unix::fs::symlink(&target, to).map_err(io_err(to))?;
            std::os::unix::fs::lchown(to, Some(uid), Some(gid)).map_err(io_err(to))?;
            set_mtime(to, meta);
            return Ok(());
        }
        if meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.links.get(&key) {
                fs::hard_link(first, to).map_err(io_err(to))?;
                return Ok(());
            }
            self.links.insert(key, to.to_path_buf());
        }
        if ft.is_file() && self.manifest.is_some() && meta.nlink() == 1 && !has_xattrs(from) {
            let mode = self.mode_of(meta);
            let rel = to
                .strip_prefix(self.req.dest_root)
                .map(|r| r.to_string_lossy().into_owned())
                .unwrap_or_default();
            let record = match self.try_reuse(from, to, &rel, meta, mode, uid, gid) {
                Some(r) => r,
                None => self.copy_file_recording(from, to, meta, mode, uid, gid)?,
            };
            if let Some(m) = self.manifest.as_mut() {
                m.files.insert(rel, record);
            }
            return Ok(());
        }
        if ft.is_file() {
            let mut r = open_regular(from, Some(meta)).map_err(io_err(from))?;
            let mut w = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(to)
                .map_err(io_err(to))?;
            io::copy(&mut r, &mut w).map_err(io_err(to))?;
        } else {
            // FIFOs and devices are made anew, never opened (as BuildKit's
            // fsutil sends them: by type).
            crate::archive::mknod_like(to, meta).map_err(io_err(to))?;
        }
        std::os::unix::fs::lchown(to, Some(uid), Some(gid)).map_err(io_err(to))?;
        fs::set_permissions(to, fs::Permissions::from_mode(self.mode_of(meta)))
            .map_err(io_err(to))?;
        copy_xattrs(from, to);
        set_mtime(to, meta);
        Ok(())
    }

    /// Hard-link `to` to the previous result's file when that file has the
    /// content and metadata this copy would give it.
    #[allow(clippy::too_many_arguments)]
    fn try_reuse(
        &self,
        from: &Path,
        to: &Path,
        rel: &str,
        meta: &fs::Metadata,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Option<FileRecord> {
        let prev = self.previous?;
        let rec = prev.manifest.files.get(rel)?;
        if rec.size != meta.len()
            || rec.mode != mode
            || rec.uid != uid
            || rec.gid != gid
            || rec.mtime_ns != copy_reuse::mtime_ns(meta)
        {
            return None;
        }
        let hash =
            crate::hash::content_hash(meta, from, self.memo, std::time::SystemTime::now()).ok()?;
        if hash != rec.hash {
            return None;
        }
        let old = prev.root.join(rel);
        if !rec.matches_meta(&fs::symlink_metadata(&old).ok()?) {
            return None;
        }
        fs::hard_link(&old, to).ok()?;
        Some(*rec)
    }

    /// Copy a regular file into a layer directory, hashing it on the way
    /// (unless the memo knows its hash), metadata set through the open file.
    fn copy_file_recording(
        &self,
        from: &Path,
        to: &Path,
        meta: &fs::Metadata,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<FileRecord, CopyError> {
        use std::io::{Read, Write};
        let mut r = open_regular(from, Some(meta)).map_err(io_err(from))?;
        let mut w = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(to)
            .map_err(io_err(to))?;
        let known = self.memo.and_then(|m| m.get(&FileStamp::of(meta)));
        let hash = match known {
            Some(h) => {
                io::copy(&mut r, &mut w).map_err(io_err(to))?;
                h
            }
            None => {
                let mut h = blake3::Hasher::new();
                let mut buf = vec![0u8; (meta.len() as usize).clamp(1, 256 * 1024)];
                loop {
                    let n = r.read(&mut buf).map_err(io_err(from))?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                    w.write_all(&buf[..n]).map_err(io_err(to))?;
                }
                *h.finalize().as_bytes()
            }
        };
        std::os::unix::fs::fchown(&w, Some(uid), Some(gid)).map_err(io_err(to))?;
        w.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io_err(to))?;
        let t = meta.modified().map_err(io_err(from))?;
        w.set_times(fs::FileTimes::new().set_accessed(t).set_modified(t))
            .map_err(io_err(to))?;
        let size = w.metadata().map_err(io_err(to))?.len();
        Ok(FileRecord {
            hash,
            size,
            mode,
            uid,
            gid,
            mtime_ns: copy_reuse::mtime_ns(meta),
        })
    }

    fn finish_dir(&self, to: &Path, meta: &fs::Metadata) -> Result<(), CopyError> {
        set_mtime(to, meta);
        Ok(())
    }
}

fn has_xattrs(p: &Path) -> bool {
    xattr::list(p).map_or(true, |mut l| l.next().is_some())
}

/// Set `p`'s times by path (`utimensat`, the last component not followed):
/// `filetime::set_file_times` opens the file, which blocks on a FIFO.
fn set_mtime(p: &Path, meta: &fs::Metadata) {
    let t = filetime::FileTime::from_last_modification_time(meta);
    let _ = filetime::set_symlink_file_times(p, t, t);
}
