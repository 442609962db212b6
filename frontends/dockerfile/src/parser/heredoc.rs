//! Heredoc detection (`<<EOF`, `<<-EOF`, `<<"EOF"`, `3<<EOF`).
//!
//! BuildKit finds heredoc words by running its shell lexer over the whole
//! instruction line (keeping quotes and escapes, leaving variables alone),
//! then matching each word against `^(\d*)<<(-?)\s*([^<]*)$`, then lexing the
//! delimiter twice (with and without quotes) to tell whether any part of it
//! was quoted, which turns expansion of the body off. The small lexer below
//! reproduces the parts of BuildKit's lexer this depends on, including its
//! quirks, for an empty environment with unset variables kept verbatim.

use serde::Serialize;

use super::gostr;
use crate::error::{Error, Result};

/// A heredoc attached to an instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Heredoc {
    /// The delimiter word, quotes removed.
    pub name: String,
    /// The body exactly as written (line endings kept, tabs not stripped).
    pub content: String,
    /// Whether variables in the body are expanded (the delimiter was not quoted).
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from the body and the terminator.
    pub chomp: bool,
    /// The file descriptor written before `<<` (`3<<EOF`), 0 if none.
    pub file_descriptor: u64,
}

/// How deep `${...}` substitutions may nest inside one line before the lexer
/// gives up (BuildKit's lexer recurses without a limit).
const MAX_NESTING: usize = 128;

/// Strip leading tabs from every line (BuildKit's `ChompHeredocContent`).
pub fn chomp_heredoc_content(src: &str) -> String {
    src.split_inclusive('\n')
        .map(|line| line.trim_start_matches('\t'))
        .collect()
}

/// Parse a single word as a heredoc introducer; `Ok(None)` if it is not one.
pub fn parse_heredoc(src: &str) -> Result<Option<Heredoc>> {
    let Some((fd_digits, chomp, rest)) = match_heredoc(src) else {
        return Ok(None);
    };
    if rest.is_empty() {
        return Ok(None);
    }
    let fd = parse_fd(fd_digits);

    let words = Lexer::new(rest, false, false).process_words()?;
    if words.len() != 1 {
        return Ok(None);
    }
    let raw_words = Lexer::new(rest, true, false).process_words()?;
    if raw_words.len() != words.len() {
        return Err(Error::new(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        )));
    }
    let word = &words[0];
    let raw = &raw_words[0];
    let quotes = |s: &str| s.chars().filter(|&c| c == '\'' || c == '"').count();
    Ok(Some(Heredoc {
        name: word.clone(),
        content: String::new(),
        expand: quotes(word) == quotes(raw),
        chomp,
        file_descriptor: fd,
    }))
}

/// The heredoc introducers on an instruction line, in order.
pub fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>> {
    // Lexing errors here are ignored by BuildKit (no words, no heredocs).
    let words = Lexer::new(line, true, true)
        .process_words()
        .unwrap_or_default();
    let mut docs = Vec::new();
    for word in words {
        if let Some(doc) = parse_heredoc(&word)? {
            docs.push(doc);
        }
    }
    Ok(docs)
}

/// `strconv.ParseUint(s, 10, 0)` with the error ignored: 0 for "", the
/// maximum on overflow.
fn parse_fd(digits: &str) -> u64 {
    if digits.is_empty() {
        return 0;
    }
    digits.parse::<u64>().unwrap_or(u64::MAX)
}

/// `^(\d*)<<(-?)\s*([^<]*)$` → (digits, chomp, rest).
fn match_heredoc(src: &str) -> Option<(&str, bool, &str)> {
    let digits_end = src
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(src.len());
    let rest = src[digits_end..].strip_prefix("<<")?;
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let rest = rest.trim_start_matches(['\t', '\n', '\x0c', '\r', ' ']);
    if rest.contains('<') {
        return None;
    }
    Some((&src[..digits_end], chomp, rest))
}

/// The word list being built by one `processStopOn` call. The character
/// buffer itself is shared by all nesting levels (as in BuildKit).
#[derive(Default)]
struct Words {
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, buf: &mut String, ch: char) {
        if gostr::is_space(ch) && self.in_word {
            if !buf.is_empty() {
                self.words.push(std::mem::take(buf));
                self.in_word = false;
            }
        } else if !gostr::is_space(ch) {
            self.add_raw_char(buf, ch);
        }
    }

    fn add_raw_char(&mut self, buf: &mut String, ch: char) {
        buf.push(ch);
        self.in_word = true;
    }

    fn add_string(&mut self, buf: &mut String, s: &str) {
        for ch in s.chars() {
            self.add_char(buf, ch);
        }
    }

    fn add_raw_string(&mut self, buf: &mut String, s: &str) {
        buf.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self, buf: &mut String) -> Vec<String> {
        if !buf.is_empty() {
            self.words.push(std::mem::take(buf));
        }
        self.words
    }
}

const ESCAPE: char = '\\';

struct Lexer {
    chars: Vec<char>,
    pos: usize,
    raw_quotes: bool,
    raw_escapes: bool,
    buf: String,
    depth: usize,
}

impl Lexer {
    fn new(src: &str, raw_quotes: bool, raw_escapes: bool) -> Self {
        let mut chars: Vec<char> = src.chars().collect();
        // Go's text/scanner skips a byte-order mark at the very start.
        if chars.first() == Some(&'\u{feff}') {
            chars.remove(0);
        }
        Lexer {
            chars,
            pos: 0,
            raw_quotes,
            raw_escapes,
            buf: String::new(),
            depth: 0,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn process_words(mut self) -> Result<Vec<String>> {
        let raw = self.raw_escapes;
        self.stop_on(None, raw).map(|(_, words)| words)
    }

    fn stop_on(&mut self, stop: Option<char>, raw_escapes: bool) -> Result<(String, Vec<String>)> {
        if self.depth >= MAX_NESTING {
            return Err(Error::new("variable substitutions nested too deeply"));
        }
        self.depth += 1;
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let out = self.stop_on_inner(stop);
        self.raw_escapes = saved;
        self.depth -= 1;
        out
    }

    fn stop_on_inner(&mut self, stop: Option<char>) -> Result<(String, Vec<String>)> {
        let mut result = String::new();
        self.buf.clear();
        let mut words = Words::default();

        while let Some(ch) = self.peek() {
            if stop == Some(ch) {
                self.next();
                let w = words.finish(&mut self.buf);
                return Ok((result, w));
            }
            match ch {
                '$' => {
                    let tmp = self.dollar()?;
                    result.push_str(&tmp);
                    words.add_string(&mut self.buf, &tmp);
                }
                '<' => {
                    let tmp = self.possible_heredoc();
                    result.push_str(&tmp);
                    words.add_raw_string(&mut self.buf, &tmp);
                }
                '\'' => {
                    let tmp = self.single_quote()?;
                    result.push_str(&tmp);
                    words.add_raw_string(&mut self.buf, &tmp);
                }
                '"' => {
                    let tmp = self.double_quote()?;
                    result.push_str(&tmp);
                    words.add_raw_string(&mut self.buf, &tmp);
                }
                _ => {
                    self.next();
                    if ch == ESCAPE {
                        if self.raw_escapes {
                            words.add_raw_char(&mut self.buf, ch);
                            result.push(ch);
                        }
                        let Some(escaped) = self.next() else {
                            break;
                        };
                        words.add_raw_char(&mut self.buf, escaped);
                        result.push(escaped);
                    } else {
                        words.add_char(&mut self.buf, ch);
                        result.push(ch);
                    }
                }
            }
        }
        if let Some(stop) = stop {
            return Err(Error::new(format!(
                "unexpected end of statement while looking for matching {stop}"
            )));
        }
        let w = words.finish(&mut self.buf);
        Ok((result, w))
    }

    fn single_quote(&mut self) -> Result<String> {
        let mut out = String::new();
        let open = self.next();
        if self.raw_quotes {
            out.extend(open);
        }
        loop {
            match self.next() {
                None => {
                    return Err(Error::new(
                        "unexpected end of statement while looking for matching single-quote",
                    ))
                }
                Some('\'') => {
                    if self.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> Result<String> {
        let mut out = String::new();
        let open = self.next();
        if self.raw_quotes {
            out.extend(open);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(Error::new(
                        "unexpected end of statement while looking for matching double-quote",
                    ))
                }
                Some('"') => {
                    self.next();
                    if self.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => {
                    let v = self.dollar()?;
                    out.push_str(&v);
                }
                Some(_) => {
                    let mut ch = self.next().unwrap_or(ESCAPE);
                    if ch == ESCAPE {
                        if self.raw_escapes {
                            out.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some('"' | '$' | ESCAPE) => ch = self.next().unwrap_or(ESCAPE),
                            Some(_) => {}
                        }
                    }
                    out.push(ch);
                }
            }
        }
    }

    /// `$name`, `${name}`, `${name:-word}`, ... With no variable set, each
    /// form comes back as (roughly) the text that was written.
    fn dollar(&mut self) -> Result<String> {
        self.next();
        if self.peek() != Some('{') {
            let name = self.name();
            return Ok(format!("${name}"));
        }
        self.next();
        match self.peek() {
            None => return Err(Error::new("syntax error: missing '}'")),
            Some('{' | '}' | ':') => return Err(Error::new("syntax error: bad substitution")),
            _ => {}
        }
        let name = self.name();
        let ch = self.next();
        let mut chs: String = ch.map_or('\u{fffd}', |c| c).to_string();
        let mut modifier = ch;
        let mut null_is_unset = false;
        match ch {
            Some('}') => return Ok(format!("${{{name}}}")),
            Some(':') => {
                null_is_unset = true;
                modifier = self.next();
                chs.push(modifier.unwrap_or('\u{fffd}'));
            }
            Some('+' | '-' | '?' | '#' | '%') => {}
            Some('/') => return self.dollar_replace(&name),
            _ => {
                return Err(Error::new(format!(
                    "unsupported modifier ({chs}) in substitution"
                )))
            }
        }
        let raw = matches!(modifier, Some('#' | '%'));
        if null_is_unset && raw {
            return Err(Error::new(format!(
                "unsupported modifier ({chs}) in substitution"
            )));
        }
        let word = match self.stop_on(Some('}'), raw) {
            Ok((word, _)) => word,
            Err(e) => {
                if self.peek().is_none() {
                    return Err(Error::new("syntax error: missing '}'"));
                }
                return Err(e);
            }
        };
        Ok(format!("${{{name}{chs}{word}}}"))
    }

    fn dollar_replace(&mut self, name: &str) -> Result<String> {
        if self.peek() == Some('/') {
            self.next();
        }
        let pattern = match self.stop_on(Some('/'), true) {
            Ok((p, _)) => p,
            Err(e) => {
                if self.peek().is_none() {
                    return Err(Error::new("syntax error: missing '/' in ${}"));
                }
                return Err(e);
            }
        };
        let replacement = match self.stop_on(Some('}'), true) {
            Ok((r, _)) => r,
            Err(e) => {
                if self.peek().is_none() {
                    return Err(Error::new("syntax error: missing '}'"));
                }
                return Err(e);
            }
        };
        Ok(format!("${{{name}/{pattern}/{replacement}}}"))
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && gostr::is_digit(ch) {
                while let Some(d) = self.peek().filter(|&c| gostr::is_digit(c)) {
                    self.next();
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return ch.to_string();
            }
            if !gostr::is_letter(ch) && !gostr::is_digit(ch) && ch != '_' {
                break;
            }
            self.next();
            name.push(ch);
        }
        name
    }

    fn possible_heredoc(&mut self) -> String {
        self.next();
        if self.peek() != Some('<') {
            return "<".to_string();
        }
        self.next();
        let mut out = String::from("<<");
        while let Some(c @ ('\t' | '\r' | ' ')) = self.peek() {
            out.push(c);
            self.next();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        for src in [
            "<<EOF",
            "<<'EOF'",
            "<<\"EOF\"",
            "<<-EOF",
            "<<-'EOF'",
            "<<-\"EOF\"",
            "<<EO\"F\"",
            "<< EOF",
            "<<- EOF",
        ] {
            assert_eq!(parse_heredoc(src).unwrap().unwrap().name, "EOF", "{src}");
        }
        for src in ["<<'EOF", "<<\"EOF", "<<EOF'", "<<EOF\""] {
            assert!(parse_heredoc(src).is_err(), "{src}");
        }
        for src in ["", "EOF", "<<", "<<-", "<EOF", "<<<EOF", "<<EOF sh"] {
            assert_eq!(parse_heredoc(src).unwrap(), None, "{src}");
        }
    }

    #[test]
    fn from_line() {
        let names = |line: &str| -> Vec<String> {
            heredocs_from_line(line)
                .unwrap()
                .into_iter()
                .map(|h| h.name)
                .collect()
        };
        assert_eq!(names("RUN <<EOF"), ["EOF"]);
        assert_eq!(names("RUN <<-EOF"), ["EOF"]);
        assert_eq!(names("RUN << -EOF"), ["-EOF"]);
        assert_eq!(names("RUN <<'EOF'"), ["EOF"]);
        assert_eq!(names("RUN 4<<EOF"), ["EOF"]);
        assert_eq!(names("RUN <<EOF <<EOF2"), ["EOF", "EOF2"]);
        assert!(names("RUN '<<EOF'").is_empty());
        assert!(names("RUN \"<<EOF\"").is_empty());
        // `<<-` followed by a space splits into two words in BuildKit's
        // lexer, so no heredoc is found.
        assert!(names("RUN <<- EOF").is_empty());
        // A nested substitution resets the shared word buffer.
        assert!(names("RUN <<${X:-EOF}").is_empty());
        assert_eq!(names("RUN <<$EOF"), ["$EOF"]);
    }

    #[test]
    fn chomp() {
        assert_eq!(
            chomp_heredoc_content("\thello\n\tworld\n"),
            "hello\nworld\n"
        );
        assert_eq!(chomp_heredoc_content("\t\ta\n b\n\t"), "a\n b\n");
    }
}
