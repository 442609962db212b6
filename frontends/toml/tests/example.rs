//! The example monorepo (specs/examples/monorepo): its graph, shared
//! stages, and the equivalence of each TOML image with its standalone
//! Dockerfile under equivalents/.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use engine_dockerfile::lower::{NamedContext, PlanOptions};
use engine_ir::{Graph, NoResolver, NodeId, Op, Platform, Source};
use engine_toml::{TomlPlan, TomlPlanOptions};

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../specs/examples/monorepo")
}

fn read_example(path: &str) -> std::io::Result<String> {
    std::fs::read_to_string(example_dir().join(path))
}

fn spec_text() -> String {
    read_example("engine.toml").unwrap()
}

fn plan_example(targets: &[&str], vars: &[(&str, &str)]) -> TomlPlan {
    let read: &dyn Fn(&str) -> std::io::Result<String> = &read_example;
    let mut opts = TomlPlanOptions::new(&NoResolver, read);
    opts.targets = targets.iter().map(|s| s.to_string()).collect();
    opts.vars = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    match engine_toml::plan(&spec_text(), &opts) {
        Ok(p) => p,
        Err(e) => panic!("{e} (hint: {:?})", e.hint),
    }
}

/// Every node `from` reaches, itself included.
fn reach(g: &Graph, from: NodeId) -> Vec<NodeId> {
    let mut seen = vec![false; g.len()];
    let mut stack = vec![from];
    let mut out = Vec::new();
    while let Some(id) = stack.pop() {
        if std::mem::replace(&mut seen[id.0 as usize], true) {
            continue;
        }
        out.push(id);
        stack.extend(g.node(id).inputs.iter().copied());
    }
    out.sort();
    out
}

#[test]
fn graph_snapshot() {
    let plan = plan_example(&[], &[]);
    insta::assert_snapshot!("monorepo_graph", engine_ir::render::to_json(&plan.graph));
    let targets = serde_json::to_string_pretty(&plan.targets).unwrap();
    insta::assert_snapshot!("monorepo_targets", targets);
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
}

#[test]
fn default_group_builds_every_service_in_one_graph() {
    let plan = plan_example(&[], &[]);
    let names: Vec<&str> = plan
        .graph
        .targets()
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(names, ["api", "worker", "web", "reports"]);
    let infos: Vec<&str> = plan.targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(infos, names);
    let api = &plan.targets[0];
    assert_eq!(api.tags, ["localhost:5000/monorepo/api:0.3.0"]);
    assert_eq!(api.outputs[0].kind, "docker");
    assert_eq!(api.outputs[0].attrs["dest"], "out/api.tar");
    assert_eq!(api.platforms, [Platform::linux_amd64()]);
    assert_eq!(
        api.context_dirs,
        BTreeMap::from([
            ("base".to_string(), "base".to_string()),
            ("services/api".to_string(), "services/api".to_string()),
        ])
    );
    let reports = &plan.targets[3];
    assert!(reports.context_dirs.contains_key("services/reports"));
}

#[test]
fn the_shared_stage_is_one_node_used_by_every_service() {
    let plan = plan_example(&[], &[]);
    let g = &plan.graph;
    // The `common` stage's RUN (it creates the app user).
    let common: Vec<NodeId> = g
        .nodes()
        .filter(|(_, n)| matches!(&n.op, Op::Exec(e) if e.args.iter().any(|a| a.contains("app:x:1000"))))
        .map(|(id, _)| id)
        .collect();
    assert_eq!(common.len(), 1, "the common stage is lowered once");
    // busybox is copied onto scratch once.
    let base_sources: Vec<NodeId> = g
        .nodes()
        .filter(|(_, n)| matches!(&n.op, Op::Source(Source::Local { name, .. }) if name == "base"))
        .map(|(id, _)| id)
        .collect();
    assert_eq!(base_sources.len(), 1);
    for t in g.targets() {
        assert!(
            reach(g, t.node).contains(&common[0]),
            "{} does not use the common stage",
            t.name
        );
    }
    // Its config node is shared too: every image's config chain reaches it.
    let node = g.node(common[0]);
    let loc = node.meta.location.as_ref().expect("located");
    assert_eq!(loc.file, "engine.toml");
    let text = spec_text();
    let line = text.lines().nth(loc.line - 1).unwrap();
    assert_eq!(line, "[[stage.common.steps]]");
}

#[test]
fn each_context_is_its_own_directory() {
    let plan = plan_example(&[], &[]);
    let mut locals: Vec<(String, Vec<String>)> = plan
        .graph
        .nodes()
        .filter_map(|(_, n)| match &n.op {
            Op::Source(Source::Local { name, excludes }) => Some((name.clone(), excludes.clone())),
            _ => None,
        })
        .collect();
    locals.sort();
    let names: Vec<&str> = locals.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "base",
            "services/api",
            "services/reports",
            "services/web",
            "services/worker"
        ]
    );
    let excludes = |name: &str| locals.iter().find(|(n, _)| n == name).unwrap().1.clone();
    assert_eq!(excludes("services/api"), ["*.md", "bin"]);
    assert_eq!(excludes("services/web"), ["node_modules", "dist", "*.log"]);
    assert!(excludes("base").is_empty());
}

/// Lower equivalents/NAME.Dockerfile as the CLI would for
/// `engine build -f equivalents/NAME.Dockerfile --build-context base=base CONTEXT`.
fn lower_equivalent(name: &str, context: &str) -> Graph {
    let text = read_example(&format!("equivalents/{name}.Dockerfile")).unwrap();
    let ignore = read_example(&format!("equivalents/{name}.Dockerfile.dockerignore"))
        .or_else(|_| read_example(&format!("{context}/.dockerignore")))
        .ok();
    let mut opts = PlanOptions::new(&NoResolver);
    opts.filename = format!("equivalents/{name}.Dockerfile");
    opts.dockerignore = ignore.as_deref();
    opts.context_name = context.to_string();
    opts.named_contexts
        .insert("base".into(), NamedContext::Local);
    match engine_dockerfile::lower::plan(&text, &opts) {
        Ok(p) => p.graph,
        Err(e) => panic!(
            "{name}.Dockerfile: {} at {:?} (hint: {:?})",
            e.message, e.location, e.hint
        ),
    }
}

#[test]
fn every_image_equals_its_standalone_dockerfile() {
    for (name, context) in [
        ("api", "services/api"),
        ("worker", "services/worker"),
        ("web", "services/web"),
        ("reports", "services/reports"),
    ] {
        let toml = plan_example(&[name], &[]);
        let from_toml = toml.graph.node(toml.graph.target(name).unwrap().node);
        let df = lower_equivalent(name, context);
        let from_df = df.node(df.targets()[0].node);
        if from_toml.digest != from_df.digest {
            panic!(
                "{name}: the TOML image and equivalents/{name}.Dockerfile differ\n--- toml\n{}\n--- dockerfile\n{}",
                engine_ir::render::to_json(&toml.graph),
                engine_ir::render::to_json(&df)
            );
        }
        // Same nodes, not just the same top: the graphs are the same size.
        assert_eq!(toml.graph.len(), df.len(), "{name}: node count");
    }
}

#[test]
fn one_target_graph_is_the_same_alone_or_with_others() {
    let all = plan_example(&[], &[]);
    for t in ["api", "worker", "web", "reports"] {
        let alone = plan_example(&[t], &[]);
        let a = alone.graph.node(alone.graph.target(t).unwrap().node).digest;
        let b = all.graph.node(all.graph.target(t).unwrap().node).digest;
        assert_eq!(a, b, "{t}");
    }
}

#[test]
fn groups_and_variables() {
    let backend = plan_example(&["backend"], &[("VERSION", "9.9.9")]);
    let names: Vec<&str> = backend.targets.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["api", "worker"]);
    assert_eq!(
        backend.targets[0].tags,
        ["localhost:5000/monorepo/api:9.9.9"]
    );
    let default = plan_example(&["api"], &[]);
    assert_ne!(
        backend
            .graph
            .node(backend.graph.target("api").unwrap().node)
            .digest,
        default
            .graph
            .node(default.graph.target("api").unwrap().node)
            .digest,
        "VERSION is in a label and in /etc/motd"
    );
    // A variable [vars] does not declare is a build argument.
    let with_arg = plan_example(&["reports"], &[("REPORT_FORMAT", "txt")]);
    let run = with_arg
        .graph
        .nodes()
        .find_map(|(_, n)| match &n.op {
            Op::Exec(e) if e.args.iter().any(|a| a.contains("make-report.sh")) => {
                Some(e.env.clone())
            }
            _ => None,
        })
        .unwrap();
    assert!(run.contains(&"REPORT_FORMAT=txt".to_string()), "{run:?}");
}

#[test]
fn stages_can_be_targets() {
    let plan = plan_example(&["common"], &[]);
    assert_eq!(plan.targets[0].kind, "stage");
    assert!(plan.targets[0].tags.is_empty());
    assert_eq!(plan.graph.targets()[0].name, "common");
}
