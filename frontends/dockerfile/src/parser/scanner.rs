//! Line scanner with the behaviour of BuildKit's `bufio.Scanner` set-up:
//! lines keep their endings, and a line longer than the scanner's 64 KiB
//! buffer stops scanning with an error.

/// `bufio.MaxScanTokenSize`.
pub(crate) const MAX_TOKEN: usize = 64 * 1024;

pub(crate) struct Scanner<'a> {
    rest: &'a str,
    /// Set once a line did not fit; no more lines are produced.
    pub(crate) too_long: bool,
}

impl<'a> Scanner<'a> {
    pub(crate) fn new(src: &'a str) -> Self {
        Scanner {
            rest: src,
            too_long: false,
        }
    }

    /// The next line including its `\n` (if any).
    pub(crate) fn next_line(&mut self) -> Option<&'a str> {
        if self.too_long || self.rest.is_empty() {
            return None;
        }
        let (line, fits) = match self.rest.find('\n') {
            // The token including its newline must fit the buffer.
            Some(i) => (&self.rest[..=i], i < MAX_TOKEN),
            // An unterminated last line must leave one byte free in the
            // buffer for the reader to report EOF.
            None => (self.rest, self.rest.len() < MAX_TOKEN),
        };
        if !fits {
            self.too_long = true;
            return None;
        }
        self.rest = &self.rest[line.len()..];
        Some(line)
    }
}
