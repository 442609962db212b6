//! Base-image configs for planning: read from OCI layouts given as build
//! contexts, and from registries when a client is given (`build`; `graph`
//! plans offline, without configs of registry images).
//!
//! A registry reference is resolved from the registry at every build (as
//! BuildKit does), once per build: two stages `FROM` the same tag get the
//! same image. When the registry cannot be reached, the last resolution
//! kept in the cache is used, with a warning, unless `--pull` asks for the
//! registry's answer (see `resolutions.rs`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use engine_ir::{ImageResolver, Platform, ResolvedImage};
use engine_solver::run::ContextSource;

use crate::resolutions::{unreachable, Resolutions};
use crate::{Failure, Kind};

/// Why a base image could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(transparent)]
    Registry(#[from] engine_registry::Error),
    #[error("{source} (--pull: not using the image it last resolved to)")]
    PullRefused {
        #[source]
        source: engine_registry::Error,
    },
    #[error("invalid image config: {0}")]
    Config(String),
    #[error(transparent)]
    Layout(#[from] engine_export::Error),
}

impl ResolveError {
    fn kind(&self) -> Kind {
        match self {
            ResolveError::Registry(e) if e.is_request_error() => Kind::Usage,
            ResolveError::Registry(_) | ResolveError::PullRefused { .. } => Kind::Infra,
            ResolveError::Config(_) | ResolveError::Layout(_) => Kind::Usage,
        }
    }
}

pub struct LayoutResolver<'a> {
    pub contexts: &'a BTreeMap<String, ContextSource>,
    pub registry: Option<&'a engine_registry::Client>,
    /// Where resolutions are kept (a build's cache dir); `None`: nowhere.
    pub resolutions: Option<Resolutions>,
    /// `--pull`: the registry's answer or an error, never a kept resolution.
    pub pull: bool,
    /// This build's resolutions, by reference and platform.
    pub memo: Mutex<HashMap<(String, String), ResolvedImage>>,
    /// The errors handed to the frontend, which carries them as text: kept
    /// typed for [`LayoutResolver::explain`].
    pub errors: Mutex<Vec<ResolveError>>,
}

impl LayoutResolver<'_> {
    /// The config and manifest digest of `reference`: from the registry,
    /// or, when it cannot be reached and `--pull` was not given, from the
    /// last resolution kept.
    fn registry_config(
        &self,
        client: &engine_registry::Client,
        reference: &str,
        platform: &Platform,
    ) -> Result<(Vec<u8>, engine_cache::Digest), ResolveError> {
        let r = engine_oci::Reference::parse(reference).map_err(engine_registry::Error::from)?;
        let e = match engine_registry::pull::resolve_config(client, &r, platform) {
            Ok((config, digest)) => {
                if let Some(k) = &self.resolutions {
                    k.save(reference, platform, &digest, &config);
                }
                return Ok((config, digest));
            }
            Err(e) => e,
        };
        if !unreachable(&e) {
            return Err(e.into());
        }
        let kept = self
            .resolutions
            .as_ref()
            .and_then(|k| k.load(reference, platform));
        match kept {
            Some(_) if self.pull => Err(ResolveError::PullRefused { source: e }),
            Some(k) => {
                let age = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs())
                    .saturating_sub(k.resolved);
                eprintln!(
                    "warning: cannot reach the registry of `{reference}` ({e}); using the image \
                     it last resolved to, {} ({} ago); --pull refuses to build without the registry",
                    k.digest,
                    crate::resolutions::span(age),
                );
                Ok((k.config, k.digest))
            }
            None => Err(e.into()),
        }
    }

    /// The error the frontend was handed, as text, and what it was.
    fn handed(&self, e: ResolveError) -> String {
        let text = e.to_string();
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(e);
        text
    }

    /// A planning failure that quotes an error of this resolver gets its
    /// kind (a registry that cannot be reached is infrastructure: exit
    /// code 3) and its causes.
    pub fn explain(&self, failure: Failure) -> Failure {
        let errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        match errors.iter().find(|e| failure.says(&e.to_string())) {
            Some(e) => failure.with_kind(e.kind()).caused_by(e),
            None => failure,
        }
    }
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
        let key = (reference.to_string(), platform.to_string());
        if let Some(hit) = self
            .memo
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(Some(hit.clone()));
        }
        let (config, digest) = self
            .registry_config(client, reference, platform)
            .map_err(|e| self.handed(e))?;
        let resolved = ResolvedImage {
            digest: Some(digest.to_string()),
            config: engine_solver::image_config::from_json(&config)
                .map_err(|e| self.handed(ResolveError::Config(e)))?,
        };
        self.memo
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, resolved.clone());
        Ok(Some(resolved))
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
            .map_err(|e| self.handed(e.into()))?;
        let config = engine_solver::image_config::from_json(&r.config_bytes)
            .map_err(|e| self.handed(ResolveError::Config(e)))?;
        Ok(Some(ResolvedImage {
            digest: Some(r.manifest_digest.to_string()),
            config,
        }))
    }
}
