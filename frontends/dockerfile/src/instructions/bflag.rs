//! Instruction flags with BuildKit's `BFlags` semantics: `--name=value`
//! string flags, boolean flags (`--link`, `--link=true|false`), repeatable
//! string flags (`--mount`, `--exclude`), unknown or duplicated flags as
//! errors.

use super::suggest;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlagKind {
    Bool,
    String,
    Strings,
}

#[derive(Debug, Clone)]
struct Flag {
    name: &'static str,
    kind: FlagKind,
    value: String,
    values: Vec<String>,
    used: bool,
}

/// The flags one instruction accepts, and their values after [`BFlags::parse`].
#[derive(Debug, Clone)]
pub(crate) struct BFlags {
    instruction: &'static str,
    flags: Vec<Flag>,
}

impl BFlags {
    pub(crate) fn new(instruction: &'static str) -> Self {
        BFlags {
            instruction,
            flags: Vec::new(),
        }
    }

    pub(crate) fn add(mut self, name: &'static str, kind: FlagKind, default: &str) -> Self {
        self.flags.push(Flag {
            name,
            kind,
            value: default.to_string(),
            values: Vec::new(),
            used: false,
        });
        self
    }

    pub(crate) fn add_bool(self, name: &'static str) -> Self {
        self.add(name, FlagKind::Bool, "false")
    }

    pub(crate) fn add_string(self, name: &'static str, default: &str) -> Self {
        self.add(name, FlagKind::String, default)
    }

    pub(crate) fn add_strings(self, name: &'static str) -> Self {
        self.add(name, FlagKind::Strings, "")
    }

    fn names(&self) -> Vec<&'static str> {
        self.flags.iter().map(|f| f.name).collect()
    }

    fn unknown_flag_hint(&self, name: &str) -> String {
        let mut names = self.names();
        names.sort_unstable();
        let accepted = if names.is_empty() {
            format!("{} accepts no flags", self.instruction)
        } else {
            let list: Vec<String> = names.iter().map(|n| format!("--{n}")).collect();
            format!("{} accepts {}", self.instruction, list.join(", "))
        };
        match suggest::search(name, &names, true) {
            Some(m) => format!("did you mean --{m}? {accepted}"),
            None => accepted,
        }
    }

    /// Apply the flags written on the instruction, in order.
    pub(crate) fn parse(&mut self, args: &[String]) -> Result<()> {
        for arg in args {
            if arg == "--" {
                return Ok(());
            }
            let Some(body) = arg.strip_prefix("--") else {
                return Err(Error::new(format!("arg should start with -- : {arg}")));
            };
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let flag_name = format!("--{name}");
            let Some(idx) = self.flags.iter().position(|f| f.name == name) else {
                return Err(Error::new(format!("unknown flag: {flag_name}"))
                    .with_hint(self.unknown_flag_hint(name)));
            };
            let flag = &mut self.flags[idx];
            if flag.used && flag.kind != FlagKind::Strings {
                return Err(Error::new(format!("duplicate flag specified: {flag_name}")));
            }
            flag.used = true;
            match flag.kind {
                FlagKind::Bool => {
                    if value == Some("") {
                        return Err(Error::new(format!("missing a value on flag: {flag_name}")));
                    }
                    let v = value.unwrap_or("");
                    match crate::parser::go_to_lower(v).as_str() {
                        "true" | "" => flag.value = "true".to_string(),
                        "false" => flag.value = "false".to_string(),
                        _ => {
                            return Err(Error::new(format!(
                                "expecting boolean value for flag {flag_name}, not: {v}"
                            )))
                        }
                    }
                }
                FlagKind::String => {
                    let Some(v) = value else {
                        return Err(Error::new(format!("missing a value on flag: {flag_name}")));
                    };
                    flag.value = v.to_string();
                }
                FlagKind::Strings => {
                    let Some(v) = value else {
                        return Err(Error::new(format!("missing a value on flag: {flag_name}")));
                    };
                    flag.values.push(v.to_string());
                }
            }
        }
        Ok(())
    }

    fn get(&self, name: &str) -> Option<&Flag> {
        self.flags.iter().find(|f| f.name == name)
    }

    /// Whether the flag was written on the instruction.
    pub(crate) fn used(&self, name: &str) -> bool {
        self.get(name).is_some_and(|f| f.used)
    }

    /// The value of a string flag (its default if not written).
    pub(crate) fn string(&self, name: &str) -> String {
        self.get(name).map(|f| f.value.clone()).unwrap_or_default()
    }

    /// The value of a string flag, `None` when empty (BuildKit treats an
    /// empty value like an absent flag).
    pub(crate) fn opt_string(&self, name: &str) -> Option<String> {
        Some(self.string(name)).filter(|s| !s.is_empty())
    }

    /// A boolean flag's value.
    pub(crate) fn bool(&self, name: &str) -> bool {
        self.get(name).is_some_and(|f| f.value == "true")
    }

    /// A boolean flag's value, `None` if not written.
    pub(crate) fn opt_bool(&self, name: &str) -> Option<bool> {
        self.used(name).then(|| self.bool(name))
    }

    /// All values of a repeatable flag.
    pub(crate) fn strings(&self, name: &str) -> Vec<String> {
        self.get(name).map(|f| f.values.clone()).unwrap_or_default()
    }
}
