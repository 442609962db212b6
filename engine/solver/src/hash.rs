//! Content hashes of what a step reads from a local context: exactly the
//! files its sources select, after `.dockerignore`, by path, type, mode,
//! owner, link target and content (never mtime), files hashed in parallel.
//! Sockets are no part of a context (skipped, with a warning); FIFOs and
//! devices are hashed by type and device number, never opened. The walk
//! also names what it left out ([`Selection::hidden`]), so that a bind
//! mount of the context can show exactly what was hashed
//! (`crate::context_view`).
//!
//! A file's content hash (blake3) can come from the cache's memo, keyed by
//! (device, inode, size, mtime, ctime): a rebuild of a big context then
//! reads only the files that changed. See `engine_cache::memo`.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use engine_cache::{FileHashMemo, FileStamp};
use engine_ir::ignore::IgnorePatterns;
use rayon::prelude::*;

use crate::source::{self, CopyError};

enum Item {
    File(String, fs::Metadata, PathBuf),
    Other(String, fs::Metadata, PathBuf),
}

/// Hash the selection of `sources` under `root`.
pub fn hash_selection(
    root: &Path,
    ignore: Option<&IgnorePatterns>,
    sources: &[String],
) -> Result<String, CopyError> {
    hash_selection_with(root, ignore, sources, None)
}

/// [`hash_selection`], taking file content hashes from `memo` where it
/// has them and adding the ones it computes.
pub fn hash_selection_with(
    root: &Path,
    ignore: Option<&IgnorePatterns>,
    sources: &[String],
    memo: Option<&FileHashMemo>,
) -> Result<String, CopyError> {
    select(root, ignore, sources, memo).map(|s| s.hash)
}

/// What a step reads from a local context: the content hash of its
/// selection, and what a view of the context must hide for the step to see
/// exactly what was hashed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// As [`hash_selection_with`] returns it.
    pub hash: String,
    /// Context-relative paths inside the selection that the filtered
    /// context lacks: the topmost entry of each subtree `.dockerignore`
    /// excludes, and sockets. Sorted within each directory; a directory
    /// comes before nothing below it (nothing below a hidden path is
    /// listed).
    pub hidden: Vec<String>,
    /// Context-relative paths of the sockets among them (never copied, as
    /// they cannot be: worth a warning).
    pub sockets: Vec<String>,
}

#[derive(Default)]
struct Walk {
    items: Vec<Item>,
    hidden: Vec<String>,
    sockets: Vec<String>,
}

/// Walk and hash the selection of `sources` under `root` (see
/// [`Selection`]). Nothing but regular files is ever opened, and those
/// without following symlinks or blocking.
pub fn select(
    root: &Path,
    ignore: Option<&IgnorePatterns>,
    sources: &[String],
    memo: Option<&FileHashMemo>,
) -> Result<Selection, CopyError> {
    let src = source::Source {
        src_root: root,
        ignore,
    };
    let selected = source::selected(src, sources)?;
    let mut walk = Walk::default();
    for (rel, path) in selected {
        collect(root, ignore, &rel, &path, &mut walk).map_err(|e| CopyError::Io {
            path: rel.clone(),
            source: e,
        })?;
    }
    let now = SystemTime::now();
    let hashes: Vec<io::Result<[u8; 32]>> = walk
        .items
        .par_iter()
        .map(|i| hash_item(i, memo, now))
        .collect();
    let mut h = blake3::Hasher::new();
    h.update(b"engine/context-selection/v2\0");
    for (i, r) in hashes.into_iter().enumerate() {
        let bytes = r.map_err(|e| CopyError::Io {
            path: format!("item {i}"),
            source: e,
        })?;
        h.update(&bytes);
    }
    Ok(Selection {
        hash: h.finalize().to_hex().to_string(),
        hidden: walk.hidden,
        sockets: walk.sockets,
    })
}

fn context_rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .map(|r| r.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn collect(
    root: &Path,
    ignore: Option<&IgnorePatterns>,
    rel: &str,
    path: &Path,
    w: &mut Walk,
) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    let ft = meta.file_type();
    if meta.is_dir() {
        w.items
            .push(Item::Other(rel.to_string(), meta, path.to_path_buf()));
        let mut names: Vec<_> = fs::read_dir(path)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for n in names {
            let child_rel = format!("{}/{}", rel.trim_end_matches('/'), n.to_string_lossy());
            let child = path.join(&n);
            let ctx_rel = context_rel(root, &child);
            let mut entered_excluded = false;
            if let Some(ig) = ignore {
                if ig.is_excluded(&ctx_rel) {
                    let is_dir = fs::symlink_metadata(&child)
                        .map(|m| m.is_dir())
                        .unwrap_or(false);
                    if !(is_dir && ig.may_reinclude_under(&ctx_rel)) {
                        w.hidden.push(ctx_rel);
                        continue;
                    }
                    entered_excluded = true;
                }
            }
            let before = (w.items.len(), w.hidden.len(), w.sockets.len());
            collect(root, ignore, &child_rel, &child, w)?;
            if entered_excluded && w.items.len() == before.0 + 1 {
                // An excluded directory with nothing re-included below it
                // is not part of the context (fsutil sends such a directory
                // only as the parent of what it re-includes; COPY makes none).
                w.items.truncate(before.0);
                w.hidden.truncate(before.1);
                w.sockets.truncate(before.2);
                w.hidden.push(ctx_rel);
            }
        }
    } else if ft.is_socket() {
        // Never part of a context: a socket cannot be copied (a warning
        // names it) and a view of the context hides it.
        let r = context_rel(root, path);
        w.hidden.push(r.clone());
        w.sockets.push(r);
    } else if meta.is_file() {
        w.items
            .push(Item::File(rel.to_string(), meta, path.to_path_buf()));
    } else {
        w.items
            .push(Item::Other(rel.to_string(), meta, path.to_path_buf()));
    }
    Ok(())
}

fn header(h: &mut blake3::Hasher, rel: &str, meta: &fs::Metadata) {
    h.update(&(rel.len() as u64).to_le_bytes());
    h.update(rel.as_bytes());
    h.update(&meta.mode().to_le_bytes());
    h.update(&meta.uid().to_le_bytes());
    h.update(&meta.gid().to_le_bytes());
}

fn hash_item(item: &Item, memo: Option<&FileHashMemo>, now: SystemTime) -> io::Result<[u8; 32]> {
    let mut h = blake3::Hasher::new();
    match item {
        Item::File(rel, meta, path) => {
            header(&mut h, rel, meta);
            h.update(&meta.len().to_le_bytes());
            h.update(&content_hash(meta, path, memo, now)?);
        }
        Item::Other(rel, meta, path) => {
            header(&mut h, rel, meta);
            if meta.file_type().is_symlink() {
                let t = fs::read_link(path)?;
                h.update(t.as_os_str().as_encoded_bytes());
            }
            h.update(&meta.rdev().to_le_bytes());
        }
    }
    Ok(*h.finalize().as_bytes())
}

/// blake3 of a regular file's bytes, from the memo when its stamp is known.
pub(crate) fn content_hash(
    meta: &fs::Metadata,
    path: &Path,
    memo: Option<&FileHashMemo>,
    now: SystemTime,
) -> io::Result<[u8; 32]> {
    let stamp = FileStamp::of(meta);
    if let Some(hit) = memo.and_then(|m| m.get(&stamp)) {
        return Ok(hit);
    }
    let mut f = crate::fsutil::open_regular(path, Some(meta))?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    let out = *h.finalize().as_bytes();
    // Only if the file did not change while we read it.
    if let (Some(m), Ok(after)) = (memo, f.metadata()) {
        if FileStamp::of(&after) == stamp {
            m.insert(stamp, out, now);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};
    use std::time::Duration;

    type Change = (&'static str, fn(&Path));

    fn ctx() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        fs::create_dir_all(p.join("src/sub")).unwrap();
        fs::write(p.join("src/a.txt"), b"alpha").unwrap();
        fs::write(p.join("src/sub/b.txt"), b"beta").unwrap();
        symlink("a.txt", p.join("src/link")).unwrap();
        fs::write(p.join("other.txt"), b"not selected").unwrap();
        fs::write(p.join("src/ignored.log"), b"ignored").unwrap();
        d
    }

    fn hash(p: &Path) -> String {
        let ig = IgnorePatterns::from_patterns(&["**/*.log".to_string()]).unwrap();
        hash_selection(p, Some(&ig), &["src".to_string()]).unwrap()
    }

    #[test]
    fn each_input_changes_the_hash() {
        let d = ctx();
        let p = d.path();
        let mut seen = std::collections::HashSet::from([hash(p)]);
        let changes: [Change; 7] = [
            ("content", |p| {
                fs::write(p.join("src/a.txt"), b"alphA").unwrap()
            }),
            ("mode", |p| {
                fs::set_permissions(p.join("src/a.txt"), fs::Permissions::from_mode(0o600)).unwrap()
            }),
            ("owner", |p| {
                std::os::unix::fs::lchown(p.join("src/a.txt"), Some(4242), Some(4242)).unwrap()
            }),
            ("link target", |p| {
                fs::remove_file(p.join("src/link")).unwrap();
                symlink("sub", p.join("src/link")).unwrap();
            }),
            ("type", |p| {
                fs::remove_file(p.join("src/link")).unwrap();
                fs::write(p.join("src/link"), b"sub").unwrap();
            }),
            ("name", |p| {
                fs::rename(p.join("src/sub/b.txt"), p.join("src/sub/c.txt")).unwrap()
            }),
            ("new file", |p| fs::write(p.join("src/new"), b"").unwrap()),
        ];
        for (what, change) in changes {
            change(p);
            assert!(seen.insert(hash(p)), "{what} did not change the hash");
        }
    }

    #[test]
    fn nothing_else_changes_the_hash() {
        let a = ctx();
        let b = ctx();
        let want = hash(a.path());
        assert_eq!(hash(b.path()), want, "another absolute path");
        let p = a.path();
        let changes: [Change; 4] = [
            ("mtime", |p| {
                let f = fs::File::options()
                    .write(true)
                    .open(p.join("src/a.txt"))
                    .unwrap();
                f.set_modified(SystemTime::now() - Duration::from_secs(99_999))
                    .unwrap();
            }),
            ("unselected file", |p| {
                fs::write(p.join("other.txt"), b"changed").unwrap()
            }),
            ("ignored file", |p| {
                fs::write(p.join("src/ignored.log"), b"changed").unwrap()
            }),
            ("new ignored file", |p| {
                fs::write(p.join("src/sub/x.log"), b"x").unwrap()
            }),
        ];
        for (what, change) in changes {
            change(p);
            assert_eq!(hash(p), want, "{what} changed the hash");
        }
    }

    #[test]
    fn memo_hits_replace_reading_and_agree_with_it() {
        let d = ctx();
        let cache = tempfile::tempdir().unwrap();
        let memo = FileHashMemo::load(cache.path());
        let src = ["src".to_string()];
        let plain = hash_selection(d.path(), None, &src).unwrap();
        let with = hash_selection_with(d.path(), None, &src, Some(&memo)).unwrap();
        assert_eq!(plain, with);
        // Files younger than the racy window are not remembered...
        assert!(memo.is_empty());
        // ...but a remembered stamp is trusted without reading: plant a
        // wrong hash for a.txt's stamp and see it used.
        let meta = fs::symlink_metadata(d.path().join("src/a.txt")).unwrap();
        let later = SystemTime::now() + Duration::from_secs(60);
        memo.insert(FileStamp::of(&meta), [0u8; 32], later);
        let planted = hash_selection_with(d.path(), None, &src, Some(&memo)).unwrap();
        assert_ne!(planted, plain);
        // Any change to the file (new ctime) makes the entry useless.
        std::thread::sleep(Duration::from_millis(50));
        fs::write(d.path().join("src/a.txt"), b"alpha").unwrap();
        assert_eq!(
            hash_selection_with(d.path(), None, &src, Some(&memo)).unwrap(),
            plain
        );
    }

    #[test]
    fn the_selection_names_what_a_view_must_hide() {
        let d = ctx();
        let p = d.path();
        fs::create_dir_all(p.join("src/docs/old")).unwrap();
        fs::write(p.join("src/docs/keep.md"), b"k").unwrap();
        fs::write(p.join("src/docs/drop.md"), b"d").unwrap();
        fs::write(p.join("src/docs/old/x.md"), b"x").unwrap();
        fs::create_dir_all(p.join("src/empty-excluded/inner")).unwrap();
        let _sock = std::os::unix::net::UnixListener::bind(p.join("src/sub/agent.sock")).unwrap();
        let ig = IgnorePatterns::parse(
            "**/*.log\nsrc/docs\n!src/docs/keep.md\nsrc/empty-excluded\n!src/empty-excluded/none\n",
        )
        .unwrap();
        let s = select(p, Some(&ig), &["src".to_string()], None).unwrap();
        assert_eq!(
            s.hidden,
            [
                "src/docs/drop.md",
                "src/docs/old",
                "src/empty-excluded",
                "src/ignored.log",
                "src/sub/agent.sock",
            ]
        );
        assert_eq!(s.sockets, ["src/sub/agent.sock"]);
        // Sockets and the excluded directory with nothing re-included in it
        // are not part of the hash: removing them changes nothing.
        drop(_sock);
        fs::remove_file(p.join("src/sub/agent.sock")).unwrap();
        fs::remove_dir_all(p.join("src/empty-excluded")).unwrap();
        let again = select(p, Some(&ig), &["src".to_string()], None).unwrap();
        assert_eq!(again.hash, s.hash);
        // Nothing excluded, nothing hidden, and the hash is hash_selection's.
        let plain = select(p, None, &["src".to_string()], None).unwrap();
        assert!(plain.hidden.is_empty());
        assert_eq!(
            plain.hash,
            hash_selection(p, None, &["src".to_string()]).unwrap()
        );
    }

    #[test]
    fn an_excluded_directory_leading_to_an_exception_is_a_source() {
        // `**` then `!folder1/file1`: BuildKit sends folder1 as the parent of
        // file1, so `ADD folder1` copies file1 alone (issue 10).
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        fs::create_dir_all(p.join("folder1/sub")).unwrap();
        fs::create_dir_all(p.join("folder2")).unwrap();
        fs::write(p.join("folder1/file1"), b"1").unwrap();
        fs::write(p.join("folder1/file2"), b"2").unwrap();
        fs::write(p.join("folder1/sub/s"), b"s").unwrap();
        fs::write(p.join("folder2/o"), b"o").unwrap();
        let ig = IgnorePatterns::parse("**\n!folder1/file1\n!folder2/missing\n").unwrap();
        let src = |s: &str| vec![s.to_string()];
        let s = select(p, Some(&ig), &src("folder1"), None).unwrap();
        assert_eq!(s.hidden, ["folder1/file2", "folder1/sub"]);
        assert_eq!(
            select(p, Some(&ig), &src("fold*"), None).unwrap().hash,
            s.hash,
            "the wildcard matches folder1 only"
        );
        // folder2 leads to an exception that re-includes nothing: it is not
        // part of the context (current BuildKit; 0.8 sent it empty)
        for missing in ["folder2", "folder1/file2", "folder1/sub"] {
            assert!(
                matches!(
                    select(p, Some(&ig), &src(missing), None),
                    Err(CopyError::NotFound(_))
                ),
                "{missing}"
            );
        }
        // what the selection hashes is folder1 and file1: file2 is not read
        fs::write(p.join("folder1/file2"), b"changed").unwrap();
        assert_eq!(
            select(p, Some(&ig), &src("folder1"), None).unwrap().hash,
            s.hash
        );
        fs::write(p.join("folder1/file1"), b"changed").unwrap();
        assert_ne!(
            select(p, Some(&ig), &src("folder1"), None).unwrap().hash,
            s.hash
        );
    }

    #[test]
    fn special_files_are_hashed_without_being_opened() {
        let d = ctx();
        let fifo = d.path().join("src/fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let root = d.path().to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let src = ["src".to_string(), "src/fifo".to_string()];
            let _ = tx.send(select(&root, None, &src, None).map(|s| s.hash));
        });
        let h = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("hashing a FIFO blocked")
            .unwrap();
        fs::remove_file(&fifo).unwrap();
        fs::write(&fifo, b"").unwrap();
        let src = ["src".to_string(), "src/fifo".to_string()];
        assert_ne!(select(d.path(), None, &src, None).unwrap().hash, h);
    }
}
