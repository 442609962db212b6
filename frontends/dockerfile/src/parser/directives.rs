//! Parser directives (`# syntax=`, `# escape=`, `# check=`) at the top of a
//! Dockerfile, with BuildKit's rules for when scanning for them stops.

use serde::Serialize;

use super::gostr;
use super::json;
use crate::error::{Error, Location, Result};

/// One parser directive as written in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Directive {
    /// Lowercase name: `syntax`, `escape` or `check`.
    pub name: String,
    pub value: String,
    /// 1-based line of the directive.
    pub line: usize,
}

/// The directives BuildKit acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Directives {
    /// As found by BuildKit's `DetectSyntax` (also `// syntax=` and a JSON
    /// document's `"syntax"` key; a leading `#!` line is skipped).
    pub syntax: Option<Directive>,
    /// As seen by the parser itself; it decides the escape character.
    pub escape: Option<Directive>,
    /// As found by BuildKit's `ParseDirective("check", ...)`.
    pub check: Option<Directive>,
}

const VALID: [&str; 3] = ["syntax", "escape", "check"];

/// Go's regexp `\s` (ASCII only, no `\v`).
fn is_re_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' ')
}

/// Match `^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$` with Go's leftmost-first
/// semantics; returns (name, value).
fn match_directive(line: &str) -> Option<(&str, &str)> {
    let bytes = line.as_bytes();
    if !bytes.first()?.is_ascii_alphabetic() {
        return None;
    }
    let name_end = bytes
        .iter()
        .position(|b| !b.is_ascii_alphanumeric())
        .unwrap_or(bytes.len());
    let name = &line[..name_end];
    let rest = line[name_end..].trim_start_matches(is_re_space);
    let after_eq = rest.strip_prefix('=')?;
    if after_eq.is_empty() {
        return None;
    }
    let trimmed = after_eq.trim_start_matches(is_re_space);
    let value = if trimmed.is_empty() {
        // Greedy `\s*` gives back one character so that `.+?` matches.
        let last = after_eq.char_indices().next_back()?.0;
        &after_eq[last..]
    } else {
        trimmed.trim_end_matches(is_re_space)
    };
    Some((name, value))
}

/// BuildKit's `DirectiveParser`: fed one line at a time, it stops for good at
/// the first line that is not a directive.
#[derive(Debug)]
pub(crate) struct DirectiveParser {
    line: usize,
    comment: &'static str,
    seen: Vec<String>,
    done: bool,
}

impl DirectiveParser {
    pub(crate) fn new(comment: &'static str, first_line: usize) -> Self {
        DirectiveParser {
            line: first_line,
            comment,
            seen: Vec::new(),
            done: false,
        }
    }

    /// Examine one line (newline already removed).
    pub(crate) fn parse_line(&mut self, line: &str) -> Result<Option<Directive>> {
        self.line += 1;
        if self.done {
            return Ok(None);
        }
        let Some(rest) = line.strip_prefix(self.comment) else {
            self.done = true;
            return Ok(None);
        };
        let rest = gostr::trim_left_space(rest);
        let Some((name, value)) = match_directive(rest) else {
            self.done = true;
            return Ok(None);
        };
        let name = name.to_ascii_lowercase();
        if !VALID.contains(&name.as_str()) {
            self.done = true;
            return Ok(None);
        }
        if self.seen.contains(&name) {
            return Err(Error::at(
                format!("only one {name} parser directive can be used"),
                Location::line(self.line),
            ));
        }
        self.seen.push(name.clone());
        Ok(Some(Directive {
            name,
            value: value.to_string(),
            line: self.line,
        }))
    }
}

fn discard_bom(src: &str) -> &str {
    src.strip_prefix('\u{feff}').unwrap_or(src)
}

/// Lines the way Go's `bufio.ScanLines` yields them (`\n` and one `\r`
/// before it removed).
fn scan_lines(src: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(src);
    std::iter::from_fn(move || {
        let s = rest?;
        if s.is_empty() {
            rest = None;
            return None;
        }
        match s.find('\n') {
            Some(i) => {
                rest = Some(&s[i + 1..]);
                let line = &s[..i];
                Some(line.strip_suffix('\r').unwrap_or(line))
            }
            None => {
                rest = None;
                Some(s.strip_suffix('\r').unwrap_or(s))
            }
        }
    })
}

fn detect_with(
    key: &str,
    src: &str,
    comment: &'static str,
    first_line: usize,
) -> Option<Directive> {
    let mut parser = DirectiveParser::new(comment, first_line);
    for line in scan_lines(src) {
        if parser.done {
            break;
        }
        match parser.parse_line(line) {
            Ok(Some(d)) if d.name == key => return Some(d),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

/// BuildKit's `parseDirective(key, dt, anyFormat)`: the value of directive
/// `key` as the frontend sees it, before the Dockerfile itself is parsed.
pub fn find_directive(key: &str, src: &str, any_format: bool) -> Option<Directive> {
    let src = discard_bom(src);
    let (first, rest) = match src.find('\n') {
        Some(i) => (&src[..i], &src[i + 1..]),
        None => (src, ""),
    };
    let (src, line) = if first.starts_with("#!") {
        (rest, 1)
    } else {
        (src, 0)
    };

    if let Some(d) = detect_with(key, src, "#", line) {
        return Some(d);
    }
    if !any_format {
        return None;
    }
    if let Some(d) = detect_with(key, src, "//", line) {
        return Some(d);
    }
    if let Some(json::Top::Object(members)) = json::parse(src) {
        // Go decodes into a map: the last occurrence of a key wins.
        if let Some((_, json::Elem::Str(v))) = members.iter().rev().find(|(k, _)| k == key) {
            return Some(Directive {
                name: key.to_string(),
                value: v.clone(),
                line,
            });
        }
    }
    None
}

/// BuildKit's `DetectSyntax`: the `syntax` directive in any of its formats.
/// The value is the whole directive value (the frontend image reference is
/// its first space-separated word).
pub fn detect_syntax(src: &str) -> Option<Directive> {
    find_directive("syntax", src, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directive_regex() {
        assert_eq!(match_directive("escape=`"), Some(("escape", "`")));
        assert_eq!(match_directive("escape = ` "), Some(("escape", "`")));
        assert_eq!(match_directive("escape= "), Some(("escape", " ")));
        assert_eq!(match_directive("escape=  \t"), Some(("escape", "\t")));
        assert_eq!(match_directive("escape="), None);
        assert_eq!(match_directive("esc ape=x"), None);
        assert_eq!(match_directive("1x=y"), None);
        assert_eq!(
            match_directive("syntax=docker/dockerfile:1 x "),
            Some(("syntax", "docker/dockerfile:1 x"))
        );
    }

    #[test]
    fn detection() {
        let d = detect_syntax("#!/bin/x\n# syntax = foo/bar:1 --x\nFROM a").unwrap();
        assert_eq!((d.value.as_str(), d.line), ("foo/bar:1 --x", 2));
        assert_eq!(detect_syntax("// syntax=x\nFROM a").unwrap().value, "x");
        assert_eq!(detect_syntax(r#"{"syntax": "y"}"#).unwrap().value, "y");
        assert!(detect_syntax("FROM a\n# syntax=x").is_none());
        assert_eq!(
            find_directive("check", "# syntax=a\n# check=skip=all\n", false)
                .unwrap()
                .value,
            "skip=all"
        );
    }
}
