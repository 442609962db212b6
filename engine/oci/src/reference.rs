//! Image references (`alpine`, `ghcr.io/o/app:1.2`, `app@sha256:…`),
//! normalised once, by Docker's rules: those of its reference library
//! (`github.com/distribution/reference`), `ParseNormalizedNamed` followed
//! by `TagNameOnly`, which is what BuildKit does to a `FROM` and what
//! `docker tag`, `docker push` and buildx do to a name.
//!
//! - A first component is a registry host when it contains `.` or `:`, is
//!   `localhost`, or has an upper-case letter; otherwise the image is on
//!   Docker Hub, `docker.io`.
//! - `index.docker.io` is `docker.io`; a one-component repository on
//!   Docker Hub is an official image, under `library/`.
//! - A reference with neither tag nor digest gets the tag `latest`; one
//!   with a digest keeps its tag, if it has one, and gets none otherwise.
//! - Repository components are lower case (`[a-z0-9]+` joined by `.`,
//!   `_`, `__` or dashes), the whole name (host included) at most 255
//!   characters; tags are `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`; a
//!   64-character hexadecimal string is an image ID, not a name.
//!
//! One difference, on purpose: digests are sha256 only (the engine's
//! blobs are), where Docker also accepts sha384 and sha512.

use std::fmt;

use crate::digest::Digest;

/// Docker Hub, as names write it.
pub const DOCKER_HUB: &str = "docker.io";
/// Docker Hub's former name, normalised to [`DOCKER_HUB`].
const LEGACY_DOCKER_HUB: &str = "index.docker.io";
/// The namespace of official images on Docker Hub.
const OFFICIAL_PREFIX: &str = "library/";
/// The tag of a reference that names none.
pub const DEFAULT_TAG: &str = "latest";
/// The longest name (host and repository) Docker accepts.
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// A normalised image reference: registry host, repository path, and a
/// tag, a digest or both (never neither).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// A string that is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference `{reference}`: {reason}")]
pub struct ReferenceError {
    /// The input (at most 300 characters of it).
    pub reference: String,
    pub reason: &'static str,
}

impl Reference {
    /// Parse and normalise `[host[:port]/]path[:tag][@digest]` (see the
    /// module docs): `alpine` → `docker.io/library/alpine:latest`.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        let bad = |reason: &'static str| ReferenceError {
            reference: s.chars().take(300).collect(),
            reason,
        };
        if s.is_empty() {
            return Err(bad("empty reference"));
        }
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad(
                "a 64-character hexadecimal string is an image ID, not a repository name",
            ));
        }
        let (domain, remainder) = split_domain(s);
        let remainder: &str = &remainder;
        let (name, digest) = match remainder.split_once('@') {
            Some((name, d)) => (name, Some(Digest::parse(d).map_err(|e| bad(e.reason))?)),
            None => (remainder, None),
        };
        let (path, tag) = match name.split_once(':') {
            Some((path, tag)) => (path, Some(tag)),
            None => (name, None),
        };
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(bad("repository name must be lowercase"));
        }
        if !valid_domain(domain) {
            return Err(bad("invalid registry host"));
        }
        if !path.split('/').all(valid_path_component) {
            return Err(bad(
                "invalid repository name (lowercase letters and digits, joined by `.`, `_`, `__` or `-`, between slashes)",
            ));
        }
        if let Some(t) = tag {
            if !is_valid_tag(t) {
                return Err(bad(
                    "invalid tag (up to 128 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`)",
                ));
            }
        }
        if domain.len() + 1 + path.len() > MAX_NAME_LEN {
            return Err(bad("repository name must not be more than 255 characters"));
        }
        let tag = match (tag, &digest) {
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (t, _) => t.map(str::to_string),
        };
        Ok(Reference {
            domain: domain.to_string(),
            path: path.to_string(),
            tag,
            digest,
        })
    }

    /// The registry host as names write it (`docker.io`,
    /// `localhost:5000`): not necessarily the host that serves its API.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository within the registry (`library/alpine`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `docker.io/library/alpine`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The same repository and tag, pinned to `digest`.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The name as Docker shows it: `alpine` for
    /// `docker.io/library/alpine`, `me/app` for `docker.io/me/app`, the
    /// full name on other registries.
    pub fn familiar_name(&self) -> String {
        if self.domain != DOCKER_HUB {
            return self.name();
        }
        match self.path.strip_prefix(OFFICIAL_PREFIX) {
            Some(rest) if !rest.contains('/') => rest.to_string(),
            _ => self.path.clone(),
        }
    }

    /// [`familiar_name`](Self::familiar_name) with the tag and digest:
    /// `alpine:latest`, what `docker save` writes in `RepoTags`.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        self.write_tag_and_digest(&mut s);
        s
    }

    fn write_tag_and_digest(&self, s: &mut String) {
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
    }
}

/// `docker.io/library/alpine:latest`, `ghcr.io/o/a:1@sha256:…`.
impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.name();
        self.write_tag_and_digest(&mut s);
        f.write_str(&s)
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// Docker's `splitDockerDomain`: the registry host, and the rest (path,
/// tag, digest), with Docker Hub's official images under `library/`.
fn split_domain(s: &str) -> (&str, std::borrow::Cow<'_, str>) {
    let (domain, rest) = match s.split_once('/') {
        None => (DOCKER_HUB, s),
        Some(("localhost", rest)) => ("localhost", rest),
        Some((LEGACY_DOCKER_HUB, rest)) => (DOCKER_HUB, rest),
        Some((first, rest))
            if first.contains(['.', ':']) || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        Some(_) => (DOCKER_HUB, s),
    };
    if domain == DOCKER_HUB && !rest.contains('/') {
        (domain, format!("{OFFICIAL_PREFIX}{rest}").into())
    } else {
        (domain, rest.into())
    }
}

/// Whether `t` is a tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn is_valid_tag(t: &str) -> bool {
    let mut chars = t.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() || c == '_' => {}
        _ => return false,
    }
    t.len() <= MAX_TAG_LEN
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
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

/// `(domain-name | [ipv6]) (:port)?`: dot-separated labels of letters,
/// digits and inner dashes, or a bracketed IPv6 address (hex digits and
/// colons only: no zones, no embedded IPv4).
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
        match d.split_once(':') {
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

    const HEX: &str = "86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa";
    /// 64 hex digits: an image ID when alone, a repository name under a host.
    const ID: &str = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a";

    /// Valid references: input, full form, domain, path, familiar form.
    /// From Docker's reference library tests (`normalize_test.go`:
    /// TestValidateReferenceName, TestValidateRemoteName,
    /// TestParseRepositoryInfo, TestNormalizedSplitHostname,
    /// TestParseReferenceWithTagAndDigest), with `TagNameOnly` applied.
    #[test]
    fn normalises_like_docker() {
        let digest = format!("sha256:{HEX}");
        let cases: Vec<(String, String, &str, String, String)> = [
            ("debian", "docker.io/library/debian:latest", "docker.io", "library/debian", "debian:latest"),
            ("library/debian", "docker.io/library/debian:latest", "docker.io", "library/debian", "debian:latest"),
            ("docker.io/debian", "docker.io/library/debian:latest", "docker.io", "library/debian", "debian:latest"),
            ("docker.io/library/debian:12", "docker.io/library/debian:12", "docker.io", "library/debian", "debian:12"),
            ("index.docker.io/debian", "docker.io/library/debian:latest", "docker.io", "library/debian", "debian:latest"),
            ("index.docker.io/library/debian", "docker.io/library/debian:latest", "docker.io", "library/debian", "debian:latest"),
            ("index.docker.io/docker/docker", "docker.io/docker/docker:latest", "docker.io", "docker/docker", "docker/docker:latest"),
            ("docker/docker", "docker.io/docker/docker:latest", "docker.io", "docker/docker", "docker/docker:latest"),
            ("docker.io/library/foo/bar", "docker.io/library/foo/bar:latest", "docker.io", "library/foo/bar", "library/foo/bar:latest"),
            ("other/library", "docker.io/other/library:latest", "docker.io", "other/library", "other/library:latest"),
            ("test_com/foo", "docker.io/test_com/foo:latest", "docker.io", "test_com/foo", "test_com/foo:latest"),
            ("dock__er/docker", "docker.io/dock__er/docker:latest", "docker.io", "dock__er/docker", "dock__er/docker:latest"),
            ("docker---rules/docker", "docker.io/docker---rules/docker:latest", "docker.io", "docker---rules/docker", "docker---rules/docker:latest"),
            ("jess/t", "docker.io/jess/t:latest", "docker.io", "jess/t", "jess/t:latest"),
            ("127.0.0.1:5000/debian", "127.0.0.1:5000/debian:latest", "127.0.0.1:5000", "debian", "127.0.0.1:5000/debian:latest"),
            ("127.0.0.1:5000/library/debian", "127.0.0.1:5000/library/debian:latest", "127.0.0.1:5000", "library/debian", "127.0.0.1:5000/library/debian:latest"),
            ("192.168.0.1:8/debian", "192.168.0.1:8/debian:latest", "192.168.0.1:8", "debian", "192.168.0.1:8/debian:latest"),
            // One component: never a host, even when it looks like one.
            ("192.168.0.1", "docker.io/library/192.168.0.1:latest", "docker.io", "library/192.168.0.1", "192.168.0.1:latest"),
            ("192.168.0.1:80", "docker.io/library/192.168.0.1:80", "docker.io", "library/192.168.0.1", "192.168.0.1:80"),
            ("localhost", "docker.io/library/localhost:latest", "docker.io", "library/localhost", "localhost:latest"),
            ("localhost/ubuntu", "localhost/ubuntu:latest", "localhost", "ubuntu", "localhost/ubuntu:latest"),
            ("test-com:8080/foo", "test-com:8080/foo:latest", "test-com:8080", "foo", "test-com:8080/foo:latest"),
            ("xn--n3h.com:18080/foo", "xn--n3h.com:18080/foo:latest", "xn--n3h.com:18080", "foo", "xn--n3h.com:18080/foo:latest"),
            ("example.com:8000/private/moonbase", "example.com:8000/private/moonbase:latest", "example.com:8000", "private/moonbase", "example.com:8000/private/moonbase:latest"),
            ("[fc00::1]:5000/docker", "[fc00::1]:5000/docker:latest", "[fc00::1]:5000", "docker", "[fc00::1]:5000/docker:latest"),
            ("[fc00:1:2:3:4:5:6:7]:5000/library/debian", "[fc00:1:2:3:4:5:6:7]:5000/library/debian:latest", "[fc00:1:2:3:4:5:6:7]:5000", "library/debian", "[fc00:1:2:3:4:5:6:7]:5000/library/debian:latest"),
            // An upper-case first component is a host, not a namespace.
            ("Foo/bar", "Foo/bar:latest", "Foo", "bar", "Foo/bar:latest"),
            ("FOO/bar:v1", "FOO/bar:v1", "FOO", "bar", "FOO/bar:v1"),
            ("thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev", "docker.io/library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev:latest", "docker.io", "library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev", "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev:latest"),
        ]
        .into_iter()
        .map(|(i, f, d, p, fam)| (i.to_string(), f.to_string(), d, p.to_string(), fam.to_string()))
        .chain([
            // Under a host, 64 hex digits are a name.
            (format!("docker.io/{ID}"), format!("docker.io/library/{ID}:latest"), "docker.io", format!("library/{ID}"), format!("{ID}:latest")),
            // A digest alone gets no tag; a tag and a digest are both kept.
            (format!("redis@{digest}"), format!("docker.io/library/redis@{digest}"), "docker.io", "library/redis".into(), format!("redis@{digest}")),
            (format!("busybox:latest@{digest}"), format!("docker.io/library/busybox:latest@{digest}"), "docker.io", "library/busybox".into(), format!("busybox:latest@{digest}")),
            (format!("ghcr.io/o/a:1@{digest}"), format!("ghcr.io/o/a:1@{digest}"), "ghcr.io", "o/a".into(), format!("ghcr.io/o/a:1@{digest}")),
        ])
        .collect();
        for (input, full, domain, path, familiar) in cases {
            let r = Reference::parse(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.to_string(), full, "{input}");
            assert_eq!(r.domain(), domain, "{input}");
            assert_eq!(r.path(), path, "{input}");
            assert_eq!(r.familiar(), familiar, "{input}");
            assert_eq!(r.name(), format!("{domain}/{path}"), "{input}");
            // Normalising is idempotent, from the full and familiar forms.
            assert_eq!(Reference::parse(&full).unwrap(), r, "{full}");
            assert_eq!(Reference::parse(&familiar).unwrap(), r, "{familiar}");
        }
    }

    #[test]
    fn tags_and_digests() {
        let d = format!("sha256:{HEX}");
        let r = Reference::parse("alpine").unwrap();
        assert_eq!((r.tag(), r.digest()), (Some("latest"), None));
        let r = Reference::parse(&format!("alpine@{d}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest().map(ToString::to_string), Some(d.clone()));
        let r = Reference::parse("alpine:3.20").unwrap();
        let pinned = r.with_digest(Digest::parse(&d).unwrap());
        assert_eq!(
            pinned.to_string(),
            format!("docker.io/library/alpine:3.20@{d}")
        );
        assert_eq!(pinned.familiar_name(), "alpine");
        let longest = format!("a:{}", "t".repeat(128));
        assert_eq!(
            Reference::parse(&longest).unwrap().tag().map(str::len),
            Some(128)
        );
        assert_eq!(Reference::parse("a:_x.Y-1").unwrap().tag(), Some("_x.Y-1"));
    }

    /// Invalid references, and why. From the same tests, plus the
    /// engine's one restriction (sha256 digests only).
    #[test]
    fn rejects_what_docker_rejects() {
        let long_namespace = format!("{}/docker", "a_b".repeat(90));
        let cases: Vec<(String, &str)> = [
            ("", "empty reference"),
            (ID, "image ID"),
            ("https://github.com/docker/docker", "registry host"),
            ("docker/Docker", "lowercase"),
            ("docker.io/docker/Docker", "lowercase"),
            ("foo.io/Bar", "lowercase"),
            ("-docker", "repository name"),
            ("-docker/docker", "repository name"),
            ("docker-/docker", "repository name"),
            ("-docker-/docker", "repository name"),
            ("-docker.io/docker/docker", "registry host"),
            ("docker///docker", "repository name"),
            ("docker.io/docker///docker", "repository name"),
            ("docker/", "repository name"),
            ("____/____", "repository name"),
            ("_docker/_docker", "repository name"),
            // A first component with a `.` is a host: these fail as hosts.
            ("dock..er/docker", "registry host"),
            ("dock_.er/docker", "registry host"),
            ("dock-.er/docker", "registry host"),
            ("a b", "repository name"),
            ("[fc00::1]", "repository name"),
            ("[fc00::1]:5000", "repository name"),
            ("fc00::1:5000/debian", "registry host"),
            ("[fe80::1%eth0]:5000/debian", "registry host"),
            ("[2001:db8:3:4::192.0.2.33]:5000/debian", "registry host"),
            ("ex ample.com/foo", "registry host"),
            ("localhost:port/foo", "registry host"),
            ("app:", "invalid tag"),
            ("app:-x", "invalid tag"),
            ("app:.x", "invalid tag"),
            ("app:bad tag", "invalid tag"),
            ("app:a:b", "invalid tag"),
            ("app@md5:abc", "only sha256"),
            ("app@sha256:ab", "64 hex"),
            ("ghcr.io/o/a@sha256:ab", "64 hex"),
        ]
        .into_iter()
        .map(|(i, why)| (i.to_string(), why))
        .chain([
            (format!("a:{}", "t".repeat(129)), "invalid tag"),
            (
                format!("app@sha256:{}", HEX.to_uppercase()),
                "lowercase hex",
            ),
            (format!("app@sha512:{HEX}{HEX}"), "only sha256"),
            (long_namespace, "255 characters"),
        ])
        .collect();
        for (input, why) in cases {
            match Reference::parse(&input) {
                Ok(r) => panic!("accepted {input:?} as {r}"),
                Err(e) => assert!(
                    e.reason.contains(why),
                    "{input:?}: expected a reason with {why:?}, got {:?}",
                    e.reason
                ),
            }
        }
        let e = Reference::parse("Upper/Case").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid image reference `Upper/Case`: repository name must be lowercase"
        );
    }
}
