//! An inline stage as Dockerfile text: one `FROM` and one instruction per
//! setting or step, so that the Dockerfile frontend lowers it with exactly
//! the Dockerfile's semantics (ARG/ENV scoping and expansion, WORKDIR,
//! USER, COPY rules, history). Each generated line remembers the TOML span
//! it came from, so errors the Dockerfile frontend finds point at the spec.

use crate::error::{SourceMap, TomlError};
use crate::spec::{Cmd, CopySpec, Health, Inline, MountSpec, Step, StepOp};
use crate::tree::Span;

type Result<T, E = TomlError> = std::result::Result<T, E>;

#[derive(Debug, Clone)]
pub struct Generated {
    pub text: String,
    /// The TOML span of each generated line (index 0 is line 1).
    pub lines: Vec<Span>,
}

impl Generated {
    fn push(&mut self, text: &str, span: &Span) {
        for line in text.split('\n') {
            self.text.push_str(line);
            self.text.push('\n');
            self.lines.push(span.clone());
        }
    }

    /// The TOML span a generated line came from.
    pub fn span_of_line(&self, line: usize) -> Option<&Span> {
        line.checked_sub(1).and_then(|i| self.lines.get(i))
    }
}

/// A word that needs no quoting for the Dockerfile lexer.
fn is_simple(s: &str) -> bool {
    !s.is_empty()
        && !s
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\'))
}

/// Double-quoted for the Dockerfile lexer: `$` stays live (Dockerfile
/// expansion applies), quotes and backslashes are literal.
fn dq(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn word(s: &str) -> String {
    if is_simple(s) {
        s.to_string()
    } else {
        dq(s)
    }
}

fn json_array(items: &[String]) -> String {
    let parts: Vec<String> = items
        .iter()
        .map(|s| serde_json::to_string(s).unwrap_or_default())
        .collect();
    format!("[{}]", parts.join(", "))
}

/// Words in plain form when they need no quoting, else as a JSON array.
fn words_or_json(items: &[String]) -> String {
    if items.iter().all(|s| is_simple(s)) {
        items.join(" ")
    } else {
        json_array(items)
    }
}

struct Gen<'a> {
    map: &'a SourceMap,
    out: Generated,
}

impl Gen<'_> {
    fn err(&self, span: &Span, message: impl Into<String>) -> TomlError {
        self.map.error(span, message)
    }

    fn single_line(&self, span: &Span, what: &str, s: &str) -> Result<()> {
        if s.contains('\n') || s.contains('\r') {
            return Err(self
                .err(span, format!("{what} cannot span several lines"))
                .with_hint("write it on one line, or use the exec form (an array)"));
        }
        Ok(())
    }

    fn flag_value(&self, span: &Span, flag: &str, v: &str) -> Result<String> {
        if v.is_empty() || v.chars().any(char::is_whitespace) {
            return Err(self
                .err(span, format!("invalid {flag} `{v}`"))
                .with_hint(format!("{flag} cannot be empty or contain spaces")));
        }
        Ok(v.to_string())
    }

    fn key(&self, span: &Span, what: &str, k: &str) -> Result<String> {
        if k.is_empty() || k.contains('=') || k.contains('\n') {
            return Err(self.err(span, format!("invalid {what} name `{k}`")));
        }
        Ok(word(k))
    }

    fn pairs(&self, span: &Span, what: &str, pairs: &[(String, String)]) -> Result<String> {
        let mut parts = Vec::new();
        for (k, v) in pairs {
            let key = self.key(span, what, k)?;
            if what == "ENV" && (k.chars().any(char::is_whitespace) || k.contains(['"', '\''])) {
                return Err(self.err(span, format!("invalid environment variable name `{k}`")));
            }
            self.single_line(span, &format!("the value of {what} `{k}`"), v)?;
            let value = if is_simple(v) { v.clone() } else { dq(v) };
            parts.push(format!("{key}={value}"));
        }
        Ok(parts.join(" "))
    }

    fn cmd(&self, span: &Span, what: &str, c: &Cmd) -> Result<String> {
        match c {
            Cmd::Exec(a) => Ok(json_array(a)),
            Cmd::Shell(s) => {
                let s = s.trim();
                self.single_line(span, &format!("a shell-form {what}"), s)?;
                if s.starts_with('[') {
                    return Err(self
                        .err(span, format!("a shell-form {what} cannot start with `[`"))
                        .with_hint("use the exec form (an array of strings)"));
                }
                Ok(s.to_string())
            }
        }
    }

    fn step(&mut self, step: &Step) -> Result<()> {
        let sp = &step.span;
        let line = match &step.op {
            StepOp::Run {
                cmd,
                mounts,
                network,
                security,
            } => self.run(cmd, mounts, network, security)?,
            StepOp::Copy(c) => self.copy(sp, c)?,
            StepOp::File {
                path,
                content,
                chown,
                chmod,
            } => {
                let mut flags = String::new();
                if let Some(c) = chown {
                    flags.push_str(&format!("--chown={} ", self.flag_value(sp, "chown", c)?));
                }
                if let Some(m) = chmod {
                    flags.push_str(&format!("--chmod={} ", self.flag_value(sp, "chmod", m)?));
                }
                if path.contains('\n') || path.starts_with("<<") {
                    return Err(self.err(sp, format!("invalid file path `{path}`")));
                }
                let delim = delimiter(content);
                let mut body = content.clone();
                if !body.is_empty() && !body.ends_with('\n') {
                    body.push('\n');
                }
                format!("COPY {flags}<<'{delim}' {}\n{body}{delim}", word(path))
            }
            StepOp::Env(pairs) => {
                if pairs.is_empty() {
                    return Ok(());
                }
                format!("ENV {}", self.pairs(sp, "ENV", pairs)?)
            }
            StepOp::Label(pairs) => {
                if pairs.is_empty() {
                    return Ok(());
                }
                format!("LABEL {}", self.pairs(sp, "LABEL", pairs)?)
            }
            StepOp::Arg(args) => {
                if args.is_empty() {
                    return Ok(());
                }
                let mut parts = Vec::new();
                for (k, v) in args {
                    if k.is_empty()
                        || k.contains('=')
                        || k.chars()
                            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\'))
                    {
                        return Err(self.err(sp, format!("invalid argument name `{k}`")));
                    }
                    match v {
                        Some(v) => {
                            self.single_line(sp, &format!("the default of ARG `{k}`"), v)?;
                            parts.push(format!(
                                "{k}={}",
                                if is_simple(v) { v.clone() } else { dq(v) }
                            ));
                        }
                        None => parts.push(k.clone()),
                    }
                }
                format!("ARG {}", parts.join(" "))
            }
            StepOp::Workdir(d) => {
                self.single_line(sp, "workdir", d)?;
                format!("WORKDIR {}", word(d))
            }
            StepOp::User(u) => {
                self.single_line(sp, "user", u)?;
                format!("USER {}", word(u))
            }
            StepOp::Expose(ports) => {
                if ports.is_empty() {
                    return Ok(());
                }
                for p in ports {
                    self.flag_value(sp, "port", p)?;
                }
                format!("EXPOSE {}", ports.join(" "))
            }
            StepOp::Volume(v) => {
                if v.is_empty() {
                    return Ok(());
                }
                for p in v {
                    self.single_line(sp, "a volume", p)?;
                }
                format!("VOLUME {}", words_or_json(v))
            }
            StepOp::Entrypoint(c) => format!("ENTRYPOINT {}", self.cmd(sp, "entrypoint", c)?),
            StepOp::Cmd(c) => format!("CMD {}", self.cmd(sp, "cmd", c)?),
            StepOp::Healthcheck(h) => self.healthcheck(sp, h.as_ref())?,
            StepOp::Shell(a) => {
                if a.is_empty() {
                    return Err(self
                        .err(sp, "`shell` is empty")
                        .with_hint("write e.g. `shell = [\"/bin/sh\", \"-c\"]`"));
                }
                format!("SHELL {}", json_array(a))
            }
            StepOp::StopSignal(s) => {
                self.single_line(sp, "stop-signal", s)?;
                format!("STOPSIGNAL {}", word(s))
            }
            StepOp::Onbuild(t) => {
                self.single_line(sp, "an onbuild trigger", t)?;
                let upper = t.trim_start().to_ascii_uppercase();
                if upper.starts_with("ONBUILD")
                    || upper.starts_with("FROM")
                    || upper.starts_with("MAINTAINER")
                {
                    return Err(self
                        .err(sp, format!("invalid onbuild trigger `{t}`"))
                        .with_hint("ONBUILD cannot trigger ONBUILD, FROM or MAINTAINER"));
                }
                format!("ONBUILD {}", t.trim())
            }
            StepOp::Maintainer(m) => {
                self.single_line(sp, "maintainer", m)?;
                format!("MAINTAINER {}", m.trim())
            }
        };
        self.out.push(&line, sp);
        Ok(())
    }

    fn run(
        &self,
        cmd: &Cmd,
        mounts: &[MountSpec],
        network: &Option<String>,
        security: &Option<String>,
    ) -> Result<String> {
        let mut flags = String::new();
        for m in mounts {
            let mut fields = Vec::new();
            for (k, v) in &m.fields {
                if v.contains([',', '"', '\'']) {
                    return Err(self
                        .err(&m.span, format!("mount {k} `{v}` contains `,` or a quote"))
                        .with_hint("mount options cannot contain commas or quotes"));
                }
                fields.push(format!("{k}={v}"));
            }
            flags.push_str(&format!("--mount={} ", fields.join(",")));
        }
        if let Some(n) = network {
            flags.push_str(&format!("--network={n} "));
        }
        if let Some(s) = security {
            flags.push_str(&format!("--security={s} "));
        }
        Ok(match cmd {
            Cmd::Exec(a) => format!("RUN {flags}{}", json_array(a)),
            Cmd::Shell(s) => {
                let t = s.trim();
                let plain = !t.is_empty()
                    && !t.contains(['\n', '\r'])
                    && !t.starts_with('[')
                    && !t.contains("<<")
                    && !t.ends_with('\\');
                if plain {
                    format!("RUN {flags}{t}")
                } else {
                    // A script: a here-document, run by the shell as written.
                    let delim = delimiter(s);
                    let mut body = s.clone();
                    if !body.ends_with('\n') {
                        body.push('\n');
                    }
                    format!("RUN {flags}<<{delim}\n{body}{delim}")
                }
            }
        })
    }

    fn copy(&self, sp: &Span, c: &CopySpec) -> Result<String> {
        let mut flags = String::new();
        if let Some(f) = &c.from {
            flags.push_str(&format!(
                "--from={} ",
                self.flag_value(&f.span, "from", &f.value)?
            ));
        }
        if let Some(o) = &c.chown {
            flags.push_str(&format!("--chown={} ", self.flag_value(sp, "chown", o)?));
        }
        if let Some(m) = &c.chmod {
            flags.push_str(&format!("--chmod={} ", self.flag_value(sp, "chmod", m)?));
        }
        if c.link {
            flags.push_str("--link ");
        }
        if c.parents {
            flags.push_str("--parents ");
        }
        for e in &c.exclude {
            flags.push_str(&format!(
                "--exclude={} ",
                self.flag_value(sp, "exclude", e)?
            ));
        }
        let mut args = c.sources.clone();
        args.push(c.dest.clone());
        for a in &args {
            self.single_line(sp, "a path", a)?;
            if a.starts_with("<<") {
                return Err(self
                    .err(sp, format!("invalid path `{a}`"))
                    .with_hint("to write a file with given content, use a `file` step"));
            }
        }
        let cmd = if c.add { "ADD" } else { "COPY" };
        Ok(format!("{cmd} {flags}{}", words_or_json(&args)))
    }

    fn healthcheck(&self, sp: &Span, h: Option<&Health>) -> Result<String> {
        let Some(h) = h else {
            return Ok("HEALTHCHECK NONE".into());
        };
        let mut flags = String::new();
        for (name, v) in [
            ("interval", &h.interval),
            ("timeout", &h.timeout),
            ("start-period", &h.start_period),
            ("start-interval", &h.start_interval),
        ] {
            if let Some(v) = v {
                flags.push_str(&format!("--{name}={v} "));
            }
        }
        if let Some(r) = h.retries {
            flags.push_str(&format!("--retries={r} "));
        }
        Ok(format!(
            "HEALTHCHECK {flags}CMD {}",
            self.cmd(sp, "healthcheck command", &h.cmd)?
        ))
    }
}

/// A here-document delimiter that no line of `body` equals.
fn delimiter(body: &str) -> String {
    let mut n = 0;
    loop {
        let d = if n == 0 {
            "EOF".to_string()
        } else {
            format!("EOF{n}")
        };
        if !body.lines().any(|l| l.trim() == d) {
            return d;
        }
        n += 1;
    }
}

/// The Dockerfile of one inline stage. `from` is written as the spec has
/// it: the caller maps spec stages to named contexts.
pub fn dockerfile(name: &str, inline: &Inline, map: &SourceMap) -> Result<Generated> {
    let mut g = Gen {
        map,
        out: Generated {
            text: String::new(),
            lines: Vec::new(),
        },
    };
    let mut from_line = String::from("FROM ");
    if let Some(p) = &inline.platform {
        from_line.push_str(&format!(
            "--platform={} ",
            g.flag_value(&p.span, "platform", &p.value)?
        ));
    }
    from_line.push_str(&format!("{} AS {name}", inline.from.value));
    let span = inline.from.span.clone();
    g.out.push(&from_line, &span);
    for s in &inline.steps {
        g.step(s)?;
    }
    Ok(g.out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn gen(text: &str, stage: &str) -> Result<String> {
        let map = SourceMap::new("engine.toml", text);
        let root = crate::tree::parse(text, &map)?;
        let spec = crate::spec::read(&root, &map, &BTreeMap::new())?;
        let u = spec.unit(stage).unwrap();
        let crate::spec::Body::Inline(i) = &u.body else {
            panic!()
        };
        Ok(dockerfile(&u.name, i, &map)?.text)
    }

    #[test]
    fn settings_and_steps_become_instructions_in_order() {
        let text = r#"
[vars]
V = "1.0"
[stage.app]
from = "alpine:3.20"
platform = "$BUILDPLATFORM"
cmd = ["/app"]
user = "app"
env = { B = "two words", A = "${V}", P = "/x:$PATH" }
args = { X = "1" }
workdir = "/srv/my app"
labels = { "org.opencontainers.image.version" = "${V}" }
expose = [8080, "53/udp"]
healthcheck = { cmd = ["wget", "-q", "localhost"], interval = "30s", retries = 3 }
[[stage.app.steps]]
copy = ["a.txt", "b dir/"]
to = "/dst/"
chmod = 0o755
[[stage.app.steps]]
run = "make -j2"
mounts = [{ type = "cache", target = "/root/.cache", id = "c", sharing = "locked" }]
network = "none"
[[stage.app.steps]]
run = """
set -e
echo hi
"""
[[stage.app.steps]]
file = "/etc/motd"
content = "hello $USER"
"#;
        let out = gen(text, "app").unwrap();
        assert_eq!(
            out,
            r#"FROM --platform=$BUILDPLATFORM alpine:3.20 AS app
ARG X=1
ENV B="two words" A=1.0 P=/x:$PATH
WORKDIR "/srv/my app"
COPY --chmod=755 ["a.txt", "b dir/", "/dst/"]
RUN --mount=type=cache,target=/root/.cache,id=c,sharing=locked --network=none make -j2
RUN <<EOF
set -e
echo hi
EOF
COPY <<'EOF' /etc/motd
hello $USER
EOF
USER app
LABEL org.opencontainers.image.version=1.0
EXPOSE 8080 53/udp
HEALTHCHECK --interval=30s --retries=3 CMD ["wget", "-q", "localhost"]
CMD ["/app"]
"#
        );
    }

    #[test]
    fn shell_form_edge_cases_use_heredocs() {
        let text = "[stage.s]\nfrom = \"scratch\"\nsteps = [{ run = \"[ -f x ] && echo\" }, { run = \"cat <<X\" }, { run = \"echo\\\\\" }]\n";
        let out = gen(text, "s").unwrap();
        assert_eq!(
            out,
            "FROM scratch AS s\nRUN <<EOF\n[ -f x ] && echo\nEOF\nRUN <<EOF\ncat <<X\nEOF\nRUN <<EOF\necho\\\nEOF\n"
        );
        assert_eq!(delimiter("a\nEOF\nEOF1\n"), "EOF2");
    }
}
