//! Dispatching each stage's instructions onto the graph builder.

use std::collections::{BTreeMap, BTreeSet};

use engine_ir::config::{ConfigChange, Healthcheck, HistoryEntry, ImageConfig};
use engine_ir::graph::{GraphBuilder, NodeId, NodeMeta, SourceLocation, Target};
use engine_ir::op::{
    CacheSharing, Chown, ConfigOp, CopyAction, Exec, FileAction, FileOp, ImageOp, Mount, MountKind,
    NetworkMode, Op, SecurityMode, Source,
};
use engine_ir::Platform;

use super::args::{platform_args, StageArgs, PROXY_ARGS};
use super::stages::{self, Stage};
use super::{NamedContext, PlanOptions, Planned};
use crate::error::{Error, Result};
use crate::instructions::{self, Command, HealthcheckSpec, Instruction, Located};
use crate::parser::Ast;
use crate::shell::Lexer;

use engine_ir::config::DEFAULT_PATH;

/// What a finished stage offers to later stages.
#[derive(Clone)]
struct StageResult {
    fs: NodeId,
    config_node: NodeId,
    config: ImageConfig,
    platform: Platform,
}

struct Lowering<'a, 'o> {
    opts: &'a PlanOptions<'o>,
    b: GraphBuilder,
    lexer: Lexer,
    stages: Vec<Stage>,
    results: Vec<Option<StageResult>>,
    /// Global ARG values (after build-arg overrides), usable in FROM.
    meta_args: BTreeMap<String, String>,
    /// Build args that some ARG consumed, to warn about the others.
    used_build_args: BTreeSet<String>,
    excludes: Vec<String>,
    warnings: Vec<String>,
}

pub fn lower(
    ast: &Ast,
    instructions: Vec<Located<Instruction>>,
    opts: &PlanOptions<'_>,
) -> Result<Planned> {
    let split = stages::split(instructions)?;
    let excludes = match opts.dockerignore {
        Some(text) => engine_ir::ignore::IgnorePatterns::parse(text)
            .map_err(|e| Error::new(format!("invalid .dockerignore: {e}")))?
            .patterns()
            .to_vec(),
        None => Vec::new(),
    };
    let mut l = Lowering {
        opts,
        b: GraphBuilder::new(),
        lexer: Lexer::new(ast.escape),
        results: vec![None; split.stages.len()],
        stages: split.stages,
        meta_args: BTreeMap::new(),
        used_build_args: BTreeSet::new(),
        excludes,
        warnings: Vec::new(),
    };
    l.global_args(&split.global_args)?;

    let target = match &opts.target {
        Some(t) => {
            let lower = t.to_ascii_lowercase();
            l.stages
                .iter()
                .position(|s| s.name.as_deref() == Some(lower.as_str()))
                .ok_or_else(|| {
                    let names: Vec<&str> =
                        l.stages.iter().filter_map(|s| s.name.as_deref()).collect();
                    let hint = if names.is_empty() {
                        "this Dockerfile has no named stages".to_string()
                    } else {
                        format!("stages: {}", names.join(", "))
                    };
                    Error::new(format!("target stage `{t}` could not be found")).with_hint(hint)
                })?
        }
        None => l.stages.len() - 1,
    };
    let result = l.stage(target)?;
    let image = l.b.add(
        Op::Image(ImageOp {
            platform: result.platform.clone(),
        }),
        vec![result.fs, result.config_node],
        NodeMeta {
            name: format!("[{}] image", l.stages[target].display),
            location: None,
        },
    );
    let image = image.map_err(|e| Error::new(e.to_string()))?;
    for k in opts.build_args.keys() {
        if !l.used_build_args.contains(k) && !PROXY_ARGS.contains(&k.as_str()) {
            l.warnings
                .push(format!("build argument `{k}` was not consumed by any ARG"));
        }
    }
    let name = l.stages[target].display.clone();
    let graph = l.b.finish(vec![Target { name, node: image }]);
    Ok(Planned {
        graph,
        warnings: l.warnings,
    })
}

impl Lowering<'_, '_> {
    fn global_args(&mut self, args: &[Located<Instruction>]) -> Result<()> {
        let auto = platform_args(&self.opts.target_platform, &self.opts.build_platform);
        self.meta_args = auto;
        for ins in args {
            let Instruction::Arg(pairs) = &ins.inner else {
                continue;
            };
            for (name, default) in pairs {
                let value = match self.opts.build_args.get(name) {
                    Some(v) => {
                        self.used_build_args.insert(name.clone());
                        Some(v.clone())
                    }
                    None => match default {
                        Some(d) => Some(self.expand_word(d, &self.meta_args.clone(), ins)?),
                        None => None,
                    },
                };
                match value {
                    Some(v) => {
                        self.meta_args.insert(name.clone(), v);
                    }
                    None => {
                        self.meta_args.remove(name);
                    }
                }
            }
        }
        Ok(())
    }

    fn expand_word(
        &self,
        word: &str,
        env: &BTreeMap<String, String>,
        at: &Located<Instruction>,
    ) -> Result<String> {
        self.lexer
            .process_word(word, env)
            .map_err(|e| e.or_at(at.location()))
    }

    fn add(
        &mut self,
        op: Op,
        inputs: Vec<NodeId>,
        name: String,
        at: Option<&Located<Instruction>>,
    ) -> Result<NodeId> {
        let location = at.map(|i| SourceLocation {
            file: self.opts.filename.clone(),
            line: i.line,
            col: i.col,
        });
        self.b
            .add(op, inputs, NodeMeta { name, location })
            .map_err(|e| Error::new(e.to_string()))
    }

    /// Give a shared source node its step name unless a stage named it first.
    fn rename_if_fresh(&mut self, id: NodeId, name: String) {
        let meta = self.b.meta_mut(id);
        if meta.name.starts_with("[internal]") {
            meta.name = name;
        }
    }

    fn context_node(&mut self, name: &str) -> Result<NodeId> {
        let excludes = if name == self.opts.context_name {
            self.excludes.clone()
        } else {
            Vec::new()
        };
        self.add(
            Op::Source(Source::Local {
                name: name.to_string(),
                excludes,
            }),
            vec![],
            format!("[internal] load build context {name}"),
            None,
        )
    }

    /// The result of stage `i`, lowering it (and what it needs) on first use.
    fn stage(&mut self, i: usize) -> Result<StageResult> {
        if let Some(r) = &self.results[i] {
            return Ok(r.clone());
        }
        let r = self.lower_stage(i)?;
        self.results[i] = Some(r.clone());
        Ok(r)
    }

    /// A base for FROM or a source for `--from`: image, layout or scratch.
    fn image_source(
        &mut self,
        reference: &str,
        platform: &Platform,
        at: &Located<Instruction>,
    ) -> Result<(NodeId, ImageConfig)> {
        if reference == "scratch" {
            let node = self.add(
                Op::Source(Source::Scratch),
                vec![],
                "[internal] scratch".into(),
                None,
            )?;
            return Ok((node, ImageConfig::scratch()));
        }
        let named = self.opts.named_contexts.get(reference).cloned();
        let (op, resolved, name) =
            match named {
                Some(NamedContext::Layout) => {
                    let resolved = self
                        .opts
                        .resolver
                        .resolve_layout(reference, platform)
                        .map_err(|e| {
                            Error::at(
                                format!("cannot resolve build context `{reference}`: {e}"),
                                at.location(),
                            )
                        })?;
                    let digest = resolved.as_ref().and_then(|r| r.digest.clone());
                    (
                        Source::Layout {
                            context: reference.to_string(),
                            digest,
                            platform: platform.clone(),
                        },
                        resolved,
                        format!("[internal] load metadata for oci-layout context {reference}"),
                    )
                }
                Some(NamedContext::Local) => return Err(Error::at(
                    format!("build context `{reference}` is a directory, not an image"),
                    at.location(),
                )
                .with_hint(
                    "use it with COPY --from or RUN --mount=from, or pass an oci-layout:// context",
                )),
                Some(NamedContext::Image(r)) => self.registry_source(&r, platform, at)?,
                None => self.registry_source(reference, platform, at)?,
            };
        let node = self.add(Op::Source(op), vec![], name, Some(at))?;
        // A config without PATH gets BuildKit's where a stage starts from it
        // (ConfigChange::DefaultPath), so that the image has it too.
        let config = resolved.map(|r| r.config).unwrap_or_default();
        Ok((node, config))
    }

    fn registry_source(
        &self,
        reference: &str,
        platform: &Platform,
        at: &Located<Instruction>,
    ) -> Result<(Source, Option<engine_ir::ResolvedImage>, String)> {
        // Docker's normalisation (`alpine` → `docker.io/library/alpine:latest`),
        // as BuildKit applies it to a FROM.
        let normalized = engine_oci::Reference::parse(reference)
            .map_err(|e| Error::at(e.to_string(), at.location()))?
            .to_string();
        let resolved = self
            .opts
            .resolver
            .resolve_image(&normalized, platform)
            .map_err(|e| {
                Error::at(
                    format!("cannot resolve image `{reference}`: {e}"),
                    at.location(),
                )
            })?;
        let digest = resolved.as_ref().and_then(|r| r.digest.clone());
        let name = format!("[internal] load metadata for {normalized}");
        Ok((
            Source::Image {
                reference: normalized,
                digest,
                platform: platform.clone(),
            },
            resolved,
            name,
        ))
    }

    fn lower_stage(&mut self, index: usize) -> Result<StageResult> {
        let from = self.stages[index].from.clone();
        let body = self.stages[index].body.clone();
        let display = self.stages[index].display.clone();
        let Instruction::From {
            image, platform, ..
        } = &from.inner
        else {
            return Err(Error::at("internal: stage without FROM", from.location()));
        };
        let meta = self.meta_args.clone();
        let (image_name, matched, _) = self
            .lexer
            .process_word_with_matches(image, &meta)
            .map_err(|e| e.or_at(from.location()))?;
        for m in &matched {
            if self.opts.build_args.contains_key(m) {
                self.used_build_args.insert(m.clone());
            }
        }
        if image_name.is_empty() {
            return Err(
                Error::at("base name (FROM) should not be blank", from.location()).with_hint(
                    format!("`{image}` expanded to nothing: is a global ARG missing?"),
                ),
            );
        }
        let stage_platform = match platform {
            Some(p) => {
                let p = self.expand_word(p, &meta, &from)?;
                Platform::parse(&p).map_err(|e| Error::at(e.to_string(), from.location()))?
            }
            None => self.opts.target_platform.clone(),
        };
        // BuildKit numbers only steps that make a vertex: FROM an image,
        // RUN, COPY, ADD and WORKDIR.
        let base_stage = stages::find(&self.stages, &image_name, index, from.location())?;
        let from_image = base_stage.is_none() && image_name != "scratch";
        let mut total =
            usize::from(from_image) + body.iter().filter(|i| makes_vertex(&i.inner)).count();
        let (fs, config_base, mut config) = match base_stage {
            Some(dep) => {
                let r = self.stage(dep)?;
                (r.fs, r.config_node, r.config)
            }
            None => {
                let (node, config) = self.image_source(&image_name, &stage_platform, &from)?;
                (node, node, config)
            }
        };
        let triggers = std::mem::take(&mut config.on_build);
        let mut trigger_instructions = Vec::new();
        for t in &triggers {
            let ast = crate::parser::parse(t).map_err(|e| {
                Error::at(
                    format!("invalid ONBUILD trigger `{t}` in base image: {}", e.message),
                    from.location(),
                )
            })?;
            // Triggers are single instructions, not Dockerfiles: parse each
            // node on its own (a FROM-less list is fine here).
            for node in &ast.children {
                let inner = crate::instructions::parse_instruction(node)
                    .map_err(|e| e.or_at(from.location()))?;
                if matches!(inner, Instruction::From { .. } | Instruction::Onbuild(_)) {
                    return Err(Error::at(
                        format!(
                            "invalid ONBUILD trigger `{t}`: {} is not allowed",
                            inner.name()
                        ),
                        from.location(),
                    ));
                }
                total += usize::from(makes_vertex(&inner));
                trigger_instructions.push(Located {
                    inner,
                    line: from.line,
                    col: from.col,
                    len: from.len,
                    end_line: from.end_line,
                    original: node.original.clone(),
                });
            }
        }
        // Single-stage builds show no stage name in step names.
        let step_prefix = if self.stages.len() == 1 {
            String::new()
        } else {
            display.clone()
        };
        if from_image {
            let name = step_name(&step_prefix, 1, total, &format!("FROM {image_name}"));
            self.rename_if_fresh(fs, name);
        }
        let mut st = StageState {
            arg_over_env: BTreeMap::new(),
            display: step_prefix,
            index,
            total,
            step: usize::from(from_image),
            fs,
            platform: stage_platform,
            args: StageArgs::default(),
            changes: Vec::new(),
            cmd_set: false,
            shell: config
                .shell
                .clone()
                .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]),
            config: ImageConfig::default(),
        };
        // ONBUILD triggers of the base run first, then are consumed.
        st.config = config;
        // An image without PATH gets BuildKit's, first in Env, for the
        // image and for this stage's RUN steps (a stage or scratch has one).
        if from_image && st.config.get_env("PATH").is_none() {
            st.changes.push(ConfigChange::DefaultPath);
            st.config.apply(&ConfigChange::DefaultPath);
        }
        if !triggers.is_empty() {
            st.changes.push(ConfigChange::ClearOnBuild);
            for ins in &trigger_instructions {
                self.dispatch(&mut st, ins)?;
            }
        }
        for ins in &body {
            self.dispatch(&mut st, ins)?;
        }
        let config_node = self.add(
            Op::Config(ConfigOp {
                changes: st.changes.clone(),
            }),
            vec![config_base],
            format!("[{display}] image config"),
            None,
        )?;
        Ok(StageResult {
            fs: st.fs,
            config_node,
            config: st.config,
            platform: st.platform,
        })
    }

    fn dispatch(&mut self, st: &mut StageState, ins: &Located<Instruction>) -> Result<()> {
        let name = if makes_vertex(&ins.inner) {
            st.step += 1;
            step_name(&st.display, st.step, st.total, &ins.original)
        } else {
            String::new()
        };
        match &ins.inner {
            Instruction::From { .. } => {
                return Err(Error::at("internal: nested FROM", ins.location()))
            }
            Instruction::Arg(pairs) => {
                for (k, default) in pairs {
                    let value = if let Some(v) = self.opts.build_args.get(k) {
                        self.used_build_args.insert(k.clone());
                        Some(v.clone())
                    } else if let Some(d) = default {
                        Some(self.expand_word(d, &st.expansion_env(), ins)?)
                    } else {
                        // A global ARG (or a platform ARG) redeclared without value.
                        self.meta_args.get(k).cloned()
                    };
                    // BuildKit applies an ARG's value in instruction order:
                    // declared after an ENV of the same name, it wins in
                    // RUN and expansion (the image config keeps the ENV).
                    if let Some(v) = &value {
                        st.arg_over_env.insert(k.clone(), v.clone());
                    }
                    st.args.declare(k, value);
                }
            }
            Instruction::Env(pairs) => {
                let mut created = Vec::new();
                // Every word of one ENV sees the environment from before it.
                let env = st.expansion_env();
                for (k, v) in pairs {
                    let key = self.expand_word(k, &env, ins)?;
                    let value = self.expand_word(v, &env, ins)?;
                    if key.is_empty() {
                        return Err(Error::at("ENV names can not be blank", ins.location()));
                    }
                    created.push(format!("{key}={value}"));
                    st.arg_over_env.remove(&key);
                    st.change(ConfigChange::Env { key, value });
                }
                st.history(format!("ENV {}", created.join(" ")), true);
            }
            Instruction::Label(pairs) => {
                let mut created = Vec::new();
                for (k, v) in pairs {
                    let env = st.expansion_env();
                    let key = self.expand_word(k, &env, ins)?;
                    let value = self.expand_word(v, &env, ins)?;
                    if key.is_empty() {
                        return Err(Error::at("LABEL names can not be blank", ins.location()));
                    }
                    created.push(format!("{key}={value}"));
                    st.change(ConfigChange::Label { key, value });
                }
                st.history(format!("LABEL {}", created.join(" ")), true);
            }
            Instruction::Maintainer(m) => {
                st.change(ConfigChange::Maintainer { name: m.clone() });
                st.history(format!("MAINTAINER {m}"), true);
            }
            Instruction::Expose(ports) => {
                let env = st.expansion_env();
                let mut all = Vec::new();
                for p in ports {
                    for word in self
                        .lexer
                        .process_words(p, &env)
                        .map_err(|e| e.or_at(ins.location()))?
                    {
                        all.extend(expand_ports(&word).map_err(|m| Error::at(m, ins.location()))?);
                    }
                }
                for port in &all {
                    st.change(ConfigChange::Expose { port: port.clone() });
                }
                st.history(
                    format!(
                        "EXPOSE map[{}]",
                        all.iter()
                            .map(|p| format!("{p}:{{}}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    ),
                    true,
                );
            }
            Instruction::Volume(paths) => {
                let env = st.expansion_env();
                let mut done = Vec::new();
                for p in paths {
                    let v = self.expand_word(p, &env, ins)?;
                    if v.trim().is_empty() {
                        return Err(Error::at(
                            "VOLUME specified can not be an empty string",
                            ins.location(),
                        ));
                    }
                    done.push(v.clone());
                    st.change(ConfigChange::Volume { path: v });
                }
                st.history(format!("VOLUME [{}]", done.join(" ")), true);
            }
            Instruction::User(u) => {
                let u = self.expand_word(u, &st.expansion_env(), ins)?;
                st.change(ConfigChange::User { user: u.clone() });
                st.history(format!("USER {u}"), true);
            }
            Instruction::StopSignal(s) => {
                let s = self.expand_word(s, &st.expansion_env(), ins)?;
                validate_signal(&s).map_err(|m| Error::at(m, ins.location()))?;
                st.change(ConfigChange::StopSignal { signal: s.clone() });
                st.history(format!("STOPSIGNAL {s}"), true);
            }
            Instruction::Shell(args) => {
                st.shell = args.clone();
                st.change(ConfigChange::Shell { args: args.clone() });
                st.history(format!("SHELL [{}]", args.join(" ")), true);
            }
            Instruction::Onbuild(trigger) => {
                st.change(ConfigChange::OnBuild {
                    trigger: trigger.clone(),
                });
                st.history(format!("ONBUILD {trigger}"), true);
            }
            Instruction::Cmd(cmd) => {
                let args = st.command_args(cmd);
                st.change(ConfigChange::Cmd {
                    args: Some(args.clone()),
                });
                st.cmd_set = true;
                st.history(format!("CMD {}", json_list(&args)), true);
            }
            Instruction::Entrypoint(cmd) => {
                let args = st.command_args(cmd);
                st.change(ConfigChange::Entrypoint { args: args.clone() });
                if !st.cmd_set {
                    st.change(ConfigChange::Cmd { args: None });
                }
                st.history(format!("ENTRYPOINT {}", json_list(&args)), true);
            }
            Instruction::Healthcheck(spec) => {
                let check = match spec {
                    HealthcheckSpec::None => Healthcheck {
                        test: vec!["NONE".into()],
                        ..Default::default()
                    },
                    HealthcheckSpec::Cmd {
                        test,
                        interval,
                        timeout,
                        start_period,
                        start_interval,
                        retries,
                    } => Healthcheck {
                        test: test.clone(),
                        interval: *interval,
                        timeout: *timeout,
                        start_period: *start_period,
                        start_interval: *start_interval,
                        retries: *retries,
                    },
                };
                st.history(format!("HEALTHCHECK {}", json_list(&check.test)), true);
                st.change(ConfigChange::Healthcheck { check: Some(check) });
            }
            Instruction::Workdir(dir) => {
                let dir = self.expand_word(dir, &st.expansion_env(), ins)?;
                if dir.is_empty() {
                    return Err(Error::at("WORKDIR cannot be empty", ins.location()));
                }
                let path = join_workdir(st.workdir(), &dir);
                let owner = st
                    .config
                    .user
                    .clone()
                    .filter(|u| !u.is_empty())
                    .map(parse_chown);
                if let Some(o) = &owner {
                    // BuildKit looks a user or group name up in the files of
                    // the stage, and a stage with none yet (FROM scratch,
                    // nothing done) has nothing to look in: "invalid user
                    // index: -1". With files but no /etc/passwd, or a name
                    // not in it, the directory is root's (issue 10).
                    let named = |s: &str| s != "root" && s.parse::<u32>().is_err();
                    if (named(&o.user) || o.group.as_deref().is_some_and(named))
                        && matches!(self.b.node(st.fs).op, Op::Source(Source::Scratch))
                    {
                        let user = st.config.user.clone().unwrap_or_default();
                        return Err(Error::at(
                            format!(
                                "WORKDIR {path}: USER {user} is a name, and a stage FROM scratch with no files yet has no /etc/passwd or /etc/group to look it up in"
                            ),
                            ins.location(),
                        )
                        .with_hint("use numeric ids (USER 1000:1000), or put the WORKDIR before the USER"));
                    }
                }
                let op = Op::File(FileOp {
                    actions: vec![FileAction::Mkdir {
                        path: path.clone(),
                        mode: 0o755,
                        owner,
                        parents: true,
                    }],
                });
                st.fs = self.add(op, vec![st.fs], name, Some(ins))?;
                st.change(ConfigChange::Workdir { path: path.clone() });
                st.history(format!("WORKDIR {path}"), false);
            }
            Instruction::Run {
                command,
                heredocs,
                mounts,
                network,
                security,
            } => {
                self.dispatch_run(st, ins, name, command, heredocs, mounts, network, security)?;
            }
            Instruction::Copy(c) => self.dispatch_copy(st, ins, name, c, false)?,
            Instruction::Add(c) => self.dispatch_copy(st, ins, name, c, true)?,
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn dispatch_run(
        &mut self,
        st: &mut StageState,
        ins: &Located<Instruction>,
        name: String,
        command: &Command,
        heredocs: &[instructions::Heredoc],
        mounts: &[String],
        network: &Option<String>,
        security: &Option<String>,
    ) -> Result<()> {
        let env = st.expansion_env();
        let mut args = match command {
            Command::Exec(a) => a.clone(),
            Command::Shell(s) => {
                let mut a = st.shell.clone();
                a.push(s.clone());
                a
            }
        };
        if let Some(script) = run_heredoc_script(command, heredocs) {
            // `RUN <<EOF` alone: the heredoc is the script.
            args = st.shell.clone();
            args.push(script);
        } else if !heredocs.is_empty() {
            if let Command::Shell(s) = command {
                // Heredocs used as files: hand the shell the whole here-document.
                let mut text = s.clone();
                for h in heredocs {
                    text.push('\n');
                    text.push_str(&h.content);
                    text.push_str(&h.name);
                }
                args = st.shell.clone();
                args.push(text);
            }
        }
        let network = match network.as_deref() {
            None | Some("default") => NetworkMode::Default,
            Some("none") => NetworkMode::None,
            Some("host") => NetworkMode::Host,
            Some(other) => {
                return Err(Error::at(
                    format!("unsupported network mode `{other}`"),
                    ins.location(),
                )
                .with_hint("use default, none or host"))
            }
        };
        let security = match security.as_deref() {
            None | Some("sandbox") => SecurityMode::Sandbox,
            Some("insecure") => SecurityMode::Insecure,
            Some(other) => {
                return Err(Error::at(
                    format!("unsupported security mode `{other}`"),
                    ins.location(),
                )
                .with_hint("use sandbox or insecure"))
            }
        };
        let mut inputs = vec![st.fs];
        let mut ir_mounts = Vec::new();
        for raw in mounts {
            let mut expand = |w: &str| self.lexer.process_word(w, &env);
            let m =
                instructions::parse_mount(raw, &mut expand).map_err(|e| e.or_at(ins.location()))?;
            // Empty only for a secret exposed as an environment variable
            // alone (`env=` and no `target`): nothing is mounted then, as in
            // BuildKit, not the working directory.
            let target = if m.target.is_empty() {
                String::new()
            } else {
                join_workdir(st.workdir(), &m.target)
            };
            let from_input =
                |l: &mut Self, inputs: &mut Vec<NodeId>, from: &Option<String>| -> Result<usize> {
                    let node = match from {
                        Some(f) => l.resolve_from(st.index, f, &st.platform, ins)?,
                        None => {
                            let name = l.opts.context_name.clone();
                            l.context_node(&name)?
                        }
                    };
                    inputs.push(node);
                    Ok(inputs.len() - 1)
                };
            let kind = match m.kind {
                instructions::MountType::Bind => {
                    let input = from_input(self, &mut inputs, &m.from)?;
                    MountKind::Bind {
                        input,
                        source: clean_rel(&m.source.clone().unwrap_or_default()),
                    }
                }
                instructions::MountType::Cache => {
                    let input = match &m.from {
                        Some(_) => Some(from_input(self, &mut inputs, &m.from)?),
                        None => None,
                    };
                    MountKind::Cache {
                        id: m.id.clone().unwrap_or_else(|| target.clone()),
                        sharing: match m.sharing.as_deref() {
                            Some("private") => CacheSharing::Private,
                            Some("locked") => CacheSharing::Locked,
                            _ => CacheSharing::Shared,
                        },
                        input,
                        source: clean_rel(&m.source.clone().unwrap_or_default()),
                        mode: m.mode.unwrap_or(0o755),
                        uid: m.uid.unwrap_or(0),
                        gid: m.gid.unwrap_or(0),
                    }
                }
                instructions::MountType::Tmpfs => MountKind::Tmpfs { size: m.size },
                instructions::MountType::Secret => MountKind::Secret {
                    id: m.id.clone().unwrap_or_else(|| basename(&target)),
                    required: m.required,
                    mode: m.mode.unwrap_or(0o400),
                    uid: m.uid.unwrap_or(0),
                    gid: m.gid.unwrap_or(0),
                    env: m.env.clone(),
                },
                instructions::MountType::Ssh => MountKind::Ssh {
                    id: m.id.clone().unwrap_or_else(|| "default".into()),
                    required: m.required,
                    mode: m.mode.unwrap_or(0o600),
                    uid: m.uid.unwrap_or(0),
                    gid: m.gid.unwrap_or(0),
                },
            };
            ir_mounts.push(Mount {
                target,
                readonly: m.readonly,
                kind,
            });
        }
        let (run_env, proxy_env) = st.run_env(&self.opts.build_args);
        let exec = Exec {
            args: args.clone(),
            env: run_env,
            proxy_env,
            cwd: st.workdir().to_string(),
            user: st.config.user.clone().unwrap_or_default(),
            network,
            security,
            mounts: ir_mounts,
            platform: st.platform.clone(),
        };
        st.fs = self.add(Op::Exec(exec), inputs, name, Some(ins))?;
        let arg_prefix: Vec<String> = st.args.values().map(|(k, v)| format!("{k}={v}")).collect();
        let created = if arg_prefix.is_empty() {
            format!("RUN {} # buildkit", args.join(" "))
        } else {
            format!(
                "RUN |{} {} {} # buildkit",
                arg_prefix.len(),
                arg_prefix.join(" "),
                args.join(" ")
            )
        };
        st.history(created, false);
        Ok(())
    }

    /// `--from` / `from=`: a stage, a named context, or an image.
    fn resolve_from(
        &mut self,
        current: usize,
        reference: &str,
        platform: &Platform,
        at: &Located<Instruction>,
    ) -> Result<NodeId> {
        if let Some(dep) = stages::find(&self.stages, reference, current, at.location())? {
            return Ok(self.stage(dep)?.fs);
        }
        if let Some(NamedContext::Local) = self.opts.named_contexts.get(reference) {
            return self.context_node(reference);
        }
        match self.image_source(reference, platform, at) {
            Ok((node, _)) => Ok(node),
            // Not an image either: a stage name one or two edits away was
            // most likely meant (`--from=biuld`). Only after the image was
            // tried, so that an image named like a stage still works.
            Err(e) => {
                let names: Vec<&str> = self
                    .stages
                    .iter()
                    .filter_map(|s| s.name.as_deref())
                    .collect();
                match crate::instructions::suggest::search(reference, &names, false) {
                    Some(stage) if e.hint.is_none() => {
                        Err(e.with_hint(format!("did you mean the stage `{stage}`?")))
                    }
                    _ => Err(e),
                }
            }
        }
    }

    fn dispatch_copy(
        &mut self,
        st: &mut StageState,
        ins: &Located<Instruction>,
        name: String,
        c: &instructions::CopyArgs,
        is_add: bool,
    ) -> Result<()> {
        let env = st.expansion_env();
        let cmd = if is_add { "ADD" } else { "COPY" };
        let expand = |l: &Self, w: &str| l.expand_word(w, &env, ins);
        let dest_raw = expand(self, &c.dest)?;
        let dest = join_workdir_keep_slash(st.workdir(), &dest_raw);
        let chown = match &c.chown {
            Some(o) => Some(parse_chown(expand(self, o)?)),
            None => None,
        };
        let chmod = match &c.chmod {
            Some(m) => {
                let m = expand(self, m)?;
                validate_chmod(&m).map_err(|e| Error::at(e, ins.location()))?;
                Some(m)
            }
            None => None,
        };
        let mut excludes = Vec::new();
        for e in &c.exclude {
            excludes.push(expand(self, e)?);
        }
        let mut inputs = vec![st.fs];
        let mut actions = Vec::new();
        let heredoc_names: BTreeSet<&str> = c.heredocs.iter().map(|h| h.name.as_str()).collect();
        let mut file_sources = Vec::new();
        for s in &c.sources {
            if let Some(name) = s.strip_prefix("<<").map(|n| {
                n.trim_start_matches('-')
                    .trim_matches(|ch| ch == '"' || ch == '\'')
            }) {
                if heredoc_names.contains(name) {
                    continue;
                }
            }
            file_sources.push(expand(self, s)?);
        }
        for h in &c.heredocs {
            let data = if h.expand {
                expand(self, &h.content)?
            } else {
                h.content.clone()
            };
            let path = if dest.ends_with('/') {
                format!("{dest}{}", h.name)
            } else {
                dest.clone()
            };
            let mode = match &chmod {
                Some(m) => u32::from_str_radix(m, 8).unwrap_or(0o644),
                None => 0o644,
            };
            actions.push(FileAction::Mkfile {
                path,
                data,
                mode,
                owner: chown.clone(),
            });
        }
        if !file_sources.is_empty() {
            if file_sources.len() > 1 && !dest.ends_with('/') {
                return Err(Error::at(
                    format!("when using {cmd} with more than one source file, the destination must be a directory and end with a /"),
                    ins.location(),
                )
                .with_hint(format!("write the destination as `{dest}/`")));
            }
            let src_node = match &c.from {
                Some(f) => {
                    let f = expand(self, f)?;
                    self.resolve_from(st.index, &f, &st.platform, ins)?
                }
                None => {
                    for s in &file_sources {
                        if is_url(s) {
                            return Err(Error::at(
                                format!("{cmd} from a URL or git repository is not supported yet: `{s}`"),
                                ins.location(),
                            )
                            .with_hint("download the file in a RUN step, or add it to the build context"));
                        }
                    }
                    self.context_node(&self.opts.context_name.clone())?
                }
            };
            inputs.push(src_node);
            actions.push(FileAction::Copy(CopyAction {
                src_input: 1,
                sources: file_sources.iter().map(|s| clean_rel(s)).collect(),
                dest: dest.clone(),
                chown: chown.clone(),
                chmod: chmod.clone(),
                unpack_archives: is_add && c.from.is_none(),
                excludes,
                parents: c.parents,
                link: c.link,
            }));
        }
        st.fs = self.add(Op::File(FileOp { actions }), inputs, name, Some(ins))?;
        st.history(
            format!("{cmd} {} {dest_raw} # buildkit", c.sources.join(" ")),
            false,
        );
        Ok(())
    }
}

fn makes_vertex(i: &Instruction) -> bool {
    matches!(
        i,
        Instruction::Run { .. }
            | Instruction::Copy(_)
            | Instruction::Add(_)
            | Instruction::Workdir(_)
    )
}

/// `[build 2/3] RUN make`, with the index padded to the width of the total
/// as BuildKit does, and no stage name in single-stage builds.
fn step_name(stage: &str, index: usize, total: usize, text: &str) -> String {
    let width = total.to_string().len();
    let stage = if stage.is_empty() {
        String::new()
    } else {
        format!("{stage} ")
    };
    format!("[{stage}{index:>width$}/{total}] {text}")
}

struct StageState {
    /// ARG values declared after an ENV of the same name.
    arg_over_env: BTreeMap<String, String>,
    display: String,
    index: usize,
    total: usize,
    step: usize,
    fs: NodeId,
    platform: Platform,
    args: StageArgs,
    changes: Vec<ConfigChange>,
    cmd_set: bool,
    shell: Vec<String>,
    config: ImageConfig,
}

impl StageState {
    fn change(&mut self, c: ConfigChange) {
        self.config.apply(&c);
        self.changes.push(c);
    }

    fn history(&mut self, created_by: String, empty_layer: bool) {
        self.change(ConfigChange::History {
            entry: HistoryEntry {
                created: None,
                created_by,
                comment: None,
                empty_layer,
            },
        });
    }

    fn workdir(&self) -> &str {
        self.config
            .working_dir
            .as_deref()
            .filter(|w| !w.is_empty())
            .unwrap_or("/")
    }

    /// Variables visible to word expansion: declared ARGs, then ENV, then
    /// ARGs declared after an ENV of the same name (the later one wins).
    fn expansion_env(&self) -> BTreeMap<String, String> {
        let mut m: BTreeMap<String, String> = self
            .args
            .values()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for kv in &self.config.env {
            let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
            m.insert(k.to_string(), v.to_string());
        }
        for (k, v) in &self.arg_over_env {
            m.insert(k.clone(), v.clone());
        }
        m
    }

    /// The environment of a RUN: the image's ENV, then ARGs ENV does not
    /// override; and apart, the proxy build args neither declares.
    fn run_env(&self, build_args: &BTreeMap<String, String>) -> (Vec<String>, Vec<String>) {
        let mut env: Vec<String> = self
            .config
            .env
            .iter()
            .map(|kv| {
                let k = kv.split_once('=').map_or(kv.as_str(), |p| p.0);
                match self.arg_over_env.get(k) {
                    Some(v) => format!("{k}={v}"),
                    None => kv.clone(),
                }
            })
            .collect();
        let has = |env: &Vec<String>, k: &str| {
            env.iter()
                .any(|kv| kv.split_once('=').map_or(kv.as_str(), |p| p.0) == k)
        };
        for (k, v) in self.args.values() {
            if !has(&env, k) {
                env.push(format!("{k}={v}"));
            }
        }
        if !has(&env, "PATH") {
            env.push(format!("PATH={DEFAULT_PATH}"));
        }
        let proxy = PROXY_ARGS
            .iter()
            .filter(|p| !has(&env, p))
            .filter_map(|p| build_args.get(*p).map(|v| format!("{p}={v}")))
            .collect();
        (env, proxy)
    }

    fn command_args(&self, cmd: &Command) -> Vec<String> {
        match cmd {
            Command::Exec(a) => a.clone(),
            Command::Shell(s) => {
                let mut a = self.shell.clone();
                a.push(s.clone());
                a
            }
        }
    }
}

fn run_heredoc_script(command: &Command, heredocs: &[instructions::Heredoc]) -> Option<String> {
    let Command::Shell(s) = command else {
        return None;
    };
    let first = heredocs.first()?;
    let trimmed = s.trim();
    let only =
        trimmed.starts_with("<<") && !trimmed.contains(char::is_whitespace) && heredocs.len() == 1;
    only.then(|| first.content.clone())
}

fn json_list(args: &[String]) -> String {
    serde_json::to_string(args).unwrap_or_default()
}

fn parse_chown(s: String) -> Chown {
    match s.split_once(':') {
        Some((u, g)) => Chown {
            user: u.to_string(),
            group: Some(g.to_string()),
        },
        None => Chown {
            user: s,
            group: None,
        },
    }
}

fn validate_chmod(m: &str) -> std::result::Result<(), String> {
    if !m.is_empty() && m.len() <= 4 && m.chars().all(|c| ('0'..='7').contains(&c)) {
        Ok(())
    } else {
        Err(format!(
            "invalid chmod `{m}`: expected an octal mode such as 0755"
        ))
    }
}

fn validate_signal(s: &str) -> std::result::Result<(), String> {
    const NAMES: &[&str] = &[
        "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
        "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG",
        "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "POLL", "PWR", "SYS",
    ];
    if s.parse::<u32>().is_ok_and(|n| n > 0 && n < 65) {
        return Ok(());
    }
    let upper = s.to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    if NAMES.contains(&bare) || bare.starts_with("RTMIN") || bare.starts_with("RTMAX") {
        Ok(())
    } else {
        Err(format!("invalid signal `{s}`"))
    }
}

/// `80` → `80/tcp`; `8000-8002/udp` → three ports, as Docker's nat package.
fn expand_ports(word: &str) -> std::result::Result<Vec<String>, String> {
    let (ports, proto) = match word.split_once('/') {
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (word, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto `{proto}` in EXPOSE"));
    }
    // A host-ip:host-port:container-port spec keeps only the container port.
    let ports = ports.rsplit(':').next().unwrap_or(ports);
    let bad = || format!("invalid port `{word}` in EXPOSE");
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (
            a.parse::<u16>().map_err(|_| bad())?,
            b.parse::<u16>().map_err(|_| bad())?,
        ),
        None => {
            let p = ports.parse::<u16>().map_err(|_| bad())?;
            (p, p)
        }
    };
    if hi < lo {
        return Err(bad());
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://")
        || s.starts_with("https://")
        || s.starts_with("git@")
        || s.ends_with(".git") && s.contains("://")
}

/// A source path relative to the source root, with `..` unable to climb out.
fn clean_rel(p: &str) -> String {
    let trailing = p.ends_with('/') && p.len() > 1;
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    let mut out = parts.join("/");
    if out.is_empty() {
        out = ".".into();
    } else if trailing {
        out.push('/');
    }
    out
}

fn clean_abs(p: &str) -> String {
    let rel = clean_rel(p);
    if rel == "." {
        "/".into()
    } else {
        format!("/{}", rel.trim_end_matches('/'))
    }
}

fn join_workdir(workdir: &str, p: &str) -> String {
    if p.starts_with('/') {
        clean_abs(p)
    } else {
        clean_abs(&format!("{workdir}/{p}"))
    }
}

/// Like `join_workdir`, keeping a trailing `/` (it makes the destination a
/// directory), and treating `.` as the directory itself.
fn join_workdir_keep_slash(workdir: &str, p: &str) -> String {
    let dir_like = p.ends_with('/') || p == "." || p.ends_with("/.");
    let mut out = join_workdir(workdir, p);
    if dir_like && !out.ends_with('/') {
        out.push('/');
    }
    out
}

fn basename(p: &str) -> String {
    p.rsplit('/').next().unwrap_or(p).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_like_docker() {
        assert_eq!(join_workdir("/app", "src"), "/app/src");
        assert_eq!(join_workdir("/app", "../../x"), "/x");
        assert_eq!(join_workdir_keep_slash("/app", "."), "/app/");
        assert_eq!(join_workdir_keep_slash("/", "dir/"), "/dir/");
        assert_eq!(clean_rel("../../etc/passwd"), "etc/passwd");
        assert_eq!(clean_rel("./"), ".");
    }

    #[test]
    fn ports_expand() {
        assert_eq!(expand_ports("80").unwrap(), vec!["80/tcp"]);
        assert_eq!(expand_ports("53/UDP").unwrap(), vec!["53/udp"]);
        assert_eq!(expand_ports("8000-8002").unwrap().len(), 3);
        assert!(expand_ports("x").is_err());
        assert!(expand_ports("80/foo").is_err());
    }
}
