//! `--cache-to type=local` / `--cache-from type=local` through the real
//! binary: a build on a fresh cache dir (and a context at another path)
//! re-creates every step from the exported cache without running it, a
//! damaged blob is detected and its step rebuilt, exports merge, and a
//! multi-target TOML build exports every target's records into one layout.
//!
//! RUN steps need root (the built-in sandbox makes namespaces and mounts).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn engine() -> Command {
    let mut c = common::engine();
    c.env_remove("ENGINE_CACHE_DIR")
        .env_remove("ENGINE_CACHE_MAX_SIZE")
        .env("SOURCE_DATE_EPOCH", "1700000000");
    c
}

struct Built {
    ok: bool,
    stderr: String,
    /// (step name, final status)
    steps: Vec<(String, String)>,
    digest: Option<String>,
}

fn parse(out: Output) -> Built {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let steps = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("status").is_some_and(|s| s != "started"))
        .map(|v| {
            (
                v["name"].as_str().unwrap_or_default().to_string(),
                v["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    // --progress json ends with a summary event naming each image's digest.
    let digest = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| {
            let images = v.get("summary")?.get("images")?.as_object()?.clone();
            images.values().next()?.as_str().map(str::to_string)
        });
    Built {
        ok: out.status.success(),
        stderr,
        steps,
        digest,
    }
}

impl Built {
    /// Statuses of the RUN, COPY and WORKDIR steps (not base images).
    fn layer_steps(&self) -> Vec<(String, String)> {
        self.steps
            .iter()
            .filter(|(n, _)| !n.contains("] FROM "))
            .cloned()
            .collect()
    }
}

fn build(ctx: &Path, cache: &Path, extra: &[String]) -> Built {
    let out = engine()
        .args(["build", "--progress", "json", "--cache-dir"])
        .arg(cache)
        .arg("--build-context")
        .arg(common::busybox_context_flag())
        .args(extra)
        .arg(ctx)
        .output()
        .unwrap();
    let b = parse(out);
    assert!(b.ok, "build failed:\n{}", b.stderr);
    b
}

const DOCKERFILE: &str = "FROM busybox\n\
COPY a.txt /a.txt\n\
RUN --mount=type=cache,target=/cache,id=share echo ran >> /cache/log && cat /a.txt > /b.txt\n\
RUN true\n\
WORKDIR /app\n\
RUN echo done > /app/c.txt\n";

fn context(dir: &Path, dockerfile: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    std::fs::write(dir.join("a.txt"), "hello\n").unwrap();
}

fn cache_to(x: &Path) -> Vec<String> {
    vec![
        "--cache-to".into(),
        format!("type=local,dest={}", x.display()),
    ]
}

fn cache_from(x: &Path) -> Vec<String> {
    vec![
        "--cache-from".into(),
        format!("type=local,src={}", x.display()),
    ]
}

/// Files named `log` in a cache dir's cache mounts.
fn mount_logs(cache: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(cache.join("mounts")) else {
        return Vec::new();
    };
    rd.flatten()
        .map(|e| e.path().join("log"))
        .filter(|p| p.exists())
        .collect()
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

fn blob(x: &Path, digest: &str) -> PathBuf {
    x.join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").expect("sha256 digest"))
}

/// Check an exported cache layout: `oci-layout`, `index.json`, the cache
/// manifest and every blob it names (digest and size). Returns the records
/// by key.
fn check_layout(x: &Path) -> BTreeMap<String, Value> {
    let layout: Value =
        serde_json::from_slice(&std::fs::read(x.join("oci-layout")).unwrap()).unwrap();
    assert_eq!(layout["imageLayoutVersion"], "1.0.0");
    let index: Value =
        serde_json::from_slice(&std::fs::read(x.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let check_desc = |d: &Value| -> Vec<u8> {
        let digest = d["digest"].as_str().unwrap();
        let data = std::fs::read(blob(x, digest)).unwrap();
        assert_eq!(data.len() as u64, d["size"].as_u64().unwrap(), "{digest}");
        assert_eq!(format!("sha256:{}", sha256_hex(&data)), digest);
        assert!(d["mediaType"].as_str().is_some_and(|m| !m.is_empty()));
        data
    };
    let manifests = index["manifests"].as_array().unwrap();
    let caches: Vec<&Value> = manifests
        .iter()
        .filter(|m| m["artifactType"] == "application/vnd.engine.cache.v1+json")
        .collect();
    assert_eq!(caches.len(), 1, "one cache manifest: {index}");
    let mdesc = caches[0];
    assert_eq!(
        mdesc["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let manifest: Value = serde_json::from_slice(&check_desc(mdesc)).unwrap();
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        manifest["artifactType"],
        "application/vnd.engine.cache.v1+json"
    );
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.engine.cache.v1+json"
    );
    let doc: Value = serde_json::from_slice(&check_desc(&manifest["config"])).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert!(!layers.is_empty());
    let mut listed = std::collections::BTreeSet::new();
    for l in layers {
        check_desc(l);
        listed.insert(l["digest"].as_str().unwrap().to_string());
    }
    assert_eq!(doc["version"], 1);
    let records: BTreeMap<String, Value> = serde_json::from_value(doc["records"].clone()).unwrap();
    for (k, r) in &records {
        assert_eq!(r["key"].as_str(), Some(k.as_str()));
        assert!(!r["layers"].as_object().unwrap().is_empty(), "{r}");
        for l in r["layers"].as_object().unwrap().values() {
            if l["type"] == "blob" {
                assert!(
                    listed.contains(l["digest"].as_str().unwrap()),
                    "record blob listed in the manifest: {l}"
                );
            } else {
                assert_eq!(l["type"], "empty");
            }
        }
    }
    records
}

#[test]
fn a_fresh_cache_dir_reuses_an_exported_cache() {
    let t = tempfile::tempdir().unwrap();
    let (ctx1, ctx2) = (t.path().join("ctx1"), t.path().join("elsewhere/ctx"));
    context(&ctx1, DOCKERFILE);
    context(&ctx2, DOCKERFILE);
    let (c1, c2, x) = (t.path().join("c1"), t.path().join("c2"), t.path().join("x"));

    let a = build(&ctx1, &c1, &cache_to(&x));
    assert!(
        a.layer_steps().iter().all(|(_, s)| s == "done"),
        "{:?}",
        a.steps
    );
    assert_eq!(mount_logs(&c1).len(), 1, "the RUN ran in C1");
    let records = check_layout(&x);
    assert_eq!(records.len(), 5, "COPY, 3 RUNs, WORKDIR: {records:?}");
    assert!(
        records.values().any(|r| r["layers"]
            .as_object()
            .unwrap()
            .values()
            .any(|l| l["type"] == "empty")),
        "RUN true is recorded as an empty layer"
    );

    let b = build(&ctx2, &c2, &cache_from(&x));
    let steps = b.layer_steps();
    assert_eq!(steps.len(), 5, "{:?}", b.steps);
    assert!(
        steps.iter().all(|(_, s)| s == "cached"),
        "every step cached: {steps:?}\n{}",
        b.stderr
    );
    assert!(mount_logs(&c2).is_empty(), "the RUN did not run in C2");
    assert_eq!(a.digest, b.digest, "same image");

    // A no-op rebuild on C2 (now holding the snapshots) is cached too.
    let b2 = build(&ctx2, &c2, &[]);
    assert!(b2.layer_steps().iter().all(|(_, s)| s == "cached"));
    assert_eq!(a.digest, b2.digest);
}

#[test]
fn a_damaged_blob_is_detected_and_the_step_rebuilt() {
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    context(&ctx, DOCKERFILE);
    let (c1, c3, x) = (t.path().join("c1"), t.path().join("c3"), t.path().join("x"));
    let a = build(&ctx, &c1, &cache_to(&x));
    let records = check_layout(&x);
    let run = records
        .values()
        .find(|r| r["description"].as_str().unwrap().contains("/cache/log"))
        .expect("the RUN's record");
    let digest = run["layers"]
        .as_object()
        .unwrap()
        .values()
        .find_map(|l| l["digest"].as_str())
        .unwrap()
        .to_string();
    // Same size, one byte changed.
    let p = blob(&x, &digest);
    let mut data = std::fs::read(&p).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    let mut perm = std::fs::metadata(&p).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perm.set_readonly(false);
    std::fs::set_permissions(&p, perm).unwrap();
    std::fs::write(&p, &data).unwrap();

    let b = build(&ctx, &c3, &cache_from(&x));
    let steps: BTreeMap<String, String> = b.layer_steps().into_iter().collect();
    for (name, status) in &steps {
        if name.contains("/cache/log") {
            assert_eq!(status, "done", "damaged: rebuilt");
        } else if name.contains("COPY") {
            assert_eq!(status, "cached", "{name}");
        }
    }
    assert_eq!(mount_logs(&c3).len(), 1, "the RUN ran in C3");
    assert_eq!(a.digest, b.digest, "the right image");
}

#[test]
fn exports_merge_and_mode_max_keeps_every_step() {
    let t = tempfile::tempdir().unwrap();
    let (ctx1, ctx2) = (t.path().join("one"), t.path().join("two"));
    context(&ctx1, DOCKERFILE);
    // A multi-stage build whose first stage is not in the final image.
    context(
        &ctx2,
        "FROM busybox AS gen\nRUN echo generated > /g.txt\n\
         FROM busybox\nCOPY --from=gen /g.txt /g.txt\n",
    );
    let (c, x, xmax) = (
        t.path().join("c"),
        t.path().join("x"),
        t.path().join("xmax"),
    );
    build(&ctx1, &c, &cache_to(&x));
    let first = check_layout(&x);
    build(&ctx2, &c, &cache_to(&x));
    let merged = check_layout(&x);
    assert!(
        first.keys().all(|k| merged.contains_key(k)),
        "old records kept"
    );
    // min: only the final image's chain (the COPY), not the `gen` RUN.
    assert_eq!(merged.len(), first.len() + 1, "{:?}", merged.keys());
    assert!(!merged
        .values()
        .any(|r| r["description"].as_str().unwrap().contains("generated")));

    let mut args = vec![
        "--cache-to".to_string(),
        format!("type=local,dest={},mode=max", xmax.display()),
    ];
    build(&ctx2, &c, &args);
    let max = check_layout(&xmax);
    assert_eq!(max.len(), 2, "{max:?}");
    assert!(max
        .values()
        .any(|r| r["description"].as_str().unwrap().contains("generated")));

    // Unsupported cache types are refused clearly.
    args = vec!["--cache-to".into(), "type=s3,bucket=x".into()];
    let out = parse(
        engine()
            .args(["build", "--progress", "json", "--cache-dir"])
            .arg(&c)
            .arg("--build-context")
            .arg(common::busybox_context_flag())
            .args(&args)
            .arg(&ctx2)
            .output()
            .unwrap(),
    );
    assert!(!out.ok);
    assert!(
        out.stderr.contains("unsupported cache type `s3`"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_multi_target_toml_build_exports_every_target() {
    common::require_tool("/bin/busybox");
    let t = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../specs/examples/monorepo");
    let dir = t.path().join("monorepo");
    common::run_ok(Command::new("cp").arg("-r").arg(&src).arg(&dir));
    let _ = std::fs::remove_dir_all(dir.join("out"));
    let _ = std::fs::remove_dir_all(dir.join("base/rootfs"));
    common::run_ok(Command::new("sh").arg(dir.join("prepare.sh")));
    let (c, x, xmax) = (
        t.path().join("c"),
        t.path().join("x"),
        t.path().join("xmax"),
    );
    let out = engine()
        .args([
            "build",
            "--progress",
            "json",
            "--frontend",
            "toml",
            "--cache-dir",
        ])
        .arg(&c)
        .arg("--cache-to")
        .arg(format!("type=local,dest={}", x.display()))
        .arg("--cache-to")
        .arg(format!("type=local,dest={},mode=max", xmax.display()))
        .arg(&dir)
        .output()
        .unwrap();
    let b = parse(out);
    assert!(b.ok, "{}", b.stderr);
    let records = check_layout(&x);
    for target in ["api", "worker", "web", "reports"] {
        assert!(
            records.values().any(|r| r["description"]
                .as_str()
                .unwrap()
                .starts_with(&format!("[{target}"))),
            "records of `{target}`: {:?}",
            records
                .values()
                .map(|r| r["description"].clone())
                .collect::<Vec<_>>()
        );
    }

    let max = check_layout(&xmax);
    assert!(records.keys().all(|k| max.contains_key(k)));

    // And a fresh cache dir builds every target from the mode=max export
    // without running anything (a mode=min export leaves out the stages
    // that only feed COPY --from, which would then run).
    let c2 = t.path().join("c2");
    let out = engine()
        .args([
            "build",
            "--progress",
            "json",
            "--frontend",
            "toml",
            "--cache-dir",
        ])
        .arg(&c2)
        .arg("--cache-from")
        .arg(format!("type=local,src={}", xmax.display()))
        .arg(&dir)
        .output()
        .unwrap();
    let b2 = parse(out);
    assert!(b2.ok, "{}", b2.stderr);
    let ran: Vec<_> = b2
        .layer_steps()
        .into_iter()
        .filter(|(n, s)| s == "done" && n.contains("RUN"))
        .collect();
    assert!(ran.is_empty(), "no RUN executed: {ran:?}");
}

/// A local cache that is not there yet (a CI pipeline's first run) is a
/// warning naming the path, and the build goes on, as with BuildKit.
#[test]
fn a_missing_local_cache_is_a_warning() {
    let t = tempfile::tempdir().unwrap();
    let ctx = t.path().join("ctx");
    context(&ctx, DOCKERFILE);
    let missing = t.path().join("no-cache-here");
    let b = build(
        &ctx,
        &t.path().join("cache"),
        &[
            "--cache-from".into(),
            format!("type=local,src={}", missing.display()),
        ],
    );
    assert!(
        b.stderr.contains(&format!(
            "warning: --cache-from: no cache at `{}`",
            missing.display()
        )),
        "{}",
        b.stderr
    );
}
