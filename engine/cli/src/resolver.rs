//! Base-image configs for planning: read from OCI layouts given as build
//! contexts, and from registries when a client is given (`build`; `graph`
//! plans offline, without configs of registry images).

use std::collections::BTreeMap;

use engine_ir::{ImageResolver, Platform, ResolvedImage};
use engine_solver::run::ContextSource;

pub struct LayoutResolver<'a> {
    pub contexts: &'a BTreeMap<String, ContextSource>,
    pub registry: Option<&'a engine_registry::Client>,
}

impl ImageResolver for LayoutResolver<'_> {
    fn resolve_image(
        &self,
        reference: &str,
        platform: &Platform,
    ) -> Result<Option<ResolvedImage>, String> {
        let Some(client) = self.registry else {
            return Ok(None);
        };
        let r = engine_registry::Reference::parse(reference).map_err(|e| e.to_string())?;
        let (config, digest) = engine_registry::pull::resolve_config(client, &r, platform)
            .map_err(|e| e.to_string())?;
        let config = engine_solver::image_config::from_json(&config)?;
        Ok(Some(ResolvedImage {
            digest: Some(digest.to_string()),
            config,
        }))
    }

    fn resolve_layout(
        &self,
        context: &str,
        platform: &Platform,
    ) -> Result<Option<ResolvedImage>, String> {
        let Some(ContextSource::Layout { path, reference }) = self.contexts.get(context) else {
            return Ok(None);
        };
        let r = engine_export::open_oci_layout(path, reference.as_ref(), platform)
            .map_err(|e| e.to_string())?;
        let config = engine_solver::image_config::from_json(&r.config_bytes)?;
        Ok(Some(ResolvedImage {
            digest: Some(r.manifest_digest.to_string()),
            config,
        }))
    }
}
