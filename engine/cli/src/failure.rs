//! What a command that failed tells the user, and which exit code it
//! ends with. Every failure has a [`Kind`]; library errors keep their
//! causes (`std::error::Error::source`), printed as `Caused by:` lines.

use std::error::Error;
use std::fmt::Write as _;

/// What failed, as the exit code says it (README, "Exit codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The build failed: a step did (a RUN exited non-zero, a COPY source
    /// is missing). Exit code 1.
    Build,
    /// Usage or input: a bad flag value, a Dockerfile or TOML spec that
    /// does not parse or plan, a missing context or file, a bad name.
    /// Exit code 2, as clap's own usage errors.
    Usage,
    /// Infrastructure: a registry that cannot be reached or refuses, the
    /// sandbox or runtime that cannot be set up, cache or export I/O.
    /// Exit code 3.
    Infra,
}

impl Kind {
    pub fn exit_code(self) -> u8 {
        match self {
            Kind::Build => 1,
            Kind::Usage => 2,
            Kind::Infra => 3,
        }
    }
}

#[derive(Debug)]
enum Body {
    /// Text printed as is (frontend errors with their source snippet).
    Rendered(String),
    /// `error: MESSAGE`, then `  help: HINT`.
    Message {
        message: String,
        hint: Option<String>,
    },
}

/// An error already shaped for the user.
#[derive(Debug)]
pub struct Failure {
    kind: Kind,
    body: Body,
    /// The causes, outermost first: one `Caused by:` line each.
    causes: Vec<String>,
}

impl Failure {
    /// A usage or input error (the common case: a flag or a file the user
    /// can fix): exit code 2.
    pub fn msg(message: impl Into<String>) -> Self {
        Failure::new(Kind::Usage, message)
    }

    /// A usage or input error with a hint.
    pub fn hint(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Failure::new(Kind::Usage, message).with_hint(hint)
    }

    /// An infrastructure failure (I/O, registry, sandbox): exit code 3.
    pub fn infra(message: impl Into<String>) -> Self {
        Failure::new(Kind::Infra, message)
    }

    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            body: Body::Message {
                message: message.into(),
                hint: None,
            },
            causes: Vec::new(),
        }
    }

    /// Text rendered already (a located frontend error, a failed step).
    pub fn rendered(kind: Kind, text: impl Into<String>) -> Self {
        Failure {
            kind,
            body: Body::Rendered(text.into()),
            causes: Vec::new(),
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        match &mut self.body {
            Body::Message { hint: h, .. } => *h = Some(hint.into()),
            Body::Rendered(text) => text.push_str(&format!("  help: {}\n", hint.into())),
        }
        self
    }

    pub fn with_kind(mut self, kind: Kind) -> Self {
        self.kind = kind;
        self
    }

    /// `error` and its sources become `Caused by:` lines, below those
    /// already there.
    pub fn caused_by(mut self, error: &(dyn Error + 'static)) -> Self {
        let above = match &self.body {
            Body::Message { message, .. } => message.clone(),
            Body::Rendered(text) => text.lines().next().unwrap_or_default().to_string(),
        };
        let mut lines = vec![above];
        lines.append(&mut self.causes);
        for cause in chain(error) {
            push_cause(&mut lines, cause);
        }
        let first = lines.remove(0);
        match &mut self.body {
            Body::Message { message, .. } => *message = first,
            Body::Rendered(text) => {
                let rest = text.split_once('\n').map_or("", |(_, r)| r);
                *text = format!("{first}\n{rest}");
            }
        }
        self.causes = lines;
        self
    }

    /// `PREFIX: message` (a plain message; rendered text is kept).
    pub fn context(mut self, prefix: &str) -> Self {
        if let Body::Message { message, .. } = &mut self.body {
            *message = format!("{prefix}: {message}");
        }
        self
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The message of a plain failure (not of rendered text).
    pub fn message(&self) -> Option<&str> {
        match &self.body {
            Body::Message { message, .. } => Some(message),
            Body::Rendered(_) => None,
        }
    }

    /// The hint of a plain failure.
    pub fn help(&self) -> Option<&str> {
        match &self.body {
            Body::Message { hint, .. } => hint.as_deref(),
            Body::Rendered(_) => None,
        }
    }

    pub fn causes(&self) -> &[String] {
        &self.causes
    }

    /// Whether the failure's text (message or rendered) contains `text`.
    pub fn says(&self, text: &str) -> bool {
        match &self.body {
            Body::Message { message, .. } => message.contains(text),
            Body::Rendered(rendered) => rendered.contains(text),
        }
    }

    /// What standard error shows: the error line, its causes, then the
    /// rest (source snippet, step output, hint).
    pub fn render(&self) -> String {
        let caused: String = self
            .causes
            .iter()
            .map(|c| format!("  Caused by: {c}\n"))
            .collect();
        match &self.body {
            Body::Rendered(text) => {
                let (first, rest) = text.split_once('\n').unwrap_or((text, ""));
                format!("{first}\n{caused}{rest}")
            }
            Body::Message { message, hint } => {
                let mut out = format!("error: {message}\n{caused}");
                if let Some(h) = hint {
                    let _ = writeln!(out, "  help: {h}");
                }
                out
            }
        }
    }
}

/// The messages of `error` and of each of its sources, outermost first.
pub fn chain(error: &(dyn Error + 'static)) -> Vec<String> {
    let mut out = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        out.push(e.to_string());
        next = e.source();
    }
    out
}

/// `error` and its causes on one line (`a: b: c`), for warnings.
pub fn one_line(error: &(dyn Error + 'static)) -> String {
    let mut lines = Vec::new();
    for cause in chain(error) {
        push_cause(&mut lines, cause);
    }
    lines.join(": ")
}

/// Appends `cause` below `lines`, said once: a line that ends with its
/// cause (`{op} {path}: {source}`, as some errors print themselves) is cut
/// before it, a cause already said in full is left out, and its first
/// letter is lowercased (`No such file` → `no such file`; `HTTP` stays).
fn push_cause(lines: &mut Vec<String>, cause: String) {
    let cause = cause.trim().to_string();
    if cause.is_empty() {
        return;
    }
    if let Some(last) = lines.last_mut() {
        if let Some(cut) = last.strip_suffix(cause.as_str()) {
            let cut = cut.trim_end_matches([':', ' ']);
            if cut.is_empty() {
                return;
            }
            *last = cut.to_string();
        } else if contains_ignoring_case(last, &cause) {
            return;
        }
    }
    lines.push(lowercase_first(&cause));
}

fn contains_ignoring_case(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().contains(&needle.to_lowercase())
}

fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(a), Some(b)) if a.is_uppercase() && !b.is_uppercase() => {
            a.to_lowercase().chain(s[a.len_utf8()..].chars()).collect()
        }
        _ => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("pulling `{0}`")]
    struct Outer(&'static str, #[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("GET http://127.0.0.1:1/v2/: {0}")]
    struct Middle(#[source] std::io::Error);

    fn refused() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused")
    }

    #[test]
    fn causes_are_listed_once_lowercase() {
        let e = Outer("x", Middle(refused()));
        let f = Failure::infra("cannot resolve image `x`").caused_by(&e);
        assert_eq!(
            f.render(),
            "error: cannot resolve image `x`\n  Caused by: pulling `x`\n  \
             Caused by: GET http://127.0.0.1:1/v2/\n  Caused by: connection refused\n"
        );
        assert_eq!(f.kind().exit_code(), 3);
        assert_eq!(
            one_line(&e),
            "pulling `x`: GET http://127.0.0.1:1/v2/: connection refused"
        );
    }

    #[test]
    fn a_message_that_quotes_its_cause_keeps_it_once() {
        let io = refused();
        let f = Failure::infra(format!("cannot write `out`: {io}"))
            .with_hint("check the path")
            .caused_by(&io);
        assert_eq!(
            f.render(),
            "error: cannot write `out`\n  Caused by: connection refused\n  help: check the path\n"
        );
    }

    #[test]
    fn rendered_text_gets_its_causes_under_the_first_line() {
        let f = Failure::rendered(Kind::Usage, "error: Dockerfile:1:1: bad\n snippet\n")
            .caused_by(&refused());
        assert_eq!(
            f.render(),
            "error: Dockerfile:1:1: bad\n  Caused by: connection refused\n snippet\n"
        );
    }

    #[test]
    fn kinds_map_to_exit_codes() {
        assert_eq!(Failure::msg("x").kind().exit_code(), 2);
        assert_eq!(Failure::hint("x", "y").kind().exit_code(), 2);
        assert_eq!(Failure::new(Kind::Build, "x").kind().exit_code(), 1);
        assert_eq!(lowercase_first("HTTP 500"), "HTTP 500");
        assert_eq!(lowercase_first("No such file"), "no such file");
    }
}
