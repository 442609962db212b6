//! Shell-word processing as BuildKit does it for Dockerfile instructions:
//! quote removal, escapes and `$VAR` / `${VAR…}` expansion, optionally
//! followed by splitting into words.
//!
//! The behaviour follows BuildKit's `frontend/dockerfile/shell` package,
//! including its quirks:
//!
//! * Inside double quotes only `"`, `$` and the escape character itself can
//!   be escaped; any other escape character is kept as written.
//! * `$1`, `$@`, `$#`, … are looked up like any other name (and are normally
//!   unset, so they expand to nothing).
//! * Patterns of `#`, `%` and `/` use `*` and `?` (no bracket expressions);
//!   `*` and `?` never match a newline; the `//` form treats `$0` in the
//!   replacement as the matched text, like Go's `ReplaceAllString`.
//! * When splitting into words, a `${VAR<op>…}` expansion discards the
//!   unfinished word before it (`a${X:-b}` splits into `["b"]`), because
//!   BuildKit shares one word buffer across nested words.
//!
//! Deviations: the work spent on one call is bounded (a few tens of millions
//! of steps or characters; far beyond any real Dockerfile) and exceeding it
//! is an error, and the quoting of the word in error messages approximates
//! Go's `%q` for exotic non-printable characters.

mod lexer;
mod pattern;
mod quote;
mod unicode;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::error::{Error, Result};

/// Variable lookup used during expansion.
///
/// Lookups are case-sensitive, as BuildKit on Unix.
pub trait Env {
    /// The value of `key`, or `None` when it is not set (set-but-empty is
    /// `Some("")`).
    fn get(&self, key: &str) -> Option<String>;
}

/// The last pair with a matching key wins, like BuildKit's
/// `EnvsFromSlice`.
impl Env for [(String, String)] {
    fn get(&self, key: &str) -> Option<String> {
        self.iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }
}

impl Env for Vec<(String, String)> {
    fn get(&self, key: &str) -> Option<String> {
        Env::get(self.as_slice(), key)
    }
}

impl Env for BTreeMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        BTreeMap::get(self, key).cloned()
    }
}

impl Env for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).cloned()
    }
}

impl<E: Env + ?Sized> Env for &E {
    fn get(&self, key: &str) -> Option<String> {
        (**self).get(key)
    }
}

/// BuildKit's optional lexer switches (all off by default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Options {
    raw_quotes: bool,
    raw_escapes: bool,
    skip_process_quotes: bool,
    skip_unset_env: bool,
}

/// Shell-word lexer with a configurable escape character (`\` by default,
/// `` ` `` with `# escape=``).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lexer {
    escape: char,
    opts: Options,
}

impl Default for Lexer {
    fn default() -> Self {
        Lexer::new('\\')
    }
}

impl Lexer {
    pub fn new(escape: char) -> Self {
        Lexer {
            escape,
            opts: Options::default(),
        }
    }

    /// The escape character this lexer uses.
    pub fn escape(&self) -> char {
        self.escape
    }

    /// Keep quote characters in the output (BuildKit's `RawQuotes`).
    pub fn with_raw_quotes(mut self, on: bool) -> Self {
        self.opts.raw_quotes = on;
        self
    }

    /// Keep escape characters in the output (BuildKit's `RawEscapes`).
    pub fn with_raw_escapes(mut self, on: bool) -> Self {
        self.opts.raw_escapes = on;
        self
    }

    /// Treat quotes as ordinary characters (BuildKit's `SkipProcessQuotes`).
    pub fn with_skip_process_quotes(mut self, on: bool) -> Self {
        self.opts.skip_process_quotes = on;
        self
    }

    /// Leave references to unset variables as written (BuildKit's
    /// `SkipUnsetEnv`).
    pub fn with_skip_unset_env(mut self, on: bool) -> Self {
        self.opts.skip_unset_env = on;
        self
    }

    /// Expand one word (e.g. for WORKDIR, USER, COPY args): quotes removed,
    /// variables expanded, no splitting.
    pub fn process_word(&self, word: &str, env: &dyn Env) -> Result<String> {
        self.run(word, env).map(|o| o.result)
    }

    /// Expand and split into words (as ENV/EXPOSE/etc. use): unquoted
    /// whitespace splits, quoted whitespace is kept.
    pub fn process_words(&self, word: &str, env: &dyn Env) -> Result<Vec<String>> {
        self.run(word, env).map(|o| o.words)
    }

    /// Like [`Lexer::process_word`], also returning the names of the
    /// variables that were looked up and found, and those looked up but not
    /// set (BuildKit's `ProcessWordWithMatches`).
    pub fn process_word_with_matches(
        &self,
        word: &str,
        env: &dyn Env,
    ) -> Result<(String, BTreeSet<String>, BTreeSet<String>)> {
        self.run(word, env)
            .map(|o| (o.result, o.matched, o.unmatched))
    }

    fn run(&self, word: &str, env: &dyn Env) -> Result<lexer::Outcome> {
        lexer::process(word, env, self.escape, self.opts).map_err(|reason| {
            Error::new(format!(
                "failed to process {}: {reason}",
                quote::go_quote(word)
            ))
        })
    }
}
