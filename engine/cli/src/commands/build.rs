use std::collections::BTreeMap;
use std::path::PathBuf;

use engine_solver::build::{self, BuildError};
use engine_solver::cache_share::{self, ExportMode, ExportRequest, ImportedCache};
use engine_solver::image::LayerSettings;
use engine_solver::progress::{Mode, Printer};
use engine_solver::run::{Fault, SecretSource, SolveOptions, StepError};
use engine_solver::scheduler::{CancelToken, Options};
use engine_solver::state::StateDir;

use crate::cli::BuildArgs;
use crate::outputs::{self, Kind};
use crate::resolver::LayoutResolver;
use crate::Failure;

pub fn cache_dir(flag: &Option<PathBuf>) -> Result<PathBuf, Failure> {
    if let Some(d) = flag {
        return Ok(d.clone());
    }
    dirs::cache_dir().map(|d| d.join("engine")).ok_or_else(|| {
        Failure::hint(
            "no cache directory",
            "pass --cache-dir or set ENGINE_CACHE_DIR",
        )
    })
}

fn parse_secrets(raw: &[String]) -> Result<BTreeMap<String, SecretSource>, Failure> {
    let mut out = BTreeMap::new();
    for s in raw {
        let mut id = None;
        let mut src = None;
        let mut env = None;
        for field in s.split(',') {
            match field.split_once('=') {
                Some(("id", v)) => id = Some(v.to_string()),
                Some(("src" | "source", v)) => src = Some(PathBuf::from(v)),
                Some(("env", v)) => env = Some(v.to_string()),
                Some(("type", _)) => {}
                _ => {
                    return Err(Failure::hint(
                        format!("invalid --secret `{s}`"),
                        "write id=ID,src=PATH or id=ID,env=VAR",
                    ))
                }
            }
        }
        let id = id.ok_or_else(|| Failure::msg(format!("--secret `{s}` has no id")))?;
        let source = match (src, env) {
            (Some(p), _) => {
                // Checked now, not when a RUN step first asks for it.
                match std::fs::metadata(&p) {
                    Ok(m) if m.is_file() => {}
                    Ok(_) => {
                        return Err(Failure::msg(format!(
                            "--secret id={id}: `{}` is not a regular file",
                            p.display()
                        )))
                    }
                    Err(e) => {
                        return Err(Failure::hint(
                            format!("--secret id={id}: cannot read `{}`: {e}", p.display()),
                            "src= names a file with the secret's value; env=VAR takes it from a variable",
                        ))
                    }
                }
                SecretSource::File(p)
            }
            (None, Some(e)) => SecretSource::Env(e),
            (None, None) => SecretSource::Env(id.clone()),
        };
        out.insert(id, source);
    }
    Ok(out)
}

/// A `--cache-from` / `--cache-to` value (buildx syntax).
#[derive(Debug, Clone)]
struct CacheSpec {
    dir: PathBuf,
    mode: ExportMode,
    /// The graph targets whose results go there (`--cache-to`: all of
    /// them; a TOML image's `cache-to`: that image's).
    targets: Option<Vec<String>>,
    /// `type=registry`: the cache goes through a temporary directory.
    registry: Option<engine_registry::Reference>,
}

/// A TOML exporter table as the buildx-style string the flags take.
fn exporter_spec(e: &engine_toml::Exporter) -> String {
    let mut spec = format!("type={}", e.kind);
    for (k, v) in &e.attrs {
        spec.push_str(&format!(",{k}={v}"));
    }
    spec
}

/// `MANIFEST (config CONFIG)`: the digest line of an exported image.
fn digest_line(result: &engine_export::ExportResult) -> String {
    match result.config_digest() {
        Some(c) => format!("{} (config {c})", result.manifest_digest()),
        None => format!(
            "{} (index of {} images)",
            result.manifest_digest(),
            result.images.len()
        ),
    }
}

/// The `cache-from` and `cache-to` entries of TOML images, relative paths
/// taken from the spec's directory.
fn toml_cache_specs(
    planned: &crate::plan::Planned,
) -> Result<(Vec<CacheSpec>, Vec<CacheSpec>), Failure> {
    let (mut from, mut to) = (Vec::new(), Vec::new());
    let Some(targets) = &planned.toml_targets else {
        return Ok((from, to));
    };
    let base = planned.spec_dir.clone().unwrap_or_default();
    for t in targets {
        for (entries, flag, out) in [
            (&t.cache_from, "--cache-from", &mut from),
            (&t.cache_to, "--cache-to", &mut to),
        ] {
            for e in entries {
                let mut spec = parse_cache_spec(flag, &exporter_spec(e))
                    .map_err(|f| f.context(&format!("image `{}` of the spec", t.name)))?;
                if spec.registry.is_none() && spec.dir.is_relative() {
                    spec.dir = base.join(&spec.dir);
                }
                spec.targets = Some(t.images.iter().map(|i| i.target.clone()).collect());
                out.push(spec);
            }
        }
    }
    Ok((from, to))
}

/// `type=local,dest=DIR[,mode=min|max]` (`--cache-to`),
/// `type=local,src=DIR` (`--cache-from`), or `type=registry,ref=REF` (both;
/// a bare `REF` means that too, as in buildx). Other types are refused.
fn parse_cache_spec(flag: &str, raw: &str) -> Result<CacheSpec, Failure> {
    let export = flag == "--cache-to";
    let raw_owned;
    let raw = if raw.contains('=') {
        raw
    } else {
        raw_owned = format!("type=registry,ref={raw}");
        &raw_owned
    };
    // The type decides which attributes apply: check it first.
    let kind = raw
        .split(',')
        .find_map(|f| f.trim().strip_prefix("type="))
        .unwrap_or("registry");
    if kind != "local" && kind != "registry" {
        return Err(Failure::hint(
            format!("unsupported cache type `{kind}`"),
            "use type=local or type=registry",
        ));
    }
    let registry = kind == "registry";
    let mut reference = None;
    let mut dir = None;
    let mut mode = ExportMode::Min;
    for field in raw.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        let (k, v) = field.split_once('=').unwrap_or((field, ""));
        match k {
            "type" => {}
            "ref" if registry => reference = Some(v.to_string()),
            "dest" if export && !registry => dir = Some(PathBuf::from(v)),
            "src" if !export && !registry => dir = Some(PathBuf::from(v)),
            "mode" if export => {
                mode = match v {
                    "min" => ExportMode::Min,
                    "max" => ExportMode::Max,
                    _ => {
                        return Err(Failure::hint(
                            format!("invalid {flag} mode `{v}`"),
                            "use mode=min or mode=max",
                        ))
                    }
                }
            }
            // buildx attributes that do not apply to a local directory.
            "compression" | "compression-level" | "force-compression" | "ignore-error"
            | "oci-mediatypes" | "image-manifest" | "tag" | "digest" => {}
            _ => {
                return Err(Failure::hint(
                    format!("invalid {flag} `{raw}`: unknown attribute `{k}`"),
                    match (registry, export) {
                        (true, true) => "write type=registry,ref=REF[,mode=min|max]",
                        (true, false) => "write type=registry,ref=REF",
                        (false, true) => "write type=local,dest=DIR[,mode=min|max]",
                        (false, false) => "write type=local,src=DIR",
                    },
                ))
            }
        }
    }
    if registry {
        let r = reference.ok_or_else(|| {
            Failure::hint(
                format!("{flag} `{raw}` has no ref"),
                "write type=registry,ref=REGISTRY/REPOSITORY:TAG",
            )
        })?;
        let parsed = engine_registry::Reference::parse(&r)
            .map_err(|e| Failure::msg(format!("{flag}: {e}")))?;
        return Ok(CacheSpec {
            dir: PathBuf::new(),
            mode,
            targets: None,
            registry: Some(parsed),
        });
    }
    let dir = dir.ok_or_else(|| {
        Failure::msg(format!(
            "{flag} `{raw}` has no {}",
            if export { "dest=DIR" } else { "src=DIR" }
        ))
    })?;
    Ok(CacheSpec {
        dir,
        mode,
        targets: None,
        registry: None,
    })
}

/// A failed step: `error: Dockerfile:3:1: [2/3] RUN make: MESSAGE`, its
/// causes, then the last lines of its output. The exit code says whose
/// failure it is: the step's (1), the build's input (2) or the machinery's
/// (3), as [`StepError::fault`] tells.
fn render_step_error(e: BuildError) -> Failure {
    match e {
        BuildError::Cancelled => Failure::new(crate::Kind::Build, "build cancelled"),
        BuildError::Step {
            name,
            location,
            error,
        } => {
            let mut text = String::new();
            let at = location
                .map(|l| format!("{}:{}:{}: ", l.file, l.line, l.col))
                .unwrap_or_default();
            text.push_str(&format!("error: {at}{name}: {error}\n"));
            if let StepError::Exit { tail, .. } = &error {
                if !tail.is_empty() {
                    text.push_str("  last lines of output:\n");
                    for l in tail {
                        text.push_str(&format!("  │ {l}\n"));
                    }
                }
            }
            let kind = match error.fault() {
                Fault::Step => crate::Kind::Build,
                Fault::Input => crate::Kind::Usage,
                Fault::Infrastructure => crate::Kind::Infra,
            };
            // The message says the error whole; its causes go below it.
            let failure = Failure::rendered(kind, text);
            match std::error::Error::source(&error) {
                Some(cause) => failure.caused_by(cause),
                None => failure,
            }
        }
    }
}

pub fn run(args: BuildArgs) -> Result<(), Failure> {
    if args.print && crate::plan::locate(&args.plan)?.1 != crate::cli::Frontend::Toml {
        return Err(crate::bake::print_needs_toml());
    }
    // Flags are checked before planning, which may wait on registries.
    let cli_outputs: Vec<outputs::Output> = args
        .outputs
        .iter()
        .map(|o| outputs::parse(o))
        .collect::<Result<_, _>>()?;
    let contexts = crate::plan::solver_contexts(&args.plan)?;
    let registry = engine_registry::Client::new();
    let resolver = LayoutResolver {
        contexts: &contexts,
        registry: Some(&registry),
        resolutions: cache_dir(&args.cache_dir)
            .ok()
            .map(|d| crate::resolutions::Resolutions::in_cache(&d)),
        pull: args.pull,
        memo: Default::default(),
        errors: Default::default(),
    };
    let planned = crate::plan::plan(&args.plan, &resolver).map_err(|f| resolver.explain(f))?;
    if args.print {
        return crate::bake::print(&planned);
    }
    for w in &planned.warnings {
        eprintln!("warning: {w}");
    }
    let mut cache_from = args
        .cache_from
        .iter()
        .map(|s| parse_cache_spec("--cache-from", s))
        .collect::<Result<Vec<_>, _>>()?;
    let mut cache_to = args
        .cache_to
        .iter()
        .map(|s| parse_cache_spec("--cache-to", s))
        .collect::<Result<Vec<_>, _>>()?;
    let (spec_from, spec_to) = toml_cache_specs(&planned)?;
    cache_from.extend(spec_from);
    cache_to.extend(spec_to);
    // Registry caches are fetched (manifest and records) into temporary
    // layouts that live until the build ends.
    let mut fetched_caches = Vec::new();
    let mut remotes = BTreeMap::new();
    for c in cache_from.iter_mut() {
        let Some(r) = &c.registry else { continue };
        let t = tempfile::tempdir().map_err(|e| {
            Failure::infra("--cache-from: cannot make a temporary directory").caused_by(&e)
        })?;
        c.dir = t.path().to_path_buf();
        match engine_solver::cache_registry::fetch(&registry, r, t.path()) {
            Ok(true) => {
                remotes.insert(c.dir.clone(), r.clone());
            }
            Ok(false) => eprintln!("warning: --cache-from: no cache at `{r}` yet"),
            Err(e) => eprintln!("warning: --cache-from: {}", crate::failure::one_line(&e)),
        }
        fetched_caches.push(t);
    }
    // A local cache that is not there yet (the first CI run) is no error:
    // BuildKit warns and builds without it.
    cache_from.retain(|c| {
        let present = c.registry.is_some() || c.dir.join("index.json").exists();
        if !present {
            eprintln!(
                "warning: --cache-from: no cache at `{}` (no OCI layout there); building without it",
                c.dir.display()
            );
        }
        present
    });
    let imported = if cache_from.is_empty() {
        None
    } else {
        let dirs: Vec<PathBuf> = cache_from.iter().map(|c| c.dir.clone()).collect();
        let mut imported = ImportedCache::load(&dirs)
            .map_err(|e| Failure::infra("--cache-from: cannot read the cache").caused_by(&e))?;
        imported.remotes = remotes;
        Some(std::sync::Arc::new(imported))
    };
    let mut exports = exports_per_target(&planned, &cli_outputs, &args.tags)?;
    // --push and --load, per target; a daemon to load into answers first.
    let daemon =
        crate::buildx::add_flag_outputs(&args, &mut exports, planned.toml_targets.is_some())?;
    for unit in &planned.units {
        if let Some((outs, _)) = exports.get(&unit.name) {
            crate::multiplatform::check_outputs(unit, outs, planned.units.len() > 1)?;
        }
    }
    let decorations = crate::buildx::decorations(&args)?;
    let to_stdout = exports
        .values()
        .flat_map(|(outs, _)| outs.iter())
        .filter(|o| outputs::is_stdout(o))
        .count();
    // Names (-t, name= of outputs, TOML tags) are checked before anything
    // is built, not when the export or the push finally needs them.
    for (outs, tags) in exports.values() {
        for n in tags.iter().chain(outs.iter().flat_map(|o| o.names.iter())) {
            if let Err(e) = engine_registry::Reference::parse(n) {
                return Err(Failure::hint(
                    e.to_string(),
                    "an image name is [registry/]repository[:tag] in lowercase, e.g. registry.example.com/team/app:1.2",
                ));
            }
        }
    }
    if to_stdout > 1 {
        return Err(Failure::hint(
            format!("{to_stdout} outputs would be written to standard output"),
            "send at most one output to `-`; give the others a file",
        ));
    }
    if args.quiet && to_stdout > 0 {
        return Err(Failure::hint(
            "-q prints the image ID on standard output, where an output (`-`) would write its tar",
            "give that output a file (dest=FILE), or drop -q",
        ));
    }
    let is_tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mode = match args.progress.as_str() {
        // -q: nothing for humans but warnings and errors, as docker build -q.
        _ if args.quiet => Some(Mode::Quiet),
        "json" => Some(Mode::Json),
        "plain" => Some(Mode::Plain),
        "auto" if !is_tty => Some(Mode::Plain),
        "auto" | "tty" => None,
        "quiet" | "none" => Some(Mode::Quiet),
        other => {
            return Err(Failure::hint(
                format!("unknown progress mode `{other}`"),
                "use auto, tty, plain or json",
            ))
        }
    };
    let dir = cache_dir(&args.cache_dir)?;
    let state = StateDir::open(&dir).map_err(|e| {
        Failure::infra(format!("cannot open cache dir `{}`", dir.display())).caused_by(&e)
    })?;
    let executor = engine_sandbox::executor_for(&args.runtime, Some(state.tmp()))
        .map_err(|e| Failure::infra("cannot set up the sandbox").caused_by(&e))?;
    if let Some(path) = &args.metadata_file {
        crate::metadata::check_path(path, "--metadata-file")?;
    }
    if args.iidfile.is_some() && planned.units.len() > 1 {
        return Err(Failure::hint(
            format!(
                "--iidfile takes one image, and this build has {} targets",
                planned.units.len()
            ),
            "name one target, or drop --iidfile",
        ));
    }
    let (entitlements, limits) = sandbox_policy(&args, &planned.graph, &planned.limits)?;
    let wants_network = planned.graph.nodes().any(|(_, n)| {
        matches!(&n.op, engine_ir::Op::Exec(e) if e.network == engine_ir::NetworkMode::Default)
    });
    if wants_network && engine_sandbox::slirp4netns_path().is_none() {
        eprintln!(
            "warning: slirp4netns is not installed, so RUN steps have no network access \
             (loopback only); install it (Debian: apt-get install slirp4netns)"
        );
    }
    let mut contexts = contexts;
    for (name, dir) in &planned.context_dirs {
        contexts.insert(
            name.clone(),
            engine_solver::run::ContextSource::Dir(dir.clone()),
        );
    }
    let max_size = cache_max_size(&args.cache_max_size, &state)?;
    let opts = SolveOptions {
        contexts,
        secrets: parse_secrets(&args.secret)?,
        no_cache: args.no_cache,
        no_cache_filter: no_cache_filter(&args)?,
        cache_from: imported,
        entitlements,
        limits,
    };
    let trace = engine_solver::trace::Trace::new(&planned.graph);
    let printer: Box<dyn engine_solver::progress::Progress> = match mode {
        Some(m) => Box::new(Printer::stderr(m)),
        None => Box::new(engine_solver::progress::Tty::with_steps(
            engine_solver::progress::Tty::steps_of(&planned.graph),
        )),
    };
    let mut sched = Options::default();
    if let Some(j) = args.jobs {
        sched.jobs = Some(j.max(1));
    }
    let mut solved = build::solve_all(
        &planned.graph,
        &state,
        &opts,
        executor.as_ref(),
        &engine_solver::trace::Tee(printer.as_ref(), &trace),
        sched,
        &CancelToken::new(),
        args.keep_going,
    );
    let failures = std::mem::take(&mut solved.failures);
    let stopped = !failures.is_empty() || solved.targets.len() < planned.graph.targets().len();
    if stopped {
        // A failed build's timeline shows what ran before the failure.
        let _ = write_trace(args.trace.as_deref(), &trace);
        if mode != Some(Mode::Json) {
            crate::bake::summary(&planned, &solved.states, &failures);
        }
    }
    let mut failures = failures.into_iter().map(render_step_error);
    if stopped && !args.keep_going {
        return Err(failures
            .next()
            .unwrap_or_else(|| render_step_error(BuildError::Cancelled)));
    }
    let epoch = engine_export::ExportOptions::source_date_epoch_from_env();
    let mut digest_lines: Vec<(String, String)> = Vec::new();
    // What each target's exports produced, for --iidfile, --metadata-file and -q.
    let mut reports = crate::metadata::Reports::default();
    let values: BTreeMap<&str, &engine_solver::run::Value> = solved
        .targets
        .iter()
        .map(|(n, v)| (n.as_str(), v))
        .collect();
    for unit in &planned.units {
        let name = &unit.name;
        reports.built(name);
        let (outputs, tags) = exports.get(name).cloned().unwrap_or_default();
        if unit.images.len() > 1 {
            let images: Vec<(&engine_ir::Platform, &engine_solver::run::Value)> = unit
                .images
                .iter()
                .filter_map(|(t, p)| Some((p, *values.get(t.as_str())?)))
                .collect();
            if images.len() < unit.images.len() {
                continue; // a platform failed (--keep-going): no partial index
            }
            for out in &outputs {
                let exporting = std::time::Instant::now();
                let settings = LayerSettings {
                    compression: out.compression,
                    source_date_epoch: epoch.map(|e| e as i64),
                };
                let eopts = engine_export::ExportOptions {
                    names: if out.names.is_empty() {
                        tags.clone()
                    } else {
                        out.names.clone()
                    },
                    source_date_epoch: epoch,
                    oci_mediatypes: None,
                    index_annotations: decorations.index.clone(),
                };
                let fail = |e: &(dyn std::error::Error + 'static)| export_failed(&out.dest, e);
                let assembled = || -> Result<Vec<engine_export::ImageToExport>, Failure> {
                    images
                        .iter()
                        .map(|(p, v)| {
                            crate::buildx::assemble(&decorations, &state, v, p, settings)
                                .map_err(|e| export_failed(&out.dest, &e).context(&p.to_string()))
                        })
                        .collect()
                };
                let result = match out.kind {
                    Kind::Local => {
                        for (p, v) in &images {
                            let dir = out.dest.join(crate::multiplatform::platform_dir(p));
                            build::write_rootfs_dir(v, &dir).map_err(|e| fail(&e))?;
                        }
                        None
                    }
                    Kind::Registry => {
                        let plan =
                            engine_export::plan_registry_push(&assembled()?, &state.blobs, &eopts)
                                .map_err(|e| {
                                    Failure::infra("cannot push the image").caused_by(&e)
                                })?;
                        for n in &eopts.names {
                            crate::push::push(&registry, &state.blobs, &plan, n)?;
                            if !args.quiet {
                                eprintln!("pushed {n}@{}", plan.root.1);
                            }
                        }
                        Some(plan.result)
                    }
                    Kind::OciTar => {
                        let (f, pending) = create(&out.dest)?;
                        let r = engine_export::write_oci_layout_tar(
                            &assembled()?,
                            &state.blobs,
                            std::io::BufWriter::with_capacity(1 << 20, f),
                            &eopts,
                        )
                        .map_err(|e| fail(&e))?;
                        pending.commit()?;
                        Some(r)
                    }
                    Kind::OciDir => Some(
                        engine_export::write_oci_layout_dir(
                            &assembled()?,
                            &state.blobs,
                            &out.dest,
                            &eopts,
                        )
                        .map_err(|e| fail(&e))?,
                    ),
                    // Refused before the build (multiplatform::check_outputs).
                    Kind::Docker | Kind::Load | Kind::Tar => {
                        return Err(Failure::msg(format!(
                            "exporting to `{}`: one platform only",
                            out.dest.display()
                        )))
                    }
                };
                if let Some(result) = result {
                    digest_lines.push((name.clone(), digest_line(&result)));
                    reports.exported(name, &result, &eopts.names);
                }
                trace.span(
                    &format!("export {name} to {}", out.dest.display()),
                    "export",
                    exporting,
                    std::time::Instant::now(),
                );
            }
            continue;
        }
        let Some((graph_target, unit_platform)) = unit.images.first() else {
            continue;
        };
        let Some(value) = values.get(graph_target.as_str()).copied() else {
            continue;
        };
        let platform = build::target_platform(&planned.graph, graph_target)
            .unwrap_or_else(|| unit_platform.clone());
        for out in &outputs {
            let exporting = std::time::Instant::now();
            let settings = LayerSettings {
                compression: out.compression,
                source_date_epoch: epoch.map(|e| e as i64),
            };
            let mut names = out.names.clone();
            if names.is_empty() {
                names = tags.clone();
            }
            let eopts = engine_export::ExportOptions {
                names,
                source_date_epoch: epoch,
                oci_mediatypes: None,
                index_annotations: decorations.index.clone(),
            };
            let fail = |e: &(dyn std::error::Error + 'static)| export_failed(&out.dest, e);
            match out.kind {
                Kind::Local => build::write_rootfs_dir(value, &out.dest).map_err(|e| fail(&e))?,
                Kind::Tar => {
                    let (f, pending) = create(&out.dest)?;
                    build::write_rootfs_tar(
                        &state,
                        value,
                        std::io::BufWriter::with_capacity(1 << 20, f),
                    )
                    .map_err(|e| fail(&e))?;
                    pending.commit()?;
                }
                Kind::Registry => {
                    if eopts.names.is_empty() {
                        return Err(Failure::hint(
                            "type=registry has no name to push to",
                            "add name=REGISTRY/REPOSITORY:TAG to the output, or pass -t",
                        ));
                    }
                    let image =
                        crate::buildx::assemble(&decorations, &state, value, &platform, settings)
                            .map_err(|e| Failure::infra("cannot push the image").caused_by(&e))?;
                    let plan = engine_export::plan_registry_push(
                        std::slice::from_ref(&image),
                        &state.blobs,
                        &eopts,
                    )
                    .map_err(|e| Failure::infra("cannot push the image").caused_by(&e))?;
                    for name in &eopts.names {
                        crate::push::push(&registry, &state.blobs, &plan, name)?;
                        if !args.quiet {
                            eprintln!("pushed {name}@{}", plan.root.1);
                        }
                    }
                    digest_lines.push((name.clone(), digest_line(&plan.result)));
                    reports.exported(name, &plan.result, &eopts.names);
                }
                Kind::Load => {
                    let image =
                        crate::buildx::assemble(&decorations, &state, value, &platform, settings)
                            .map_err(|e| {
                            Failure::infra("--load: cannot assemble the image").caused_by(&e)
                        })?;
                    let result = crate::buildx::load(
                        daemon.as_ref(),
                        &image,
                        &state.blobs,
                        &eopts,
                        args.quiet,
                    )?;
                    digest_lines.push((name.clone(), digest_line(&result)));
                    reports.exported(name, &result, &eopts.names);
                }
                Kind::Docker | Kind::OciTar | Kind::OciDir => {
                    let image =
                        crate::buildx::assemble(&decorations, &state, value, &platform, settings)
                            .map_err(|e| fail(&e))?;
                    let result = match out.kind {
                        Kind::Docker => {
                            let (f, pending) = create(&out.dest)?;
                            engine_export::write_docker_archive(
                                &image,
                                &state.blobs,
                                std::io::BufWriter::with_capacity(1 << 20, f),
                                &eopts,
                            )
                            .map(|r| (r, Some(pending)))
                        }
                        Kind::OciTar => {
                            let (f, pending) = create(&out.dest)?;
                            engine_export::write_oci_layout_tar(
                                std::slice::from_ref(&image),
                                &state.blobs,
                                std::io::BufWriter::with_capacity(1 << 20, f),
                                &eopts,
                            )
                            .map(|r| (r, Some(pending)))
                        }
                        _ => engine_export::write_oci_layout_dir(
                            std::slice::from_ref(&image),
                            &state.blobs,
                            &out.dest,
                            &eopts,
                        )
                        .map(|r| (r, None)),
                    }
                    .map_err(|e| fail(&e))?;
                    let (result, pending) = result;
                    if let Some(p) = pending {
                        p.commit()?;
                    }
                    digest_lines.push((name.clone(), digest_line(&result)));
                    reports.exported(name, &result, &eopts.names);
                }
            }
            trace.span(
                &format!("export {name} to {}", out.dest.display()),
                "export",
                exporting,
                std::time::Instant::now(),
            );
        }
        if outputs.is_empty() {
            let image = crate::buildx::assemble(
                &decorations,
                &state,
                value,
                &platform,
                LayerSettings {
                    compression: engine_layers::Compression::Gzip,
                    source_date_epoch: epoch.map(|e| e as i64),
                },
            )
            .map_err(|e| Failure::infra("cannot assemble the image").caused_by(&e))?;
            let cfg = image
                .config_bytes()
                .map_err(|e| Failure::infra("cannot write the image config").caused_by(&e))?;
            let id = engine_cache::Digest::of(&cfg).to_string();
            digest_lines.push((name.clone(), format!("config {id}")));
            reports.image_id(name, id);
        }
    }
    for c in &cache_to {
        let targets: Vec<_> = solved
            .targets
            .iter()
            .filter(|(name, _)| c.targets.as_ref().is_none_or(|t| t.contains(name)))
            .map(|(_, v)| v.clone())
            .collect();
        let staging = match &c.registry {
            Some(_) => Some(tempfile::tempdir().map_err(|e| {
                Failure::infra("--cache-to: cannot make a temporary directory").caused_by(&e)
            })?),
            None => None,
        };
        let dir = staging
            .as_ref()
            .map_or(c.dir.clone(), |t| t.path().to_path_buf());
        let req = ExportRequest {
            dir: &dir,
            mode: c.mode,
            targets: &targets,
            steps: &solved.steps,
            settings: LayerSettings {
                compression: engine_layers::Compression::Gzip,
                source_date_epoch: epoch.map(|e| e as i64),
            },
        };
        let exporting = std::time::Instant::now();
        cache_share::export(&state, &req).map_err(|e| {
            Failure::infra(format!("cannot export the cache to `{}`", c.dir.display()))
                .caused_by(&e)
        })?;
        if let Some(r) = &c.registry {
            engine_solver::cache_registry::push(&registry, &dir, r).map_err(|e| {
                Failure::infra(format!("--cache-to: cannot push the cache to `{r}`")).caused_by(&e)
            })?;
        }
        trace.span(
            &format!("export cache to {}", c.dir.display()),
            "export",
            exporting,
            std::time::Instant::now(),
        );
    }
    // Record what this build used; collect down to the size limit.
    if let Err(e) = state.finish(max_size) {
        eprintln!(
            "warning: cache bookkeeping failed: {}",
            crate::failure::one_line(&e)
        );
    }
    let steps = solved.executed + solved.cached;
    let ratio = if steps == 0 {
        100.0
    } else {
        solved.cached as f64 * 100.0 / steps as f64
    };
    let json = mode == Some(Mode::Json);
    if json {
        // --progress json: the summary is an event too, no plain lines.
        let images: BTreeMap<&str, &str> = digest_lines
            .iter()
            .map(|(n, d)| (n.as_str(), d.split(' ').next().unwrap_or_default()))
            .collect();
        let states: BTreeMap<&str, &str> = solved
            .states
            .iter()
            .map(|(n, s)| {
                let word = match s {
                    build::TargetState::Built => "built",
                    build::TargetState::Cached => "cached",
                    build::TargetState::Failed => "failed",
                    build::TargetState::NotStarted => "not started",
                };
                (n.as_str(), word)
            })
            .collect();
        eprintln!(
            "{}",
            serde_json::json!({
                "summary": {
                    "targets": states,
                    "steps": steps,
                    "cached": solved.cached,
                    "executed": solved.executed,
                    "duration_ms": solved.elapsed.as_millis() as u64,
                    "images": images,
                }
            })
        );
    } else if !args.quiet {
        eprintln!(
            "built {} target(s): {steps} steps, {} cached, {} executed, {:.1}s, cache hit ratio {ratio:.0}%",
            solved.targets.len(),
            solved.cached,
            solved.executed,
            solved.elapsed.as_secs_f64()
        );
    }
    if solved.executed > 0 && mode != Some(Mode::Quiet) && !json {
        if let Some(summary) = trace.summary(&planned.graph) {
            for line in summary.lines() {
                eprintln!("{line}");
            }
        }
    }
    write_trace(args.trace.as_deref(), &trace)?;
    if let Some(path) = &args.iidfile {
        match reports.image_ids().next().map(|(_, id)| id) {
            Some(id) => std::fs::write(path, id).map_err(|e| {
                Failure::infra(format!("cannot write --iidfile `{}`", path.display())).caused_by(&e)
            })?,
            None => eprintln!(
                "warning: --iidfile: the build exported no image (type=local and type=tar \
                 outputs have no image ID); `{}` not written",
                path.display()
            ),
        }
    }
    if let Some(path) = &args.metadata_file {
        let doc = crate::metadata::document(&reports, planned.toml_targets.is_some());
        crate::metadata::write_json(path, &doc, "--metadata-file")?;
    }
    // One line per target; the target is named when there are several.
    let several = planned.units.len() > 1;
    if args.quiet {
        // The image ID alone on standard output, as docker build -q.
        crate::metadata::print_quiet(&reports, several)?;
    } else if !json {
        let mut seen = std::collections::BTreeSet::new();
        for (name, d) in digest_lines {
            if !seen.insert(name.clone()) {
                continue;
            }
            if several {
                eprintln!("image digest ({name}): {d}");
            } else {
                eprintln!("image digest: {d}");
            }
        }
    }
    if stopped {
        // --keep-going: what could be built was exported; the build still
        // failed. Every failure is shown, the first one last, as the error.
        let mut all: Vec<Failure> = failures.collect();
        if all.is_empty() {
            return Err(render_step_error(BuildError::Cancelled));
        }
        let first = all.remove(0);
        for f in all {
            eprint!("{}", f.render());
        }
        return Err(first);
    }
    Ok(())
}

/// `--trace FILE`: the build's timeline as Chrome trace-event JSON.
fn write_trace(
    path: Option<&std::path::Path>,
    trace: &engine_solver::trace::Trace,
) -> Result<(), Failure> {
    let Some(path) = path else {
        return Ok(());
    };
    std::fs::File::create(path)
        .map(std::io::BufWriter::new)
        .and_then(|f| trace.write_chrome(f))
        .map_err(|e| {
            Failure::infra(format!("cannot write the trace to `{}`", path.display())).caused_by(&e)
        })
}

/// The entitlements (`--allow`) and limits (`--memory`, `--pids-limit`) of the
/// build's RUN steps. A step that needs an entitlement not granted is refused
/// here, before anything runs, pointing at its instruction (the solver checks
/// again where steps run). A flag wins over the TOML spec's `[limits]`
/// (`spec`), which wins over the defaults; entitlements come from the command
/// line only, so that a spec cannot grant itself any.
fn sandbox_policy(
    args: &BuildArgs,
    graph: &engine_ir::Graph,
    spec: &engine_toml::Limits,
) -> Result<(engine_solver::run::Entitlements, engine_sandbox::Limits), Failure> {
    let mut ent = engine_solver::run::Entitlements::default();
    for a in &args.allow {
        ent.allow(a.trim()).map_err(|e| {
            Failure::hint(
                e,
                "BuildKit's entitlements: --allow network.host,security.insecure",
            )
        })?;
    }
    for (_, node) in graph.nodes() {
        let engine_ir::Op::Exec(e) = &node.op else {
            continue;
        };
        let refusal = if e.network == engine_ir::NetworkMode::Host && !ent.network_host {
            Some(engine_solver::run::NOT_ALLOWED_NETWORK_HOST)
        } else if e.security == engine_ir::SecurityMode::Insecure && !ent.security_insecure {
            Some(engine_solver::run::NOT_ALLOWED_INSECURE)
        } else {
            None
        };
        if let Some(r) = refusal {
            let at = node
                .meta
                .location
                .as_ref()
                .map(|l| format!("{}:{}:{}: ", l.file, l.line, l.col))
                .unwrap_or_default();
            return Err(Failure::msg(format!("{at}{} ({r})", node.meta.name)));
        }
    }
    let mut limits = engine_sandbox::Limits::default();
    if let Some(m) = &args.memory {
        let bytes = engine_cache::units::parse_size(m).map_err(|e| {
            Failure::hint(format!("--memory {m}: {e}"), "a size such as 512m or 4g")
        })?;
        if bytes < (6 << 20) {
            return Err(Failure::msg(format!(
                "--memory {m}: the minimum is 6 MiB, as in Docker"
            )));
        }
        limits.memory = Some(bytes);
    } else if let Some(bytes) = spec.memory {
        // Checked (at least 6 MiB) where the spec was read.
        limits.memory = Some(bytes);
    }
    match args.pids_limit.or(spec.pids_limit) {
        None => {}
        Some(n) if n < 0 => limits.pids = None,
        Some(0) => {
            return Err(Failure::hint(
                "--pids-limit 0 would stop every step",
                "a positive number, or -1 for no limit",
            ))
        }
        Some(n) => limits.pids = Some(n as u64),
    }
    Ok((ent, limits))
}

/// `--cache-max-size`: a size, `off`, or (default) 10% of the cache's file
/// system.
fn cache_max_size(flag: &Option<String>, state: &StateDir) -> Result<Option<u64>, Failure> {
    match flag.as_deref().map(str::trim) {
        None | Some("") => Ok(Some(engine_cache::units::default_max_size(&state.root))),
        Some("off" | "none" | "unlimited") => Ok(None),
        Some(s) => engine_cache::units::parse_size(s)
            .map(Some)
            .map_err(|e| Failure::hint(e.to_string(), "or `off` to never collect automatically")),
    }
}

/// `--no-cache-filter` stage names, lowercased as stage names are. Step
/// names of a single-stage Dockerfile carry no stage name: there `""`
/// stands for its one stage.
fn no_cache_filter(args: &BuildArgs) -> Result<Vec<String>, Failure> {
    let mut out: Vec<String> = args
        .no_cache_filter
        .iter()
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    if out.is_empty() {
        return Ok(out);
    }
    let (file, frontend) = crate::plan::locate(&args.plan)?;
    // (A Dockerfile read from stdin was consumed by planning.)
    if frontend == crate::cli::Frontend::Dockerfile && file != std::path::Path::new("-") {
        let text = crate::plan::read_definition(&args.plan.context, &file)?;
        let stages: Vec<String> = engine_dockerfile::parser::parse(&text)
            .ok()
            .and_then(|ast| engine_dockerfile::instructions::parse_all(&ast).ok())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| match i.inner {
                engine_dockerfile::instructions::Instruction::From { alias, .. } => {
                    Some(alias.unwrap_or_default())
                }
                _ => None,
            })
            .collect();
        // The names a step can carry: an alias, or `stage-N` for a stage
        // without one (and `0` for a single-stage Dockerfile).
        let mut known: Vec<String> = stages
            .iter()
            .enumerate()
            .map(|(i, a)| {
                if a.is_empty() {
                    format!("stage-{i}")
                } else {
                    a.to_ascii_lowercase()
                }
            })
            .collect();
        if stages.len() == 1 {
            known.extend(["stage-0".to_string(), "0".to_string()]);
        }
        if !stages.is_empty() {
            for f in &out {
                if known.contains(f) {
                    continue;
                }
                let hint =
                    match engine_toml::error::did_you_mean(f, known.iter().map(String::as_str)) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("the stages are: {}", known.join(", ")),
                    };
                return Err(Failure::hint(
                    format!("--no-cache-filter: the Dockerfile has no stage named `{f}`"),
                    hint,
                ));
            }
        }
        if let [only] = stages.as_slice() {
            if out.iter().any(|f| f == only || f == "stage-0" || f == "0") {
                out.push(String::new());
            }
        }
    }
    Ok(out)
}

/// A file output being written: a temporary file beside its destination,
/// renamed into place by [`Pending::commit`] once the export succeeded, so
/// that a failed export (a full disk, a bad blob) leaves the previous
/// output as it was, never a partial one. Dropped uncommitted, the
/// temporary file goes.
struct Pending(Option<(tempfile::TempPath, std::path::PathBuf)>);

impl Pending {
    fn commit(self) -> Result<(), Failure> {
        let Some((temp, dest)) = self.0 else {
            return Ok(());
        };
        // The old file goes first: renaming over it would make ext4 flush
        // the new one (auto_da_alloc), which made re-exporting a 512 MiB
        // image wait ~1 s. It also replaces a symlink at the destination
        // instead of writing through it.
        match std::fs::remove_file(&dest) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(
                    Failure::infra(format!("cannot replace `{}`", dest.display())).caused_by(&e),
                )
            }
        }
        temp.persist(&dest).map_err(|e| {
            Failure::infra(format!("cannot write `{}`", dest.display())).caused_by(&e.error)
        })
    }
}

const OUTPUT_TEMP_PREFIX: &str = ".engine-output-";

/// Remove temporary outputs older than an hour beside a new one: left by an
/// export that was killed (a live export's file is younger, or still being
/// written). Errors are ignored: another build may be sweeping too.
fn sweep_stale_outputs(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let hour = std::time::Duration::from_secs(3600);
    for e in entries.flatten() {
        let stale = e
            .file_name()
            .to_string_lossy()
            .starts_with(OUTPUT_TEMP_PREFIX)
            && e.metadata().is_ok_and(|m| {
                m.is_file()
                    && m.modified()
                        .is_ok_and(|t| t.elapsed().is_ok_and(|a| a > hour))
            });
        if stale {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

fn create(p: &std::path::Path) -> Result<(std::fs::File, Pending), Failure> {
    if p.as_os_str() == "-" {
        // `dest=-`: standard output, which must not be a terminal (buildx).
        let out = std::io::stdout();
        if std::io::IsTerminal::is_terminal(&out) {
            return Err(Failure::hint(
                "refusing to write a tar to the terminal",
                "redirect standard output to a file or a pipe (engine build -o - . > image.tar)",
            ));
        }
        use std::os::fd::AsFd;
        return out
            .as_fd()
            .try_clone_to_owned()
            .map(|f| (std::fs::File::from(f), Pending(None)))
            .map_err(|e| Failure::infra("cannot write to standard output").caused_by(&e));
    }
    let parent = p
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| {
        Failure::infra(format!("cannot create `{}`", parent.display())).caused_by(&e)
    })?;
    sweep_stale_outputs(parent);
    let temp = tempfile::Builder::new()
        .prefix(OUTPUT_TEMP_PREFIX)
        .tempfile_in(parent)
        .map_err(|e| Failure::infra(format!("cannot create `{}`", p.display())).caused_by(&e))?;
    let (file, path) = temp.into_parts();
    Ok((file, Pending(Some((path, p.to_path_buf())))))
}

/// An output that could not be written: export I/O, exit code 3.
fn export_failed(dest: &std::path::Path, e: &(dyn std::error::Error + 'static)) -> Failure {
    Failure::infra(format!("cannot export to `{}`", dest.display())).caused_by(e)
}

/// Outputs and tags of one graph target.
type TargetExports = (Vec<outputs::Output>, Vec<String>);

/// Outputs and tags of each graph target: the command line's for a
/// Dockerfile (or a single TOML target), the spec's own otherwise.
fn exports_per_target(
    planned: &crate::plan::Planned,
    cli_outputs: &[outputs::Output],
    cli_tags: &[String],
) -> Result<BTreeMap<String, TargetExports>, Failure> {
    let mut out = BTreeMap::new();
    let Some(targets) = &planned.toml_targets else {
        for u in &planned.units {
            out.insert(u.name.clone(), (cli_outputs.to_vec(), cli_tags.to_vec()));
        }
        return Ok(out);
    };
    let base = planned.spec_dir.clone().unwrap_or_default();
    for t in targets {
        let tags = if cli_tags.is_empty() {
            t.tags.clone()
        } else {
            cli_tags.to_vec()
        };
        let outs = if !cli_outputs.is_empty() {
            // As `bake --set '*.output=…'`: every target gets them.
            cli_outputs
                .iter()
                .map(|o| crate::bake::output_for(&t.name, o, targets.len() > 1))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            let mut v = Vec::new();
            for e in &t.outputs {
                let mut o = outputs::parse(&exporter_spec(e))?;
                if o.dest.is_relative() {
                    o.dest = base.join(&o.dest);
                }
                v.push(o);
            }
            v
        };
        out.insert(t.name.clone(), (outs, tags));
    }
    Ok(out)
}
