//! What a bind mount of a local context shows: the filtered context, not
//! the directory as it is on disk. The context directory is an overlay
//! lower layer; above it, a small layer of whiteouts hides what the step's
//! selection walk left out (`hash::Selection::hidden`: what
//! `.dockerignore` excludes, and sockets). The view is thus exactly what
//! the step's cache key covers, and it costs one whiteout per hidden
//! subtree, never a copy of the context. When nothing is hidden the context
//! is mounted as it is.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::snapshot::MountGuard;

/// Make, under `tmp`, a layer in overlay-upper form that hides `hidden`
/// (paths relative to `context`) when stacked over `context`. Its
/// directories take the mode, owner, times and xattrs of the context's, so
/// that the merged view shows them as they are. The layer is the guard's
/// path, on a tmpfs where the kernel allows (thousands of whiteouts then
/// cost milliseconds, not the ext4 metadata writes they cost in the state
/// directory, and nothing is left to delete).
pub fn hiding_layer(context: &Path, hidden: &[String], tmp: &Path) -> io::Result<MountGuard> {
    let guard = crate::snapshot::scratch_tmpfs(tmp)?;
    let layer = guard.path().to_path_buf();
    let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
    for rel in hidden {
        let rel = Path::new(rel);
        if rel.as_os_str().is_empty()
            || rel
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(io::Error::other(format!(
                "cannot hide `{}` of the build context",
                rel.display()
            )));
        }
        let mut parent = PathBuf::new();
        for c in rel.parent().into_iter().flat_map(Path::components) {
            parent.push(c);
            if dirs.insert(parent.clone()) {
                fs::create_dir(layer.join(&parent))?;
            }
        }
        whiteout(&layer.join(rel))?;
    }
    // Deepest first, the root last: making a child changes its parent's
    // times.
    for rel in dirs.iter().rev().chain(std::iter::once(&PathBuf::new())) {
        like(&context.join(rel), &layer.join(rel))?;
    }
    Ok(guard)
}

/// An overlayfs whiteout: a 0/0 character device.
fn whiteout(p: &Path) -> io::Result<()> {
    let c = CString::new(p.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
    // SAFETY: `c` is a valid NUL-terminated path; mknod has no other preconditions.
    let rc = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR, libc::makedev(0, 0)) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Give the directory `to` the metadata of the directory `from`.
fn like(from: &Path, to: &Path) -> io::Result<()> {
    let m = fs::symlink_metadata(from)?;
    crate::fsutil::copy_xattrs(from, to);
    std::os::unix::fs::lchown(to, Some(m.uid()), Some(m.gid()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(m.mode() & 0o7777))?;
    let a = filetime::FileTime::from_last_access_time(&m);
    let t = filetime::FileTime::from_last_modification_time(&m);
    filetime::set_symlink_file_times(to, a, t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{mount_overlay, Layer, Snapshot};
    use std::sync::{Arc, Mutex};

    fn layer(dir: &Path) -> Arc<Layer> {
        Arc::new(Layer {
            dir: dir.to_path_buf(),
            blobs: Mutex::new(Some(Vec::new())),
            key: String::new(),
        })
    }

    fn listing(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            for e in fs::read_dir(root.join(&rel)).unwrap() {
                let e = e.unwrap();
                let r = rel.join(e.file_name());
                if e.file_type().unwrap().is_dir() {
                    stack.push(r.clone());
                }
                out.push(r.to_string_lossy().into_owned());
            }
        }
        out.sort();
        out
    }

    #[test]
    fn the_view_lacks_exactly_what_is_hidden_and_keeps_directory_metadata() {
        let ctx = tempfile::tempdir().unwrap();
        let p = ctx.path();
        fs::create_dir_all(p.join("a/b")).unwrap();
        fs::write(p.join("a/b/secret"), "s").unwrap();
        fs::write(p.join("a/b/kept"), "k").unwrap();
        fs::write(p.join("top"), "t").unwrap();
        fs::create_dir(p.join("gone")).unwrap();
        fs::write(p.join("gone/x"), "x").unwrap();
        fs::set_permissions(p.join("a/b"), fs::Permissions::from_mode(0o705)).unwrap();
        std::os::unix::fs::lchown(p.join("a"), Some(1234), Some(4321)).unwrap();
        let state = tempfile::tempdir().unwrap();
        let hidden = vec!["a/b/secret".to_string(), "gone".to_string()];
        let h = hiding_layer(p, &hidden, state.path()).unwrap();
        let snap = Snapshot::default().with(layer(p)).with(layer(h.path()));
        let view = mount_overlay(&snap, None, state.path()).unwrap();
        let v = view.path();
        assert_eq!(listing(v), ["a", "a/b", "a/b/kept", "top"]);
        let (want, got) = (
            fs::symlink_metadata(p.join("a/b")).unwrap(),
            fs::symlink_metadata(v.join("a/b")).unwrap(),
        );
        assert_eq!(got.mode(), want.mode());
        assert_eq!(got.mtime(), want.mtime());
        let got = fs::symlink_metadata(v.join("a")).unwrap();
        assert_eq!((got.uid(), got.gid()), (1234, 4321));
        drop(view);
        // The context itself is untouched.
        assert!(p.join("a/b/secret").exists() && p.join("gone/x").exists());
    }

    #[test]
    fn paths_leaving_the_context_are_refused() {
        let ctx = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        for bad in ["../x", "/etc", "", "a/../../b"] {
            assert!(
                hiding_layer(ctx.path(), &[bad.to_string()], state.path()).is_err(),
                "{bad}"
            );
        }
    }
}
