//! One error type for every stage of the Dockerfile frontend, so that the CLI
//! can render all of them the same way: `Dockerfile:12:5`, the source line, a
//! caret and an optional hint.

use std::fmt;

/// A position in the Dockerfile. Lines and columns are 1-based; `len` is the
/// number of characters the caret should underline (at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Location {
    pub line: usize,
    pub col: usize,
    pub len: usize,
}

impl Location {
    pub fn new(line: usize, col: usize, len: usize) -> Self {
        Location {
            line,
            col,
            len: len.max(1),
        }
    }

    /// Start of a line, underlining nothing in particular.
    pub fn line(line: usize) -> Self {
        Location::new(line, 1, 1)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Error {
    pub message: String,
    pub location: Option<Location>,
    pub hint: Option<String>,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error {
    pub fn new(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
            location: None,
            hint: None,
        }
    }

    pub fn at(message: impl Into<String>, location: Location) -> Self {
        Error {
            message: message.into(),
            location: Some(location),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Attach a location if the error does not carry one yet.
    pub fn or_at(mut self, location: Location) -> Self {
        if self.location.is_none() {
            self.location = Some(location);
        }
        self
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
