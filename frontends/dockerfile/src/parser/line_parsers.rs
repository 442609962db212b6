//! Per-instruction argument parsers. Each keyword has one way of turning the
//! rest of its line into the node's argument list, exactly as in BuildKit's
//! dispatch table; unknown keywords keep a single empty argument.

use super::gostr;
use super::json;
use super::split_command::split_command;
use super::Node;
use crate::error::{Error, Result};

/// How deep `ONBUILD ONBUILD ...` may nest before the parser gives up (BuildKit
/// has no limit, but rejects any nesting later, in the instructions layer).
pub(crate) const MAX_ONBUILD_DEPTH: usize = 64;

const NOT_STRING_ARRAY: &str =
    "when using JSON array syntax, arrays must be comprised of strings only";

/// What a line parser produced.
#[derive(Default)]
pub(crate) struct Parsed {
    pub(crate) args: Vec<String>,
    pub(crate) sub: Option<Box<Node>>,
    pub(crate) json: bool,
}

impl Parsed {
    fn args(args: Vec<String>) -> Self {
        Parsed {
            args,
            ..Parsed::default()
        }
    }
}

/// Build the node for one logical line (continuations already joined).
pub(crate) fn node_from_line(
    line: &str,
    escape: char,
    comments: Vec<String>,
    depth: usize,
) -> Result<Node> {
    let (cmd, flags, rest) = split_command(line, escape);
    let keyword = gostr::to_lower(&cmd);
    let parsed = match keyword.as_str() {
        "add" | "copy" | "volume" => parse_maybe_json_to_list(&rest)?,
        "arg" => Parsed::args(parse_words(&rest, escape)),
        "cmd" | "entrypoint" | "run" | "shell" => parse_maybe_json(&rest)?,
        "env" => parse_name_val(&rest, "ENV", escape)?,
        "label" => parse_name_val(&rest, "LABEL", escape)?,
        "expose" | "from" => Parsed::args(parse_strings_whitespace_delimited(&rest)),
        "healthcheck" => parse_health_config(&rest)?,
        "maintainer" | "stopsignal" | "user" | "workdir" => Parsed::args(parse_string(&rest)),
        "onbuild" => parse_sub_command(&rest, escape, depth)?,
        // Unknown instructions are accepted here (with one empty argument)
        // and rejected by the instructions layer.
        _ => Parsed::args(vec![String::new()]),
    };
    Ok(Node {
        keyword,
        value: cmd,
        original: line.to_string(),
        flags,
        args: parsed.args,
        sub: parsed.sub,
        json: parsed.json,
        heredocs: Vec::new(),
        comments,
        start_line: 0,
        end_line: 0,
        column: 1,
    })
}

fn parse_sub_command(rest: &str, escape: char, depth: usize) -> Result<Parsed> {
    if rest.is_empty() {
        return Ok(Parsed::default());
    }
    if depth >= MAX_ONBUILD_DEPTH {
        return Err(Error::new("ONBUILD instructions nested too deeply"));
    }
    let child = node_from_line(rest, escape, Vec::new(), depth + 1)?;
    Ok(Parsed {
        sub: Some(Box::new(child)),
        ..Parsed::default()
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Spaces,
    Word,
    Quote,
}

fn char_at(s: &str, pos: usize) -> (char, usize) {
    match s.get(pos..).and_then(|t| t.chars().next()) {
        Some(c) => (c, c.len_utf8()),
        None => ('\u{fffd}', 1),
    }
}

/// Split on whitespace outside quotes, keeping quotes and escapes in the
/// words (BuildKit's `parseWords`).
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    let len = rest.len();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut word = String::new();
    let mut pos = 0;
    let mut ch = '\0';
    let mut width = 0;
    while pos <= len {
        if pos != len {
            (ch, width) = char_at(rest, pos);
        }
        if phase == Phase::Spaces {
            if pos == len {
                break;
            }
            if gostr::is_space(ch) {
                pos += width;
                continue;
            }
            phase = Phase::Word;
        }
        if pos == len {
            if blank_ok || !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            break;
        }
        if phase == Phase::Word {
            if gostr::is_space(ch) {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                pos += width;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if pos + width == len {
                    pos += width;
                    continue;
                }
                word.push(ch);
                pos += width;
                (ch, width) = char_at(rest, pos);
            }
            word.push(ch);
            pos += width;
            continue;
        }
        // Inside quotes.
        if ch == quote {
            phase = Phase::Word;
        }
        if ch == escape && quote != '\'' {
            if pos + width == len {
                phase = Phase::Word;
                pos += width;
                continue;
            }
            pos += width;
            word.push(ch);
            (ch, width) = char_at(rest, pos);
        }
        word.push(ch);
        pos += width;
    }
    words
}

/// ENV and LABEL: `KEY value` (legacy) or `k=v k2=v2 ...`; each pair
/// becomes three arguments: key, value, and `=` or `` (legacy form).
fn parse_name_val(rest: &str, key: &str, escape: char) -> Result<Parsed> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Parsed::default());
    };
    if !first.contains('=') {
        let parts = gostr::split_ws(rest, 2);
        if parts.len() < 2 {
            return Err(Error::new(format!("{key} must have two arguments")));
        }
        let mut it = parts.into_iter();
        let k = it.next().unwrap_or_default();
        let v = it.next().unwrap_or_default();
        return Ok(Parsed::args(vec![k, v, String::new()]));
    }
    let mut args = Vec::with_capacity(words.len() * 3);
    for word in &words {
        let Some((k, v)) = word.split_once('=') else {
            return Err(Error::new(format!(
                "syntax error - can't find = in {}; must be of the form: name=value",
                gostr::quote(word)
            )));
        };
        args.push(k.to_string());
        args.push(v.to_string());
        args.push("=".to_string());
    }
    Ok(Parsed::args(args))
}

fn parse_strings_whitespace_delimited(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        return Vec::new();
    }
    gostr::split_ws(rest, -1)
}

fn parse_string(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        Vec::new()
    } else {
        vec![rest.to_string()]
    }
}

enum JsonOutcome {
    Array(Vec<String>),
    NotJson,
}

/// Exec form: a JSON array of strings. `Ok(NotJson)` means "treat the text
/// as shell form"; an array holding anything but strings is an error.
fn parse_json(rest: &str) -> Result<JsonOutcome> {
    let rest = gostr::trim_left_space(rest);
    if !rest.starts_with('[') {
        return Ok(JsonOutcome::NotJson);
    }
    match json::parse(rest) {
        Some(json::Top::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    json::Elem::Str(s) => out.push(s),
                    json::Elem::Other => return Err(Error::new(NOT_STRING_ARRAY)),
                }
            }
            Ok(JsonOutcome::Array(out))
        }
        _ => Ok(JsonOutcome::NotJson),
    }
}

pub(crate) fn parse_maybe_json(rest: &str) -> Result<Parsed> {
    if rest.is_empty() {
        return Ok(Parsed::default());
    }
    match parse_json(rest)? {
        JsonOutcome::Array(args) => Ok(Parsed {
            args,
            json: true,
            sub: None,
        }),
        JsonOutcome::NotJson => Ok(Parsed::args(vec![rest.to_string()])),
    }
}

fn parse_maybe_json_to_list(rest: &str) -> Result<Parsed> {
    match parse_json(rest)? {
        JsonOutcome::Array(args) => Ok(Parsed {
            args,
            json: true,
            sub: None,
        }),
        JsonOutcome::NotJson => Ok(Parsed::args(parse_strings_whitespace_delimited(rest))),
    }
}

/// HEALTHCHECK: a type word (`NONE`, `CMD`, ...) followed by a command in
/// shell or exec form. BuildKit finds the word boundary byte by byte.
fn parse_health_config(rest: &str) -> Result<Parsed> {
    let b = rest.as_bytes();
    let sep = b
        .iter()
        .position(|&c| gostr::is_space_byte(c))
        .unwrap_or(b.len());
    let next = b[sep..]
        .iter()
        .position(|&c| !gostr::is_space_byte(c))
        .map_or(b.len(), |i| sep + i);
    if sep == 0 {
        return Ok(Parsed::default());
    }
    let typ = gostr::lossy(&b[..sep]);
    let cmd = parse_maybe_json(&gostr::lossy(&b[next..]))?;
    let mut args = Vec::with_capacity(cmd.args.len() + 1);
    args.push(typ);
    args.extend(cmd.args);
    Ok(Parsed {
        args,
        json: cmd.json,
        sub: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words() {
        let cases: &[(&str, &[&str])] = &[
            ("foo", &["foo"]),
            ("foo bar", &["foo", "bar"]),
            ("foo\\ bar", &["foo\\ bar"]),
            ("foo=bar", &["foo=bar"]),
            ("foo bar 'abc xyz'", &["foo", "bar", "'abc xyz'"]),
            ("foo bar \"abc xyz\"", &["foo", "bar", "\"abc xyz\""]),
            ("àöû", &["àöû"]),
            ("föo bàr \"âbc xÿz\"", &["föo", "bàr", "\"âbc xÿz\""]),
        ];
        for (input, want) in cases {
            assert_eq!(parse_words(input, '\\'), *want, "{input}");
        }
    }

    #[test]
    fn name_val() {
        assert_eq!(
            parse_name_val("foo bar", "LABEL", '\\').unwrap().args,
            vec!["foo", "bar", ""]
        );
        assert_eq!(
            parse_name_val("foo=bar thing=star", "LABEL", '\\')
                .unwrap()
                .args,
            vec!["foo", "bar", "=", "thing", "star", "="]
        );
        assert_eq!(
            parse_name_val("foo", "ENV", '\\').err().unwrap().message,
            "ENV must have two arguments"
        );
    }

    #[test]
    fn json_arrays() {
        for bad in [
            r#"["a",42,"b"]"#,
            r#"["a",123.456,"b"]"#,
            r#"["a",{},"b"]"#,
            r#"["a",{"c": "d"},"b"]"#,
            r#"["a",["c"],"b"]"#,
            r#"["a",true,"b"]"#,
            r#"["a",false,"b"]"#,
            r#"["a",null,"b"]"#,
        ] {
            assert!(parse_json(bad).is_err(), "{bad}");
        }
        let good: &[(&str, &[&str])] = &[
            ("[]", &[]),
            (r#"[""]"#, &[""]),
            (r#"["a"]"#, &["a"]),
            (r#"["a","b"]"#, &["a", "b"]),
            (r#"[ "a", "b" ]"#, &["a", "b"]),
            ("[\t\"a\",\t\"b\"\t]", &["a", "b"]),
            ("\t[\t\"a\",\t\"b\"\t]\t", &["a", "b"]),
            (
                r#"["abc 123", "♥", "☃", "\" \\ \/ \b \f \n \r \t \u0000"]"#,
                &["abc 123", "♥", "☃", "\" \\ / \u{8} \u{c} \n \r \t \u{0}"],
            ),
        ];
        for (input, want) in good {
            match parse_json(input).unwrap() {
                JsonOutcome::Array(v) => assert_eq!(v, *want),
                JsonOutcome::NotJson => panic!("{input} should be JSON"),
            }
        }
        // A number that overflows a float64 makes Go's decoder fail as a
        // whole, so the text falls back to shell form instead of erroring.
        assert!(matches!(
            parse_json("[1e999]").unwrap(),
            JsonOutcome::NotJson
        ));
    }
}
