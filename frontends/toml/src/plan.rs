//! Lowering a spec onto one graph.
//!
//! Every stage and image is lowered on its own by the Dockerfile frontend:
//! an inline one from the Dockerfile text [`crate::gen`] writes for it, a
//! Dockerfile target from its Dockerfile. References to other stages of the
//! spec (`FROM common`, `COPY --from=common`, `contexts = { x =
//! "target:common" }`) go through named contexts that name placeholder
//! images; their configs come from a resolver that knows the stages already
//! built. The resulting graph is then merged into the one builder with
//! those placeholders replaced by the real nodes (filesystem, or config for
//! a config op), which gives exactly the nodes and digests a multi-stage
//! Dockerfile gives, and merges equal nodes across targets: a stage that
//! five images use is one node.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use engine_dockerfile::lower::{self as df, NamedContext, PlanOptions};
use engine_ir::config::{ConfigChange, ImageConfig, DEFAULT_PATH};
use engine_ir::graph::{GraphBuilder, NodeId, NodeMeta, SourceLocation, Target};
use engine_ir::op::{ConfigOp, ImageOp, Op, Source};
use engine_ir::{Graph, ImageResolver, Platform, ResolvedImage};

use crate::error::{SourceMap, TomlError};
use crate::gen::{self, Generated};
use crate::spec::{
    self, Body, ContextDir, CtxKind, DockerfileTarget, Inline, Kind, NamedCtx, Spec, Unit,
};
use crate::tree::Span;
use crate::{PlatformImage, TargetInfo, TomlPlan, TomlPlanOptions};

type Result<T, E = TomlError> = std::result::Result<T, E>;

/// Registry host of the placeholder images that stand for spec stages
/// while a stage is lowered. `.invalid` can never resolve (RFC 2606).
const PLACEHOLDER_HOST: &str = "engine-toml.invalid";

const UNCONSUMED_PREFIX: &str = "build argument `";
const UNCONSUMED_SUFFIX: &str = "` was not consumed by any ARG";

/// What a lowered stage or image offers to the ones that use it.
#[derive(Debug, Clone)]
struct Built {
    image: NodeId,
    fs: NodeId,
    config_node: NodeId,
    config: ImageConfig,
}

type SeenKey = (bool, String, Platform);

/// The caller's resolver, answering for placeholders and remembering what
/// it said (the configs of base images are needed again to compute the
/// config a stage ends with).
struct Recorder<'r> {
    inner: &'r dyn ImageResolver,
    placeholders: BTreeMap<String, ImageConfig>,
    seen: &'r Mutex<BTreeMap<SeenKey, Option<ResolvedImage>>>,
}

impl Recorder<'_> {
    fn lookup(
        &self,
        layout: bool,
        reference: &str,
        platform: &Platform,
    ) -> Result<Option<ResolvedImage>, String> {
        let key = (layout, reference.to_string(), platform.clone());
        if let Some(hit) = self.seen.lock().map_err(|e| e.to_string())?.get(&key) {
            return Ok(hit.clone());
        }
        let got = if layout {
            self.inner.resolve_layout(reference, platform)?
        } else {
            self.inner.resolve_image(reference, platform)?
        };
        self.seen
            .lock()
            .map_err(|e| e.to_string())?
            .insert(key, got.clone());
        Ok(got)
    }
}

impl ImageResolver for Recorder<'_> {
    fn resolve_image(
        &self,
        reference: &str,
        platform: &Platform,
    ) -> Result<Option<ResolvedImage>, String> {
        if let Some(config) = self.placeholders.get(reference) {
            return Ok(Some(ResolvedImage {
                digest: None,
                config: config.clone(),
            }));
        }
        self.lookup(false, reference, platform)
    }

    fn resolve_layout(
        &self,
        context: &str,
        platform: &Platform,
    ) -> Result<Option<ResolvedImage>, String> {
        self.lookup(true, context, platform)
    }
}

/// How a node of a lowered graph lands in the builder.
#[derive(Clone, Copy)]
enum Landed {
    Node(NodeId),
    /// A placeholder image: the stage it stands for.
    Stage(NodeId, NodeId),
}

struct Planner<'a, 'o> {
    spec: &'a Spec,
    map: &'a SourceMap,
    opts: &'a TomlPlanOptions<'o>,
    b: GraphBuilder,
    built: BTreeMap<(String, Platform), Built>,
    in_progress: BTreeSet<(String, Platform)>,
    seen: Mutex<BTreeMap<SeenKey, Option<ResolvedImage>>>,
    configs: HashMap<NodeId, ImageConfig>,
    /// Names of the local sources the spec defines (they are directories
    /// relative to the spec's directory).
    spec_locals: BTreeSet<String>,
    warnings: Vec<String>,
    /// Per command-line build argument: how many lowerings did not use it,
    /// out of `lowerings`.
    unconsumed: BTreeMap<String, usize>,
    lowerings: usize,
}

pub fn plan(spec: &Spec, map: &SourceMap, opts: &TomlPlanOptions<'_>) -> Result<TomlPlan> {
    let selected = spec::select(spec, map, &opts.targets)?;
    let mut p = Planner {
        spec,
        map,
        opts,
        b: GraphBuilder::new(),
        built: BTreeMap::new(),
        in_progress: BTreeSet::new(),
        seen: Mutex::new(BTreeMap::new()),
        configs: HashMap::new(),
        spec_locals: BTreeSet::new(),
        warnings: Vec::new(),
        unconsumed: BTreeMap::new(),
        lowerings: 0,
    };
    let mut ir_targets = Vec::new();
    let mut infos = Vec::new();
    for name in &selected {
        let u = spec.unit(name).expect("selected units exist");
        let platforms: Vec<Platform> = if u.settings.platforms.is_empty() {
            vec![opts.platform.clone()]
        } else {
            u.settings
                .platforms
                .iter()
                .map(|p| p.value.clone())
                .collect()
        };
        let mut images = Vec::new();
        for platform in &platforms {
            let built = p.build(name, platform)?;
            let target = if platforms.len() == 1 {
                name.clone()
            } else {
                format!("{name}@{platform}")
            };
            ir_targets.push(Target {
                name: target.clone(),
                node: built.image,
            });
            images.push(PlatformImage {
                platform: platform.clone(),
                target,
            });
        }
        let (dockerfile, args) = match &u.body {
            Body::Dockerfile(d) => (Some(d.dockerfile.value.clone()), p.build_args(&d.args)),
            Body::Inline(_) => (None, BTreeMap::new()),
        };
        infos.push(TargetInfo {
            name: name.clone(),
            dockerfile,
            args,
            kind: match u.kind {
                Kind::Stage => "stage".into(),
                Kind::Image => "image".into(),
            },
            description: u.description.clone(),
            tags: u.settings.tags.clone(),
            platforms,
            images,
            outputs: u.settings.outputs.clone(),
            cache_to: u.settings.cache_to.clone(),
            cache_from: u.settings.cache_from.clone(),
            context_dirs: BTreeMap::new(),
        });
    }
    // A --set/--build-arg value nothing reads is most likely a typo: an
    // error (bake refuses unknown overrides too), with the closest name.
    for (arg, missed) in &p.unconsumed {
        if *missed == p.lowerings {
            let hint = crate::error::did_you_mean(arg, spec.vars.values.keys().map(String::as_str))
                .map(|v| format!("did you mean `{v}`?"))
                .unwrap_or_else(|| {
                    "declare it in [vars], or pass it only to targets with an ARG of that name"
                        .into()
                });
            return Err(TomlError::new(
                map.file(),
                format!(
                    "variable `{arg}` is not declared in [vars] and no ARG consumed it as a build argument"
                ),
            )
            .with_hint(hint));
        }
    }
    let graph = p.b.finish(ir_targets);
    for info in &mut infos {
        for img in &info.images {
            let t = graph.target(&img.target).expect("target was added");
            for name in local_sources(&graph, t.node) {
                if p.spec_locals.contains(&name) {
                    info.context_dirs.insert(name.clone(), name);
                }
            }
        }
    }
    Ok(TomlPlan {
        graph,
        targets: infos,
        limits: spec.limits,
        warnings: p.warnings,
    })
}

/// Names of the local sources a node reaches.
fn local_sources(g: &Graph, from: NodeId) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut seen = BTreeSet::new();
    let mut stack = vec![from];
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        let n = g.node(id);
        if let Op::Source(Source::Local { name, .. }) = &n.op {
            out.insert(name.clone());
        }
        stack.extend(n.inputs.iter().copied());
    }
    out
}

/// Step names say which target they belong to, as bake shows them: a
/// one-stage lowering names steps `[2/3] RUN …` (BuildKit leaves the stage
/// out of single-stage builds), which becomes `[api 2/3] RUN …`; a
/// Dockerfile target's `[build 2/3] RUN …` becomes `[reports build 2/3] RUN …`.
fn step_name(name: &str, unit: &str, dockerfile: bool) -> String {
    let Some(rest) = name.strip_prefix('[') else {
        return name.to_string();
    };
    if rest.starts_with("internal]")
        || rest.starts_with(&format!("{unit}]"))
        || rest.starts_with(&format!("{unit} "))
    {
        return name.to_string();
    }
    let numbered = rest.starts_with(|c: char| c.is_ascii_digit() || c == ' ');
    if numbered || dockerfile {
        format!("[{unit} {}", rest.trim_start())
    } else {
        name.to_string()
    }
}

fn placeholder(index: usize) -> String {
    format!("{PLACEHOLDER_HOST}/unit{index}:latest")
}

impl Planner<'_, '_> {
    fn unit_index(&self, name: &str) -> usize {
        self.spec
            .units
            .iter()
            .position(|u| u.name == name)
            .expect("known unit")
    }

    fn build(&mut self, name: &str, platform: &Platform) -> Result<Built> {
        let key = (name.to_string(), platform.clone());
        if let Some(b) = self.built.get(&key) {
            return Ok(b.clone());
        }
        let u = self.spec.unit(name).expect("references were checked");
        if !self.in_progress.insert(key.clone()) {
            return Err(self
                .map
                .error(
                    &u.span,
                    format!("cycle between targets: `{name}` needs itself"),
                )
                .with_hint("stages and images cannot depend on each other in a loop"));
        }
        let built = match &u.body {
            Body::Inline(i) => self.build_inline(u, i, platform)?,
            Body::Dockerfile(d) => self.build_dockerfile(u, d, platform)?,
        };
        self.in_progress.remove(&key);
        self.built.insert(key, built.clone());
        Ok(built)
    }

    /// Named contexts for a lowering: the command line's, then the spec's
    /// stages the unit names directly, then its own `contexts`. Also
    /// returns the placeholders' configs and stages, and the renaming of
    /// directory contexts to their paths.
    #[allow(clippy::type_complexity)]
    fn contexts_for(
        &mut self,
        u: &Unit,
        contexts: &[NamedCtx],
        platform: &Platform,
    ) -> Result<(
        BTreeMap<String, NamedContext>,
        BTreeMap<String, ImageConfig>,
        BTreeMap<String, Built>,
        BTreeMap<String, String>,
    )> {
        let mut named = self.opts.named_contexts.clone();
        let mut configs = BTreeMap::new();
        let mut stages = BTreeMap::new();
        let mut renames = BTreeMap::new();
        let spec = self.spec;
        for (dep, _) in spec::unit_deps(spec, u) {
            let built = self.build(&dep, platform)?;
            let ph = placeholder(self.unit_index(&dep));
            configs.insert(ph.clone(), built.config.clone());
            stages.insert(ph.clone(), built);
            // An inline stage names other stages directly; a Dockerfile
            // only sees those its `contexts` map.
            if let Body::Inline(_) = u.body {
                named.insert(dep.clone(), NamedContext::Image(ph));
            }
        }
        for c in contexts {
            let ctx = match &c.kind {
                CtxKind::Dir(dir) => {
                    self.check_context_dir(&format!("context `{}` =", c.name), dir, &c.span)?;
                    renames.insert(c.name.clone(), dir.clone());
                    self.spec_locals.insert(dir.clone());
                    NamedContext::Local
                }
                CtxKind::Unit(n) => NamedContext::Image(placeholder(self.unit_index(n))),
                CtxKind::Image(r) => NamedContext::Image(r.clone()),
            };
            named.insert(c.name.clone(), ctx);
        }
        Ok((named, configs, stages, renames))
    }

    /// Fails at `span` when the directory `dir` a context names is not one
    /// (see [`TomlPlanOptions::check_dir`]): better now, with the line that
    /// names it, than as `"/.": not found` when a COPY reads it.
    fn check_context_dir(&self, what: &str, dir: &str, span: &Span) -> Result<()> {
        let Some(check) = self.opts.check_dir else {
            return Ok(());
        };
        check(dir).map_err(|reason| {
            self.map
                .error(span, format!("{what} `{dir}`: {reason}"))
                .with_hint(
                "a context is a directory relative to the spec's directory, e.g. `services/api`",
            )
        })
    }

    /// `.dockerignore` text for a context: the first of `candidates` that
    /// exists, then the `ignore` patterns.
    fn ignore_text(
        &self,
        ctx: &ContextDir,
        candidates: &[String],
        span: &Span,
    ) -> Result<Option<String>> {
        let mut text = None;
        for c in candidates {
            match (self.opts.read_file)(c) {
                Ok(t) => {
                    text = Some(t);
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(self.map.error(span, format!("cannot read `{c}`: {e}")));
                }
            }
        }
        if ctx.ignore.is_empty() {
            return Ok(text);
        }
        let mut t = text.unwrap_or_default();
        if !t.is_empty() && !t.ends_with('\n') {
            t.push('\n');
        }
        for p in &ctx.ignore {
            t.push_str(p);
            t.push('\n');
        }
        Ok(Some(t))
    }

    fn build_args(&self, base: &[(String, String)]) -> BTreeMap<String, String> {
        let mut args: BTreeMap<String, String> = base.iter().cloned().collect();
        for (k, v) in &self.spec.vars.extra {
            args.insert(k.clone(), v.clone());
        }
        args
    }

    /// Keep the lowering's warnings, except "build argument not consumed"
    /// for command-line variables (counted instead: one stage not using a
    /// variable is normal).
    fn take_warnings(&mut self, unit: &str, warnings: Vec<String>, own_args: &BTreeSet<String>) {
        self.lowerings += 1;
        let mut missed = BTreeSet::new();
        for w in warnings {
            if let Some(arg) = w
                .strip_prefix(UNCONSUMED_PREFIX)
                .and_then(|r| r.strip_suffix(UNCONSUMED_SUFFIX))
            {
                if self.spec.vars.extra.contains_key(arg) && !own_args.contains(arg) {
                    missed.insert(arg.to_string());
                    continue;
                }
            }
            self.warnings.push(format!("{unit}: {w}"));
        }
        for k in self.spec.vars.extra.keys() {
            if missed.contains(k) {
                *self.unconsumed.entry(k.clone()).or_default() += 1;
            } else {
                self.unconsumed.entry(k.clone()).or_default();
            }
        }
    }

    fn build_inline(&mut self, u: &Unit, i: &Inline, platform: &Platform) -> Result<Built> {
        let generated = gen::dockerfile(&u.name, i, self.map)?;
        self.check_context_dir("context", &i.context.dir, &i.context.span)?;
        let (named, configs, stages, renames) = self.contexts_for(u, &i.contexts, platform)?;
        let ignore_file = spec::join_dir(&i.context.dir, ".dockerignore");
        let dockerignore = self.ignore_text(&i.context, &[ignore_file], &i.context.span)?;
        self.spec_locals.insert(i.context.dir.clone());
        let recorder = Recorder {
            inner: self.opts.resolver,
            placeholders: configs,
            seen: &self.seen,
        };
        let build_args = self.build_args(&[]);
        let popts = PlanOptions {
            filename: self.map.file().to_string(),
            dockerignore: dockerignore.as_deref(),
            target: None,
            build_args,
            target_platform: platform.clone(),
            build_platform: self.opts.build_platform.clone(),
            named_contexts: named,
            resolver: &recorder,
            context_name: i.context.dir.clone(),
        };
        let planned =
            df::plan(&generated.text, &popts).map_err(|e| self.inline_error(u, &generated, e))?;
        drop(popts);
        drop(recorder);
        self.take_warnings(&u.name, planned.warnings, &BTreeSet::new());
        let image = self.import(&u.name, &planned.graph, &stages, &renames, Some(&generated))?;
        self.finish_unit(image)
    }

    fn inline_error(&self, u: &Unit, g: &Generated, e: engine_dockerfile::Error) -> TomlError {
        let span = e
            .location
            .and_then(|l| g.span_of_line(l.line).cloned())
            .unwrap_or_else(|| u.span.clone());
        self.map.error(&span, e.message).maybe_hint(e.hint)
    }

    fn build_dockerfile(
        &mut self,
        u: &Unit,
        d: &DockerfileTarget,
        platform: &Platform,
    ) -> Result<Built> {
        let path = &d.dockerfile.value;
        let text = (self.opts.read_file)(path).map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::NotFound {
                "the path is relative to the spec's directory".to_string()
            } else {
                "check the file's permissions".to_string()
            };
            self.map
                .error(
                    &d.dockerfile.span,
                    format!("cannot read Dockerfile `{path}`: {e}"),
                )
                .with_hint(hint)
        })?;
        self.check_context_dir("context", &d.context.dir, &d.context.span)?;
        let (named, configs, stages, renames) = self.contexts_for(u, &d.contexts, platform)?;
        let candidates = [
            format!("{path}.dockerignore"),
            spec::join_dir(&d.context.dir, ".dockerignore"),
        ];
        let dockerignore = self.ignore_text(&d.context, &candidates, &d.context.span)?;
        self.spec_locals.insert(d.context.dir.clone());
        let recorder = Recorder {
            inner: self.opts.resolver,
            placeholders: configs,
            seen: &self.seen,
        };
        let own_args: BTreeSet<String> = d.args.iter().map(|(k, _)| k.clone()).collect();
        let popts = PlanOptions {
            filename: path.clone(),
            dockerignore: dockerignore.as_deref(),
            target: d.target.as_ref().map(|t| t.value.clone()),
            build_args: self.build_args(&d.args),
            target_platform: platform.clone(),
            build_platform: self.opts.build_platform.clone(),
            named_contexts: named,
            resolver: &recorder,
            context_name: d.context.dir.clone(),
        };
        let planned = df::plan(&text, &popts).map_err(|e| match e.location {
            Some(l) => TomlError {
                message: e.message,
                file: path.clone(),
                location: Some(crate::error::Location {
                    line: l.line,
                    col: l.col,
                    len: l.len,
                }),
                hint: e.hint,
            },
            None => {
                let span = match (&d.target, e.message.contains("target stage")) {
                    (Some(t), true) => t.span.clone(),
                    _ => d.dockerfile.span.clone(),
                };
                self.map
                    .error(&span, format!("{}: {}", path, e.message))
                    .maybe_hint(e.hint)
            }
        })?;
        drop(popts);
        drop(recorder);
        self.take_warnings(&u.name, planned.warnings, &own_args);
        let mut image = self.import(&u.name, &planned.graph, &stages, &renames, None)?;
        if !d.labels.is_empty() {
            // Labels on top of the Dockerfile's result, as `--label` does.
            let fs = self.b.node(image).inputs[0];
            let config = self.b.node(image).inputs[1];
            let Op::Image(img) = &self.b.node(image).op else {
                unreachable!("a target is an image node")
            };
            let img = img.clone();
            let changes = d
                .labels
                .iter()
                .map(|(k, v)| ConfigChange::Label {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect();
            let location = d.labels_span.as_ref().map(|s| self.source_location(s));
            let config = self.add(
                Op::Config(ConfigOp { changes }),
                vec![config],
                NodeMeta {
                    name: format!("[{}] labels", u.name),
                    location: location.clone(),
                },
            )?;
            image = self.add(
                Op::Image(ImageOp {
                    platform: img.platform,
                }),
                vec![fs, config],
                NodeMeta {
                    name: format!("[{}] image", u.name),
                    location,
                },
            )?;
        }
        self.finish_unit(image)
    }

    fn add(&mut self, op: Op, inputs: Vec<NodeId>, meta: NodeMeta) -> Result<NodeId> {
        self.b
            .add(op, inputs, meta)
            .map_err(|e| self.map.unlocated(e.to_string()))
    }

    fn source_location(&self, span: &Span) -> SourceLocation {
        let l = self.map.location(span);
        SourceLocation {
            file: self.map.file().to_string(),
            line: l.line,
            col: l.col,
        }
    }

    fn finish_unit(&mut self, image: NodeId) -> Result<Built> {
        let node = self.b.node(image);
        let (fs, config_node) = (node.inputs[0], node.inputs[1]);
        let config = self.config_of(config_node);
        Ok(Built {
            image,
            fs,
            config_node,
            config,
        })
    }

    /// Merge a lowered graph: placeholders become the stages they stand
    /// for, directory contexts are named by their paths, and (for inline
    /// stages) locations point into the spec. Returns the target's node.
    fn import(
        &mut self,
        unit: &str,
        g: &Graph,
        stages: &BTreeMap<String, Built>,
        renames: &BTreeMap<String, String>,
        generated: Option<&Generated>,
    ) -> Result<NodeId> {
        let mut landed: Vec<Landed> = Vec::with_capacity(g.len());
        for (_, node) in g.nodes() {
            if let Op::Source(Source::Image { reference, .. }) = &node.op {
                if let Some(b) = stages.get(reference) {
                    landed.push(Landed::Stage(b.fs, b.config_node));
                    continue;
                }
                if reference.starts_with(PLACEHOLDER_HOST) {
                    // Cannot happen: every placeholder is given its stage.
                    return Err(self
                        .map
                        .unlocated(format!("internal: unresolved placeholder `{reference}`")));
                }
            }
            let is_config = matches!(node.op, Op::Config(_));
            let inputs = node
                .inputs
                .iter()
                .map(|i| match landed[i.0 as usize] {
                    Landed::Node(n) => n,
                    Landed::Stage(fs, config) => {
                        if is_config {
                            config
                        } else {
                            fs
                        }
                    }
                })
                .collect();
            let op = match &node.op {
                Op::Source(Source::Local { name, excludes }) if renames.contains_key(name) => {
                    Op::Source(Source::Local {
                        name: renames[name].clone(),
                        excludes: excludes.clone(),
                    })
                }
                other => other.clone(),
            };
            let mut meta = node.meta.clone();
            if let (Some(gen), Some(loc)) = (generated, &meta.location) {
                meta.location = gen.span_of_line(loc.line).map(|s| self.source_location(s));
            }
            meta.name = step_name(&meta.name, unit, generated.is_none());
            let id = self.add(op, inputs, meta)?;
            landed.push(Landed::Node(id));
        }
        let target = g
            .targets()
            .first()
            .ok_or_else(|| self.map.unlocated("internal: lowering produced no target"))?;
        match landed[target.node.0 as usize] {
            Landed::Node(n) => Ok(n),
            Landed::Stage(..) => Err(self.map.unlocated("internal: target is a placeholder")),
        }
    }

    /// The image config a config node ends with: its base's, with its
    /// changes applied (as the solver will do).
    fn config_of(&mut self, id: NodeId) -> ImageConfig {
        if let Some(c) = self.configs.get(&id) {
            return c.clone();
        }
        let node = self.b.node(id).clone();
        let config = match &node.op {
            Op::Config(c) => {
                let mut base = match node.inputs.first() {
                    Some(i) => self.config_of(*i),
                    None => ImageConfig::default(),
                };
                for ch in &c.changes {
                    base.apply(ch);
                }
                base
            }
            Op::Source(Source::Scratch) => ImageConfig::scratch(),
            Op::Source(Source::Image {
                reference,
                platform,
                ..
            }) => self.base_config(false, reference, platform),
            Op::Source(Source::Layout {
                context, platform, ..
            }) => self.base_config(true, context, platform),
            _ => ImageConfig::default(),
        };
        self.configs.insert(id, config.clone());
        config
    }

    fn base_config(&self, layout: bool, reference: &str, platform: &Platform) -> ImageConfig {
        let key = (layout, reference.to_string(), platform.clone());
        let resolved = self
            .seen
            .lock()
            .ok()
            .and_then(|s| s.get(&key).cloned())
            .flatten();
        let mut config = resolved.map(|r| r.config).unwrap_or_default();
        if config.get_env("PATH").is_none() {
            config.set_env("PATH", DEFAULT_PATH);
        }
        config
    }
}
