//! Content digests: `sha256:<64 lowercase hex>`, and nothing else.
//!
//! A [`Digest`] can only be made by hashing or by [`Digest::parse`], which
//! accepts exactly that form. Paths are only ever built from a `Digest`, so a
//! digest read from an untrusted document (`../../etc/passwd`,
//! `sha256:../x`, `sha512:…`) can never name a file outside the store.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// The only supported algorithm.
pub const SHA256: &str = "sha256";

/// A validated sha256 content digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

/// A string that is not `sha256:<64 lowercase hex>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid digest `{input}`: {reason}")]
pub struct DigestError {
    pub input: String,
    pub reason: &'static str,
}

impl Digest {
    /// Parse `sha256:<64 lowercase hex>`. Anything else is rejected: other
    /// algorithms, upper-case hex, wrong lengths, whitespace, separators.
    pub fn parse(s: &str) -> Result<Self, DigestError> {
        let err = |reason| DigestError {
            // Keep error messages bounded even for hostile input.
            input: s.chars().take(100).collect(),
            reason,
        };
        let (algo, hex_part) = s
            .split_once(':')
            .ok_or_else(|| err("expected `sha256:<64 lowercase hex>`"))?;
        if algo != SHA256 {
            return Err(err("only sha256 digests are supported"));
        }
        if hex_part.len() != 64 {
            return Err(err("expected 64 hex characters after `sha256:`"));
        }
        if !hex_part
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(err("expected lowercase hex characters after `sha256:`"));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut out)
            .map_err(|_| err("expected lowercase hex characters after `sha256:`"))?;
        Ok(Digest(out))
    }

    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Self {
        Digest(Sha256::digest(data).into())
    }

    /// The digest a finished hasher computed.
    pub fn from_hasher(hasher: Sha256) -> Self {
        Digest(hasher.finalize().into())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Digest(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn algorithm(&self) -> &'static str {
        SHA256
    }

    /// The 64 lowercase hex characters (the file name of the blob).
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 12 hex characters, for display.
    pub fn short(&self) -> String {
        self.hex()[..12].to_string()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SHA256}:{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SHA256}:{}", self.hex())
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn hashes_and_round_trips() {
        let d = Digest::of(b"");
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(Digest::parse(EMPTY).unwrap(), d);
        assert_eq!(EMPTY.parse::<Digest>().unwrap(), d);
        assert_eq!(d.short(), "e3b0c44298fc");
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{EMPTY}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
    }

    #[test]
    fn rejects_everything_else() {
        let hex64 = &EMPTY[7..];
        for bad in [
            "",
            "sha256",
            "sha256:",
            hex64,
            &format!("sha512:{hex64}"),
            &format!("SHA256:{hex64}"),
            &format!("sha256:{}", hex64.to_uppercase()),
            &format!("sha256:{}", &hex64[..63]),
            &format!("sha256:{hex64}0"),
            &format!("sha256:{hex64} "),
            &format!(" sha256:{hex64}"),
            "sha256:../../../../../../../../etc/passwd/../../../../../../../../../x",
            "sha256:/../../../../../../../../../../../../../../../../../../../../../../x",
            &format!("sha256:{}/", &hex64[..63]),
        ] {
            assert!(Digest::parse(bad).is_err(), "accepted {bad:?}");
        }
        assert!(serde_json::from_str::<Digest>("\"sha256:abc\"").is_err());
        let e = Digest::parse("md5:x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid digest `md5:x`: only sha256 digests are supported"
        );
    }
}
