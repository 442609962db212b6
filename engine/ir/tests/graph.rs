use engine_ir::*;

fn exec(args: &[&str]) -> Op {
    Op::Exec(Exec {
        args: args.iter().map(|s| s.to_string()).collect(),
        env: vec!["PATH=/bin".into()],
        cwd: "/".into(),
        user: String::new(),
        network: NetworkMode::Default,
        security: SecurityMode::Sandbox,
        mounts: vec![],
        platform: Platform::linux_amd64(),
        proxy_env: vec![],
    })
}

fn meta(name: &str) -> NodeMeta {
    NodeMeta {
        name: name.into(),
        location: None,
    }
}

#[test]
fn identical_subgraphs_are_one_node() {
    let mut b = GraphBuilder::new();
    let s1 = b
        .add(Op::Source(Source::Scratch), vec![], meta("a"))
        .unwrap();
    let s2 = b
        .add(Op::Source(Source::Scratch), vec![], meta("b"))
        .unwrap();
    assert_eq!(s1, s2);
    let r1 = b
        .add(exec(&["make"]), vec![s1], meta("[a 1/1] RUN make"))
        .unwrap();
    let r2 = b
        .add(exec(&["make"]), vec![s2], meta("[b 1/1] RUN make"))
        .unwrap();
    assert_eq!(
        r1, r2,
        "same op over the same input dedupes whatever the meta"
    );
    let r3 = b.add(exec(&["make", "all"]), vec![s1], meta("x")).unwrap();
    assert_ne!(r1, r3);
    let g = b.finish(vec![Target {
        name: "t".into(),
        node: r3,
    }]);
    assert_eq!(g.len(), 2, "unreached nodes are pruned");
}

#[test]
fn digest_depends_on_inputs_and_platform_not_on_meta() {
    let mut b = GraphBuilder::new();
    let scratch = b
        .add(Op::Source(Source::Scratch), vec![], meta(""))
        .unwrap();
    let local = b
        .add(
            Op::Source(Source::Local {
                name: "context".into(),
                excludes: vec![],
            }),
            vec![],
            meta(""),
        )
        .unwrap();
    let a = b.add(exec(&["true"]), vec![scratch], meta("")).unwrap();
    let c = b.add(exec(&["true"]), vec![local], meta("")).unwrap();
    assert_ne!(b.node(a).digest, b.node(c).digest);
    let mut arm = exec(&["true"]);
    if let Op::Exec(e) = &mut arm {
        e.platform = Platform::parse("linux/arm64").unwrap();
    }
    let d = b.add(arm, vec![scratch], meta("")).unwrap();
    assert_ne!(b.node(a).digest, b.node(d).digest);
}

#[test]
fn pinned_image_digest_ignores_the_reference_spelling() {
    let img = |r: &str, d: Option<&str>| {
        Op::Source(Source::Image {
            reference: r.into(),
            digest: d.map(str::to_string),
            platform: Platform::linux_amd64(),
        })
    };
    let d = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let a = graph::node_digest(&img("alpine", Some(d)), &[]);
    let b = graph::node_digest(&img("docker.io/library/alpine:latest", Some(d)), &[]);
    assert_eq!(a, b);
    let c = graph::node_digest(&img("alpine", None), &[]);
    let e = graph::node_digest(&img("debian", None), &[]);
    assert_ne!(c, e);
}

#[test]
fn golden_digests_catch_format_changes() {
    // If this fails, the canonical encoding changed: bump IR_VERSION and
    // update the pinned values (and the cache format version, once keys
    // derive from node digests).
    let scratch = graph::node_digest(&Op::Source(Source::Scratch), &[]);
    let run = graph::node_digest(&exec(&["/bin/sh", "-c", "echo hi"]), &[scratch]);
    insta::assert_snapshot!(format!("{scratch}\n{run}"), @r"
    blake3:4068d4458068dbccb30a23ba66e3dbd7a68557a05450f85153076b6a867634ec
    blake3:28681d6f168fc2fe3c3ab82286ddbd0b211276c57cf0df1104cb81661f9f6c6a
    ");
}

#[test]
fn canonical_json_sorts_keys() {
    let v: serde_json::Value =
        serde_json::from_str(r#"{"b":1,"a":{"d":[1,{"z":0,"y":1}],"c":"x"}}"#).unwrap();
    assert_eq!(
        graph::canonical_json(&v),
        r#"{"a":{"c":"x","d":[1,{"y":1,"z":0}]},"b":1}"#
    );
}

#[test]
fn select_keeps_only_what_targets_need() {
    let mut b = GraphBuilder::new();
    let s = b
        .add(Op::Source(Source::Scratch), vec![], meta(""))
        .unwrap();
    let x = b.add(exec(&["x"]), vec![s], meta("")).unwrap();
    let y = b.add(exec(&["y"]), vec![s], meta("")).unwrap();
    let g = b.finish(vec![
        Target {
            name: "x".into(),
            node: x,
        },
        Target {
            name: "y".into(),
            node: y,
        },
    ]);
    assert_eq!(g.len(), 3);
    let g = g.select(&["y".to_string()]).unwrap();
    assert_eq!(g.len(), 2);
    assert!(g.select(&["nope".to_string()]).is_err());
}

#[test]
fn importing_a_graph_merges_equal_nodes() {
    let mut a = GraphBuilder::new();
    let s = a
        .add(Op::Source(Source::Scratch), vec![], meta(""))
        .unwrap();
    let x = a.add(exec(&["x"]), vec![s], meta("")).unwrap();
    let ga = a.finish(vec![Target {
        name: "a".into(),
        node: x,
    }]);
    let mut b = GraphBuilder::new();
    let s2 = b
        .add(Op::Source(Source::Scratch), vec![], meta(""))
        .unwrap();
    let y = b.add(exec(&["y"]), vec![s2], meta("")).unwrap();
    let mut targets = b.import(&ga);
    targets.push(Target {
        name: "b".into(),
        node: y,
    });
    let g = b.finish(targets);
    assert_eq!(g.len(), 3, "the shared scratch source is one node");
    assert_eq!(
        g.node(g.target("a").unwrap().node).digest,
        ga.node(ga.target("a").unwrap().node).digest
    );
}
