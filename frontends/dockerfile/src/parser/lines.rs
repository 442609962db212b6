//! The line loop: directives, comments, continuations, heredoc bodies, and
//! line numbers, following BuildKit's `parser.Parse`.

use super::directives::{find_directive, Directive, DirectiveParser, Directives};
use super::gostr;
use super::heredoc::heredocs_from_line;
use super::line_parsers::node_from_line;
use super::scanner::{Scanner, MAX_TOKEN};
use super::{Ast, Warning, DEFAULT_ESCAPE, MAX_DOCKERFILE_SIZE};
use crate::error::{Error, Location, Result};

struct State {
    escape: char,
    directives: DirectiveParser,
    escape_directive: Option<Directive>,
}

impl State {
    /// Feed one line to the directive parser; true if it was a directive.
    fn possible_directive(&mut self, line: &str) -> Result<bool> {
        let Some(directive) = self.directives.parse_line(line)? else {
            return Ok(false);
        };
        if directive.name == "escape" {
            let esc = match directive.value.as_str() {
                "`" => '`',
                "\\" => '\\',
                other => {
                    return Err(Error::at(
                        format!("invalid escape token '{other}' does not match ` or \\"),
                        Location::line(directive.line),
                    ))
                }
            };
            self.escape = esc;
            self.escape_directive = Some(directive);
        }
        Ok(true)
    }

    /// BuildKit's `processLine`: newline removed, optionally left-trimmed,
    /// checked for a directive, comments blanked.
    fn process_line<'a>(&mut self, token: &'a str, strip_left: bool) -> Result<(&'a str, bool)> {
        let mut token = trim_newline(token);
        if strip_left {
            token = gostr::trim_left_space(token);
        }
        let directive = self.possible_directive(token)?;
        let out = if is_comment(token) { "" } else { token };
        Ok((out, directive))
    }

    /// Remove a trailing line-continuation escape (and blanks after it);
    /// returns the remaining text and whether the instruction ends here.
    fn trim_continuation<'a>(&self, line: &'a str) -> (&'a str, bool) {
        let trimmed = line.trim_end_matches([' ', '\t']);
        let Some(before) = trimmed.strip_suffix(self.escape) else {
            return (line, true);
        };
        if before.is_empty() {
            return ("", false);
        }
        if before.ends_with(self.escape) {
            // An escaped escape character is not a continuation.
            return (line, true);
        }
        (before, false)
    }
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(line: &str) -> bool {
    gostr::trim_left_space(line).starts_with('#')
}

/// Parse a Dockerfile.
pub fn parse(src: &str) -> Result<Ast> {
    if src.len() > MAX_DOCKERFILE_SIZE {
        return Err(Error::new(format!(
            "dockerfile is too large ({} bytes, the limit is {} bytes)",
            src.len(),
            MAX_DOCKERFILE_SIZE
        )));
    }
    let mut st = State {
        escape: DEFAULT_ESCAPE,
        directives: DirectiveParser::new("#", 0),
        escape_directive: None,
    };
    let mut scanner = Scanner::new(src);
    let mut current_line = 0usize;
    let mut children = Vec::new();
    let mut warnings = Vec::new();
    let mut comments: Vec<String> = Vec::new();

    while let Some(mut raw) = scanner.next_line() {
        if current_line == 0 {
            raw = raw.strip_prefix('\u{feff}').unwrap_or(raw);
        }
        if is_comment(raw) {
            // BuildKit drops the first byte of the raw line here, which is
            // the `#` unless the comment is indented.
            let comment = gostr::lossy(raw.as_bytes().get(1..).unwrap_or_default());
            let comment = gostr::trim_space(&comment);
            if comment.is_empty() {
                comments.clear();
            } else {
                comments.push(comment.to_string());
            }
        }
        let (line, was_directive) = st.process_line(raw, true)?;
        if was_directive {
            comments.pop();
        }
        current_line += 1;
        let start_line = current_line;
        let column = raw.chars().take_while(|&c| gostr::is_space(c)).count() + 1;

        let (first, mut end_of_line) = st.trim_continuation(line);
        if end_of_line && first.is_empty() {
            continue;
        }
        let mut buf = first.to_string();

        let mut has_empty_continuation = false;
        while !end_of_line {
            let Some(next) = scanner.next_line() else {
                break;
            };
            let (line, _) = st.process_line(next, false)?;
            current_line += 1;
            if is_comment(next) {
                continue;
            }
            if gostr::trim_left_space(line).is_empty() {
                has_empty_continuation = true;
                continue;
            }
            let (text, eol) = st.trim_continuation(line);
            end_of_line = eol;
            buf.push_str(text);
        }

        let here = Location::new(start_line, column, 1);
        if has_empty_continuation {
            warnings.push(Warning {
                message: format!("empty continuation line found in: {buf}"),
                line: current_line,
            });
        }

        let mut node = node_from_line(&buf, st.escape, std::mem::take(&mut comments), 0)
            .map_err(|e| e.or_at(here))?;

        if node.can_contain_heredoc() && buf.contains("<<") {
            let docs = heredocs_from_line(&buf).map_err(|e| e.or_at(here))?;
            for mut doc in docs {
                let mut terminated = false;
                let mut content = String::new();
                while let Some(body_line) = scanner.next_line() {
                    current_line += 1;
                    let mut candidate = trim_newline(body_line);
                    if doc.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == doc.name {
                        terminated = true;
                        break;
                    }
                    content.push_str(body_line);
                }
                if !terminated {
                    return Err(Error::at("unterminated heredoc", here));
                }
                doc.content = content;
                node.heredocs.push(doc);
            }
        }

        node.start_line = start_line;
        node.end_line = current_line;
        node.column = column;
        set_sub_lines(&mut node);
        children.push(node);
        comments.clear();
    }

    if children.is_empty() {
        return Err(Error::at(
            "file with no instructions",
            Location::line(current_line.max(1)),
        ));
    }
    if scanner.too_long {
        return Err(Error::at(
            format!(
                "dockerfile line greater than max allowed size of {}",
                MAX_TOKEN - 1
            ),
            Location::line(current_line + 1),
        ));
    }

    let directives = Directives {
        syntax: super::directives::detect_syntax(src),
        escape: st.escape_directive,
        check: find_directive("check", src, false),
    };
    Ok(Ast {
        directives,
        escape: st.escape,
        children,
        warnings,
    })
}

/// ONBUILD triggers share their parent's position.
fn set_sub_lines(node: &mut super::Node) {
    let (start, end, column) = (node.start_line, node.end_line, node.column);
    let mut cur = node.sub.as_deref_mut();
    while let Some(sub) = cur {
        sub.start_line = start;
        sub.end_line = end;
        sub.column = column;
        cur = sub.sub.as_deref_mut();
    }
}
