//! `RUN --mount=...` and `RUN --device=...` option grammar (BuildKit's
//! `parseMount`/`ParseDevice`): one CSV record of `key=value` fields.

use serde::Serialize;

use super::goconv;
use super::suggest;
use crate::error::{Error, Result};

/// Mount types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

impl MountType {
    pub fn as_str(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "bind" => MountType::Bind,
            "cache" => MountType::Cache,
            "tmpfs" => MountType::Tmpfs,
            "secret" => MountType::Secret,
            "ssh" => MountType::Ssh,
            _ => return None,
        })
    }
}

/// Cache mount sharing modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ShareMode {
    Shared,
    Private,
    Locked,
}

impl ShareMode {
    fn as_str(self) -> &'static str {
        match self {
            ShareMode::Shared => "shared",
            ShareMode::Private => "private",
            ShareMode::Locked => "locked",
        }
    }
}

/// A parsed `--mount`, with BuildKit's per-type defaults applied:
///
/// - `readonly` defaults to true except for cache and tmpfs mounts;
/// - cache: `id` defaults to the cleaned `target`;
/// - secret: `id` is `source`, else `id`, else the base name of `target`;
///   `target` defaults to `/run/secrets/<id>`, or stays empty when the
///   secret is only exposed as an environment variable (`env=`);
/// - ssh: `id` defaults to `default` (`source` is an error).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mount {
    #[serde(rename = "type")]
    pub kind: MountType,
    /// Path in the container, as written (relative paths are relative to
    /// the working directory); empty only for env-only secrets.
    pub target: String,
    /// Path inside the mounted source (`source=`/`src=`).
    pub source: Option<String>,
    /// Stage or image to mount from (`from=`).
    pub from: Option<String>,
    pub readonly: bool,
    /// Cache, secret or ssh id (defaults applied, see above).
    pub id: Option<String>,
    /// Cache sharing mode: `shared`, `private` or `locked` (lowercase).
    pub sharing: Option<String>,
    /// Secret/ssh: fail when the secret/agent is not provided.
    pub required: bool,
    /// tmpfs size limit in bytes; `None` for unlimited.
    pub size: Option<u64>,
    /// Secret exposed as this environment variable (`env=`).
    pub env: Option<String>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// The mount as BuildKit's `instructions.Mount` holds it (empty = unset).
struct RawMount {
    kind: MountType,
    from: String,
    source: String,
    target: String,
    read_only: bool,
    size_limit: i64,
    cache_id: String,
    sharing: Option<ShareMode>,
    required: bool,
    env: Option<String>,
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
}

impl RawMount {
    fn new() -> Self {
        RawMount {
            kind: MountType::Bind,
            from: String::new(),
            source: String::new(),
            target: String::new(),
            read_only: false,
            size_limit: 0,
            cache_id: String::new(),
            sharing: None,
            required: false,
            env: None,
            mode: None,
            uid: None,
            gid: None,
        }
    }

    /// Apply the defaults BuildKit fills in when it builds the step.
    fn finish(self) -> Result<Mount> {
        let non_empty = |s: String| Some(s).filter(|s| !s.is_empty());
        let (id, target) = match self.kind {
            MountType::Cache => {
                let id = if self.cache_id.is_empty() {
                    goconv::path_clean(&self.target)
                } else {
                    self.cache_id.clone()
                };
                (Some(id), self.target.clone())
            }
            MountType::Secret => {
                let id = if !self.source.is_empty() {
                    self.source.clone()
                } else if !self.cache_id.is_empty() {
                    self.cache_id.clone()
                } else if !self.target.is_empty() {
                    goconv::path_base(&self.target)
                } else {
                    return Err(Error::new("one of source, target required"));
                };
                let target = if !self.target.is_empty() || self.env.is_some() {
                    self.target.clone()
                } else {
                    format!("/run/secrets/{}", goconv::path_base(&id))
                };
                (Some(id), target)
            }
            MountType::Ssh => {
                if !self.source.is_empty() {
                    return Err(Error::new("ssh does not support source"));
                }
                let id = if self.cache_id.is_empty() {
                    "default".to_string()
                } else {
                    self.cache_id.clone()
                };
                (Some(id), self.target.clone())
            }
            MountType::Bind | MountType::Tmpfs => {
                (non_empty(self.cache_id.clone()), self.target.clone())
            }
        };
        let size = match self.size_limit {
            0 => None,
            n if n < 0 => return Err(Error::new("invalid value for size: out of range")),
            n => Some(n as u64),
        };
        // A secret's id comes from `source`, which is not a path to mount.
        let source = if self.kind == MountType::Secret {
            None
        } else {
            non_empty(self.source)
        };
        Ok(Mount {
            kind: self.kind,
            target,
            source,
            from: non_empty(self.from),
            readonly: self.read_only,
            id,
            sharing: self.sharing.map(|s| s.as_str().to_string()),
            required: self.required,
            size,
            env: self.env,
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
        })
    }
}

/// One CSV record, like `encoding/csv` with default settings (what
/// BuildKit's `csvvalue.Fields` does).
pub(crate) fn csv_fields(input: &str) -> Result<Vec<String>> {
    let mut line = input;
    if let Some(l) = line.strip_suffix('\n') {
        line = l.strip_suffix('\r').unwrap_or(l);
    }
    if line.is_empty() {
        return Err(Error::new("EOF"));
    }
    let err = |col: usize, what: &str| {
        Err(Error::new(format!(
            "parse error on line 1, column {col}: {what}"
        )))
    };
    let mut fields: Vec<String> = Vec::new();
    let mut pos = 0usize;
    let mut rest = line;
    'field: loop {
        if !rest.starts_with('"') {
            let (field, more) = match rest.find(',') {
                Some(i) => (&rest[..i], Some(&rest[i + 1..])),
                None => (rest, None),
            };
            if let Some(j) = field.find('"') {
                return err(pos + j + 1, "bare \" in non-quoted-field");
            }
            fields.push(field.to_string());
            match more {
                Some(m) => {
                    pos += field.len() + 1;
                    rest = m;
                    continue 'field;
                }
                None => break 'field,
            }
        }
        // Quoted field.
        rest = &rest[1..];
        pos += 1;
        let mut half_open = false;
        loop {
            let Some(i) = rest.find('"') else {
                return err(pos + 1, "extraneous or missing \" in quoted-field");
            };
            if half_open {
                if let Some(last) = fields.last_mut() {
                    last.push_str(&rest[..i]);
                }
            } else {
                fields.push(rest[..i].to_string());
            }
            rest = &rest[i + 1..];
            pos += i + 1;
            match rest.chars().next() {
                Some('"') => {
                    if let Some(last) = fields.last_mut() {
                        last.push('"');
                    }
                    rest = &rest[1..];
                    pos += 1;
                    half_open = true;
                }
                Some(',') => {
                    rest = &rest[1..];
                    pos += 1;
                    continue 'field;
                }
                None => break 'field,
                Some(_) => return err(pos, "extraneous or missing \" in quoted-field"),
            }
        }
    }
    Ok(fields)
}

const MOUNT_KEYS: [&str; 19] = [
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "size",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "destination",
    "ro",
    "rw",
    "readwrite",
    "env",
];

fn with_suggestion(err: Error, val: &str, options: &[&str]) -> Error {
    match suggest::search(val, options, true) {
        Some(m) => err.with_hint(format!("did you mean {m}?")),
        None => err,
    }
}

/// Checks BuildKit makes on a `--mount` value when the instruction is
/// parsed, before variables are known: valid CSV, and no variables in
/// `from=`.
pub(crate) fn check_mount_unexpanded(raw: &str) -> Result<()> {
    let fields = csv_fields(raw)
        .map_err(|e| Error::new(format!("failed to parse csv mounts: {}", e.message)))?;
    for field in &fields {
        let Some((key, value)) = field.split_once('=') else {
            continue;
        };
        if crate::parser::go_to_lower(key) == "from" {
            if let Some(idx) = value.find('$') {
                if idx != value.len() - 1 {
                    return Err(Error::new(
                        "'from' doesn't support variable expansion, define alias stage instead",
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Parse a `--mount` value. `expand` is applied to every value (not to
/// keys), as BuildKit does once the build arguments are known.
pub fn parse_mount(raw: &str, expand: &mut dyn FnMut(&str) -> Result<String>) -> Result<Mount> {
    let fields = csv_fields(raw)
        .map_err(|e| Error::new(format!("failed to parse csv mounts: {}", e.message)))?;
    let mut m = RawMount::new();
    let mut ro_auto = true;
    let invalid = |key: &str, value: &str| Error::new(format!("invalid value for {key}: {value}"));

    for field in &fields {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (crate::parser::go_to_lower(k), Some(v)),
            None => (crate::parser::go_to_lower(field), None),
        };
        let Some(value) = value else {
            match key.as_str() {
                "readonly" | "ro" => {
                    m.read_only = true;
                    ro_auto = false;
                }
                "readwrite" | "rw" => {
                    m.read_only = false;
                    ro_auto = false;
                }
                "required" => {
                    if matches!(m.kind, MountType::Secret | MountType::Ssh) {
                        m.required = true;
                    } else {
                        return Err(Error::new(format!(
                            "unexpected key '{key}' for mount type '{}'",
                            m.kind.as_str()
                        )));
                    }
                }
                _ => {
                    return Err(Error::new(format!(
                        "invalid field '{field}' must be a key=value pair"
                    )))
                }
            }
            continue;
        };
        let value = expand(value)?;
        match key.as_str() {
            "type" => {
                let Some(t) = MountType::parse(&crate::parser::go_to_lower(&value)) else {
                    let err = Error::new(format!(
                        "unsupported mount type {}",
                        crate::parser::go_quote(&value)
                    ));
                    return Err(with_suggestion(
                        err,
                        &value,
                        &["bind", "cache", "tmpfs", "secret", "ssh"],
                    ));
                };
                m.kind = t;
            }
            "from" => m.from = value,
            "source" | "src" => m.source = value,
            "target" | "dst" | "destination" => m.target = value,
            "readonly" | "ro" => {
                m.read_only = goconv::parse_bool(&value).ok_or_else(|| invalid(&key, &value))?;
                ro_auto = false;
            }
            "readwrite" | "rw" => {
                let rw = goconv::parse_bool(&value).ok_or_else(|| invalid(&key, &value))?;
                m.read_only = !rw;
                ro_auto = false;
            }
            "required" => {
                if matches!(m.kind, MountType::Secret | MountType::Ssh) {
                    m.required = goconv::parse_bool(&value).ok_or_else(|| invalid(&key, &value))?;
                } else {
                    return Err(Error::new(format!(
                        "unexpected key '{key}' for mount type '{}'",
                        m.kind.as_str()
                    )));
                }
            }
            "size" => {
                if m.kind == MountType::Tmpfs {
                    m.size_limit =
                        goconv::ram_in_bytes(&value).map_err(|_| invalid(&key, &value))?;
                } else {
                    return Err(Error::new(format!(
                        "unexpected key '{key}' for mount type '{}'",
                        m.kind.as_str()
                    )));
                }
            }
            "id" => m.cache_id = value,
            "sharing" => {
                m.sharing = Some(match crate::parser::go_to_lower(&value).as_str() {
                    "shared" => ShareMode::Shared,
                    "private" => ShareMode::Private,
                    "locked" => ShareMode::Locked,
                    _ => {
                        let err = Error::new(format!(
                            "unsupported sharing value {}",
                            crate::parser::go_quote(&value)
                        ));
                        return Err(with_suggestion(
                            err,
                            &value,
                            &["shared", "private", "locked"],
                        ));
                    }
                });
            }
            "mode" => {
                let mode = goconv::parse_uint(&value, 8, 32)
                    .map_err(|_| Error::new(format!("invalid value {value} for mode")))?;
                m.mode = Some(mode as u32);
            }
            "uid" => {
                let uid = goconv::parse_uint(&value, 10, 32)
                    .map_err(|_| Error::new(format!("invalid value {value} for uid")))?;
                m.uid = Some(uid as u32);
            }
            "gid" => {
                let gid = goconv::parse_uint(&value, 10, 32)
                    .map_err(|_| Error::new(format!("invalid value {value} for gid")))?;
                m.gid = Some(gid as u32);
            }
            "env" => m.env = Some(value),
            _ => {
                let err = Error::new(format!("unexpected key '{key}' in '{field}'"));
                return Err(with_suggestion(err, &key, &MOUNT_KEYS));
            }
        }
    }

    let file_info_allowed = matches!(
        m.kind,
        MountType::Secret | MountType::Ssh | MountType::Cache
    );
    if !file_info_allowed {
        let kind = crate::parser::go_quote(m.kind.as_str());
        if m.mode.is_some() {
            return Err(Error::new(format!(
                "mode not allowed for {kind} type mounts"
            )));
        }
        if m.uid.is_some() {
            return Err(Error::new(format!(
                "uid not allowed for {kind} type mounts"
            )));
        }
        if m.gid.is_some() {
            return Err(Error::new(format!(
                "gid not allowed for {kind} type mounts"
            )));
        }
    }

    if ro_auto {
        m.read_only = !matches!(m.kind, MountType::Cache | MountType::Tmpfs);
    }

    if m.kind == MountType::Secret {
        if !m.from.is_empty() {
            return Err(Error::new("secret mount should not have a from"));
        }
        if m.sharing.is_some() {
            return Err(Error::new("secret mount should not define sharing"));
        }
        if m.source.is_empty() && m.target.is_empty() && m.cache_id.is_empty() {
            return Err(Error::new(
                "invalid secret mount. one of source, target required",
            ));
        }
        if !m.source.is_empty() && !m.cache_id.is_empty() {
            return Err(Error::new("both source and id can't be set"));
        }
    }

    if m.sharing.is_some() && m.kind != MountType::Cache {
        return Err(Error::new(format!(
            "invalid cache sharing set for {} mount",
            m.kind.as_str()
        )));
    }

    m.finish()
}

/// A parsed `--device` (BuildKit's `ParseDevice`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Device {
    pub name: String,
    pub required: bool,
}

/// Parse a `RUN --device=` value: `name[,required[=bool]]` or `name=...`.
pub fn parse_device(raw: &str) -> Result<Device> {
    let fields = csv_fields(raw)
        .map_err(|e| Error::new(format!("failed to parse csv devices: {}", e.message)))?;
    let mut d = Device {
        name: String::new(),
        required: false,
    };
    for field in &fields {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (crate::parser::go_to_lower(k), Some(v)),
            None => (crate::parser::go_to_lower(field), None),
        };
        let Some(value) = value else {
            if key == "required" {
                d.required = true;
            } else if d.name.is_empty() {
                d.name = field.clone();
            } else {
                return Err(Error::new(format!(
                    "invalid field '{field}' must be a key=value pair"
                )));
            }
            continue;
        };
        match key.as_str() {
            "name" => {
                if !d.name.is_empty() {
                    return Err(Error::new(format!("device name already set to {}", d.name)));
                }
                d.name = value.to_string();
            }
            "required" => {
                d.required = goconv::parse_bool(value)
                    .ok_or_else(|| Error::new(format!("invalid value for {key}: {value}")))?;
            }
            _ => {
                if d.name.is_empty() {
                    d.name = field.clone();
                    continue;
                }
                let err = Error::new(format!("unexpected key '{key}' in '{field}'"));
                return Err(with_suggestion(err, &key, &["name", "required"]));
            }
        }
    }
    Ok(d)
}
