//! Image names as the exporters write them: normalised the way Docker's
//! reference library does (`foo` → `docker.io/library/foo:latest`), so that
//! `index.json` carries the same `io.containerd.image.name` /
//! `org.opencontainers.image.ref.name` pair BuildKit writes, and
//! `manifest.json` the same familiar `RepoTags` `docker save` writes.

use std::fmt;

use crate::error::Error;

const DEFAULT_DOMAIN: &str = "docker.io";
const OFFICIAL_PREFIX: &str = "library/";
const MAX_NAME_LEN: usize = 255;

/// A normalised, tagged image name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageName {
    domain: String,
    path: String,
    tag: String,
}

impl ImageName {
    /// Parse and normalise `[domain/]path[:tag]`. A missing tag means
    /// `latest`. Digests (`name@sha256:…`) are rejected: an exported image
    /// is named by tag.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let bad = |reason: &'static str| Error::InvalidName {
            name: s.chars().take(300).collect(),
            reason,
        };
        if s.is_empty() {
            return Err(bad("empty name"));
        }
        if s.contains('@') {
            return Err(bad("an exported image is named by tag, not by digest"));
        }
        let (repo, tag) = match s.rfind(':') {
            Some(i) if !s[i + 1..].contains('/') => (&s[..i], &s[i + 1..]),
            _ => (s, "latest"),
        };
        if !valid_tag(tag) {
            return Err(bad("invalid tag"));
        }
        let (domain, path) = match repo.split_once('/') {
            Some((first, rest))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (DEFAULT_DOMAIN.to_string(), repo.to_string()),
        };
        let domain = if domain == "index.docker.io" {
            DEFAULT_DOMAIN.to_string()
        } else {
            domain
        };
        if !valid_domain(&domain) {
            return Err(bad("invalid registry host"));
        }
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("{OFFICIAL_PREFIX}{path}")
        } else {
            path
        };
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(bad("repository name must be lowercase"));
        }
        if !path.split('/').all(valid_path_component) {
            return Err(bad("invalid repository name"));
        }
        if domain.len() + 1 + path.len() > MAX_NAME_LEN {
            return Err(bad("repository name too long"));
        }
        Ok(ImageName {
            domain,
            path,
            tag: tag.to_string(),
        })
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// `docker.io/library/foo`.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// `foo` for `docker.io/library/foo`, `me/foo` for `docker.io/me/foo`,
    /// unchanged for other registries.
    pub fn familiar_repository(&self) -> String {
        if self.domain != DEFAULT_DOMAIN {
            return self.repository();
        }
        match self.path.strip_prefix(OFFICIAL_PREFIX) {
            Some(rest) if !rest.contains('/') => rest.to_string(),
            _ => self.path.clone(),
        }
    }

    /// `foo:latest`: what `docker save` writes in `RepoTags`.
    pub fn familiar(&self) -> String {
        format!("{}:{}", self.familiar_repository(), self.tag)
    }
}

/// `docker.io/library/foo:latest`.
impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.domain, self.path, self.tag)
    }
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub(crate) fn valid_tag(t: &str) -> bool {
    let mut chars = t.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() || c == '_' => {}
        _ => return false,
    }
    t.len() <= 128 && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = if d.starts_with('[') {
        match d.find(']') {
            Some(i) => match &d[i + 1..] {
                "" => (&d[..=i], None),
                rest => match rest.strip_prefix(':') {
                    Some(p) => (&d[..=i], Some(p)),
                    None => return false,
                },
            },
            None => return false,
        }
    } else {
        match d.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    let host_ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        !inner.is_empty() && inner.chars().all(|c| c.is_ascii_hexdigit() || c == ':')
    } else {
        !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    host_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> ImageName {
        ImageName::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn normalises_like_docker() {
        let a = n("foo");
        assert_eq!(a.to_string(), "docker.io/library/foo:latest");
        assert_eq!(a.familiar(), "foo:latest");
        assert_eq!(a.tag(), "latest");
        assert_eq!(n("me/foo:v1").to_string(), "docker.io/me/foo:v1");
        assert_eq!(n("me/foo:v1").familiar(), "me/foo:v1");
        assert_eq!(n("docker.io/library/foo:1.2").familiar(), "foo:1.2");
        assert_eq!(
            n("index.docker.io/foo").to_string(),
            "docker.io/library/foo:latest"
        );
        let r = n("localhost:5000/a/b_c.d-e:tag_1.x");
        assert_eq!(r.to_string(), "localhost:5000/a/b_c.d-e:tag_1.x");
        assert_eq!(r.familiar(), "localhost:5000/a/b_c.d-e:tag_1.x");
        assert_eq!(r.familiar_repository(), "localhost:5000/a/b_c.d-e");
        assert_eq!(n("ghcr.io/x/y").to_string(), "ghcr.io/x/y:latest");
        assert_eq!(n("localhost/x").domain(), "localhost");
        assert_eq!(n("[::1]:5000/x").to_string(), "[::1]:5000/x:latest");
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "",
            "Foo",
            "foo:",
            "foo:-x",
            "foo@sha256:abc",
            "foo//bar",
            "foo/",
            "-foo",
            "foo bar",
            "foo:bar baz",
            "a..b",
            "ex ample.com/foo",
        ] {
            assert!(ImageName::parse(bad).is_err(), "accepted {bad:?}");
        }
    }
}
