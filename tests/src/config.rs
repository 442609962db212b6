//! Image config comparison: the runtime fields a Dockerfile controls, plus
//! `os` and `architecture`. History, timestamps, rootfs diff ids and
//! builder-specific fields are not compared.
//!
//! Normalisation: a missing field, `null`, `""`, `[]` and `{}` all mean
//! "unset" (Docker treats them alike); zero durations/retries inside
//! `Healthcheck` are dropped (both spellings are written in the wild).

use serde_json::{Map, Value};

/// Fields of `config` that are compared.
pub const CONFIG_FIELDS: &[&str] = &[
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Volumes",
    "Labels",
    "StopSignal",
    "Healthcheck",
    "Shell",
    "OnBuild",
];

/// Top-level fields that are compared.
pub const TOP_FIELDS: &[&str] = &["os", "architecture"];

fn is_unset(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn normalise(field: &str, v: Option<&Value>) -> Value {
    let Some(v) = v.filter(|v| !is_unset(v)) else {
        return Value::Null;
    };
    if field == "Healthcheck" {
        if let Value::Object(o) = v {
            let kept: Map<String, Value> = o
                .iter()
                .filter(|(_, x)| !is_unset(x) && x.as_u64() != Some(0))
                .map(|(k, x)| (k.clone(), x.clone()))
                .collect();
            return Value::Object(kept);
        }
    }
    v.clone()
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "<unset>".to_string(),
        other => other.to_string(),
    }
}

/// Differences between the engine's and BuildKit's config JSON, one line
/// per differing field: `config.FIELD: engine=… buildkit=…`.
pub fn diff(engine: &Value, buildkit: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for f in TOP_FIELDS {
        let (a, b) = (normalise(f, engine.get(*f)), normalise(f, buildkit.get(*f)));
        if a != b {
            out.push(format!(
                "config.{f}: engine={} buildkit={}",
                show(&a),
                show(&b)
            ));
        }
    }
    for f in CONFIG_FIELDS {
        let a = normalise(f, engine["config"].get(*f));
        let b = normalise(f, buildkit["config"].get(*f));
        if a != b {
            out.push(format!(
                "config.{f}: engine={} buildkit={}",
                show(&a),
                show(&b)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unset_spellings_are_equal() {
        let a =
            json!({"os": "linux", "architecture": "amd64", "config": {"Cmd": null, "Labels": {}}});
        let b = json!({"os": "linux", "architecture": "amd64", "config": {"WorkingDir": ""}});
        assert!(diff(&a, &b).is_empty());
    }

    #[test]
    fn differences_name_the_field() {
        let a = json!({"config": {"Cmd": ["sh"], "Healthcheck": {"Test": ["NONE"], "Retries": 0}}});
        let b = json!({"config": {"Cmd": ["/bin/sh"], "Healthcheck": {"Test": ["NONE"]}}});
        assert_eq!(
            diff(&a, &b),
            vec![r#"config.Cmd: engine=["sh"] buildkit=["/bin/sh"]"#.to_string()]
        );
    }
}
