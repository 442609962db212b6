//! The last resolution of each registry reference a build planned with
//! (`<cache>/resolved/<sha256 of reference and platform>.json`: the
//! manifest digest and the config), kept for one purpose: building while
//! the registry cannot be reached. A build resolves every tag from the
//! registry, as BuildKit does by default; when the registry does not
//! answer, BuildKit falls back to the image it has locally, and so does
//! the engine, from this record, with a warning. `--pull` (BuildKit's
//! force-pull) never falls back.

use std::path::{Path, PathBuf};

use engine_cache::Digest;
use engine_ir::Platform;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    reference: String,
    platform: String,
    /// The manifest digest (the platform's manifest).
    digest: String,
    config_digest: String,
    /// The config, as the registry served it (JSON text).
    config: String,
    /// Unix seconds.
    resolved: u64,
}

/// A usable record: the manifest digest, the config bytes, when.
pub struct Resolution {
    pub digest: Digest,
    pub config: Vec<u8>,
    pub resolved: u64,
}

#[derive(Debug, Clone)]
pub struct Resolutions {
    dir: PathBuf,
}

impl Resolutions {
    pub fn in_cache(cache_dir: &Path) -> Self {
        Resolutions {
            dir: cache_dir.join("resolved"),
        }
    }

    fn path(&self, reference: &str, platform: &Platform) -> PathBuf {
        let key = Digest::of(format!("{reference}\n{platform}").as_bytes());
        self.dir.join(format!("{}.json", key.hex()))
    }

    /// Remember a resolution. Best effort: a record that cannot be written
    /// only means no fallback later.
    pub fn save(&self, reference: &str, platform: &Platform, digest: &Digest, config: &[u8]) {
        let Ok(config_text) = std::str::from_utf8(config) else {
            return;
        };
        let record = Record {
            reference: reference.to_string(),
            platform: platform.to_string(),
            digest: digest.to_string(),
            config_digest: Digest::of(config).to_string(),
            config: config_text.to_string(),
            resolved: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        let path = self.path(reference, platform);
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&self.dir)?;
            let mut tmp = tempfile::Builder::new()
                .prefix(".tmp-")
                .tempfile_in(&self.dir)?;
            serde_json::to_writer(&mut tmp, &record).map_err(std::io::Error::other)?;
            tmp.persist(&path).map_err(|e| e.error)?;
            Ok(())
        };
        let _ = write();
    }

    /// The last resolution of `reference` for `platform`, if one was kept
    /// and is intact (its config matches the digest recorded with it).
    pub fn load(&self, reference: &str, platform: &Platform) -> Option<Resolution> {
        let bytes = std::fs::read(self.path(reference, platform)).ok()?;
        let r: Record = serde_json::from_slice(&bytes).ok()?;
        if r.reference != reference || r.platform != platform.to_string() {
            return None;
        }
        let config = r.config.into_bytes();
        if Digest::of(&config).to_string() != r.config_digest {
            return None;
        }
        Some(Resolution {
            digest: Digest::parse(&r.digest).ok()?,
            config,
            resolved: r.resolved,
        })
    }
}

/// Whether a registry error means the registry could not be reached (or
/// could not answer), as opposed to an answer (a missing tag, a refusal).
pub fn unreachable(e: &engine_registry::Error) -> bool {
    match e {
        engine_registry::Error::Http { .. } => true,
        engine_registry::Error::Status { status, .. } => *status >= 500,
        _ => false,
    }
}

/// `42s`, `5m`, `3h`, `2d`: how long ago, roughly.
pub fn span(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_ignored() {
        let t = tempfile::tempdir().unwrap();
        let r = Resolutions::in_cache(t.path());
        let p = Platform::parse("linux/amd64").unwrap();
        let d = Digest::of(b"manifest");
        assert!(r.load("x:1", &p).is_none());
        r.save("x:1", &p, &d, br#"{"os":"linux"}"#);
        let got = r.load("x:1", &p).unwrap();
        assert_eq!(got.digest, d);
        assert_eq!(got.config, br#"{"os":"linux"}"#);
        assert!(r.load("x:2", &p).is_none());
        assert!(r
            .load("x:1", &Platform::parse("linux/arm64").unwrap())
            .is_none());
        // A record whose config does not match its digest is no record.
        let path = r.path("x:1", &p);
        let text = std::fs::read_to_string(&path).unwrap();
        let damaged = text.replace(r#"\"linux\""#, r#"\"linuz\""#);
        assert_ne!(damaged, text);
        std::fs::write(&path, damaged).unwrap();
        assert!(r.load("x:1", &p).is_none());
    }
}
