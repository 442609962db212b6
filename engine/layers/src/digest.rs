use std::io::{self, Read, Write};

use sha2::{Digest as _, Sha256, Sha512};

use crate::error::{Error, Result};

/// Digest algorithms accepted in expected digests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }
}

/// A parsed `algorithm:hex` digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParsedDigest {
    pub(crate) algorithm: Algorithm,
    pub(crate) text: String,
}

impl ParsedDigest {
    pub(crate) fn parse(s: &str) -> Result<Self> {
        let bad = || Error::InvalidDigest(s.to_owned());
        let (alg, hex_part) = s.split_once(':').ok_or_else(bad)?;
        let (algorithm, len) = match alg {
            "sha256" => (Algorithm::Sha256, 64),
            "sha512" => (Algorithm::Sha512, 128),
            _ => return Err(bad()),
        };
        // OCI requires lowercase hex for these algorithms.
        if hex_part.len() != len
            || !hex_part
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad());
        }
        Ok(ParsedDigest {
            algorithm,
            text: s.to_owned(),
        })
    }
}

/// An incremental hash of one of the supported algorithms.
#[derive(Clone)]
pub(crate) enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    pub(crate) fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// `algorithm:hex` of everything hashed so far.
    pub(crate) fn finish(self) -> String {
        let (alg, bytes) = match self {
            Hasher::Sha256(h) => (Algorithm::Sha256, h.finalize().to_vec()),
            Hasher::Sha512(h) => (Algorithm::Sha512, h.finalize().to_vec()),
        };
        format!("{}:{}", alg.name(), hex::encode(bytes))
    }
}

/// A writer that hashes and counts everything written through it.
pub(crate) struct HashWriter<W> {
    inner: W,
    /// `None`: count only (the caller knows the digest another way).
    hasher: Option<Hasher>,
    count: u64,
}

impl<W: Write> HashWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hasher: Some(Hasher::new(Algorithm::Sha256)),
            count: 0,
        }
    }

    /// A writer that only counts.
    pub(crate) fn counting(inner: W) -> Self {
        HashWriter {
            inner,
            hasher: None,
            count: 0,
        }
    }

    /// The inner writer, the digest (`None` when only counting) and the count.
    pub(crate) fn into_parts(self) -> (W, Option<String>, u64) {
        (self.inner, self.hasher.map(Hasher::finish), self.count)
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts everything read through it.
pub(crate) struct HashReader<R> {
    inner: R,
    hasher: Hasher,
    count: u64,
}

impl<R: Read> HashReader<R> {
    pub(crate) fn new(inner: R, algorithm: Algorithm) -> Self {
        HashReader {
            inner,
            hasher: Hasher::new(algorithm),
            count: 0,
        }
    }

    pub(crate) fn into_parts(self) -> (R, String, u64) {
        (self.inner, self.hasher.finish(), self.count)
    }
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_digests() {
        let ok = format!("sha256:{}", "a".repeat(64));
        assert!(ParsedDigest::parse(&ok).is_ok());
        assert!(ParsedDigest::parse(&format!("sha512:{}", "0".repeat(128))).is_ok());
        for bad in [
            "",
            "sha256",
            "sha256:",
            "md5:abcd",
            &format!("sha256:{}", "A".repeat(64)),
            &format!("sha256:{}", "a".repeat(63)),
            &format!("sha256:{}", "g".repeat(64)),
        ] {
            assert!(ParsedDigest::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn empty_sha256() {
        assert_eq!(
            Hasher::new(Algorithm::Sha256).finish(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
