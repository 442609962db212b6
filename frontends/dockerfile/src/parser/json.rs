//! Just enough of Go's `encoding/json` to decide what BuildKit decides.
//!
//! BuildKit calls `json.Unmarshal` into `[]any` (exec-form arguments) and into
//! `map[string]any` (the JSON form of the `syntax` directive). Either call
//! fails on any syntax error, on nesting deeper than 10000 levels and on a
//! number that does not fit a float64; otherwise the caller only looks at the
//! top-level members and whether they are strings. This module validates the
//! whole document without recursion and reports exactly that much.

/// One member of the top-level container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Elem {
    Str(String),
    Other,
}

/// The top-level value of a document that Go would decode successfully.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Top {
    Array(Vec<Elem>),
    /// Members in document order (a later duplicate key wins in Go's map).
    Object(Vec<(String, Elem)>),
    Scalar,
}

/// Go's scanner refuses documents nested deeper than this.
const MAX_DEPTH: usize = 10_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Array,
    Object,
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let digits = self.b.get(at..at + 4)?;
        let mut v = 0u32;
        for &d in digits {
            v = v * 16 + (d as char).to_digit(16)?;
        }
        Some(v)
    }

    /// A string starting at the opening quote, decoded like Go does.
    fn string(&mut self) -> Option<String> {
        if !self.eat(b'"') {
            return None;
        }
        let mut out: Vec<u8> = Vec::new();
        loop {
            let c = self.peek()?;
            match c {
                b'"' => {
                    self.pos += 1;
                    return Some(String::from_utf8_lossy(&out).into_owned());
                }
                b'\\' => {
                    self.pos += 1;
                    let e = self.peek()?;
                    self.pos += 1;
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e),
                        b'b' => out.push(0x08),
                        b'f' => out.push(0x0c),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let r = self.hex4(self.pos)?;
                            self.pos += 4;
                            let ch = if (0xd800..0xe000).contains(&r) {
                                // A surrogate: only a high one immediately
                                // followed by an escaped low one pairs up.
                                let low = if self.b.get(self.pos..self.pos + 2) == Some(b"\\u") {
                                    self.hex4(self.pos + 2)
                                } else {
                                    None
                                };
                                match low {
                                    Some(lo)
                                        if (0xd800..0xdc00).contains(&r)
                                            && (0xdc00..0xe000).contains(&lo) =>
                                    {
                                        self.pos += 6;
                                        char::from_u32(
                                            0x10000 + ((r - 0xd800) << 10) + (lo - 0xdc00),
                                        )
                                        .unwrap_or('\u{fffd}')
                                    }
                                    _ => '\u{fffd}',
                                }
                            } else {
                                char::from_u32(r).unwrap_or('\u{fffd}')
                            };
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => return None,
                    }
                }
                0x00..=0x1f => return None,
                _ => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// A number; `None` on bad syntax or when it overflows a float64.
    fn number(&mut self) -> Option<()> {
        let start = self.pos;
        self.eat(b'-');
        match self.peek()? {
            b'0' => self.pos += 1,
            b'1'..=b'9' => {
                while let Some(b'0'..=b'9') = self.peek() {
                    self.pos += 1;
                }
            }
            _ => return None,
        }
        if self.eat(b'.') {
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return None;
            }
            while let Some(b'0'..=b'9') = self.peek() {
                self.pos += 1;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return None;
            }
            while let Some(b'0'..=b'9') = self.peek() {
                self.pos += 1;
            }
        }
        let text = std::str::from_utf8(self.b.get(start..self.pos)?).ok()?;
        let v: f64 = text.parse().ok()?;
        if v.is_infinite() {
            return None;
        }
        Some(())
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.b.get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            Some(())
        } else {
            None
        }
    }
}

/// Parse a whole document; `None` whenever Go's `json.Unmarshal` into an
/// interface-typed container would return an error.
pub(crate) fn parse(src: &str) -> Option<Top> {
    let mut cur = Cursor {
        b: src.as_bytes(),
        pos: 0,
    };
    let mut stack: Vec<Kind> = Vec::new();
    let mut top: Option<Top> = None;
    // Key of the top-level object member currently being read.
    let mut key: Option<String> = None;

    cur.skip_ws();
    'value: loop {
        // Read one value (or open a container).
        cur.skip_ws();
        let elem = match cur.peek()? {
            b'[' | b'{' => {
                let kind = if cur.peek() == Some(b'[') {
                    Kind::Array
                } else {
                    Kind::Object
                };
                cur.pos += 1;
                stack.push(kind);
                if stack.len() > MAX_DEPTH {
                    return None;
                }
                if stack.len() == 1 {
                    top = Some(match kind {
                        Kind::Array => Top::Array(Vec::new()),
                        Kind::Object => Top::Object(Vec::new()),
                    });
                }
                cur.skip_ws();
                match kind {
                    Kind::Array => {
                        if !cur.eat(b']') {
                            continue 'value;
                        }
                    }
                    Kind::Object => {
                        if !cur.eat(b'}') {
                            let k = cur.string()?;
                            cur.skip_ws();
                            if !cur.eat(b':') {
                                return None;
                            }
                            if stack.len() == 1 {
                                key = Some(k);
                            }
                            continue 'value;
                        }
                    }
                }
                // An empty container just closed.
                stack.pop();
                Elem::Other
            }
            b'"' => Elem::Str(cur.string()?),
            b'-' | b'0'..=b'9' => {
                cur.number()?;
                Elem::Other
            }
            b't' => {
                cur.literal(b"true")?;
                Elem::Other
            }
            b'f' => {
                cur.literal(b"false")?;
                Elem::Other
            }
            b'n' => {
                cur.literal(b"null")?;
                Elem::Other
            }
            _ => return None,
        };
        let mut elem = Some(elem);

        // A value is complete: attach it and find what comes next.
        loop {
            if let Some(e) = elem.take() {
                if stack.len() == 1 {
                    match top.as_mut() {
                        Some(Top::Array(items)) => items.push(e),
                        Some(Top::Object(members)) => {
                            members.push((key.take().unwrap_or_default(), e));
                        }
                        _ => {}
                    }
                } else if stack.is_empty() && top.is_none() {
                    top = Some(Top::Scalar);
                }
            }
            cur.skip_ws();
            let Some(&kind) = stack.last() else {
                // Document complete: only whitespace may follow.
                return if cur.pos == cur.b.len() { top } else { None };
            };
            match (kind, cur.peek()?) {
                (_, b',') => {
                    cur.pos += 1;
                    if kind == Kind::Object {
                        cur.skip_ws();
                        let k = cur.string()?;
                        cur.skip_ws();
                        if !cur.eat(b':') {
                            return None;
                        }
                        if stack.len() == 1 {
                            key = Some(k);
                        }
                    }
                    continue 'value;
                }
                (Kind::Array, b']') | (Kind::Object, b'}') => {
                    cur.pos += 1;
                    stack.pop();
                    elem = Some(Elem::Other);
                }
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(s: &str) -> Option<Vec<Elem>> {
        match parse(s)? {
            Top::Array(v) => Some(v),
            _ => None,
        }
    }

    #[test]
    fn arrays() {
        assert_eq!(strs("[]"), Some(vec![]));
        assert_eq!(
            strs(r#"[ "a" , "b" ] "#),
            Some(vec![Elem::Str("a".into()), Elem::Str("b".into())])
        );
        assert_eq!(
            strs(r#"["a",1,{"x":[1,2]},null]"#).map(|v| v.len()),
            Some(4)
        );
        assert_eq!(strs(r#"["a" "b"]"#), None);
        assert_eq!(strs(r#"["a",]"#), None);
        assert_eq!(strs(r#"["a"] x"#), None);
        assert_eq!(strs("[1e400]"), None);
        assert_eq!(strs("[1e-400]").map(|v| v.len()), Some(1));
        assert_eq!(strs("[01]"), None);
        assert_eq!(strs("['a']"), None);
        assert_eq!(strs("[\"a\tb\"]"), None);
    }

    #[test]
    fn escapes() {
        let v = strs(r#"["\" \\ \/ \b \f \n \r \t \u0000 \ud83d\ude00 \ud83d x \udc00"]"#).unwrap();
        assert_eq!(
            v,
            vec![Elem::Str(
                "\" \\ / \u{8} \u{c} \n \r \t \u{0} 😀 \u{fffd} x \u{fffd}".into()
            )]
        );
    }

    #[test]
    fn depth_limit() {
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(parse(&deep).is_some());
        let deeper = "[".repeat(10_001) + &"]".repeat(10_001);
        assert!(parse(&deeper).is_none());
    }

    #[test]
    fn objects() {
        assert_eq!(
            parse(r#"{"syntax": "x", "n": {"a": 1}}"#),
            Some(Top::Object(vec![
                ("syntax".into(), Elem::Str("x".into())),
                ("n".into(), Elem::Other)
            ]))
        );
        assert_eq!(parse("{}"), Some(Top::Object(vec![])));
        assert_eq!(parse("null"), Some(Top::Scalar));
        assert_eq!(parse(r#"{"a" 1}"#), None);
    }
}
