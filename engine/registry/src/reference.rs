//! Image references as the distribution API needs them: a registry host,
//! a repository, and a tag or a digest.

use crate::{Error, Result};

const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_API: &str = "registry-1.docker.io";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// As written in names (`docker.io`, `localhost:5000`).
    pub registry: String,
    /// `library/alpine`.
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:…`.
    pub digest: Option<String>,
}

impl Reference {
    /// Parse `[host/]path[:tag][@digest]`, normalised as Docker does
    /// (`alpine` → `docker.io/library/alpine:latest`).
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |reason: &str| Error::Reference {
            reference: s.chars().take(300).collect(),
            reason: reason.to_string(),
        };
        let (name, digest) = match s.split_once('@') {
            Some((n, d)) => {
                let hex = d
                    .strip_prefix("sha256:")
                    .ok_or_else(|| bad("only sha256 digests are supported"))?;
                if hex.len() != 64
                    || !hex
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                {
                    return Err(bad("a digest is sha256: and 64 lowercase hex digits"));
                }
                (n, Some(d.to_string()))
            }
            None => (s, None),
        };
        let (repo, tag) = match name.rfind(':') {
            Some(i) if !name[i + 1..].contains('/') => {
                (&name[..i], Some(name[i + 1..].to_string()))
            }
            _ => (name, None),
        };
        if let Some(t) = &tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
                && !t.starts_with(['.', '-']);
            if !ok {
                return Err(bad("invalid tag"));
            }
        }
        let (registry, path) = match repo.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
                (first.to_string(), rest.to_string())
            }
            _ => (DOCKER_HUB.to_string(), repo.to_string()),
        };
        let registry = if registry == "index.docker.io" {
            DOCKER_HUB.to_string()
        } else {
            registry
        };
        let path = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && !c.starts_with(['.', '_', '-'])
                && !c.ends_with(['.', '_', '-'])
        };
        if !path.split('/').all(component_ok) {
            return Err(bad(
                "invalid repository name (lowercase letters, digits and . _ - between slashes)",
            ));
        }
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_string())
        } else {
            tag
        };
        Ok(Reference {
            registry,
            repository: path,
            tag,
            digest,
        })
    }

    /// The host the API is served from.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// `http` for loopback hosts and `ENGINE_INSECURE_REGISTRIES`, `https`
    /// otherwise.
    pub fn scheme(&self) -> &'static str {
        let host = self.registry.as_str();
        let bare = host
            .rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host, |(h, _)| h);
        let loopback =
            bare == "localhost" || bare.starts_with("127.") || bare == "[::1]" || bare == "::1";
        let listed = std::env::var("ENGINE_INSECURE_REGISTRIES").is_ok_and(|v| {
            v.split(',')
                .map(str::trim)
                .any(|h| !h.is_empty() && (h == host || h == bare))
        });
        if loopback || listed {
            "http"
        } else {
            "https"
        }
    }

    /// The tag, else the digest: what a manifest URL names.
    pub fn object(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    pub fn with_digest(&self, digest: &str) -> Reference {
        Reference {
            digest: Some(digest.to_string()),
            ..self.clone()
        }
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_docker() {
        let r = Reference::parse("alpine").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/alpine:latest");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(r.scheme(), "https");
        let r = Reference::parse("localhost:5000/team/app:1.2").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("localhost:5000", "team/app")
        );
        assert_eq!(r.tag.as_deref(), Some("1.2"));
        assert_eq!(r.scheme(), "http");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("127.0.0.1:5000/app@{d}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.object(), d);
        assert_eq!(r.scheme(), "http");
        assert_eq!(Reference::parse("me/app").unwrap().repository, "me/app");
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "Upper/Case",
            "app:bad tag",
            "app@md5:abc",
            "app@sha256:short",
            "a//b",
            "",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }
}
