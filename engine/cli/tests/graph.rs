//! `engine graph` and `engine debug parse` through the binary.

use std::path::Path;
use std::process::Command;

fn engine() -> Command {
    Command::new(env!("CARGO_BIN_EXE_engine"))
}

#[path = "../../../tests/src/conformance.rs"]
mod conformance_dir;

fn conformance() -> Option<std::path::PathBuf> {
    conformance_dir::path("buildkit-dockerfile/parser/testfiles")
}

#[test]
fn debug_parse_dumps_like_buildkit() {
    let Some(dir) = conformance() else { return };
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let case = e.unwrap().path();
        let out = engine()
            .args(["debug", "parse"])
            .arg(case.join("Dockerfile"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            case.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let expected = std::fs::read(case.join("result")).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&expected),
            "{}",
            case.display()
        );
        n += 1;
    }
    assert!(n >= 30);
}

#[test]
fn graph_formats() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../frontends/dockerfile/tests/lower");
    let file = dir.join("multistage.Dockerfile");
    for (fmt, needle) in [
        ("dot", "digraph build"),
        ("mermaid", "flowchart LR"),
        ("json", "\"targets\""),
    ] {
        let out = engine()
            .args(["graph", "--format", fmt, "-f"])
            .arg(&file)
            .arg(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{fmt}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(needle), "{fmt}: {text}");
        assert!(text.contains("RUN echo base"), "{fmt} shows steps");
    }
    let json = engine()
        .args(["graph", "--format", "json", "--target", "build", "-f"])
        .arg(&file)
        .arg(&dir)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let names: Vec<&str> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["name"].as_str())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.contains("USER") || n.contains("runtime")),
        "runtime pruned: {names:?}"
    );
}

#[test]
fn graph_is_the_same_from_another_directory() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../frontends/dockerfile/tests/lower");
    let t = tempfile::tempdir().unwrap();
    std::fs::copy(
        dir.join("multistage.Dockerfile"),
        t.path().join("Dockerfile"),
    )
    .unwrap();
    let a = engine()
        .args(["graph", "--format", "json", "-f"])
        .arg(dir.join("multistage.Dockerfile"))
        .arg(&dir)
        .output()
        .unwrap();
    let b = engine()
        .args(["graph", "--format", "json"])
        .arg(t.path())
        .output()
        .unwrap();
    let digests = |o: &[u8]| {
        let v: serde_json::Value = serde_json::from_slice(o).unwrap();
        v["targets"][0]["digest"].as_str().unwrap().to_string()
    };
    assert_eq!(digests(&a.stdout), digests(&b.stdout));
}
