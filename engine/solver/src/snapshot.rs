//! Filesystem values: a snapshot is a stack of layer directories, each in
//! overlayfs-upper form (whiteouts as 0/0 character devices, opaque
//! directories marked by xattr), bottom first. An overlay mount of the stack
//! gives the merged tree.

use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use engine_export::LayerBlob;

#[derive(Debug)]
pub struct Layer {
    pub dir: PathBuf,
    /// The blobs this layer exports as: a base image's original layers (for
    /// its flattened directory), or the one diff blob of a step (None until
    /// exported; empty when the step changed nothing).
    pub blobs: std::sync::Mutex<Option<Vec<LayerBlob>>>,
    /// The cache key of the step that made it.
    pub key: String,
}

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub layers: Vec<Arc<Layer>>,
}

impl Snapshot {
    pub fn with(&self, layer: Arc<Layer>) -> Snapshot {
        let mut layers = self.layers.clone();
        layers.push(layer);
        Snapshot { layers }
    }

    /// Lower dirs for overlayfs: top first.
    pub fn lowers_top_first(&self) -> Vec<PathBuf> {
        self.layers.iter().rev().map(|l| l.dir.clone()).collect()
    }
}

/// A view of a snapshot's merged tree: an overlay (or bind) mount in the
/// engine's own mount namespace, undone on drop; or, where overlayfs is
/// unavailable, a copied tree whose changes `finish` turns into an
/// overlay-form upper directory.
pub struct MountGuard {
    target: PathBuf,
    mounted: bool,
    copy: Option<CopyState>,
    _keep: Option<tempfile::TempDir>,
}

struct CopyState {
    pristine: PathBuf,
    upper: PathBuf,
}

impl MountGuard {
    pub fn path(&self) -> &Path {
        &self.target
    }

    /// Make the view's changes land in its upper directory. Overlay views
    /// already wrote there; copied views are diffed against their pristine
    /// copy and the diff applied in overlay form.
    pub fn finish(mut self) -> io::Result<()> {
        let Some(c) = self.copy.take() else {
            return Ok(());
        };
        let (mut reader, writer) = io::pipe()?;
        let pristine = c.pristine.clone();
        let target = self.target.clone();
        let producer = std::thread::spawn(move || {
            let opts = engine_layers::LayerOptions {
                source_date_epoch: None,
                compression: engine_layers::Compression::None,
                overlay_upper: false,
            };
            engine_layers::write_diff_layer(&pristine, &target, writer, &opts).map(|_| ())
        });
        let opts = engine_layers::ApplyOptions {
            compression: Some(engine_layers::Compression::None),
            whiteouts: engine_layers::WhiteoutFormat::Overlay,
            ..Default::default()
        };
        let applied = engine_layers::apply_layer_with(&c.upper, &mut reader, &opts);
        drop(reader);
        let produced = producer
            .join()
            .map_err(|_| io::Error::other("diff thread panicked"))?;
        produced.map_err(io::Error::other)?;
        applied.map_err(io::Error::other)?;
        Ok(())
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        if !self.mounted {
            return;
        }
        if let Ok(c) = cstr(&self.target) {
            // SAFETY: valid NUL-terminated path; MNT_DETACH cannot fail in a way
            // that leaves memory unsafe.
            unsafe {
                libc::umount2(c.as_ptr(), libc::MNT_DETACH);
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snapshotter {
    Overlay,
    Copy,
}

/// Overlay where the kernel mounts it (probed once), copies otherwise;
/// `ENGINE_SNAPSHOTTER=copy|overlay` forces one.
pub fn snapshotter(tmp: &Path) -> Snapshotter {
    static MODE: std::sync::OnceLock<Snapshotter> = std::sync::OnceLock::new();
    *MODE.get_or_init(|| match std::env::var("ENGINE_SNAPSHOTTER").as_deref() {
        Ok("copy") => Snapshotter::Copy,
        Ok("overlay") => Snapshotter::Overlay,
        _ => probe_overlay(tmp),
    })
}

fn probe_overlay(tmp: &Path) -> Snapshotter {
    let probe = || -> io::Result<()> {
        let d = tempfile::Builder::new().prefix("probe-").tempdir_in(tmp)?;
        for x in ["l1", "l2", "u", "w", "m"] {
            std::fs::create_dir(d.path().join(x))?;
        }
        let data = format!(
            "lowerdir={}:{},upperdir={},workdir={}",
            escape_opt(&d.path().join("l1")),
            escape_opt(&d.path().join("l2")),
            escape_opt(&d.path().join("u")),
            escape_opt(&d.path().join("w"))
        );
        mount("overlay", &d.path().join("m"), "overlay", 0, &data)?;
        let c = cstr(&d.path().join("m"))?;
        // SAFETY: valid path.
        unsafe {
            libc::umount2(c.as_ptr(), libc::MNT_DETACH);
        }
        Ok(())
    };
    if probe().is_ok() {
        Snapshotter::Overlay
    } else {
        Snapshotter::Copy
    }
}

/// Copy the merged tree of a snapshot into `dest` by replaying its layers.
pub fn materialize(snap: &Snapshot, dest: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dest)?;
    for layer in &snap.layers {
        let (mut reader, writer) = io::pipe()?;
        let dir = layer.dir.clone();
        let producer = std::thread::spawn(move || {
            let opts = engine_layers::LayerOptions {
                source_date_epoch: None,
                compression: engine_layers::Compression::None,
                overlay_upper: true,
            };
            engine_layers::write_layer(&dir, writer, &opts).map(|_| ())
        });
        let applied =
            engine_layers::apply_layer(dest, &mut reader, Some(engine_layers::Compression::None));
        drop(reader);
        producer
            .join()
            .map_err(|_| io::Error::other("layer thread panicked"))?
            .map_err(io::Error::other)?;
        applied.map_err(io::Error::other)?;
    }
    Ok(())
}

fn copy_view(snap: &Snapshot, upper: Option<(&Path, &Path)>, tmp: &Path) -> io::Result<MountGuard> {
    let dir = tempfile::Builder::new().prefix("view-").tempdir_in(tmp)?;
    let target = dir.path().join("merged");
    materialize(snap, &target)?;
    let copy = match upper {
        Some((u, _)) => {
            let pristine = dir.path().join("pristine");
            materialize(snap, &pristine)?;
            Some(CopyState {
                pristine,
                upper: u.to_path_buf(),
            })
        }
        None => None,
    };
    Ok(MountGuard {
        target,
        mounted: false,
        copy,
        _keep: Some(dir),
    })
}

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_encoded_bytes()).map_err(io::Error::other)
}

fn mount(
    source: &str,
    target: &Path,
    fstype: &str,
    flags: libc::c_ulong,
    data: &str,
) -> io::Result<()> {
    let s = CString::new(source).map_err(io::Error::other)?;
    let t = cstr(target)?;
    let f = CString::new(fstype).map_err(io::Error::other)?;
    let d = CString::new(data).map_err(io::Error::other)?;
    // SAFETY: all pointers are valid NUL-terminated strings living across the call.
    let rc = unsafe {
        libc::mount(
            s.as_ptr(),
            t.as_ptr(),
            f.as_ptr(),
            flags,
            d.as_ptr() as *const libc::c_void,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A new empty directory under `tmp`, on a tmpfs of its own where the
/// kernel lets us mount one (gone at once when the guard drops, however
/// many entries it holds), else on `tmp`'s filesystem.
pub fn scratch_tmpfs(tmp: &Path) -> io::Result<MountGuard> {
    let dir = tempfile::Builder::new().prefix("tmpfs-").tempdir_in(tmp)?;
    let target = dir.path().join("fs");
    std::fs::create_dir(&target)?;
    let mounted = mount("tmpfs", &target, "tmpfs", libc::MS_NOSUID, "mode=0755").is_ok();
    Ok(MountGuard {
        target,
        mounted,
        copy: None,
        _keep: Some(dir),
    })
}

/// Mount the snapshot at a new directory under `tmp`. With `upper` (and
/// `work`), the mount is writable and changes land in `upper`; without, it is
/// read-only. An empty snapshot mounts an empty directory.
pub fn mount_overlay(
    snap: &Snapshot,
    upper: Option<(&Path, &Path)>,
    tmp: &Path,
) -> io::Result<MountGuard> {
    if snapshotter(tmp) == Snapshotter::Copy {
        return copy_view(snap, upper, tmp);
    }
    let dir = tempfile::Builder::new().prefix("mnt-").tempdir_in(tmp)?;
    let target = dir.path().join("merged");
    std::fs::create_dir(&target)?;
    let mut lowers = snap.lowers_top_first();
    let empty = dir.path().join("empty");
    if lowers.is_empty() {
        std::fs::create_dir(&empty)?;
        lowers.push(empty.clone());
    }
    let lowerdir = lowers
        .iter()
        .map(|p| escape_opt(p))
        .collect::<Vec<_>>()
        .join(":");
    match upper {
        Some((u, w)) => {
            // See engine-sandbox's clear_volatile_marker.
            let _ = std::fs::remove_dir_all(w.join("work/incompat/volatile"));
            let data = format!(
                // volatile: no writeback of the whole filesystem at unmount
                // (the cache syncs committed snapshots in the background).
                "lowerdir={lowerdir},upperdir={},workdir={},index=off,redirect_dir=off,metacopy=off,volatile",
                escape_opt(u),
                escape_opt(w)
            );
            mount_with_fallback(&target, &data)?;
        }
        None if lowers.len() == 1 => {
            mount(
                &lowers[0].to_string_lossy(),
                &target,
                "",
                libc::MS_BIND | libc::MS_REC,
                "",
            )?;
            let guard = MountGuard {
                target,
                mounted: true,
                copy: None,
                _keep: Some(dir),
            };
            mount(
                "",
                guard.path(),
                "",
                libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_REC,
                "",
            )?;
            return Ok(guard);
        }
        None => {
            // Overlay needs two lowers for a read-only mount without upper.
            let data = format!("lowerdir={lowerdir},index=off,redirect_dir=off,metacopy=off");
            mount_with_fallback(&target, &data)?;
        }
    }
    Ok(MountGuard {
        target,
        mounted: true,
        copy: None,
        _keep: Some(dir),
    })
}

/// Older kernels reject unknown overlay options: retry without them.
fn mount_with_fallback(target: &Path, data: &str) -> io::Result<()> {
    match mount("overlay", target, "overlay", 0, data) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            let stripped = data
                .replace(",redirect_dir=off", "")
                .replace(",metacopy=off", "")
                .replace(",volatile", "");
            mount("overlay", target, "overlay", 0, &stripped)
        }
        Err(e) => Err(e),
    }
}

fn escape_opt(p: &Path) -> String {
    p.to_string_lossy()
        .replace('\\', "\\\\")
        .replace(':', "\\:")
        .replace(',', "\\,")
}

/// Drop directories that overlayfs copied up without a change: empty in the
/// upper dir, not opaque, and with the same mode and owner as in the layers
/// below (a bind-mount stub under `/etc` leaves such a copy behind). Like
/// containerd's differ, directory mtimes alone are not a change.
pub fn prune_unchanged_dirs(upper: &Path, lowers_top_first: &[PathBuf]) -> io::Result<()> {
    fn lower_meta(rel: &Path, lowers: &[PathBuf]) -> Option<std::fs::Metadata> {
        for l in lowers {
            if let Ok(m) = std::fs::symlink_metadata(l.join(rel)) {
                return Some(m);
            }
        }
        None
    }
    fn walk(root: &Path, rel: &Path, lowers: &[PathBuf]) -> io::Result<bool> {
        use std::os::unix::fs::MetadataExt;
        let dir = root.join(rel);
        let mut empty = true;
        for e in std::fs::read_dir(&dir)? {
            let e = e?;
            let child = rel.join(e.file_name());
            if e.file_type()?.is_dir() && walk(root, &child, lowers)? {
                continue;
            }
            empty = false;
        }
        if !empty || rel.as_os_str().is_empty() {
            return Ok(false);
        }
        for key in ["trusted.overlay.opaque", "user.overlay.opaque"] {
            if xattr::get(&dir, key).ok().flatten().is_some() {
                return Ok(false);
            }
        }
        let here = std::fs::symlink_metadata(&dir)?;
        match lower_meta(rel, lowers) {
            Some(m)
                if m.is_dir()
                    && m.mode() == here.mode()
                    && m.uid() == here.uid()
                    && m.gid() == here.gid() =>
            {
                std::fs::remove_dir(&dir)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
    walk(upper, Path::new(""), lowers_top_first).map(|_| ())
}
