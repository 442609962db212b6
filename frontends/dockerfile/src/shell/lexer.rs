//! The word-expansion state machine.
//!
//! BuildKit's lexer is a set of mutually recursive functions (word →
//! `$`-expansion → default word → …). Here the same grammar runs on an
//! explicit stack of frames, so arbitrarily deep `${a:-${b:-…}}` nesting
//! cannot overflow the call stack, while expansion still happens in the same
//! order as BuildKit's (which decides which error wins).

use std::collections::BTreeSet;

use super::pattern::{self, Budget};
use super::unicode;
use super::{Env, Options};

/// Upper bound on the work of one expansion (characters produced plus
/// pattern-matching steps); see [`Budget`].
const WORK_LIMIT: u64 = 1 << 25;

/// What one call produced.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub(super) result: String,
    pub(super) words: Vec<String>,
    pub(super) matched: BTreeSet<String>,
    pub(super) unmatched: BTreeSet<String>,
}

/// Run the lexer over `word`. The error is BuildKit's message without the
/// `failed to process "…"` wrapper.
pub(super) fn process(
    word: &str,
    env: &dyn Env,
    escape: char,
    opts: Options,
) -> Result<Outcome, String> {
    let mut chars: Vec<char> = word.chars().collect();
    // Go's text/scanner drops a byte order mark at the very start.
    if chars.first() == Some(&'\u{FEFF}') {
        chars.remove(0);
    }
    let mut m = Machine {
        chars,
        pos: 0,
        escape,
        opts,
        env,
        matched: BTreeSet::new(),
        unmatched: BTreeSet::new(),
        words_buf: String::new(),
        budget: Budget::new(WORK_LIMIT),
    };
    let (result, words) = m.run()?;
    Ok(Outcome {
        result,
        words,
        matched: m.matched,
        unmatched: m.unmatched,
    })
}

/// A word being read up to a stop character (BuildKit's `processStopOn`).
#[derive(Debug)]
struct WordFrame {
    /// `None` reads to the end of the input.
    stop: Option<char>,
    /// keep escape characters in the result (used for patterns)
    raw_escapes: bool,
    result: String,
    words: Vec<String>,
}

#[derive(Debug)]
struct QuoteFrame {
    raw_escapes: bool,
    result: String,
}

/// Which `${name…}` form is waiting for its sub-word(s).
#[derive(Debug)]
enum DollarFrame {
    /// `${name-w}`, `${name:+w}`, `${name#w}`, … (`op` is `None` when the
    /// input ended right after `:`)
    Modifier {
        name: String,
        op: Option<char>,
        spelled: String,
        null_is_unset: bool,
    },
    /// `${name/pattern/replacement}`; `pattern` is filled once read
    Replace {
        name: String,
        all: bool,
        pattern: Option<String>,
    },
}

#[derive(Debug)]
enum Frame {
    Word(WordFrame),
    Quote(QuoteFrame),
    Dollar(DollarFrame),
}

struct Machine<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    opts: Options,
    env: &'a dyn Env,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
    /// The partial word of the split-into-words result. BuildKit keeps one
    /// such buffer for the whole call and every nested word reset it when it
    /// starts; that quirk is reproduced (see `push_word`).
    words_buf: String,
    budget: Budget,
}

/// A finished piece of text, delivered to the frame below.
enum Piece {
    /// result of a `$` expansion: split on whitespace when splitting words
    Expanded(String),
    /// quoted text or a heredoc marker: never split
    Raw(String),
}

impl Machine<'_> {
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

    fn charge(&mut self, units: usize) -> Result<(), String> {
        self.budget.charge(units)
    }

    fn lookup(&mut self, name: &str) -> Option<String> {
        match self.env.get(name) {
            Some(v) => {
                self.matched.insert(name.to_string());
                Some(v)
            }
            None => {
                self.unmatched.insert(name.to_string());
                None
            }
        }
    }

    fn word_frame(&mut self, stop: Option<char>, raw_escapes: bool) -> Frame {
        // a word (even a nested one) starts by clearing the shared buffer
        self.words_buf.clear();
        Frame::Word(WordFrame {
            stop,
            raw_escapes,
            result: String::new(),
            words: Vec::new(),
        })
    }

    fn run(&mut self) -> Result<(String, Vec<String>), String> {
        let top = self.word_frame(None, self.opts.raw_escapes);
        let mut stack = vec![top];
        loop {
            match self.step(&mut stack) {
                Ok(Some(done)) => return Ok(done),
                Ok(None) => {}
                Err(message) => return Err(self.unwind(&mut stack, message)),
            }
        }
    }

    /// Apply BuildKit's error rewriting while abandoning the frames: a
    /// `${…}` whose sub-word failed at the end of the input reports the
    /// missing delimiter instead.
    fn unwind(&self, stack: &mut Vec<Frame>, mut message: String) -> String {
        let at_end = self.peek().is_none();
        // frames above the first Dollar belong to the failed sub-word
        while let Some(frame) = stack.pop() {
            if let Frame::Dollar(d) = frame {
                if at_end {
                    message = match d {
                        DollarFrame::Replace { pattern: None, .. } => {
                            "syntax error: missing '/' in ${}".to_string()
                        }
                        _ => "syntax error: missing '}'".to_string(),
                    };
                }
            }
        }
        message
    }

    /// Advance the top frame by one unit of work. Returns the final result
    /// once the outermost word is complete.
    fn step(&mut self, stack: &mut Vec<Frame>) -> Result<Option<(String, Vec<String>)>, String> {
        let Some(top) = stack.last_mut() else {
            return Err("internal error: empty lexer stack".to_string());
        };
        match top {
            Frame::Word(w) => {
                let stop = w.stop;
                let raw_escapes = w.raw_escapes;
                let Some(c) = self.peek() else {
                    if let Some(stop) = stop {
                        return Err(format!(
                            "unexpected end of statement while looking for matching {stop}"
                        ));
                    }
                    let finished = self.finish_word(stack)?;
                    return Ok(Some(finished));
                };
                if Some(c) == stop {
                    self.next();
                    let (result, _) = self.finish_word(stack)?;
                    self.word_done(stack, result)?;
                    return Ok(None);
                }
                match c {
                    '$' => self.dollar(stack)?,
                    '<' => {
                        let marker = self.heredoc_marker();
                        self.deliver(stack, Piece::Raw(marker))?;
                    }
                    '\'' if !self.opts.skip_process_quotes => {
                        let text = self.single_quoted()?;
                        self.deliver(stack, Piece::Raw(text))?;
                    }
                    '"' if !self.opts.skip_process_quotes => {
                        self.next();
                        let mut result = String::new();
                        if self.opts.raw_quotes {
                            result.push('"');
                        }
                        stack.push(Frame::Quote(QuoteFrame {
                            raw_escapes,
                            result,
                        }));
                    }
                    _ => {
                        self.next();
                        self.charge(1)?;
                        let Some(Frame::Word(w)) = stack.last_mut() else {
                            return Err("internal error: word frame expected".to_string());
                        };
                        if c == self.escape {
                            if raw_escapes {
                                self.words_buf.push(c);
                                w.result.push(c);
                            }
                            // an escape at the very end is dropped
                            if let Some(escaped) = self.next() {
                                self.words_buf.push(escaped);
                                w.result.push(escaped);
                            }
                        } else {
                            push_char(&mut self.words_buf, &mut w.words, c);
                            w.result.push(c);
                        }
                    }
                }
                Ok(None)
            }
            Frame::Quote(q) => {
                let raw_escapes = q.raw_escapes;
                match self.peek() {
                    None => Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .to_string(),
                    ),
                    Some('"') => {
                        self.next();
                        let Some(Frame::Quote(mut q)) = stack.pop() else {
                            return Err("internal error: quote frame expected".to_string());
                        };
                        if self.opts.raw_quotes {
                            q.result.push('"');
                        }
                        self.deliver(stack, Piece::Raw(q.result))?;
                        Ok(None)
                    }
                    Some('$') => {
                        self.dollar(stack)?;
                        Ok(None)
                    }
                    Some(_) => {
                        let mut c = self.next().unwrap_or('\0');
                        if c == self.escape {
                            if raw_escapes {
                                q.result.push(c);
                            }
                            match self.peek() {
                                // the escape is dropped; the quote is unterminated
                                None => return Ok(None),
                                Some(n) if n == '"' || n == '$' || n == self.escape => {
                                    c = n;
                                    self.next();
                                }
                                // any other escape stays as written
                                Some(_) => {}
                            }
                        }
                        q.result.push(c);
                        self.charge(1)?;
                        Ok(None)
                    }
                }
            }
            Frame::Dollar(_) => Err("internal error: expansion frame on top".to_string()),
        }
    }

    /// Pop the word frame on top; returns its text and its words.
    fn finish_word(&mut self, stack: &mut Vec<Frame>) -> Result<(String, Vec<String>), String> {
        let Some(Frame::Word(mut w)) = stack.pop() else {
            return Err("internal error: word frame expected".to_string());
        };
        if !self.words_buf.is_empty() {
            w.words.push(std::mem::take(&mut self.words_buf));
        }
        Ok((w.result, w.words))
    }

    /// Hand a finished piece to the frame now on top of the stack.
    fn deliver(&mut self, stack: &mut [Frame], piece: Piece) -> Result<(), String> {
        match stack.last_mut() {
            Some(Frame::Word(w)) => {
                match piece {
                    Piece::Expanded(text) => {
                        self.charge(text.len())?;
                        for c in text.chars() {
                            push_char(&mut self.words_buf, &mut w.words, c);
                        }
                        w.result.push_str(&text);
                    }
                    Piece::Raw(text) => {
                        self.charge(text.len())?;
                        self.words_buf.push_str(&text);
                        w.result.push_str(&text);
                    }
                }
                Ok(())
            }
            Some(Frame::Quote(q)) => {
                let text = match piece {
                    Piece::Expanded(t) | Piece::Raw(t) => t,
                };
                self.charge(text.len())?;
                q.result.push_str(&text);
                Ok(())
            }
            _ => Err("internal error: nowhere to deliver text".to_string()),
        }
    }

    /// Read a name after `$` or `${`: digits (a positional parameter), one
    /// special parameter character, or letters, digits and underscores.
    fn name(&mut self) -> String {
        let mut name = String::new();
        if let Some(c) = self.peek() {
            if unicode::is_digit(c) {
                while let Some(d) = self.peek().filter(|&d| unicode::is_digit(d)) {
                    name.push(d);
                    self.next();
                }
                return name;
            }
            if is_special_param(c) {
                self.next();
                name.push(c);
                return name;
            }
        }
        while let Some(c) = self.peek() {
            if !unicode::is_letter(c) && !unicode::is_digit(c) && c != '_' {
                break;
            }
            name.push(c);
            self.next();
        }
        name
    }

    /// Handle a `$` at the current position: either expand it right away or
    /// push the frames that read its sub-words.
    fn dollar(&mut self, stack: &mut Vec<Frame>) -> Result<(), String> {
        self.next(); // the `$`
        if self.peek() != Some('{') {
            let name = self.name();
            let value = if name.is_empty() {
                "$".to_string()
            } else {
                match self.lookup(&name) {
                    Some(v) => v,
                    None if self.opts.skip_unset_env => format!("${name}"),
                    None => String::new(),
                }
            };
            return self.deliver(stack, Piece::Expanded(value));
        }
        self.next(); // the `{`
        match self.peek() {
            None => return Err("syntax error: missing '}'".to_string()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".to_string()),
            Some(_) => {}
        }
        let name = self.name();
        let ch = self.next();
        let mut spelled = spell(ch);
        let (op, null_is_unset) = match ch {
            Some('}') => {
                let value = match self.lookup(&name) {
                    Some(v) => v,
                    None if self.opts.skip_unset_env => format!("${{{name}}}"),
                    None => String::new(),
                };
                return self.deliver(stack, Piece::Expanded(value));
            }
            Some(':') => {
                let op = self.next();
                spelled.push_str(&spell(op));
                (op, true)
            }
            Some(c @ ('+' | '-' | '?' | '#' | '%')) => (Some(c), false),
            Some('/') => {
                let all = self.peek() == Some('/');
                if all {
                    self.next();
                }
                stack.push(Frame::Dollar(DollarFrame::Replace {
                    name,
                    all,
                    pattern: None,
                }));
                let word = self.word_frame(Some('/'), true);
                stack.push(word);
                return Ok(());
            }
            _ => return Err(unsupported(&spelled)),
        };
        let raw_escapes = matches!(op, Some('#' | '%'));
        if null_is_unset && raw_escapes {
            return Err(unsupported(&spelled));
        }
        stack.push(Frame::Dollar(DollarFrame::Modifier {
            name,
            op,
            spelled,
            null_is_unset,
        }));
        let word = self.word_frame(Some('}'), raw_escapes);
        stack.push(word);
        Ok(())
    }

    /// A sub-word of a `${…}` is complete; advance that expansion.
    fn word_done(&mut self, stack: &mut Vec<Frame>, word: String) -> Result<(), String> {
        let Some(Frame::Dollar(dollar)) = stack.last_mut() else {
            return Err("internal error: expansion frame expected".to_string());
        };
        if let DollarFrame::Replace {
            pattern: pattern @ None,
            ..
        } = dollar
        {
            *pattern = Some(word);
            let replacement = self.word_frame(Some('}'), true);
            stack.push(replacement);
            return Ok(());
        }
        let Some(Frame::Dollar(dollar)) = stack.pop() else {
            return Err("internal error: expansion frame expected".to_string());
        };
        let value = self.expand(dollar, word)?;
        self.deliver(stack, Piece::Expanded(value))
    }

    /// Compute the value of a completed `${…}`.
    fn expand(&mut self, dollar: DollarFrame, word: String) -> Result<String, String> {
        match dollar {
            DollarFrame::Modifier {
                name,
                op,
                spelled,
                null_is_unset,
            } => {
                let value = self.lookup(&name);
                if self.opts.skip_unset_env && value.is_none() {
                    return Ok(format!("${{{name}{spelled}{word}}}"));
                }
                let set = value.is_some();
                let value = value.unwrap_or_default();
                let unset_or_null = !set || (null_is_unset && value.is_empty());
                match op {
                    Some('-') => Ok(if unset_or_null { word } else { value }),
                    Some('+') => Ok(if unset_or_null { String::new() } else { word }),
                    Some('?') => {
                        let default = if !set {
                            "is not allowed to be unset"
                        } else if null_is_unset && value.is_empty() {
                            "is not allowed to be empty"
                        } else {
                            return Ok(value);
                        };
                        let message = if word.is_empty() {
                            default
                        } else {
                            word.as_str()
                        };
                        Err(format!("{name}: {message}"))
                    }
                    Some(op @ ('#' | '%')) => {
                        // a doubled operator asks for the longest match
                        let (greedy, pattern) = match word.strip_prefix(op) {
                            Some(rest) => (true, rest),
                            None => (false, word.as_str()),
                        };
                        if op == '%' {
                            pattern::trim_suffix(pattern, &value, greedy, &mut self.budget)
                        } else {
                            pattern::trim_prefix(pattern, &value, greedy, &mut self.budget)
                        }
                    }
                    _ => Err(unsupported(&spelled)),
                }
            }
            DollarFrame::Replace { name, all, pattern } => {
                let pattern = pattern.unwrap_or_default();
                let value = self.lookup(&name);
                if self.opts.skip_unset_env && value.is_none() {
                    return Ok(format!("${{{name}/{pattern}/{word}}}"));
                }
                let value = value.unwrap_or_default();
                pattern::replace(&pattern, &word, &value, all, &mut self.budget)
            }
        }
    }

    fn single_quoted(&mut self) -> Result<String, String> {
        self.next(); // the opening quote
        let mut text = String::new();
        if self.opts.raw_quotes {
            text.push('\'');
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .to_string(),
                    )
                }
                Some('\'') => {
                    if self.opts.raw_quotes {
                        text.push('\'');
                    }
                    return Ok(text);
                }
                Some(c) => text.push(c),
            }
        }
    }

    /// `<` is kept as is; `<<` swallows the blanks after it so that the
    /// heredoc marker stays one word.
    fn heredoc_marker(&mut self) -> String {
        self.next();
        if self.peek() != Some('<') {
            return "<".to_string();
        }
        self.next();
        let mut marker = "<<".to_string();
        while let Some(c) = self.peek().filter(|c| matches!(c, ' ' | '\t' | '\r')) {
            marker.push(c);
            self.next();
        }
        marker
    }
}

/// Add one unquoted character to the words: whitespace ends the current
/// word, anything else extends it.
fn push_char(buf: &mut String, words: &mut Vec<String>, c: char) {
    if unicode::is_space(c) {
        if !buf.is_empty() {
            words.push(std::mem::take(buf));
        }
    } else {
        buf.push(c);
    }
}

/// POSIX special parameters (`$@`, `$*`, `$#`, `$?`, `$-`, `$$`, `$!`, `$0`).
fn is_special_param(c: char) -> bool {
    matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0')
}

/// A scanned character as Go's `string(rune)` prints it: end of input is
/// U+FFFD.
fn spell(c: Option<char>) -> String {
    c.unwrap_or('\u{FFFD}').to_string()
}

fn unsupported(spelled: &str) -> String {
    format!("unsupported modifier ({spelled}) in substitution")
}
