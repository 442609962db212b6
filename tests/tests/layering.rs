//! The crate graph is part of the architecture: this test fails when a crate
//! depends on a workspace crate it must not (see ARCHITECTURE.md, "Layers").

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// For each workspace crate, the workspace crates it may depend on.
fn allowed() -> BTreeMap<&'static str, &'static [&'static str]> {
    BTreeMap::from([
        ("engine-ir", &[][..]),
        // The OCI vocabulary: digests, media types, documents, references,
        // platform matching. Platforms themselves are the IR's.
        ("engine-oci", &["engine-ir"][..]),
        ("engine-dockerfile", &["engine-ir", "engine-oci"][..]),
        ("engine-toml", &["engine-ir", "engine-dockerfile"][..]),
        ("engine-cache", &["engine-ir", "engine-oci"][..]),
        ("engine-layers", &["engine-ir", "engine-oci"][..]),
        ("engine-sandbox", &["engine-ir"][..]),
        (
            "engine-export",
            &["engine-ir", "engine-oci", "engine-cache", "engine-layers"][..],
        ),
        (
            "engine-registry",
            &["engine-ir", "engine-oci", "engine-cache"][..],
        ),
        (
            "engine-solver",
            &[
                "engine-ir",
                "engine-oci",
                "engine-cache",
                "engine-layers",
                "engine-sandbox",
                "engine-export",
                "engine-registry",
            ][..],
        ),
        // The binary, tests and benches sit on top and may use everything.
        ("engine-cli", &["*"][..]),
        ("engine-tests", &["*"][..]),
        ("engine-benches", &["*"][..]),
    ])
}

#[test]
fn workspace_crates_respect_the_layering() {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata is json");
    let packages = meta["packages"].as_array().expect("packages");
    let members: BTreeSet<String> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap_or_default().to_string())
        .collect();
    let rules = allowed();
    let mut violations = Vec::new();
    for p in packages {
        let name = p["name"].as_str().unwrap_or_default();
        let Some(allow) = rules.get(name) else {
            violations.push(format!(
                "{name}: new crate, add it to the layering rules and ARCHITECTURE.md"
            ));
            continue;
        };
        for dep in p["dependencies"].as_array().into_iter().flatten() {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            // Dev-dependencies may reach up (tests of a crate can use helpers),
            // but normal and build dependencies may not.
            if dep["kind"].as_str() == Some("dev") || !members.contains(dep_name) {
                continue;
            }
            if !allow.contains(&"*") && !allow.contains(&dep_name) {
                violations.push(format!("{name} must not depend on {dep_name}"));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layering violations:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_rules_reject_an_upward_edge() {
    // The check above is only worth something if the table forbids edges.
    let rules = allowed();
    assert!(!rules["engine-ir"].contains(&"engine-dockerfile"));
    assert!(!rules["engine-dockerfile"].contains(&"engine-cache"));
    assert!(!rules["engine-cache"].contains(&"engine-cli"));
    // The vocabulary sits below everything that speaks it.
    assert!(!rules["engine-ir"].contains(&"engine-oci"));
    for above in [
        "engine-cache",
        "engine-export",
        "engine-registry",
        "engine-dockerfile",
    ] {
        assert!(!rules["engine-oci"].contains(&above), "{above}");
    }
}
