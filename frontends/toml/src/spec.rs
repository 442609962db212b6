//! The spec's data model and its reading from the spanned tree: key and
//! type checks (with "did you mean"), variable interpolation, `inherits`,
//! names and references between stages, images and groups, cycles.

use std::collections::{BTreeMap, BTreeSet};

use engine_ir::Platform;

use crate::error::{did_you_mean, SourceMap, TomlError};
use crate::tree::{Entry, Span, Table, Tree, Val};
use crate::vars::{self, Mode, Vars};

type Result<T, E = TomlError> = std::result::Result<T, E>;

/// A value with the span of the TOML it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L<T> {
    pub value: T,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Stage,
    Image,
}

impl Kind {
    pub fn word(self) -> &'static str {
        match self {
            Kind::Stage => "stage",
            Kind::Image => "image",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Spec {
    pub vars: Vars,
    /// Stages and images, in document order (stages first).
    pub units: Vec<Unit>,
    pub groups: Vec<Group>,
    pub limits: Limits,
}

/// `[limits]`: resource limits of every RUN step of the build. The command
/// line's `--memory` and `--pids-limit` win over them. There are no
/// entitlements here on purpose: only the command line grants those.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Limits {
    /// `memory`: most memory of a step, in bytes (at least 6 MiB).
    pub memory: Option<u64>,
    /// `pids-limit`: most processes and threads of a step at once, as the
    /// `--pids-limit` flag takes it: a positive number, or -1 for no limit.
    pub pids_limit: Option<i64>,
}

impl Spec {
    pub fn unit(&self, name: &str) -> Option<&Unit> {
        self.units.iter().find(|u| u.name == name)
    }

    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }
}

#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    pub targets: Vec<L<String>>,
}

#[derive(Debug, Clone)]
pub struct Unit {
    pub name: String,
    pub kind: Kind,
    /// The `[stage.NAME]` / `[image.NAME]` header (or the key of an inline table).
    pub span: Span,
    pub description: Option<String>,
    pub body: Body,
    pub settings: ImageSettings,
}

#[derive(Debug, Clone, Default)]
pub struct ImageSettings {
    pub tags: Vec<String>,
    pub platforms: Vec<L<Platform>>,
    pub outputs: Vec<Exporter>,
    pub cache_to: Vec<Exporter>,
    pub cache_from: Vec<Exporter>,
}

/// An output or cache setting: `type=oci,dest=out.tar` or
/// `{ type = "oci", dest = "out.tar" }`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Exporter {
    #[serde(rename = "type")]
    pub kind: String,
    pub attrs: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub enum Body {
    Inline(Inline),
    Dockerfile(DockerfileTarget),
}

/// A directory relative to the spec's directory, cleaned (`services/api`,
/// `.` for the spec's own directory).
#[derive(Debug, Clone)]
pub struct ContextDir {
    pub dir: String,
    pub span: Span,
    /// `ignore` patterns, added after those of the directory's `.dockerignore`.
    pub ignore: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct NamedCtx {
    pub name: String,
    pub span: Span,
    pub kind: CtxKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CtxKind {
    /// A directory (relative to the spec's directory, cleaned).
    Dir(String),
    /// `target:NAME`: a stage or image of the spec.
    Unit(String),
    /// `docker-image://REF`.
    Image(String),
}

#[derive(Debug, Clone)]
pub struct Inline {
    pub from: L<String>,
    pub platform: Option<L<String>>,
    pub context: ContextDir,
    pub contexts: Vec<NamedCtx>,
    /// Stage-level settings and steps, in the order they become instructions.
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone)]
pub struct DockerfileTarget {
    pub dockerfile: L<String>,
    pub context: ContextDir,
    pub contexts: Vec<NamedCtx>,
    pub target: Option<L<String>>,
    pub args: Vec<(String, String)>,
    /// Labels added on top of the Dockerfile's result.
    pub labels: Vec<(String, String)>,
    pub labels_span: Option<Span>,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub span: Span,
    pub op: StepOp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    Shell(String),
    Exec(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct MountSpec {
    pub span: Span,
    /// `key=value` fields in a fixed order, as `--mount` takes them.
    pub fields: Vec<(String, String)>,
    pub from: Option<L<String>>,
}

#[derive(Debug, Clone)]
pub struct Health {
    pub cmd: Cmd,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub start_period: Option<String>,
    pub start_interval: Option<String>,
    pub retries: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct CopySpec {
    pub add: bool,
    pub sources: Vec<String>,
    pub dest: String,
    pub from: Option<L<String>>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub exclude: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum StepOp {
    Run {
        cmd: Cmd,
        mounts: Vec<MountSpec>,
        network: Option<String>,
        security: Option<String>,
    },
    Copy(CopySpec),
    File {
        path: String,
        content: String,
        chown: Option<String>,
        chmod: Option<String>,
    },
    Env(Vec<(String, String)>),
    Arg(Vec<(String, Option<String>)>),
    Label(Vec<(String, String)>),
    Workdir(String),
    User(String),
    Expose(Vec<String>),
    Volume(Vec<String>),
    Entrypoint(Cmd),
    Cmd(Cmd),
    Healthcheck(Option<Health>),
    Shell(Vec<String>),
    StopSignal(String),
    Onbuild(String),
    Maintainer(String),
}

impl StepOp {
    /// Names of spec stages/images/contexts (or images) this step reads.
    pub fn references(&self) -> Vec<&L<String>> {
        match self {
            StepOp::Run { mounts, .. } => mounts.iter().filter_map(|m| m.from.as_ref()).collect(),
            StepOp::Copy(c) => c.from.iter().collect(),
            _ => Vec::new(),
        }
    }
}

// ---------------------------------------------------------------------------
// Key sets

const ROOT_KEYS: &[&str] = &[
    "$schema", "vars", "limits", "stage", "image", "template", "group",
];

const LIMITS_KEYS: &[&str] = &["memory", "pids-limit"];

/// The smallest `memory` limit (Docker's minimum, as for `--memory`).
const MIN_MEMORY: u64 = 6 << 20;

/// Why a spec cannot grant itself what `--allow` grants.
const NO_ENTITLEMENTS_HINT: &str = "entitlements are granted on the command line only (`--allow network.host,security.insecure`): a spec cannot grant them to itself";

/// Keys an inline stage takes, in the order their instructions are emitted
/// (`steps` marks where the steps go).
const STAGE_KEYS: &[&str] = &[
    "description",
    "from",
    "platform",
    "context",
    "ignore",
    "contexts",
    "args",
    "env",
    "shell",
    "workdir",
    "steps",
    "user",
    "maintainer",
    "labels",
    "expose",
    "volumes",
    "stop-signal",
    "healthcheck",
    "onbuild",
    "entrypoint",
    "cmd",
];

/// Keys only images (and templates) take.
const IMAGE_ONLY_KEYS: &[&str] = &[
    "inherits",
    "tags",
    "platforms",
    "outputs",
    "cache-to",
    "cache-from",
    "dockerfile",
    "target",
];

/// Keys of an inline stage that a Dockerfile target does not take.
const INLINE_ONLY_KEYS: &[&str] = &[
    "from",
    "platform",
    "env",
    "shell",
    "workdir",
    "steps",
    "user",
    "maintainer",
    "expose",
    "volumes",
    "stop-signal",
    "healthcheck",
    "onbuild",
    "entrypoint",
    "cmd",
];

/// Keys whose tables merge (key by key) through `inherits` instead of being
/// replaced.
const MERGED_KEYS: &[&str] = &["args", "env", "labels", "contexts"];

const STEP_VERBS: &[&str] = &[
    "run",
    "copy",
    "add",
    "file",
    "env",
    "arg",
    "label",
    "workdir",
    "user",
    "expose",
    "volume",
    "entrypoint",
    "cmd",
    "healthcheck",
    "shell",
    "stop-signal",
    "onbuild",
    "maintainer",
];

fn step_options(verb: &str) -> &'static [&'static str] {
    match verb {
        "run" => &["mounts", "network", "security"],
        "copy" => &["to", "from", "chown", "chmod", "link", "parents", "exclude"],
        "add" => &["to", "chown", "chmod", "link", "exclude"],
        "file" => &["content", "chown", "chmod"],
        _ => &[],
    }
}

const MOUNT_KEYS: &[&str] = &[
    "type", "target", "source", "from", "id", "sharing", "mode", "uid", "gid", "readonly",
    "required", "size", "env",
];

const HEALTH_KEYS: &[&str] = &[
    "cmd",
    "interval",
    "timeout",
    "start-period",
    "start-interval",
    "retries",
];

// ---------------------------------------------------------------------------
// Reading helpers

/// Reads typed values out of the tree, interpolating strings.
pub struct Reader<'a> {
    pub map: &'a SourceMap,
    pub vars: &'a Vars,
    /// The value of `${target}` while reading a stage or image.
    pub target: Option<String>,
}

fn expected(map: &SourceMap, what: &str, want: &str, t: &Tree) -> TomlError {
    let key = what.rsplit('.').next().unwrap_or(what);
    let example = if want.starts_with("a string") {
        format!("`{key} = \"…\"`")
    } else if want.starts_with("an array") {
        format!("`{key} = [\"…\"]`")
    } else if want.starts_with("a table") {
        format!("`{key} = {{ … }}`")
    } else {
        format!("{key} as {want}")
    };
    map.error(
        &t.span,
        format!("`{what}` must be {want}, found {}", t.value.type_name()),
    )
    .with_hint(format!("write {example}"))
}

impl Reader<'_> {
    fn interp(&self, s: &str, span: &Span, mode: Mode) -> Result<String> {
        self.vars
            .interpolate(s, self.target.as_deref(), mode)
            .map_err(|name| {
                self.vars
                    .unknown_var_error(self.map, span, &name, self.target.as_deref())
            })
    }

    pub fn string(&self, what: &str, t: &Tree, mode: Mode) -> Result<String> {
        match &t.value {
            Val::Str(s) => self.interp(s, &t.span, mode),
            _ => Err(expected(self.map, what, "a string", t)),
        }
    }

    fn l_string(&self, what: &str, t: &Tree, mode: Mode) -> Result<L<String>> {
        Ok(L {
            value: self.string(what, t, mode)?,
            span: t.span.clone(),
        })
    }

    /// A string, or (for ports and the like) an integer written as one.
    fn scalar(&self, what: &str, t: &Tree, mode: Mode) -> Result<String> {
        match &t.value {
            Val::Str(s) => self.interp(s, &t.span, mode),
            Val::Int(i) => Ok(i.to_string()),
            _ => Err(expected(self.map, what, "a string or an integer", t)),
        }
    }

    fn boolean(&self, what: &str, t: &Tree) -> Result<bool> {
        match &t.value {
            Val::Bool(b) => Ok(*b),
            _ => Err(expected(self.map, what, "a boolean (true or false)", t)
                .with_hint(format!("write `{what} = true`"))),
        }
    }

    /// An array of strings; `one_ok` also takes a single string.
    fn strings(&self, what: &str, t: &Tree, mode: Mode, one_ok: bool) -> Result<Vec<L<String>>> {
        match &t.value {
            Val::Str(_) if one_ok => Ok(vec![self.l_string(what, t, mode)?]),
            Val::Array(items) => items.iter().map(|i| self.l_string(what, i, mode)).collect(),
            Val::Str(s) => Err(expected(self.map, what, "an array of strings", t)
                .with_hint(format!("write `{what} = [{}]`", json(s)))),
            _ => Err(expected(
                self.map,
                what,
                if one_ok {
                    "a string or an array of strings"
                } else {
                    "an array of strings"
                },
                t,
            )),
        }
    }

    /// A table of string values (numbers and booleans are written as text),
    /// in document order.
    fn string_map(&self, what: &str, t: &Tree, mode: Mode) -> Result<Vec<(String, String)>> {
        let Val::Table(tab) = &t.value else {
            return Err(expected(self.map, what, "a table", t)
                .with_hint(format!("write `{what} = {{ NAME = \"value\" }}`")));
        };
        let mut out = Vec::new();
        for e in &tab.entries {
            let v = match &e.value.value {
                Val::Str(s) => self.interp(s, &e.value.span, mode)?,
                Val::Int(i) => self.map.number_text(&e.value.span, i.to_string()),
                Val::Float(f) => self.map.number_text(&e.value.span, f.to_string()),
                Val::Bool(b) => b.to_string(),
                _ => {
                    return Err(expected(
                        self.map,
                        &format!("{what}.{}", e.key),
                        "a string",
                        &e.value,
                    ));
                }
            };
            out.push((e.key.clone(), v));
        }
        Ok(out)
    }

    fn table<'t>(&self, what: &str, t: &'t Tree) -> Result<&'t Table> {
        match &t.value {
            Val::Table(tab) => Ok(tab),
            _ => Err(expected(self.map, what, "a table", t)),
        }
    }

    fn cmd(&self, what: &str, t: &Tree) -> Result<Cmd> {
        match &t.value {
            Val::Str(s) => Ok(Cmd::Shell(self.interp(s, &t.span, Mode::PassThrough)?)),
            Val::Array(_) => Ok(Cmd::Exec(
                self.strings(what, t, Mode::PassThrough, false)?
                    .into_iter()
                    .map(|l| l.value)
                    .collect(),
            )),
            _ => Err(expected(
                self.map,
                what,
                "a string (shell form) or an array of strings (exec form)",
                t,
            )),
        }
    }
}

fn json(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// Reject keys not in `allowed`, suggesting the closest one.
fn check_keys(
    map: &SourceMap,
    table: &Table,
    allowed: &[&str],
    where_: &str,
    extra_hint: &dyn Fn(&str) -> Option<String>,
) -> Result<()> {
    for e in &table.entries {
        if !allowed.contains(&e.key.as_str()) {
            let hint = extra_hint(&e.key)
                .or_else(|| {
                    did_you_mean(&e.key, allowed.iter().copied())
                        .map(|s| format!("did you mean `{s}`?"))
                })
                .unwrap_or_else(|| format!("expected one of: {}", allowed.join(", ")));
            return Err(map
                .error(&e.key_span, format!("unknown key `{}` in {where_}", e.key))
                .with_hint(hint));
        }
    }
    Ok(())
}

pub fn valid_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next().is_some_and(|f| f.is_ascii_lowercase())
        && c.all(|ch| {
            ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '-' | '_' | '.')
        })
}

/// Clean a path relative to the spec's directory: `./a//b/` → `a/b`, `.`
/// for the directory itself. Leading `..` are kept (a context may sit
/// beside the spec's directory).
pub fn clean_dir(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

/// `parent/child` for cleaned relative paths.
pub fn join_dir(parent: &str, child: &str) -> String {
    if parent == "." {
        clean_dir(child)
    } else {
        clean_dir(&format!("{parent}/{child}"))
    }
}

pub fn parent_dir(p: &str) -> String {
    match p.rsplit_once('/') {
        Some((d, _)) => clean_dir(d),
        None => ".".into(),
    }
}

// ---------------------------------------------------------------------------
// Reading the spec

struct RawUnit<'t> {
    name: String,
    kind: RawKind,
    span: Span,
    table: &'t Table,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RawKind {
    Stage,
    Image,
    Template,
    Group,
}

impl RawKind {
    fn word(self) -> &'static str {
        match self {
            RawKind::Stage => "stage",
            RawKind::Image => "image",
            RawKind::Template => "template",
            RawKind::Group => "group",
        }
    }
}

pub fn read(root: &Table, map: &SourceMap, overrides: &BTreeMap<String, String>) -> Result<Spec> {
    check_keys(map, root, ROOT_KEYS, "the spec", &|k| match k {
        "stages" | "images" | "templates" | "groups" => Some(format!(
            "tables are named in the singular: `[{}.NAME]`",
            k.trim_end_matches('s')
        )),
        "target" | "targets" => {
            Some("targets are `[image.NAME]` (or `[stage.NAME]`) tables".into())
        }
        "variables" | "args" => Some("spec variables go in `[vars]`".into()),
        "memory" | "pids-limit" | "limit" => {
            Some("resource limits go in a `[limits]` table".into())
        }
        "allow" | "entitlements" => Some(NO_ENTITLEMENTS_HINT.into()),
        _ => None,
    })?;
    let vars_table = match root.get("vars") {
        Some(e) => match &e.value.value {
            Val::Table(t) => Some((t, &e.value.span)),
            _ => return Err(expected(map, "vars", "a table", &e.value)),
        },
        None => None,
    };
    let vars = vars::resolve(vars_table, overrides, map)?;
    let limits = match root.get("limits") {
        Some(e) => read_limits(
            &Reader {
                map,
                vars: &vars,
                target: None,
            },
            &e.value,
        )?,
        None => Limits::default(),
    };

    // Every name, across kinds.
    let mut raw: Vec<RawUnit> = Vec::new();
    for (key, kind) in [
        ("stage", RawKind::Stage),
        ("image", RawKind::Image),
        ("template", RawKind::Template),
        ("group", RawKind::Group),
    ] {
        let Some(e) = root.get(key) else { continue };
        let Val::Table(t) = &e.value.value else {
            return Err(expected(map, key, "a table of tables", &e.value)
                .with_hint(format!("write `[{key}.NAME]` sections")));
        };
        for u in &t.entries {
            let Val::Table(body) = &u.value.value else {
                return Err(
                    expected(map, &format!("{key}.{}", u.key), "a table", &u.value)
                        .with_hint(format!("write a `[{key}.{}]` section", u.key)),
                );
            };
            if !valid_name(&u.key) {
                return Err(map
                    .error(&u.key_span, format!("invalid {} name `{}`", kind.word(), u.key))
                    .with_hint(
                        "names start with a lowercase letter, then lowercase letters, digits, `-`, `_` or `.` (as Dockerfile stage names)",
                    ));
            }
            if u.key == "scratch" {
                return Err(map
                    .error(&u.key_span, "`scratch` is the empty image, not a name")
                    .with_hint(
                        "pick another name: `from = \"scratch\"` always means the empty image",
                    ));
            }
            if let Some(prev) = raw.iter().find(|r| r.name == u.key) {
                return Err(map
                    .error(&u.key_span, format!("duplicate name `{}`", u.key))
                    .with_hint(format!(
                        "a {} of that name is defined at line {}: stages, images, templates and groups share one namespace",
                        prev.kind.word(),
                        map.location(&prev.span).line
                    )));
            }
            raw.push(RawUnit {
                name: u.key.clone(),
                kind,
                span: u.key_span.clone(),
                table: body,
            });
        }
    }

    let names: BTreeMap<&str, RawKind> = raw.iter().map(|r| (r.name.as_str(), r.kind)).collect();

    // inherits: merged tables for images and templates.
    let mut merged: BTreeMap<String, Table> = BTreeMap::new();
    for r in raw
        .iter()
        .filter(|r| matches!(r.kind, RawKind::Image | RawKind::Template))
    {
        merge_inherits(
            &r.name,
            &raw,
            &names,
            map,
            &vars,
            &mut merged,
            &mut Vec::new(),
        )?;
    }

    let mut units = Vec::new();
    for r in &raw {
        let reader = Reader {
            map,
            vars: &vars,
            target: Some(r.name.clone()),
        };
        match r.kind {
            RawKind::Stage => units.push(read_unit(&reader, r, r.table, Kind::Stage)?),
            RawKind::Image => {
                let t = &merged[&r.name];
                units.push(read_unit(&reader, r, t, Kind::Image)?);
            }
            RawKind::Template => {
                // Check the keys (and types) a template sets, as an image would.
                let t = &merged[&r.name];
                check_keys(
                    map,
                    t,
                    &all_image_keys(),
                    &format!("template `{}`", r.name),
                    &|_| None,
                )?;
            }
            RawKind::Group => {}
        }
    }
    // Stages first, then images: an image's name in a group or `--target`
    // means the same either way.
    units.sort_by_key(|u| u.kind);

    let mut groups = Vec::new();
    for r in raw.iter().filter(|r| r.kind == RawKind::Group) {
        groups.push(read_group(map, &vars, r, &names)?);
    }
    let spec = Spec {
        vars,
        units,
        groups,
        limits,
    };
    check_references(&spec, map)?;
    check_group_cycles(&spec, map)?;
    check_unit_cycles(&spec, map)?;
    Ok(spec)
}

/// `[limits]`: `memory` (a size or a number of bytes) and `pids-limit`.
fn read_limits(reader: &Reader, t: &Tree) -> Result<Limits> {
    let map = reader.map;
    let Val::Table(tab) = &t.value else {
        return Err(expected(map, "limits", "a table", t)
            .with_hint("write a `[limits]` section with `memory` and `pids-limit`"));
    };
    check_keys(map, tab, LIMITS_KEYS, "[limits]", &|k| match k {
        "allow" | "entitlements" | "network" | "security" => Some(NO_ENTITLEMENTS_HINT.into()),
        "pids" | "pids_limit" | "pidslimit" | "processes" => {
            Some("did you mean `pids-limit`?".into())
        }
        "memory-limit" | "memory_limit" | "mem" => Some("did you mean `memory`?".into()),
        _ => None,
    })?;
    let mut limits = Limits::default();
    if let Some(e) = tab.get("memory") {
        let size_hint = "a size such as `\"512m\"` or `\"4g\"`, or a number of bytes";
        let raw = match &e.value.value {
            Val::Int(i) => i.to_string(),
            Val::Str(s) => reader.interp(s, &e.value.span, Mode::Strict)?,
            _ => {
                return Err(expected(map, "limits.memory", "a size", &e.value)
                    .with_hint(format!("write {size_hint}")))
            }
        };
        let Some(bytes) = parse_size(&raw) else {
            return Err(map
                .error(&e.value.span, format!("invalid memory size `{raw}`"))
                .with_hint(format!("write {size_hint}")));
        };
        if bytes < MIN_MEMORY {
            return Err(map
                .error(
                    &e.value.span,
                    format!("memory limit `{raw}` is below the minimum of 6 MiB"),
                )
                .with_hint("the minimum is 6 MiB, as in Docker: write `memory = \"6m\"` or more"));
        }
        limits.memory = Some(bytes);
    }
    if let Some(e) = tab.get("pids-limit") {
        let hint = "write a positive number, or `pids-limit = -1` for no limit";
        limits.pids_limit = match e.value.value {
            Val::Int(-1) => Some(-1),
            Val::Int(n) if n > 0 => Some(n),
            Val::Int(0) => {
                return Err(map
                    .error(&e.value.span, "`pids-limit = 0` would stop every step")
                    .with_hint(hint))
            }
            Val::Int(n) => {
                return Err(map
                    .error(&e.value.span, format!("invalid pids-limit `{n}`"))
                    .with_hint(hint))
            }
            _ => {
                return Err(
                    expected(map, "limits.pids-limit", "an integer", &e.value).with_hint(hint)
                )
            }
        };
    }
    Ok(limits)
}

/// `1234`, `512k`, `64MB`, `1.5GiB`, `4g`: binary multiples whatever the
/// spelling, as the command line's `--memory` reads them (engine-cache's
/// `units::parse_size`, which this crate may not depend on).
fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return None,
    };
    let bytes = value * mult as f64;
    (bytes.is_finite() && bytes >= 0.0 && bytes <= u64::MAX as f64).then(|| bytes.round() as u64)
}

fn all_image_keys() -> Vec<&'static str> {
    STAGE_KEYS.iter().chain(IMAGE_ONLY_KEYS).copied().collect()
}

fn merge_inherits(
    name: &str,
    raw: &[RawUnit],
    names: &BTreeMap<&str, RawKind>,
    map: &SourceMap,
    vars: &Vars,
    merged: &mut BTreeMap<String, Table>,
    path: &mut Vec<String>,
) -> Result<()> {
    if merged.contains_key(name) {
        return Ok(());
    }
    let r = raw.iter().find(|r| r.name == name).expect("known name");
    path.push(name.to_string());
    let mut out = Table::default();
    if let Some(e) = r.table.get("inherits") {
        let reader = Reader {
            map,
            vars,
            target: None,
        };
        for parent in reader.strings("inherits", &e.value, Mode::Strict, true)? {
            match names.get(parent.value.as_str()) {
                Some(RawKind::Image | RawKind::Template) => {}
                Some(k) => {
                    return Err(map
                        .error(&parent.span, format!("`{}` is a {}, which cannot be inherited", parent.value, k.word()))
                        .with_hint(match k {
                            RawKind::Stage => "build on a stage with `from`; inherit settings from a `[template.NAME]` or an image",
                            _ => "`inherits` names templates or images",
                        }));
                }
                None => {
                    let candidates = names
                        .iter()
                        .filter(|(_, k)| matches!(k, RawKind::Image | RawKind::Template))
                        .map(|(n, _)| *n);
                    let hint = did_you_mean(&parent.value, candidates)
                        .map(|s| format!("did you mean `{s}`?"))
                        .unwrap_or_else(|| {
                            "`inherits` names `[template.NAME]` or `[image.NAME]` tables".into()
                        });
                    return Err(map
                        .error(&parent.span, format!("unknown template `{}`", parent.value))
                        .with_hint(hint));
                }
            }
            if let Some(start) = path.iter().position(|p| *p == parent.value) {
                let mut cycle: Vec<&str> = path[start..].iter().map(String::as_str).collect();
                cycle.push(&parent.value);
                return Err(map
                    .error(
                        &parent.span,
                        format!("cycle between targets: {}", cycle.join(" → ")),
                    )
                    .with_hint("`inherits` cannot lead back to the table itself"));
            }
            merge_inherits(&parent.value, raw, names, map, vars, merged, path)?;
            merge_into(&mut out, &merged[&parent.value]);
        }
    }
    merge_into(&mut out, r.table);
    path.pop();
    merged.insert(name.to_string(), out);
    Ok(())
}

fn merge_into(dst: &mut Table, src: &Table) {
    for e in &src.entries {
        if e.key == "inherits" {
            continue;
        }
        if MERGED_KEYS.contains(&e.key.as_str()) {
            if let (Some(existing), Val::Table(add)) = (
                dst.entries.iter_mut().find(|d| d.key == e.key),
                &e.value.value,
            ) {
                if let Val::Table(base) = &mut existing.value.value {
                    for a in &add.entries {
                        base.set(a.clone());
                    }
                    continue;
                }
            }
        }
        dst.set(Entry {
            key: e.key.clone(),
            key_span: e.key_span.clone(),
            value: e.value.clone(),
        });
    }
}

fn read_group(
    map: &SourceMap,
    vars: &Vars,
    r: &RawUnit,
    names: &BTreeMap<&str, RawKind>,
) -> Result<Group> {
    check_keys(
        map,
        r.table,
        &["targets", "description"],
        &format!("group `{}`", r.name),
        &|_| None,
    )?;
    let reader = Reader {
        map,
        vars,
        target: None,
    };
    let Some(e) = r.table.get("targets") else {
        return Err(map
            .error(&r.span, format!("group `{}` has no `targets`", r.name))
            .with_hint("write `targets = [\"image-a\", \"image-b\"]`"));
    };
    if let Some(d) = r.table.get("description") {
        reader.string("description", &d.value, Mode::Strict)?;
    }
    let targets = reader.strings("targets", &e.value, Mode::Strict, false)?;
    for t in &targets {
        match names.get(t.value.as_str()) {
            Some(RawKind::Template) => {
                return Err(map
                    .error(
                        &t.span,
                        format!("`{}` is a template, which is never built", t.value),
                    )
                    .with_hint("groups list images, stages or other groups"));
            }
            Some(_) => {}
            None => {
                let candidates = names
                    .iter()
                    .filter(|(_, k)| **k != RawKind::Template)
                    .map(|(n, _)| *n);
                return Err(unknown_target(map, &t.span, &t.value, candidates));
            }
        }
    }
    Ok(Group {
        name: r.name.clone(),
        targets,
    })
}

fn unknown_target<'a>(
    map: &SourceMap,
    span: &Span,
    name: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> TomlError {
    let all: Vec<&str> = candidates.collect();
    let hint = match did_you_mean(name, all.iter().copied()) {
        Some(s) => format!("did you mean `{s}`?"),
        None if all.is_empty() => "the spec defines no stages or images".into(),
        None => format!("known targets: {}", all.join(", ")),
    };
    map.error(span, format!("unknown target `{name}`"))
        .with_hint(hint)
}

fn read_unit(reader: &Reader, r: &RawUnit, t: &Table, kind: Kind) -> Result<Unit> {
    let map = reader.map;
    let where_ = format!("{} `{}`", kind.word(), r.name);
    match kind {
        Kind::Stage => check_keys(map, t, STAGE_KEYS, &where_, &|k| {
            IMAGE_ONLY_KEYS.contains(&k).then(|| {
                format!(
                    "`{k}` is a setting of images: make this an `[image.{}]`",
                    r.name
                )
            })
        })?,
        Kind::Image => check_keys(map, t, &all_image_keys(), &where_, &|_| None)?,
    }
    let get = |k: &str| t.get(k);
    let description = match get("description") {
        Some(e) => Some(reader.string("description", &e.value, Mode::PassThrough)?),
        None => None,
    };
    let settings = if kind == Kind::Image {
        read_settings(reader, t)?
    } else {
        ImageSettings::default()
    };
    let body = match (get("from"), get("dockerfile")) {
        (Some(_), Some(d)) => {
            return Err(map
                .error(
                    &d.key_span,
                    format!("{where_} has both `from` and `dockerfile`"),
                )
                .with_hint(
                    "an image is either inline (`from` and `steps`) or built from a Dockerfile",
                ));
        }
        (None, None) => {
            let hint = if kind == Kind::Image {
                "add `from = \"…\"` (a stage, an image or \"scratch\") for an inline image, or `dockerfile = \"path/Dockerfile\"`"
            } else {
                "add `from = \"…\"`: another stage, an image reference or \"scratch\""
            };
            let message = if kind == Kind::Image {
                format!("{where_} is neither inline nor a Dockerfile: it has no `from` and no `dockerfile`")
            } else {
                format!("{where_} has no base: `from` is missing")
            };
            return Err(map.error(&r.span, message).with_hint(hint));
        }
        (Some(_), None) => Body::Inline(read_inline(reader, t)?),
        (None, Some(_)) => Body::Dockerfile(read_dockerfile_target(reader, t, &where_)?),
    };
    Ok(Unit {
        name: r.name.clone(),
        kind,
        span: r.span.clone(),
        description,
        body,
        settings,
    })
}

fn read_settings(reader: &Reader, t: &Table) -> Result<ImageSettings> {
    let mut s = ImageSettings::default();
    if let Some(e) = t.get("tags") {
        for tag in reader.strings("tags", &e.value, Mode::Strict, false)? {
            if tag.value.is_empty() || tag.value.chars().any(char::is_whitespace) {
                return Err(reader
                    .map
                    .error(&tag.span, format!("invalid tag `{}`", tag.value))
                    .with_hint(
                        "a tag is an image reference such as `registry.example.com/team/api:1.2`",
                    ));
            }
            s.tags.push(tag.value);
        }
    }
    if let Some(e) = t.get("platforms") {
        for p in reader.strings("platforms", &e.value, Mode::Strict, false)? {
            let platform = Platform::parse(&p.value).map_err(|err| {
                reader
                    .map
                    .error(&p.span, err.to_string())
                    .with_hint("write platforms as `linux/amd64`, `linux/arm64` or `linux/arm/v7`")
            })?;
            s.platforms.push(L {
                value: platform,
                span: p.span,
            });
        }
    }
    for (key, out, bare) in [
        ("outputs", &mut s.outputs, "local"),
        ("cache-to", &mut s.cache_to, "registry"),
        ("cache-from", &mut s.cache_from, "registry"),
    ] {
        if let Some(e) = t.get(key) {
            let Val::Array(items) = &e.value.value else {
                return Err(
                    expected(reader.map, key, "an array of strings or tables", &e.value).with_hint(
                        format!("write `{key} = [\"type=…\"]` or `{key} = [{{ type = \"…\" }}]`"),
                    ),
                );
            };
            for item in items {
                out.push(read_exporter(reader, key, item, bare)?);
            }
        }
    }
    Ok(s)
}

fn read_exporter(reader: &Reader, what: &str, t: &Tree, bare: &str) -> Result<Exporter> {
    let mut attrs = BTreeMap::new();
    match &t.value {
        Val::Str(_) => {
            let s = reader.string(what, t, Mode::Strict)?;
            if !s.contains('=') {
                let key = if bare == "local" { "dest" } else { "ref" };
                attrs.insert("type".to_string(), bare.to_string());
                attrs.insert(key.to_string(), s);
            } else {
                for field in s.split(',') {
                    let Some((k, v)) = field.split_once('=') else {
                        return Err(reader
                            .map
                            .error(
                                &t.span,
                                format!("invalid {what} entry `{s}`: `{field}` is not key=value"),
                            )
                            .with_hint("write `type=oci,dest=out/image.tar`"));
                    };
                    attrs.insert(k.trim().to_string(), v.trim().to_string());
                }
            }
        }
        Val::Table(_) => {
            for (k, v) in reader.string_map(what, t, Mode::Strict)? {
                attrs.insert(k, v);
            }
        }
        _ => return Err(expected(reader.map, what, "a string or a table", t)),
    }
    let Some(kind) = attrs.remove("type") else {
        return Err(reader
            .map
            .error(&t.span, format!("{what} entry has no `type`"))
            .with_hint("add `type = \"oci\"` (or docker, local, tar, image, registry…)"));
    };
    if what == "outputs" {
        check_output_dest(reader, t, &kind, &attrs)?;
    }
    Ok(Exporter { kind, attrs })
}

/// An output that writes files needs a `dest` (docker without one is
/// loaded into the Docker daemon; registry and image outputs push): fail
/// here, at the entry, with an entry to copy, rather than when exporting.
fn check_output_dest(
    reader: &Reader,
    t: &Tree,
    kind: &str,
    attrs: &BTreeMap<String, String>,
) -> Result<()> {
    let dest = attrs.get("dest").map(|d| d.trim());
    let needs_one = matches!(kind, "oci" | "local" | "tar");
    if !(dest == Some("") || (needs_one && dest.is_none())) {
        return Ok(());
    }
    let example = match kind {
        "oci" if attrs.get("tar").map(|v| v.trim()) == Some("false") => {
            r#"{ type = "oci", dest = "out/${target}", tar = "false" }"#
        }
        "oci" => r#"{ type = "oci", dest = "out/${target}.tar" }"#,
        "local" => r#"{ type = "local", dest = "out/${target}" }"#,
        "tar" => r#"{ type = "tar", dest = "out/${target}.tar" }"#,
        _ => r#"{ type = "docker", dest = "out/${target}.tar" }"#,
    };
    Err(reader
        .map
        .error(
            &t.span,
            format!("output of type `{kind}` has no destination"),
        )
        .with_hint(format!(
            "give it a dest (relative to the spec's directory), e.g. outputs = [{example}]"
        )))
}

fn read_context(reader: &Reader, t: &Table) -> Result<ContextDir> {
    let (dir, span) = match t.get("context") {
        Some(e) => {
            let s = reader.string("context", &e.value, Mode::Strict)?;
            if s.starts_with('/') {
                return Err(reader
                    .map
                    .error(&e.value.span, format!("context `{s}` is an absolute path"))
                    .with_hint(
                        "contexts are relative to the spec's directory, e.g. `services/api`",
                    ));
            }
            if s.contains("://") {
                return Err(reader
                    .map
                    .error(&e.value.span, format!("context `{s}` is not a directory"))
                    .with_hint(
                        "remote contexts are not supported: use a directory relative to the spec",
                    ));
            }
            (clean_dir(&s), e.value.span.clone())
        }
        None => (".".to_string(), 0..0),
    };
    let ignore = match t.get("ignore") {
        Some(e) => reader
            .strings("ignore", &e.value, Mode::Strict, false)?
            .into_iter()
            .map(|l| l.value)
            .collect(),
        None => Vec::new(),
    };
    Ok(ContextDir { dir, span, ignore })
}

fn read_contexts(reader: &Reader, t: &Table) -> Result<Vec<NamedCtx>> {
    let Some(e) = t.get("contexts") else {
        return Ok(Vec::new());
    };
    let tab = reader.table("contexts", &e.value)?;
    let mut out = Vec::new();
    for c in &tab.entries {
        let v = reader.string(&format!("contexts.{}", c.key), &c.value, Mode::Strict)?;
        let kind = if let Some(u) = v.strip_prefix("target:") {
            CtxKind::Unit(u.to_string())
        } else if let Some(r) = v.strip_prefix("docker-image://") {
            CtxKind::Image(r.to_string())
        } else if v.contains("://") {
            return Err(reader
                .map
                .error(&c.value.span, format!("unsupported context `{v}`"))
                .with_hint("use a directory, `target:NAME` for a stage or image of this spec, or `docker-image://REF`; pass oci-layout:// contexts on the command line"));
        } else if v.starts_with('/') {
            return Err(reader
                .map
                .error(&c.value.span, format!("context `{v}` is an absolute path"))
                .with_hint("contexts are relative to the spec's directory"));
        } else {
            CtxKind::Dir(clean_dir(&v))
        };
        out.push(NamedCtx {
            name: c.key.clone(),
            span: c.value.span.clone(),
            kind,
        });
    }
    Ok(out)
}

fn read_dockerfile_target(reader: &Reader, t: &Table, where_: &str) -> Result<DockerfileTarget> {
    let map = reader.map;
    for e in &t.entries {
        if INLINE_ONLY_KEYS.contains(&e.key.as_str()) {
            return Err(map
                .error(&e.key_span, format!("`{}` cannot be used with `dockerfile` in {where_}", e.key))
                .with_hint("the Dockerfile defines the steps: move this setting into it, or make the image inline with `from`"));
        }
    }
    let d = t.get("dockerfile").expect("checked");
    let path = reader.string("dockerfile", &d.value, Mode::Strict)?;
    if path.starts_with('/') {
        return Err(map
            .error(
                &d.value.span,
                format!("dockerfile `{path}` is an absolute path"),
            )
            .with_hint("paths are relative to the spec's directory"));
    }
    let dockerfile = L {
        value: clean_dir(&path),
        span: d.value.span.clone(),
    };
    let mut context = read_context(reader, t)?;
    if t.get("context").is_none() {
        context.dir = parent_dir(&dockerfile.value);
        context.span = d.value.span.clone();
    }
    let target = match t.get("target") {
        Some(e) => Some(reader.l_string("target", &e.value, Mode::Strict)?),
        None => None,
    };
    let args = match t.get("args") {
        Some(e) => reader.string_map("args", &e.value, Mode::Strict)?,
        None => Vec::new(),
    };
    let (labels, labels_span) = match t.get("labels") {
        Some(e) => (
            reader.string_map("labels", &e.value, Mode::Strict)?,
            Some(e.key_span.clone()),
        ),
        None => (Vec::new(), None),
    };
    Ok(DockerfileTarget {
        dockerfile,
        context,
        contexts: read_contexts(reader, t)?,
        target,
        args,
        labels,
        labels_span,
    })
}

fn read_inline(reader: &Reader, t: &Table) -> Result<Inline> {
    let map = reader.map;
    let from_e = t.get("from").expect("checked");
    let from = reader.l_string("from", &from_e.value, Mode::PassThrough)?;
    if from.value.trim().is_empty() || from.value.chars().any(char::is_whitespace) {
        return Err(map
            .error(&from.span, format!("invalid base `{}`", from.value))
            .with_hint(
                "`from` is a stage or image of this spec, an image reference, or \"scratch\"",
            ));
    }
    let platform = match t.get("platform") {
        Some(e) => Some(reader.l_string("platform", &e.value, Mode::PassThrough)?),
        None => None,
    };
    let context = read_context(reader, t)?;
    let contexts = read_contexts(reader, t)?;
    let mut steps = Vec::new();
    // Stage-level settings become instructions in STAGE_KEYS order around
    // the steps.
    for key in STAGE_KEYS {
        let Some(e) = t.get(key) else { continue };
        let span = e.key_span.start..e.value.span.end.max(e.key_span.end);
        let op = match *key {
            "args" => {
                let pairs = reader.string_map("args", &e.value, Mode::PassThrough)?;
                StepOp::Arg(pairs.into_iter().map(|(k, v)| (k, Some(v))).collect())
            }
            "env" => StepOp::Env(reader.string_map("env", &e.value, Mode::PassThrough)?),
            "shell" => StepOp::Shell(strings_of(reader, "shell", &e.value)?),
            "workdir" => StepOp::Workdir(reader.string("workdir", &e.value, Mode::PassThrough)?),
            "steps" => {
                let Val::Array(items) = &e.value.value else {
                    return Err(
                        expected(map, "steps", "an array of tables", &e.value).with_hint(
                            "write `[[stage.NAME.steps]]` sections or `steps = [{ run = \"…\" }]`",
                        ),
                    );
                };
                for item in items {
                    steps.push(read_step(reader, item)?);
                }
                continue;
            }
            "user" => StepOp::User(reader.scalar("user", &e.value, Mode::PassThrough)?),
            "maintainer" => {
                StepOp::Maintainer(reader.string("maintainer", &e.value, Mode::PassThrough)?)
            }
            "labels" => StepOp::Label(reader.string_map("labels", &e.value, Mode::PassThrough)?),
            "expose" => StepOp::Expose(scalars_of(reader, "expose", &e.value)?),
            "volumes" => StepOp::Volume(strings_of(reader, "volumes", &e.value)?),
            "stop-signal" => {
                StepOp::StopSignal(reader.scalar("stop-signal", &e.value, Mode::PassThrough)?)
            }
            "healthcheck" => StepOp::Healthcheck(read_health(reader, &e.value)?),
            "onbuild" => {
                for trig in reader.strings("onbuild", &e.value, Mode::PassThrough, true)? {
                    steps.push(Step {
                        span: trig.span,
                        op: StepOp::Onbuild(trig.value),
                    });
                }
                continue;
            }
            "entrypoint" => StepOp::Entrypoint(reader.cmd("entrypoint", &e.value)?),
            "cmd" => StepOp::Cmd(reader.cmd("cmd", &e.value)?),
            _ => continue,
        };
        steps.push(Step { span, op });
    }
    Ok(Inline {
        from,
        platform,
        context,
        contexts,
        steps,
    })
}

fn strings_of(reader: &Reader, what: &str, t: &Tree) -> Result<Vec<String>> {
    Ok(reader
        .strings(what, t, Mode::PassThrough, true)?
        .into_iter()
        .map(|l| l.value)
        .collect())
}

/// Ports and the like: strings or integers, one or an array.
fn scalars_of(reader: &Reader, what: &str, t: &Tree) -> Result<Vec<String>> {
    match &t.value {
        Val::Array(items) => items
            .iter()
            .map(|i| reader.scalar(what, i, Mode::PassThrough))
            .collect(),
        _ => Ok(vec![reader.scalar(what, t, Mode::PassThrough)?]),
    }
}

fn read_health(reader: &Reader, t: &Tree) -> Result<Option<Health>> {
    let map = reader.map;
    match &t.value {
        Val::Str(s) if s.eq_ignore_ascii_case("none") => return Ok(None),
        Val::Bool(false) => return Ok(None),
        Val::Table(_) => {}
        _ => {
            return Err(expected(map, "healthcheck", "a table or \"none\"", t)
                .with_hint("write `healthcheck = { cmd = [\"wget\", \"-q\", \"--spider\", \"http://localhost/\"], interval = \"30s\" }`"));
        }
    }
    let tab = reader.table("healthcheck", t)?;
    check_keys(map, tab, HEALTH_KEYS, "healthcheck", &|_| None)?;
    let Some(cmd) = tab.get("cmd") else {
        return Err(map.error(&t.span, "healthcheck has no `cmd`").with_hint(
            "add `cmd = [\"…\"]`, or write `healthcheck = \"none\"` to disable the base image's",
        ));
    };
    let cmd = reader.cmd("healthcheck.cmd", &cmd.value)?;
    let dur = |k: &str| -> Result<Option<String>> {
        match tab.get(k) {
            Some(e) => {
                let v = reader.scalar(&format!("healthcheck.{k}"), &e.value, Mode::Strict)?;
                let v = if v.chars().all(|c| c.is_ascii_digit()) {
                    format!("{v}s")
                } else {
                    v
                };
                if !valid_duration(&v) {
                    return Err(map
                        .error(&e.value.span, format!("invalid duration `{v}`"))
                        .with_hint("write durations as `30s`, `1m30s` or `500ms`"));
                }
                Ok(Some(v))
            }
            None => Ok(None),
        }
    };
    let retries = match tab.get("retries") {
        Some(e) => match e.value.value {
            Val::Int(i) if i >= 0 => Some(i),
            _ => {
                return Err(expected(
                    map,
                    "healthcheck.retries",
                    "a non-negative integer",
                    &e.value,
                ))
            }
        },
        None => None,
    };
    Ok(Some(Health {
        cmd,
        interval: dur("interval")?,
        timeout: dur("timeout")?,
        start_period: dur("start-period")?,
        start_interval: dur("start-interval")?,
        retries,
    }))
}

/// Go's time.ParseDuration syntax, without the sign: `1h2m3.5s`, `500ms`.
fn valid_duration(s: &str) -> bool {
    let mut rest = s;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let num = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num == 0 {
            return false;
        }
        rest = &rest[num..];
        let unit = ["ns", "us", "µs", "ms", "s", "m", "h"]
            .iter()
            .filter(|u| rest.starts_with(*u))
            .max_by_key(|u| u.len());
        match unit {
            Some(u) => rest = &rest[u.len()..],
            None => return false,
        }
    }
    true
}

fn read_step(reader: &Reader, t: &Tree) -> Result<Step> {
    let map = reader.map;
    let Val::Table(tab) = &t.value else {
        return Err(expected(map, "steps", "an array of tables", t)
            .with_hint("each step is a table such as `{ run = \"make\" }`"));
    };
    let verbs: Vec<&Entry> = tab
        .entries
        .iter()
        .filter(|e| STEP_VERBS.contains(&e.key.as_str()))
        .collect();
    let verb = match verbs.as_slice() {
        [v] => *v,
        [] => {
            // An unknown key is the likelier mistake: report it with a suggestion.
            check_keys(map, tab, STEP_VERBS, "step", &|_| None)?;
            return Err(map
                .error(&t.span, "step has no instruction")
                .with_hint(format!("a step has one of: {}", STEP_VERBS.join(", "))));
        }
        [a, b, ..] => {
            return Err(map
                .error(
                    &b.key_span,
                    format!("step has two instructions, `{}` and `{}`", a.key, b.key),
                )
                .with_hint("split it into two steps"));
        }
    };
    let options = step_options(&verb.key);
    let mut allowed: Vec<&str> = vec![verb.key.as_str()];
    allowed.extend(options);
    check_keys(map, tab, &allowed, &format!("`{}` step", verb.key), &|k| {
        STEP_VERBS
            .contains(&k)
            .then(|| "a step has one instruction: split it into two steps".to_string())
            .or_else(|| {
                (k == "dest" || k == "dst" || k == "destination")
                    .then(|| "the destination is written `to`".to_string())
            })
    })?;
    let opt = |k: &str| tab.get(k);
    let v = &verb.value;
    let op = match verb.key.as_str() {
        "run" => {
            let cmd = reader.cmd("run", v)?;
            if cmd == Cmd::Shell(String::new()) || cmd == Cmd::Exec(Vec::new()) {
                return Err(map
                    .error(&v.span, "`run` is empty")
                    .with_hint("write the command to run"));
            }
            let mut mounts = Vec::new();
            if let Some(e) = opt("mounts") {
                let items = match &e.value.value {
                    Val::Array(items) => items.clone(),
                    Val::Table(_) => vec![e.value.clone()],
                    _ => return Err(expected(map, "mounts", "an array of tables", &e.value)),
                };
                for m in &items {
                    mounts.push(read_mount(reader, m)?);
                }
            }
            let word = |k: &str, allowed: &[&str]| -> Result<Option<String>> {
                match opt(k) {
                    Some(e) => {
                        let s = reader.string(k, &e.value, Mode::Strict)?;
                        if !allowed.contains(&s.as_str()) {
                            return Err(map
                                .error(&e.value.span, format!("invalid {k} `{s}`"))
                                .with_hint(format!("use one of: {}", allowed.join(", "))));
                        }
                        Ok(Some(s))
                    }
                    None => Ok(None),
                }
            };
            StepOp::Run {
                cmd,
                mounts,
                network: word("network", &["default", "none", "host"])?,
                security: word("security", &["sandbox", "insecure"])?,
            }
        }
        "copy" | "add" => {
            let add = verb.key == "add";
            let sources: Vec<String> = reader
                .strings(&verb.key, v, Mode::PassThrough, true)?
                .into_iter()
                .map(|l| l.value)
                .collect();
            if sources.is_empty() || sources.iter().any(String::is_empty) {
                return Err(map.error(&v.span, format!("`{}` needs a source path", verb.key)));
            }
            let Some(to) = opt("to") else {
                return Err(map
                    .error(
                        &verb.key_span,
                        format!("`{}` step has no destination", verb.key),
                    )
                    .with_hint(format!(
                        "add `to = \"/path/\"` to the step (as in `{} src /path/`)",
                        verb.key.to_uppercase()
                    )));
            };
            let dest = reader.string("to", &to.value, Mode::PassThrough)?;
            if dest.is_empty() {
                return Err(map.error(&to.value.span, "`to` is empty"));
            }
            let from = match opt("from") {
                Some(e) => Some(reader.l_string("from", &e.value, Mode::PassThrough)?),
                None => None,
            };
            StepOp::Copy(CopySpec {
                add,
                sources,
                dest,
                from,
                chown: opt_string(reader, tab, "chown")?,
                chmod: opt_mode(reader, tab, "chmod")?,
                link: opt_bool(reader, tab, "link")?,
                parents: opt_bool(reader, tab, "parents")?,
                exclude: match opt("exclude") {
                    Some(e) => strings_of(reader, "exclude", &e.value)?,
                    None => Vec::new(),
                },
            })
        }
        "file" => {
            let path = reader.string("file", v, Mode::PassThrough)?;
            if path.is_empty() || path.ends_with('/') {
                return Err(map
                    .error(&v.span, format!("invalid file path `{path}`"))
                    .with_hint("`file` is the path of the file to write, e.g. \"/etc/app.conf\""));
            }
            let Some(content) = opt("content") else {
                return Err(map
                    .error(&verb.key_span, "`file` step has no `content`")
                    .with_hint("add `content = \"…\"`"));
            };
            StepOp::File {
                path,
                content: reader.string("content", &content.value, Mode::PassThrough)?,
                chown: opt_string(reader, tab, "chown")?,
                chmod: opt_mode(reader, tab, "chmod")?,
            }
        }
        "env" => StepOp::Env(reader.string_map("env", v, Mode::PassThrough)?),
        "label" => StepOp::Label(reader.string_map("label", v, Mode::PassThrough)?),
        "arg" => StepOp::Arg(match &v.value {
            Val::Table(_) => reader
                .string_map("arg", v, Mode::PassThrough)?
                .into_iter()
                .map(|(k, v)| (k, Some(v)))
                .collect(),
            _ => strings_of(reader, "arg", v)?
                .into_iter()
                .map(|k| (k, None))
                .collect(),
        }),
        "workdir" => StepOp::Workdir(reader.string("workdir", v, Mode::PassThrough)?),
        "user" => StepOp::User(reader.scalar("user", v, Mode::PassThrough)?),
        "expose" => StepOp::Expose(scalars_of(reader, "expose", v)?),
        "volume" => StepOp::Volume(strings_of(reader, "volume", v)?),
        "entrypoint" => StepOp::Entrypoint(reader.cmd("entrypoint", v)?),
        "cmd" => StepOp::Cmd(reader.cmd("cmd", v)?),
        "healthcheck" => StepOp::Healthcheck(read_health(reader, v)?),
        "shell" => StepOp::Shell(strings_of(reader, "shell", v)?),
        "stop-signal" => StepOp::StopSignal(reader.scalar("stop-signal", v, Mode::PassThrough)?),
        "onbuild" => StepOp::Onbuild(reader.string("onbuild", v, Mode::PassThrough)?),
        "maintainer" => StepOp::Maintainer(reader.string("maintainer", v, Mode::PassThrough)?),
        _ => unreachable!("verbs are listed"),
    };
    Ok(Step {
        span: t.span.clone(),
        op,
    })
}

fn opt_string(reader: &Reader, tab: &Table, k: &str) -> Result<Option<String>> {
    match tab.get(k) {
        Some(e) => Ok(Some(reader.scalar(k, &e.value, Mode::PassThrough)?)),
        None => Ok(None),
    }
}

fn opt_bool(reader: &Reader, tab: &Table, k: &str) -> Result<bool> {
    match tab.get(k) {
        Some(e) => reader.boolean(k, &e.value),
        None => Ok(false),
    }
}

/// A file mode: a string (`"0755"`) or an integer, best written in TOML's
/// octal form (`0o755`).
fn opt_mode(reader: &Reader, tab: &Table, k: &str) -> Result<Option<String>> {
    match tab.get(k) {
        Some(e) => match &e.value.value {
            Val::Int(i) if *i >= 0 => Ok(Some(format!("{i:o}"))),
            Val::Str(_) => Ok(Some(reader.string(k, &e.value, Mode::PassThrough)?)),
            _ => Err(expected(
                reader.map,
                k,
                "an octal mode (\"0755\" or 0o755)",
                &e.value,
            )),
        },
        None => Ok(None),
    }
}

fn read_mount(reader: &Reader, t: &Tree) -> Result<MountSpec> {
    let map = reader.map;
    let tab = reader.table("mounts", t)?;
    check_keys(map, tab, MOUNT_KEYS, "mount", &|k| {
        matches!(k, "dst" | "destination" | "to")
            .then(|| "the mount point is written `target`".to_string())
    })?;
    let mut fields = Vec::new();
    let kind = match tab.get("type") {
        Some(e) => {
            let k = reader.string("type", &e.value, Mode::Strict)?;
            if !["bind", "cache", "tmpfs", "secret", "ssh"].contains(&k.as_str()) {
                return Err(map
                    .error(&e.value.span, format!("invalid mount type `{k}`"))
                    .with_hint("use one of: bind, cache, tmpfs, secret, ssh"));
            }
            k
        }
        None => "bind".to_string(),
    };
    fields.push(("type".to_string(), kind.clone()));
    if tab.get("target").is_none() && !matches!(kind.as_str(), "secret" | "ssh") {
        return Err(map
            .error(&t.span, format!("{kind} mount has no `target`"))
            .with_hint("add `target = \"/path\"`, where the mount appears in the container"));
    }
    let mut from = None;
    for key in MOUNT_KEYS.iter().skip(1) {
        let Some(e) = tab.get(key) else { continue };
        let v = match (*key, &e.value.value) {
            ("readonly" | "required", _) => {
                let b = reader.boolean(key, &e.value)?;
                if *key == "readonly" {
                    if b {
                        fields.push(("readonly".into(), "true".into()));
                    } else {
                        fields.push(("rw".into(), "true".into()));
                    }
                    continue;
                }
                b.to_string()
            }
            ("mode", Val::Int(i)) => format!("0{i:o}"),
            ("uid" | "gid" | "size", Val::Int(i)) => i.to_string(),
            _ => reader.scalar(key, &e.value, Mode::PassThrough)?,
        };
        if v.chars().any(char::is_whitespace) {
            return Err(map
                .error(
                    &e.value.span,
                    format!("mount {key} `{v}` contains whitespace"),
                )
                .with_hint("mount options cannot contain spaces"));
        }
        if *key == "from" {
            from = Some(L {
                value: v.clone(),
                span: e.value.span.clone(),
            });
        }
        fields.push((key.to_string(), v));
    }
    Ok(MountSpec {
        span: t.span.clone(),
        fields,
        from,
    })
}

// ---------------------------------------------------------------------------
// References and cycles

/// How a `from` (of a stage, a COPY or a mount) resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ref {
    Scratch,
    Unit(String),
    /// A named context of the stage (`contexts`).
    Context(String),
    /// An image reference (or a context passed on the command line).
    Image(String),
}

/// Resolve a reference as the stage sees it: its own `contexts` first
/// (for COPY and mounts), then the spec's stages and images, then images.
pub fn resolve_ref(spec: &Spec, contexts: &[NamedCtx], r: &str) -> Ref {
    if r == "scratch" {
        return Ref::Scratch;
    }
    if let Some(c) = contexts.iter().find(|c| c.name == r) {
        return match &c.kind {
            CtxKind::Unit(u) => Ref::Unit(u.clone()),
            _ => Ref::Context(r.to_string()),
        };
    }
    if spec.unit(r).is_some() {
        return Ref::Unit(r.to_string());
    }
    Ref::Image(r.to_string())
}

/// A bare word close to a stage name is a typo, not an image on Docker Hub.
fn check_bare_ref(
    spec: &Spec,
    map: &SourceMap,
    r: &L<String>,
    contexts: &[NamedCtx],
) -> Result<()> {
    let v = &r.value;
    if v.contains(['/', ':', '@', '.', '$']) || v == "scratch" {
        return Ok(());
    }
    if let Ref::Image(_) = resolve_ref(spec, contexts, v) {
        let names = spec
            .units
            .iter()
            .map(|u| u.name.as_str())
            .chain(contexts.iter().map(|c| c.name.as_str()));
        if let Some(s) = did_you_mean(v, names) {
            return Err(map
                .error(&r.span, format!("unknown stage `{v}`"))
                .with_hint(format!(
                    "did you mean `{s}`? (for an image from a registry, write its full name, e.g. `docker.io/library/{v}`)"
                )));
        }
    }
    Ok(())
}

/// The stages and images a unit needs, with the span of each reference.
pub fn unit_deps(spec: &Spec, u: &Unit) -> Vec<(String, Span)> {
    let mut out = Vec::new();
    let contexts = match &u.body {
        Body::Inline(i) => &i.contexts,
        Body::Dockerfile(d) => &d.contexts,
    };
    for c in contexts {
        if let CtxKind::Unit(n) = &c.kind {
            out.push((n.clone(), c.span.clone()));
        }
    }
    if let Body::Inline(i) = &u.body {
        if let Ref::Unit(n) = resolve_ref(spec, &i.contexts, &i.from.value) {
            out.push((n, i.from.span.clone()));
        }
        for s in &i.steps {
            for r in s.op.references() {
                if let Ref::Unit(n) = resolve_ref(spec, &i.contexts, &r.value) {
                    out.push((n, r.span.clone()));
                }
            }
        }
    }
    let mut seen = BTreeSet::new();
    out.retain(|(n, _)| seen.insert(n.clone()));
    out
}

fn check_references(spec: &Spec, map: &SourceMap) -> Result<()> {
    for u in &spec.units {
        let contexts = match &u.body {
            Body::Inline(i) => &i.contexts,
            Body::Dockerfile(d) => &d.contexts,
        };
        for c in contexts {
            if let CtxKind::Unit(n) = &c.kind {
                if spec.unit(n).is_none() {
                    let names = spec.units.iter().map(|u| u.name.as_str());
                    let hint = did_you_mean(n, names)
                        .map(|s| format!("did you mean `target:{s}`?"))
                        .unwrap_or_else(|| {
                            "`target:NAME` names a `[stage.NAME]` or `[image.NAME]` of this spec"
                                .into()
                        });
                    return Err(map
                        .error(&c.span, format!("unknown stage `{n}`"))
                        .with_hint(hint));
                }
            }
        }
        if let Body::Inline(i) = &u.body {
            check_bare_ref(spec, map, &i.from, &i.contexts)?;
            if let Some(c) = i.contexts.iter().find(|c| c.name == i.from.value) {
                if let CtxKind::Dir(_) = c.kind {
                    return Err(map
                        .error(&i.from.span, format!("`from` names the directory context `{}`", c.name))
                        .with_hint("a stage is built on an image or a stage; copy from a directory with `copy` … `from`"));
                }
            }
            for s in &i.steps {
                for r in s.op.references() {
                    check_bare_ref(spec, map, r, &i.contexts)?;
                }
            }
        }
    }
    Ok(())
}

fn check_unit_cycles(spec: &Spec, map: &SourceMap) -> Result<()> {
    // 0: unvisited, 1: in progress, 2: done
    let mut state: BTreeMap<&str, u8> = BTreeMap::new();
    fn visit<'s>(
        spec: &'s Spec,
        map: &SourceMap,
        name: &'s str,
        state: &mut BTreeMap<&'s str, u8>,
        path: &mut Vec<&'s str>,
    ) -> Result<()> {
        state.insert(name, 1);
        path.push(name);
        let u = spec.unit(name).expect("checked");
        for (dep, span) in unit_deps(spec, u) {
            let dep_name = spec.unit(&dep).map(|d| d.name.as_str()).expect("checked");
            match state.get(dep_name).copied().unwrap_or(0) {
                1 => {
                    let start = path.iter().position(|p| *p == dep_name).unwrap_or(0);
                    let mut cycle: Vec<&str> = path[start..].to_vec();
                    cycle.push(dep_name);
                    let hint = if dep_name == name {
                        format!("`{name}` cannot be built from itself")
                    } else {
                        "stages and images cannot depend on each other in a loop".to_string()
                    };
                    return Err(map
                        .error(
                            &span,
                            format!("cycle between targets: {}", cycle.join(" → ")),
                        )
                        .with_hint(hint));
                }
                0 => visit(spec, map, dep_name, state, path)?,
                _ => {}
            }
        }
        path.pop();
        state.insert(name, 2);
        Ok(())
    }
    for u in &spec.units {
        if state.get(u.name.as_str()).copied().unwrap_or(0) == 0 {
            visit(spec, map, &u.name, &mut state, &mut Vec::new())?;
        }
    }
    Ok(())
}

fn check_group_cycles(spec: &Spec, map: &SourceMap) -> Result<()> {
    fn visit<'s>(
        spec: &'s Spec,
        map: &SourceMap,
        g: &'s Group,
        path: &mut Vec<&'s str>,
    ) -> Result<()> {
        path.push(&g.name);
        for t in &g.targets {
            if let Some(sub) = spec.group(&t.value) {
                if let Some(start) = path.iter().position(|p| *p == sub.name) {
                    let mut cycle: Vec<&str> = path[start..].to_vec();
                    cycle.push(&sub.name);
                    return Err(map
                        .error(
                            &t.span,
                            format!("cycle between targets: {}", cycle.join(" → ")),
                        )
                        .with_hint(
                            "a group cannot contain itself, directly or through other groups",
                        ));
                }
                visit(spec, map, sub, path)?;
            }
        }
        path.pop();
        Ok(())
    }
    for g in &spec.groups {
        visit(spec, map, g, &mut Vec::new())?;
    }
    Ok(())
}

/// Expand target names (images, stages, groups) into stage/image names, in
/// order, each once. Empty: the `default` group, else every image.
pub fn select(spec: &Spec, map: &SourceMap, requested: &[String]) -> Result<Vec<String>> {
    let requested: Vec<String> = if requested.is_empty() {
        if spec.group("default").is_some() {
            vec!["default".to_string()]
        } else {
            spec.units
                .iter()
                .filter(|u| u.kind == Kind::Image)
                .map(|u| u.name.clone())
                .collect()
        }
    } else {
        requested.to_vec()
    };
    let mut out: Vec<String> = Vec::new();
    fn add(spec: &Spec, name: &str, out: &mut Vec<String>) {
        if let Some(g) = spec.group(name) {
            for t in &g.targets {
                add(spec, &t.value, out);
            }
        } else if !out.iter().any(|o| o == name) {
            out.push(name.to_string());
        }
    }
    for r in &requested {
        if spec.group(r).is_none() && spec.unit(r).is_none() {
            let names = spec
                .units
                .iter()
                .map(|u| u.name.as_str())
                .chain(spec.groups.iter().map(|g| g.name.as_str()));
            let all: Vec<&str> = names.collect();
            let hint = match did_you_mean(r, all.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None if all.is_empty() => "the spec defines no stages or images".into(),
                None => format!("targets: {}", all.join(", ")),
            };
            return Err(map
                .unlocated(format!("unknown target `{r}`"))
                .with_hint(hint));
        }
        add(spec, r, &mut out);
    }
    if out.is_empty() {
        return Err(map
            .unlocated("nothing to build: the spec has no images")
            .with_hint("add an `[image.NAME]` table, or name a stage with --target"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirs_clean() {
        assert_eq!(clean_dir("./services/api/"), "services/api");
        assert_eq!(clean_dir("."), ".");
        assert_eq!(clean_dir("a/../.."), "..");
        assert_eq!(clean_dir("../shared//lib"), "../shared/lib");
        assert_eq!(parent_dir("services/legacy/Dockerfile"), "services/legacy");
        assert_eq!(parent_dir("Dockerfile"), ".");
        assert_eq!(join_dir(".", "x/.dockerignore"), "x/.dockerignore");
    }

    /// The JSON Schema offers exactly the keys the reader takes.
    #[test]
    fn schema_matches_the_reader() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../../specs/schema/engine.schema.json")).unwrap();
        let keys = |v: &serde_json::Value| -> Vec<String> {
            let mut k: Vec<String> = v["properties"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            k.sort();
            k
        };
        let sorted = |v: &[&str]| -> Vec<String> {
            let mut k: Vec<String> = v.iter().map(|s| s.to_string()).collect();
            k.sort();
            k
        };
        let defs = &schema["definitions"];
        assert_eq!(keys(&schema), sorted(ROOT_KEYS));
        assert_eq!(keys(&defs["stage"]), sorted(STAGE_KEYS));
        assert_eq!(keys(&defs["image"]), sorted(&all_image_keys()));
        assert_eq!(keys(&defs["template"]), sorted(&all_image_keys()));
        assert_eq!(keys(&defs["mount"]), sorted(MOUNT_KEYS));
        assert_eq!(keys(&defs["limits"]), sorted(LIMITS_KEYS));
        let health = defs["healthcheck"]["anyOf"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v.get("properties").is_some())
            .unwrap();
        assert_eq!(keys(health), sorted(HEALTH_KEYS));
        let steps = defs["step"]["oneOf"].as_array().unwrap();
        let mut verbs = Vec::new();
        for st in steps {
            let verb = st["required"][0].as_str().unwrap();
            verbs.push(verb);
            let mut expected = vec![verb];
            expected.extend(step_options(verb));
            assert_eq!(keys(st), sorted(&expected), "options of `{verb}`");
        }
        assert_eq!(sorted(&verbs), sorted(STEP_VERBS));
    }

    #[test]
    fn sizes_read_as_the_command_line_reads_them() {
        assert_eq!(parse_size("1234"), Some(1234));
        assert_eq!(parse_size("512k"), Some(512 << 10));
        assert_eq!(parse_size("64MB"), Some(64 << 20));
        assert_eq!(parse_size("4g"), Some(4 << 30));
        assert_eq!(parse_size("1.5GiB"), Some(3 << 29));
        assert_eq!(parse_size(" 2 t "), Some(2 << 40));
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("g"), None);
        assert_eq!(parse_size("-1"), None);
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("4x"), None);
    }

    #[test]
    fn durations() {
        assert!(valid_duration("30s"));
        assert!(valid_duration("1m30s"));
        assert!(valid_duration("1.5h"));
        assert!(valid_duration("500ms"));
        assert!(!valid_duration("30"));
        assert!(!valid_duration("s"));
        assert!(!valid_duration("3x"));
    }
}
