//! Differential tests against BuildKit: every case of `differential/` is
//! built by the engine and by docker 20.10's built-in BuildKit from the same
//! base image (busybox-static, built by the engine and `docker load`ed),
//! and the two images must agree: the flattened filesystem (path, type,
//! mode, owner, content, link target, hardlinks; not mtimes) and the
//! runtime config (see `engine_tests::config`).
//!
//! Needs root, `/bin/busybox` and a running dockerd (`scripts/setup-host`).
//!
//! - `ENGINE_DIFF_CASE=a,b`: run only these cases.
//! - `ENGINE_DIFF_JOBS=N`: cases built in parallel (default 2).
//! - `ENGINE_BIN=PATH`: use this engine binary instead of building one.
//!
//! The work directory of a failing case (contexts, both images, both
//! flattened trees) is kept under `target/tmp/differential/` and printed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use engine_tests::busybox;
use engine_tests::case::{self, Case, Env, Outcome};
use engine_tests::docker;

/// Cases whose expected result is a documented difference: docker 20.10's
/// BuildKit (0.8, Dockerfile frontend 1.2) behaves differently from the
/// current Dockerfile reference, which the engine follows. Each entry
/// lists exactly the differences that must appear (no more, no fewer); the
/// case's README explains them.
const DOCUMENTED: &[(&str, &[&str])] = &[
    (
        "arg-same-instruction",
        &[
            concat!(
                "fs /args.out: content",
                " engine=14 bytes sha256=b1595e5f6aa23a6380b8e8acc6b0a73a50c917061d7ccd9b2e6d8affd6a92bc4",
                " buildkit=13 bytes sha256=e073b6d3d6343cb736c288d20883d17f9bf44b7696b5a3837224455ec4d144b3"
            ),
            concat!(
                "config.Env:",
                r#" engine=["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","E1=1","E2=1-y"]"#,
                r#" buildkit=["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","E1=1","E2=-y"]"#
            ),
        ],
    ),
    (
        "copy-chmod-special-bits",
        &[
            "fs /c/sgid: mode engine=2755 buildkit=0755",
            "fs /c/sticky/x: mode engine=1777 buildkit=0777",
            "fs /c/suid: mode engine=4755 buildkit=0755",
        ],
    ),
    (
        "dockerignore-exception-missing",
        &["fs /ctx/folder2: only in buildkit (dir 0755 0:0)"],
    ),
    (
        "dockerignore-wildcard-exception",
        &[
            "fs /ctx/docs/sub: only in engine (dir 0750 0:0)",
            "fs /ctx/docs/sub/c.md: only in engine (file 0644 0:0 sha256=3aab0901fc89)",
            "fs /ctx/docs/sub/deeper: only in engine (dir 0755 0:0)",
            "fs /ctx/docs/sub/deeper/e.md: only in engine (file 0644 0:0 sha256=de3d177bba00)",
        ],
    ),
    (
        "run-mount-stubs",
        &[
            "fs /dev: only in buildkit (dir 0755 0:0)",
            "fs /etc: only in buildkit (dir 0755 0:0)",
            "fs /proc: only in buildkit (dir 0755 0:0)",
            "fs /sys: only in buildkit (dir 0755 0:0)",
        ],
    ),
];

fn expected_for(name: &str) -> &'static [&'static str] {
    DOCUMENTED
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(&[], |(_, d)| d)
}

fn selected(all: Vec<Case>) -> Vec<Case> {
    let Ok(filter) = std::env::var("ENGINE_DIFF_CASE") else {
        return all;
    };
    let wanted: Vec<&str> = filter
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if wanted.is_empty() {
        return all;
    }
    for w in &wanted {
        assert!(
            all.iter().any(|c| c.name == *w),
            "ENGINE_DIFF_CASE names unknown case `{w}`"
        );
    }
    all.into_iter()
        .filter(|c| wanted.contains(&c.name.as_str()))
        .collect()
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("differential")
}

#[test]
fn corpus_is_well_formed() {
    let cases = case::load_all(&corpus_dir()).expect("corpus loads");
    assert!(
        cases.len() >= 30,
        "the corpus has {} cases, expected 30+",
        cases.len()
    );
    for (name, diffs) in DOCUMENTED {
        let c = cases
            .iter()
            .find(|c| c.name == *name)
            .unwrap_or_else(|| panic!("documented case `{name}` is not in the corpus"));
        assert!(
            c.readme.is_some(),
            "documented case `{name}` needs a README explaining why"
        );
        assert!(
            !diffs.is_empty(),
            "documented case `{name}` lists no difference"
        );
    }
}

#[test]
fn engine_matches_buildkit() {
    let suite_start = Instant::now();
    let cases = selected(case::load_all(&corpus_dir()).expect("corpus loads"));
    let docker_version = docker::ensure_available().unwrap_or_else(|e| panic!("{e}"));
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("differential");
    std::fs::create_dir_all(&root).expect("create target/tmp/differential");
    let run_dir = tempfile::Builder::new()
        .prefix("run-")
        .tempdir_in(&root)
        .expect("create a run directory");
    let cache_dir = run_dir.path().join("cache");
    let base = busybox::base_image(&run_dir.path().join("base"), &cache_dir)
        .unwrap_or_else(|e| panic!("{e}"));
    let base_time = suite_start.elapsed();
    eprintln!(
        "differential: docker {docker_version}, base image ready in {:.1}s",
        base_time.as_secs_f64()
    );

    let env = Env {
        base,
        cache_dir,
        tag_suffix: format!("p{}", std::process::id()),
    };
    let work_root = run_dir.path().join("cases");
    let jobs: usize = std::env::var("ENGINE_DIFF_JOBS")
        .ok()
        .and_then(|j| j.parse().ok())
        .unwrap_or(2)
        .max(1);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(Outcome, Result<(), String>)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.min(cases.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(c) = cases.get(i) else { break };
                let outcome = case::run(c, &env, &work_root);
                let verdict = outcome.check(expected_for(&c.name));
                let status = match (&verdict, expected_for(&c.name).is_empty()) {
                    (Ok(()), true) => "ok".to_string(),
                    (Ok(()), false) => "ok (documented difference)".to_string(),
                    (Err(_), _) => format!("FAILED, kept in {}", outcome.work.display()),
                };
                if verdict.is_ok() {
                    let _ = std::fs::remove_dir_all(&outcome.work);
                }
                eprintln!(
                    "differential: {:<32} {status} (engine {:.1}s, buildkit {:.1}s, total {:.1}s)",
                    c.name,
                    outcome.engine_time.as_secs_f64(),
                    outcome.buildkit_time.as_secs_f64(),
                    outcome.total_time.as_secs_f64(),
                );
                results
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((outcome, verdict));
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    results.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    let failures: Vec<&String> = results
        .iter()
        .filter_map(|(_, v)| v.as_ref().err())
        .collect();
    let passed = results.len() - failures.len();
    eprintln!(
        "differential: {passed}/{} cases passed ({} documented differences) in {:.1}s (base image {:.1}s)",
        results.len(),
        results
            .iter()
            .filter(|(o, v)| v.is_ok() && !expected_for(&o.name).is_empty())
            .count(),
        suite_start.elapsed().as_secs_f64(),
        base_time.as_secs_f64(),
    );
    if failures.is_empty() {
        drop(run_dir);
        return;
    }
    // Keep the failing cases' files and the base image, not the engine's cache.
    let _ = std::fs::remove_dir_all(run_dir.path().join("cache"));
    let kept = run_dir.keep();
    let names: Vec<&str> = results
        .iter()
        .filter(|(_, v)| v.is_err())
        .map(|(o, _)| o.name.as_str())
        .collect();
    panic!(
        "{} of {} differential cases failed: {}\n(work files kept in {})\n\n{}",
        failures.len(),
        results.len(),
        names.join(", "),
        kept.display(),
        failures
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}
