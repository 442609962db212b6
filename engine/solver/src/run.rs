//! Running nodes: what each op means on disk. Implements the scheduler's
//! `NodeRunner` over the state directory, the sandbox and the exporters.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use engine_cache::{Kind, LeaseItem, Record};
use engine_ir::config::ImageConfig;
use engine_ir::ignore::IgnorePatterns;
use engine_ir::{
    FileAction, Graph, MountKind, NetworkMode, NodeId, Op, Platform, SecurityMode, Source,
};

/// The refusal of `RUN --network=host` without its entitlement.
pub const NOT_ALLOWED_NETWORK_HOST: &str =
    "RUN --network=host is not allowed: the network.host entitlement is not granted (pass --allow network.host)";
/// The refusal of `RUN --security=insecure` without its entitlement.
pub const NOT_ALLOWED_INSECURE: &str =
    "RUN --security=insecure is not allowed: the security.insecure entitlement is not granted (pass --allow security.insecure)";

use crate::copy::{self, CopyError, CopyRequest, Ownership};
use crate::fsutil::resolve_in_root;
use crate::image_config;
use crate::progress::{Event, Progress, Status};
use crate::scheduler::{CancelToken, NodeRunner};
use crate::snapshot::{mount_overlay, Layer, Snapshot};
use crate::state::StateDir;

pub use crate::keys::CACHE_VERSION;

#[derive(Debug, Clone)]
pub enum ContextSource {
    Dir(PathBuf),
    Layout {
        path: PathBuf,
        reference: Option<engine_export::TagOrDigest>,
    },
}

#[derive(Debug, Clone)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
}

pub struct SolveOptions {
    pub contexts: BTreeMap<String, ContextSource>,
    pub secrets: BTreeMap<String, SecretSource>,
    /// Run every step, using no earlier result.
    pub no_cache: bool,
    /// Run the steps of these stages (and everything built on them) anew.
    /// Names as [`crate::build::step_stage`] reads them from step names;
    /// `""` stands for the stage of a single-stage Dockerfile.
    pub no_cache_filter: Vec<String>,
    /// Records and blobs of `--cache-from type=local` directories: a step
    /// missing from the local cache but present there is re-created from
    /// its layer blob instead of being run.
    pub cache_from: Option<Arc<crate::cache_share::ImportedCache>>,
    /// What RUN steps may do beyond the sandbox's defaults (`--allow`).
    pub entitlements: Entitlements,
    /// Process and memory limits of every RUN step (`--pids-limit`, `--memory`).
    pub limits: engine_sandbox::Limits,
}

/// Privileges a build must be granted explicitly (BuildKit's entitlements,
/// `--allow network.host,security.insecure`). Checked here, where steps run,
/// whatever path a step came through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Entitlements {
    /// `RUN --network=host`: the host's network namespace.
    pub network_host: bool,
    /// `RUN --security=insecure`: every capability, no seccomp filter.
    pub security_insecure: bool,
}

impl Entitlements {
    /// Parses one `--allow` value.
    pub fn allow(&mut self, name: &str) -> Result<(), String> {
        match name {
            "network.host" => self.network_host = true,
            "security.insecure" => self.security_insecure = true,
            other => {
                return Err(format!(
                    "unknown entitlement `{other}`: use network.host or security.insecure"
                ))
            }
        }
        Ok(())
    }
}

/// Why a step failed; [`StepError::fault`] says whose failure it is.
///
/// A message ends with its source's (`{context}: {source}`), so that it
/// reads whole on one line; `source()` gives the cause itself, for those
/// that print the chain (the binary's `Caused by:` lines).
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// A RUN step's process exited non-zero.
    #[error("process \"{command}\" did not complete successfully: exit code: {code}")]
    Exit {
        command: String,
        code: i32,
        tail: Vec<String>,
    },
    /// COPY or ADD: a source that is not there, a pattern that matches
    /// nothing, an archive that cannot be unpacked; or host I/O.
    #[error(transparent)]
    Copy(#[from] CopyError),
    /// The step cannot be done as written: a file in the way of a
    /// directory, a user or group the image does not have.
    #[error("{0}")]
    Invalid(String),
    /// `--chown`, `USER` or `WORKDIR` names an owner that cannot be used.
    #[error(transparent)]
    Owner(Box<engine_sandbox::Error>),
    /// What the build was given does not serve the step: a context of the
    /// wrong kind, a required secret that was not given, an entitlement
    /// not granted, a bad `.dockerignore`.
    #[error("{0}")]
    Input(String),
    /// A base image from an OCI layout given as a build context cannot be
    /// used.
    #[error("cannot read OCI layout `{}`: {source}", path.display())]
    Layout {
        path: PathBuf,
        #[source]
        source: Box<engine_export::Error>,
    },
    /// A base image's config cannot be read.
    #[error("invalid image config: {0}")]
    BadImage(String),
    /// A registry failed: a base image pull, a cache push or fetch.
    #[error("{context}: {source}")]
    Registry {
        context: String,
        #[source]
        source: Box<engine_registry::Error>,
    },
    /// The image a registry pull left in the cache cannot be read.
    #[error("cannot read the pulled image at `{}`: {source}", path.display())]
    Pulled {
        path: PathBuf,
        #[source]
        source: Box<engine_export::Error>,
    },
    /// A layer blob cannot be unpacked or written.
    #[error("{context}: {source}")]
    Layer {
        context: String,
        #[source]
        source: Box<engine_layers::Error>,
    },
    /// The cache index or snapshots failed.
    #[error("cache: {0}")]
    Cache(#[source] Box<engine_cache::CacheError>),
    /// The blob store failed.
    #[error("blob store: {0}")]
    Blob(#[source] Box<engine_cache::BlobError>),
    /// The sandbox could not run the step, or stopped it at a limit.
    #[error("cannot run step: {0}")]
    Sandbox(#[source] Box<engine_sandbox::Error>),
    /// The step is for a platform this host cannot execute (no emulation).
    #[error("{0}")]
    Emulation(String),
    /// Host I/O (mounts, snapshots, scratch directories).
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// Anything else of the machinery, said in words (not typed yet).
    #[error("{0}")]
    Other(String),
}

/// Whose failure a [`StepError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The step itself failed: a RUN exited non-zero, a COPY source is
    /// missing, the step ran into its limits.
    Step,
    /// What the build was given: a missing secret, a context of the wrong
    /// kind, an image name the registry does not know.
    Input,
    /// The machinery: a registry, the sandbox's setup, cache or host I/O.
    Infrastructure,
}

// Sources are boxed: a failed build carries its `StepError` up through
// every caller, which should stay small.
impl From<engine_cache::CacheError> for StepError {
    fn from(e: engine_cache::CacheError) -> Self {
        StepError::Cache(Box::new(e))
    }
}

impl From<engine_cache::BlobError> for StepError {
    fn from(e: engine_cache::BlobError) -> Self {
        StepError::Blob(Box::new(e))
    }
}

impl StepError {
    /// A registry's failure, said with what was being done.
    pub fn registry(context: impl Into<String>, source: engine_registry::Error) -> Self {
        StepError::Registry {
            context: context.into(),
            source: Box::new(source),
        }
    }

    /// A layer blob that cannot be unpacked or written.
    pub fn layer(context: impl Into<String>, source: engine_layers::Error) -> Self {
        StepError::Layer {
            context: context.into(),
            source: Box::new(source),
        }
    }

    pub fn fault(&self) -> Fault {
        use engine_sandbox::Error as S;
        match self {
            StepError::Exit { .. } | StepError::Invalid(_) | StepError::Owner(_) => Fault::Step,
            StepError::Copy(e) if e.is_io() => Fault::Infrastructure,
            StepError::Copy(_) => Fault::Step,
            StepError::Sandbox(e)
                if matches!(
                    **e,
                    S::PidsLimit(_)
                        | S::MemoryLimit(_)
                        | S::UserNotFound(_)
                        | S::GroupNotFound(_)
                        | S::InvalidUser { .. }
                        | S::Cancelled
                ) =>
            {
                Fault::Step
            }
            StepError::Input(_) | StepError::Layout { .. } | StepError::BadImage(_) => Fault::Input,
            StepError::Registry { source, .. } if source.is_request_error() => Fault::Input,
            StepError::Registry { .. }
            | StepError::Pulled { .. }
            | StepError::Layer { .. }
            | StepError::Cache(_)
            | StepError::Blob(_)
            | StepError::Sandbox(_)
            | StepError::Emulation(_)
            | StepError::Io { .. }
            | StepError::Other(_) => Fault::Infrastructure,
        }
    }
}

fn input(s: impl Into<String>) -> StepError {
    StepError::Input(s.into())
}

fn ioe(context: impl Into<String>) -> impl FnOnce(io::Error) -> StepError {
    let context = context.into();
    move |source| StepError::Io { context, source }
}

/// A local directory source.
#[derive(Debug)]
pub struct LocalDir {
    pub path: PathBuf,
    pub ignore: IgnorePatterns,
}

/// The value a node produces.
#[derive(Debug, Clone, Default)]
pub struct Value {
    pub key: String,
    pub fs: Option<Snapshot>,
    pub config: Option<Arc<ImageConfig>>,
    pub local: Option<Arc<LocalDir>>,
    pub cached: bool,
    /// Made anew although the cache may hold a result for its key
    /// (`--no-cache`, `--no-cache-filter`): whatever reads it must be made
    /// anew too.
    pub fresh: bool,
}

pub struct Runner<'a> {
    pub graph: &'a Graph,
    pub state: &'a StateDir,
    pub opts: &'a SolveOptions,
    pub executor: &'a dyn engine_sandbox::Executor,
    pub progress: &'a dyn Progress,
    pub executed: AtomicUsize,
    pub cached: AtomicUsize,
    pub registry: engine_registry::Client,
}

impl<'a> Runner<'a> {
    pub fn new(
        graph: &'a Graph,
        state: &'a StateDir,
        opts: &'a SolveOptions,
        executor: &'a dyn engine_sandbox::Executor,
        progress: &'a dyn Progress,
    ) -> Self {
        Runner {
            graph,
            state,
            opts,
            executor,
            progress,
            executed: AtomicUsize::new(0),
            cached: AtomicUsize::new(0),
            registry: engine_registry::Client::new(),
        }
    }
}

/// For each bind mount of a local context (by its index in the step's
/// mounts), the context paths its view hides (`hash::Selection::hidden`).
type HiddenPaths = BTreeMap<usize, Vec<String>>;

fn key_of(op: &Op, inputs: &[Value], extra: &[&str]) -> String {
    let input_keys: Vec<&str> = inputs.iter().map(|i| i.key.as_str()).collect();
    crate::keys::cache_key(op, &input_keys, extra)
}

fn cache_err(e: engine_cache::CacheError) -> StepError {
    e.into()
}

impl NodeRunner for Runner<'_> {
    type Output = Value;
    type Error = StepError;

    fn class(&self, id: NodeId) -> crate::scheduler::Class {
        use crate::scheduler::Class;
        match self.graph.node(id).op {
            Op::Exec(_) => Class::Exec,
            Op::File(_) => Class::Cpu,
            _ => Class::Light,
        }
    }

    fn run(&self, id: NodeId, inputs: &[Value], cancel: &CancelToken) -> Result<Value, StepError> {
        let node = self.graph.node(id);
        let show = crate::progress::visible(&node.op);
        let start = Instant::now();
        let name = node.meta.name.as_str();
        if show {
            self.progress.event(&Event {
                id: id.0,
                name,
                status: Status::Started,
                duration_ms: None,
                digest: None,
                cached: None,
                error: None,
            });
        }
        let result = self.run_op(id, &node.op, inputs, cancel).map(|mut v| {
            v.fresh |= inputs.iter().any(|i| i.fresh);
            v
        });
        if show {
            let status = match &result {
                Ok(v) if v.cached => Status::Cached,
                Ok(_) => Status::Done,
                Err(_) => Status::Error,
            };
            match status {
                Status::Cached => self.cached.fetch_add(1, Ordering::SeqCst),
                Status::Done => self.executed.fetch_add(1, Ordering::SeqCst),
                _ => 0,
            };
            let ms = start.elapsed().as_millis() as u64;
            self.progress.event(&Event {
                id: id.0,
                name,
                status,
                duration_ms: Some(ms),
                digest: result.as_ref().ok().map(|v| v.key.as_str()),
                cached: Some(status == Status::Cached),
                error: result.as_ref().err().map(|e| e.to_string()),
            });
        }
        result
    }
}

impl Runner<'_> {
    fn run_op(
        &self,
        id: NodeId,
        op: &Op,
        inputs: &[Value],
        cancel: &CancelToken,
    ) -> Result<Value, StepError> {
        match op {
            Op::Source(Source::Scratch) => Ok(Value {
                key: key_of(op, &[], &[]),
                fs: Some(Snapshot::default()),
                config: Some(Arc::new(ImageConfig::scratch())),
                ..Default::default()
            }),
            Op::Source(Source::Local { name, excludes }) => {
                let Some(ContextSource::Dir(path)) = self.opts.contexts.get(name) else {
                    return Err(input(format!(
                        "build context `{name}` was not given as a directory"
                    )));
                };
                let ignore = IgnorePatterns::from_patterns(excludes)
                    .map_err(|e| input(format!(".dockerignore: {e}")))?;
                Ok(Value {
                    key: key_of(op, &[], &[]),
                    local: Some(Arc::new(LocalDir {
                        path: path.clone(),
                        ignore,
                    })),
                    ..Default::default()
                })
            }
            Op::Source(Source::Layout {
                context, platform, ..
            }) => self.layout_source(id, op, context, platform),
            Op::Source(Source::Image {
                reference,
                digest,
                platform,
            }) => self.registry_source(id, op, reference, digest.as_deref(), platform),
            Op::Config(c) => {
                let mut config = inputs
                    .first()
                    .and_then(|i| i.config.as_deref().cloned())
                    .unwrap_or_else(ImageConfig::scratch);
                for ch in &c.changes {
                    config.apply(ch);
                }
                Ok(Value {
                    key: key_of(op, inputs, &[]),
                    config: Some(Arc::new(config)),
                    ..Default::default()
                })
            }
            Op::Image(_) => Ok(Value {
                key: key_of(op, inputs, &[]),
                fs: inputs.first().and_then(|i| i.fs.clone()),
                config: inputs.get(1).and_then(|i| i.config.clone()),
                ..Default::default()
            }),
            Op::Exec(_) | Op::File(_) => self.layer_op(id, op, inputs, cancel),
        }
    }

    /// A registry image: pulled (layers into the blob store, manifest and
    /// config into `<cache>/pulls/<manifest digest>`), then used like an
    /// OCI layout context.
    fn registry_source(
        &self,
        id: NodeId,
        op: &Op,
        reference: &str,
        digest: Option<&str>,
        platform: &Platform,
    ) -> Result<Value, StepError> {
        let pull_err = |source| StepError::registry(format!("cannot pull `{reference}`"), source);
        let mut r = engine_oci::Reference::parse(reference)
            .map_err(|e| pull_err(engine_registry::Error::from(e)))?;
        if let Some(d) = digest {
            r = r.with_digest(
                engine_oci::Digest::parse(d).map_err(|e| StepError::Other(e.to_string()))?,
            );
        }
        let pull = || {
            engine_registry::pull::pull(
                &self.registry,
                &r,
                platform,
                &self.state.blobs,
                &self.state.root.join("pulls"),
            )
            .map_err(pull_err)
        };
        let pulled = pull()?;
        let refetch = || pull().map(|_| ());
        self.image_from_layout(id, op, &pulled.layout, None, platform, Some(&refetch))
    }

    fn layout_source(
        &self,
        id: NodeId,
        op: &Op,
        context: &str,
        platform: &Platform,
    ) -> Result<Value, StepError> {
        let Some(ContextSource::Layout { path, reference }) = self.opts.contexts.get(context)
        else {
            return Err(input(format!(
                "build context `{context}` is not an oci-layout:// context"
            )));
        };
        self.image_from_layout(id, op, path, reference.as_ref(), platform, None)
    }

    /// A base image read from an OCI layout. Missing or damaged layer
    /// blobs are brought back from the layout, or by `refetch` when one is
    /// given (a registry pull, whose layout holds no layers).
    fn image_from_layout(
        &self,
        id: NodeId,
        op: &Op,
        path: &Path,
        reference: Option<&engine_export::TagOrDigest>,
        platform: &Platform,
        refetch: Option<&dyn Fn() -> Result<(), StepError>>,
    ) -> Result<Value, StepError> {
        // A layout a registry pull left in the cache, or one the user gave.
        let layout_err = |source| match refetch {
            Some(_) => StepError::Pulled {
                path: path.to_path_buf(),
                source: Box::new(source),
            },
            None => StepError::Layout {
                path: path.to_path_buf(),
                source: Box::new(source),
            },
        };
        let resolved =
            engine_export::open_oci_layout(path, reference, platform).map_err(layout_err)?;
        let key = key_of(
            op,
            &[],
            &[&resolved.manifest_digest.to_string(), &platform.to_string()],
        );
        let config =
            image_config::from_json(&resolved.config_bytes).map_err(StepError::BadImage)?;
        let blobs = resolved.layer_blobs().map_err(layout_err)?;
        let store = &self.state.store;
        let dir = self.state.snapshot_dir(&key);
        // Only --no-cache re-imports a base image: one source node serves
        // every stage built FROM it, so a stage filter would reach stages
        // it does not name.
        let fresh = self.opts.no_cache;
        let mut cached = !fresh && store.acquire(&key).map_err(cache_err)?;
        let _building = if cached {
            None
        } else {
            let guard = store.lock_key(&key).map_err(cache_err)?;
            cached = !fresh && store.acquire(&key).map_err(cache_err)?;
            Some(guard)
        };
        // The base layers are exported as they are: lease them, and bring
        // back any that went missing or were damaged.
        {
            let _using = store.using().map_err(cache_err)?;
            let intact = blobs.iter().all(|b| store.blob_ok(&b.digest, Some(b.size)))
                && store.blob_ok(&resolved.config_descriptor.digest, None);
            match refetch {
                _ if intact => {}
                Some(refetch) => refetch()?,
                None => {
                    engine_export::import_blobs(&resolved, path, &self.state.blobs)
                        .map_err(layout_err)?;
                }
            }
            let mut items: Vec<LeaseItem> =
                blobs.iter().map(|b| LeaseItem::Blob(b.digest)).collect();
            items.push(LeaseItem::Blob(resolved.config_descriptor.digest));
            for i in items {
                store
                    .session()
                    .add(i)
                    .map_err(ioe("cache: writing the build's lease"))?;
            }
        }
        let mut record = self.record(id, &key, Kind::Source);
        record.base_layers = blobs
            .iter()
            .map(|b| engine_cache::LayerRef {
                digest: b.digest,
                diff_id: b.diff_id,
                size: b.size,
                media_type: b.media_type.oci().to_string(),
            })
            .collect();
        record.base_config = Some(resolved.config_descriptor.digest);
        if cached {
            store.note(record);
        } else {
            let staging = store.staging(&key).map_err(cache_err)?;
            let fs_dir = staging.join("fs");
            fs::create_dir_all(&fs_dir).map_err(ioe("creating snapshot"))?;
            for b in &blobs {
                let f = self.state.blobs.open_blob(&b.digest)?;
                let r = engine_layers::apply_layer_verified(
                    &fs_dir,
                    f,
                    &b.digest.to_string(),
                    Some(&b.diff_id.to_string()),
                )
                .map_err(|source| {
                    StepError::layer(format!("cannot unpack layer {}", b.digest), source)
                });
                if let Err(e) = r {
                    let _ = engine_cache::sweep::remove_tree(&staging);
                    return Err(e);
                }
            }
            store
                .commit_snapshot(&staging, &record, fresh)
                .map_err(cache_err)?;
        }
        let layer = Arc::new(Layer {
            dir: dir.join("fs"),
            blobs: Mutex::new(Some(blobs)),
            key: key.clone(),
        });
        Ok(Value {
            key,
            fs: Some(Snapshot::default().with(layer)),
            config: Some(Arc::new(config)),
            cached,
            fresh,
            ..Default::default()
        })
    }

    /// Re-create the snapshot of `key` from an imported cache
    /// (`--cache-from`), as if it had been built. False when no imported
    /// record can serve (absent, or its blob is missing or damaged).
    fn restore_imported(&self, key: &str, record: &Record) -> Result<bool, StepError> {
        let Some(imported) = self.opts.cache_from.as_deref() else {
            return Ok(false);
        };
        let Some((_, from)) = imported.get(key) else {
            return Ok(false);
        };
        // The step keeps the time it first ran on the machine that ran it:
        // images built from the restored layers get the same `created`,
        // so the same digest, there and here.
        let mut record = record.clone();
        record.created = from.created;
        let record = &record;
        let store = &self.state.store;
        let staging = store.staging(key).map_err(cache_err)?;
        let fs_dir = staging.join("fs");
        fs::create_dir_all(&fs_dir).map_err(ioe("creating snapshot"))?;
        let Some(layers) = imported.restore(self.state, key, &fs_dir) else {
            let _ = engine_cache::sweep::remove_tree(&staging);
            return Ok(false);
        };
        store
            .commit_snapshot(&staging, record, false)
            .map_err(cache_err)?;
        for (tag, layer) in &layers {
            store.put_step_layer(key, tag, layer).map_err(cache_err)?;
        }
        Ok(true)
    }

    /// A fresh index record for a step of this build.
    fn record(&self, id: NodeId, key: &str, kind: Kind) -> Record {
        let mut r = Record::new(key, kind, engine_cache::now_secs());
        r.description = self.graph.node(id).meta.name.clone();
        r
    }

    /// Whether `id` must be built anew whatever the cache holds.
    fn ignores_cache(&self, id: NodeId) -> bool {
        self.opts.no_cache
            || (!self.opts.no_cache_filter.is_empty()
                && crate::build::step_stage(&self.graph.node(id).meta.name)
                    .is_some_and(|s| self.opts.no_cache_filter.iter().any(|f| f == s)))
    }

    /// The content hashes of what `op` reads from local contexts (its
    /// key's `extra`), and for each bind mount of a context (by mount
    /// index) the paths its view must hide.
    fn local_extra(
        &self,
        id: NodeId,
        op: &Op,
        inputs: &[Value],
    ) -> Result<(Vec<String>, HiddenPaths), StepError> {
        let mut extra = Vec::new();
        let mut hidden = BTreeMap::new();
        let warn = |sockets: &[String]| {
            for s in sockets {
                self.progress.output(
                    id.0,
                    &format!("warning: skipping socket `{s}` of the build context (sockets are not part of a context)"),
                );
            }
        };
        match op {
            Op::File(f) => {
                for a in &f.actions {
                    if let FileAction::Copy(c) = a {
                        if let Some(l) = inputs.get(c.src_input).and_then(|i| i.local.as_ref()) {
                            let s = crate::hash::select(
                                &l.path,
                                Some(&l.ignore),
                                &c.sources,
                                Some(self.state.store.file_memo()),
                            )?;
                            warn(&s.sockets);
                            extra.push(s.hash);
                        }
                    }
                }
            }
            Op::Exec(e) => {
                for (i, m) in e.mounts.iter().enumerate() {
                    if let MountKind::Bind { input, source } = &m.kind {
                        if let Some(l) = inputs.get(*input).and_then(|i| i.local.as_ref()) {
                            let s = crate::hash::select(
                                &l.path,
                                Some(&l.ignore),
                                std::slice::from_ref(source),
                                Some(self.state.store.file_memo()),
                            )?;
                            warn(&s.sockets);
                            extra.push(s.hash);
                            if !l.ignore.is_empty() {
                                // Engines before the filtered view showed
                                // what .dockerignore excludes: never reuse
                                // their results.
                                extra.push(crate::keys::FILTERED_BIND_VIEW.to_string());
                            }
                            hidden.insert(i, s.hidden);
                        }
                    }
                }
            }
            _ => {}
        }
        Ok((extra, hidden))
    }

    fn layer_op(
        &self,
        id: NodeId,
        op: &Op,
        inputs: &[Value],
        cancel: &CancelToken,
    ) -> Result<Value, StepError> {
        let hashing = Instant::now();
        let (extra, hidden) = self.local_extra(id, op, inputs)?;
        if !extra.is_empty() {
            self.progress
                .span("hash build context", "context", hashing, Instant::now());
        }
        let extra_refs: Vec<&str> = extra.iter().map(String::as_str).collect();
        let key = key_of(op, inputs, &extra_refs);
        let base = inputs
            .first()
            .and_then(|i| i.fs.clone())
            .unwrap_or_default();
        let dir = self.state.snapshot_dir(&key);
        let store = &self.state.store;
        let fresh = self.ignores_cache(id) || inputs.iter().any(|i| i.fresh);
        let kind = match op {
            Op::Exec(_) => Kind::Exec,
            _ => Kind::File,
        };
        let record = self.record(id, &key, kind);
        // Look up without waiting; on a miss, wait for whoever builds the
        // key (another thread or process) and look again.
        let mut cached = !fresh && store.acquire(&key).map_err(cache_err)?;
        let _building = if cached {
            None
        } else {
            let guard = store.lock_key(&key).map_err(cache_err)?;
            cached = !fresh && store.acquire(&key).map_err(cache_err)?;
            Some(guard)
        };
        if !cached && !fresh {
            cached = self.restore_imported(&key, &record)?;
        }
        if cached {
            store.note(record);
        } else {
            let staging = store.staging(&key).map_err(cache_err)?;
            let upper = staging.join("fs");
            let work = staging.join("work");
            fs::create_dir_all(&upper).map_err(ioe("creating upper dir"))?;
            fs::create_dir_all(&work).map_err(ioe("creating work dir"))?;
            // A COPY's lineage: the same op over the same base, whatever
            // the content it reads (see `copy_reuse`).
            let lineage = matches!(op, Op::File(_))
                .then(|| key_of(op, &inputs[..inputs.len().min(1)], &["copy-lineage"]));
            let previous = match &lineage {
                Some(l) if !fresh => self.previous_copy(l),
                _ => None,
            };
            let r = match op {
                Op::Exec(e) => self
                    .exec(id, e, &base, inputs, &hidden, &upper, &work, cancel)
                    .map(|()| None),
                Op::File(f) => self.file(f, &base, inputs, &upper, &work, previous.as_ref()),
                _ => unreachable!("layer_op only runs exec and file ops"),
            };
            let manifest = match r {
                Ok(m) => m,
                Err(e) => {
                    let _ = engine_cache::sweep::remove_tree(&staging);
                    return Err(e);
                }
            };
            let _ = engine_cache::sweep::remove_tree(&work);
            if let Some(m) = &manifest {
                // Without it the next run only copies everything again.
                let _ = m.save(&staging);
            }
            store
                .commit_snapshot(&staging, &record, fresh)
                .map_err(cache_err)?;
            if let (Some(l), Some(_)) = (&lineage, &manifest) {
                let _ = crate::copy_reuse::set_latest(&self.state.root, l, &key);
            }
        }
        let layer = Arc::new(Layer {
            dir: dir.join("fs"),
            blobs: Mutex::new(None),
            key: key.clone(),
        });
        Ok(Value {
            key,
            fs: Some(base.with(layer)),
            cached,
            fresh,
            ..Default::default()
        })
    }

    /// The latest committed result of a COPY lineage, leased for this
    /// build so that collection leaves it alone while files are linked
    /// from it.
    fn previous_copy(&self, lineage: &str) -> Option<crate::copy_reuse::Previous> {
        let key = crate::copy_reuse::latest(&self.state.root, lineage)?;
        if !self.state.store.acquire(&key).ok()? {
            return None;
        }
        let dir = self.state.snapshot_dir(&key);
        let manifest = crate::copy_reuse::Manifest::load(&dir)?;
        Some(crate::copy_reuse::Previous {
            root: dir.join("fs"),
            manifest,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn exec(
        &self,
        id: NodeId,
        e: &engine_ir::Exec,
        base: &Snapshot,
        inputs: &[Value],
        hidden: &HiddenPaths,
        upper: &Path,
        work: &Path,
        cancel: &CancelToken,
    ) -> Result<(), StepError> {
        use engine_sandbox::{Mount as SMount, MountKind as SKind, Network, Rootfs, RunSpec};
        // A step for a platform this host cannot execute (no QEMU handler):
        // say what to install, before mounting anything.
        engine_sandbox::emulation::check_can_execute(&e.platform.architecture)
            .map_err(StepError::Emulation)?;
        let tmp = self.state.tmp().to_path_buf();
        let mut guards = Vec::new();
        let mut scratch = Vec::new();
        let mut mounts = Vec::new();
        let mut env = e.env.clone();
        env.extend(e.proxy_env.iter().cloned());
        for (mount_index, m) in e.mounts.iter().enumerate() {
            match &m.kind {
                MountKind::Bind { input, source } => {
                    let v = inputs
                        .get(*input)
                        .ok_or_else(|| StepError::Other("mount input missing".into()))?;
                    // The source is always mounted read-only from its origin;
                    // a writable bind (`rw`) gets a throw-away overlay, so
                    // writes never reach the context or a snapshot. A
                    // context is seen filtered: a layer of whiteouts hides
                    // what its key does not cover (see `context_view`).
                    let snap = match &v.local {
                        Some(l) => {
                            let layer = |dir: PathBuf| {
                                Arc::new(Layer {
                                    dir,
                                    blobs: Mutex::new(Some(Vec::new())),
                                    key: String::new(),
                                })
                            };
                            let snap = Snapshot::default().with(layer(l.path.clone()));
                            match hidden.get(&mount_index).filter(|h| !h.is_empty()) {
                                Some(h) => {
                                    let g = crate::context_view::hiding_layer(&l.path, h, &tmp)
                                        .map_err(ioe("hiding excluded files of the context"))?;
                                    let snap = snap.with(layer(g.path().to_path_buf()));
                                    guards.push(g);
                                    snap
                                }
                                None => snap,
                            }
                        }
                        None => v.fs.clone().unwrap_or_default(),
                    };
                    let g = if m.readonly {
                        mount_overlay(&snap, None, &tmp).map_err(ioe("mounting bind source"))?
                    } else {
                        let d = self
                            .state
                            .tempdir("bind-")
                            .map_err(ioe("creating bind scratch"))?;
                        let (u, w) = (d.path().join("upper"), d.path().join("work"));
                        fs::create_dir_all(&u)
                            .and_then(|_| fs::create_dir_all(&w))
                            .map_err(ioe("creating bind scratch"))?;
                        let g = mount_overlay(&snap, Some((&u, &w)), &tmp)
                            .map_err(ioe("mounting bind source"))?;
                        scratch.push(d);
                        g
                    };
                    let host = resolve_in_root(g.path(), source, true)
                        .map_err(ioe("resolving mount source"))?;
                    guards.push(g);
                    mounts.push(SMount {
                        target: m.target.clone(),
                        kind: SKind::Bind {
                            source: host,
                            readonly: m.readonly,
                        },
                    });
                }
                MountKind::Cache { id: cid, .. } => {
                    let d = self.state.cache_mount_dir(cid);
                    fs::create_dir_all(&d).map_err(ioe("creating cache mount"))?;
                    mounts.push(SMount {
                        target: m.target.clone(),
                        kind: SKind::Bind {
                            source: d,
                            readonly: m.readonly,
                        },
                    });
                }
                MountKind::Tmpfs { size } => {
                    mounts.push(SMount {
                        target: m.target.clone(),
                        kind: SKind::Tmpfs { size: *size },
                    });
                }
                MountKind::Secret {
                    id: sid,
                    required,
                    mode,
                    env: env_name,
                    ..
                } => {
                    let value = match self.opts.secrets.get(sid) {
                        Some(SecretSource::File(p)) => {
                            Some(fs::read(p).map_err(ioe(format!("reading secret `{sid}`")))?)
                        }
                        Some(SecretSource::Env(v)) => std::env::var(v).ok().map(String::into_bytes),
                        None => None,
                    };
                    let Some(value) = value else {
                        if *required {
                            return Err(input(format!(
                                "secret `{sid}` is required but was not given with --secret"
                            )));
                        }
                        continue;
                    };
                    if let Some(var) = env_name {
                        env.push(format!("{var}={}", String::from_utf8_lossy(&value)));
                    }
                    if !m.target.is_empty() {
                        let d = self
                            .state
                            .tempdir("secret-")
                            .map_err(ioe("creating secret dir"))?;
                        let p = d.path().join("secret");
                        fs::write(&p, &value).map_err(ioe("writing secret"))?;
                        use std::os::unix::fs::PermissionsExt;
                        let _ = fs::set_permissions(&p, fs::Permissions::from_mode(*mode));
                        mounts.push(SMount {
                            target: m.target.clone(),
                            kind: SKind::Bind {
                                source: p,
                                readonly: true,
                            },
                        });
                        scratch.push(d);
                    }
                }
                MountKind::Ssh {
                    id: sid, required, ..
                } => {
                    if *required {
                        return Err(input(format!(
                            "ssh agent `{sid}` is required but ssh forwarding is not supported"
                        )));
                    }
                }
            }
        }
        // Without overlayfs, the step runs in a copied tree whose changes
        // `finish` turns into the upper directory afterwards.
        let copied = if crate::snapshot::snapshotter(&tmp) == crate::snapshot::Snapshotter::Copy {
            Some(
                mount_overlay(base, Some((upper, work)), &tmp)
                    .map_err(ioe("copying the step's filesystem"))?,
            )
        } else {
            None
        };
        let rootfs = match &copied {
            Some(view) => Rootfs::Dir(view.path().to_path_buf()),
            None => Rootfs::Overlay {
                lowers: base.lowers_top_first(),
                upper: upper.to_path_buf(),
                work: work.to_path_buf(),
            },
        };
        let mut spec = RunSpec::new(rootfs, e.args.clone());
        spec.env = env;
        spec.cwd = e.cwd.clone();
        if !e.user.is_empty() {
            spec.user_lookup = Some(e.user.clone());
        }
        spec.network = match e.network {
            NetworkMode::None => Network::None,
            NetworkMode::Default => Network::Private,
            NetworkMode::Host if self.opts.entitlements.network_host => Network::Host,
            NetworkMode::Host => return Err(input(NOT_ALLOWED_NETWORK_HOST)),
        };
        spec.insecure = match e.security {
            SecurityMode::Sandbox => false,
            SecurityMode::Insecure if self.opts.entitlements.security_insecure => true,
            SecurityMode::Insecure => return Err(input(NOT_ALLOWED_INSECURE)),
        };
        spec.limits = self.opts.limits;
        spec.mounts = mounts;
        let tail = Arc::new(Mutex::new(Tail::default()));
        let mut out = LineSink {
            id: id.0,
            progress: self.progress,
            tail: tail.clone(),
            buf: Vec::new(),
        };
        let mut err = LineSink {
            id: id.0,
            progress: self.progress,
            tail: tail.clone(),
            buf: Vec::new(),
        };
        let status = self.executor.run(&spec, &mut out, &mut err, cancel);
        out.flush_rest();
        err.flush_rest();
        drop(guards);
        let status = status.map_err(|e| StepError::Sandbox(Box::new(e)))?;
        if let (Some(view), true) = (copied, status.success()) {
            view.finish().map_err(ioe("recording the step's changes"))?;
        } else if status.success() {
            crate::snapshot::prune_unchanged_dirs(upper, &base.lowers_top_first())
                .map_err(ioe("cleaning the step's changes"))?;
        }
        if !status.success() {
            let tail = tail.lock().unwrap_or_else(|p| p.into_inner()).lines.clone();
            return Err(StepError::Exit {
                command: display_command(&e.args),
                code: status.code(),
                tail,
            });
        }
        Ok(())
    }

    /// Run a file op. When its last action copies a directory, over an
    /// overlay, and nothing before it removed anything, the directory's
    /// contents are written straight into the upper directory after the
    /// overlay is unmounted (no overlayfs lookups or copy-ups per file;
    /// unchanged files of `previous` are hard-linked), and the manifest of
    /// what was written is returned.
    fn file(
        &self,
        f: &engine_ir::FileOp,
        base: &Snapshot,
        inputs: &[Value],
        upper: &Path,
        work: &Path,
        previous: Option<&crate::copy_reuse::Previous>,
    ) -> Result<Option<crate::copy_reuse::Manifest>, StepError> {
        let tmp = self.state.tmp().to_path_buf();
        let merged = mount_overlay(base, Some((upper, work)), &tmp)
            .map_err(ioe("mounting the step's filesystem"))?;
        let root = merged.path().to_path_buf();
        let may_defer = crate::snapshot::snapshotter(&tmp) == crate::snapshot::Snapshotter::Overlay
            && !f.actions.iter().any(|a| matches!(a, FileAction::Rm { .. }));
        let mut deferred = None;
        let mut source_mounts = Vec::new();
        let last = f.actions.len().saturating_sub(1);
        for (i, a) in f.actions.iter().enumerate() {
            match a {
                FileAction::Copy(c) => {
                    let src = inputs
                        .get(c.src_input)
                        .ok_or_else(|| StepError::Other("copy source missing".into()))?;
                    let (src_root, ignore, ownership) = if let Some(l) = &src.local {
                        (l.path.clone(), Some(&l.ignore), Ownership::Root)
                    } else {
                        let guard = mount_overlay(
                            src.fs.as_ref().unwrap_or(&Snapshot::default()),
                            None,
                            &tmp,
                        )
                        .map_err(ioe("mounting copy source"))?;
                        let p = guard.path().to_path_buf();
                        source_mounts.push(guard);
                        (p, None, Ownership::Preserve)
                    };
                    let ownership = match &c.chown {
                        Some(ch) => {
                            let (uid, gid) = resolve_owner(&root, ch)?;
                            Ownership::Set(uid, gid)
                        }
                        None => ownership,
                    };
                    let req = CopyRequest {
                        src_root: &src_root,
                        dest_root: &root,
                        action: c,
                        ignore,
                        ownership,
                        unpack: c.unpack_archives,
                    };
                    if may_defer && i == last {
                        if let Some(d) = copy::copy_or_defer(&req)? {
                            deferred = Some((d, c, src_root, ignore, ownership));
                        }
                    } else {
                        copy::copy(&req)?;
                    }
                }
                FileAction::Mkdir {
                    path, mode, owner, ..
                } => {
                    let (uid, gid) = match owner {
                        Some(o) => resolve_workdir_owner(&root, o)?,
                        None => (0, 0),
                    };
                    mkdir_p(&root, path, *mode, uid, gid)?;
                }
                FileAction::Mkfile {
                    path,
                    data,
                    mode,
                    owner,
                } => {
                    let (parent, _) = path.rsplit_once('/').unwrap_or(("", path));
                    mkdir_p(
                        &root,
                        if parent.is_empty() { "/" } else { parent },
                        0o755,
                        0,
                        0,
                    )?;
                    let p = resolve_in_root(&root, path, false).map_err(ioe("resolving file"))?;
                    if fs::symlink_metadata(&p).is_ok() {
                        let _ = fs::remove_file(&p);
                    }
                    fs::write(&p, data).map_err(ioe(format!("writing {path}")))?;
                    use std::os::unix::fs::PermissionsExt;
                    fs::set_permissions(&p, fs::Permissions::from_mode(*mode))
                        .map_err(ioe("chmod"))?;
                    if let Some(o) = owner {
                        let (uid, gid) = resolve_owner(&root, o)?;
                        std::os::unix::fs::lchown(&p, Some(uid), Some(gid))
                            .map_err(ioe("chown"))?;
                    }
                }
                FileAction::Rm {
                    path,
                    allow_not_found,
                } => {
                    let p = resolve_in_root(&root, path, false).map_err(ioe("resolving path"))?;
                    let r = match fs::symlink_metadata(&p) {
                        Ok(m) if m.is_dir() => fs::remove_dir_all(&p),
                        Ok(_) => fs::remove_file(&p),
                        Err(e) => Err(e),
                    };
                    if let Err(e) = r {
                        if !(*allow_not_found && e.kind() == io::ErrorKind::NotFound) {
                            return Err(StepError::Io {
                                context: format!("removing {path}"),
                                source: e,
                            });
                        }
                    }
                }
            }
        }
        merged
            .finish()
            .map_err(ioe("recording the step's changes"))?;
        let Some((d, c, src_root, ignore, ownership)) = deferred else {
            return Ok(None);
        };
        let req = CopyRequest {
            src_root: &src_root,
            dest_root: upper,
            action: c,
            ignore,
            ownership,
            unpack: c.unpack_archives,
        };
        let manifest = copy::copy_deferred(&req, &d, previous, Some(self.state.store.file_memo()))?;
        drop(source_mounts);
        Ok(Some(manifest))
    }
}

/// An owner for files a step creates (`--chown`, WORKDIR under USER), as
/// BuildKit reads it: a numeric user without group keeps its uid as gid; a
/// name takes uid and primary gid from the image's /etc/passwd; a group is a
/// gid or a name from /etc/group.
fn resolve_owner(root: &Path, owner: &engine_ir::Chown) -> Result<(u32, u32), StepError> {
    if let Ok(uid) = owner.user.parse::<u32>() {
        return match &owner.group {
            None => Ok((uid, uid)),
            Some(g) => match g.parse::<u32>() {
                Ok(gid) => Ok((uid, gid)),
                Err(_) => {
                    let u = engine_sandbox::resolve_user(root, &format!("{uid}:{g}"))
                        .map_err(|e| StepError::Owner(Box::new(e)))?;
                    Ok((uid, u.gid))
                }
            },
        };
    }
    let spec = match &owner.group {
        Some(g) => format!("{}:{g}", owner.user),
        None => owner.user.clone(),
    };
    let u = engine_sandbox::resolve_user(root, &spec).map_err(|e| StepError::Owner(Box::new(e)))?;
    Ok((u.uid, u.gid))
}

/// The owner of the directories WORKDIR creates under `USER`, as BuildKit's
/// file ops read it (`readUser`): `root` or a number is an id (a user id
/// alone is also the group id); a user name takes uid and primary gid from
/// the image's /etc/passwd and, when it is not there (or there is no
/// passwd), is root: 0:0, not an error; a group name not in /etc/group
/// leaves the gid as the user part gave it. So `USER ghost` then `WORKDIR
/// /w` makes a root-owned /w, as in BuildKit (issue 10); the RUN steps
/// that follow fail on the unknown user, there as here.
fn resolve_workdir_owner(root: &Path, owner: &engine_ir::Chown) -> Result<(u32, u32), StepError> {
    let id = |s: &str| {
        if s == "root" {
            Some(0)
        } else {
            s.parse::<u32>().ok()
        }
    };
    let (uid, mut gid) = match id(&owner.user) {
        Some(uid) => (uid, uid),
        None => match engine_sandbox::resolve_user(root, &owner.user) {
            Ok(u) => (u.uid, u.gid),
            Err(engine_sandbox::Error::UserNotFound(_)) => (0, 0),
            Err(e) => return Err(StepError::Owner(Box::new(e))),
        },
    };
    if let Some(g) = &owner.group {
        match id(g) {
            Some(n) => gid = n,
            // uid 0 needs no passwd entry: only the group is looked up
            None => match engine_sandbox::resolve_user(root, &format!("0:{g}")) {
                Ok(u) => gid = u.gid,
                Err(engine_sandbox::Error::GroupNotFound(_)) => {}
                Err(e) => return Err(StepError::Owner(Box::new(e))),
            },
        }
    }
    Ok((uid, gid))
}

fn mkdir_p(root: &Path, path: &str, mode: u32, uid: u32, gid: u32) -> Result<(), StepError> {
    use std::os::unix::fs::PermissionsExt;
    let mut built = String::new();
    for seg in path.split('/').filter(|s| !s.is_empty() && *s != ".") {
        built = format!("{built}/{seg}");
        let p = resolve_in_root(root, &built, true).map_err(ioe("resolving directory"))?;
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => continue,
            Ok(_) => {
                return Err(StepError::Invalid(format!(
                    "cannot create directory {built}: a file is in the way"
                )))
            }
            Err(_) => {
                fs::create_dir(&p).map_err(ioe(format!("creating {built}")))?;
                fs::set_permissions(&p, fs::Permissions::from_mode(mode)).map_err(ioe("chmod"))?;
                std::os::unix::fs::lchown(&p, Some(uid), Some(gid)).map_err(ioe("chown"))?;
            }
        }
    }
    Ok(())
}

fn display_command(args: &[String]) -> String {
    args.join(" ")
}

#[derive(Default)]
struct Tail {
    lines: Vec<String>,
}

const TAIL_LINES: usize = 20;

/// Splits a step's output into lines for progress, keeping the last few for
/// the error report.
struct LineSink<'p> {
    id: u32,
    progress: &'p dyn Progress,
    tail: Arc<Mutex<Tail>>,
    buf: Vec<u8>,
}

impl LineSink<'_> {
    fn line(&self, l: &[u8]) {
        let s = String::from_utf8_lossy(l).into_owned();
        self.progress.output(self.id, &s);
        let mut t = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        t.lines.push(s);
        if t.lines.len() > TAIL_LINES {
            t.lines.remove(0);
        }
    }

    fn flush_rest(&mut self) {
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            self.line(&rest);
        }
    }
}

impl Write for LineSink<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=pos).collect();
            self.line(&line[..line.len() - 1]);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
