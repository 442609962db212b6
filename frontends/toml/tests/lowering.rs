//! Lowering small specs: how stages, Dockerfile targets, contexts,
//! platforms and variables land in the graph, and where lowering errors
//! point.

use std::collections::BTreeMap;

use engine_dockerfile::lower::NamedContext;
use engine_ir::config::ConfigChange;
use engine_ir::op::FileAction;
use engine_ir::{
    Graph, ImageConfig, ImageResolver, NoResolver, Op, Platform, ResolvedImage, Source,
};
use engine_toml::{TomlError, TomlPlan, TomlPlanOptions};

fn files(path: &str) -> std::io::Result<String> {
    match path {
        "svc/Dockerfile" => Ok("FROM base AS build\nRUN echo build > /b\n\nFROM base AS runtime\nCOPY --from=build /b /b\nCMD [\"cat\", \"/b\"]\n".into()),
        "bad/Dockerfile" => Ok("FROM scratch\nCOPY --chmod=999 a /a\n".into()),
        "svc/.dockerignore" => Ok("*.tmp\n".into()),
        _ => Err(std::io::Error::new(std::io::ErrorKind::NotFound, path.to_string())),
    }
}

fn opts<'a>(resolver: &'a dyn ImageResolver) -> TomlPlanOptions<'a> {
    let read: &'a dyn Fn(&str) -> std::io::Result<String> = &files;
    TomlPlanOptions::new(resolver, read)
}

fn plan_with(text: &str, o: &TomlPlanOptions) -> Result<TomlPlan, TomlError> {
    engine_toml::plan(text, o)
}

fn plan(text: &str, targets: &[&str]) -> TomlPlan {
    let mut o = opts(&NoResolver);
    o.targets = targets.iter().map(|s| s.to_string()).collect();
    plan_with(text, &o).unwrap_or_else(|e| panic!("{e} (hint: {:?})", e.hint))
}

fn err(text: &str) -> TomlError {
    match plan_with(text, &opts(&NoResolver)) {
        Ok(_) => panic!("planned:\n{text}"),
        Err(e) => e,
    }
}

/// The image config a target ends with (scratch or unknown images as bases).
fn config(g: &Graph, target: &str) -> ImageConfig {
    fn of(g: &Graph, id: engine_ir::NodeId) -> ImageConfig {
        let n = g.node(id);
        match &n.op {
            Op::Config(c) => {
                let mut base = of(g, n.inputs[0]);
                for ch in &c.changes {
                    base.apply(ch);
                }
                base
            }
            Op::Source(Source::Scratch) => ImageConfig::scratch(),
            _ => ImageConfig::default(),
        }
    }
    let image = g.node(g.target(target).unwrap().node);
    of(g, image.inputs[1])
}

fn execs(g: &Graph) -> Vec<&engine_ir::Exec> {
    g.nodes()
        .filter_map(|(_, n)| match &n.op {
            Op::Exec(e) => Some(e),
            _ => None,
        })
        .collect()
}

#[test]
fn a_stage_passes_its_config_to_the_stages_built_on_it() {
    let p = plan(
        r#"
[stage.base]
from = "scratch"
env = { A = "1" }
workdir = "/w"
steps = [{ user = "nobody" }, { onbuild = "RUN echo triggered" }]

[image.app]
from = "base"
env = { B = "${A}-$A" }
steps = [{ run = "true" }]
"#,
        &[],
    );
    let run = execs(&p.graph)
        .into_iter()
        .find(|e| e.args.last().unwrap() == "true")
        .unwrap();
    assert_eq!(run.cwd, "/w");
    assert_eq!(run.user, "nobody");
    assert!(run.env.contains(&"A=1".to_string()), "{:?}", run.env);
    // `${A}` is not a spec variable: the Dockerfile rules expand it.
    assert!(run.env.contains(&"B=1-1".to_string()), "{:?}", run.env);
    // The base's ONBUILD trigger ran in the image, and was consumed.
    assert!(execs(&p.graph)
        .iter()
        .any(|e| e.args.last().unwrap() == "echo triggered"));
    let c = config(&p.graph, "app");
    assert_eq!(c.working_dir.as_deref(), Some("/w"));
    assert_eq!(c.user.as_deref(), Some("nobody"));
    assert!(c.on_build.is_empty());
}

struct FakeRegistry;

impl ImageResolver for FakeRegistry {
    fn resolve_image(
        &self,
        reference: &str,
        _: &Platform,
    ) -> Result<Option<ResolvedImage>, String> {
        if reference != "docker.io/library/alpine:3.20" {
            return Ok(None);
        }
        let mut config = ImageConfig::default();
        config.set_env("PATH", "/usr/bin:/bin");
        config.set_env("FROM_REGISTRY", "yes");
        config.working_dir = Some("/home".into());
        Ok(Some(ResolvedImage {
            digest: Some(
                "sha256:0000000000000000000000000000000000000000000000000000000000000001".into(),
            ),
            config,
        }))
    }
}

#[test]
fn base_image_configs_reach_stages_two_levels_down() {
    let text = "[stage.a]\nfrom = \"alpine:3.20\"\n[stage.b]\nfrom = \"a\"\n[image.c]\nfrom = \"b\"\nsteps = [{ run = \"env\" }]\n";
    let p = plan_with(text, &opts(&FakeRegistry)).unwrap();
    let run = execs(&p.graph)[0];
    assert!(
        run.env.contains(&"FROM_REGISTRY=yes".to_string()),
        "{:?}",
        run.env
    );
    assert!(run.env.contains(&"PATH=/usr/bin:/bin".to_string()));
    assert_eq!(run.cwd, "/home");
    let pinned = p.graph.nodes().any(|(_, n)| {
        matches!(
            &n.op,
            Op::Source(Source::Image {
                digest: Some(_),
                ..
            })
        )
    });
    assert!(pinned);
}

#[test]
fn dockerfile_targets_use_spec_stages_through_contexts() {
    let text = r#"
[stage.common]
from = "scratch"
steps = [{ file = "/etc/common", content = "shared" }]

[image.svc]
dockerfile = "svc/Dockerfile"
target = "runtime"
contexts = { base = "target:common" }
labels = { team = "payments" }

[image.inline]
from = "common"
steps = [{ run = "true" }]
"#;
    let p = plan(text, &[]);
    let g = &p.graph;
    // One `common` stage for both images.
    let mkfiles = g
        .nodes()
        .filter(|(_, n)| matches!(&n.op, Op::File(f) if matches!(&f.actions[0], FileAction::Mkfile { path, .. } if path == "/etc/common")))
        .count();
    assert_eq!(mkfiles, 1);
    let c = config(g, "svc");
    assert_eq!(c.labels.get("team").map(String::as_str), Some("payments"));
    assert_eq!(c.cmd, Some(vec!["cat".to_string(), "/b".to_string()]));
    // The Dockerfile's nodes are located in the Dockerfile.
    let run = g
        .nodes()
        .find(|(_, n)| matches!(&n.op, Op::Exec(e) if e.args.last().unwrap() == "echo build > /b"))
        .unwrap()
        .1;
    let loc = run.meta.location.as_ref().unwrap();
    assert_eq!((loc.file.as_str(), loc.line), ("svc/Dockerfile", 2));
    assert_eq!(
        p.targets[0].context_dirs.len(),
        0,
        "the Dockerfile copies nothing from its context"
    );
}

#[test]
fn directory_contexts_are_named_by_their_paths() {
    let text = r#"
[image.app]
from = "scratch"
context = "./svc/"
contexts = { shared = "libs/shared/", alpine = "docker-image://alpine:3.20" }
steps = [
  { copy = ".", to = "/app/" },
  { copy = "lib", from = "shared", to = "/lib/" },
  { copy = "/etc/os-release", from = "alpine", to = "/etc/" },
]
"#;
    let p = plan(text, &[]);
    let locals: BTreeMap<String, Vec<String>> = p
        .graph
        .nodes()
        .filter_map(|(_, n)| match &n.op {
            Op::Source(Source::Local { name, excludes }) => Some((name.clone(), excludes.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        locals,
        BTreeMap::from([
            ("libs/shared".to_string(), vec![]),
            ("svc".to_string(), vec!["*.tmp".to_string()])
        ])
    );
    assert_eq!(
        p.targets[0].context_dirs,
        BTreeMap::from([
            ("libs/shared".to_string(), "libs/shared".to_string()),
            ("svc".to_string(), "svc".to_string())
        ])
    );
    assert!(p
        .graph
        .nodes()
        .any(|(_, n)| matches!(&n.op, Op::Source(Source::Image { reference, .. }) if reference == "docker.io/library/alpine:3.20")));
}

#[test]
fn command_line_contexts_provide_bases() {
    let mut o = opts(&NoResolver);
    o.named_contexts
        .insert("busybox".into(), NamedContext::Layout);
    let p = plan_with(
        "[image.app]\nfrom = \"busybox\"\nsteps = [{ run = \"true\" }]\n",
        &o,
    )
    .unwrap();
    assert!(p.graph.nodes().any(
        |(_, n)| matches!(&n.op, Op::Source(Source::Layout { context, .. }) if context == "busybox")
    ));
}

#[test]
fn each_platform_is_a_target_and_platform_independent_nodes_are_shared() {
    let text = r#"
[stage.gen]
from = "scratch"
platform = "$BUILDPLATFORM"
steps = [{ file = "/data", content = "x" }]

[image.app]
from = "scratch"
platforms = ["linux/amd64", "linux/arm64"]
steps = [{ copy = "/data", from = "gen", to = "/data" }]
"#;
    let p = plan(text, &[]);
    let names: Vec<&str> = p.graph.targets().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["app@linux/amd64", "app@linux/arm64"]);
    assert_eq!(p.targets[0].images.len(), 2);
    let gens = p
        .graph
        .nodes()
        .filter(|(_, n)| matches!(&n.op, Op::File(f) if matches!(&f.actions[0], FileAction::Mkfile { .. })))
        .count();
    assert_eq!(gens, 1, "the build-platform stage is built once");
    let a = p.graph.node(p.graph.targets()[0].node);
    let b = p.graph.node(p.graph.targets()[1].node);
    assert_ne!(a.digest, b.digest);
}

#[test]
fn inherits_merges_tables_and_replaces_the_rest() {
    let text = r#"
[template.t]
tags = ["a"]
env = { A = "t", B = "t" }
labels = { l = "t" }

[image.app]
inherits = "t"
from = "scratch"
tags = ["b"]
env = { B = "app" }
"#;
    let p = plan(text, &[]);
    assert_eq!(p.targets[0].tags, ["b"]);
    let c = config(&p.graph, "app");
    assert_eq!(c.get_env("A"), Some("t"));
    assert_eq!(c.get_env("B"), Some("app"));
    assert_eq!(c.labels["l"], "t");
}

#[test]
fn unused_command_line_variables_are_errors() {
    // A used one is fine, and reaches the RUN step's environment.
    let mut o = opts(&NoResolver);
    o.vars.insert("USED".into(), "2".into());
    let spec = "[vars]\nUSAGE = \"x\"\n\n[image.app]\nfrom = \"scratch\"\nargs = { USED = \"0\" }\nsteps = [{ run = \"true\" }]\n";
    let p = plan_with(spec, &o).unwrap();
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    assert!(execs(&p.graph)[0].env.contains(&"USED=2".to_string()));
    // One that nothing reads is a typo until shown otherwise.
    o.vars.insert("USAGES".into(), "1".into());
    let e = plan_with(spec, &o).unwrap_err();
    assert!(
        e.message.starts_with("variable `USAGES` is not declared"),
        "{}",
        e.message
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean `USAGE`?"));
}

#[test]
fn dockerfile_rule_errors_point_at_the_step() {
    let e = err("[image.app]\nfrom = \"scratch\"\n\n[[image.app.steps]]\ncopy = \"a\"\nto = \"/a\"\nchmod = \"999\"\n");
    assert!(e.message.contains("999"), "{}", e.message);
    assert_eq!(e.file, "engine.toml");
    assert_eq!(e.location.map(|l| (l.line, l.col)), Some((4, 1)));
    let e = err("[image.app]\nfrom = \"scratch\"\nexpose = [\"80/foo\"]\n");
    assert_eq!(e.location.map(|l| (l.line, l.col)), Some((3, 1)), "{e}");
    let e = err("[image.app]\nfrom = \"scratch\"\nstop-signal = \"SIGNOPE\"\n");
    assert!(e.message.contains("SIGNOPE"), "{}", e.message);
    assert_eq!(e.location.map(|l| l.line), Some(3));
}

#[test]
fn dockerfile_errors_point_into_the_dockerfile() {
    let e = err("[image.bad]\ndockerfile = \"bad/Dockerfile\"\n");
    assert_eq!(e.file, "bad/Dockerfile");
    assert_eq!(e.location.map(|l| l.line), Some(2));
    let e = err("[stage.base]\nfrom = \"scratch\"\n[image.svc]\ndockerfile = \"svc/Dockerfile\"\ntarget = \"nope\"\ncontexts = { base = \"target:base\" }\n");
    assert_eq!(e.file, "engine.toml");
    assert_eq!(e.location.map(|l| (l.line, l.col)), Some((5, 10)), "{e}");
    assert!(e.hint.unwrap().contains("build, runtime"));
}

#[test]
fn the_generated_dockerfile_is_what_is_lowered() {
    let text = "[stage.a]\nfrom = \"scratch\"\nsteps = [{ run = \"true\" }]\n";
    let df = engine_toml::dockerfile_of(text, "engine.toml", &BTreeMap::new(), "a").unwrap();
    assert_eq!(df, "FROM scratch AS a\nRUN true\n");
    let mut o = engine_dockerfile::lower::PlanOptions::new(&NoResolver);
    o.filename = "engine.toml".into();
    o.context_name = ".".into();
    let direct = engine_dockerfile::lower::plan(&df, &o).unwrap().graph;
    let p = plan(text, &["a"]);
    assert_eq!(
        p.graph.node(p.graph.targets()[0].node).digest,
        direct.node(direct.targets()[0].node).digest
    );
    let changes = match &p
        .graph
        .node(p.graph.node(p.graph.targets()[0].node).inputs[1])
        .op
    {
        Op::Config(c) => c.changes.clone(),
        _ => panic!(),
    };
    assert!(matches!(&changes[0], ConfigChange::History { .. }));
}

#[test]
fn limits_are_read_once_for_the_whole_build() {
    let app = "[image.app]\nfrom = \"scratch\"\nsteps = [{ run = \"true\" }]\n";
    assert_eq!(plan(app, &[]).limits, engine_toml::Limits::default());
    let p = plan(
        &format!("[limits]\nmemory = \"4g\"\npids-limit = 8192\n{app}"),
        &[],
    );
    assert_eq!(p.limits.memory, Some(4 << 30));
    assert_eq!(p.limits.pids_limit, Some(8192));
    let p = plan(
        &format!("[limits]\nmemory = 67108864\npids-limit = -1\n{app}"),
        &[],
    );
    assert_eq!(p.limits.memory, Some(64 << 20));
    assert_eq!(p.limits.pids_limit, Some(-1));
    // A size can come from a variable, and so from --set.
    let text = format!("[vars]\nMEM = \"1g\"\n[limits]\nmemory = \"${{MEM}}\"\n{app}");
    assert_eq!(plan(&text, &[]).limits.memory, Some(1 << 30));
    let mut o = opts(&NoResolver);
    o.vars.insert("MEM".into(), "1.5GiB".into());
    assert_eq!(plan_with(&text, &o).unwrap().limits.memory, Some(3 << 29));
    // Limits are not in the graph: the same steps, the same digests.
    let digest = |p: &TomlPlan| p.graph.node(p.graph.targets()[0].node).digest;
    assert_eq!(
        digest(&plan(app, &[])),
        digest(&plan(&format!("[limits]\npids-limit = 64\n{app}"), &[]))
    );
}

#[test]
fn numbers_keep_their_text() {
    // `VERSION = 1.0` is "1.0" (not "1"), as bake keeps it; so are the
    // numbers of `args`.
    let o = opts(&NoResolver);
    let p = plan_with(
        "[vars]\nVERSION = 1.0\nCOUNT = 1_000\n\n[image.app]\nfrom = \"scratch\"\nargs = { V = \"${VERSION}\", C = \"${COUNT}\", RATIO = 0.50 }\nsteps = [{ run = \"true\" }]\n",
        &o,
    )
    .unwrap();
    let env = &execs(&p.graph)[0].env;
    for want in ["V=1.0", "C=1_000", "RATIO=0.50"] {
        assert!(env.contains(&want.to_string()), "{want} not in {env:?}");
    }
}
