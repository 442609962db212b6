//! A blocking client for the OCI distribution API (the registry protocol):
//! what `FROM <registry image>` needs to pull a base image into the blob
//! store, and what `-o type=registry` needs to push an image.
//!
//! Plain HTTP is used for `localhost`, loopback addresses and the hosts
//! listed in `ENGINE_INSECURE_REGISTRIES` (comma-separated `host[:port]`),
//! HTTPS for everything else, as Docker does. Credentials come from the
//! Docker config (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`,
//! `auths.<host>.auth`); anonymous access otherwise. Registries that ask
//! for a bearer token get one from the realm they name.
//!
//! Every blob read from a registry is checked against its digest before it
//! is kept; a manifest fetched by digest is checked too. Every download is
//! held to the size its descriptor declares, or to a cap when nothing
//! declares one (`limit.rs`): reading stops one byte past it.

mod auth;
mod client;
mod limit;
pub mod pull;
mod reference;

pub use client::{Client, Fetched};
pub use limit::{Cap, Limit, SizeError, CONFIG_CAP, MANIFEST_CAP};
pub use reference::Reference;

/// Media types a manifest request accepts, most specific first.
pub const MANIFEST_ACCEPT: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid image reference `{reference}`: {reason}")]
    Reference { reference: String, reason: String },
    /// The request did not get an answer: the registry cannot be reached,
    /// or the connection broke.
    #[error("{method} {url}: {source}")]
    Http {
        method: &'static str,
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{method} {url}: the registry answered {status}{detail}")]
    Status {
        method: &'static str,
        url: String,
        status: u16,
        detail: String,
    },
    #[error("{what} from {url} does not match its digest: expected {expected}, got {actual}")]
    Digest {
        what: &'static str,
        url: String,
        expected: String,
        actual: String,
    },
    #[error("{0}")]
    Size(#[from] SizeError),
    #[error("{0}")]
    Blob(#[from] engine_cache::BlobError),
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// Whether the request itself is at fault: a reference that does not
    /// parse, a repository or tag the registry does not have (404). Other
    /// failures are the registry's or the network's.
    pub fn is_request_error(&self) -> bool {
        matches!(
            self,
            Error::Reference { .. } | Error::Status { status: 404, .. }
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
