//! BuildKit-faithful Dockerfile parser: source text → [`Ast`] of [`Node`]s.
//!
//! This stage knows about lines, continuations, comments, parser
//! directives, heredocs and each keyword's argument syntax; it does not judge
//! whether an instruction makes sense (unknown keywords are accepted here and
//! rejected by [`crate::instructions`]). [`dump`] renders the tree in
//! BuildKit's S-expression format, which the conformance tests compare
//! byte for byte.

mod directives;
mod dump;
pub(crate) mod gostr;
mod heredoc;
pub(crate) mod json;
mod line_parsers;
mod lines;
mod scanner;
mod split_command;
mod unicode_tables;

use serde::Serialize;

pub use directives::{detect_syntax, find_directive, Directive, Directives};
pub use dump::{dump, dump_node};
pub use gostr::{quote as go_quote, to_lower as go_to_lower, to_upper as go_to_upper};
pub use heredoc::{chomp_heredoc_content, heredocs_from_line, parse_heredoc, Heredoc};
pub use lines::parse;

/// Largest Dockerfile accepted, in bytes.
pub const MAX_DOCKERFILE_SIZE: usize = 16 * 1024 * 1024;

/// Longest line (including its newline) BuildKit's line scanner accepts.
pub const MAX_LINE_SIZE: usize = scanner::MAX_TOKEN;

/// The default escape character.
pub const DEFAULT_ESCAPE: char = '\\';

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// The keyword, lowercased (`run`, `copy`, ... or whatever was written).
    pub keyword: String,
    /// The keyword as written.
    pub value: String,
    /// The instruction's text, continuation lines joined (heredoc bodies not
    /// included).
    pub original: String,
    /// Leading `--flag[=value]` words, quotes and escapes removed.
    pub flags: Vec<String>,
    /// The arguments as BuildKit's per-keyword parser splits them. ENV and
    /// LABEL give triples (key, value, `=` or `` for the legacy form).
    pub args: Vec<String>,
    /// For `ONBUILD`: the trigger instruction.
    pub sub: Option<Box<Node>>,
    /// The arguments were written as a JSON array (exec form).
    pub json: bool,
    pub heredocs: Vec<Heredoc>,
    /// Comment lines directly above the instruction (`#` and one leading
    /// character removed, trimmed), used for doc comments.
    pub comments: Vec<String>,
    /// 1-based first line of the instruction.
    pub start_line: usize,
    /// 1-based last line (including continuation lines and heredoc bodies).
    pub end_line: usize,
    /// 1-based column (in characters) of the keyword on `start_line`.
    pub column: usize,
}

impl Node {
    /// Whether heredocs are looked for on this instruction: RUN, COPY and
    /// ADD (also as an ONBUILD trigger), not in exec form.
    pub fn can_contain_heredoc(&self) -> bool {
        let node = if self.keyword == "onbuild" {
            self.sub.as_deref().unwrap_or(self)
        } else {
            self
        };
        matches!(node.keyword.as_str(), "add" | "copy" | "run") && !node.json
    }
}

/// A non-fatal finding of the parser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub message: String,
    /// 1-based line the warning refers to.
    pub line: usize,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ast {
    pub directives: Directives,
    /// The escape character in force (`\` or `` ` ``).
    pub escape: char,
    pub children: Vec<Node>,
    pub warnings: Vec<Warning>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(src: &str) -> String {
        dump(&parse(src).unwrap())
    }

    #[test]
    fn basics() {
        assert_eq!(
            d("FROM a\nRUN echo hi\n"),
            "(from \"a\")\n(run \"echo hi\")"
        );
        assert_eq!(d("onbuild run [\"a\"]"), "(onbuild (run \"a\"))");
        assert_eq!(d("FOO bar"), "(foo \"\")");
        assert_eq!(d("HEALTHCHECK"), "(healthcheck)");
        assert_eq!(d("RUN\u{a0} --"), "(run\u{a0} \"\")");
    }

    #[test]
    fn errors() {
        assert_eq!(parse("").unwrap_err().message, "file with no instructions");
        assert_eq!(
            parse("# c\n\n").unwrap_err().message,
            "file with no instructions"
        );
        assert_eq!(
            parse("ENV x").unwrap_err().message,
            "ENV must have two arguments"
        );
        assert!(parse("RUN [1]").is_err());
    }
}
