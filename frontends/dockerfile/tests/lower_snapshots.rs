//! Data-driven IR snapshots: every `tests/lower/*.Dockerfile` is planned
//! (options from a sibling `.opts` file: `target=`, `build-arg=K=V`,
//! `platform=`) and its JSON graph compared with `snapshots/`.

use std::path::Path;

use engine_dockerfile::lower::{plan, PlanOptions, Planned};
use engine_ir::{render, NoResolver, Op, Platform};

fn plan_case(name: &str) -> Planned {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lower");
    let text = std::fs::read_to_string(dir.join(format!("{name}.Dockerfile"))).unwrap();
    let mut opts = PlanOptions::new(&NoResolver);
    if let Ok(o) = std::fs::read_to_string(dir.join(format!("{name}.opts"))) {
        for line in o.lines().filter(|l| !l.trim().is_empty()) {
            let (k, v) = line.split_once('=').unwrap();
            match k {
                "target" => opts.target = Some(v.to_string()),
                "build-arg" => {
                    let (a, b) = v.split_once('=').unwrap();
                    opts.build_args.insert(a.into(), b.into());
                }
                "platform" => opts.target_platform = Platform::parse(v).unwrap(),
                other => panic!("unknown option {other}"),
            }
        }
    }
    plan(&text, &opts).unwrap_or_else(|e| panic!("{name}: {e:?}"))
}

#[test]
fn snapshots() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lower");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".Dockerfile")
                .map(str::to_string)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 8, "the corpus lost cases");
    for name in names {
        let planned = plan_case(&name);
        let mut out = render::to_json(&planned.graph);
        for w in &planned.warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
        insta::assert_snapshot!(name.clone(), out);
    }
}

fn names(p: &Planned) -> Vec<String> {
    p.graph.nodes().map(|(_, n)| n.meta.name.clone()).collect()
}

#[test]
fn target_prunes_unneeded_stages() {
    let p = plan_case("target-pruning");
    let all = names(&p).join("\n");
    assert!(all.contains("RUN echo testing"), "{all}");
    assert!(!all.contains("docs"), "docs stage should be pruned:\n{all}");
    assert!(
        !all.contains("release"),
        "release stage should be pruned:\n{all}"
    );
    assert_eq!(p.graph.targets()[0].name, "test");
}

#[test]
fn identical_stage_prefixes_are_one_node() {
    let p = plan_case("dedupe");
    let apk: Vec<_> = p
        .graph
        .nodes()
        .filter(
            |(_, n)| matches!(&n.op, Op::Exec(e) if e.args.iter().any(|a| a.contains("apk add"))),
        )
        .collect();
    assert_eq!(apk.len(), 1, "the shared RUN must be one node");
    assert_eq!(p.graph.users(apk[0].0).len(), 2, "both stages build on it");
}

#[test]
fn digests_do_not_depend_on_the_directory_or_file_name() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lower/multistage.Dockerfile"),
    )
    .unwrap();
    let a = plan(&text, &PlanOptions::new(&NoResolver)).unwrap();
    let mut opts = PlanOptions::new(&NoResolver);
    opts.filename = "other/place/Dockerfile.prod".into();
    let b = plan(&text, &opts).unwrap();
    let da: Vec<_> = a.graph.nodes().map(|(_, n)| n.digest).collect();
    let db: Vec<_> = b.graph.nodes().map(|(_, n)| n.digest).collect();
    assert_eq!(da, db);
}

#[test]
fn build_args_and_platform_change_digests() {
    let text = "ARG V=1\nFROM busybox\nARG V\nRUN echo $V\n";
    let base = plan(text, &PlanOptions::new(&NoResolver)).unwrap();
    let mut opts = PlanOptions::new(&NoResolver);
    opts.build_args.insert("V".into(), "2".into());
    let other = plan(text, &opts).unwrap();
    let t = |p: &Planned| p.graph.node(p.graph.targets()[0].node).digest;
    assert_ne!(t(&base), t(&other));
    let mut opts = PlanOptions::new(&NoResolver);
    opts.target_platform = Platform::parse("linux/arm64").unwrap();
    assert_ne!(t(&base), t(&plan(text, &opts).unwrap()));
}

/// FROM references are normalised by Docker's rules (engine-oci), so every
/// spelling of one image is one source node with one digest; before, the
/// frontend kept `docker.io/x` and `index.docker.io/x` as written.
#[test]
fn from_references_normalise_once() {
    let source = |from: &str| {
        let p = plan(
            &format!("FROM {from}\nRUN true\n"),
            &PlanOptions::new(&NoResolver),
        )
        .unwrap_or_else(|e| panic!("{from}: {e:?}"));
        let (_, n) = p
            .graph
            .nodes()
            .find(|(_, n)| matches!(n.op, Op::Source(_)))
            .expect("a source node");
        (serde_json::to_value(&n.op).unwrap(), n.digest)
    };
    let (op, digest) = source("alpine");
    assert!(
        op.to_string().contains("docker.io/library/alpine:latest"),
        "{op}"
    );
    for same in [
        "docker.io/library/alpine",
        "docker.io/alpine",
        "index.docker.io/alpine",
        "index.docker.io/library/alpine:latest",
        "library/alpine:latest",
    ] {
        assert_eq!(source(same).1, digest, "{same}");
    }
    assert_ne!(source("alpine:3").1, digest);
    // A first component with an upper-case letter is a registry host.
    let (op, _) = source("Registry/app");
    assert!(op.to_string().contains("Registry/app:latest"), "{op}");
    for bad in [
        "alpine@sha256:ab",
        "alpine:bad!tag",
        "ghcr.io/o/App",
        "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
    ] {
        let e = plan(&format!("FROM {bad}\n"), &PlanOptions::new(&NoResolver)).unwrap_err();
        let text = format!("{e:?}");
        assert!(text.contains("invalid image reference"), "{bad}: {text}");
        assert!(text.contains("line: 1"), "{bad}: not located: {text}");
    }
}
