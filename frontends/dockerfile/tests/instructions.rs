//! The typed instruction layer: every instruction, every flag, and the
//! errors BuildKit reports.

use engine_dockerfile::instructions::{
    parse_all, parse_device, parse_instruction, parse_mount, Command, CopyArgs, HealthcheckSpec,
    HeredocFile, Instruction, Mount, MountType,
};
use engine_dockerfile::parser::{parse, Heredoc};
use engine_dockerfile::{Error, Result};

/// The typed form of the last instruction of `src`.
fn inst(src: &str) -> Result<Instruction> {
    let ast = parse(src)?;
    let node = ast.children.last().expect("at least one instruction");
    parse_instruction(node)
}

fn ok(src: &str) -> Instruction {
    inst(src).unwrap_or_else(|e| panic!("{src:?}: unexpected error: {e} (hint: {:?})", e.hint))
}

fn err(src: &str) -> Error {
    match inst(src) {
        Ok(i) => panic!("{src:?}: expected an error, got {i:?}"),
        Err(e) => e,
    }
}

fn s(v: &str) -> String {
    v.to_string()
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[test]
fn from() {
    assert_eq!(
        ok("FROM alpine"),
        Instruction::From {
            image: s("alpine"),
            platform: None,
            alias: None
        }
    );
    assert_eq!(
        ok("FROM --platform=linux/arm64 alpine:3 As Build-1.x_y"),
        Instruction::From {
            image: s("alpine:3"),
            platform: Some(s("linux/arm64")),
            alias: Some(s("build-1.x_y"))
        }
    );
    assert_eq!(
        ok("from ${BASE} as base"),
        Instruction::From {
            image: s("${BASE}"),
            platform: None,
            alias: Some(s("base"))
        }
    );
    assert_eq!(
        err("FROM").message,
        "FROM requires either one or three arguments"
    );
    assert_eq!(
        err("FROM a b").message,
        "FROM requires either one or three arguments"
    );
    assert_eq!(
        err("FROM a is b").message,
        "FROM requires either one or three arguments"
    );
    assert_eq!(
        err("FROM a AS 1st").message,
        "invalid name for build stage: \"1st\", name can't start with a number or contain symbols"
    );
    assert!(err("FROM a AS my$stage")
        .message
        .starts_with("invalid name for build stage"));
    let e = err("FROM --plaform=x a");
    assert_eq!(e.message, "unknown flag: --plaform");
    assert_eq!(
        e.hint.as_deref(),
        Some("did you mean --platform? FROM accepts --platform")
    );
}

#[test]
fn run_forms() {
    let Instruction::Run {
        command,
        heredocs,
        mounts,
        network,
        security,
    } = ok("RUN echo hi  &&  ls")
    else {
        panic!()
    };
    assert_eq!(command, Command::Shell(s("echo hi  &&  ls")));
    assert!(heredocs.is_empty() && mounts.is_empty());
    assert_eq!((network, security), (None, None));

    let Instruction::Run { command, .. } = ok(r#"RUN ["echo", "a b"]"#) else {
        panic!()
    };
    assert_eq!(command, Command::Exec(strs(&["echo", "a b"])));
    let Instruction::Run { command, .. } = ok("RUN []") else {
        panic!()
    };
    assert_eq!(command, Command::Exec(vec![]));
    let Instruction::Run { command, .. } = ok("RUN") else {
        panic!()
    };
    assert_eq!(command, Command::Shell(s("")));
    // Not valid JSON: shell form.
    let Instruction::Run { command, .. } = ok("RUN ['a']") else {
        panic!()
    };
    assert_eq!(command, Command::Shell(s("['a']")));
    // A JSON array with non-strings is an error (from the parser).
    assert_eq!(
        err(r#"RUN ["a", 1]"#).message,
        "when using JSON array syntax, arrays must be comprised of strings only"
    );

    let Instruction::Run {
        command, heredocs, ..
    } = ok("RUN <<EOF\necho $X\nEOF\n")
    else {
        panic!()
    };
    assert_eq!(command, Command::Shell(s("<<EOF")));
    assert_eq!(
        heredocs,
        vec![Heredoc {
            name: s("EOF"),
            content: s("echo $X\n"),
            expand: true,
            chomp: false,
            file_descriptor: 0
        }]
    );
}

#[test]
fn run_flags() {
    let Instruction::Run { mounts, network, security, command, .. } = ok(
        "RUN --mount=type=cache,target=/root/.cache --mount=type=secret,id=tok --network=none --security=insecure go build",
    ) else {
        panic!()
    };
    assert_eq!(
        mounts,
        strs(&["type=cache,target=/root/.cache", "type=secret,id=tok"])
    );
    assert_eq!(network.as_deref(), Some("none"));
    assert_eq!(security.as_deref(), Some("insecure"));
    assert_eq!(command, Command::Shell(s("go build")));

    let Instruction::Run {
        network, security, ..
    } = ok("RUN --network=default --security=sandbox x")
    else {
        panic!()
    };
    assert_eq!(
        (network.as_deref(), security.as_deref()),
        (Some("default"), Some("sandbox"))
    );

    assert_eq!(
        err("RUN --network=bridge x").message,
        "invalid network mode \"bridge\""
    );
    assert_eq!(
        err("RUN --security=privileged x").message,
        "security \"privileged\" is not valid"
    );
    assert_eq!(
        err("RUN --network x").message,
        "missing a value on flag: --network"
    );
    assert_eq!(
        err("RUN --mount x").message,
        "missing a value on flag: --mount"
    );
    assert_eq!(
        err("RUN --network=host --network=none x").message,
        "duplicate flag specified: --network"
    );
    let e = err("RUN --mnt=type=cache x");
    assert_eq!(e.message, "unknown flag: --mnt");
    assert_eq!(
        e.hint.as_deref(),
        Some("did you mean --mount? RUN accepts --device, --mount, --network, --security")
    );
    // Mount values are checked for CSV syntax and `from` variables up front.
    assert_eq!(
        err("RUN --mount=from=$STAGE,target=/x x").message,
        "'from' doesn't support variable expansion, define alias stage instead"
    );
    assert!(ok("RUN --mount=from=stage$,target=/x x").name() == "RUN");
    assert!(err("RUN --mount=target=\\\"/x x")
        .message
        .starts_with("failed to parse csv mounts"));
    assert_eq!(
        err("RUN --mount= x").message,
        "failed to parse csv mounts: EOF"
    );
    // Devices are validated, then refused as in BuildKit's stable frontend.
    assert_eq!(
        err("RUN --device=a,b x").message,
        "invalid field 'b' must be a key=value pair"
    );
    assert_eq!(
        err("RUN --device=/dev/fuse x").message,
        "device feature is only supported in Dockerfile frontend 1.14.0-labs or later"
    );
    // `--` ends the flags.
    let Instruction::Run { command, .. } = ok("RUN --network=none -- --not-a-flag") else {
        panic!()
    };
    assert_eq!(command, Command::Shell(s("--not-a-flag")));
}

#[test]
fn cmd_and_entrypoint() {
    assert_eq!(
        ok("CMD echo hi"),
        Instruction::Cmd(Command::Shell(s("echo hi")))
    );
    assert_eq!(
        ok(r#"CMD ["a","b"]"#),
        Instruction::Cmd(Command::Exec(strs(&["a", "b"])))
    );
    assert_eq!(ok("CMD"), Instruction::Cmd(Command::Shell(s(""))));
    assert_eq!(
        ok(r#"ENTRYPOINT ["/bin/app"]"#),
        Instruction::Entrypoint(Command::Exec(strs(&["/bin/app"])))
    );
    assert_eq!(
        ok("ENTRYPOINT exec app"),
        Instruction::Entrypoint(Command::Shell(s("exec app")))
    );
    assert_eq!(
        ok("ENTRYPOINT"),
        Instruction::Entrypoint(Command::Shell(s("")))
    );
    let e = err("CMD --doit a");
    assert_eq!(e.message, "unknown flag: --doit");
    assert_eq!(e.hint.as_deref(), Some("CMD accepts no flags"));
}

#[test]
fn shell() {
    assert_eq!(
        ok(r#"SHELL ["powershell", "-command"]"#),
        Instruction::Shell(strs(&["powershell", "-command"]))
    );
    let e = err("SHELL /bin/bash -c");
    assert_eq!(e.message, "SHELL requires the arguments to be in JSON form");
    assert_eq!(
        e.hint.as_deref(),
        Some(r#"write it as a JSON array, e.g. SHELL ["/bin/bash", "-c"]"#)
    );
    assert_eq!(
        err("SHELL []").message,
        "SHELL requires at least one argument"
    );
    assert_eq!(err("SHELL").message, "SHELL requires at least one argument");
}

#[test]
fn env_and_label() {
    assert_eq!(ok("ENV A b c"), Instruction::Env(vec![(s("A"), s("b c"))]));
    assert_eq!(
        ok("ENV A=1 B=\"two words\" C=x\\ y"),
        Instruction::Env(vec![
            (s("A"), s("1")),
            (s("B"), s("\"two words\"")),
            (s("C"), s("x\\ y"))
        ])
    );
    assert_eq!(ok("LABEL a=b"), Instruction::Label(vec![(s("a"), s("b"))]));
    assert_eq!(
        ok("LABEL maintainer me@x"),
        Instruction::Label(vec![(s("maintainer"), s("me@x"))])
    );
    assert_eq!(err("ENV").message, "ENV requires at least one argument");
    assert_eq!(err("LABEL").message, "LABEL requires at least one argument");
    assert_eq!(err("ENV =x").message, "ENV names can not be blank");
    assert_eq!(err("LABEL =x").message, "LABEL names can not be blank");
    assert_eq!(err("ENV x").message, "ENV must have two arguments");
    assert_eq!(
        err("ENV a=b c").message,
        "syntax error - can't find = in \"c\"; must be of the form: name=value"
    );
    assert_eq!(err("ENV --x=1 a=b").message, "unknown flag: --x");
}

fn copy_args(sources: &[&str], dest: &str) -> CopyArgs {
    CopyArgs {
        sources: strs(sources),
        dest: s(dest),
        from: None,
        chown: None,
        chmod: None,
        link: false,
        parents: false,
        exclude: vec![],
        heredocs: vec![],
        keep_git_dir: None,
        checksum: None,
        unpack: None,
    }
}

#[test]
fn add() {
    assert_eq!(
        ok("ADD --chown=1:2 --chmod=755 --link --keep-git-dir=false --checksum=sha256:abc --unpack=true --exclude=*.md --exclude=.git https://x/y.tgz a.tar /dst/"),
        Instruction::Add(CopyArgs {
            chown: Some(s("1:2")),
            chmod: Some(s("755")),
            link: true,
            keep_git_dir: Some(false),
            checksum: Some(s("sha256:abc")),
            unpack: Some(true),
            exclude: strs(&["*.md", ".git"]),
            ..copy_args(&["https://x/y.tgz", "a.tar"], "/dst/")
        })
    );
    assert_eq!(ok("ADD a b"), Instruction::Add(copy_args(&["a"], "b")));
    assert_eq!(
        ok("ADD --keep-git-dir https://github.com/a/b.git /src"),
        Instruction::Add(CopyArgs {
            keep_git_dir: Some(true),
            ..copy_args(&["https://github.com/a/b.git"], "/src")
        })
    );
    assert_eq!(
        err("ADD a").message,
        "ADD requires at least two arguments, but only one was provided. Destination could not be determined"
    );
    assert_eq!(err("ADD --from=x a b").message, "unknown flag: --from");
    assert_eq!(
        err("ADD --from=x a b").hint.as_deref(),
        Some(
            "ADD accepts --checksum, --chmod, --chown, --exclude, --keep-git-dir, --link, --unpack"
        )
    );
    assert_eq!(err("ADD --parents a b").message, "unknown flag: --parents");
}

#[test]
fn copy() {
    assert_eq!(
        ok("COPY --from=build --chown=app --chmod=0644 --link=true --parents --exclude=x --exclude=y a b ./out/"),
        Instruction::Copy(CopyArgs {
            from: Some(s("build")),
            chown: Some(s("app")),
            chmod: Some(s("0644")),
            link: true,
            parents: true,
            exclude: strs(&["x", "y"]),
            ..copy_args(&["a", "b"], "./out/")
        })
    );
    assert_eq!(
        ok(r#"COPY ["a b", "c"]"#),
        Instruction::Copy(copy_args(&["a b"], "c"))
    );
    // An empty value is the same as no flag.
    assert_eq!(
        ok("COPY --chown= a b"),
        Instruction::Copy(copy_args(&["a"], "b"))
    );
    // Heredoc sources, with `<<-` tab stripping and quoting.
    let Instruction::Copy(c) = ok("COPY <<-A <<'B' src /dest/\n\tone $X\nA\ntwo $Y\nB\n") else {
        panic!()
    };
    assert_eq!(c.sources, strs(&["src"]));
    assert_eq!(c.dest, "/dest/");
    assert_eq!(
        c.heredocs,
        vec![
            HeredocFile {
                name: s("A"),
                content: s("one $X\n"),
                expand: true
            },
            HeredocFile {
                name: s("B"),
                content: s("two $Y\n"),
                expand: false
            },
        ]
    );
    assert_eq!(
        err("COPY a <<EOF\nx\nEOF").message,
        "COPY cannot accept a heredoc as a destination"
    );
    assert_eq!(
        err("COPY a").message,
        "COPY requires at least two arguments, but only one was provided. Destination could not be determined"
    );
    // Boolean flag values.
    let link = |src: &str| match ok(src) {
        Instruction::Copy(c) => c.link,
        _ => panic!(),
    };
    assert!(link("COPY --link a b"));
    assert!(link("COPY --link=TRUE a b"));
    assert!(!link("COPY --link=false a b"));
    assert_eq!(
        err("COPY --link= a b").message,
        "missing a value on flag: --link"
    );
    assert_eq!(
        err("COPY --link=maybe a b").message,
        "expecting boolean value for flag --link, not: maybe"
    );
    assert_eq!(
        err("COPY --from a b").message,
        "missing a value on flag: --from"
    );
    assert_eq!(
        err("COPY --from=a --from=b a b").message,
        "duplicate flag specified: --from"
    );
    let e = err("COPY --lnk a b");
    assert_eq!(e.message, "unknown flag: --lnk");
    assert_eq!(
        e.hint.as_deref(),
        Some("did you mean --link? COPY accepts --chmod, --chown, --exclude, --from, --link, --parents")
    );
    // Flags with quotes and escapes.
    let Instruction::Copy(c) = ok("COPY --chown=\"a b\" x y") else {
        panic!()
    };
    assert_eq!(c.chown.as_deref(), Some("a b"));
}

#[test]
fn simple_instructions() {
    assert_eq!(
        ok("MAINTAINER Jane Doe <j@d>"),
        Instruction::Maintainer(s("Jane Doe <j@d>"))
    );
    assert_eq!(
        ok("EXPOSE 8080 443/tcp 53/udp"),
        Instruction::Expose(strs(&["443/tcp", "53/udp", "8080"]))
    );
    assert_eq!(ok("VOLUME /a /b"), Instruction::Volume(strs(&["/a", "/b"])));
    assert_eq!(
        ok(r#"VOLUME ["/data", " /x "]"#),
        Instruction::Volume(strs(&["/data", "/x"]))
    );
    assert_eq!(ok("USER app:app"), Instruction::User(s("app:app")));
    assert_eq!(
        ok("WORKDIR /src/$APP"),
        Instruction::Workdir(s("/src/$APP"))
    );
    assert_eq!(
        ok("STOPSIGNAL SIGTERM"),
        Instruction::StopSignal(s("SIGTERM"))
    );
    assert_eq!(
        ok("ARG A B=1 C= D=x=y"),
        Instruction::Arg(vec![
            (s("A"), None),
            (s("B"), Some(s("1"))),
            (s("C"), Some(s(""))),
            (s("D"), Some(s("x=y")))
        ])
    );
    assert_eq!(
        ok("ARG \"Q=a b\""),
        Instruction::Arg(vec![(s("\"Q"), Some(s("a b\"")))])
    );

    for cmd in ["MAINTAINER", "WORKDIR", "USER", "STOPSIGNAL"] {
        assert_eq!(
            err(cmd).message,
            format!("{cmd} requires exactly one argument")
        );
    }
    for cmd in [
        "ENV",
        "LABEL",
        "ONBUILD",
        "HEALTHCHECK",
        "EXPOSE",
        "VOLUME",
        "ARG",
    ] {
        assert_eq!(
            err(cmd).message,
            format!("{cmd} requires at least one argument")
        );
    }
    assert_eq!(ok("USER a b"), Instruction::User(s("a b")));
    assert_eq!(
        err(r#"VOLUME [""]"#).message,
        "VOLUME specified can not be an empty string"
    );
    assert_eq!(err("ARG =x").message, "ARG names can not be blank");
    assert_eq!(
        err("MAINTAINER --boo joe@example.com").message,
        "unknown flag: --boo"
    );
    assert_eq!(err("WORKDIR --x=1 /a").message, "unknown flag: --x");
    // BuildKit never looks at STOPSIGNAL's and ARG's flags.
    assert_eq!(ok("STOPSIGNAL --x 9"), Instruction::StopSignal(s("9")));
    assert_eq!(ok("ARG --x A"), Instruction::Arg(vec![(s("A"), None)]));
}

#[test]
fn onbuild() {
    assert_eq!(
        ok("ONBUILD RUN echo hi"),
        Instruction::Onbuild(s("RUN echo hi"))
    );
    assert_eq!(
        ok("  onbuild   COPY . /app"),
        Instruction::Onbuild(s("COPY . /app"))
    );
    assert_eq!(
        ok("ONBUILD RUN <<EOF\nx\nEOF\n"),
        Instruction::Onbuild(s("RUN <<EOF\nx\nEOF"))
    );
    assert_eq!(
        err("ONBUILD ONBUILD RUN touch foobar").message,
        "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
    );
    assert_eq!(
        err("ONBUILD FROM scratch").message,
        "FROM isn't allowed as an ONBUILD trigger"
    );
    assert_eq!(
        err("ONBUILD maintainer me").message,
        "MAINTAINER isn't allowed as an ONBUILD trigger"
    );
    assert_eq!(err("ONBUILD --x RUN a").message, "unknown flag: --x");
}

#[test]
fn healthcheck() {
    assert_eq!(
        ok("HEALTHCHECK NONE"),
        Instruction::Healthcheck(HealthcheckSpec::None)
    );
    assert_eq!(
        ok("HEALTHCHECK --interval=bogus none"),
        Instruction::Healthcheck(HealthcheckSpec::None)
    );
    assert_eq!(
        ok("HEALTHCHECK --interval=5s --timeout=1m30s --start-period=0s --start-interval=500ms --retries=3 CMD curl -f http://x/"),
        Instruction::Healthcheck(HealthcheckSpec::Cmd {
            test: strs(&["CMD-SHELL", "curl -f http://x/"]),
            interval: 5_000_000_000,
            timeout: 90_000_000_000,
            start_period: 0,
            start_interval: 500_000_000,
            retries: 3,
        })
    );
    assert_eq!(
        ok(r#"HEALTHCHECK cmd ["/check", "-q"]"#),
        Instruction::Healthcheck(HealthcheckSpec::Cmd {
            test: strs(&["CMD", "/check", "-q"]),
            interval: 0,
            timeout: 0,
            start_period: 0,
            start_interval: 0,
            retries: 0,
        })
    );
    assert_eq!(
        err("HEALTHCHECK NONE x").message,
        "HEALTHCHECK NONE takes no arguments"
    );
    assert_eq!(
        err("HEALTHCHECK CMD").message,
        "missing command after HEALTHCHECK CMD"
    );
    assert_eq!(
        err("HEALTHCHECK CMD []").message,
        "missing command after HEALTHCHECK CMD"
    );
    assert_eq!(
        err("HEALTHCHECK CONNECT TCP 7000").message,
        "unknown type \"CONNECT\" in HEALTHCHECK (try CMD)"
    );
    assert_eq!(
        err("HEALTHCHECK --interval=50ns CMD x").message,
        "interval \"interval\" cannot be less than 1ms"
    );
    assert_eq!(
        err("HEALTHCHECK --timeout=-1s CMD x").message,
        "interval \"timeout\" cannot be less than 1ms"
    );
    assert_eq!(
        err("HEALTHCHECK --interval=5 CMD x").message,
        "time: missing unit in duration \"5\""
    );
    assert_eq!(
        err("HEALTHCHECK --interval=5d CMD x").message,
        "time: unknown unit \"d\" in duration \"5d\""
    );
    assert_eq!(
        err("HEALTHCHECK --start-period=abc CMD x").message,
        "time: invalid duration \"abc\""
    );
    assert_eq!(
        err("HEALTHCHECK --retries=-1 CMD x").message,
        "--retries cannot be negative (-1)"
    );
    assert_eq!(
        err("HEALTHCHECK --retries=three CMD x").message,
        "strconv.ParseInt: parsing \"three\": invalid syntax"
    );
    assert_eq!(
        err("HEALTHCHECK --retries=3000000000 CMD x").message,
        "strconv.ParseInt: parsing \"3000000000\": value out of range"
    );
    let e = err("HEALTHCHECK --intervl=5s CMD x");
    assert_eq!(e.message, "unknown flag: --intervl");
    assert!(e
        .hint
        .as_deref()
        .unwrap_or_default()
        .starts_with("did you mean --interval?"));
    assert_eq!(
        ok("HEALTHCHECK --interval=1ms CMD x"),
        Instruction::Healthcheck(HealthcheckSpec::Cmd {
            test: strs(&["CMD-SHELL", "x"]),
            interval: 1_000_000,
            timeout: 0,
            start_period: 0,
            start_interval: 0,
            retries: 0,
        })
    );
}

#[test]
fn unknown_instructions() {
    let e = err("FORM alpine");
    assert_eq!(e.message, "unknown instruction: FORM");
    assert_eq!(e.hint.as_deref(), Some("did you mean FROM?"));
    let e = err("cpy a b");
    assert_eq!(e.message, "unknown instruction: cpy");
    assert_eq!(e.hint.as_deref(), Some("did you mean copy?"));
    let e = err("Wrkdir /a");
    assert_eq!(e.hint.as_deref(), Some("did you mean workdir?"));
    let e = err("FROBNICATE x");
    assert_eq!(e.message, "unknown instruction: FROBNICATE");
    assert_eq!(e.hint, None);
}

#[test]
fn parse_all_locations_and_stages() {
    let ast =
        parse("ARG V=1\nFROM a:$V AS base\n  RUN x \\\n   y\nCOPY --from=base a b\n").unwrap();
    let all = parse_all(&ast).unwrap();
    let names: Vec<&str> = all.iter().map(|l| l.keyword()).collect();
    assert_eq!(names, ["ARG", "FROM", "RUN", "COPY"]);
    let run = &all[2];
    assert_eq!((run.line, run.col, run.len, run.end_line), (3, 3, 3, 4));
    let loc = run.location();
    assert_eq!((loc.line, loc.col, loc.len), (3, 3, 3));
    assert_eq!(run.original, "RUN x    y");

    let ast = parse("FROM a\nRUN ok\nRUN --bad x\n").unwrap();
    let e = parse_all(&ast).unwrap_err();
    assert_eq!(e.message, "unknown flag: --bad");
    assert_eq!(e.location.map(|l| (l.line, l.col)), Some((3, 1)));

    let ast = parse("RUN x\nFROM a\n").unwrap();
    let e = parse_all(&ast).unwrap_err();
    assert_eq!(e.message, "no build stage in current context");
    assert_eq!(e.location.map(|l| l.line), Some(1));

    let ast = parse("FROM a\n    FOO bar\n").unwrap();
    let e = parse_all(&ast).unwrap_err();
    assert_eq!(e.message, "unknown instruction: FOO");
    assert_eq!(e.location.map(|l| (l.line, l.col, l.len)), Some((2, 5, 3)));
}

fn no_expand(v: &str) -> Result<String> {
    Ok(v.to_string())
}

fn mount(raw: &str) -> Result<Mount> {
    parse_mount(raw, &mut no_expand)
}

#[test]
fn mounts() {
    let m = mount("target=/src").unwrap();
    assert_eq!(
        (m.kind, m.readonly, m.target.as_str(), m.id.as_deref()),
        (MountType::Bind, true, "/src", None)
    );
    let m = mount("type=bind,source=a,target=/b,rw").unwrap();
    assert_eq!((m.source.as_deref(), m.readonly), (Some("a"), false));
    let m = mount("type=bind,src=a,dst=/b,readwrite=true,from=stage").unwrap();
    assert_eq!(
        (
            m.source.as_deref(),
            m.target.as_str(),
            m.readonly,
            m.from.as_deref()
        ),
        (Some("a"), "/b", false, Some("stage"))
    );
    let m =
        mount("type=CACHE,destination=/c,id=x,sharing=Locked,mode=0700,uid=1000,gid=1000").unwrap();
    assert_eq!(m.kind, MountType::Cache);
    assert!(!m.readonly);
    assert_eq!(
        (m.id.as_deref(), m.sharing.as_deref()),
        (Some("x"), Some("locked"))
    );
    assert_eq!(
        (m.mode, m.uid, m.gid),
        (Some(0o700), Some(1000), Some(1000))
    );
    // A cache id defaults to the cleaned target.
    let m = mount("type=cache,target=/root/.cache/").unwrap();
    assert_eq!(
        (m.id.as_deref(), m.from, m.sharing),
        (Some("/root/.cache"), None, None)
    );
    let m = mount("type=tmpfs,target=/t,size=64m").unwrap();
    assert_eq!((m.readonly, m.size), (false, Some(64 << 20)));
    assert_eq!(mount("type=tmpfs,target=/t").unwrap().size, None);
    let m = mount("type=cache,target=/c,ro").unwrap();
    assert!(m.readonly);
    let m = mount("type=bind,target=/c,readonly=false").unwrap();
    assert!(!m.readonly);
    let m = mount("\"type=secret\",\"id=a,b\",required").unwrap();
    assert_eq!(
        (m.kind, m.id.as_deref(), m.required),
        (MountType::Secret, Some("a,b"), true)
    );

    // Secret defaults: id from source, id or the target's base name; the
    // target defaults to /run/secrets/<id> unless the secret goes to an
    // environment variable.
    let m = mount("type=secret,id=aws").unwrap();
    assert_eq!(
        (m.id.as_deref(), m.target.as_str(), m.readonly),
        (Some("aws"), "/run/secrets/aws", true)
    );
    let m = mount("type=secret,source=npmrc").unwrap();
    assert_eq!(
        (m.id.as_deref(), m.target.as_str(), m.source),
        (Some("npmrc"), "/run/secrets/npmrc", None)
    );
    let m = mount("type=secret,target=/etc/key.pem").unwrap();
    assert_eq!(
        (m.id.as_deref(), m.target.as_str()),
        (Some("key.pem"), "/etc/key.pem")
    );
    let m = mount("type=secret,id=tok,env=TOKEN,required=true").unwrap();
    assert_eq!(
        (m.env.as_deref(), m.target.as_str(), m.required),
        (Some("TOKEN"), "", true)
    );
    let m = mount("type=secret,id=tok,env=TOKEN,target=/t").unwrap();
    assert_eq!(m.target, "/t");
    // SSH defaults.
    let m = mount("type=ssh").unwrap();
    assert_eq!(
        (m.id.as_deref(), m.readonly, m.target.as_str()),
        (Some("default"), true, "")
    );
    let m = mount("type=ssh,id=gh,target=/agent.sock,mode=0600,uid=1").unwrap();
    assert_eq!(
        (m.id.as_deref(), m.target.as_str(), m.mode, m.uid),
        (Some("gh"), "/agent.sock", Some(0o600), Some(1))
    );
}

#[test]
fn mount_errors() {
    let cases: &[(&str, &str)] = &[
        ("", "failed to parse csv mounts: EOF"),
        ("\"target=/a", "failed to parse csv mounts: parse error on line 1, column 2: extraneous or missing \" in quoted-field"),
        ("\"a\"b", "failed to parse csv mounts: parse error on line 1, column 3: extraneous or missing \" in quoted-field"),
        ("target=\"/a", "failed to parse csv mounts: parse error on line 1, column 8: bare \" in non-quoted-field"),
        ("type=volume", "unsupported mount type \"volume\""),
        ("type=bind,required", "unexpected key 'required' for mount type 'bind'"),
        ("type=cache,required=true", "unexpected key 'required' for mount type 'cache'"),
        ("type=bind,size=1m", "unexpected key 'size' for mount type 'bind'"),
        ("type=tmpfs,size=lots", "invalid value for size: lots"),
        ("type=bind,ro=maybe", "invalid value for ro: maybe"),
        ("type=bind,rw=2", "invalid value for rw: 2"),
        ("type=secret,id=a,required=nah", "invalid value for required: nah"),
        ("type=cache,sharing=exclusive", "unsupported sharing value \"exclusive\""),
        ("type=cache,mode=888", "invalid value 888 for mode"),
        ("type=cache,uid=-1", "invalid value -1 for uid"),
        ("type=cache,gid=4294967296", "invalid value 4294967296 for gid"),
        ("type=bind,mode=0755", "mode not allowed for \"bind\" type mounts"),
        ("type=tmpfs,uid=0", "uid not allowed for \"tmpfs\" type mounts"),
        ("type=bind,gid=0", "gid not allowed for \"bind\" type mounts"),
        ("type=secret,id=a,from=x", "secret mount should not have a from"),
        ("type=secret,id=a,sharing=shared", "secret mount should not define sharing"),
        ("type=secret", "invalid secret mount. one of source, target required"),
        ("type=secret,source=a,id=b", "both source and id can't be set"),
        ("type=bind,sharing=private", "invalid cache sharing set for bind mount"),
        ("type=bind,target", "invalid field 'target' must be a key=value pair"),
        ("type=bind,tagret=/x", "unexpected key 'tagret' in 'tagret=/x'"),
        ("type=ssh,source=x", "ssh does not support source"),
    ];
    for (raw, want) in cases {
        match mount(raw) {
            Ok(m) => panic!("{raw:?}: expected an error, got {m:?}"),
            Err(e) => assert_eq!(&e.message, want, "{raw:?}"),
        }
    }
    assert_eq!(
        mount("type=bnd").unwrap_err().hint.as_deref(),
        Some("did you mean bind?")
    );
    assert_eq!(
        mount("type=cache,sharing=lockd")
            .unwrap_err()
            .hint
            .as_deref(),
        Some("did you mean locked?")
    );
    assert_eq!(
        mount("type=bind,tagret=/x").unwrap_err().hint.as_deref(),
        Some("did you mean target?")
    );
}

#[test]
fn mount_values_are_expanded() {
    let mut seen = Vec::new();
    let mut expand = |v: &str| -> Result<String> {
        seen.push(v.to_string());
        Ok(v.replace("$T", "/cache").replace("$K", "cache"))
    };
    let m = parse_mount("type=$K,target=$T,ro", &mut expand).unwrap();
    assert_eq!(
        (m.kind, m.target.as_str(), m.readonly),
        (MountType::Cache, "/cache", true)
    );
    assert_eq!(seen, ["$K", "$T"]);
    let mut failing = |_: &str| -> Result<String> { Err(Error::new("bad variable")) };
    assert_eq!(
        parse_mount("target=$X", &mut failing).unwrap_err().message,
        "bad variable"
    );
}

#[test]
fn devices() {
    assert_eq!(parse_device("/dev/fuse").unwrap().name, "/dev/fuse");
    let d = parse_device("name=vendor.com/gpu=all,required=true").unwrap();
    assert_eq!((d.name.as_str(), d.required), ("vendor.com/gpu=all", true));
    let d = parse_device("vendor.com/gpu=all,required").unwrap();
    assert_eq!((d.name.as_str(), d.required), ("vendor.com/gpu=all", true));
    assert_eq!(
        parse_device("a,name=b").unwrap_err().message,
        "device name already set to a"
    );
    assert_eq!(
        parse_device("a,required=x").unwrap_err().message,
        "invalid value for required: x"
    );
    assert_eq!(
        parse_device("a,b=c").unwrap_err().message,
        "unexpected key 'b' in 'b=c'"
    );
}

#[test]
fn buildkit_error_cases() {
    let ast = parse("COPY\t\n\t\tquux \\\n      bar").unwrap();
    let e = parse_instruction(&ast.children[0]).unwrap_err();
    assert!(e
        .message
        .starts_with("COPY requires at least two arguments"));
    for cmd in ["ADD", "COPY"] {
        assert!(err(&format!("{cmd} arg1"))
            .message
            .starts_with(&format!("{cmd} requires at least two arguments")));
    }
    assert_eq!(err("foo bar").message, "unknown instruction: foo");
}

#[test]
fn serializes() {
    let ast = parse("FROM a AS b\nRUN --mount=type=cache,target=/c make\n").unwrap();
    let all = parse_all(&ast).unwrap();
    let json = serde_json::to_string(&all).unwrap();
    assert!(json.contains("\"alias\":\"b\""), "{json}");
    assert!(serde_json::to_string(&ast)
        .unwrap()
        .contains("\"keyword\":\"run\""));
}

mod robustness {
    use super::*;
    use engine_dockerfile::parser::dump;
    use proptest::prelude::*;
    use std::time::Instant;

    fn everything(src: &str) {
        if let Ok(ast) = parse(src) {
            let _ = dump(&ast);
            let _ = parse_all(&ast);
            for node in &ast.children {
                let _ = parse_instruction(node);
                for flag in &node.flags {
                    if let Some(v) = flag.strip_prefix("--mount=") {
                        let _ = parse_mount(v, &mut no_expand);
                    }
                }
            }
        }
    }

    const TOKENS: &[&str] = &[
        "FROM",
        "RUN",
        "COPY",
        "ADD",
        "ONBUILD",
        "HEALTHCHECK",
        "ENV",
        "LABEL",
        "ARG",
        "SHELL",
        "CMD",
        "EXPOSE",
        "STOPSIGNAL",
        "VOLUME",
        "USER",
        "WORKDIR",
        "MAINTAINER",
        "ENTRYPOINT",
        "NONE",
        "CMD",
        "AS",
        " ",
        "  ",
        "\t",
        "\n",
        "\r\n",
        "\\",
        "`",
        "\\\n",
        "#",
        "# escape=`\n",
        "# syntax=x\n",
        "<<",
        "<<-",
        "EOF",
        "'",
        "\"",
        "$",
        "${",
        "}",
        ":-",
        "/",
        "[",
        "]",
        ",",
        "=",
        "--",
        "--mount=",
        "--link",
        "--from=",
        "--interval=",
        "type=cache",
        "target=/x",
        "1e999",
        "é",
        "\u{85}",
        "\u{a0}",
        "\u{2028}",
        "\u{feff}",
        "\u{130}",
        "\u{0}",
        "堀",
        "Å",
        "😀",
        "\u{7f}",
        "\\u0041",
        "null",
        "1",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

        #[test]
        fn token_soup_never_panics(parts in proptest::collection::vec(proptest::sample::select(TOKENS), 0..60)) {
            everything(&parts.concat());
        }

        #[test]
        fn arbitrary_text_never_panics(src in "\\PC{0,200}") {
            everything(&src);
        }

        #[test]
        fn arbitrary_mounts_never_panic(raw in "[a-z=,\"/ $0-9.]{0,60}") {
            let _ = parse_mount(&raw, &mut no_expand);
            let _ = parse_device(&raw);
        }
    }

    #[test]
    fn hostile_inputs_finish_quickly() {
        let start = Instant::now();
        let cases = [
            "ONBUILD ".repeat(8000) + "RUN x",
            format!(
                "FROM a\nRUN <<{}EOF{}\n",
                "${a:-".repeat(5000),
                "}".repeat(5000)
            ),
            format!("FROM a\nRUN {}{}", "[".repeat(20_000), "]".repeat(20_000)),
            format!("FROM a\nRUN [{}]", "\"a\",".repeat(10_000) + "\"b\""),
            format!("FROM a\nRUN {}x", "--a ".repeat(10_000)),
            format!("FROM a\n{}", "RUN x \\\n".repeat(20_000)),
            format!("FROM a\n{}", "RUN <<E\n".repeat(5_000)),
            format!("{}FROM a\n", "# x\n".repeat(100_000)),
            format!("FROM a\nENV {}", "a=b ".repeat(10_000)),
            format!("FROM a\n{} x", "X".repeat(60_000)),
            format!("FROM a\nCOPY --{} a b", "l".repeat(60_000)),
            format!("FROM a\nRUN --mount={} x", "type=bnd,".repeat(5_000)),
            "\\\n".repeat(30_000),
            "# escape=`\n".to_string() + &"`\n".repeat(30_000),
        ];
        for src in &cases {
            everything(src);
        }
        assert!(start.elapsed().as_secs() < 30, "took {:?}", start.elapsed());
    }

    #[test]
    fn deep_onbuild_is_an_error_not_a_crash() {
        let src = "FROM a\n".to_string() + &"ONBUILD ".repeat(1000) + "RUN x";
        assert!(parse(&src).is_err());
        let ok = "FROM a\n".to_string() + &"ONBUILD ".repeat(10) + "RUN x";
        assert_eq!(
            parse_all(&parse(&ok).unwrap()).unwrap_err().message,
            "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
        );
    }
}
