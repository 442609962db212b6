//! Where the registry of a [`Reference`] is served, and what its URLs name.
//! (References themselves, and their normalisation, are `engine-oci`'s.)

use engine_oci::reference::DOCKER_HUB;
use engine_oci::Reference;

/// The host Docker Hub's API is served from.
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// The host the API is served from.
pub fn api_host(r: &Reference) -> &str {
    if r.domain() == DOCKER_HUB {
        DOCKER_HUB_API
    } else {
        r.domain()
    }
}

/// `http` for loopback hosts and `ENGINE_INSECURE_REGISTRIES`, `https`
/// otherwise.
pub fn scheme(r: &Reference) -> &'static str {
    let host = r.domain();
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

/// The digest, else the tag: what a manifest URL names.
pub fn object(r: &Reference) -> String {
    match (r.digest(), r.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => engine_oci::reference::DEFAULT_TAG.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_schemes_and_objects() {
        let r = Reference::parse("alpine").unwrap();
        assert_eq!(api_host(&r), "registry-1.docker.io");
        assert_eq!(scheme(&r), "https");
        assert_eq!(object(&r), "latest");
        let r = Reference::parse("index.docker.io/library/alpine:3").unwrap();
        assert_eq!(
            (api_host(&r), object(&r).as_str()),
            ("registry-1.docker.io", "3")
        );
        let r = Reference::parse("localhost:5000/team/app:1.2").unwrap();
        assert_eq!((api_host(&r), scheme(&r)), ("localhost:5000", "http"));
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("127.0.0.1:5000/app:1@{d}")).unwrap();
        assert_eq!(object(&r), d);
        assert_eq!(scheme(&r), "http");
        let r = Reference::parse("[::1]:5000/app").unwrap();
        assert_eq!(scheme(&r), "http");
        let r = Reference::parse("ghcr.io/o/app").unwrap();
        assert_eq!((api_host(&r), scheme(&r)), ("ghcr.io", "https"));
    }
}
