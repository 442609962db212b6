//! One differential case: a directory with a `Dockerfile` and context
//! files, built by the engine and by BuildKit (docker 20.10), both results
//! flattened and compared.
//!
//! Files of a case directory with a meaning to the harness (not part of
//! the build context):
//! - `args`: extra build flags, one per line, the same for both builders:
//!   `--build-arg K=V`, `--target STAGE` or `--platform OS/ARCH`; `#`
//!   starts a comment line.
//! - `prepare.sh`: run with `sh -eu` inside a copy of the case directory
//!   before building (to create archives, symlinks, odd modes ... that are
//!   awkward to commit).
//! - `README` / `README.md`: what the case checks, and for cases with a
//!   documented difference, why the difference is expected.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::busybox::BaseImage;
use crate::{config, docker, engine, flatten, process};

/// Files of a case directory that are not copied into the build context.
pub const HARNESS_FILES: &[&str] = &["args", "prepare.sh", "README", "README.md"];

#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub dir: PathBuf,
    /// `(flag, value)` pairs from `args`.
    pub flags: Vec<(String, String)>,
    pub readme: Option<String>,
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Reads one case directory.
pub fn load(dir: &Path) -> Result<Case, String> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !valid_name(&name) {
        return Err(format!("case name `{name}`: use [a-z0-9-] only"));
    }
    if !dir.join("Dockerfile").is_file() {
        return Err(format!("case `{name}` has no Dockerfile"));
    }
    let mut flags = Vec::new();
    if let Ok(text) = fs::read_to_string(dir.join("args")) {
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (flag, value) = line
                .split_once(char::is_whitespace)
                .map(|(f, v)| (f.to_string(), v.trim().to_string()))
                .ok_or_else(|| format!("case `{name}`: args line `{line}` has no value"))?;
            if flag != "--build-arg" && flag != "--target" && flag != "--platform" {
                return Err(format!(
                    "case `{name}`: unsupported flag `{flag}` in args (use --build-arg, --target or --platform)"
                ));
            }
            flags.push((flag, value));
        }
    }
    let readme = ["README", "README.md"]
        .iter()
        .find_map(|f| fs::read_to_string(dir.join(f)).ok());
    Ok(Case {
        name,
        dir: dir.to_path_buf(),
        flags,
        readme,
    })
}

/// All cases below `corpus`, sorted by name.
pub fn load_all(corpus: &Path) -> Result<Vec<Case>, String> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(corpus)
        .map_err(|e| format!("cannot read `{}`: {e}", corpus.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.iter().map(|d| load(d)).collect()
}

/// Copies a tree, keeping symlinks as symlinks and permission bits.
pub fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    let err =
        |what: &str, p: &Path, e: std::io::Error| format!("cannot {what} `{}`: {e}", p.display());
    fs::create_dir_all(to).map_err(|e| err("create", to, e))?;
    for ent in fs::read_dir(from).map_err(|e| err("read", from, e))? {
        let ent = ent.map_err(|e| err("read", from, e))?;
        let (src, dst) = (ent.path(), to.join(ent.file_name()));
        let ft = ent.file_type().map_err(|e| err("stat", &src, e))?;
        if ft.is_symlink() {
            let t = fs::read_link(&src).map_err(|e| err("read link", &src, e))?;
            symlink(&t, &dst).map_err(|e| err("symlink", &dst, e))?;
        } else if ft.is_dir() {
            copy_tree(&src, &dst)?;
            let perm = fs::metadata(&src)
                .map_err(|e| err("stat", &src, e))?
                .permissions();
            fs::set_permissions(&dst, perm).map_err(|e| err("chmod", &dst, e))?;
        } else {
            fs::copy(&src, &dst).map_err(|e| err("copy", &src, e))?;
        }
    }
    Ok(())
}

/// Result of running one case.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub name: String,
    /// Differences (see [`flatten::diff`] and [`config::diff`]); empty
    /// when the images agree.
    pub diffs: Vec<String>,
    /// Context for reading the differences (contents of differing files).
    pub notes: Vec<String>,
    /// A build or harness failure: no comparison was made.
    pub error: Option<String>,
    pub engine_time: Duration,
    pub buildkit_time: Duration,
    pub total_time: Duration,
    /// Where the case's files are (kept when it failed).
    pub work: PathBuf,
}

/// Everything the cases share.
pub struct Env<'a> {
    pub base: &'a BaseImage,
    pub cache_dir: PathBuf,
    /// A per-process suffix for docker tags.
    pub tag_suffix: String,
}

struct Built {
    engine: Result<process::Finished, String>,
    buildkit: Result<process::Finished, String>,
}

fn prepare_context(case: &Case, ctx: &Path) -> Result<(), String> {
    copy_tree(&case.dir, ctx)?;
    for f in HARNESS_FILES {
        if *f == "prepare.sh" {
            continue;
        }
        let _ = fs::remove_file(ctx.join(f));
    }
    let script = ctx.join("prepare.sh");
    if script.is_file() {
        process::run(
            Command::new("sh")
                .arg("-eu")
                .arg("prepare.sh")
                .current_dir(ctx),
            Duration::from_secs(60),
        )
        .map_err(|e| format!("prepare.sh failed:\n{e}"))?;
        fs::remove_file(&script).map_err(|e| format!("cannot remove prepare.sh: {e}"))?;
    }
    Ok(())
}

fn build_both(case: &Case, env: &Env<'_>, ctx: &Path, work: &Path, tag: &str) -> Built {
    let mut eb = engine::Build::new(ctx);
    for (flag, value) in &case.flags {
        match flag.as_str() {
            "--target" => eb.target = Some(value.clone()),
            "--platform" => eb.platform = Some(value.clone()),
            _ => eb.build_args.push(value.clone()),
        }
    }
    eb.build_contexts.push(env.base.build_context());
    eb.outputs.push(format!(
        "type=oci,dest={},tar=false",
        work.join("engine-oci").display()
    ));
    eb.cache_dir = Some(env.cache_dir.clone());
    let docker_args: Vec<String> = case
        .flags
        .iter()
        .flat_map(|(f, v)| [f.clone(), v.clone()])
        .collect();
    std::thread::scope(|s| {
        let bk = s.spawn(|| docker::buildkit_build(tag, &docker_args, ctx));
        let engine = eb.run();
        let buildkit = bk
            .join()
            .unwrap_or_else(|_| Err("BuildKit thread panicked".to_string()));
        Built { engine, buildkit }
    })
}

/// Text of small UTF-8 files whose content differs, for the report.
fn content_notes(diffs: &[String], engine_root: &Path, bk_root: &Path) -> Vec<String> {
    let mut notes = Vec::new();
    for d in diffs {
        let Some(rest) = d.strip_prefix("fs /") else {
            continue;
        };
        let Some((path, what)) = rest.split_once(": ") else {
            continue;
        };
        if !what.starts_with("content ") {
            continue;
        }
        let a = flatten::file_text(engine_root, path);
        let b = flatten::file_text(bk_root, path);
        if let (Some(a), Some(b)) = (a, b) {
            if a.len() < 4096 && b.len() < 4096 {
                notes.push(format!(
                    "/{path} in engine image:\n{}/{path} in BuildKit image:\n{}",
                    process::tail(&a, 40),
                    process::tail(&b, 40)
                ));
            }
        }
    }
    notes
}

/// Builds `case` both ways and compares the images, in the work directory
/// `work_root/<name>` (left for the caller to remove or keep).
pub fn run(case: &Case, env: &Env<'_>, work_root: &Path) -> Outcome {
    let start = Instant::now();
    let work = work_root.join(&case.name);
    let mut out = Outcome {
        name: case.name.clone(),
        work: work.clone(),
        ..Outcome::default()
    };
    let _ = fs::remove_dir_all(&work);
    let ctx = work.join("context");
    if let Err(e) = prepare_context(case, &ctx) {
        out.error = Some(e);
        return out;
    }
    let tag = format!("engine-diff/{}:{}", case.name, env.tag_suffix);
    let built = build_both(case, env, &ctx, &work, &tag);
    let bk_tar = work.join("buildkit.tar");
    let saved = match &built.buildkit {
        Ok(_) => {
            let r = docker::save(&tag, &bk_tar);
            docker::remove_image(&tag);
            r.map(|_| ())
        }
        Err(_) => Ok(()),
    };
    out.engine_time = built.engine.as_ref().map(|f| f.elapsed).unwrap_or_default();
    out.buildkit_time = built
        .buildkit
        .as_ref()
        .map(|f| f.elapsed)
        .unwrap_or_default();
    let mut errors = Vec::new();
    if let Err(e) = &built.engine {
        errors.push(format!("engine build failed:\n{e}"));
    }
    if let Err(e) = &built.buildkit {
        errors.push(format!("BuildKit build failed:\n{e}"));
    }
    if let Err(e) = saved {
        errors.push(format!("docker save failed:\n{e}"));
    }
    if !errors.is_empty() {
        out.error = Some(errors.join("\n"));
        out.total_time = start.elapsed();
        return out;
    }
    let engine_root = work.join("engine-rootfs");
    let bk_root = work.join("buildkit-rootfs");
    let images = flatten::from_oci_dir(&work.join("engine-oci"), &engine_root).and_then(|e| {
        flatten::from_docker_save(&bk_tar, &work.join("buildkit-save"), &bk_root).map(|b| (e, b))
    });
    match images {
        Err(e) => out.error = Some(format!("reading the images failed: {e}")),
        Ok((e, b)) => {
            out.diffs = flatten::diff(&e.entries, &b.entries);
            out.notes = content_notes(&out.diffs, &engine_root, &bk_root);
            out.diffs.extend(config::diff(&e.config, &b.config));
        }
    }
    out.total_time = start.elapsed();
    out
}

impl Outcome {
    /// Checks the outcome against the documented differences of the case
    /// (empty for an exact match); the error is a readable report.
    pub fn check(&self, expected: &[&str]) -> Result<(), String> {
        if let Some(e) = &self.error {
            return Err(format!("case {}: {e}", self.name));
        }
        let unexpected: Vec<&String> = self
            .diffs
            .iter()
            .filter(|d| !expected.contains(&d.as_str()))
            .collect();
        let missing: Vec<&&str> = expected
            .iter()
            .filter(|x| !self.diffs.iter().any(|d| d == **x))
            .collect();
        if unexpected.is_empty() && missing.is_empty() {
            return Ok(());
        }
        let mut s = format!("case {}: images differ", self.name);
        for d in unexpected {
            s.push_str(&format!("\n  {d}"));
        }
        for m in missing {
            s.push_str(&format!("\n  expected (documented) but not found: {m}"));
        }
        for n in &self.notes {
            s.push_str(&format!("\n{n}"));
        }
        Err(s)
    }
}
