//! `.dockerignore` rules, with the semantics of Docker/BuildKit.
//!
//! Three Go components define the behaviour reproduced here:
//!
//! * `moby/patternmatcher/ignorefile.ReadAll` turns the file into patterns:
//!   a UTF-8 BOM is dropped, lines starting with `#` are comments, the rest
//!   are trimmed, blank ones skipped, then cleaned like `filepath.Clean`
//!   with one leading `/` removed (`!` exceptions keep their `!`).
//! * `moby/patternmatcher` compiles each pattern: `*` matches within one
//!   path element, `?` one character other than `/`, `**` any number of
//!   elements (including none), `\` escapes, and `[...]`, `^` and escapes
//!   are handed to Go's regexp engine as they are (so `[...]` are Go regexp
//!   classes). Patterns are checked with `filepath.Match` when loaded.
//! * `tonistiigi/fsutil` walks the context: each path is matched with
//!   `MatchesUsingParentResults`, i.e. against every pattern with the
//!   results for its parent directory carried down — a pattern that matched
//!   a directory matches everything below it, the last matching pattern
//!   wins, and `!` patterns can re-include paths below an excluded
//!   directory. Whether the walk must enter an excluded directory at all is
//!   fsutil's prefix test (see [`IgnorePatterns::may_reinclude_under`]).
//!
//! Deviations: patterns that Go would only reject when first used (e.g.
//! `[z-a]`, which passes `filepath.Match` but is not a valid regexp) are
//! rejected up front by [`IgnorePatterns::parse`]; Go regexp Unicode classes
//! (`\pL`, `\p{Greek}`) are not supported and rejected as well, and so are
//! expressions compiling to more than 100 000 instructions (only reachable
//! with many `{1000}` repetitions, which Go also rejects past its own
//! limit).

mod gopath;
/// Public for the fuzz target that compares it with the `regex` crate
/// (frontends/fuzz/fuzz_targets/go_regex.rs); not an API.
#[doc(hidden)]
pub mod regex;

use serde::{Deserialize, Serialize};

/// Why a set of ignore patterns could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreError {
    /// A pattern that is only `!`.
    #[error("illegal exclusion pattern: \"!\"")]
    IllegalExclusion,
    /// A pattern that Go's `filepath.Match` or regexp engine rejects.
    #[error("syntax error in pattern {pattern:?}")]
    BadPattern { pattern: String },
    /// A line longer than Go's `bufio.Scanner` accepts (65535 bytes).
    #[error("line {line} of the ignore file is longer than 65535 bytes")]
    LineTooLong { line: usize },
}

/// Longest line `bufio.Scanner` reads with its default buffer.
const MAX_LINE: usize = 64 * 1024 - 1;

#[derive(Debug, Clone)]
enum Matcher {
    /// the path equals the pattern
    Exact,
    /// `prefix**` where everything before the `**` was literal (bytes, as
    /// Go slices the pattern)
    Prefix(Vec<u8>),
    /// `**suffix` (from a leading `**`)
    Suffix(Vec<u8>),
    Regex(regex::Regex),
}

#[derive(Debug, Clone)]
struct Pattern {
    exclusion: bool,
    /// the cleaned pattern, without its `!`
    text: String,
    matcher: Matcher,
}

/// Regexp-special characters that patternmatcher escapes. It means to
/// escape `.+()|{}$`, but its lookup table only works for characters below
/// 64, so `|`, `{` and `}` reach Go's regexp engine unescaped (as
/// alternation and counted repetition); that behaviour is kept.
fn should_escape(c: char) -> bool {
    matches!(c, '.' | '+' | '(' | ')' | '$')
}

impl Pattern {
    /// patternmatcher's `New` for one (already trimmed, non-empty) entry.
    fn new(raw: &str) -> Result<Self, IgnoreError> {
        let cleaned = gopath::clean(raw);
        let (exclusion, text) = match cleaned.strip_prefix('!') {
            Some("") => return Err(IgnoreError::IllegalExclusion),
            Some(rest) => (true, rest.to_string()),
            None => (false, cleaned),
        };
        let bad = || IgnoreError::BadPattern {
            pattern: text.clone(),
        };
        if gopath::match_reports_bad_pattern(&text, ".") {
            return Err(bad());
        }
        let matcher = compile(&text).ok_or_else(bad)?;
        Ok(Pattern {
            exclusion,
            text,
            matcher,
        })
    }

    fn matches(&self, path: &str) -> bool {
        match &self.matcher {
            Matcher::Exact => path == self.text,
            Matcher::Prefix(prefix) => path.as_bytes().starts_with(prefix),
            Matcher::Suffix(suffix) => {
                let path = path.as_bytes();
                if path.ends_with(suffix) {
                    return true;
                }
                // `**/foo` also matches `foo` itself
                suffix.first() == Some(&b'/') && path == &suffix[1..]
            }
            Matcher::Regex(re) => re.is_match(path),
        }
    }
}

/// Translate a cleaned pattern into a matcher the way patternmatcher does;
/// `None` if the resulting regexp is invalid.
fn compile(pattern: &str) -> Option<Matcher> {
    #[derive(PartialEq)]
    enum Kind {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let mut expr = String::from("^");
    let mut kind = Kind::Exact;
    let mut chars = pattern.chars().peekable();
    // Go's text/scanner skips a leading byte order mark.
    if chars.peek() == Some(&'\u{FEFF}') {
        chars.next();
    }
    let mut index = 0;
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                // `**/` is the same as `**`
                if chars.peek() == Some(&'/') {
                    chars.next();
                }
                if chars.peek().is_none() {
                    if kind == Kind::Exact {
                        kind = Kind::Prefix;
                    } else {
                        expr.push_str(".*");
                        kind = Kind::Regex;
                    }
                } else {
                    expr.push_str("(.*/)?");
                    kind = Kind::Regex;
                }
                if index == 0 {
                    kind = Kind::Suffix;
                }
            }
            '*' => {
                expr.push_str("[^/]*");
                kind = Kind::Regex;
            }
            '?' => {
                expr.push_str("[^/]");
                kind = Kind::Regex;
            }
            c if should_escape(c) => {
                expr.push('\\');
                expr.push(c);
            }
            '\\' => match chars.next() {
                Some(next) => {
                    expr.push('\\');
                    expr.push(next);
                    kind = Kind::Regex;
                }
                None => expr.push('\\'),
            },
            '[' | ']' => {
                expr.push(c);
                kind = Kind::Regex;
            }
            other => expr.push(other),
        }
        index += 1;
    }
    // Go cuts two bytes off the pattern; with a leading byte order mark
    // (skipped above) that lands inside a character, so work on bytes
    let bytes = pattern.as_bytes();
    Some(match kind {
        Kind::Exact => Matcher::Exact,
        Kind::Prefix => Matcher::Prefix(bytes[..bytes.len().saturating_sub(2)].to_vec()),
        Kind::Suffix => Matcher::Suffix(bytes.get(2..).unwrap_or_default().to_vec()),
        Kind::Regex => {
            expr.push('$');
            Matcher::Regex(regex::compile(&expr).ok()?)
        }
    })
}

/// Per-pattern results for a directory, handed to its children during a
/// walk (patternmatcher's `MatchInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParentMatches(Vec<bool>);

/// A parsed `.dockerignore` (or `COPY --exclude` list), ready to answer
/// whether a context path is excluded.
///
/// Serializes as the list of pattern strings; deserializing re-validates
/// them.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(try_from = "PatternList", into = "PatternList")]
pub struct IgnorePatterns {
    patterns: Vec<String>,
    compiled: Vec<Pattern>,
}

#[derive(Serialize, Deserialize)]
struct PatternList {
    patterns: Vec<String>,
}

impl TryFrom<PatternList> for IgnorePatterns {
    type Error = IgnoreError;

    fn try_from(list: PatternList) -> Result<Self, IgnoreError> {
        IgnorePatterns::from_patterns(&list.patterns)
    }
}

impl From<IgnorePatterns> for PatternList {
    fn from(p: IgnorePatterns) -> Self {
        PatternList {
            patterns: p.patterns,
        }
    }
}

impl std::fmt::Debug for IgnorePatterns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IgnorePatterns")
            .field("patterns", &self.patterns)
            .finish()
    }
}

impl PartialEq for IgnorePatterns {
    fn eq(&self, other: &Self) -> bool {
        self.patterns == other.patterns
    }
}

impl Eq for IgnorePatterns {}

/// Split like Go's `bufio.ScanLines`: `\n` ends a line, one `\r` before it
/// is dropped, and a final unterminated line counts.
fn scan_lines(text: &str) -> Result<Vec<&str>, IgnoreError> {
    let mut lines = Vec::new();
    let mut rest = text;
    let mut number = 0;
    while !rest.is_empty() {
        number += 1;
        let (line, after) = match rest.find('\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        if line.len() > MAX_LINE {
            return Err(IgnoreError::LineTooLong { line: number });
        }
        lines.push(line.strip_suffix('\r').unwrap_or(line));
        rest = after;
    }
    Ok(lines)
}

impl IgnorePatterns {
    /// Parse `.dockerignore` text: comments (`#` in the first column),
    /// blank lines, trimming, `!` exceptions, a leading `/` stripped and
    /// paths cleaned like Go's `filepath.Clean`. Invalid patterns are
    /// errors.
    pub fn parse(text: &str) -> Result<Self, IgnoreError> {
        let mut patterns = Vec::new();
        for (index, line) in scan_lines(text)?.into_iter().enumerate() {
            let line = if index == 0 {
                line.strip_prefix('\u{FEFF}').unwrap_or(line)
            } else {
                line
            };
            if line.starts_with('#') {
                continue;
            }
            let mut pattern = line.trim();
            if pattern.is_empty() {
                continue;
            }
            let invert = pattern.starts_with('!');
            if invert {
                pattern = pattern[1..].trim();
            }
            let mut cleaned = String::new();
            if !pattern.is_empty() {
                cleaned = gopath::clean(pattern);
                if cleaned.len() > 1 && cleaned.starts_with('/') {
                    cleaned.remove(0);
                }
            }
            if invert {
                cleaned.insert(0, '!');
            }
            patterns.push(cleaned);
        }
        Self::from_patterns(&patterns)
    }

    /// Build from a list of patterns, as `COPY --exclude` passes them: each
    /// is trimmed, skipped if empty, cleaned, and may start with `!`. Unlike
    /// [`IgnorePatterns::parse`] no leading `/` is removed (BuildKit hands
    /// these to the matcher directly).
    pub fn from_patterns(patterns: &[String]) -> Result<Self, IgnoreError> {
        let mut compiled = Vec::new();
        for raw in patterns {
            let trimmed = raw.trim();
            if trimmed.is_empty() {
                continue;
            }
            compiled.push(Pattern::new(trimmed)?);
        }
        Ok(IgnorePatterns {
            patterns: patterns.to_vec(),
            compiled,
        })
    }

    /// The patterns as given to the matcher (exceptions keep their `!`).
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// True when there is no pattern at all.
    pub fn is_empty(&self) -> bool {
        self.compiled.is_empty()
    }

    /// Whether any pattern is a `!` exception.
    pub fn has_exceptions(&self) -> bool {
        self.compiled.iter().any(|p| p.exclusion)
    }

    /// Whether `rel_path` (slash-separated, relative to the context root)
    /// is excluded: the last matching pattern wins and a pattern matching a
    /// parent directory applies to everything below it, exactly as
    /// BuildKit's context walk decides. The root itself is never excluded.
    ///
    /// This evaluates every ancestor of `rel_path`; a walker can avoid that
    /// by carrying results down with [`IgnorePatterns::matches_with_parent`].
    pub fn is_excluded(&self, rel_path: &str) -> bool {
        if self.compiled.is_empty() {
            return false;
        }
        let cleaned = gopath::clean(rel_path);
        let path = cleaned.trim_start_matches('/');
        if path.is_empty() || path == "." {
            return false;
        }
        let mut parent: Option<ParentMatches> = None;
        let mut end = 0;
        loop {
            end = match path[end..].find('/') {
                Some(i) => end + i,
                None => path.len(),
            };
            let (excluded, info) = self.matches_with_parent(&path[..end], parent.as_ref());
            if end >= path.len() {
                return excluded;
            }
            parent = Some(info);
            end += 1;
        }
    }

    /// One step of a walk (patternmatcher's `MatchesUsingParentResults`):
    /// whether `rel_path` is excluded, given the result returned for its
    /// parent directory. Pass `None` for top-level entries (or when the
    /// parent's result is unknown: then every ancestor of `rel_path` is
    /// matched against the patterns instead). Keep the returned
    /// [`ParentMatches`] of a directory for its children.
    pub fn matches_with_parent(
        &self,
        rel_path: &str,
        parent: Option<&ParentMatches>,
    ) -> (bool, ParentMatches) {
        let parent = parent.map(|p| p.0.as_slice()).filter(|p| !p.is_empty());
        let ancestors = if parent.is_none() {
            ancestors(rel_path)
        } else {
            Vec::new()
        };
        let mut matched = false;
        let mut info = vec![false; self.compiled.len()];
        for (i, pattern) in self.compiled.iter().enumerate() {
            let mut hit = parent.is_some_and(|p| p.get(i).copied().unwrap_or(false));
            if !hit {
                // an inclusion cannot change an excluded path, an exception
                // cannot change an included one
                if pattern.exclusion != matched {
                    continue;
                }
                hit = pattern.matches(rel_path);
                if !hit && parent.is_none() {
                    hit = ancestors.iter().any(|dir| pattern.matches(dir));
                }
            }
            info[i] = hit;
            if hit {
                matched = !pattern.exclusion;
            }
        }
        (matched, ParentMatches(info))
    }

    /// Whether a walker has to descend into the excluded directory
    /// `rel_dir` because a `!` exception might re-include something below
    /// it. This is fsutil's test: never without exceptions; always if an
    /// exception uses wildcards (other than a trailing `/*` or `/**`);
    /// otherwise only if an exception names a path inside `rel_dir`.
    pub fn may_reinclude_under(&self, rel_dir: &str) -> bool {
        let exceptions: Vec<&str> = self
            .compiled
            .iter()
            .filter(|p| p.exclusion)
            .map(|p| trailing_glob_trimmed(&p.text))
            .collect();
        if exceptions.is_empty() {
            return false;
        }
        if exceptions
            .iter()
            .any(|p| p.contains(['*', '[', ']', '?', '^', '\\']))
        {
            return true;
        }
        let cleaned = gopath::clean(rel_dir);
        let dir = cleaned.trim_start_matches('/');
        let dir_slash = format!("{dir}/");
        exceptions
            .iter()
            .any(|p| format!("{p}/").starts_with(&dir_slash))
    }
}

/// The proper ancestors of a path, outermost first (`a`, `a/b` for
/// `a/b/c`), built like patternmatcher does from `filepath.Dir`.
fn ancestors(path: &str) -> Vec<String> {
    let dir = gopath::dir(path);
    if dir == "." {
        return Vec::new();
    }
    let mut out: Vec<String> = dir
        .match_indices('/')
        .map(|(i, _)| dir[..i].to_string())
        .collect();
    out.push(dir);
    out
}

fn trailing_glob_trimmed(pattern: &str) -> &str {
    let p = pattern.strip_suffix("/**").unwrap_or(pattern);
    p.strip_suffix("/*").unwrap_or(p)
}
