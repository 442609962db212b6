//! Media types of OCI and Docker schema 2 documents and layers, and what
//! kind of document or blob each one names.

/// An OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// An OCI image index (also the format of a layout's `index.json`).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const OCI_LAYER_ND: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
pub const OCI_LAYER_ND_GZIP: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
pub const OCI_LAYER_ND_ZSTD: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";
/// The OCI "empty" blob (`{}`), for a descriptor that must exist but
/// carries nothing.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// A Docker manifest list: Docker's image index.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
pub const DOCKER_FOREIGN_LAYER_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// What a manifest request to a registry accepts (`Accept`), indexes
/// first.
pub const MANIFEST_ACCEPT: &[&str] = &[OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST];

/// An image manifest, OCI or Docker schema 2.
pub fn is_manifest(mt: &str) -> bool {
    mt == OCI_MANIFEST || mt == DOCKER_MANIFEST
}

/// An image index or a Docker manifest list.
pub fn is_index(mt: &str) -> bool {
    mt == OCI_INDEX || mt == DOCKER_LIST
}

/// An image config, OCI or Docker.
pub fn is_config(mt: &str) -> bool {
    mt == OCI_CONFIG || mt == DOCKER_CONFIG
}

/// A filesystem layer this engine can unpack.
pub fn is_layer(mt: &str) -> bool {
    LayerMediaType::from_media_type(mt).is_some()
}

/// The compression of a layer blob, which decides its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayerMediaType {
    /// An uncompressed tar.
    Tar,
    TarGzip,
    TarZstd,
}

impl LayerMediaType {
    /// `application/vnd.oci.image.layer.v1.tar[+gzip|+zstd]`.
    pub fn oci(self) -> &'static str {
        match self {
            LayerMediaType::Tar => OCI_LAYER,
            LayerMediaType::TarGzip => OCI_LAYER_GZIP,
            LayerMediaType::TarZstd => OCI_LAYER_ZSTD,
        }
    }

    /// `application/vnd.docker.image.rootfs.diff.tar[.gzip]`. Docker media
    /// types have no zstd layer that Docker itself accepts: exporters switch
    /// to OCI media types when a layer is zstd, as BuildKit does.
    pub fn docker(self) -> &'static str {
        match self {
            LayerMediaType::Tar => DOCKER_LAYER,
            LayerMediaType::TarGzip => DOCKER_LAYER_GZIP,
            LayerMediaType::TarZstd => DOCKER_LAYER_ZSTD,
        }
    }

    /// Recognise any OCI or Docker layer media type (non-distributable and
    /// foreign layers included).
    pub fn from_media_type(mt: &str) -> Option<Self> {
        Some(match mt {
            OCI_LAYER | OCI_LAYER_ND | DOCKER_LAYER => LayerMediaType::Tar,
            OCI_LAYER_GZIP | OCI_LAYER_ND_GZIP | DOCKER_LAYER_GZIP | DOCKER_FOREIGN_LAYER_GZIP => {
                LayerMediaType::TarGzip
            }
            OCI_LAYER_ZSTD | OCI_LAYER_ND_ZSTD | DOCKER_LAYER_ZSTD => LayerMediaType::TarZstd,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_disjoint() {
        let all = [
            OCI_MANIFEST,
            OCI_INDEX,
            OCI_CONFIG,
            OCI_LAYER,
            OCI_LAYER_GZIP,
            OCI_LAYER_ZSTD,
            OCI_LAYER_ND,
            OCI_LAYER_ND_GZIP,
            OCI_LAYER_ND_ZSTD,
            OCI_EMPTY,
            DOCKER_MANIFEST,
            DOCKER_LIST,
            DOCKER_CONFIG,
            DOCKER_LAYER,
            DOCKER_LAYER_GZIP,
            DOCKER_LAYER_ZSTD,
            DOCKER_FOREIGN_LAYER_GZIP,
        ];
        for mt in all {
            let kinds = [is_manifest(mt), is_index(mt), is_config(mt), is_layer(mt)];
            assert!(kinds.iter().filter(|k| **k).count() <= 1, "{mt}");
        }
        assert!(!is_layer(OCI_EMPTY) && !is_config(OCI_EMPTY));
        assert!(MANIFEST_ACCEPT
            .iter()
            .all(|mt| is_manifest(mt) || is_index(mt)));
    }

    #[test]
    fn layer_types_round_trip() {
        for l in [
            LayerMediaType::Tar,
            LayerMediaType::TarGzip,
            LayerMediaType::TarZstd,
        ] {
            assert_eq!(LayerMediaType::from_media_type(l.oci()), Some(l));
            assert_eq!(LayerMediaType::from_media_type(l.docker()), Some(l));
        }
        assert_eq!(
            LayerMediaType::from_media_type(DOCKER_FOREIGN_LAYER_GZIP),
            Some(LayerMediaType::TarGzip)
        );
        assert_eq!(LayerMediaType::from_media_type(OCI_CONFIG), None);
        assert_eq!(
            LayerMediaType::from_media_type("application/octet-stream"),
            None
        );
    }
}
