//! Located errors: every error names the file, the 1-based line and column
//! (in characters) and, where one helps, a hint.

use std::fmt;
use std::ops::Range;

/// A position in a file. Lines and columns are 1-based; `len` is how many
/// characters a caret should underline (at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Location {
    pub line: usize,
    pub col: usize,
    pub len: usize,
}

/// An error in a spec (or in a Dockerfile a spec target uses).
///
/// `Display` prints `file:line:col: message` (or `file: message` when the
/// error has no position, e.g. an unknown `--target`), so that the message
/// alone names where the problem is; renderers that draw the source line use
/// the fields.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct TomlError {
    pub message: String,
    /// The file the location is in: the spec, or a Dockerfile it uses.
    pub file: String,
    pub location: Option<Location>,
    pub hint: Option<String>,
}

impl fmt::Display for TomlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(l) => write!(f, "{}:{}:{}: {}", self.file, l.line, l.col, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl TomlError {
    pub fn new(file: &str, message: impl Into<String>) -> Self {
        TomlError {
            message: message.into(),
            file: file.to_string(),
            location: None,
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn maybe_hint(mut self, hint: Option<String>) -> Self {
        if hint.is_some() {
            self.hint = hint;
        }
        self
    }

    /// 1-based line of the error, 0 when it has no position.
    pub fn line(&self) -> usize {
        self.location.map_or(0, |l| l.line)
    }

    /// 1-based column of the error, 0 when it has no position.
    pub fn col(&self) -> usize {
        self.location.map_or(0, |l| l.col)
    }
}

/// Turns byte spans of one file into located errors.
#[derive(Debug, Clone)]
pub struct SourceMap {
    file: String,
    text: String,
    line_starts: Vec<usize>,
}

impl SourceMap {
    pub fn new(file: &str, text: &str) -> Self {
        let mut line_starts = vec![0];
        for (i, b) in text.bytes().enumerate() {
            if b == b'\n' {
                line_starts.push(i + 1);
            }
        }
        SourceMap {
            file: file.to_string(),
            text: text.to_string(),
            line_starts,
        }
    }

    pub fn file(&self) -> &str {
        &self.file
    }

    /// The source text of `span` (empty when it is out of range).
    pub fn text_of(&self, span: &Range<usize>) -> &str {
        self.text.get(span.clone()).unwrap_or("")
    }

    /// A number as it is written (`1.0` stays `1.0`, `1_000` stays
    /// `1_000`), as bake keeps a variable's text; `fallback` when the span
    /// is not the number's own text.
    pub fn number_text(&self, span: &Range<usize>, fallback: String) -> String {
        let t = self.text_of(span).trim();
        let looks_numeric = !t.is_empty()
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-._".contains(c));
        if looks_numeric {
            t.to_string()
        } else {
            fallback
        }
    }

    pub fn location(&self, span: &Range<usize>) -> Location {
        let start = span.start.min(self.text.len());
        let line_ix = match self.line_starts.binary_search(&start) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let line_start = self.line_starts[line_ix];
        let col = char_count(&self.text, line_start, start) + 1;
        let end = span.end.clamp(start, self.text.len());
        // Underline to the end of the span, but not past the end of its line.
        let line_end = self
            .line_starts
            .get(line_ix + 1)
            .map_or(self.text.len(), |e| e - 1);
        let len = char_count(&self.text, start, end.min(line_end.max(start)));
        Location {
            line: line_ix + 1,
            col,
            len: len.max(1),
        }
    }

    pub fn error(&self, span: &Range<usize>, message: impl Into<String>) -> TomlError {
        TomlError {
            message: message.into(),
            file: self.file.clone(),
            location: Some(self.location(span)),
            hint: None,
        }
    }

    pub fn unlocated(&self, message: impl Into<String>) -> TomlError {
        TomlError::new(&self.file, message)
    }
}

fn char_count(text: &str, from: usize, to: usize) -> usize {
    let from = floor_char_boundary(text, from);
    let to = floor_char_boundary(text, to);
    text[from..to].chars().count()
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The candidate closest to `word` by edit distance, if it is close enough
/// to be what was meant.
pub fn did_you_mean<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let word_l = word.to_ascii_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = edit_distance(&word_l, &c.to_ascii_lowercase());
        let limit = (word.chars().count().max(c.chars().count()) / 3).max(1);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// Levenshtein distance, with a transposition counting as one edit.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev2: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(prev2[j - 2] + 1);
            }
        }
        prev2 = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_one_based_chars() {
        let m = SourceMap::new("f.toml", "a = 1\nbé = \"x\"\n");
        assert_eq!(
            m.location(&(0..1)),
            Location {
                line: 1,
                col: 1,
                len: 1
            }
        );
        let off = "a = 1\nbé = ".len();
        assert_eq!(
            m.location(&(off..off + 3)),
            Location {
                line: 2,
                col: 6,
                len: 3
            }
        );
        let e = m.error(&(6..8), "bad");
        assert_eq!(e.to_string(), "f.toml:2:1: bad");
    }

    #[test]
    fn suggestions() {
        assert_eq!(did_you_mean("fro", ["from", "steps"]), Some("from"));
        assert_eq!(did_you_mean("stpes", ["from", "steps"]), Some("steps"));
        assert_eq!(did_you_mean("xyz", ["from", "steps"]), None);
        assert_eq!(edit_distance("abc", "acb"), 1);
    }
}
