//! Extended attribute policy and helpers.

use std::io;
use std::path::Path;

use rustix::io::Errno;

/// Whether an extended attribute found on disk is carried into layers.
///
/// Kept: `security.capability` (file capabilities, like BuildKit) and
/// `user.*` except `user.overlay.*`. Everything else (`trusted.*`
/// including overlayfs bookkeeping, `security.selinux`, ACLs) describes the
/// host rather than the image and is dropped.
pub fn keep_xattr(name: &[u8]) -> bool {
    name == b"security.capability" || (name.starts_with(b"user.") && !is_overlay_xattr(name))
}

/// Overlayfs bookkeeping attributes: never written by us when applying, so a
/// layer cannot plant redirects or opaque markers in a snapshot.
pub(crate) fn is_overlay_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

fn unsupported(e: Errno) -> bool {
    e == Errno::NOTSUP || e == Errno::OPNOTSUPP
}

/// Names of all extended attributes of `path` (not following a final symlink).
pub(crate) fn list(path: &Path) -> io::Result<Vec<Vec<u8>>> {
    loop {
        let size = match rustix::fs::llistxattr_query(path) {
            Ok(s) => s,
            Err(e) if unsupported(e) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        if size == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; size];
        match rustix::fs::llistxattr(path, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf
                    .split(|b| *b == 0)
                    .filter(|n| !n.is_empty())
                    .map(<[u8]>::to_vec)
                    .collect());
            }
            Err(Errno::RANGE) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Value of one extended attribute, `None` when absent.
pub(crate) fn get(path: &Path, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
    loop {
        let size = match rustix::fs::lgetxattr_query(path, name) {
            Ok(s) => s,
            Err(e) if e == Errno::NODATA || unsupported(e) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut buf = vec![0u8; size];
        if size == 0 {
            return Ok(Some(buf));
        }
        match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(Errno::RANGE) => continue,
            Err(Errno::NODATA) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
}

/// The attributes of `path` that [`keep_xattr`] keeps, sorted by name.
pub(crate) fn read_kept(path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    for name in list(path)? {
        if !keep_xattr(&name) {
            continue;
        }
        if let Some(v) = get(path, &name)? {
            out.push((name, v));
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy() {
        assert!(keep_xattr(b"security.capability"));
        assert!(keep_xattr(b"user.foo"));
        assert!(!keep_xattr(b"user.overlay.opaque"));
        assert!(!keep_xattr(b"trusted.overlay.opaque"));
        assert!(!keep_xattr(b"security.selinux"));
        assert!(!keep_xattr(b"system.posix_acl_access"));
    }
}
