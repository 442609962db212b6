//! Rendering of frontend errors: `Dockerfile:12:5`, the source line with a
//! caret under the problem, and a hint. Output stays readable without colour.

use miette::{
    Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan,
};

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    pub message: String,
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub span: Option<SourceSpan>,
    pub src: Option<NamedSource<String>>,
    pub hint: Option<String>,
    /// For a line too long to show (a 10 MB `RUN`), its start instead of
    /// the snippet.
    pub excerpt: Option<String>,
}

/// Source lines longer than this are not shown whole: their start and
/// their length are.
const MAX_SHOWN_LINE: usize = 1000;

impl Diagnostic for SourceError {
    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.hint
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.src.as_ref().map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.span?;
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            Some("here".into()),
            span,
        ))))
    }
}

impl SourceError {
    /// Build from a frontend error over the file's text. Line and column are
    /// 1-based; the column counts characters.
    pub fn from_frontend(file: &str, text: &str, err: &engine_dockerfile::Error) -> Self {
        Self::located(
            file,
            text,
            &err.message,
            err.location.map(|l| (l.line, l.col, l.len)),
            err.hint.clone(),
        )
    }

    pub fn from_toml(text: &str, err: &engine_toml::TomlError) -> Self {
        Self::located(
            &err.file,
            text,
            &err.message,
            err.location.map(|l| (l.line, l.col, l.len)),
            err.hint.clone(),
        )
    }

    fn located(
        file: &str,
        text: &str,
        message: &str,
        loc: Option<(usize, usize, usize)>,
        hint: Option<String>,
    ) -> Self {
        // Around a line too long to show, no snippet (miette would print it
        // whole): its start and its length.
        let long_line = loc.and_then(|(line, _, _)| {
            let l = text.split('\n').nth(line.checked_sub(1)?)?;
            let n = l.chars().count();
            (n > MAX_SHOWN_LINE).then(|| {
                let start: String = l.chars().take(120).collect();
                format!("{start}… ({n} characters)")
            })
        });
        let loc = if long_line.is_some() {
            loc.map(|(line, col, _)| (line, col, 0))
        } else {
            loc
        };
        let (line, col, span) = match loc {
            Some((line, col, _)) if long_line.is_some() => (line, col, None),
            Some((line, col, len)) => {
                let span = offset_of(text, line, col).map(|off| {
                    let rest = &text[off..];
                    let line_rest = rest.split('\n').next().unwrap_or("");
                    let len: usize = line_rest.chars().take(len.max(1)).map(char::len_utf8).sum();
                    SourceSpan::new(off.into(), len)
                });
                (line, col, span)
            }
            None => (0, 0, None),
        };
        SourceError {
            message: message.to_string(),
            file: file.to_string(),
            line,
            col,
            span,
            src: span.map(|_| NamedSource::new(file, text.to_string())),
            hint,
            excerpt: long_line,
        }
    }

    /// `Dockerfile:12:5: message` then the rendered snippet.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if self.line > 0 {
            out.push_str(&format!(
                "error: {}:{}:{}: {}\n",
                self.file, self.line, self.col, self.message
            ));
        } else {
            out.push_str(&format!("error: {}: {}\n", self.file, self.message));
        }
        if self.span.is_some() {
            let mut snippet = String::new();
            let handler = GraphicalReportHandler::new_themed(theme()).with_context_lines(1);
            if handler.render_report(&mut snippet, self).is_ok() {
                // The first line repeats the message; keep the snippet and hint.
                let body: Vec<&str> = snippet.lines().skip(1).collect();
                out.push_str(&body.join("\n"));
                out.push('\n');
                return out;
            }
        }
        if let Some(e) = &self.excerpt {
            out.push_str(&format!("  │ {e}\n"));
        }
        if let Some(h) = &self.hint {
            out.push_str(&format!("  help: {h}\n"));
        }
        out
    }
}

pub fn theme() -> GraphicalTheme {
    let colour = std::env::var_os("NO_COLOR").is_none()
        && std::io::IsTerminal::is_terminal(&std::io::stderr());
    if colour {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    }
}

/// Byte offset of 1-based (line, col) in `text`, clamped to the line's end.
fn offset_of(text: &str, line: usize, col: usize) -> Option<usize> {
    let mut off = 0;
    for (i, l) in text.split('\n').enumerate() {
        if i + 1 == line {
            let within: usize = l
                .chars()
                .take(col.saturating_sub(1))
                .map(char::len_utf8)
                .sum();
            return Some(off + within.min(l.len()));
        }
        off += l.len() + 1;
    }
    None
}
