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
mod endpoint;
mod limit;
pub mod pull;

pub use client::{Client, Fetched};
/// References are the OCI vocabulary's (normalised by Docker's rules).
pub use engine_oci::Reference;
pub use limit::{Cap, Limit, SizeError, CONFIG_CAP, MANIFEST_CAP};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A reference that does not parse (Docker's rules, `engine-oci`).
    #[error(transparent)]
    Reference(#[from] engine_oci::ReferenceError),
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
            Error::Reference(_) | Error::Status { status: 404, .. }
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
