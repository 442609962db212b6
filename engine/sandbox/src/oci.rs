//! Running a [`RunSpec`] with an OCI runtime (`runc`, `crun`, ...).

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxDeviceCgroupBuilder,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxResourcesBuilder, Mount as OciMount,
    MountBuilder, ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};

use crate::files::{stub_base, Prepared};
use crate::host::{find_in_path, is_executable};
use crate::init::{MASKED_PATHS, READONLY_PATHS};
use crate::proto::Mode;
use crate::spec::{MountKind, RunSpec};
use crate::{helper, stubs, CancelToken, Error, Executor, ExitStatus, Result};

/// After cancellation, how long `<runtime> kill` gets before the container is deleted by
/// force and the runtime killed.
const KILL_GRACE: Duration = Duration::from_secs(10);
/// How often `<runtime> kill` is retried after cancellation (the container may not
/// exist yet).
const KILL_RETRY: Duration = Duration::from_millis(250);

/// An OCI runtime executor: generates a bundle per run and calls
/// `<runtime> run --bundle DIR ID`.
///
/// The runtime runs inside a private mount namespace of a helper process (the same
/// helper as [`Sandbox`](crate::Sandbox)'s), where an overlay rootfs is mounted, so no
/// mount is ever visible on the host. Each run gets its own runtime state directory
/// (`--root`), so runs never see each other's containers.
#[derive(Debug, Clone)]
pub struct OciRuntime {
    path: PathBuf,
    helper: PathBuf,
    temp_dir: Option<PathBuf>,
}

impl OciRuntime {
    /// `runtime` is `runc`, `crun` or another name looked up in `PATH`, or a path. The
    /// helper is the current executable, `/proc/self/exe` (see
    /// [`maybe_run_init`](crate::maybe_run_init)).
    pub fn new(runtime: &str) -> Result<Self> {
        let path = if runtime.contains('/') {
            let p = PathBuf::from(runtime);
            if !is_executable(&p) {
                return Err(Error::RuntimeNotFound(runtime.to_string()));
            }
            std::fs::canonicalize(&p).unwrap_or(p)
        } else {
            find_in_path(runtime).ok_or_else(|| Error::RuntimeNotFound(runtime.to_string()))?
        };
        let helper = crate::self_exe()?;
        Ok(OciRuntime {
            path,
            helper,
            temp_dir: None,
        })
    }

    /// Uses another helper executable (one that calls
    /// [`maybe_run_init`](crate::maybe_run_init)).
    pub fn with_helper(mut self, helper: impl Into<PathBuf>) -> Self {
        self.helper = helper.into();
        self
    }

    /// Where per-run bundles go (default: [`std::env::temp_dir`]).
    pub fn temp_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.temp_dir = Some(dir.into());
        self
    }

    /// The runtime executable.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The OCI runtime configuration (`config.json`) of `spec`, with `rootfs` as
    /// `root.path`: Docker's defaults (namespaces, `/proc`, `/dev`, `/dev/pts`,
    /// `/dev/shm`, `/dev/mqueue`, read-only `/sys`, masked and read-only paths, default
    /// capabilities, no terminal) plus the spec's process, hostname and mounts, and the
    /// generated `/etc/resolv.conf` and `/etc/hosts`.
    pub fn config(spec: &RunSpec, rootfs: &Path, resolv_conf: &Path, hosts: &Path) -> Result<Spec> {
        let oci = |e: oci_spec::OciSpecError| Error::InvalidSpec(e.to_string());
        let mask = if spec.insecure {
            // Every capability this process may hand on (a host may lack some).
            crate::caps::ALL & crate::sys::cap_permitted().unwrap_or(crate::caps::ALL)
        } else {
            crate::caps::DEFAULT
        };
        let caps: HashSet<Capability> = crate::caps::names(mask)
            .map(|n| serde_json::from_value(serde_json::Value::from(n)))
            .collect::<Result<_, _>>()
            .map_err(|e| Error::InvalidSpec(format!("capability: {e}")))?;
        let capabilities = LinuxCapabilitiesBuilder::default()
            .bounding(caps.clone())
            .effective(caps.clone())
            .permitted(caps)
            .inheritable(HashSet::new())
            .ambient(HashSet::new())
            .build()
            .map_err(oci)?;
        let user = UserBuilder::default()
            .uid(spec.user.uid)
            .gid(spec.user.gid)
            .additional_gids(spec.user.additional_gids.clone())
            .build()
            .map_err(oci)?;
        let mut process = ProcessBuilder::default()
            .terminal(false)
            .user(user)
            .args(spec.args.clone())
            .env(spec.env.clone())
            .cwd(spec.cwd_or_root())
            .capabilities(capabilities)
            .no_new_privileges(spec.no_new_privileges)
            .build()
            .map_err(oci)?;
        // Inherit the limits, like the built-in sandbox does.
        process.set_rlimits(None);

        let m = |dest: &str, typ: &str, source: &str, opts: &[&str]| {
            MountBuilder::default()
                .destination(dest)
                .typ(typ)
                .source(source)
                .options(opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .build()
                .map_err(oci)
        };
        let mut mounts: Vec<OciMount> = vec![
            m("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
            m(
                "/dev",
                "tmpfs",
                "tmpfs",
                &["nosuid", "strictatime", "mode=755", "size=65536k"],
            )?,
            m(
                "/dev/pts",
                "devpts",
                "devpts",
                &[
                    "nosuid",
                    "noexec",
                    "newinstance",
                    "ptmxmode=0666",
                    "mode=0620",
                    "gid=5",
                ],
            )?,
            m(
                "/dev/shm",
                "tmpfs",
                "shm",
                &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            )?,
            m(
                "/dev/mqueue",
                "mqueue",
                "mqueue",
                &["nosuid", "noexec", "nodev"],
            )?,
            m(
                "/sys",
                "sysfs",
                "sysfs",
                &["nosuid", "noexec", "nodev", "ro"],
            )?,
        ];
        for mount in spec.sorted_mounts() {
            mounts.push(match &mount.kind {
                MountKind::Bind { source, readonly } => {
                    let mut opts = vec!["rbind", "rprivate"];
                    if *readonly {
                        opts.push("ro");
                    }
                    let src = source.to_string_lossy();
                    m(&mount.target, "bind", &src, &opts)?
                }
                MountKind::Tmpfs { size } => {
                    let size = size.map(|s| format!("size={s}"));
                    let mut opts = vec!["nosuid", "nodev", "mode=1777"];
                    if let Some(s) = &size {
                        opts.push(s);
                    }
                    m(&mount.target, "tmpfs", "tmpfs", &opts)?
                }
            });
        }
        for (dest, src) in [("/etc/resolv.conf", resolv_conf), ("/etc/hosts", hosts)] {
            mounts.push(m(
                dest,
                "bind",
                &src.to_string_lossy(),
                &["rbind", "rprivate"],
            )?);
        }

        let mut namespaces = Vec::new();
        let kinds = vec![
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Uts,
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Cgroup,
        ];
        // No network namespace here: the helper makes the run's one (see `net`) and
        // the container inherits it, with slirp4netns's NAT already attached.
        for typ in kinds {
            namespaces.push(
                LinuxNamespaceBuilder::default()
                    .typ(typ)
                    .build()
                    .map_err(oci)?,
            );
        }
        // Deny every device but the runtime's default allow-list (null, zero, full,
        // random, urandom, tty, console, ptmx, pts), which runc and crun add themselves.
        let devices = LinuxDeviceCgroupBuilder::default()
            .allow(spec.insecure)
            .access("rwm")
            .build()
            .map_err(oci)?;
        // No pids or memory limits here: they sit on the run's cgroup, made by the
        // helper, which points `cgroupsPath` at a child of it, so that it can read
        // which limit was hit after the runtime removed its own cgroup.
        let resources = LinuxResourcesBuilder::default()
            .devices(vec![devices])
            .build()
            .map_err(oci)?;
        let mut linux = LinuxBuilder::default()
            .namespaces(namespaces)
            .masked_paths(
                MASKED_PATHS
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>(),
            )
            .readonly_paths(
                READONLY_PATHS
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>(),
            )
            .resources(resources)
            .build()
            .map_err(oci)?;
        if !spec.insecure {
            linux.set_seccomp(Some(
                crate::seccomp::docker_default(crate::caps::DEFAULT).oci(),
            ));
        }
        let root = RootBuilder::default()
            .path(rootfs)
            .readonly(spec.readonly_rootfs)
            .build()
            .map_err(oci)?;
        SpecBuilder::default()
            .version("1.0.2")
            .root(root)
            .process(process)
            .hostname(spec.hostname.clone())
            .mounts(mounts)
            .linux(linux)
            .build()
            .map_err(oci)
    }

    fn runtime_cmd(&self, state: &Path) -> Command {
        let mut c = Command::new(&self.path);
        c.arg(format!("--root={}", state.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    }

    /// Runs `spec` with the runtime (see [`Sandbox::run`](crate::Sandbox::run)).
    pub fn run(
        &self,
        spec: &RunSpec,
        mut stdout: impl Write + Send,
        mut stderr: impl Write + Send,
        cancel: &CancelToken,
    ) -> Result<ExitStatus> {
        spec.validate()?;
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let prepared = Prepared::new(spec, self.temp_dir.as_deref())?;
        let tmp = prepared.dir.path();
        let bundle = tmp.join("bundle");
        let state = tmp.join("state");
        let log = tmp.join("runtime.log");
        for d in [&bundle, &state] {
            std::fs::create_dir(d).map_err(|e| Error::io(format!("create {}", d.display()), e))?;
        }
        let config = bundle.join("config.json");
        Self::config(spec, &prepared.root, &prepared.resolv_conf, &prepared.hosts)?
            .save(&config)
            .map_err(|e| Error::InvalidSpec(format!("write config.json: {e}")))?;
        let id = tmp
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("engine-sandbox-{}", std::process::id()));
        let argv = vec![
            self.path.to_string_lossy().into_owned(),
            format!("--root={}", state.display()),
            format!("--log={}", log.display()),
            "--log-format=json".to_string(),
            "run".to_string(),
            format!("--bundle={}", bundle.display()),
            id.clone(),
        ];
        let request = prepared.request(spec, Mode::Oci { argv, config });

        let mut last_kill: Option<Instant> = None;
        let mut forced = false;
        let mut on_cancel = |pid: u32, since: Duration| {
            if since > KILL_GRACE {
                if !forced {
                    forced = true;
                    let _ = self
                        .runtime_cmd(&state)
                        .args(["delete", "--force", &id])
                        .status();
                    // SAFETY: plain kill(2) of our unreaped child.
                    unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                }
                return;
            }
            if last_kill.is_none_or(|t| t.elapsed() >= KILL_RETRY) {
                last_kill = Some(Instant::now());
                let _ = self
                    .runtime_cmd(&state)
                    .args(["kill", &id, "KILL"])
                    .status();
            }
        };
        let outcome = helper::run(
            &self.helper,
            &request,
            &mut stdout,
            &mut stderr,
            cancel,
            &mut on_cancel,
        );
        // Whatever happened, leave no container behind (runc and crun keep a directory
        // per container in their state root).
        if state.join(&id).exists() {
            let _ = self
                .runtime_cmd(&state)
                .args(["delete", "--force", &id])
                .status();
        }
        let outcome = outcome?;
        stubs::cleanup(stub_base(spec), &helper::stubs(&outcome.messages));
        helper::write_warnings(&outcome.messages, &mut stderr);

        if outcome.cancelled {
            return Err(Error::Cancelled);
        }
        if let Some(e) = helper::first_error(&outcome.messages) {
            return Err(Error::Setup(e.to_string()));
        }
        if let Some(e) = outcome.output_error {
            return Err(Error::Output(e));
        }
        use std::os::unix::process::ExitStatusExt;
        let status = match (outcome.status.code(), outcome.status.signal()) {
            (Some(c), _) => ExitStatus::Code(c),
            (None, Some(s)) => ExitStatus::Signal(s),
            _ => return Err(Error::Helper(outcome.status.to_string())),
        };
        if let Some(e) = helper::limit_error(&outcome.messages, status) {
            return Err(e);
        }
        if !status.success() {
            if let Some(message) = runtime_error(&log) {
                return Err(Error::Runtime {
                    runtime: self.path.display().to_string(),
                    message,
                });
            }
        }
        Ok(status)
    }
}

/// The last error the runtime logged (`--log-format=json`), if any.
fn runtime_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| matches!(v["level"].as_str(), Some("error" | "fatal")))
        .find_map(|v| v["msg"].as_str().map(str::to_string))
}

impl Executor for OciRuntime {
    fn run(
        &self,
        spec: &RunSpec,
        stdout: &mut (dyn Write + Send),
        stderr: &mut (dyn Write + Send),
        cancel: &CancelToken,
    ) -> Result<ExitStatus> {
        OciRuntime::run(self, spec, stdout, stderr, cancel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Mount, Network, Rootfs};

    #[test]
    fn config_has_docker_defaults() {
        let mut spec = RunSpec::new(Rootfs::Dir("/r".into()), vec!["/bin/sh".into()]);
        spec.network = Network::None;
        spec.user.uid = 1000;
        spec.mounts.push(Mount {
            target: "/cache".into(),
            kind: MountKind::Bind {
                source: "/host/cache".into(),
                readonly: true,
            },
        });
        let cfg = OciRuntime::config(
            &spec,
            Path::new("/r"),
            Path::new("/x/resolv.conf"),
            Path::new("/x/hosts"),
        )
        .unwrap();
        let v = serde_json::to_value(&cfg).unwrap();
        assert_eq!(v["process"]["terminal"], false);
        assert_eq!(v["process"]["user"]["uid"], 1000);
        assert!(v["process"].get("rlimits").is_none());
        assert_eq!(v["hostname"], "buildkitsandbox");
        assert_eq!(v["root"]["path"], "/r");
        let ns: Vec<&str> = v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        // The helper makes the network namespace; the container inherits it.
        assert!(!ns.contains(&"network") && ns.contains(&"pid") && ns.contains(&"mount"));
        assert_eq!(v["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        let dests: Vec<&str> = v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["destination"].as_str().unwrap())
            .collect();
        assert_eq!(
            dests,
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/shm",
                "/dev/mqueue",
                "/sys",
                "/cache",
                "/etc/resolv.conf",
                "/etc/hosts"
            ]
        );
        let caps = v["process"]["capabilities"]["bounding"].as_array().unwrap();
        assert_eq!(caps.len(), 14);
        assert!(v["linux"]["maskedPaths"]
            .as_array()
            .unwrap()
            .contains(&"/proc/kcore".into()));
    }

    #[test]
    fn missing_runtime_is_reported() {
        let e = OciRuntime::new("no-such-runtime-here").unwrap_err();
        assert_eq!(e.to_string(), "oci runtime no-such-runtime-here not found");
    }
}
