//! Path handling inside a root directory. Every path that comes from a
//! Dockerfile, an image or a context is resolved here, with symlinks
//! followed *inside* the root (as if chrooted), so that nothing can reach
//! outside it.

use std::io;
use std::path::{Component, Path, PathBuf};

/// Links followed before giving up, as Linux's MAXSYMLINKS.
const MAX_LINKS: usize = 40;

/// Resolve `path` (absolute or relative to the root) inside `root`,
/// following symlinks as if `root` were `/`. The last component is followed
/// only when `follow_last` is set. Missing components are fine: the result
/// is where they would be created.
pub fn resolve_in_root(root: &Path, path: &str, follow_last: bool) -> io::Result<PathBuf> {
    let mut stack: Vec<String> = components(path).into_iter().rev().collect();
    let mut resolved: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(comp) = stack.pop() {
        match comp.as_str() {
            "." => continue,
            ".." => {
                resolved.pop();
                continue;
            }
            _ => {}
        }
        let candidate = join(root, &resolved).join(&comp);
        let is_last = stack.is_empty();
        match std::fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.file_type().is_symlink() && (!is_last || follow_last) => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(io::Error::other(format!(
                        "too many levels of symbolic links in `{path}`"
                    )));
                }
                let target = std::fs::read_link(&candidate)?;
                let target = target.to_string_lossy().into_owned();
                if target.starts_with('/') {
                    resolved.clear();
                }
                for c in components(&target).into_iter().rev() {
                    stack.push(c);
                }
            }
            _ => resolved.push(comp),
        }
    }
    Ok(join(root, &resolved))
}

/// Open `path` for reading only if it is a regular file, without ever
/// blocking or following a symlink in its last component: a FIFO, socket or
/// device is refused before anything opens it. With `expect` (the
/// `symlink_metadata` a walk already has), the file opened must still be
/// that inode; without, it is looked up first.
pub fn open_regular(path: &Path, expect: Option<&std::fs::Metadata>) -> io::Result<std::fs::File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let looked_up;
    let expect = match expect {
        Some(m) => m,
        None => {
            looked_up = std::fs::symlink_metadata(path)?;
            &looked_up
        }
    };
    if !expect.is_file() {
        return Err(not_regular(path));
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let now = f.metadata()?;
    if !now.is_file() || now.dev() != expect.dev() || now.ino() != expect.ino() {
        return Err(io::Error::other(format!(
            "`{}` changed while it was read",
            path.display()
        )));
    }
    Ok(f)
}

fn not_regular(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("`{}` is not a regular file", path.display()),
    )
}

fn components(p: &str) -> Vec<String> {
    Path::new(p)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            Component::ParentDir => Some("..".into()),
            Component::CurDir => Some(".".into()),
            Component::RootDir | Component::Prefix(_) => None,
        })
        .collect()
}

fn join(root: &Path, parts: &[String]) -> PathBuf {
    let mut p = root.to_path_buf();
    for c in parts {
        p.push(c);
    }
    p
}

/// Shell-style glob match of one path against a pattern, as Go's
/// `filepath.Match`: `*` and `?` never match `/`, `[...]` classes with `^`
/// negation (`!` is a literal, as in Go) and ranges, `\` escapes.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Iterative matcher with one backtrack point per star: linear-ish, no
    // exponential blow-up on adversarial patterns.
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                '?' if n[ni] != '/' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' => {
                    if let Some((matched, next)) = class_match(&p, pi, n[ni]) {
                        if matched && n[ni] != '/' {
                            pi = next;
                            ni += 1;
                            continue;
                        }
                    }
                }
                '\\' if pi + 1 < p.len() && p[pi + 1] == n[ni] => {
                    pi += 2;
                    ni += 1;
                    continue;
                }
                c if c == n[ni] && c != '?' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, sn)) if n[sn] != '/' => {
                star = Some((sp, sn + 1));
                pi = sp + 1;
                ni = sn + 1;
            }
            _ => return false,
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Match `c` against the class starting at `p[start] == '['`. Returns
/// (matched, index after the class), or None for a malformed class.
fn class_match(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = i < p.len() && p[i] == '^';
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < p.len() && (p[i] != ']' || first) {
        first = false;
        let mut lo = p[i];
        if lo == '\\' && i + 1 < p.len() {
            i += 1;
            lo = p[i];
        }
        let mut hi = lo;
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            hi = p[i + 2];
            if hi == '\\' && i + 3 < p.len() {
                hi = p[i + 3];
                i += 1;
            }
            i += 2;
        }
        if lo <= c && c <= hi {
            matched = true;
        }
        i += 1;
    }
    if i >= p.len() {
        return None;
    }
    Some((matched != negate, i + 1))
}

pub fn has_wildcard(p: &str) -> bool {
    p.contains(['*', '?', '['])
}

/// Keep user-visible and capability xattrs; overlay-private ones never travel.
pub(crate) fn copy_xattrs(from: &Path, to: &Path) {
    let Ok(names) = xattr::list(from) else { return };
    for name in names {
        let n = name.to_string_lossy();
        if n.starts_with("trusted.overlay.") || n.starts_with("user.overlay.") {
            continue;
        }
        if let Ok(Some(v)) = xattr::get(from, &name) {
            let _ = xattr::set(to, &name, &v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir_all(root.join("real/dir")).unwrap();
        std::os::unix::fs::symlink("/", root.join("up")).unwrap();
        std::os::unix::fs::symlink("../../../..", root.join("real/esc")).unwrap();
        std::os::unix::fs::symlink("/real/dir", root.join("abs")).unwrap();
        assert_eq!(
            resolve_in_root(root, "/up/etc/passwd", true).unwrap(),
            root.join("etc/passwd")
        );
        assert_eq!(
            resolve_in_root(root, "real/esc/x", true).unwrap(),
            root.join("x")
        );
        assert_eq!(
            resolve_in_root(root, "/abs/f", true).unwrap(),
            root.join("real/dir/f")
        );
        assert_eq!(
            resolve_in_root(root, "/abs", false).unwrap(),
            root.join("abs")
        );
        assert_eq!(
            resolve_in_root(root, "../../..", true).unwrap(),
            root.to_path_buf()
        );
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert!(resolve_in_root(root, "/loop/x", true).is_err());
    }

    #[test]
    fn only_regular_files_are_opened() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::write(root.join("file"), "data").unwrap();
        std::os::unix::fs::symlink("file", root.join("link")).unwrap();
        let fifo = root.join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let _sock = std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();
        let mut s = String::new();
        std::io::Read::read_to_string(&mut open_regular(&root.join("file"), None).unwrap(), &mut s)
            .unwrap();
        assert_eq!(s, "data");
        for p in ["link", "fifo", "sock", "."] {
            let e = open_regular(&root.join(p), None).unwrap_err();
            assert!(e.to_string().contains("not a regular file"), "{p}: {e}");
        }
        // A file listed by a walk must still be that file when opened.
        let listed = std::fs::symlink_metadata(root.join("file")).unwrap();
        std::fs::write(root.join("new"), "other").unwrap();
        std::fs::rename(root.join("new"), root.join("file")).unwrap();
        assert!(open_regular(&root.join("file"), Some(&listed)).is_err());
        // Even given the metadata of a regular file, a FIFO in its place
        // does not block.
        std::fs::remove_file(&fifo).unwrap();
        std::fs::write(&fifo, "x").unwrap();
        let listed = std::fs::symlink_metadata(&fifo).unwrap();
        std::fs::remove_file(&fifo).unwrap();
        // SAFETY: valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        assert!(open_regular(&fifo, Some(&listed)).is_err());
    }

    #[test]
    fn globs_match_like_go() {
        assert!(glob_match("*.txt", "a.txt"));
        assert!(!glob_match("*.txt", "d/a.txt"));
        assert!(glob_match("d/*.txt", "d/a.txt"));
        assert!(glob_match("fil?", "file"));
        assert!(glob_match("[a-c]x", "bx"));
        assert!(!glob_match("[^a-c]x", "bx"));
        assert!(
            glob_match("[!a-c]x", "!x"),
            "`!` is a literal in Go's classes"
        );
        assert!(glob_match("[!a-c]x", "bx"));
        assert!(glob_match("a\\*b", "a*b"));
        assert!(!glob_match("a\\*b", "axb"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("a*a*a*a*a*a*a*a*b", &"a".repeat(200)));
    }
}
