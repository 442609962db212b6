//! Debian's docker.io (20.10, built-in BuildKit) as the reference builder.
//! Always `/usr/bin/docker`: the `docker` first on PATH may be a newer
//! client without buildx.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::process::{self, Finished};

pub const DOCKER: &str = "/usr/bin/docker";

/// Limit for one BuildKit build.
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(300);

const SETUP_HINT: &str = "run scripts/setup-host (as root) to install docker.io and start dockerd";

fn docker() -> Command {
    Command::new(DOCKER)
}

/// The daemon's version; fails with a hint unless dockerd answers (checked
/// once per process).
pub fn ensure_available() -> Result<String, String> {
    static VERSION: OnceLock<Result<String, String>> = OnceLock::new();
    VERSION
        .get_or_init(|| {
            if !Path::new(DOCKER).is_file() {
                return Err(format!("{DOCKER} is missing: {SETUP_HINT}"));
            }
            process::run(
                docker().args(["version", "--format", "{{.Server.Version}}"]),
                Duration::from_secs(30),
            )
            .map(|f| f.stdout.trim().to_string())
            .map_err(|e| format!("dockerd does not answer: {SETUP_HINT}\n{e}"))
        })
        .clone()
}

/// `docker load -i TAR`.
pub fn load(tar: &Path) -> Result<Finished, String> {
    process::run(
        docker().arg("load").arg("-i").arg(tar),
        Duration::from_secs(120),
    )
}

/// `DOCKER_BUILDKIT=1 docker build -t TAG [ARGS...] CONTEXT`.
pub fn buildkit_build(tag: &str, args: &[String], context: &Path) -> Result<Finished, String> {
    let mut cmd = docker();
    cmd.env("DOCKER_BUILDKIT", "1")
        .args(["build", "--progress", "plain", "-t", tag])
        .args(args)
        .arg(context);
    process::run(&mut cmd, BUILD_TIMEOUT)
}

/// `docker save TAG -o TAR`.
pub fn save(tag: &str, tar: &Path) -> Result<Finished, String> {
    process::run(
        docker().arg("save").arg(tag).arg("-o").arg(tar),
        Duration::from_secs(120),
    )
}

/// `docker rmi TAG`, ignoring failures (cleanup only).
pub fn remove_image(tag: &str) {
    let _ = process::run(docker().args(["rmi", tag]), Duration::from_secs(60));
}
