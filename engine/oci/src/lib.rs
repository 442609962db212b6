//! The OCI vocabulary, in one place: what every crate that touches images
//! says the same way.
//!
//! - [`Digest`]: a sha256 content digest, the only form blobs are named by;
//! - [`media_type`]: media types of manifests, indexes, configs and layers,
//!   OCI and Docker, and [`LayerMediaType`];
//! - [`Descriptor`], [`Manifest`], [`Index`]: the documents, as the engine
//!   writes them (fields in a fixed order, maps sorted: the same document
//!   is always the same bytes) and reads them (digests validated);
//! - [`layout`]: the files of an OCI image layout; [`annotation`]: the
//!   annotation keys the engine uses;
//! - [`Reference`]: an image reference, normalised by Docker's rules;
//! - [`PlatformMatcher`]: which platform of an index serves a build,
//!   by containerd's rules ([`Platform`] itself is the IR's).
//!
//! This crate does no I/O.

pub mod annotation;
pub mod digest;
pub mod document;
pub mod layout;
pub mod media_type;
pub mod platform;
pub mod reference;

pub use digest::{Digest, DigestError, SHA256};
pub use document::{Descriptor, DescriptorPlatform, Index, Manifest};
pub use media_type::LayerMediaType;
pub use platform::{Platform, PlatformMatcher};
pub use reference::{Reference, ReferenceError};
