//! Real builds through the binary, checked by real clients: docker load and
//! run, skopeo, umoci. Needs root, dockerd and the tools that
//! scripts/setup-host installs.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

const DOCKERFILE: &str = r#"
FROM busybox AS build
ARG GREETING=hello
WORKDIR /src
COPY greet.sh .
RUN chmod 755 greet.sh && ./greet.sh "$GREETING" > /out.txt

FROM busybox
COPY --from=build /out.txt /srv/out.txt
RUN ln /srv/out.txt /srv/hard.txt && ln -s out.txt /srv/soft.txt && rm /bin/vi
USER app
CMD ["cat", "/srv/out.txt"]
"#;

fn context() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("Dockerfile"), DOCKERFILE).unwrap();
    std::fs::write(
        t.path().join("greet.sh"),
        "#!/bin/sh\necho \"$1 from engine\"\n",
    )
    .unwrap();
    t
}

fn build(ctx: &Path, cache: &Path, outputs: &[String], extra: &[&str]) -> std::process::Output {
    let mut c = engine();
    c.args(["build", "--progress", "plain", "--cache-dir"])
        .arg(cache);
    c.args(["--build-context", &busybox_context_flag()]);
    for o in outputs {
        c.args(["-o", o]);
    }
    c.args(extra).arg(ctx);
    run_ok(&mut c)
}

#[test]
fn docker_loads_and_runs_the_image() {
    require_tool("/usr/bin/docker");
    let ctx = context();
    let cache = tempfile::tempdir().unwrap();
    let out = ctx.path().join("img.tar");
    build(
        ctx.path(),
        cache.path(),
        &[format!(
            "type=docker,dest={},name=engine-e2e:latest",
            out.display()
        )],
        &[],
    );
    run_ok(
        Command::new("/usr/bin/docker")
            .args(["load", "-i"])
            .arg(&out),
    );
    let run = run_ok(Command::new("/usr/bin/docker").args(["run", "--rm", "engine-e2e:latest"]));
    assert_eq!(String::from_utf8_lossy(&run.stdout), "hello from engine\n");
    let who = run_ok(Command::new("/usr/bin/docker").args([
        "run",
        "--rm",
        "engine-e2e:latest",
        "id",
        "-u",
    ]));
    assert_eq!(String::from_utf8_lossy(&who.stdout).trim(), "1000");
    let links = run_ok(Command::new("/usr/bin/docker").args([
        "run",
        "--rm",
        "engine-e2e:latest",
        "sh",
        "-c",
        "stat -c %h /srv/out.txt; readlink /srv/soft.txt; test -e /bin/vi || echo no-vi",
    ]));
    assert_eq!(
        String::from_utf8_lossy(&links.stdout),
        "2\nout.txt\nno-vi\n"
    );
}

#[test]
fn skopeo_and_umoci_read_both_oci_forms() {
    require_tool("/usr/bin/skopeo");
    require_tool("/usr/bin/umoci");
    let ctx = context();
    let cache = tempfile::tempdir().unwrap();
    let dir = ctx.path().join("oci-dir");
    let tar = ctx.path().join("oci.tar");
    build(
        ctx.path(),
        cache.path(),
        &[
            format!("type=oci,dest={},tar=false,name=e2e:v1", dir.display()),
            format!("type=oci,dest={},name=e2e:v1", tar.display()),
        ],
        &[],
    );
    for target in [
        format!("oci:{}:v1", dir.display()),
        format!("oci-archive:{}:v1", tar.display()),
    ] {
        let out = run_ok(Command::new("/usr/bin/skopeo").args(["inspect", "--config", &target]));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            v["config"]["Cmd"],
            serde_json::json!(["cat", "/srv/out.txt"]),
            "{target}"
        );
        assert_eq!(v["config"]["User"], "app");
    }
    let bundle = ctx.path().join("bundle");
    run_ok(
        Command::new("/usr/bin/umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:v1", dir.display()))
            .arg(&bundle),
    );
    assert_eq!(
        std::fs::read_to_string(bundle.join("rootfs/srv/out.txt")).unwrap(),
        "hello from engine\n"
    );
    assert!(
        !bundle.join("rootfs/bin/vi").exists(),
        "the RUN's whiteout removed /bin/vi"
    );
}

#[test]
fn rebuild_is_cached_and_reproducible() {
    let ctx = context();
    let cache = tempfile::tempdir().unwrap();
    let o = |n: &str| format!("type=oci,dest={},tar=false", ctx.path().join(n).display());
    std::env::set_var("SOURCE_DATE_EPOCH", "1700000000");
    let first = build(ctx.path(), cache.path(), &[o("a")], &[]);
    let second = build(ctx.path(), cache.path(), &[o("b")], &[]);
    let text = String::from_utf8_lossy(&second.stderr);
    assert!(
        text.contains(" 0 executed"),
        "no-op rebuild executes nothing:\n{text}"
    );
    assert_eq!(image_digest(&first.stderr), image_digest(&second.stderr));
    // A fresh cache elsewhere gives the same image: nothing depends on paths.
    let other_cache = tempfile::tempdir().unwrap();
    let moved = tempfile::tempdir().unwrap();
    for f in ["Dockerfile", "greet.sh"] {
        std::fs::copy(ctx.path().join(f), moved.path().join(f)).unwrap();
    }
    let third = build(moved.path(), other_cache.path(), &[o("c")], &[]);
    assert_eq!(image_digest(&first.stderr), image_digest(&third.stderr));
    // A build arg is an input: it changes the image.
    let fourth = build(
        ctx.path(),
        cache.path(),
        &[o("d")],
        &["--build-arg", "GREETING=hi"],
    );
    assert_ne!(image_digest(&first.stderr), image_digest(&fourth.stderr));
}

#[test]
fn proxy_build_args_reach_run_but_not_the_cache_key() {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nRUN echo \"proxy=$HTTP_PROXY\" > /proxy.txt\n",
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let out = |n: &str| format!("type=local,dest={}", ctx.path().join(n).display());
    build(
        ctx.path(),
        cache.path(),
        &[out("a")],
        &["--build-arg", "HTTP_PROXY=http://proxy-a:3128"],
    );
    assert_eq!(
        std::fs::read_to_string(ctx.path().join("a/proxy.txt")).unwrap(),
        "proxy=http://proxy-a:3128\n"
    );
    // Another proxy is the same step to the cache, as in BuildKit.
    let second = build(
        ctx.path(),
        cache.path(),
        &[out("b")],
        &["--build-arg", "HTTP_PROXY=http://proxy-b:3128"],
    );
    let text = String::from_utf8_lossy(&second.stderr);
    assert!(text.contains(" 0 executed"), "{text}");
    assert_eq!(
        std::fs::read_to_string(ctx.path().join("b/proxy.txt")).unwrap(),
        "proxy=http://proxy-a:3128\n"
    );
}

#[test]
fn runc_and_crun_run_the_same_steps() {
    for rt in ["runc", "crun"] {
        require_tool(&format!("/usr/bin/{rt}"));
        let ctx = context();
        let cache = tempfile::tempdir().unwrap();
        let dest = ctx.path().join("rootfs");
        build(
            ctx.path(),
            cache.path(),
            &[format!("type=local,dest={}", dest.display())],
            &["--runtime", rt],
        );
        assert_eq!(
            std::fs::read_to_string(dest.join("srv/out.txt")).unwrap(),
            "hello from engine\n",
            "{rt}"
        );
    }
}

#[test]
fn a_failing_run_reports_step_line_and_output() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(
        t.path().join("Dockerfile"),
        "FROM busybox\nRUN echo before-failing && exit 7\n",
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let out = engine()
        .args(["build", "--progress", "plain", "--cache-dir"])
        .arg(cache.path())
        .args(["--build-context", &busybox_context_flag()])
        .arg(t.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("Dockerfile:2:1"), "{err}");
    assert!(err.contains("exit code: 7"), "{err}");
    assert!(err.contains("before-failing"), "{err}");
}

#[test]
fn rootfs_tar_output_lists_the_files() {
    let ctx = context();
    let cache = tempfile::tempdir().unwrap();
    let tar = ctx.path().join("rootfs.tar");
    build(
        ctx.path(),
        cache.path(),
        &[format!("type=tar,dest={}", tar.display())],
        &[],
    );
    let mut ar = tar::Archive::new(std::fs::File::open(&tar).unwrap());
    let names: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n == "srv/out.txt"), "{names:?}");
    assert!(
        !names.iter().any(|n| n.contains(".wh.")),
        "a rootfs has no whiteouts"
    );
}

#[test]
fn copy_snapshotter_builds_the_same_image_as_overlay() {
    // The fallback for kernels without overlayfs must not change a byte.
    let ctx = context();
    let mut digests = Vec::new();
    for mode in ["overlay", "copy"] {
        let cache = tempfile::tempdir().unwrap();
        let out = engine()
            .env("ENGINE_SNAPSHOTTER", mode)
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args(["build", "--progress", "quiet", "--cache-dir"])
            .arg(cache.path())
            .args(["--build-context", &busybox_context_flag()])
            .arg("-o")
            .arg(format!(
                "type=oci,dest={},tar=false",
                ctx.path().join(mode).display()
            ))
            .arg(ctx.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        digests.push(image_digest(&out.stderr));
    }
    assert_eq!(digests[0], digests[1]);
}

/// `RUN --mount=type=secret,id=…,env=VAR` with no `target` exposes the secret
/// as a variable only: nothing is mounted (BuildKit), in the root or under
/// a WORKDIR alike (this failed with "mount target /src is a directory").
#[test]
fn an_env_only_secret_mounts_nothing() {
    for workdir in ["", "WORKDIR /src\n"] {
        let ctx = tempfile::tempdir().unwrap();
        std::fs::write(
            ctx.path().join("Dockerfile"),
            format!(
                "FROM busybox\n{workdir}RUN --mount=type=secret,id=token,env=TOKEN \
                 sh -c 'echo \"$TOKEN\" | wc -c > /len; ls /run/secrets > /listing 2>&1; ls -A . > /here'\n"
            ),
        )
        .unwrap();
        let cache = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let o = run_ok(
            engine()
                .env("ENGINE_TEST_TOKEN", "t0ken-value")
                .args(["build", "--progress", "plain", "--cache-dir"])
                .arg(cache.path())
                .args(["--build-context", &busybox_context_flag()])
                .args(["--secret", "id=token,env=ENGINE_TEST_TOKEN"])
                .arg("-o")
                .arg(format!("type=local,dest={}", out.path().display()))
                .arg(ctx.path()),
        );
        let read = |p: &str| std::fs::read_to_string(out.path().join(p)).unwrap_or_default();
        assert_eq!(
            read("len").trim(),
            "12",
            "{:?}: {}",
            workdir,
            String::from_utf8_lossy(&o.stderr)
        );
        // No file was mounted for it anywhere.
        assert!(!read("listing").contains("token"), "{}", read("listing"));
        if !workdir.is_empty() {
            assert_eq!(read("here").trim(), "", "the working directory stays empty");
        }
    }
}

/// A copy of the busybox layout whose config has no `Env` at all (as some
/// minimal images have).
fn busybox_without_env() -> tempfile::TempDir {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().unwrap();
    let src = busybox_layout();
    let copy = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", src.display()))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(copy.success());
    let blob = |d: &str| {
        dir.path()
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let put = |bytes: &[u8]| -> String {
        let d = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
        std::fs::write(blob(&d), bytes).unwrap();
        d
    };
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap();
    let mdigest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(&mdigest)).unwrap()).unwrap();
    let cdigest = manifest["config"]["digest"].as_str().unwrap().to_string();
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(&cdigest)).unwrap()).unwrap();
    config["config"].as_object_mut().unwrap().remove("Env");
    let cbytes = serde_json::to_vec(&config).unwrap();
    manifest["config"]["digest"] = put(&cbytes).into();
    manifest["config"]["size"] = cbytes.len().into();
    let mbytes = serde_json::to_vec(&manifest).unwrap();
    index["manifests"][0]["digest"] = put(&mbytes).into();
    index["manifests"][0]["size"] = mbytes.len().into();
    std::fs::write(
        dir.path().join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    dir
}

/// BuildKit gives an image whose base config has no `PATH` its default
/// `PATH`, first in `Env`, and RUN steps see it. (dockerd 20.10's BuildKit
/// 0.8 does this for `FROM scratch` only; the current reference does it for
/// every base, which is what this follows.)
#[test]
fn a_base_without_path_gets_buildkits_default_path_first() {
    const DEFAULT: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    let base = busybox_without_env();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nENV A=1\nRUN /bin/echo \"$PATH\" > /p\n",
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let layout = out.path().join("layout");
    run_ok(
        engine()
            .args(["build", "--progress", "plain", "--cache-dir"])
            .arg(cache.path())
            .arg("--build-context")
            .arg(format!("busybox=oci-layout://{}", base.path().display()))
            .arg("-o")
            .arg(format!(
                "type=local,dest={}",
                out.path().join("fs").display()
            ))
            .arg("-o")
            .arg(format!("type=oci,dest={},tar=false", layout.display()))
            .arg(ctx.path()),
    );
    assert_eq!(
        std::fs::read_to_string(out.path().join("fs/p"))
            .unwrap()
            .trim(),
        DEFAULT
    );
    let read = |p: std::path::PathBuf| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let blob = |d: &serde_json::Value| {
        layout
            .join("blobs/sha256")
            .join(d.as_str().unwrap().trim_start_matches("sha256:"))
    };
    let index = read(layout.join("index.json"));
    let manifest = read(blob(&index["manifests"][0]["digest"]));
    let config = read(blob(&manifest["config"]["digest"]));
    assert_eq!(
        config["config"]["Env"],
        serde_json::json!([format!("PATH={DEFAULT}"), "A=1"])
    );
}

/// `--iidfile` holds the image ID, which is what Docker calls the image
/// once it is loaded (docker build and buildx write the same).
#[test]
fn iidfile_holds_the_id_docker_gives_the_image() {
    require_tool("/usr/bin/docker");
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nRUN echo iid > /iid\n",
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("img.tar");
    let iid = out.path().join("iid");
    let name = format!("engine-iid-test:{}", std::process::id());
    run_ok(
        engine()
            .args(["build", "--progress", "quiet", "--cache-dir"])
            .arg(cache.path())
            .args(["--build-context", &busybox_context_flag()])
            .arg("-o")
            .arg(format!(
                "type=docker,dest={},name={name}",
                archive.display()
            ))
            .arg("--iidfile")
            .arg(&iid)
            .arg(ctx.path()),
    );
    let id = std::fs::read_to_string(&iid).unwrap();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id:?}");
    run_ok(
        std::process::Command::new("/usr/bin/docker")
            .args(["load", "-i"])
            .arg(&archive),
    );
    let inspect = run_ok(
        std::process::Command::new("/usr/bin/docker")
            .args(["inspect", "--format", "{{.Id}}", &name]),
    );
    let _ = std::process::Command::new("/usr/bin/docker")
        .args(["rmi", "-f", &name])
        .output();
    assert_eq!(String::from_utf8_lossy(&inspect.stdout).trim(), id);

    // Without an output the ID is the one the summary prints.
    let bare = out.path().join("iid2");
    let o = run_ok(
        engine()
            .args(["build", "--progress", "quiet", "--cache-dir"])
            .arg(cache.path())
            .args(["--build-context", &busybox_context_flag()])
            .arg("--iidfile")
            .arg(&bare)
            .arg(ctx.path()),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("image digest: config {id}")), "{err}");
    assert_eq!(std::fs::read_to_string(&bare).unwrap(), id);
}

/// `-o -` is a tar of the filesystem on standard output, and `dest=-` sends
/// an image archive there (buildx), e.g. straight into `docker load`.
#[test]
fn outputs_to_standard_output() {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nRUN echo to-stdout > /marker\n",
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let build = |out: &str| {
        run_ok(
            engine()
                .args(["build", "--progress", "quiet", "--cache-dir"])
                .arg(cache.path())
                .args(["--build-context", &busybox_context_flag()])
                .args(["-o", out])
                .arg(ctx.path()),
        )
    };
    let o = build("-");
    let mut ar = tar::Archive::new(&o.stdout[..]);
    let mut found = false;
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_string_lossy().trim_start_matches("./") == "marker" {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut e, &mut s).unwrap();
            assert_eq!(s, "to-stdout\n");
            found = true;
        }
    }
    assert!(found, "no marker in the tar on stdout");
    // A docker archive on stdout is a docker archive (manifest.json inside).
    let o = build("type=docker,dest=-,name=engine-stdout:1");
    let names: Vec<String> = tar::Archive::new(&o.stdout[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n == "manifest.json"), "{names:?}");
    // A directory cannot go there.
    let bad = engine()
        .args(["build", "--progress", "quiet", "--cache-dir"])
        .arg(cache.path())
        .args(["--build-context", &busybox_context_flag()])
        .args(["-o", "type=local,dest=-"])
        .arg(ctx.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(
        err.contains("cannot be written to standard output"),
        "{err}"
    );
}

/// An invalid image name fails the build before anything runs.
#[test]
fn invalid_tags_fail_before_building() {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), "FROM busybox\nRUN true\n").unwrap();
    let cache = tempfile::tempdir().unwrap();
    for bad in [
        &["-t", "UX/Bad Tag"][..],
        &["-o", "type=docker,dest=x.tar,name=app:bad:tag"][..],
    ] {
        let o = engine()
            .args(["build", "--progress", "plain", "--cache-dir"])
            .arg(cache.path())
            .args(["--build-context", &busybox_context_flag()])
            .args(bad)
            .arg(ctx.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{bad:?}");
        assert!(err.contains("invalid image reference"), "{bad:?}: {err}");
        assert!(!err.contains("RUN true"), "{bad:?}: a step ran: {err}");
    }
}

/// A `--secret` whose file is missing fails before anything runs.
#[test]
fn a_missing_secret_file_fails_before_building() {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), "FROM busybox\nRUN true\n").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let o = engine()
        .args(["build", "--progress", "plain", "--cache-dir"])
        .arg(cache.path())
        .args(["--build-context", &busybox_context_flag()])
        .args(["--secret", "id=tok,src=/no/such/secret-file"])
        .arg(ctx.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("--secret id=tok: cannot read `/no/such/secret-file`"),
        "{err}"
    );
    assert!(!err.contains("RUN true"), "a step ran: {err}");
}

/// `COPY --from=` a name one edit away from a stage, which is no image
/// either, suggests the stage.
#[test]
fn a_misspelt_stage_in_copy_from_is_suggested() {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox AS build\nRUN echo x > /x\nFROM busybox\nCOPY --from=biuld /x /x\n",
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let o = engine()
        .args(["build", "--progress", "plain", "--cache-dir"])
        .arg(cache.path())
        .args(["--build-context", &busybox_context_flag()])
        .arg(ctx.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("did you mean the stage `build`?"), "{err}");
    assert!(err.contains("Dockerfile:4"), "{err}");
}

/// `engine build --help` names every output and cache type there is.
#[test]
fn help_lists_every_output_and_cache_type() {
    let o = run_ok(engine().args(["build", "--help"]));
    let help = String::from_utf8_lossy(&o.stdout);
    for t in [
        "type=docker",
        "type=oci",
        "type=local",
        "type=tar",
        "type=registry,name=",
        "type=registry,ref=",
        "type=local,src=",
        "type=local,dest=",
        "-o -",
        "--allow",
        "--trace",
        "--iidfile",
        "--pids-limit",
    ] {
        assert!(help.contains(t), "`{t}` missing from --help:\n{help}");
    }
}
