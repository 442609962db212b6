//! Between the IR's image config and the OCI/Docker config JSON. Docker's
//! extra fields (Healthcheck, Shell, OnBuild, StopSignal) are kept, as
//! BuildKit writes them even with OCI media types.

use std::collections::BTreeMap;

use engine_ir::config::{Healthcheck, HistoryEntry, ImageConfig};
use engine_ir::Platform;
use serde_json::{json, Map, Value};

fn strings(v: &Value) -> Option<Vec<String>> {
    v.as_array().map(|a| {
        a.iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    })
}

fn keys(v: &Value) -> BTreeMap<String, ()> {
    v.as_object()
        .map(|o| o.keys().map(|k| (k.clone(), ())).collect())
        .unwrap_or_default()
}

/// Parse an image config blob (OCI or Docker) into the IR model.
pub fn from_json(raw: &[u8]) -> Result<ImageConfig, String> {
    let v: Value = serde_json::from_slice(raw).map_err(|e| format!("invalid image config: {e}"))?;
    let c = &v["config"];
    let mut out = ImageConfig {
        user: c["User"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        exposed_ports: keys(&c["ExposedPorts"]),
        env: strings(&c["Env"]).unwrap_or_default(),
        entrypoint: strings(&c["Entrypoint"]),
        cmd: strings(&c["Cmd"]),
        volumes: keys(&c["Volumes"]),
        working_dir: c["WorkingDir"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        labels: c["Labels"]
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default(),
        stop_signal: c["StopSignal"].as_str().map(str::to_string),
        healthcheck: None,
        shell: strings(&c["Shell"]),
        on_build: strings(&c["OnBuild"]).unwrap_or_default(),
        author: v["author"].as_str().map(str::to_string),
        history: Vec::new(),
    };
    if let Some(h) = c["Healthcheck"].as_object() {
        let n = |k: &str| h.get(k).and_then(Value::as_u64).unwrap_or(0);
        out.healthcheck = Some(Healthcheck {
            test: h.get("Test").and_then(strings).unwrap_or_default(),
            interval: n("Interval"),
            timeout: n("Timeout"),
            start_period: n("StartPeriod"),
            start_interval: n("StartInterval"),
            retries: n("Retries"),
        });
    }
    if let Some(hist) = v["history"].as_array() {
        for h in hist {
            out.history.push(HistoryEntry {
                created: h["created"].as_str().map(str::to_string),
                created_by: h["created_by"].as_str().unwrap_or_default().to_string(),
                comment: h["comment"].as_str().map(str::to_string),
                empty_layer: h["empty_layer"].as_bool().unwrap_or(false),
            });
        }
    }
    Ok(out)
}

/// The config blob for an image: runtime config, rootfs diff ids, history
/// (each entry with its own `created`, when it has one), platform and
/// creation time (see `crate::image::creation_times`).
pub fn to_json(
    c: &ImageConfig,
    platform: &Platform,
    diff_ids: &[String],
    created: Option<&str>,
) -> Value {
    let mut cfg = Map::new();
    if let Some(u) = &c.user {
        cfg.insert("User".into(), json!(u));
    }
    if !c.exposed_ports.is_empty() {
        cfg.insert(
            "ExposedPorts".into(),
            Value::Object(
                c.exposed_ports
                    .keys()
                    .map(|k| (k.clone(), json!({})))
                    .collect(),
            ),
        );
    }
    if !c.env.is_empty() {
        cfg.insert("Env".into(), json!(c.env));
    }
    if let Some(e) = &c.entrypoint {
        cfg.insert("Entrypoint".into(), json!(e));
    }
    if let Some(e) = &c.cmd {
        cfg.insert("Cmd".into(), json!(e));
    }
    if !c.volumes.is_empty() {
        cfg.insert(
            "Volumes".into(),
            Value::Object(c.volumes.keys().map(|k| (k.clone(), json!({}))).collect()),
        );
    }
    if let Some(w) = &c.working_dir {
        cfg.insert("WorkingDir".into(), json!(w));
    }
    if !c.labels.is_empty() {
        cfg.insert("Labels".into(), json!(c.labels));
    }
    if let Some(s) = &c.stop_signal {
        cfg.insert("StopSignal".into(), json!(s));
    }
    if let Some(h) = &c.healthcheck {
        let mut o = Map::new();
        o.insert("Test".into(), json!(h.test));
        for (k, v) in [
            ("Interval", h.interval),
            ("Timeout", h.timeout),
            ("StartPeriod", h.start_period),
            ("StartInterval", h.start_interval),
            ("Retries", h.retries),
        ] {
            if v != 0 {
                o.insert(k.into(), json!(v));
            }
        }
        cfg.insert("Healthcheck".into(), Value::Object(o));
    }
    if let Some(s) = &c.shell {
        cfg.insert("Shell".into(), json!(s));
    }
    if !c.on_build.is_empty() {
        cfg.insert("OnBuild".into(), json!(c.on_build));
    }
    let history: Vec<Value> = c
        .history
        .iter()
        .map(|h| {
            let mut o = Map::new();
            if let Some(t) = &h.created {
                o.insert("created".into(), json!(t));
            }
            o.insert("created_by".into(), json!(h.created_by));
            if let Some(cm) = &h.comment {
                o.insert("comment".into(), json!(cm));
            }
            if h.empty_layer {
                o.insert("empty_layer".into(), json!(true));
            }
            Value::Object(o)
        })
        .collect();
    let mut root = Map::new();
    root.insert("architecture".into(), json!(platform.architecture));
    root.insert("os".into(), json!(platform.os));
    if let Some(v) = &platform.variant {
        root.insert("variant".into(), json!(v));
    }
    if let Some(a) = &c.author {
        root.insert("author".into(), json!(a));
    }
    if let Some(t) = created {
        root.insert("created".into(), json!(t));
    }
    root.insert("config".into(), Value::Object(cfg));
    root.insert(
        "rootfs".into(),
        json!({"type": "layers", "diff_ids": diff_ids}),
    );
    root.insert("history".into(), Value::Array(history));
    Value::Object(root)
}

/// RFC 3339 in UTC for a unix time, without pulling in a date crate.
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn round_trip() {
        let mut c = ImageConfig::scratch();
        c.user = Some("1000".into());
        c.cmd = Some(vec!["sh".into()]);
        c.labels.insert("a".into(), "b".into());
        c.healthcheck = Some(Healthcheck {
            test: vec!["NONE".into()],
            ..Default::default()
        });
        let v = to_json(&c, &Platform::linux_amd64(), &[], None);
        let back = from_json(&serde_json::to_vec(&v).unwrap()).unwrap();
        assert_eq!(back, c);
    }
}
