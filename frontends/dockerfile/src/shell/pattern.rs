//! Shell patterns for `${VAR#p}`, `${VAR%p}` and `${VAR/p/r}`.
//!
//! BuildKit turns such a pattern into a Go regular expression: `*` becomes
//! `.*` (or the lazy `.*?` for the shortest-match forms), `?` becomes `.`,
//! `\*`, `\?` and `\\` are literal, a backslash before `}` or `/` is dropped,
//! any other escape is an error and everything else is literal. Bracket
//! expressions are not supported (`[` is literal). Being Go regexps, `.`
//! never matches a newline, and the match found is the leftmost one with
//! Perl-style (leftmost-first) priorities.
//!
//! Instead of a regexp engine this module compiles the pattern into a flat
//! list of atoms and runs a priority-ordered Thompson simulation (a "Pike
//! VM") over it, which reproduces leftmost-first results in
//! O(text × pattern) time and O(pattern) memory — no backtracking, so no
//! exponential blow-up.

use super::unicode;

/// One element of a compiled shell pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Atom {
    /// Exactly this character.
    Lit(char),
    /// Any single character except `\n` (Go's `.`).
    Any,
    /// Any run of characters without `\n` (Go's `.*` / `.*?`).
    Star,
}

/// Work counter shared by every match of one word expansion, so that a
/// hostile input cannot make the lexer spin. Every VM step and every
/// produced character costs one unit.
#[derive(Debug)]
pub(super) struct Budget {
    left: u64,
}

pub(super) const EXHAUSTED: &str = "variable expansion exceeds the work limit";

impl Budget {
    pub(super) fn new(units: u64) -> Self {
        Budget { left: units }
    }

    pub(super) fn charge(&mut self, units: usize) -> Result<(), String> {
        let units = units as u64;
        if units > self.left {
            self.left = 0;
            return Err(EXHAUSTED.to_string());
        }
        self.left -= units;
        Ok(())
    }
}

/// Compile a shell pattern (as produced by the lexer, escapes still in it).
/// The error is the bare reason, e.g. `invalid escape '\x'`.
pub(super) fn compile(pattern: &str) -> Result<Vec<Atom>, String> {
    let mut chars = pattern.chars().peekable();
    // Go's text/scanner silently drops a byte order mark at the very start.
    if chars.peek() == Some(&'\u{FEFF}') {
        chars.next();
    }
    let mut atoms = Vec::new();
    while let Some(c) = chars.next() {
        match c {
            '*' => atoms.push(Atom::Star),
            '?' => atoms.push(Atom::Any),
            '\\' => {
                // `\}` and `\/` only protect the delimiter of `${...}`; the
                // backslash is not part of the pattern.
                if matches!(chars.peek(), Some('}') | Some('/')) {
                    continue;
                }
                match chars.next() {
                    Some(e @ ('*' | '?' | '\\')) => atoms.push(Atom::Lit(e)),
                    Some(other) => return Err(format!("invalid escape '\\{other}'")),
                    None => return Err("invalid escape '\\\u{FFFD}'".to_string()),
                }
            }
            other => atoms.push(Atom::Lit(other)),
        }
    }
    Ok(atoms)
}

/// Reverse a pattern while keeping each backslash in front of the character
/// it escapes (`a\*c` becomes `c\*a`). A trailing lone backslash stays a
/// plain character, as in BuildKit.
pub(super) fn reverse_pattern(pattern: &str) -> String {
    let p: Vec<char> = pattern.chars().collect();
    let n = p.len();
    let mut out = vec!['\0'; n];
    let mut i = 0;
    while i < n {
        let last = n - 1;
        let tok = p[i];
        let o = last - i;
        if tok == '\\' && i != last {
            // i < last, hence o >= 1
            out[o - 1] = tok;
            out[o] = p[i + 1];
            i += 2;
        } else {
            out[o] = tok;
            i += 1;
        }
    }
    out.into_iter().collect()
}

/// A priority-ordered thread list with O(1) membership test.
struct ThreadList {
    /// (program counter, start position), highest priority first
    threads: Vec<(usize, usize)>,
    stamp: Vec<u32>,
    generation: u32,
}

impl ThreadList {
    fn new(states: usize) -> Self {
        ThreadList {
            threads: Vec::new(),
            stamp: vec![0; states],
            generation: 1,
        }
    }

    fn clear(&mut self) {
        self.threads.clear();
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.stamp.iter_mut().for_each(|s| *s = 0);
            self.generation = 1;
        }
    }

    fn seen(&self, pc: usize) -> bool {
        self.stamp[pc] == self.generation
    }

    fn mark(&mut self, pc: usize) {
        self.stamp[pc] = self.generation;
    }

    /// Add the thread at `pc` and everything reachable from it without
    /// consuming input, in priority order. Stars are the only epsilon moves
    /// (skip the star, or stay in it to consume), so the closure is a chain
    /// and needs no recursion.
    fn add(&mut self, atoms: &[Atom], greedy: bool, pc: usize, start: usize) {
        let end = atoms.len(); // program counter of the match state
        if greedy {
            // prefer consuming in the star, then continue after it
            let mut pc = pc;
            loop {
                if self.seen(pc) {
                    return;
                }
                self.mark(pc);
                self.threads.push((pc, start));
                if pc == end || atoms[pc] != Atom::Star {
                    return;
                }
                pc += 1;
            }
        } else {
            // prefer skipping the star: the state after a run of stars comes
            // first, then the stars themselves from the innermost outwards
            let first = pc;
            let mut pc = pc;
            while pc < end && atoms[pc] == Atom::Star && !self.seen(pc) {
                self.mark(pc);
                pc += 1;
            }
            let chain_end = pc;
            if (pc == end || atoms[pc] != Atom::Star) && !self.seen(pc) {
                self.mark(pc);
                self.threads.push((pc, start));
            }
            for star in (first..chain_end).rev() {
                self.threads.push((star, start));
            }
        }
    }
}

/// Leftmost-first search of `atoms` in `text`, starting at `from`.
/// With `anchored`, only a match starting exactly at `from` counts (used
/// with `from == 0`, like Go's `^`). Returns (start, end) char indices.
pub(super) fn find(
    atoms: &[Atom],
    greedy: bool,
    text: &[char],
    from: usize,
    anchored: bool,
    budget: &mut Budget,
) -> Result<Option<(usize, usize)>, String> {
    let states = atoms.len() + 1;
    let mut clist = ThreadList::new(states);
    let mut nlist = ThreadList::new(states);
    let mut matched: Option<(usize, usize)> = None;
    let mut pos = from;
    loop {
        if matched.is_none() && (!anchored || pos == from) {
            clist.add(atoms, greedy, 0, pos);
        }
        if clist.threads.is_empty() {
            if matched.is_some() || anchored || pos >= text.len() {
                break;
            }
            pos += 1;
            continue;
        }
        budget.charge(clist.threads.len())?;
        let c = text.get(pos).copied();
        nlist.clear();
        for i in 0..clist.threads.len() {
            let (pc, start) = clist.threads[i];
            if pc == atoms.len() {
                // a match: lower-priority threads are cut off
                matched = Some((start, pos));
                break;
            }
            let Some(c) = c else { continue };
            match atoms[pc] {
                Atom::Lit(l) if l == c => nlist.add(atoms, greedy, pc + 1, start),
                Atom::Any if c != '\n' => nlist.add(atoms, greedy, pc + 1, start),
                Atom::Star if c != '\n' => nlist.add(atoms, greedy, pc, start),
                _ => {}
            }
        }
        std::mem::swap(&mut clist, &mut nlist);
        if pos >= text.len() {
            break;
        }
        pos += 1;
    }
    Ok(matched)
}

fn invalid(pattern: &str, reason: &str) -> String {
    format!("invalid pattern ({pattern}) in substitution: {reason}")
}

/// `${VAR#pattern}` / `${VAR##pattern}`: drop the shortest (longest)
/// matching prefix.
pub(super) fn trim_prefix(
    pattern: &str,
    value: &str,
    greedy: bool,
    budget: &mut Budget,
) -> Result<String, String> {
    let atoms = compile(pattern).map_err(|e| invalid(pattern, &e))?;
    let text: Vec<char> = value.chars().collect();
    match find(&atoms, greedy, &text, 0, true, budget)? {
        Some((_, end)) => Ok(text[end..].iter().collect()),
        None => Ok(value.to_string()),
    }
}

/// `${VAR%pattern}` / `${VAR%%pattern}`: drop the shortest (longest)
/// matching suffix. Like BuildKit, this reverses both the pattern and the
/// value and trims a prefix.
pub(super) fn trim_suffix(
    pattern: &str,
    value: &str,
    greedy: bool,
    budget: &mut Budget,
) -> Result<String, String> {
    let reversed_pattern = reverse_pattern(pattern);
    let reversed_value: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&reversed_pattern, &reversed_value, greedy, budget)?;
    Ok(trimmed.chars().rev().collect())
}

/// `${VAR/pattern/replacement}` and `${VAR//pattern/replacement}`.
///
/// The first form splices the replacement in literally. The second one
/// behaves like Go's `Regexp.ReplaceAllString`, so `$0`/`${0}` in the
/// replacement stand for the matched text, `$$` for `$`, and any other
/// `$name` for nothing.
pub(super) fn replace(
    pattern: &str,
    replacement: &str,
    value: &str,
    all: bool,
    budget: &mut Budget,
) -> Result<String, String> {
    let atoms = compile(pattern).map_err(|e| invalid(pattern, &e))?;
    let text: Vec<char> = value.chars().collect();
    if !all {
        return Ok(match find(&atoms, true, &text, 0, false, budget)? {
            Some((start, end)) => {
                budget.charge(text.len() + replacement.len())?;
                let mut out: String = text[..start].iter().collect();
                out.push_str(replacement);
                out.extend(&text[end..]);
                out
            }
            None => value.to_string(),
        });
    }

    let template = parse_template(replacement);
    let mut out = String::new();
    let mut last_end = 0usize;
    let mut search = 0usize;
    while search <= text.len() {
        let Some((start, end)) = find(&atoms, true, &text, search, false, budget)? else {
            break;
        };
        budget.charge(start.saturating_sub(last_end))?;
        out.extend(&text[last_end.min(start)..start]);
        // no replacement for an empty match right after the previous match
        if end > last_end || start == 0 {
            for piece in &template {
                match piece {
                    TemplatePiece::Text(s) => {
                        budget.charge(s.len())?;
                        out.push_str(s);
                    }
                    TemplatePiece::Match => {
                        budget.charge(end - start)?;
                        out.extend(&text[start..end]);
                    }
                }
            }
        }
        last_end = end;
        // always advance by at least one character
        let width = usize::from(search < text.len());
        if search + width > end {
            search += width;
        } else if search + 1 > end {
            search += 1;
        } else {
            search = end;
        }
    }
    budget.charge(text.len().saturating_sub(last_end))?;
    out.extend(&text[last_end.min(text.len())..]);
    Ok(out)
}

#[derive(Debug, PartialEq, Eq)]
enum TemplatePiece {
    Text(String),
    /// the whole match (`$0`, `${0}`)
    Match,
}

/// Interpret `$` references in a replacement template the way Go's
/// `Regexp.Expand` does for a pattern without capture groups.
fn parse_template(template: &str) -> Vec<TemplatePiece> {
    let chars: Vec<char> = template.chars().collect();
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '$' {
            text.push(chars[i]);
            i += 1;
            continue;
        }
        i += 1;
        if chars.get(i) == Some(&'$') {
            text.push('$');
            i += 1;
            continue;
        }
        match reference(&chars[i..]) {
            None => text.push('$'), // malformed: the `$` is literal
            Some((name, used)) => {
                i += used;
                if name == "0" {
                    if !text.is_empty() {
                        pieces.push(TemplatePiece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(TemplatePiece::Match);
                }
                // any other group number or name does not exist: empty
            }
        }
    }
    if !text.is_empty() {
        pieces.push(TemplatePiece::Text(text));
    }
    pieces
}

/// Parse `name` or `{name}` after a `$`; returns the name and the number of
/// characters consumed.
fn reference(s: &[char]) -> Option<(String, usize)> {
    let braced = s.first() == Some(&'{');
    let body = if braced { &s[1..] } else { s };
    let len = body
        .iter()
        .take_while(|&&c| unicode::is_letter(c) || unicode::is_digit(c) || c == '_')
        .count();
    if len == 0 {
        return None;
    }
    let name: String = body[..len].iter().collect();
    if braced {
        if body.get(len) != Some(&'}') {
            return None;
        }
        return Some((name, len + 2));
    }
    Some((name, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget() -> Budget {
        Budget::new(u64::MAX)
    }

    #[test]
    fn compile_escapes() {
        assert_eq!(
            compile("a\\*").unwrap(),
            vec![Atom::Lit('a'), Atom::Lit('*')]
        );
        assert_eq!(compile("\\}").unwrap(), vec![Atom::Lit('}')]);
        assert_eq!(
            compile("\\/x").unwrap(),
            vec![Atom::Lit('/'), Atom::Lit('x')]
        );
        assert_eq!(compile("\\").unwrap_err(), "invalid escape '\\\u{FFFD}'");
        assert_eq!(compile("\\x").unwrap_err(), "invalid escape '\\x'");
        assert!(compile("\\\\\\").is_err());
        assert_eq!(compile("(()[]{\\}^$.\\*\\?|\\\\").unwrap().len(), 14);
    }

    #[test]
    fn reverse() {
        assert_eq!(reverse_pattern("a\\*c"), "c\\*a");
        assert_eq!(reverse_pattern("\\\\\\ab"), "b\\a\\\\");
        assert_eq!(reverse_pattern("ab\\"), "\\ba");
        assert_eq!(reverse_pattern("👽\\🚀🖖"), "🖖\\🚀👽");
        assert_eq!(reverse_pattern("\\\\b"), "b\\\\");
        assert_eq!(reverse_pattern(""), "");
    }

    #[test]
    fn prefix_and_suffix() {
        let b = &mut budget();
        assert_eq!(trim_prefix("*x*y", "xxyy", false, b).unwrap(), "y");
        assert_eq!(trim_prefix("*", "xxyy", false, b).unwrap(), "xxyy");
        assert_eq!(trim_prefix("*x", "xxyy", true, b).unwrap(), "yy");
        assert_eq!(trim_suffix("\\**", "xx**", true, b).unwrap(), "xx");
        assert_eq!(trim_suffix("\\**\\*", "a***yy*", true, b).unwrap(), "a");
        // `*` does not cross newlines
        assert_eq!(trim_prefix("*b", "a\nb", true, b).unwrap(), "a\nb");
    }

    #[test]
    fn replacements() {
        let b = &mut budget();
        assert_eq!(replace("", "ww", "xxyy", false, b).unwrap(), "wwxxyy");
        assert_eq!(replace("", "-", "ab", true, b).unwrap(), "-a-b-");
        assert_eq!(
            replace("\\*/", ".", "/foo*/*/*.txt", true, b).unwrap(),
            "/foo..*.txt"
        );
        assert_eq!(replace("b", "<$0>", "abcb", true, b).unwrap(), "a<b>c<b>");
        assert_eq!(replace("b", "<$0>", "abcb", false, b).unwrap(), "a<$0>cb");
        assert_eq!(replace("b", "$$${0}$1$x$", "ab", true, b).unwrap(), "a$b$");
        assert_eq!(replace("a*", "X", "aaa\naa", true, b).unwrap(), "X\nX");
    }

    #[test]
    fn budget_stops_work() {
        let mut b = Budget::new(10);
        assert!(replace("*a", "x", &"b".repeat(100), true, &mut b).is_err());
    }
}
