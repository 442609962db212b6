//! Frontends need a base image's config while planning (its ENV feeds
//! variable expansion, its ONBUILD triggers become instructions). They ask
//! through this trait; the binary implements it over registries, OCI layouts
//! and the cache, and `graph` can plan without any of them.

use crate::config::ImageConfig;
use crate::platform::Platform;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedImage {
    /// The manifest digest, pinned into the source node when known.
    pub digest: Option<String>,
    pub config: ImageConfig,
}

pub trait ImageResolver: Sync {
    /// Resolve a registry reference. `Ok(None)` means "unknown here": the
    /// frontend plans with an empty config and an unpinned reference.
    fn resolve_image(
        &self,
        reference: &str,
        platform: &Platform,
    ) -> Result<Option<ResolvedImage>, String>;

    /// Resolve a named build context that holds an OCI layout.
    fn resolve_layout(
        &self,
        context: &str,
        platform: &Platform,
    ) -> Result<Option<ResolvedImage>, String> {
        let _ = (context, platform);
        Ok(None)
    }
}

/// Resolves nothing: planning without access to any image.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoResolver;

impl ImageResolver for NoResolver {
    fn resolve_image(&self, _: &str, _: &Platform) -> Result<Option<ResolvedImage>, String> {
        Ok(None)
    }
}
