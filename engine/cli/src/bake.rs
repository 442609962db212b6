//! What `docker buildx bake` users script against, for TOML builds:
//! `--print` (the resolved targets as JSON, nothing built), `-o` given for
//! several targets (each target gets it, `${target}` in its destination
//! naming the target, as `--set '*.output=…'`), and the per-target summary
//! at the end of a build (built, cached, failed, not started).

use std::collections::BTreeMap;

use engine_solver::build::{BuildError, TargetState};

use crate::outputs::{Kind, Output};
use crate::plan::Planned;
use crate::Failure;

/// `--print`: every selected target after templates and `[vars]`, keyed by
/// name, in bake's vocabulary (`tags`, `platforms`, `output`, `cache-to`,
/// `cache-from`, `contexts`, `args`, `dockerfile`).
pub fn print(planned: &Planned) -> Result<(), Failure> {
    let Some(targets) = &planned.toml_targets else {
        return Err(print_needs_toml());
    };
    let exporter = |e: &engine_toml::Exporter| {
        let mut s = format!("type={}", e.kind);
        for (k, v) in &e.attrs {
            s.push_str(&format!(",{k}={v}"));
        }
        s
    };
    let mut out = serde_json::Map::new();
    for t in targets {
        let mut o = serde_json::Map::new();
        o.insert("kind".into(), t.kind.clone().into());
        if let Some(d) = &t.description {
            o.insert("description".into(), d.clone().into());
        }
        if let Some(d) = &t.dockerfile {
            o.insert("dockerfile".into(), d.clone().into());
        }
        o.insert("tags".into(), t.tags.clone().into());
        o.insert(
            "platforms".into(),
            t.platforms
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .into(),
        );
        o.insert(
            "output".into(),
            t.outputs.iter().map(exporter).collect::<Vec<_>>().into(),
        );
        o.insert(
            "cache-to".into(),
            t.cache_to.iter().map(exporter).collect::<Vec<_>>().into(),
        );
        o.insert(
            "cache-from".into(),
            t.cache_from.iter().map(exporter).collect::<Vec<_>>().into(),
        );
        o.insert(
            "contexts".into(),
            serde_json::to_value(&t.context_dirs).unwrap_or_default(),
        );
        o.insert(
            "args".into(),
            serde_json::to_value(&t.args).unwrap_or_default(),
        );
        out.insert(t.name.clone(), o.into());
    }
    let doc = serde_json::json!({ "target": out });
    println!(
        "{}",
        serde_json::to_string_pretty(&doc).expect("JSON values serialize")
    );
    Ok(())
}

pub fn print_needs_toml() -> Failure {
    Failure::hint(
        "--print shows a TOML spec's resolved targets",
        "use it with --frontend toml (or an engine.toml in the context)",
    )
}

/// `-o` for one of several targets: `${target}` in the destination and in
/// image names becomes the target's name. An output that would write the
/// same file or directory for every target is refused.
pub fn output_for(target: &str, o: &Output, several: bool) -> Result<Output, Failure> {
    let mut o = o.clone();
    let dest = o.dest.to_string_lossy().into_owned();
    if dest.contains("${target}") {
        o.dest = dest.replace("${target}", target).into();
    } else if several && !dest.is_empty() && !matches!(o.kind, Kind::Registry | Kind::Load) {
        return Err(Failure::hint(
            format!("-o `dest={dest}` would be written by every target of this build"),
            "put ${target} in the destination (-o 'type=docker,dest=out/${target}.tar'), or build one target",
        ));
    }
    for n in &mut o.names {
        *n = n.replace("${target}", target);
    }
    Ok(o)
}

/// The end-of-build line per target, when the build had several.
pub fn summary(planned: &Planned, states: &[(String, TargetState)], failures: &[BuildError]) {
    if planned.units.len() < 2 {
        return;
    }
    let by_image: BTreeMap<&str, TargetState> =
        states.iter().map(|(n, s)| (n.as_str(), *s)).collect();
    let width = planned
        .units
        .iter()
        .map(|u| u.name.len())
        .max()
        .unwrap_or(0);
    eprintln!("targets:");
    for u in &planned.units {
        let states: Vec<TargetState> = u
            .images
            .iter()
            .filter_map(|(t, _)| by_image.get(t.as_str()).copied())
            .collect();
        let word = if states.contains(&TargetState::Failed) {
            "failed"
        } else if states.contains(&TargetState::NotStarted) || states.is_empty() {
            "not started"
        } else if states.contains(&TargetState::Built) {
            "built"
        } else {
            "cached"
        };
        eprintln!("  {:width$}  {word}", u.name);
    }
    if failures.len() > 1 {
        eprintln!("{} steps failed", failures.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_name_their_target() {
        let o = crate::outputs::parse("type=docker,dest=out/${target}.tar").unwrap();
        let api = output_for("api", &o, true).unwrap();
        assert_eq!(api.dest, std::path::PathBuf::from("out/api.tar"));
        let same = crate::outputs::parse("type=oci,dest=out/img.tar").unwrap();
        let e = output_for("api", &same, true).unwrap_err();
        let message = e.message().unwrap();
        assert!(message.contains("every target"), "{message}");
        assert!(e.help().unwrap().contains("${target}"));
        assert!(output_for("api", &same, false).is_ok());
        let push = crate::outputs::parse("type=registry,name=localhost:5000/${target}:1").unwrap();
        assert_eq!(
            output_for("web", &push, true).unwrap().names,
            ["localhost:5000/web:1"]
        );
    }
}
