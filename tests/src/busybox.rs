//! The base image of the differential tests, built by the engine itself
//! from Debian's busybox-static (`/bin/busybox`) and loaded into dockerd so
//! that BuildKit's `FROM busybox` finds the very same image locally
//! (registry pulls are not available).
//!
//! Besides busybox and its applet symlinks it carries a small user database
//! and the directories and files an OCI runtime mounts over (`/dev`,
//! `/proc`, `/sys`, `/etc/hosts`, `/etc/resolv.conf`, `/etc/hostname`):
//! BuildKit 0.8 (docker 20.10) leaves the mount stubs it creates for a RUN
//! in the layer, newer BuildKit and the engine remove them; with the stubs
//! already in the base both trees agree (the `run-mount-stubs` case covers
//! the difference itself).

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::{docker, engine, process};

/// Where Debian's busybox-static installs the binary.
pub const HOST_BUSYBOX: &str = "/bin/busybox";

/// Name of the base image (docker tag `busybox:latest`, and the named build
/// context `busybox` on the engine side).
pub const NAME: &str = "busybox";

pub const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
svc:x:1001:50:svc:/srv:/bin/sh
app:x:1000:1000::/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
";

pub const GROUP: &str = "\
root:x:0:
daemon:x:1:
staff:x:50:app
app:x:1000:
nogroup:x:65534:
";

pub const DOCKERFILE: &str = "\
FROM scratch
COPY rootfs/ /
COPY --chown=1000:1000 home/ /home/
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CMD [\"sh\"]
";

/// Timestamp the base image is built with.
pub const SOURCE_DATE_EPOCH: &str = "1700000000";

/// The base image in both forms.
#[derive(Debug, Clone)]
pub struct BaseImage {
    /// OCI layout directory (for `--build-context busybox=oci-layout://…`).
    pub layout: PathBuf,
    /// Docker archive that was loaded into dockerd as `busybox:latest`.
    pub docker_archive: PathBuf,
}

impl BaseImage {
    /// The engine's `--build-context` value for `FROM busybox`.
    pub fn build_context(&self) -> String {
        format!("{NAME}=oci-layout://{}", self.layout.display())
    }
}

fn io_err(what: &str, p: &Path, e: std::io::Error) -> String {
    format!("cannot {what} `{}`: {e}", p.display())
}

fn mkdir(p: &Path, mode: u32) -> Result<(), String> {
    fs::create_dir_all(p).map_err(|e| io_err("create", p, e))?;
    chmod(p, mode)
}

fn chmod(p: &Path, mode: u32) -> Result<(), String> {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).map_err(|e| io_err("chmod", p, e))
}

fn write(p: &Path, text: &str, mode: u32) -> Result<(), String> {
    fs::write(p, text).map_err(|e| io_err("write", p, e))?;
    chmod(p, mode)
}

/// Writes the base image's build context into `ctx`.
pub fn write_context(ctx: &Path) -> Result<(), String> {
    if !Path::new(HOST_BUSYBOX).is_file() {
        return Err(format!(
            "{HOST_BUSYBOX} is missing: run scripts/setup-host (as root) to install busybox-static"
        ));
    }
    let root = ctx.join("rootfs");
    mkdir(&root, 0o755)?;
    for (dir, mode) in [
        ("bin", 0o755),
        ("dev", 0o755),
        ("etc", 0o755),
        ("home", 0o755),
        ("proc", 0o555),
        ("root", 0o700),
        ("sys", 0o555),
        ("tmp", 0o1777),
        ("usr", 0o755),
        ("usr/bin", 0o755),
        ("var", 0o755),
    ] {
        mkdir(&root.join(dir), mode)?;
    }
    let bb = root.join("bin/busybox");
    fs::copy(HOST_BUSYBOX, &bb).map_err(|e| io_err("copy", Path::new(HOST_BUSYBOX), e))?;
    chmod(&bb, 0o755)?;
    let list = process::run(
        Command::new(HOST_BUSYBOX).arg("--list"),
        Duration::from_secs(30),
    )?;
    for applet in list.stdout.lines().map(str::trim) {
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        let link = root.join("bin").join(applet);
        symlink("busybox", &link).map_err(|e| io_err("symlink", &link, e))?;
    }
    write(&root.join("etc/passwd"), PASSWD, 0o644)?;
    write(&root.join("etc/group"), GROUP, 0o644)?;
    for f in ["etc/hosts", "etc/resolv.conf", "etc/hostname"] {
        write(&root.join(f), "", 0o644)?;
    }
    mkdir(&ctx.join("home/app"), 0o755)?;
    write(&ctx.join("Dockerfile"), DOCKERFILE, 0o644)?;
    Ok(())
}

/// Builds the base image with the engine into `dir` (OCI layout and docker
/// archive) and loads it into dockerd as `busybox:latest`.
pub fn build(dir: &Path, cache_dir: &Path) -> Result<BaseImage, String> {
    docker::ensure_available()?;
    let ctx = dir.join("context");
    write_context(&ctx)?;
    let layout = dir.join("layout");
    let docker_archive = dir.join("busybox.tar");
    let mut b = engine::Build::new(&ctx);
    b.tags.push(format!("{NAME}:latest"));
    b.outputs
        .push(format!("type=oci,dest={},tar=false", layout.display()));
    b.outputs.push(format!(
        "type=docker,dest={},name={NAME}:latest",
        docker_archive.display()
    ));
    b.cache_dir = Some(cache_dir.to_path_buf());
    // A reproducible image: the same image ID on every run, so `docker load`
    // replaces nothing and BuildKit's cache stays valid between runs.
    b.env
        .push(("SOURCE_DATE_EPOCH".into(), SOURCE_DATE_EPOCH.into()));
    b.run()
        .map_err(|e| format!("building the busybox base image with the engine failed:\n{e}"))?;
    docker::load(&docker_archive).map_err(|e| {
        format!("`docker load` rejected the engine's docker archive of the base image:\n{e}")
    })?;
    Ok(BaseImage {
        layout,
        docker_archive,
    })
}

/// The base image, built once per process (into `dir`, given by the first
/// caller).
pub fn base_image(dir: &Path, cache_dir: &Path) -> Result<&'static BaseImage, String> {
    static BASE: OnceLock<Result<BaseImage, String>> = OnceLock::new();
    BASE.get_or_init(|| build(dir, cache_dir))
        .as_ref()
        .map_err(Clone::clone)
}
