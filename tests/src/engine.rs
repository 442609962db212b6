//! The `engine` binary under test: found next to the test executable (built
//! once per process with `cargo build -p engine-cli --bin engine`, so it is
//! never stale), or taken from `ENGINE_BIN`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::process::{self, Finished};

/// Limit for one `engine build` in tests.
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(300);

/// `target/<profile>` of the running test executable
/// (`target/<profile>/deps/<name>-<hash>`).
fn profile_dir() -> Result<PathBuf, String> {
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot locate the test executable: {e}"))?;
    let mut dir = exe
        .parent()
        .ok_or_else(|| format!("test executable `{}` has no parent", exe.display()))?
        .to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    Ok(dir)
}

fn build_binary() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("ENGINE_BIN") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("ENGINE_BIN=`{}` is not a file", p.display()))
        };
    }
    let profile_dir = profile_dir()?;
    let target_dir = profile_dir
        .parent()
        .ok_or_else(|| format!("`{}` has no parent", profile_dir.display()))?;
    let profile = profile_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from(env!("CARGO")));
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(&manifest)
        .args(["-p", "engine-cli", "--bin", "engine"])
        .arg("--target-dir")
        .arg(target_dir);
    match profile.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    process::run(&mut cmd, Duration::from_secs(1800))
        .map_err(|e| format!("cannot build the engine binary:\n{e}"))?;
    let bin = profile_dir.join("engine");
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!("`{}` missing after cargo build", bin.display()))
    }
}

/// Path of the `engine` binary, built once per process.
pub fn binary() -> Result<&'static Path, String> {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(build_binary)
        .as_ref()
        .map(PathBuf::as_path)
        .map_err(Clone::clone)
}

/// An `engine build` invocation.
#[derive(Debug, Clone, Default)]
pub struct Build {
    pub context: PathBuf,
    pub dockerfile: Option<PathBuf>,
    pub build_args: Vec<String>,
    pub build_contexts: Vec<String>,
    pub target: Option<String>,
    /// `--platform` (one or several, comma-separated).
    pub platform: Option<String>,
    pub tags: Vec<String>,
    pub outputs: Vec<String>,
    pub cache_dir: Option<PathBuf>,
    /// Extra environment variables (e.g. `SOURCE_DATE_EPOCH`).
    pub env: Vec<(String, String)>,
}

impl Build {
    pub fn new(context: impl Into<PathBuf>) -> Self {
        Build {
            context: context.into(),
            ..Build::default()
        }
    }

    pub fn command(&self) -> Result<Command, String> {
        let mut cmd = Command::new(binary()?);
        cmd.arg("build").args(["--progress", "plain"]);
        if let Some(f) = &self.dockerfile {
            cmd.arg("-f").arg(f);
        }
        if let Some(t) = &self.target {
            cmd.arg("--target").arg(t);
        }
        if let Some(p) = &self.platform {
            cmd.arg("--platform").arg(p);
        }
        for a in &self.build_args {
            cmd.arg("--build-arg").arg(a);
        }
        for c in &self.build_contexts {
            cmd.arg("--build-context").arg(c);
        }
        for t in &self.tags {
            cmd.arg("-t").arg(t);
        }
        for o in &self.outputs {
            cmd.arg("-o").arg(o);
        }
        if let Some(c) = &self.cache_dir {
            cmd.arg("--cache-dir").arg(c);
        }
        cmd.arg(&self.context);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        Ok(cmd)
    }

    /// Runs the build; an error carries the command and its output.
    pub fn run(&self) -> Result<Finished, String> {
        process::run(&mut self.command()?, BUILD_TIMEOUT)
    }
}
