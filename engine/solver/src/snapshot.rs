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

/// An overlay (or bind) mount in the engine's own mount namespace, undone
/// on drop.
pub struct MountGuard {
    target: PathBuf,
    _keep: Option<tempfile::TempDir>,
}

impl MountGuard {
    pub fn path(&self) -> &Path {
        &self.target
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        if let Ok(c) = cstr(&self.target) {
            // SAFETY: valid NUL-terminated path; MNT_DETACH cannot fail in a way
            // that leaves memory unsafe.
            unsafe {
                libc::umount2(c.as_ptr(), libc::MNT_DETACH);
            }
        }
    }
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

/// Mount the snapshot at a new directory under `tmp`. With `upper` (and
/// `work`), the mount is writable and changes land in `upper`; without, it is
/// read-only. An empty snapshot mounts an empty directory.
pub fn mount_overlay(
    snap: &Snapshot,
    upper: Option<(&Path, &Path)>,
    tmp: &Path,
) -> io::Result<MountGuard> {
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
            let data = format!(
                "lowerdir={lowerdir},upperdir={},workdir={},index=off,redirect_dir=off,metacopy=off",
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
                target: target.clone(),
                _keep: None,
            };
            mount(
                "",
                &target,
                "",
                libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_REC,
                "",
            )?;
            return Ok(MountGuard {
                target: guard_into(guard),
                _keep: Some(dir),
            });
        }
        None => {
            // Overlay needs two lowers for a read-only mount without upper.
            let data = format!("lowerdir={lowerdir},index=off,redirect_dir=off,metacopy=off");
            mount_with_fallback(&target, &data)?;
        }
    }
    Ok(MountGuard {
        target,
        _keep: Some(dir),
    })
}

fn guard_into(mut g: MountGuard) -> PathBuf {
    let t = std::mem::take(&mut g.target);
    std::mem::forget(g);
    t
}

/// Older kernels reject unknown overlay options: retry without them.
fn mount_with_fallback(target: &Path, data: &str) -> io::Result<()> {
    match mount("overlay", target, "overlay", 0, data) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            let stripped = data
                .replace(",redirect_dir=off", "")
                .replace(",metacopy=off", "");
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
