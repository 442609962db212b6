//! Spec variables: `[vars]` defaults, command-line overrides, and `${NAME}`
//! interpolation in strings.
//!
//! Only `${NAME}` with NAME declared in `[vars]` (or the built-in `target`)
//! is replaced. Anything else (`$HOME`, `${TARGETARCH}`, `${X:-y}`) is left
//! as written for the Dockerfile's own expansion or the shell, and `$${`
//! writes a literal `${`.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{did_you_mean, SourceMap, TomlError};
use crate::tree::{Span, Table, Tree, Val};

/// The built-in variable holding the name of the stage or image a string
/// belongs to.
pub const TARGET_VAR: &str = "target";

#[derive(Debug, Clone, Default)]
pub struct Vars {
    /// Resolved values of the declared variables.
    pub values: BTreeMap<String, String>,
    /// Command-line values for names `[vars]` does not declare: they are
    /// build arguments for ARG instructions.
    pub extra: BTreeMap<String, String>,
}

/// A piece of an interpolated string.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    Text(&'a str),
    /// `${NAME}` with a valid NAME (declared or not).
    Var(&'a str),
    /// `$${`: a literal `${`.
    Escaped,
}

/// Split a string into literal text, `${NAME}` references and `$${` escapes.
pub fn pieces(s: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut text_start = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && s[i..].starts_with("$${") {
            if text_start < i {
                out.push(Piece::Text(&s[text_start..i]));
            }
            out.push(Piece::Escaped);
            i += 3;
            text_start = i;
            continue;
        }
        if bytes[i] == b'$' && s[i..].starts_with("${") {
            let rest = &s[i + 2..];
            let len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let name = &rest[..len];
            if !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && rest[len..].starts_with('}')
            {
                if text_start < i {
                    out.push(Piece::Text(&s[text_start..i]));
                }
                out.push(Piece::Var(name));
                i += 2 + len + 1;
                text_start = i;
                continue;
            }
        }
        i += 1;
    }
    if text_start < s.len() {
        out.push(Piece::Text(&s[text_start..]));
    }
    out
}

/// How unknown `${NAME}` references are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The value is expanded again by the Dockerfile rules or the shell:
    /// unknown references stay as written.
    PassThrough,
    /// The value is used as is (tags, paths, platforms): an unknown
    /// reference is an error.
    Strict,
}

impl Vars {
    /// Interpolate `s`; `target` is the value of `${target}` if any.
    /// `Err(name)` names an unknown variable in strict mode.
    pub fn interpolate(&self, s: &str, target: Option<&str>, mode: Mode) -> Result<String, String> {
        let mut out = String::with_capacity(s.len());
        for p in pieces(s) {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Escaped => out.push_str("${"),
                Piece::Var(name) => {
                    if let Some(v) = self.values.get(name) {
                        out.push_str(v);
                    } else if name == TARGET_VAR && target.is_some() {
                        out.push_str(target.unwrap_or_default());
                    } else if mode == Mode::Strict {
                        return Err(name.to_string());
                    } else {
                        out.push_str("${");
                        out.push_str(name);
                        out.push('}');
                    }
                }
            }
        }
        Ok(out)
    }

    pub fn unknown_var_error(
        &self,
        map: &SourceMap,
        span: &Span,
        name: &str,
        target: Option<&str>,
    ) -> TomlError {
        let mut names: Vec<&str> = self.values.keys().map(String::as_str).collect();
        if target.is_some() {
            names.push(TARGET_VAR);
        }
        let hint = match did_you_mean(name, names.iter().copied()) {
            Some(s) => format!("did you mean `${{{s}}}`? (write `$${{{name}}}` for a literal `${{{name}}}`)"),
            None => format!(
                "declare it in [vars] (`{name} = \"…\"`) or write `$${{{name}}}` for a literal `${{{name}}}`"
            ),
        };
        map.error(span, format!("unknown variable `{name}`"))
            .with_hint(hint)
    }
}

pub fn valid_var_name(n: &str) -> bool {
    !n.is_empty()
        && !n.starts_with(|c: char| c.is_ascii_digit())
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Resolve the `[vars]` table with the command-line overrides.
pub fn resolve(
    table: Option<(&Table, &Span)>,
    overrides: &BTreeMap<String, String>,
    map: &SourceMap,
) -> Result<Vars, TomlError> {
    // name -> (raw value, span of the value, from the command line)
    let mut raw: BTreeMap<String, (String, Span, bool)> = BTreeMap::new();
    if let Some((t, _)) = table {
        for e in &t.entries {
            if !valid_var_name(&e.key) {
                return Err(map
                    .error(&e.key_span, format!("invalid variable name `{}`", e.key))
                    .with_hint(
                        "variable names are letters, digits and `_`, not starting with a digit",
                    ));
            }
            if e.key == TARGET_VAR {
                return Err(map
                    .error(&e.key_span, "`target` is a built-in variable")
                    .with_hint("`${target}` is the name of the stage or image a string belongs to; pick another name"));
            }
            let (value, span) = var_default(&e.value, map)?;
            raw.insert(e.key.clone(), (value, span, false));
        }
    }
    let mut vars = Vars::default();
    for (k, v) in overrides {
        match raw.get_mut(k) {
            Some(slot) => *slot = (v.clone(), slot.1.clone(), true),
            None => {
                vars.extra.insert(k.clone(), v.clone());
            }
        }
    }
    let mut state: BTreeMap<String, bool> = BTreeMap::new(); // false: in progress
    let names: Vec<String> = raw.keys().cloned().collect();
    for n in names {
        resolve_one(&n, &raw, &mut vars, &mut state, &mut Vec::new(), map)?;
    }
    Ok(vars)
}

fn resolve_one(
    name: &str,
    raw: &BTreeMap<String, (String, Span, bool)>,
    vars: &mut Vars,
    state: &mut BTreeMap<String, bool>,
    path: &mut Vec<String>,
    map: &SourceMap,
) -> Result<(), TomlError> {
    match state.get(name) {
        Some(true) => return Ok(()),
        Some(false) => {
            path.push(name.to_string());
            let start = path.iter().position(|p| p == name).unwrap_or(0);
            let cycle = path[start..].join(" → ");
            let span = &raw[name].1;
            return Err(map
                .error(span, format!("cycle between variables: {cycle}"))
                .with_hint("a variable cannot depend on itself, directly or through others"));
        }
        None => {}
    }
    let (value, span, from_cli) = &raw[name];
    if *from_cli {
        vars.values.insert(name.to_string(), value.clone());
        state.insert(name.to_string(), true);
        return Ok(());
    }
    state.insert(name.to_string(), false);
    path.push(name.to_string());
    let mut deps = BTreeSet::new();
    for p in pieces(value) {
        if let Piece::Var(v) = p {
            if raw.contains_key(v) {
                deps.insert(v.to_string());
            }
        }
    }
    for d in &deps {
        resolve_one(d, raw, vars, state, path, map)?;
    }
    path.pop();
    let resolved = vars
        .interpolate(value, None, Mode::PassThrough)
        .map_err(|n| map.error(span, format!("unknown variable `{n}`")))?;
    vars.values.insert(name.to_string(), resolved);
    state.insert(name.to_string(), true);
    Ok(())
}

fn var_default(t: &Tree, map: &SourceMap) -> Result<(String, Span), TomlError> {
    match &t.value {
        Val::Str(s) => Ok((s.clone(), t.span.clone())),
        Val::Int(i) => Ok((map.number_text(&t.span, i.to_string()), t.span.clone())),
        Val::Bool(b) => Ok((b.to_string(), t.span.clone())),
        Val::Float(f) => Ok((map.number_text(&t.span, f.to_string()), t.span.clone())),
        Val::Table(tab) => {
            for e in &tab.entries {
                if e.key != "default" && e.key != "description" {
                    let hint = match did_you_mean(&e.key, ["default", "description"]) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => "a variable table has `default` and `description`".to_string(),
                    };
                    return Err(map
                        .error(&e.key_span, format!("unknown key `{}` in variable", e.key))
                        .with_hint(hint));
                }
            }
            match tab.get("default") {
                Some(d) => var_default(&d.value, map),
                None => Ok((String::new(), t.span.clone())),
            }
        }
        other => Err(map
            .error(
                &t.span,
                format!(
                    "a variable's value must be a string, number or boolean, found {}",
                    other.type_name()
                ),
            )
            .with_hint(
                "write `NAME = \"value\"` or `NAME = { default = \"value\", description = \"…\" }`",
            )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(text: &str, over: &[(&str, &str)]) -> Result<Vars, TomlError> {
        let map = SourceMap::new("t.toml", text);
        let root = crate::tree::parse(text, &map).unwrap();
        let e = root.get("vars").unwrap();
        let Val::Table(t) = &e.value.value else {
            panic!()
        };
        let over = over
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        resolve(Some((t, &e.value.span)), &over, &map)
    }

    #[test]
    fn pieces_split() {
        assert_eq!(
            pieces("a${B}c$${D}${1x}$E"),
            vec![
                Piece::Text("a"),
                Piece::Var("B"),
                Piece::Text("c"),
                Piece::Escaped,
                Piece::Text("D}${1x}$E")
            ]
        );
    }

    #[test]
    fn vars_resolve_with_overrides_and_references() {
        let v = vars(
            "[vars]\nA = \"1\"\nB = \"${A}-x\"\nC = { default = 3 }\n",
            &[("A", "9"), ("Z", "z")],
        )
        .unwrap();
        assert_eq!(v.values["B"], "9-x");
        assert_eq!(v.values["C"], "3");
        assert_eq!(v.extra["Z"], "z");
        assert_eq!(
            v.interpolate("${A}${HOME}$${A}", None, Mode::PassThrough)
                .unwrap(),
            "9${HOME}${A}"
        );
        assert_eq!(
            v.interpolate("${HOME}", None, Mode::Strict),
            Err("HOME".to_string())
        );
        assert_eq!(
            v.interpolate("${target}", Some("api"), Mode::Strict)
                .unwrap(),
            "api"
        );
    }

    #[test]
    fn var_cycles_are_located() {
        let e = vars("[vars]\nA = \"${B}\"\nB = \"${A}\"\n", &[]).unwrap_err();
        assert!(
            e.message.contains("cycle between variables: A → B → A"),
            "{}",
            e.message
        );
        assert_eq!(e.location.unwrap().line, 2);
    }
}
