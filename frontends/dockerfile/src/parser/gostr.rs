//! Small string helpers that behave like the Go standard-library functions
//! BuildKit relies on (`unicode.IsSpace`, `strings.ToLower`, `strconv.Quote`,
//! `regexp.Split` with `[\t\v\f\r ]+`, ...). The parser's output must match
//! BuildKit byte for byte, so these follow Go's rules, not Rust's.

use super::unicode_tables::{DIGIT, LETTER, PRINT};

fn in_table(table: &[(u32, u32)], c: char) -> bool {
    let c = c as u32;
    table
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Go's `unicode.IsSpace`: the Unicode White_Space property, which is what
/// Rust's `char::is_whitespace` implements as well.
pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace()
}

/// Go's `unicode.IsSpace(rune(b))` applied to a single byte, the way
/// BuildKit's byte-oriented loops do it (bytes >= 0x80 read as Latin-1).
pub(crate) fn is_space_byte(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' | 0x85 | 0xa0)
}

/// Go's `unicode.IsLetter` (general category L).
pub(crate) fn is_letter(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    in_table(LETTER, c)
}

/// Go's `unicode.IsDigit` (general category Nd).
pub(crate) fn is_digit(c: char) -> bool {
    if (c as u32) <= 0xff {
        return c.is_ascii_digit();
    }
    in_table(DIGIT, c)
}

/// Go's `strconv.IsPrint`.
pub(crate) fn is_print(c: char) -> bool {
    if (c as u32) < 0x80 {
        return (' '..='~').contains(&c);
    }
    in_table(PRINT, c)
}

/// Go's `unicode.ToLower` for one rune (simple case mapping).
pub(crate) fn lower_char(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    let mut it = c.to_lowercase();
    match (it.next(), it.next()) {
        (Some(l), None) => l,
        // U+0130 is the only rune whose full lowercase mapping has two
        // runes; its simple mapping is plain 'i'.
        (Some(l), Some(_)) => l,
        _ => c,
    }
}

/// Go's `unicode.ToUpper` for one rune (simple case mapping).
pub(crate) fn upper_char(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_uppercase();
    }
    let mut it = c.to_uppercase();
    match (it.next(), it.next()) {
        (Some(u), None) => u,
        // Full mappings that expand (ß -> SS) have no simple mapping in
        // most cases; Go leaves the rune alone.
        _ => c,
    }
}

/// Go's `strings.ToLower`.
pub fn to_lower(s: &str) -> String {
    s.chars().map(lower_char).collect()
}

/// Go's `strings.ToUpper`.
pub fn to_upper(s: &str) -> String {
    s.chars().map(upper_char).collect()
}

/// Go's `strings.TrimSpace`.
pub(crate) fn trim_space(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// Go's `strings.TrimLeftFunc(s, unicode.IsSpace)`.
pub(crate) fn trim_left_space(s: &str) -> &str {
    s.trim_start_matches(is_space)
}

/// Members of the regexp class `[\t\v\f\r ]` BuildKit splits words on.
pub(crate) fn is_split_ws(c: char) -> bool {
    matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ')
}

/// Go's `regexp.MustCompile("[\t\v\f\r ]+").Split(s, n)`.
pub(crate) fn split_ws(s: &str, n: isize) -> Vec<String> {
    if n == 0 {
        return Vec::new();
    }
    if s.is_empty() {
        return vec![String::new()];
    }
    // All matches of the pattern (runs of split whitespace), at most n when
    // n > 0, as byte ranges.
    let bytes = s.as_bytes();
    let mut matches: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if n > 0 && matches.len() as isize >= n {
            break;
        }
        if is_split_ws(bytes[i] as char) {
            let start = i;
            while i < bytes.len() && is_split_ws(bytes[i] as char) {
                i += 1;
            }
            matches.push((start, i));
        } else {
            i += 1;
        }
    }
    let mut out = Vec::new();
    let mut beg = 0;
    let mut end = 0;
    for (ms, me) in matches {
        if n > 0 && out.len() as isize == n - 1 {
            break;
        }
        end = ms;
        if me != 0 {
            out.push(s[beg..end].to_string());
        }
        beg = me;
    }
    if end != s.len() {
        out.push(s[beg..].to_string());
    }
    out
}

const LOWER_HEX: &[u8; 16] = b"0123456789abcdef";

/// Go's `strconv.Quote` (the `%q` verb for strings).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        push_escaped(&mut out, c);
    }
    out.push('"');
    out
}

fn push_escaped(out: &mut String, c: char) {
    if c == '"' || c == '\\' {
        out.push('\\');
        out.push(c);
        return;
    }
    if is_print(c) {
        out.push(c);
        return;
    }
    match c {
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        _ => {
            let r = c as u32;
            if r < 0x20 || r == 0x7f {
                out.push_str("\\x");
                out.push(LOWER_HEX[(r >> 4) as usize & 0xf] as char);
                out.push(LOWER_HEX[r as usize & 0xf] as char);
            } else if r < 0x10000 {
                out.push_str("\\u");
                for shift in [12, 8, 4, 0] {
                    out.push(LOWER_HEX[(r >> shift) as usize & 0xf] as char);
                }
            } else {
                out.push_str("\\U");
                for shift in [28, 24, 20, 16, 12, 8, 4, 0] {
                    out.push(LOWER_HEX[(r >> shift) as usize & 0xf] as char);
                }
            }
        }
    }
}

/// Go's `fmt.Sprintf("%q", []string{...})`.
pub(crate) fn quote_list(items: &[String]) -> String {
    let mut out = String::from("[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&quote(item));
    }
    out.push(']');
    out
}

/// Bytes that came out of a byte-oriented Go loop, back into a `String`.
/// Splits in BuildKit only happen on ASCII bytes or (rarely) on 0x85/0xA0
/// continuation bytes; in the latter case the text is not valid UTF-8 in Go
/// either, and we substitute U+FFFD.
pub(crate) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_matches_go() {
        assert_eq!(quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(quote("\x00\x07\x1b\x7f"), r#""\x00\a\x1b\x7f""#);
        assert_eq!(quote("é♥☃"), "\"é♥☃\"");
        assert_eq!(quote("\u{a0}\u{ad}\u{200b}"), r#""\u00a0\u00ad\u200b""#);
        assert_eq!(quote("\u{e000}\u{10ffff}"), r#""\ue000\U0010ffff""#);
        assert_eq!(quote("😀"), "\"😀\"");
    }

    #[test]
    fn split_ws_matches_go() {
        assert_eq!(split_ws("a b", 2), vec!["a", "b"]);
        assert_eq!(split_ws("a  b c", 2), vec!["a", "b c"]);
        assert_eq!(split_ws("a", 2), vec!["a"]);
        assert_eq!(split_ws(" a", -1), vec!["", "a"]);
        assert_eq!(split_ws("a b\tc", -1), vec!["a", "b", "c"]);
        assert_eq!(split_ws("", -1), vec![""]);
    }

    #[test]
    fn case_mapping() {
        assert_eq!(to_lower("RUN\u{130}"), "runi");
        assert_eq!(to_lower("WOR\u{212a}DIR"), "workdir");
        assert_eq!(to_upper("stra\u{df}e"), "STRA\u{df}E");
    }
}
