//! Every download from a registry is held to the size it may have: the
//! size its descriptor declares (exactly that many bytes), or a cap for the
//! documents fetched without a declared size (a manifest by tag). Reading
//! stops one byte past the limit, so a registry that streams more than it
//! declared fills neither the disk nor memory; what was read is discarded.

use std::io::{self, Read, Write};

/// The most bytes of a manifest or index fetched without a declared size,
/// and of any manifest read into memory: 4 MiB, what containerd
/// (`MaxManifestSize`), containers/image (`MaxManifestBodySize`) and the
/// distribution registry accept.
pub const MANIFEST_CAP: Cap = Cap {
    size: 4 << 20,
    of: "a manifest",
};

/// The most bytes of an image config read into memory (containers/image's
/// `MaxConfigBodySize`, 4 MiB).
pub const CONFIG_CAP: Cap = Cap {
    size: 4 << 20,
    of: "an image config",
};

/// The most bytes of a token answer (containers/image's
/// `MaxAuthTokenBodySize`, 1 MiB).
pub(crate) const TOKEN_CAP: u64 = 1 << 20;

/// The most bytes a kind of document may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap {
    pub size: u64,
    /// What the cap is for, with its article: "a manifest".
    pub of: &'static str,
}

/// What a download is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Exactly `size` bytes, as `by` ("its manifest", "its index") declares.
    Declared { size: u64, by: &'static str },
    /// At most this many bytes: nothing declared a size.
    Cap(Cap),
}

impl Limit {
    /// The most bytes the download may have.
    pub fn max(self) -> u64 {
        match self {
            Limit::Declared { size, .. } | Limit::Cap(Cap { size, .. }) => size,
        }
    }

    /// "its manifest declares" or "a manifest may have".
    fn tail(self) -> String {
        match self {
            Limit::Declared { by, .. } => format!("{by} declares"),
            Limit::Cap(Cap { of, .. }) => format!("{of} may have"),
        }
    }
}

/// A download that is longer or shorter than its limit. Nothing of it was
/// kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("registry sent more than the {} bytes {} for {subject}; download discarded", limit.max(), limit.tail())]
    TooLong { subject: String, limit: Limit },
    #[error("registry sent only {got} of the {declared} bytes {by} declares for {subject}; download discarded")]
    TooShort {
        subject: String,
        got: u64,
        declared: u64,
        by: &'static str,
    },
    #[error("registry announced {announced} bytes (content-length) for {subject}, more than the {} {}; download refused", limit.max(), limit.tail())]
    Announced {
        subject: String,
        announced: u64,
        limit: Limit,
    },
    #[error("{by} declares {declared} bytes for {subject}, more than the {} {} may have; download refused", cap.size, cap.of)]
    DeclaredOverCap {
        subject: String,
        declared: u64,
        by: &'static str,
        cap: Cap,
    },
}

/// Refuse a declared size larger than what may be read into memory.
pub(crate) fn check_declared(
    subject: &str,
    declared: u64,
    by: &'static str,
    cap: Cap,
) -> Result<Limit, SizeError> {
    if declared > cap.size {
        return Err(SizeError::DeclaredOverCap {
            subject: subject.to_string(),
            declared,
            by,
            cap,
        });
    }
    Ok(Limit::Declared { size: declared, by })
}

/// Refuse up front a body whose Content-Length is larger than the limit
/// (`announced` is `None` for chunked, close-delimited or compressed bodies).
pub(crate) fn check_announced(
    subject: &str,
    announced: Option<u64>,
    limit: Limit,
) -> Result<(), SizeError> {
    match announced {
        Some(n) if n > limit.max() => Err(SizeError::Announced {
            subject: subject.to_string(),
            announced: n,
            limit,
        }),
        _ => Ok(()),
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum CopyError {
    #[error("{0}")]
    Size(#[from] SizeError),
    #[error("reading the body: {0}")]
    Read(io::Error),
    #[error("writing: {0}")]
    Write(io::Error),
}

/// Copy `body` into `out`, reading at most one byte past the limit. Bytes
/// past the limit are never written; a body longer than the limit, or
/// shorter than a declared size, is an error (the caller drops `out`).
pub(crate) fn copy_limited(
    body: &mut dyn Read,
    out: &mut dyn Write,
    subject: &str,
    limit: Limit,
) -> Result<u64, CopyError> {
    let max = limit.max();
    let mut body = body.take(max.saturating_add(1));
    let mut buf = vec![0u8; 64 * 1024];
    let mut total: u64 = 0;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        total += n as u64;
        if total > max {
            return Err(SizeError::TooLong {
                subject: subject.to_string(),
                limit,
            }
            .into());
        }
        out.write_all(&buf[..n]).map_err(CopyError::Write)?;
    }
    if let Limit::Declared { size, by } = limit {
        if total < size {
            return Err(SizeError::TooShort {
                subject: subject.to_string(),
                got: total,
                declared: size,
                by,
            }
            .into());
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBJECT: &str = "sha256:abc";

    fn declared(size: u64) -> Limit {
        Limit::Declared {
            size,
            by: "its manifest",
        }
    }

    /// An endless body that counts what was read from it.
    struct Endless {
        read: u64,
    }

    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            buf.fill(b'x');
            self.read += buf.len() as u64;
            Ok(buf.len())
        }
    }

    #[test]
    fn an_endless_body_stops_one_byte_past_the_declared_size() {
        let mut body = Endless { read: 0 };
        let mut out = Vec::new();
        let e = copy_limited(&mut body, &mut out, SUBJECT, declared(104)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "registry sent more than the 104 bytes its manifest declares for sha256:abc; download discarded"
        );
        assert_eq!(body.read, 105, "read one byte past the declared size");
        assert!(out.len() <= 104, "nothing past the limit written");
    }

    #[test]
    fn a_cap_holds_documents_without_a_declared_size() {
        let mut body = Endless { read: 0 };
        let e = copy_limited(
            &mut body,
            &mut Vec::new(),
            "`r/evil:1`",
            Limit::Cap(MANIFEST_CAP),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "registry sent more than the 4194304 bytes a manifest may have for `r/evil:1`; download discarded"
        );
        assert_eq!(body.read, (4 << 20) + 1);
        // Up to the cap is fine, and shorter too: nothing was declared.
        let mut out = Vec::new();
        let n = copy_limited(
            &mut &b"{}"[..],
            &mut out,
            "`r/ok:1`",
            Limit::Cap(MANIFEST_CAP),
        )
        .unwrap();
        assert_eq!((n, out.as_slice()), (2, &b"{}"[..]));
    }

    #[test]
    fn exactly_the_declared_size_is_read_whole() {
        let data = vec![7u8; 200_000];
        let mut out = Vec::new();
        let n = copy_limited(&mut data.as_slice(), &mut out, SUBJECT, declared(200_000)).unwrap();
        assert_eq!(n, 200_000);
        assert_eq!(out, data);
        // Zero declared, zero sent.
        assert_eq!(
            copy_limited(&mut &b""[..], &mut Vec::new(), SUBJECT, declared(0)).unwrap(),
            0
        );
        // Zero declared, one sent.
        assert!(matches!(
            copy_limited(&mut &b"x"[..], &mut Vec::new(), SUBJECT, declared(0)),
            Err(CopyError::Size(SizeError::TooLong { .. }))
        ));
    }

    #[test]
    fn a_short_body_is_an_error() {
        let e =
            copy_limited(&mut &[1u8; 50][..], &mut Vec::new(), SUBJECT, declared(104)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "registry sent only 50 of the 104 bytes its manifest declares for sha256:abc; download discarded"
        );
    }

    #[test]
    fn content_length_and_declared_sizes_are_checked_up_front() {
        assert_eq!(
            check_announced(SUBJECT, Some(2 << 30), declared(104))
                .unwrap_err()
                .to_string(),
            "registry announced 2147483648 bytes (content-length) for sha256:abc, more than the 104 its manifest declares; download refused"
        );
        assert!(check_announced(SUBJECT, Some(104), declared(104)).is_ok());
        assert!(check_announced(SUBJECT, None, declared(104)).is_ok());
        assert_eq!(
            check_declared(SUBJECT, 2 << 30, "its manifest", CONFIG_CAP)
                .unwrap_err()
                .to_string(),
            "its manifest declares 2147483648 bytes for sha256:abc, more than the 4194304 an image config may have; download refused"
        );
        assert_eq!(
            check_declared(SUBJECT, 300, "its manifest", CONFIG_CAP).unwrap(),
            declared(300)
        );
    }
}
