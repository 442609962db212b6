//! From command-line flags to a planned graph: read the Dockerfile and its
//! ignore file, parse build args and named contexts, run the frontend.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use engine_dockerfile::lower::{NamedContext, PlanOptions};
use engine_ir::{Graph, GraphBuilder, ImageResolver, Platform, Target};

use crate::cli::{Frontend, PlanArgs};
use crate::diagnostic::SourceError;
use crate::{Failure, Kind};

/// One result the user asked for: a Dockerfile's target, or a TOML
/// target, with one image per platform (several make an image index).
#[derive(Debug, Clone)]
pub struct Unit {
    pub name: String,
    /// Graph target and platform of each image, in `--platform` order.
    pub images: Vec<(String, Platform)>,
}

pub struct Planned {
    pub graph: Graph,
    /// What the build exports, one entry per target the user asked for.
    pub units: Vec<Unit>,
    /// TOML targets with their tags, outputs and context directories.
    pub toml_targets: Option<Vec<engine_toml::TargetInfo>>,
    /// Local sources a TOML spec names, by source name.
    pub context_dirs: BTreeMap<String, PathBuf>,
    /// Where relative output paths of the spec are taken from.
    pub spec_dir: Option<PathBuf>,
    /// A TOML spec's `[limits]` (none for a Dockerfile): `--memory` and
    /// `--pids-limit` win over them.
    pub limits: engine_toml::Limits,
    pub warnings: Vec<String>,
}

/// The definition file the user meant, and which frontend reads it.
pub fn locate(args: &PlanArgs) -> Result<(PathBuf, Frontend), Failure> {
    let file = match &args.file {
        Some(f) => f.clone(),
        None => {
            let dockerfile = args.context.join("Dockerfile");
            let toml = args.context.join("engine.toml");
            match args.frontend {
                Some(Frontend::Toml) => toml,
                Some(Frontend::Dockerfile) => dockerfile,
                None if !dockerfile.exists() && toml.exists() => toml,
                None => dockerfile,
            }
        }
    };
    let frontend = args.frontend.unwrap_or_else(|| {
        if file.extension().is_some_and(|e| e == "toml") {
            Frontend::Toml
        } else {
            Frontend::Dockerfile
        }
    });
    Ok((file, frontend))
}

pub fn parse_build_args(raw: &[String]) -> Result<BTreeMap<String, String>, Failure> {
    let mut out = BTreeMap::new();
    for item in raw {
        let name = item.split_once('=').map_or(item.as_str(), |(k, _)| k);
        if name.chars().any(char::is_whitespace) {
            return Err(Failure::hint(
                format!("invalid --build-arg `{item}`: the name `{name}` contains whitespace"),
                "write --build-arg NAME=VALUE (quote it whole when the value has spaces: --build-arg \"NAME=a b\")",
            ));
        }
        match item.split_once('=') {
            Some(("", _)) => {
                return Err(Failure::hint(
                    format!("invalid --build-arg `{item}`: empty name"),
                    "write --build-arg NAME=VALUE",
                ))
            }
            Some((k, v)) => {
                out.insert(k.to_string(), v.to_string());
            }
            // Docker takes a bare NAME from the environment, and drops it when unset.
            None => {
                if let Ok(v) = std::env::var(item) {
                    out.insert(item.clone(), v);
                }
            }
        }
    }
    Ok(out)
}

#[derive(Debug, Clone)]
pub enum ContextSpec {
    Dir(PathBuf),
    Layout {
        path: PathBuf,
        reference: Option<String>,
    },
    Image(String),
}

pub fn parse_build_contexts(raw: &[String]) -> Result<BTreeMap<String, ContextSpec>, Failure> {
    let mut out = BTreeMap::new();
    for item in raw {
        let Some((name, value)) = item.split_once('=') else {
            return Err(Failure::hint(
                format!("invalid --build-context `{item}`"),
                "write --build-context NAME=PATH or NAME=oci-layout://PATH[:TAG|@DIGEST]",
            ));
        };
        if name.is_empty() || value.is_empty() {
            return Err(Failure::msg(format!(
                "invalid --build-context `{item}`: empty name or value"
            )));
        }
        let spec = if let Some(rest) = value.strip_prefix("oci-layout://") {
            let (path, reference) = split_layout_ref(rest);
            ContextSpec::Layout {
                path: PathBuf::from(path),
                reference,
            }
        } else if let Some(r) = value.strip_prefix("docker-image://") {
            ContextSpec::Image(r.to_string())
        } else if value.contains("://") {
            return Err(Failure::msg(format!("unsupported build context `{value}`")));
        } else {
            ContextSpec::Dir(PathBuf::from(value))
        };
        out.insert(name.to_string(), spec);
    }
    Ok(out)
}

/// `PATH[:TAG|@DIGEST]`; a colon inside the path's directories is kept.
fn split_layout_ref(s: &str) -> (&str, Option<String>) {
    if let Some((p, d)) = s.rsplit_once('@') {
        return (p, Some(format!("@{d}")));
    }
    let last_slash = s.rfind('/').map_or(0, |i| i + 1);
    match s[last_slash..].rfind(':') {
        Some(i) => (
            &s[..last_slash + i],
            Some(s[last_slash + i + 1..].to_string()),
        ),
        None => (s, None),
    }
}

pub fn read_text(path: &Path) -> Result<String, Failure> {
    if path == Path::new("-") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| Failure::msg(format!("cannot read the Dockerfile from stdin: {e}")))?;
        return Ok(s);
    }
    std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Failure::hint(
                format!("cannot read `{}`: no such file", path.display()),
                "pass the file with -f, or the context directory that holds it",
            )
        } else {
            Failure::msg(format!("cannot read `{}`: {e}", path.display()))
        }
    })
}

/// `path` made absolute without touching the disk, `.` and `..` folded.
fn lexical_absolute(path: &Path) -> std::io::Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in std::path::absolute(path)?.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c),
        }
    }
    Ok(out)
}

/// The directory a definition file (Dockerfile, ignore file, TOML spec) is
/// read inside: the context when the file is named inside it (its default
/// place), else the directory that holds it (`-f` naming a file elsewhere).
fn definition_root(context: &Path, file: &Path) -> Result<PathBuf, Failure> {
    let canonical = |p: &Path| {
        std::fs::canonicalize(p)
            .map_err(|e| Failure::msg(format!("cannot use `{}`", p.display())).caused_by(&e))
    };
    let inside = match (lexical_absolute(file), lexical_absolute(context)) {
        (Ok(f), Ok(c)) => f.starts_with(c),
        _ => false,
    };
    if inside {
        return canonical(context);
    }
    let parent = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    canonical(parent)
}

/// Read the text of `path` inside `root`: a symlink is followed only while
/// it stays inside, and only a regular file is opened (never a FIFO, a
/// device or a socket). Errors name the path, never the file's content; a
/// missing file (or a link to one) is `NotFound`.
pub fn read_inside(root: &Path, path: &Path) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind, Read};
    let root = std::fs::canonicalize(root)?;
    let resolved = std::fs::canonicalize(path)?;
    if !resolved.starts_with(&root) {
        let how = match std::fs::read_link(path) {
            Ok(t) => format!("it is a symlink to `{}`", t.display()),
            Err(_) => format!("it resolves to `{}`", resolved.display()),
        };
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            format!("{how}, outside `{}`", root.display()),
        ));
    }
    let mut f = engine_solver::fsutil::open_regular(&resolved, None)?;
    let mut text = String::new();
    f.read_to_string(&mut text)?;
    Ok(text)
}

/// Read a Dockerfile or TOML spec (`-` is stdin) inside its context, see
/// [`read_inside`].
pub fn read_definition(context: &Path, file: &Path) -> Result<String, Failure> {
    if file == Path::new("-") {
        return read_text(file);
    }
    let root = definition_root(context, file)?;
    read_inside(&root, file).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Failure::hint(
                format!("cannot read `{}`: no such file", file.display()),
                "pass the file with -f, or the context directory that holds it",
            )
        } else {
            Failure::hint(
                format!("cannot read `{}`: {e}", file.display()),
                "a Dockerfile or spec must be a regular file inside its context (a symlink may point only inside it)",
            )
        }
    })
}

/// `<Dockerfile>.dockerignore` beside the Dockerfile wins over the context's.
/// Each is read inside its context (see [`read_inside`]).
fn read_dockerignore(dockerfile: &Path, context: &Path) -> Result<Option<String>, Failure> {
    let mut candidates = Vec::new();
    if dockerfile != Path::new("-") {
        let mut beside = dockerfile.as_os_str().to_owned();
        beside.push(".dockerignore");
        let beside = PathBuf::from(beside);
        candidates.push((definition_root(context, &beside)?, beside));
    }
    candidates.push((context.to_path_buf(), context.join(".dockerignore")));
    for (root, c) in candidates {
        match read_inside(&root, &c) {
            Ok(s) => return Ok(Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(Failure::hint(
                    format!("cannot read `{}`: {e}", c.display()),
                    "an ignore file must be a regular file inside its context (a symlink may point only inside it)",
                ))
            }
        }
    }
    Ok(None)
}

/// The directories and layouts the solver reads: the main context plus
/// named contexts.
pub fn solver_contexts(
    args: &PlanArgs,
) -> Result<BTreeMap<String, engine_solver::run::ContextSource>, Failure> {
    use engine_solver::run::ContextSource;
    let abs = |p: &Path| {
        std::fs::canonicalize(p)
            .map_err(|e| Failure::msg(format!("cannot use `{}`", p.display())).caused_by(&e))
    };
    let mut out = BTreeMap::new();
    out.insert(
        "context".to_string(),
        ContextSource::Dir(abs(&args.context)?),
    );
    for (name, spec) in parse_build_contexts(&args.build_contexts)? {
        match spec {
            ContextSpec::Dir(p) => {
                out.insert(name, ContextSource::Dir(abs(&p)?));
            }
            ContextSpec::Layout { path, reference } => {
                let raw = match &reference {
                    Some(r) if r.starts_with('@') => format!("{}{r}", path.display()),
                    Some(r) => format!("{}:{r}", path.display()),
                    None => path.display().to_string(),
                };
                let (path, reference) = engine_export::parse_oci_layout_ref(&raw).map_err(|e| {
                    Failure::msg(format!("invalid --build-context `{name}`")).caused_by(&e)
                })?;
                out.insert(
                    name,
                    ContextSource::Layout {
                        path: abs(&path)?,
                        reference,
                    },
                );
            }
            ContextSpec::Image(_) => {}
        }
    }
    Ok(out)
}

pub fn plan(args: &PlanArgs, resolver: &dyn ImageResolver) -> Result<Planned, Failure> {
    let (file, frontend) = locate(args)?;
    if frontend == Frontend::Toml {
        return plan_toml(args, &file, resolver);
    }
    if !args.context.is_dir() {
        return Err(Failure::msg(format!(
            "context `{}` is not a directory",
            args.context.display()
        )));
    }
    let text = read_definition(&args.context, &file)?;
    let dockerignore = read_dockerignore(&file, &args.context)?;
    let build_args = parse_build_args(&args.build_args)?;
    let contexts = parse_build_contexts(&args.build_contexts)?;
    let platforms = parse_platforms(args.platform.as_deref())?;
    let display_name = file.file_name().map_or_else(
        || "Dockerfile".to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let named_contexts = contexts
        .iter()
        .map(|(k, v)| {
            let nc = match v {
                ContextSpec::Dir(_) => NamedContext::Local,
                ContextSpec::Layout { .. } => NamedContext::Layout,
                ContextSpec::Image(r) => NamedContext::Image(r.clone()),
            };
            (k.clone(), nc)
        })
        .collect();
    if args.target.len() > 1 {
        return Err(Failure::msg("a Dockerfile build takes one --target"));
    }
    let opts = PlanOptions {
        filename: display_name.clone(),
        dockerignore: dockerignore.as_deref(),
        target: args.target.first().cloned(),
        build_args,
        target_platform: platforms[0].clone(),
        build_platform: Platform::host(),
        named_contexts,
        resolver,
        context_name: "context".into(),
    };
    let render = |e: engine_dockerfile::Error| {
        Failure::rendered(
            Kind::Usage,
            SourceError::from_frontend(&display_name, &text, &e).render(),
        )
    };
    if platforms.len() == 1 {
        let planned = engine_dockerfile::lower::plan(&text, &opts).map_err(render)?;
        let units = planned
            .graph
            .targets()
            .iter()
            .map(|t| Unit {
                name: t.name.clone(),
                images: vec![(t.name.clone(), platforms[0].clone())],
            })
            .collect();
        return Ok(Planned {
            graph: planned.graph,
            units,
            toml_targets: None,
            context_dirs: BTreeMap::new(),
            spec_dir: None,
            limits: engine_toml::Limits::default(),
            warnings: planned.warnings,
        });
    }
    // Several platforms: the Dockerfile lowered once per platform into one
    // graph, where steps that do not depend on the target platform (a
    // `FROM --platform=$BUILDPLATFORM` stage) are the same node and run once.
    let mut builder = GraphBuilder::new();
    let mut targets = Vec::new();
    let mut warnings: Vec<String> = Vec::new();
    let mut unit = Unit {
        name: String::new(),
        images: Vec::new(),
    };
    let mut opts = opts;
    for p in &platforms {
        opts.target_platform = p.clone();
        let planned = engine_dockerfile::lower::plan(&text, &opts).map_err(render)?;
        // Step names say the platform, as BuildKit's do: `[linux/arm64 2/3] RUN …`.
        let named = |m: &engine_ir::NodeMeta| {
            let mut m = m.clone();
            if let Some(rest) = m.name.strip_prefix('[') {
                m.name = format!("[{p} {rest}");
            }
            m
        };
        for t in builder.import_with(&planned.graph, named) {
            let image = format!("{}@{p}", t.name);
            unit.name = t.name;
            unit.images.push((image.clone(), p.clone()));
            targets.push(Target {
                name: image,
                node: t.node,
            });
        }
        for w in planned.warnings {
            if !warnings.contains(&w) {
                warnings.push(w);
            }
        }
    }
    Ok(Planned {
        graph: builder.finish(targets),
        units: vec![unit],
        toml_targets: None,
        context_dirs: BTreeMap::new(),
        spec_dir: None,
        limits: engine_toml::Limits::default(),
        warnings,
    })
}

/// `--platform linux/amd64,linux/arm64`: one or more platforms, in order,
/// without repeats; none given is the host's.
pub fn parse_platforms(flag: Option<&str>) -> Result<Vec<Platform>, Failure> {
    let Some(flag) = flag else {
        return Ok(vec![Platform::host()]);
    };
    let mut out: Vec<Platform> = Vec::new();
    for part in flag.split(',').map(str::trim) {
        if part.is_empty() {
            continue;
        }
        let p = Platform::parse(part).map_err(|e| {
            Failure::hint(
                e.to_string(),
                "write --platform os/arch[/variant], several separated by commas: linux/amd64,linux/arm64",
            )
        })?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    if out.is_empty() {
        return Err(Failure::hint(
            format!("--platform `{flag}` names no platform"),
            "write --platform linux/amd64,linux/arm64",
        ));
    }
    Ok(out)
}

fn named_contexts(args: &PlanArgs) -> Result<BTreeMap<String, NamedContext>, Failure> {
    Ok(parse_build_contexts(&args.build_contexts)?
        .into_iter()
        .map(|(k, v)| {
            let nc = match v {
                ContextSpec::Dir(_) => NamedContext::Local,
                ContextSpec::Layout { .. } => NamedContext::Layout,
                ContextSpec::Image(r) => NamedContext::Image(r),
            };
            (k, nc)
        })
        .collect())
}

fn plan_toml(
    args: &PlanArgs,
    file: &Path,
    resolver: &dyn ImageResolver,
) -> Result<Planned, Failure> {
    let text = read_definition(&args.context, file)?;
    let spec_dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let spec_dir = std::fs::canonicalize(&spec_dir)
        .map_err(|e| Failure::msg(format!("cannot use `{}`", spec_dir.display())).caused_by(&e))?;
    let read_file = |rel: &str| -> std::io::Result<String> {
        // Paths come from the spec: keep them inside its directory.
        if Path::new(rel).components().any(|c| {
            matches!(
                c,
                std::path::Component::ParentDir | std::path::Component::RootDir
            )
        }) {
            return Err(std::io::Error::other(format!(
                "`{rel}` is outside the spec's directory"
            )));
        }
        read_inside(&spec_dir, &spec_dir.join(rel))
    };
    let mut vars = parse_build_args(&args.build_args)?;
    vars.extend(parse_build_args(&args.set)?);
    let platform = match parse_platforms(args.platform.as_deref())?.as_slice() {
        [one] => one.clone(),
        _ => return Err(Failure::hint(
            "--platform takes one platform with a TOML spec",
            "list a target's platforms in the spec: platforms = [\"linux/amd64\", \"linux/arm64\"]",
        )),
    };
    let display = file.file_name().map_or_else(
        || "engine.toml".to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let check_dir = |rel: &str| -> Result<(), String> {
        let path = spec_dir.join(rel);
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(format!("`{}` is a file, not a directory", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(format!("`{}` does not exist", path.display()))
            }
            Err(e) => Err(format!("cannot use `{}`: {e}", path.display())),
        }
    };
    let mut opts = engine_toml::TomlPlanOptions::new(resolver, &read_file);
    opts.check_dir = Some(&check_dir);
    opts.file_name = display;
    opts.targets = args.target.clone();
    opts.vars = vars;
    opts.platform = platform;
    opts.build_platform = Platform::host();
    opts.named_contexts = named_contexts(args)?;
    let plan = engine_toml::plan(&text, &opts)
        .map_err(|e| Failure::rendered(Kind::Usage, SourceError::from_toml(&text, &e).render()))?;
    let mut context_dirs = BTreeMap::new();
    for t in &plan.targets {
        for (name, rel) in &t.context_dirs {
            context_dirs.insert(name.clone(), spec_dir.join(rel));
        }
    }
    let units = plan
        .targets
        .iter()
        .map(|t| Unit {
            name: t.name.clone(),
            images: t
                .images
                .iter()
                .map(|i| (i.target.clone(), i.platform.clone()))
                .collect(),
        })
        .collect();
    Ok(Planned {
        graph: plan.graph,
        units,
        toml_targets: Some(plan.targets),
        context_dirs,
        spec_dir: Some(spec_dir),
        limits: plan.limits,
        warnings: plan.warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_arg_names_have_no_whitespace() {
        let one = |s: &str| parse_build_args(&[s.to_string()]);
        assert!(one("V 5").is_err());
        assert!(one("A B=1").is_err());
        assert!(one("=1").is_err());
        let ok = one("V=5 6").unwrap();
        assert_eq!(ok.get("V").map(String::as_str), Some("5 6"));
    }

    #[test]
    fn layout_refs_split_on_the_last_component() {
        assert_eq!(
            split_layout_ref("/a/b:c/img:v1"),
            ("/a/b:c/img", Some("v1".into()))
        );
        assert_eq!(
            split_layout_ref("/a/img@sha256:ab"),
            ("/a/img", Some("@sha256:ab".into()))
        );
        assert_eq!(split_layout_ref("./img"), ("./img", None));
    }

    #[test]
    fn definition_files_are_read_inside_their_root() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "outside-content").unwrap();
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/real"), "inside").unwrap();
        let link = |target: &Path, name: &str| std::os::unix::fs::symlink(target, root.join(name));
        link(Path::new("sub/real"), "in").unwrap();
        link(&outside.path().join("secret"), "out").unwrap();
        link(Path::new("../../../../../../../../etc/passwd"), "climb").unwrap();
        link(Path::new("missing"), "dangling").unwrap();
        assert_eq!(read_inside(root, &root.join("in")).unwrap(), "inside");
        for name in ["out", "climb"] {
            let e = read_inside(root, &root.join(name)).unwrap_err();
            assert!(e.to_string().contains("outside"), "{name}: {e}");
            assert!(!e.to_string().contains("outside-content"));
        }
        let e = read_inside(root, &root.join("dangling")).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        let e = read_inside(root, &root.join("sub")).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        // The context is the root of a file named inside it, however named.
        let in_ctx = definition_root(root, &root.join("sub/../sub/real")).unwrap();
        assert_eq!(in_ctx, std::fs::canonicalize(root).unwrap());
        let elsewhere = definition_root(&root.join("sub"), &root.join("in")).unwrap();
        assert_eq!(elsewhere, std::fs::canonicalize(root).unwrap());
    }
}
