//! Annotation keys the engine reads and writes.

/// `org.opencontainers.image.ref.name`: the tag of an entry in a layout's
/// `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// `io.containerd.image.name`: the full image name, as BuildKit and
/// containerd write it next to the ref name.
pub const IMAGE_NAME: &str = "io.containerd.image.name";
/// `org.opencontainers.image.created`.
pub const CREATED: &str = "org.opencontainers.image.created";
