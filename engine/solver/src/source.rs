//! Which files a COPY or ADD source selects: a path or a wildcard pattern
//! resolved inside the source root, filtered by the context's
//! `.dockerignore` the way BuildKit's context transfer filters it. Shared
//! by the copy itself (`copy.rs`) and the content hash of a COPY's inputs
//! (`hash.rs`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use engine_ir::ignore::IgnorePatterns;

use crate::fsutil::{glob_match, has_wildcard, resolve_in_root};

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("\"/{0}\": not found")]
    NotFound(String),
    #[error("no source files were specified: `{0}` matched nothing")]
    NoMatch(String),
    #[error("when using COPY with more than one source file, the destination must be a directory and end with a /")]
    NeedsDirDest,
    #[error("cannot copy to `{path}`: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot extract `{path}`: {source}")]
    Archive {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("COPY --exclude: {0}")]
    Exclude(#[from] engine_ir::ignore::IgnoreError),
}

impl CopyError {
    /// Whether the copy failed on the host (I/O), not because of what the
    /// step asks for (a source that is not there, a bad pattern or archive).
    pub fn is_io(&self) -> bool {
        matches!(self, CopyError::Io { .. })
    }
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CopyError + '_ {
    move |source| CopyError::Io {
        path: path.display().to_string(),
        source,
    }
}

pub(crate) struct Matched {
    /// Relative to the source root, as found.
    pub(crate) rel: String,
    /// Where it lives on disk (top-level symlink followed).
    pub(crate) path: PathBuf,
    /// For `--parents`: the directories to recreate under the destination.
    pub(crate) parents: String,
}

pub(crate) fn is_ignored(req: &Source<'_>, rel: &str) -> bool {
    req.ignore
        .is_some_and(|i| !rel.is_empty() && rel != "." && i.is_excluded(rel))
}

/// Whether the context path `rel` (found on disk at `disk`) is part of the
/// filtered context BuildKit transfers: no ancestor is an excluded
/// directory the walk skips, and it is either not excluded or an excluded
/// directory the walk enters and finds something included in (fsutil sends
/// such a directory as the parent of what it re-includes, so `**` then
/// `!folder1/file1` makes `folder1` a source holding just `file1`).
pub(crate) fn in_context(req: &Source<'_>, rel: &str, disk: &Path) -> bool {
    let Some(ig) = req.ignore else {
        return true;
    };
    let rel = clean_rel(rel);
    let rel = rel.as_str();
    if rel.is_empty() {
        return true;
    }
    let mut end = 0;
    while let Some(i) = rel[end..].find('/') {
        let ancestor = &rel[..end + i];
        if ig.is_excluded(ancestor) && !ig.may_reinclude_under(ancestor) {
            return false;
        }
        end += i + 1;
    }
    !ig.is_excluded(rel) || reincludes_below(ig, rel, disk)
}

/// `rel` without `.` and `..` elements (a `..` above the root stays at the
/// root) and without leading, trailing or doubled slashes.
fn clean_rel(rel: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in rel.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

/// For the excluded context path `rel` (on disk at `disk`): whether it is a
/// directory the context walk enters and finds something included in.
fn reincludes_below(ig: &IgnorePatterns, rel: &str, disk: &Path) -> bool {
    if !fs::symlink_metadata(disk).is_ok_and(|m| m.is_dir()) || !ig.may_reinclude_under(rel) {
        return false;
    }
    let Ok(entries) = fs::read_dir(disk) else {
        return false;
    };
    entries.filter_map(|e| e.ok()).any(|e| {
        let child = join_rel(rel, &e.file_name().to_string_lossy());
        !ig.is_excluded(&child) || reincludes_below(ig, &child, &e.path())
    })
}

/// Whether a source, once its symlinks are resolved to `path`, lies outside
/// the filtered context: a link may not lead into an excluded directory
/// (the filtered context BuildKit sends has the link, not the directory).
pub(crate) fn resolves_into_ignored(req: &Source<'_>, path: &Path) -> bool {
    req.ignore.is_some()
        && path
            .strip_prefix(req.src_root)
            .is_ok_and(|r| !in_context(req, &r.to_string_lossy(), path))
}

/// Where sources are read from: a root and, for a local context, its
/// `.dockerignore`.
#[derive(Clone, Copy)]
pub struct Source<'a> {
    pub src_root: &'a Path,
    pub ignore: Option<&'a IgnorePatterns>,
}

/// The paths (top-level symlinks followed) that `sources` select, in order:
/// what a COPY of them reads, for content hashing.
pub fn selected(src: Source<'_>, sources: &[String]) -> Result<Vec<(String, PathBuf)>, CopyError> {
    let mut out = Vec::new();
    for s in sources {
        out.extend(expand_source(src, s)?.into_iter().map(|m| (m.rel, m.path)));
    }
    Ok(out)
}

pub(crate) fn expand_source(req: Source<'_>, src: &str) -> Result<Vec<Matched>, CopyError> {
    // `--parents` keeps what follows a `/./` pivot, or the whole parent path.
    let (pivot_prefix, pattern) = match src.find("/./") {
        Some(i) => (src[..i].to_string(), src.replacen("/./", "/", 1)),
        None => (String::new(), src.to_string()),
    };
    let parents_of = |rel: &str| -> String {
        let rel_after = rel
            .strip_prefix(&pivot_prefix)
            .unwrap_or(rel)
            .trim_start_matches('/');
        match rel_after.rsplit_once('/') {
            Some((p, _)) => p.to_string(),
            None => String::new(),
        }
    };
    let pattern = pattern.trim_end_matches('/').to_string();
    let pattern = if pattern.is_empty() {
        ".".to_string()
    } else {
        pattern
    };
    if !has_wildcard(&pattern) {
        let path = resolve_in_root(req.src_root, &pattern, true).map_err(io_err(req.src_root))?;
        if fs::symlink_metadata(&path).is_err()
            || !in_context(&req, &pattern, &path)
            || resolves_into_ignored(&req, &path)
        {
            return Err(CopyError::NotFound(pattern));
        }
        return Ok(vec![Matched {
            parents: parents_of(&pattern),
            rel: pattern,
            path,
        }]);
    }
    let mut found = Vec::new();
    walk_glob(req, &pattern, &mut found).map_err(io_err(req.src_root))?;
    if found.is_empty() {
        return Err(CopyError::NoMatch(src.to_string()));
    }
    found.sort();
    let matched: Vec<Matched> = found
        .into_iter()
        .map(|rel| {
            let path = resolve_in_root(req.src_root, &rel, true)
                .unwrap_or_else(|_| req.src_root.join(&rel));
            Matched {
                parents: parents_of(&rel),
                rel,
                path,
            }
        })
        .filter(|m| !resolves_into_ignored(&req, &m.path))
        .collect();
    if matched.is_empty() {
        return Err(CopyError::NoMatch(src.to_string()));
    }
    Ok(matched)
}

/// Match a wildcard pattern segment by segment, listing only the
/// directories the pattern can reach.
fn walk_glob(req: Source<'_>, pattern: &str, out: &mut Vec<String>) -> io::Result<()> {
    let segs: Vec<&str> = pattern
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    let mut frontier = vec![String::new()];
    for (i, seg) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        let mut next = Vec::new();
        for dir in &frontier {
            let disk = resolve_in_root(req.src_root, if dir.is_empty() { "." } else { dir }, true)?;
            if !has_wildcard(seg) {
                let rel = join_rel(dir, seg);
                let path = disk.join(seg);
                if fs::symlink_metadata(&path).is_ok() && in_context(&req, &rel, &path) {
                    next.push(rel);
                }
                continue;
            }
            let Ok(entries) = fs::read_dir(&disk) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            for name in names {
                let rel = join_rel(dir, &name);
                if glob_match(seg, &name) && in_context(&req, &rel, &disk.join(&name)) {
                    if !last && !disk.join(&name).is_dir() {
                        continue;
                    }
                    next.push(rel);
                }
            }
        }
        frontier = next;
    }
    out.extend(frontier.into_iter().filter(|f| !f.is_empty()));
    Ok(())
}

pub(crate) fn join_rel(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}
