//! Typed instructions: each parser [`Node`] becomes an [`Instruction`], with
//! BuildKit's argument checks and flag rules (BuildKit's `instructions`
//! package). Words stay raw: variables are expanded later, when the build is
//! lowered, because their values depend on ARG/ENV state.

mod bflag;
mod goconv;
mod mount;
pub(crate) mod suggest;

use serde::Serialize;

use crate::error::{Error, Location, Result};
use crate::parser::{self, chomp_heredoc_content, go_quote, go_to_lower, go_to_upper, Ast, Node};
use bflag::BFlags;

pub use crate::parser::Heredoc;
pub use mount::{parse_device, parse_mount, Device, Mount, MountType};

/// A value with the place it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Located<T> {
    pub inner: T,
    /// 1-based first line of the instruction.
    pub line: usize,
    /// 1-based column (in characters) of the keyword.
    pub col: usize,
    /// Length of the keyword in characters.
    pub len: usize,
    /// Last line of the instruction (continuations and heredoc bodies included).
    pub end_line: usize,
    /// The instruction's text (continuation lines joined, heredoc bodies
    /// not included).
    pub original: String,
}

impl<T> Located<T> {
    /// Where errors about this instruction point: its keyword.
    pub fn location(&self) -> Location {
        Location::new(self.line, self.col, self.len)
    }
}

impl Located<Instruction> {
    /// The instruction's keyword, uppercase.
    pub fn keyword(&self) -> &'static str {
        self.inner.name()
    }
}

/// A command line in shell form (run through the shell) or exec form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Command {
    /// Shell form: the arguments joined into one string (may be empty).
    Shell(String),
    /// Exec form: the JSON array's strings.
    Exec(Vec<String>),
}

/// A COPY/ADD source given inline as a heredoc.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeredocFile {
    /// The heredoc name, which is also the file name.
    pub name: String,
    /// The body (leading tabs already removed for `<<-`).
    pub content: String,
    /// Whether variables in the body are expanded (the name was not quoted).
    pub expand: bool,
}

/// The arguments of COPY and ADD. Flags that only one of them accepts keep
/// their defaults for the other (`from`/`parents` for ADD;
/// `keep_git_dir`/`checksum`/`unpack` for COPY).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyArgs {
    /// Source paths (or URLs for ADD); heredoc sources are in `heredocs`.
    pub sources: Vec<String>,
    pub dest: String,
    /// `--from` (COPY).
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    /// `--parents` (COPY).
    pub parents: bool,
    pub exclude: Vec<String>,
    pub heredocs: Vec<HeredocFile>,
    /// `--keep-git-dir` (ADD); `None` if not given.
    pub keep_git_dir: Option<bool>,
    /// `--checksum` (ADD).
    pub checksum: Option<String>,
    /// `--unpack` (ADD); `None` if not given.
    pub unpack: Option<bool>,
}

/// HEALTHCHECK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum HealthcheckSpec {
    /// `HEALTHCHECK NONE`: disable any inherited check.
    None,
    Cmd {
        /// Docker's form: `["CMD", args...]` or `["CMD-SHELL", "command"]`.
        test: Vec<String>,
        /// Durations in nanoseconds; 0 means "not set".
        interval: u64,
        timeout: u64,
        start_period: u64,
        start_interval: u64,
        /// 0 means "not set".
        retries: u64,
    },
}

/// One Dockerfile instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Instruction {
    From {
        image: String,
        platform: Option<String>,
        /// The stage name (`AS name`), lowercased.
        alias: Option<String>,
    },
    Run {
        command: Command,
        heredocs: Vec<Heredoc>,
        /// Raw `--mount` values (parse them with [`parse_mount`] once
        /// variables can be expanded).
        mounts: Vec<String>,
        /// `--network` (`default`, `none` or `host`); `None` if not given.
        network: Option<String>,
        /// `--security` (`sandbox` or `insecure`); `None` if not given.
        security: Option<String>,
    },
    Cmd(Command),
    Entrypoint(Command),
    Shell(Vec<String>),
    Label(Vec<(String, String)>),
    Maintainer(String),
    /// Ports as written, sorted.
    Expose(Vec<String>),
    Env(Vec<(String, String)>),
    Add(CopyArgs),
    Copy(CopyArgs),
    Volume(Vec<String>),
    User(String),
    Workdir(String),
    Arg(Vec<(String, Option<String>)>),
    /// The trigger instruction's text (heredoc bodies appended).
    Onbuild(String),
    StopSignal(String),
    Healthcheck(HealthcheckSpec),
}

impl Instruction {
    /// The instruction's keyword, uppercase.
    pub fn name(&self) -> &'static str {
        match self {
            Instruction::From { .. } => "FROM",
            Instruction::Run { .. } => "RUN",
            Instruction::Cmd(_) => "CMD",
            Instruction::Entrypoint(_) => "ENTRYPOINT",
            Instruction::Shell(_) => "SHELL",
            Instruction::Label(_) => "LABEL",
            Instruction::Maintainer(_) => "MAINTAINER",
            Instruction::Expose(_) => "EXPOSE",
            Instruction::Env(_) => "ENV",
            Instruction::Add(_) => "ADD",
            Instruction::Copy(_) => "COPY",
            Instruction::Volume(_) => "VOLUME",
            Instruction::User(_) => "USER",
            Instruction::Workdir(_) => "WORKDIR",
            Instruction::Arg(_) => "ARG",
            Instruction::Onbuild(_) => "ONBUILD",
            Instruction::StopSignal(_) => "STOPSIGNAL",
            Instruction::Healthcheck(_) => "HEALTHCHECK",
        }
    }
}

/// Every instruction keyword, uppercase.
pub const INSTRUCTION_NAMES: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Where errors about `node` point: its first line, at the keyword.
pub fn node_location(node: &Node) -> Location {
    Location::new(
        node.start_line.max(1),
        node.column.max(1),
        node.value.chars().count(),
    )
}

/// BuildKit's `nodeArgs`: the arguments, with an ONBUILD trigger flattened
/// to its keyword followed by its own arguments.
fn node_args(node: &Node) -> Vec<String> {
    let mut out = node.args.clone();
    let mut cur = node.sub.as_deref();
    while let Some(sub) = cur {
        out.push(sub.value.clone());
        out.extend(sub.args.iter().cloned());
        cur = sub.sub.as_deref();
    }
    out
}

fn at_least_one(cmd: &str) -> Error {
    Error::new(format!("{cmd} requires at least one argument"))
}

fn exactly_one(cmd: &str) -> Error {
    Error::new(format!("{cmd} requires exactly one argument"))
}

fn no_destination(cmd: &str) -> Error {
    Error::new(format!(
        "{cmd} requires at least two arguments, but only one was provided. Destination could not be determined"
    ))
}

/// Shell form joins the words; exec form keeps them.
fn command_line(args: &[String], json: bool) -> Command {
    if json {
        Command::Exec(args.to_vec())
    } else {
        Command::Shell(args.join(" "))
    }
}

fn parse_kvps(args: &[String], cmd: &str) -> Result<Vec<(String, String)>> {
    if args.is_empty() {
        return Err(at_least_one(cmd));
    }
    if !args.len().is_multiple_of(3) {
        return Err(Error::new(format!(
            "bad input to {cmd}, too many arguments"
        )));
    }
    let mut out = Vec::with_capacity(args.len() / 3);
    for triple in args.chunks(3) {
        if triple[0].is_empty() {
            return Err(Error::new(format!("{cmd} names can not be blank")));
        }
        out.push((triple[0].clone(), triple[1].clone()));
    }
    Ok(out)
}

/// Convert one parser node to a typed instruction. Errors carry no
/// location; [`parse_all`] adds it (or use [`node_location`]).
pub fn parse_instruction(node: &Node) -> Result<Instruction> {
    let args = node_args(node);
    match node.keyword.as_str() {
        "env" => {
            BFlags::new("ENV").parse(&node.flags)?;
            Ok(Instruction::Env(parse_kvps(&args, "ENV")?))
        }
        "maintainer" => {
            if args.len() != 1 {
                return Err(exactly_one("MAINTAINER"));
            }
            BFlags::new("MAINTAINER").parse(&node.flags)?;
            Ok(Instruction::Maintainer(args[0].clone()))
        }
        "label" => {
            BFlags::new("LABEL").parse(&node.flags)?;
            Ok(Instruction::Label(parse_kvps(&args, "LABEL")?))
        }
        "add" => parse_add(node, &args),
        "copy" => parse_copy(node, &args),
        "from" => parse_from(node, &args),
        "onbuild" => parse_onbuild(node, &args),
        "workdir" => {
            if args.len() != 1 {
                return Err(exactly_one("WORKDIR"));
            }
            BFlags::new("WORKDIR").parse(&node.flags)?;
            Ok(Instruction::Workdir(args[0].clone()))
        }
        "run" => parse_run(node, &args),
        "cmd" => {
            BFlags::new("CMD").parse(&node.flags)?;
            Ok(Instruction::Cmd(command_line(&args, node.json)))
        }
        "healthcheck" => parse_healthcheck(node, &args),
        "entrypoint" => {
            BFlags::new("ENTRYPOINT").parse(&node.flags)?;
            Ok(Instruction::Entrypoint(command_line(&args, node.json)))
        }
        "expose" => {
            if args.is_empty() {
                return Err(at_least_one("EXPOSE"));
            }
            BFlags::new("EXPOSE").parse(&node.flags)?;
            let mut ports = args;
            ports.sort();
            Ok(Instruction::Expose(ports))
        }
        "user" => {
            if args.len() != 1 {
                return Err(exactly_one("USER"));
            }
            BFlags::new("USER").parse(&node.flags)?;
            Ok(Instruction::User(args[0].clone()))
        }
        "volume" => {
            if args.is_empty() {
                return Err(at_least_one("VOLUME"));
            }
            BFlags::new("VOLUME").parse(&node.flags)?;
            let mut volumes = Vec::with_capacity(args.len());
            for v in &args {
                let v = parser::gostr::trim_space(v);
                if v.is_empty() {
                    return Err(Error::new("VOLUME specified can not be an empty string"));
                }
                volumes.push(v.to_string());
            }
            Ok(Instruction::Volume(volumes))
        }
        // BuildKit does not look at STOPSIGNAL's or ARG's flags.
        "stopsignal" => {
            if args.len() != 1 {
                return Err(exactly_one("STOPSIGNAL"));
            }
            Ok(Instruction::StopSignal(args[0].clone()))
        }
        "arg" => {
            if args.is_empty() {
                return Err(at_least_one("ARG"));
            }
            let mut pairs = Vec::with_capacity(args.len());
            for arg in &args {
                match arg.split_once('=') {
                    Some(("", _)) => return Err(Error::new("ARG names can not be blank")),
                    Some((k, v)) => pairs.push((k.to_string(), Some(v.to_string()))),
                    None => pairs.push((arg.clone(), None)),
                }
            }
            Ok(Instruction::Arg(pairs))
        }
        "shell" => {
            BFlags::new("SHELL").parse(&node.flags)?;
            if args.is_empty() {
                return Err(at_least_one("SHELL"));
            }
            if !node.json {
                // Text that already looks like JSON is broken JSON, not shell form.
                let hint = if args.first().is_some_and(|a| a.starts_with('[')) {
                    "the JSON array is not valid: check its brackets, quotes and commas".to_string()
                } else {
                    format!(
                        "write it as a JSON array, e.g. SHELL {}",
                        json_example(&args)
                    )
                };
                return Err(
                    Error::new("SHELL requires the arguments to be in JSON form").with_hint(hint),
                );
            }
            Ok(Instruction::Shell(args))
        }
        _ => Err(unknown_instruction(&node.value)),
    }
}

fn json_example(args: &[String]) -> String {
    let words: Vec<String> = args
        .iter()
        .flat_map(|a| a.split_whitespace().map(str::to_string))
        .collect();
    let quoted: Vec<String> = words
        .iter()
        .map(|w| serde_json::to_string(w).unwrap_or_default())
        .collect();
    format!("[{}]", quoted.join(", "))
}

fn unknown_instruction(value: &str) -> Error {
    let err = Error::new(format!("unknown instruction: {value}"));
    match suggest::search(value, &INSTRUCTION_NAMES, false) {
        Some(m) => err.with_hint(format!("did you mean {m}?")),
        None => err,
    }
}

fn parse_from(node: &Node, args: &[String]) -> Result<Instruction> {
    let alias = match args {
        [_, as_kw, name] if is_as_keyword(as_kw) => {
            let lower = go_to_lower(name);
            if !valid_stage_name(&lower) {
                return Err(Error::new(format!(
                    "invalid name for build stage: {}, name can't start with a number or contain symbols",
                    go_quote(name)
                )));
            }
            Some(lower)
        }
        [_] => None,
        _ => return Err(Error::new("FROM requires either one or three arguments")),
    };
    let mut flags = BFlags::new("FROM").add_string("platform", "");
    flags.parse(&node.flags)?;
    Ok(Instruction::From {
        image: args[0].clone(),
        platform: flags.opt_string("platform"),
        alias,
    })
}

/// `strings.EqualFold(word, "as")`: Unicode simple case folding, under
/// which U+017F (long s) matches `s` as well.
fn is_as_keyword(word: &str) -> bool {
    let mut chars = word.chars();
    matches!(
        (chars.next(), chars.next(), chars.next()),
        (Some('a' | 'A'), Some('s' | 'S' | '\u{17f}'), None)
    )
}

/// `^[a-z][a-z0-9-_.]*$`
fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

fn parse_onbuild(node: &Node, args: &[String]) -> Result<Instruction> {
    let Some(first) = args.first() else {
        return Err(at_least_one("ONBUILD"));
    };
    BFlags::new("ONBUILD").parse(&node.flags)?;
    let trigger = go_to_upper(parser::gostr::trim_space(first));
    match trigger.as_str() {
        "ONBUILD" => {
            return Err(Error::new(
                "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
            ))
        }
        "MAINTAINER" | "FROM" => {
            return Err(Error::new(format!(
                "{trigger} isn't allowed as an ONBUILD trigger"
            )))
        }
        _ => {}
    }
    let mut expression = strip_onbuild_prefix(&node.original).to_string();
    for doc in &node.heredocs {
        expression.push('\n');
        expression.push_str(&doc.content);
        expression.push_str(&doc.name);
    }
    Ok(Instruction::Onbuild(expression))
}

/// Remove `(?i)^\s*ONBUILD\s*` (regexp `\s` is ASCII whitespace).
fn strip_onbuild_prefix(original: &str) -> &str {
    let is_re_space = |c: char| matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' ');
    let s = original.trim_start_matches(is_re_space);
    match s.get(..7) {
        Some(kw) if kw.eq_ignore_ascii_case("onbuild") => s[7..].trim_start_matches(is_re_space),
        _ => original,
    }
}

fn parse_run(node: &Node, args: &[String]) -> Result<Instruction> {
    let mut flags = BFlags::new("RUN")
        .add_strings("device")
        .add_strings("mount")
        .add_string("network", "default")
        .add_string("security", "sandbox");
    flags.parse(&node.flags)?;
    let command = command_line(args, node.json);

    // BuildKit validates `--device` here, and its stable frontend then
    // refuses it when the step is built (devices need the labs channel).
    let devices = flags.strings("device");
    for d in &devices {
        parse_device(d)?;
    }
    if !devices.is_empty() {
        return Err(Error::new(
            "device feature is only supported in Dockerfile frontend 1.14.0-labs or later",
        )
        .with_hint("this builder does not support RUN --device"));
    }
    let mounts = flags.strings("mount");
    for m in &mounts {
        mount::check_mount_unexpanded(m)?;
    }
    let network = flags.string("network");
    if !matches!(network.as_str(), "default" | "none" | "host") {
        return Err(
            Error::new(format!("invalid network mode {}", go_quote(&network)))
                .with_hint("--network accepts default, none or host"),
        );
    }
    let security = flags.string("security");
    if !matches!(security.as_str(), "insecure" | "sandbox") {
        return Err(
            Error::new(format!("security {} is not valid", go_quote(&security)))
                .with_hint("--security accepts sandbox or insecure"),
        );
    }
    Ok(Instruction::Run {
        command,
        heredocs: node.heredocs.clone(),
        mounts,
        network: flags.used("network").then_some(network),
        security: flags.used("security").then_some(security),
    })
}

/// Split COPY/ADD arguments into sources, heredoc sources and destination.
fn sources_and_dest(
    node: &Node,
    args: &[String],
    cmd: &str,
) -> Result<(Vec<String>, Vec<HeredocFile>, String)> {
    let Some((dest, srcs)) = args.split_last() else {
        return Err(no_destination(cmd));
    };
    if matches!(parser::parse_heredoc(dest), Ok(Some(_))) {
        return Err(Error::new(format!(
            "{cmd} cannot accept a heredoc as a destination"
        )));
    }
    let mut paths = Vec::new();
    let mut inline = Vec::new();
    for src in srcs {
        match parser::parse_heredoc(src) {
            Ok(Some(h)) => {
                // The last body with that name wins, as in BuildKit's lookup map.
                let mut data = node
                    .heredocs
                    .iter()
                    .rev()
                    .find(|d| d.name == h.name)
                    .map(|d| d.content.clone())
                    .unwrap_or_default();
                if h.chomp {
                    data = chomp_heredoc_content(&data);
                }
                inline.push(HeredocFile {
                    name: h.name,
                    content: data,
                    expand: h.expand,
                });
            }
            _ => paths.push(src.clone()),
        }
    }
    Ok((paths, inline, dest.clone()))
}

fn parse_add(node: &Node, args: &[String]) -> Result<Instruction> {
    if args.len() < 2 {
        return Err(no_destination("ADD"));
    }
    let mut flags = BFlags::new("ADD")
        .add_string("chown", "")
        .add_string("chmod", "")
        .add_bool("link")
        .add_bool("keep-git-dir")
        .add_string("checksum", "")
        .add_bool("unpack")
        .add_strings("exclude");
    flags.parse(&node.flags)?;
    let (sources, heredocs, dest) = sources_and_dest(node, args, "ADD")?;
    Ok(Instruction::Add(CopyArgs {
        sources,
        dest,
        from: None,
        chown: flags.opt_string("chown"),
        chmod: flags.opt_string("chmod"),
        link: flags.bool("link"),
        parents: false,
        exclude: flags.strings("exclude"),
        heredocs,
        keep_git_dir: flags.opt_bool("keep-git-dir"),
        checksum: flags.opt_string("checksum"),
        unpack: flags.opt_bool("unpack"),
    }))
}

fn parse_copy(node: &Node, args: &[String]) -> Result<Instruction> {
    if args.len() < 2 {
        return Err(no_destination("COPY"));
    }
    let mut flags = BFlags::new("COPY")
        .add_string("chown", "")
        .add_string("from", "")
        .add_string("chmod", "")
        .add_bool("link")
        .add_strings("exclude")
        .add_bool("parents");
    flags.parse(&node.flags)?;
    let (sources, heredocs, dest) = sources_and_dest(node, args, "COPY")?;
    Ok(Instruction::Copy(CopyArgs {
        sources,
        dest,
        from: flags.opt_string("from"),
        chown: flags.opt_string("chown"),
        chmod: flags.opt_string("chmod"),
        link: flags.bool("link"),
        parents: flags.bool("parents"),
        exclude: flags.strings("exclude"),
        heredocs,
        keep_git_dir: None,
        checksum: None,
        unpack: None,
    }))
}

/// A `--interval`-style value: 0 if empty or zero, at least 1ms otherwise.
fn parse_interval(name: &str, value: &str) -> Result<u64> {
    if value.is_empty() {
        return Ok(0);
    }
    let d = goconv::parse_duration(value).map_err(|e| {
        Error::new(e).with_hint(format!(
            "--{name} takes a duration such as 30s, 1m30s or 500ms"
        ))
    })?;
    if d == 0 {
        return Ok(0);
    }
    if d < 1_000_000 {
        return Err(Error::new(format!(
            "interval {} cannot be less than 1ms",
            go_quote(name)
        )));
    }
    Ok(d as u64)
}

fn parse_healthcheck(node: &Node, args: &[String]) -> Result<Instruction> {
    let Some((typ, rest)) = args.split_first() else {
        return Err(at_least_one("HEALTHCHECK"));
    };
    let typ = go_to_upper(typ);
    if typ == "NONE" {
        if !rest.is_empty() {
            return Err(Error::new("HEALTHCHECK NONE takes no arguments"));
        }
        return Ok(Instruction::Healthcheck(HealthcheckSpec::None));
    }
    let mut flags = BFlags::new("HEALTHCHECK")
        .add_string("interval", "")
        .add_string("timeout", "")
        .add_string("start-period", "")
        .add_string("start-interval", "")
        .add_string("retries", "");
    flags.parse(&node.flags)?;
    if typ != "CMD" {
        return Err(Error::new(format!(
            "unknown type {} in HEALTHCHECK (try CMD)",
            go_quote(&typ)
        ))
        .with_hint("use HEALTHCHECK CMD <command> or HEALTHCHECK NONE"));
    }
    if rest.is_empty() {
        return Err(Error::new("missing command after HEALTHCHECK CMD"));
    }
    let test = if node.json {
        std::iter::once("CMD".to_string())
            .chain(rest.iter().cloned())
            .collect()
    } else {
        vec!["CMD-SHELL".to_string(), rest.join(" ")]
    };
    let interval = parse_interval("interval", &flags.string("interval"))?;
    let timeout = parse_interval("timeout", &flags.string("timeout"))?;
    let start_period = parse_interval("start-period", &flags.string("start-period"))?;
    let start_interval = parse_interval("start-interval", &flags.string("start-interval"))?;
    let retries_raw = flags.string("retries");
    let retries = if retries_raw.is_empty() {
        0
    } else {
        let r = goconv::parse_int(&retries_raw, 32).map_err(|e| {
            let why = match e {
                goconv::NumError::Syntax => "invalid syntax",
                goconv::NumError::Range => "value out of range",
            };
            Error::new(format!(
                "strconv.ParseInt: parsing {}: {why}",
                go_quote(&retries_raw)
            ))
            .with_hint("--retries takes a whole number")
        })?;
        if r < 0 {
            return Err(Error::new(format!("--retries cannot be negative ({r})")));
        }
        r as u64
    };
    Ok(Instruction::Healthcheck(HealthcheckSpec::Cmd {
        test,
        interval,
        timeout,
        start_period,
        start_interval,
        retries,
    }))
}

/// Convert every instruction of a parsed Dockerfile. Like BuildKit, only
/// ARG may come before the first FROM.
pub fn parse_all(ast: &Ast) -> Result<Vec<Located<Instruction>>> {
    let mut out = Vec::with_capacity(ast.children.len());
    let mut in_stage = false;
    for node in &ast.children {
        let location = node_location(node);
        let inner = parse_instruction(node).map_err(|e| e.or_at(location))?;
        match inner {
            Instruction::From { .. } => in_stage = true,
            Instruction::Arg(_) => {}
            _ if !in_stage => {
                return Err(Error::at("no build stage in current context", location)
                    .with_hint("a Dockerfile must start with FROM (only ARG may come before it)"));
            }
            _ => {}
        }
        out.push(Located {
            inner,
            line: location.line,
            col: location.col,
            len: location.len,
            end_line: node.end_line,
            original: node.original.clone(),
        });
    }
    Ok(out)
}

/// Parse source text all the way to typed instructions.
pub fn parse_dockerfile(src: &str) -> Result<(Ast, Vec<Located<Instruction>>)> {
    let ast = parser::parse(src)?;
    let instructions = parse_all(&ast)?;
    Ok((ast, instructions))
}
