//! Every class of bad spec gives an error located at the right line and
//! column of the TOML, with a hint.

use std::collections::BTreeMap;

use engine_ir::NoResolver;
use engine_toml::{TomlError, TomlPlanOptions};

fn no_files(path: &str) -> std::io::Result<String> {
    Err(std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!("{path}: no such file"),
    ))
}

fn plan_err(text: &str, targets: &[&str]) -> TomlError {
    let read: &dyn Fn(&str) -> std::io::Result<String> = &no_files;
    let mut opts = TomlPlanOptions::new(&NoResolver, read);
    opts.targets = targets.iter().map(|s| s.to_string()).collect();
    match engine_toml::plan(text, &opts) {
        Ok(_) => panic!("planned without error:\n{text}"),
        Err(e) => e,
    }
}

fn check_err(text: &str) -> TomlError {
    match engine_toml::check(text, "engine.toml", &BTreeMap::new()) {
        Ok(()) => panic!("accepted:\n{text}"),
        Err(e) => e,
    }
}

/// Assert the message, the position and (part of) the hint.
#[track_caller]
fn expect(e: TomlError, message: &str, line: usize, col: usize, hint: &str) {
    assert!(
        e.message.contains(message),
        "message `{}` lacks `{message}`",
        e.message
    );
    assert_eq!(e.file, "engine.toml");
    let loc = e
        .location
        .unwrap_or_else(|| panic!("`{}` has no location", e.message));
    assert_eq!(
        (loc.line, loc.col),
        (line, col),
        "position of `{}`",
        e.message
    );
    let h = e
        .hint
        .clone()
        .unwrap_or_else(|| panic!("`{}` has no hint", e.message));
    assert!(h.contains(hint), "hint `{h}` lacks `{hint}`");
    assert_eq!(
        e.to_string(),
        format!("engine.toml:{line}:{col}: {}", e.message)
    );
}

#[test]
fn toml_syntax() {
    let e = check_err("[stage.a]\nfrom = \"x\"\nsteps = [\n");
    assert!(e.message.starts_with("invalid TOML"), "{}", e.message);
    assert!(e.location.is_some());
}

#[test]
fn unknown_keys_suggest_the_closest() {
    expect(
        check_err("[stage.a]\nfro = \"x\"\n"),
        "unknown key `fro` in stage `a`",
        2,
        1,
        "did you mean `from`?",
    );
    expect(
        check_err("[stages.a]\nfrom = \"x\"\n"),
        "unknown key `stages` in the spec",
        1,
        2,
        "singular",
    );
    expect(
        check_err("[stage.a]\nfrom = \"x\"\ntags = [\"a\"]\n"),
        "unknown key `tags` in stage `a`",
        3,
        1,
        "make this an `[image.a]`",
    );
    expect(
        check_err("[image.a]\nfrom = \"x\"\n[[image.a.steps]]\ncopy = \".\"\ndest = \"/app\"\n"),
        "unknown key `dest` in `copy` step",
        5,
        1,
        "written `to`",
    );
    expect(
        check_err("[image.a]\nfrom = \"x\"\nsteps = [{ run = \"a\", mounts = [{ type = \"cache\", dst = \"/c\" }] }]\n"),
        "unknown key `dst` in mount",
        3,
        51,
        "`target`",
    );
    expect(
        check_err("[image.a]\nfrom = \"x\"\nhealthcheck = { cmd = \"true\", intreval = \"1s\" }\n"),
        "unknown key `intreval` in healthcheck",
        3,
        31,
        "did you mean `interval`?",
    );
    expect(
        check_err("[vars]\nA = { defualt = \"1\" }\n"),
        "unknown key `defualt` in variable",
        2,
        7,
        "`default`",
    );
}

#[test]
fn steps_have_one_instruction() {
    expect(
        check_err("[image.a]\nfrom = \"x\"\nsteps = [{ run = \"a\", copy = \"b\", to = \"/\" }]\n"),
        "step has two instructions, `run` and `copy`",
        3,
        23,
        "split it",
    );
    expect(
        check_err("[image.a]\nfrom = \"x\"\nsteps = [{ to = \"/\" }]\n"),
        "unknown key `to` in step",
        3,
        12,
        "expected one of: run, copy",
    );
    expect(
        check_err("[image.a]\nfrom = \"x\"\n[[image.a.steps]]\ncopy = \"a\"\n"),
        "`copy` step has no destination",
        4,
        1,
        "to = ",
    );
}

#[test]
fn wrong_types() {
    expect(
        check_err("[image.a]\nfrom = \"x\"\ntags = \"a:1\"\n"),
        "`tags` must be an array of strings, found a string",
        3,
        8,
        "tags = [\"a:1\"]",
    );
    expect(
        check_err(
            "[image.a]\nfrom = \"x\"\nsteps = [{ copy = \"a\", to = \"/\", link = \"yes\" }]\n",
        ),
        "`link` must be a boolean",
        3,
        41,
        "link = true",
    );
    expect(
        check_err("[image.a]\nfrom = 3\n"),
        "`from` must be a string, found an integer",
        2,
        8,
        "from = \"…\"",
    );
    expect(
        check_err("[image.a]\nfrom = \"x\"\nenv = [\"A=1\"]\n"),
        "`env` must be a table",
        3,
        7,
        "NAME",
    );
    expect(
        check_err("[image.a]\nfrom = \"x\"\nplatforms = [\"linux//arm\"]\n"),
        "invalid platform `linux//arm`",
        3,
        14,
        "linux/amd64",
    );
    expect(
        check_err(
            "[image.a]\nfrom = \"x\"\nhealthcheck = { cmd = \"true\", interval = \"soon\" }\n",
        ),
        "invalid duration `soon`",
        3,
        42,
        "30s",
    );
    expect(
        check_err("[image.a]\nfrom = \"x\"\nsteps = [{ run = \"a\", network = \"bridge\" }]\n"),
        "invalid network `bridge`",
        3,
        33,
        "default, none, host",
    );
}

#[test]
fn unknown_references() {
    let base = "[stage.common]\nfrom = \"scratch\"\n";
    expect(
        check_err(&format!("{base}[image.a]\nfrom = \"comon\"\n")),
        "unknown stage `comon`",
        4,
        8,
        "did you mean `common`?",
    );
    expect(
        check_err(&format!("{base}[image.a]\nfrom = \"scratch\"\nsteps = [{{ copy = \"/x\", from = \"commn\", to = \"/\" }}]\n")),
        "unknown stage `commn`",
        5,
        32,
        "did you mean `common`?",
    );
    expect(
        check_err(&format!("{base}[image.a]\ndockerfile = \"Dockerfile\"\ncontexts = {{ base = \"target:comon\" }}\n")),
        "unknown stage `comon`",
        5,
        21,
        "target:common",
    );
    expect(
        check_err(&format!("{base}[template.svc]\ntags = []\n[image.a]\ninherits = [\"svcs\"]\nfrom = \"common\"\n")),
        "unknown template `svcs`",
        6,
        13,
        "did you mean `svc`?",
    );
    expect(
        check_err(&format!(
            "{base}[image.a]\ninherits = \"common\"\nfrom = \"common\"\n"
        )),
        "`common` is a stage, which cannot be inherited",
        4,
        12,
        "build on a stage with `from`",
    );
    expect(
        check_err(&format!(
            "{base}[image.api]\nfrom = \"common\"\n[group.default]\ntargets = [\"apii\"]\n"
        )),
        "unknown target `apii`",
        6,
        12,
        "did you mean `api`?",
    );
    expect(
        check_err("[image.a]\nfrom = \"x\"\ntags = [\"r/${VERSON}\"]\n[vars]\nVERSION = \"1\"\n"),
        "unknown variable `VERSON`",
        3,
        9,
        "did you mean `${VERSION}`?",
    );
}

#[test]
fn cycles() {
    expect(
        check_err("[stage.a]\nfrom = \"b\"\n[stage.b]\nfrom = \"a\"\n"),
        "cycle between targets: a → b → a",
        4,
        8,
        "loop",
    );
    expect(
        check_err("[stage.a]\nfrom = \"a\"\n"),
        "cycle between targets: a → a",
        2,
        8,
        "built from itself",
    );
    expect(
        check_err("[stage.a]\nfrom = \"scratch\"\nsteps = [{ copy = \"/\", from = \"b\", to = \"/\" }]\n[stage.b]\nfrom = \"a\"\n"),
        "cycle between targets: a → b → a",
        5,
        8,
        "loop",
    );
    expect(
        check_err("[image.a]\nfrom = \"scratch\"\n[group.g]\ntargets = [\"h\"]\n[group.h]\ntargets = [\"a\", \"g\"]\n"),
        "cycle between targets: g → h → g",
        6,
        17,
        "contain itself",
    );
    expect(
        check_err("[template.t]\ninherits = \"u\"\n[template.u]\ninherits = \"t\"\n"),
        "cycle between targets: t → u → t",
        4,
        12,
        "lead back",
    );
    expect(
        check_err("[vars]\nA = \"${B}\"\nB = \"${A}\"\n"),
        "cycle between variables: A → B → A",
        2,
        5,
        "itself",
    );
}

#[test]
fn bases_and_kinds() {
    expect(
        check_err("[stage.a]\nenv = { A = \"1\" }\n"),
        "stage `a` has no base: `from` is missing",
        1,
        8,
        "from = ",
    );
    expect(
        check_err("[image.a]\ncontext = \"services/a\"\n"),
        "image `a` is neither inline nor a Dockerfile",
        1,
        8,
        "dockerfile = ",
    );
    expect(
        check_err("[image.a]\nfrom = \"x\"\ndockerfile = \"Dockerfile\"\n"),
        "has both `from` and `dockerfile`",
        3,
        1,
        "either inline",
    );
    expect(
        check_err("[image.a]\ndockerfile = \"Dockerfile\"\ncmd = [\"x\"]\n"),
        "`cmd` cannot be used with `dockerfile`",
        3,
        1,
        "the Dockerfile defines the steps",
    );
    expect(
        check_err("[stage.a]\nfrom = \"x\"\n[image.a]\nfrom = \"x\"\n"),
        "duplicate name `a`",
        3,
        8,
        "stage of that name is defined at line 1",
    );
    expect(
        check_err("[image.Api]\nfrom = \"x\"\n"),
        "invalid image name `Api`",
        1,
        8,
        "lowercase",
    );
    expect(
        check_err("[stage.scratch]\nfrom = \"x\"\n"),
        "`scratch` is the empty image",
        1,
        8,
        "another name",
    );
    expect(
        check_err("[image.a]\nfrom = \"x\"\ncontext = \"/srv/a\"\n"),
        "context `/srv/a` is an absolute path",
        3,
        11,
        "relative to the spec's directory",
    );
    expect(
        check_err("[vars]\ntarget = \"x\"\n"),
        "`target` is a built-in variable",
        2,
        1,
        "pick another name",
    );
}

#[test]
fn steps_that_cannot_be_written_are_located() {
    expect(
        plan_err("[image.a]\nfrom = \"scratch\"\ncmd = \"a\\nb\"\n", &[]),
        "a shell-form cmd cannot span several lines",
        3,
        1,
        "exec form",
    );
    expect(
        plan_err(
            "[image.a]\nfrom = \"scratch\"\n[[image.a.steps]]\nrun = \"x\"\nmounts = [{ type = \"bind\", target = \"/a,b\" }]\n",
            &[],
        ),
        "contains `,` or a quote",
        5,
        11,
        "commas",
    );
}

#[test]
fn targets_and_files() {
    let spec = "[image.api]\nfrom = \"scratch\"\n[image.legacy]\ndockerfile = \"services/legacy/Dockerfile\"\n";
    let e = plan_err(spec, &["apj"]);
    assert_eq!(e.message, "unknown target `apj`");
    assert!(e.location.is_none());
    assert_eq!(e.hint.as_deref(), Some("did you mean `api`?"));
    expect(
        plan_err(spec, &["legacy"]),
        "cannot read Dockerfile `services/legacy/Dockerfile`",
        4,
        14,
        "relative to the spec's directory",
    );
}

#[test]
fn limits() {
    expect(
        check_err("[limits]\nmemroy = \"4g\"\n"),
        "unknown key `memroy` in [limits]",
        2,
        1,
        "did you mean `memory`?",
    );
    expect(
        check_err("[limits]\npids = 64\n"),
        "unknown key `pids` in [limits]",
        2,
        1,
        "did you mean `pids-limit`?",
    );
    // Entitlements are the command line's alone.
    for spec in [
        "[limits]\nallow = [\"network.host\"]\n",
        "allow = [\"security.insecure\"]\n",
    ] {
        let line = spec.lines().count();
        expect(
            check_err(spec),
            "unknown key `allow`",
            line,
            1,
            "command line only",
        );
    }
    expect(
        check_err("limits = 3\n"),
        "`limits` must be a table, found an integer",
        1,
        10,
        "[limits]",
    );
    expect(
        check_err("[limits]\nmemory = \"lots\"\n"),
        "invalid memory size `lots`",
        2,
        10,
        "\"512m\"",
    );
    expect(
        check_err("[limits]\nmemory = -1\n"),
        "invalid memory size `-1`",
        2,
        10,
        "a number of bytes",
    );
    expect(
        check_err("[limits]\nmemory = 1.5\n"),
        "`limits.memory` must be a size, found a float",
        2,
        10,
        "\"4g\"",
    );
    expect(
        check_err("[limits]\nmemory = \"1k\"\n"),
        "memory limit `1k` is below the minimum of 6 MiB",
        2,
        10,
        "as in Docker",
    );
    expect(
        check_err("[limits]\nmemory = \"${MEM}\"\n"),
        "MEM",
        2,
        10,
        "",
    );
    expect(
        check_err("[limits]\npids-limit = 0\n"),
        "`pids-limit = 0` would stop every step",
        2,
        14,
        "= -1` for no limit",
    );
    expect(
        check_err("[limits]\npids-limit = -2\n"),
        "invalid pids-limit `-2`",
        2,
        14,
        "= -1` for no limit",
    );
    expect(
        check_err("[limits]\npids-limit = \"64\"\n"),
        "`limits.pids-limit` must be an integer, found a string",
        2,
        14,
        "positive number",
    );
    expect(
        check_err("memory = \"4g\"\n"),
        "unknown key `memory` in the spec",
        1,
        1,
        "`[limits]` table",
    );
}

#[test]
fn an_output_that_writes_files_needs_a_destination() {
    // checked when the spec is read, at the entry (issue 10)
    expect(
        check_err("[image.api]\nfrom = \"scratch\"\noutputs = [\"type=oci\"]\n"),
        "output of type `oci` has no destination",
        3,
        12,
        r#"outputs = [{ type = "oci", dest = "out/${target}.tar" }]"#,
    );
    expect(
        check_err(
            "[image.api]\nfrom = \"scratch\"\noutputs = [{ type = \"oci\", tar = \"false\" }]\n",
        ),
        "output of type `oci` has no destination",
        3,
        12,
        r#"tar = "false""#,
    );
    for (entry, kind) in [
        ("\"type=local\"", "local"),
        ("\"type=tar\"", "tar"),
        ("{ type = \"docker\", dest = \" \" }", "docker"),
    ] {
        expect(
            check_err(&format!(
                "[image.api]\nfrom = \"scratch\"\noutputs = [{entry}]\n"
            )),
            &format!("output of type `{kind}` has no destination"),
            3,
            12,
            "give it a dest",
        );
    }
    // docker without dest is loaded, a registry output pushes: both fine
    for ok in [
        "\"type=docker\"",
        "\"type=registry,name=r.example.com/a:1\"",
    ] {
        engine_toml::check(
            &format!("[image.api]\nfrom = \"scratch\"\noutputs = [{ok}]\n"),
            "engine.toml",
            &BTreeMap::new(),
        )
        .unwrap();
    }
}

#[test]
fn a_context_directory_that_is_not_one_fails_the_plan_at_its_line() {
    // The binary checks directories (the frontend does no I/O); a missing
    // one fails the plan where the spec names it, with the reason given.
    let read: &dyn Fn(&str) -> std::io::Result<String> = &|path| match path {
        "Dockerfile" => Ok("FROM scratch\nCOPY . /\n".into()),
        other => no_files(other),
    };
    let check: &dyn Fn(&str) -> Result<(), String> = &|dir| match dir {
        "services/api" | "." => Ok(()),
        other => Err(format!("`/spec/{other}` does not exist")),
    };
    let mut opts = TomlPlanOptions::new(&NoResolver, read);
    opts.check_dir = Some(check);
    let plan = |text: &str| engine_toml::plan(text, &opts).unwrap_err();
    expect(
        plan("[image.api]\nfrom = \"scratch\"\ncontext = \"services/apii\"\n"),
        "context `services/apii`: `/spec/services/apii` does not exist",
        3,
        11,
        "relative to the spec's directory",
    );
    expect(
        plan(concat!(
            "[image.web]\nfrom = \"scratch\"\ncontext = \"services/api\"\n",
            "contexts = { assets = \"web/assetz\" }\n",
            "steps = [{ copy = \".\", from = \"assets\", to = \"/a/\" }]\n",
        )),
        "context `assets` = `web/assetz`: `/spec/web/assetz` does not exist",
        4,
        23,
        "relative to the spec's directory",
    );
    // A Dockerfile target's context too.
    expect(
        plan("[image.legacy]\ndockerfile = \"Dockerfile\"\ncontext = \"old\"\n"),
        "context `old`: `/spec/old` does not exist",
        3,
        11,
        "relative to the spec's directory",
    );
}
