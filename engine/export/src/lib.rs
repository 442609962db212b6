//! Image exporters and the OCI-layout importer.
//!
//! Exporters take [`ImageToExport`]s (a config plus layer blobs held in an
//! [`engine_cache::BlobStore`]) and write:
//! - an OCI image layout directory: [`write_oci_layout_dir`];
//! - the same as a deterministic tar: [`write_oci_layout_tar`];
//! - a `docker load`-able archive: [`write_docker_archive`].
//!
//! Layers are streamed from the store and verified on the way; configs and
//! manifests are serialised deterministically, so the same image exports to
//! the same bytes and digests every time.
//!
//! The importer, [`open_oci_layout`] + [`import_blobs`], backs
//! `--build-context NAME=oci-layout://PATH[:TAG|@DIGEST]`.
//!
//! The documents, media types, image names and platform matching are the
//! OCI vocabulary's, in `engine-oci`.

pub mod error;
pub mod export;
pub mod import;
pub mod json;
pub mod model;

pub use engine_cache::{BlobStore, Digest};
pub use engine_ir::Platform;
/// The OCI types of this crate's API.
pub use engine_oci::{Descriptor, LayerMediaType};
pub use error::{Error, Result};
pub use export::{
    plan_registry_push, write_docker_archive, write_oci_layout_dir, write_oci_layout_tar,
    RegistryPlan,
};
pub use import::{
    import_blobs, open_oci_layout, parse_oci_layout_ref, ImportStats, ResolvedImage, TagOrDigest,
    MAX_DOCUMENT_SIZE,
};
pub use model::{
    ConfigSource, ExportOptions, ExportResult, ExportedImage, ImageToExport, LayerBlob,
};
