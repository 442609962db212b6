//! What to run: [`RunSpec`] and its parts.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The hostname of a RUN step unless told otherwise (BuildKit's).
pub const DEFAULT_HOSTNAME: &str = "buildkitsandbox";

/// The `PATH` used to look up `args[0]` when the environment has none (runc's and Docker's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The root filesystem of the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rootfs {
    /// An overlayfs mounted inside the sandbox's mount namespace only (`index=off`, no
    /// `redirect_dir`, no `metacopy`), so the upper directory holds a plain diff with
    /// whiteouts as 0/0 character devices.
    Overlay {
        /// Lower layers, top first. May be empty (an empty lower is supplied).
        lowers: Vec<PathBuf>,
        /// Upper (writable) directory.
        upper: PathBuf,
        /// Overlayfs work directory: empty, on the same filesystem as `upper`.
        work: PathBuf,
    },
    /// A complete writable tree prepared by the caller (copy-based fallback).
    Dir(PathBuf),
}

/// Numeric credentials of the command.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct User {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary group ids.
    #[serde(default)]
    pub additional_gids: Vec<u32>,
}

impl User {
    /// Root: uid 0, gid 0, no supplementary groups.
    pub fn root() -> Self {
        Self::default()
    }
}

/// Network of the sandbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// A new network namespace holding only the loopback interface, up.
    None,
    /// A new network namespace with outbound access through a user-mode NAT
    /// (`slirp4netns`, found in `PATH`): the step reaches the network as BuildKit's
    /// default does, but not the host's loopback services nor its abstract unix
    /// sockets. Without `slirp4netns` it has the loopback interface only
    /// ([`slirp4netns_path`](crate::slirp4netns_path) tells in advance).
    #[default]
    Private,
    /// The host's network namespace (`RUN --network=host`, an entitlement).
    Host,
}

/// Resource limits of one run, enforced through a cgroup of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Limits {
    /// Most processes and threads at once (`pids.max`); `None` for no limit.
    #[serde(default)]
    pub pids: Option<u64>,
    /// Most memory in bytes (`memory.max`); `None` for no limit.
    #[serde(default)]
    pub memory: Option<u64>,
}

/// The process limit of a RUN step unless told otherwise: generous for builds
/// (`make -j`, JVMs with hundreds of threads) and far below what takes a host down.
pub const DEFAULT_PIDS_LIMIT: u64 = 4096;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            pids: Some(DEFAULT_PIDS_LIMIT),
            memory: None,
        }
    }
}

/// An extra mount of a RUN step (`RUN --mount`, secrets, caches...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Absolute path inside the sandbox. Symlinks in it are resolved inside the rootfs,
    /// never on the host; missing components are created and removed again afterwards.
    pub target: String,
    /// What to mount there.
    pub kind: MountKind,
}

/// The kind of an extra [`Mount`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MountKind {
    /// A recursive bind mount of a host file or directory.
    Bind {
        /// Host path.
        source: PathBuf,
        /// Mount it read-only.
        readonly: bool,
    },
    /// A fresh tmpfs (mode 1777, nosuid, nodev).
    Tmpfs {
        /// Size limit in bytes (the kernel default, half of RAM, when `None`).
        size: Option<u64>,
    },
}

/// One RUN step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSpec {
    /// The root filesystem.
    pub rootfs: Rootfs,
    /// The final argv, e.g. `["/bin/sh", "-c", "echo hi"]`. `args[0]` without a slash is
    /// looked up in the `PATH` of `env` (or [`DEFAULT_PATH`]) inside the rootfs.
    pub args: Vec<String>,
    /// The environment, `KEY=VALUE` entries. `HOME` is added from the rootfs' passwd
    /// file (or `/`) when missing, like runc does.
    #[serde(default)]
    pub env: Vec<String>,
    /// Absolute working directory inside the rootfs; created (as root) when missing.
    #[serde(default = "default_cwd")]
    pub cwd: String,
    /// Credentials of the command.
    #[serde(default)]
    pub user: User,
    /// A Dockerfile `USER` value (`name`, `uid`, `name:group`, `uid:gid`) to resolve
    /// against the rootfs' own `/etc/passwd` and `/etc/group` right before the command
    /// starts, with [`resolve_user`](crate::resolve_user)'s rules. When set it replaces
    /// `user`. Handy when the caller has no merged view of an overlay rootfs.
    #[serde(default)]
    pub user_lookup: Option<String>,
    /// The hostname (UTS namespace), [`DEFAULT_HOSTNAME`] by default.
    #[serde(default = "default_hostname")]
    pub hostname: String,
    /// Network namespace choice.
    #[serde(default)]
    pub network: Network,
    /// Extra mounts, applied after the system mounts, parents first.
    #[serde(default)]
    pub mounts: Vec<Mount>,
    /// Mount the rootfs read-only.
    #[serde(default)]
    pub readonly_rootfs: bool,
    /// Resource limits (a cgroup of the run's own where the hierarchy is writable).
    #[serde(default)]
    pub limits: Limits,
    /// `RUN --security=insecure` (an entitlement): every capability, no seccomp
    /// filter, device nodes of the rootfs usable. Off by default.
    #[serde(default)]
    pub insecure: bool,
    /// Set `no_new_privs` before exec. Off by default as in Docker and BuildKit: with it,
    /// set-user-id programs such as `sudo` or `su` stop working in RUN steps.
    #[serde(default)]
    pub no_new_privileges: bool,
}

fn default_cwd() -> String {
    "/".to_string()
}

fn default_hostname() -> String {
    DEFAULT_HOSTNAME.to_string()
}

impl RunSpec {
    /// A spec with the defaults: cwd `/`, root, no environment, hostname
    /// [`DEFAULT_HOSTNAME`], a private network, no extra mounts, the default limits.
    pub fn new(rootfs: Rootfs, args: Vec<String>) -> Self {
        RunSpec {
            rootfs,
            args,
            env: Vec::new(),
            cwd: default_cwd(),
            user: User::root(),
            user_lookup: None,
            hostname: default_hostname(),
            network: Network::default(),
            mounts: Vec::new(),
            readonly_rootfs: false,
            limits: Limits::default(),
            insecure: false,
            no_new_privileges: false,
        }
    }

    /// Checks what can be checked without running anything.
    pub fn validate(&self) -> Result<()> {
        fn bad(msg: String) -> Result<()> {
            Err(Error::InvalidSpec(msg))
        }
        fn abs(what: &str, p: &Path) -> Result<()> {
            if !p.is_absolute() {
                return bad(format!("{what} {} is not an absolute path", p.display()));
            }
            if p.as_os_str().as_encoded_bytes().contains(&0) {
                return bad(format!("{what} {} contains a nul byte", p.display()));
            }
            Ok(())
        }
        fn no_nul(what: &str, s: &str) -> Result<()> {
            if s.contains('\0') {
                return bad(format!("{what} {s:?} contains a nul byte"));
            }
            Ok(())
        }
        match &self.rootfs {
            Rootfs::Overlay {
                lowers,
                upper,
                work,
            } => {
                for l in lowers {
                    abs("overlay lower", l)?;
                }
                abs("overlay upper", upper)?;
                abs("overlay work", work)?;
            }
            Rootfs::Dir(d) => abs("rootfs", d)?,
        }
        if self.args.is_empty() || self.args[0].is_empty() {
            return bad("args must not be empty".into());
        }
        for a in &self.args {
            no_nul("argument", a)?;
        }
        for e in &self.env {
            no_nul("environment entry", e)?;
            match e.split_once('=') {
                Some((k, _)) if !k.is_empty() => {}
                _ => return bad(format!("environment entry {e:?} is not KEY=VALUE")),
            }
        }
        if !self.cwd.is_empty() && !self.cwd.starts_with('/') {
            return bad(format!("cwd {:?} is not an absolute path", self.cwd));
        }
        no_nul("cwd", &self.cwd)?;
        if self.hostname.is_empty()
            || self.hostname.len() > 64
            || self.hostname.contains(['\0', '/', ' '])
        {
            return bad(format!("hostname {:?} is not valid", self.hostname));
        }
        if self.limits.pids == Some(0) || self.limits.memory == Some(0) {
            return bad("limits must be greater than zero".into());
        }
        if let Some(u) = &self.user_lookup {
            no_nul("user", u)?;
        }
        for m in &self.mounts {
            if !m.target.starts_with('/') {
                return bad(format!(
                    "mount target {:?} is not an absolute path",
                    m.target
                ));
            }
            no_nul("mount target", &m.target)?;
            if let MountKind::Bind { source, .. } = &m.kind {
                abs("bind mount source", source)?;
            }
        }
        Ok(())
    }

    /// The working directory, `/` when empty.
    pub(crate) fn cwd_or_root(&self) -> &str {
        if self.cwd.is_empty() {
            "/"
        } else {
            &self.cwd
        }
    }

    /// The extra mounts, parents before children (stable by path depth, like Docker).
    pub(crate) fn sorted_mounts(&self) -> Vec<&Mount> {
        let mut v: Vec<&Mount> = self.mounts.iter().collect();
        v.sort_by_key(|m| m.target.split('/').filter(|c| !c.is_empty()).count());
        v
    }

    /// The value of `key` in `env`, the last entry winning.
    pub(crate) fn env_get(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> RunSpec {
        RunSpec::new(Rootfs::Dir("/r".into()), vec!["/bin/true".into()])
    }

    #[test]
    fn validate_accepts_defaults() {
        spec().validate().unwrap();
    }

    #[test]
    fn validate_refuses_relative_and_empty() {
        let mut s = spec();
        s.args.clear();
        assert!(s.validate().is_err());
        let mut s = spec();
        s.cwd = "rel".into();
        assert!(s.validate().is_err());
        let mut s = spec();
        s.env.push("NOEQUALS".into());
        assert!(s.validate().is_err());
        let mut s = spec();
        s.mounts.push(Mount {
            target: "x".into(),
            kind: MountKind::Tmpfs { size: None },
        });
        assert!(s.validate().is_err());
        let s = RunSpec::new(Rootfs::Dir("r".into()), vec!["x".into()]);
        assert!(s.validate().is_err());
    }

    #[test]
    fn env_get_last_wins() {
        let mut s = spec();
        s.env = vec!["A=1".into(), "AB=2".into(), "A=3".into()];
        assert_eq!(s.env_get("A"), Some("3"));
        assert_eq!(s.env_get("AB"), Some("2"));
        assert_eq!(s.env_get("B"), None);
    }

    #[test]
    fn mounts_sorted_parents_first() {
        let mut s = spec();
        for t in ["/a/b/c", "/a", "/x/y", "/b"] {
            s.mounts.push(Mount {
                target: t.into(),
                kind: MountKind::Tmpfs { size: None },
            });
        }
        let order: Vec<&str> = s
            .sorted_mounts()
            .iter()
            .map(|m| m.target.as_str())
            .collect();
        assert_eq!(order, ["/a", "/b", "/x/y", "/a/b/c"]);
    }

    #[test]
    fn serde_round_trip() {
        let mut s = spec();
        s.rootfs = Rootfs::Overlay {
            lowers: vec!["/l1".into(), "/l2".into()],
            upper: "/u".into(),
            work: "/w".into(),
        };
        s.mounts.push(Mount {
            target: "/cache".into(),
            kind: MountKind::Bind {
                source: "/host/cache".into(),
                readonly: true,
            },
        });
        let j = serde_json::to_string(&s).unwrap();
        let back: RunSpec = serde_json::from_str(&j).unwrap();
        assert_eq!(s, back);
    }
}
