//! Mounting, with the new mount API (`fsopen`, `open_tree`, `move_mount`): every mount is
//! made detached and then attached onto a target *file descriptor* resolved inside the
//! root, so no path is ever walked again by the kernel after it was checked.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::mount::{
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount,
    open_tree, FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags,
};

use crate::sys;

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a nul byte"))
}

/// The messages a filesystem context logged (what `dmesg` would otherwise get).
fn fs_log(fs: BorrowedFd<'_>) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    for _ in 0..16 {
        match rustix::io::read(fs, &mut buf) {
            Ok(n) if n > 0 => {
                let msg = String::from_utf8_lossy(&buf[..n]);
                // Messages start with "e ", "w " or "i ".
                out.push(msg.get(2..).unwrap_or(&msg).trim().to_string());
            }
            _ => break,
        }
    }
    out.join("; ")
}

fn with_log(fs: BorrowedFd<'_>, what: &str, e: rustix::io::Errno) -> String {
    let log = fs_log(fs);
    if log.is_empty() {
        format!("{what}: {}", io::Error::from(e))
    } else {
        format!("{what}: {} ({log})", io::Error::from(e))
    }
}

/// A new detached mount of a fresh `fstype` filesystem.
pub(crate) fn new_fs(
    fstype: &str,
    opts: &[(&str, Option<&str>)],
    attrs: u64,
) -> Result<OwnedFd, String> {
    let fs = fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(|e| format!("fsopen {fstype}: {}", io::Error::from(e)))?;
    for (k, v) in opts {
        let r = match v {
            Some(v) => fsconfig_set_string(&fs, *k, *v),
            None => fsconfig_set_flag(&fs, *k),
        };
        r.map_err(|e| with_log(fs.as_fd(), &format!("{fstype} option {k}"), e))?;
    }
    fsconfig_create(&fs).map_err(|e| with_log(fs.as_fd(), &format!("create {fstype}"), e))?;
    fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::from_bits_retain(attrs as u32),
    )
    .map_err(|e| with_log(fs.as_fd(), &format!("mount {fstype}"), e))
}

/// A detached copy of the mount tree at `path` (a bind mount waiting to be attached).
pub(crate) fn clone_path(path: &Path, recursive: bool) -> io::Result<OwnedFd> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    Ok(open_tree(rustix::fs::CWD, path, flags)?)
}

/// A detached copy of the mount tree at `fd`.
pub(crate) fn clone_fd(fd: BorrowedFd<'_>, recursive: bool) -> io::Result<OwnedFd> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE
        | OpenTreeFlags::OPEN_TREE_CLOEXEC
        | OpenTreeFlags::AT_EMPTY_PATH;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    Ok(open_tree(fd, "", flags)?)
}

/// Attaches the detached mount `mnt` onto `target`.
pub(crate) fn attach(mnt: BorrowedFd<'_>, target: BorrowedFd<'_>) -> io::Result<()> {
    Ok(move_mount(
        mnt,
        "",
        target,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )?)
}

/// Attaches the detached mount `mnt` onto the path `target`.
pub(crate) fn attach_path(mnt: BorrowedFd<'_>, target: &Path) -> io::Result<()> {
    Ok(move_mount(
        mnt,
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )?)
}

/// Makes every mount of the current (new) mount namespace private, so that nothing
/// mounted here propagates back to the host.
pub(crate) fn make_rprivate() -> io::Result<()> {
    // SAFETY: valid nul-terminated strings; null fstype and data are allowed.
    sys::cvt(unsafe {
        libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    })
    .map(drop)
}

/// Whether the running kernel's overlayfs knows `param` (as a module parameter).
fn overlay_knows(param: &str) -> bool {
    Path::new("/sys/module/overlay/parameters")
        .join(param)
        .exists()
}

/// Mounts an overlayfs at `target`: `index=off`, and `redirect_dir=off`, `metacopy=off`
/// where the kernel knows them, so the upper directory is a plain diff. `attrs` are
/// `MOUNT_ATTR_*` flags of the mount (only `NODEV` is used).
pub(crate) fn mount_overlay(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
    attrs: u64,
) -> Result<(), String> {
    let first = match overlay_new_api(lowers, upper, work, attrs) {
        Ok(mnt) => {
            return attach_path(mnt.as_fd(), target)
                .map_err(|e| format!("attach overlay on {}: {e}", target.display()))
        }
        Err(e) => e,
    };
    overlay_classic(lowers, upper, work, target, attrs)
        .map_err(|e| format!("{e} (new mount api: {first})"))
}

/// A `volatile` overlay leaves `work/incompat/volatile` in its workdir, and
/// overlayfs refuses to mount that workdir again while it is there (the
/// upper directory may have missed writes in a crash). Ours are reused only
/// after a clean unmount, and a snapshot is synced by the cache when it is
/// committed, so the marker says nothing we need: it goes.
pub(crate) fn clear_volatile_marker(work: &Path) {
    let _ = std::fs::remove_dir_all(work.join("work/incompat/volatile"));
}

fn overlay_new_api(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    attrs: u64,
) -> Result<OwnedFd, String> {
    clear_volatile_marker(work);
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(|e| format!("fsopen overlay: {}", io::Error::from(e)))?;
    let set = |k: &str, v: &Path| {
        fsconfig_set_string(&fs, k, v)
            .map_err(|e| with_log(fs.as_fd(), &format!("overlay {k} {}", v.display()), e))
    };
    set("source", Path::new("overlay"))?;
    // "lowerdir+" (Linux 6.8) takes one layer per call: no escaping, no page-size limit.
    for l in lowers {
        set("lowerdir+", l)?;
    }
    set("upperdir", upper)?;
    set("workdir", work)?;
    fsconfig_set_string(&fs, "index", "off")
        .map_err(|e| with_log(fs.as_fd(), "overlay index=off", e))?;
    for opt in ["redirect_dir", "metacopy"] {
        if let Err(e) = fsconfig_set_string(&fs, opt, "off") {
            if overlay_knows(opt) {
                return Err(with_log(fs.as_fd(), &format!("overlay {opt}=off"), e));
            }
            let _ = fs_log(fs.as_fd());
        }
    }
    // No writeback when the overlay goes away (overlayfs would sync the
    // whole upper filesystem there, on the step's critical path): the cache
    // syncs committed snapshots in the background (engine-cache durable.rs).
    if fsconfig_set_flag(&fs, "volatile").is_err() {
        let _ = fs_log(fs.as_fd());
    }
    fsconfig_create(&fs).map_err(|e| with_log(fs.as_fd(), "create overlay", e))?;
    fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::from_bits_retain(attrs as u32),
    )
    .map_err(|e| with_log(fs.as_fd(), "mount overlay", e))
}

fn overlay_classic(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
    attrs: u64,
) -> Result<(), String> {
    let esc = |p: &Path| -> Result<String, String> {
        let s = p
            .to_str()
            .ok_or_else(|| format!("overlay path {} is not utf-8", p.display()))?;
        if s.contains([',', ':', '\\']) {
            return Err(format!("overlay path {s} contains ',', ':' or '\\'"));
        }
        Ok(s.to_string())
    };
    let lower: Vec<String> = lowers.iter().map(|l| esc(l)).collect::<Result<_, _>>()?;
    let mut data = format!(
        "lowerdir={},upperdir={},workdir={},index=off",
        lower.join(":"),
        esc(upper)?,
        esc(work)?
    );
    for opt in ["redirect_dir", "metacopy"] {
        if overlay_knows(opt) {
            data.push_str(&format!(",{opt}=off"));
        }
    }
    if data.len() >= 4096 {
        return Err(format!(
            "overlay mount options are {} bytes, over the kernel's one-page limit ({} layers)",
            data.len(),
            lowers.len()
        ));
    }
    let t = cstr(target).map_err(|e| e.to_string())?;
    let flags = if attrs & sys::MOUNT_ATTR_NODEV != 0 {
        libc::MS_NODEV
    } else {
        0
    };
    let mount = |data: &str| {
        let data = CString::new(data).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: valid nul-terminated strings.
        sys::cvt(unsafe {
            libc::mount(
                c"overlay".as_ptr(),
                t.as_ptr(),
                c"overlay".as_ptr(),
                flags,
                data.as_ptr().cast(),
            )
        })
        .map(drop)
    };
    clear_volatile_marker(work);
    // `volatile` (Linux 5.10) as in overlay_new_api; older kernels refuse it.
    match mount(&format!("{data},volatile")) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => mount(&data),
        r => r,
    }
    .map_err(|e| format!("mount overlay on {}: {e}", target.display()))
}
