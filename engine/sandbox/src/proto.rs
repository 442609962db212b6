//! What the caller and the helper process tell each other.
//!
//! The caller hands the helper a socket as its stdin, writes one JSON [`InitRequest`] and
//! shuts down its writing side. The helper moves the socket to a close-on-exec fd, puts
//! `/dev/null` on stdin, and writes newline-delimited JSON [`Message`]s back.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::spec::RunSpec;

/// `argv[1]` of the helper.
pub(crate) const INIT_ARG: &str = "__engine-sandbox-init";

/// Largest request the helper accepts.
pub(crate) const MAX_REQUEST: u64 = 64 << 20;

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct InitRequest {
    pub spec: RunSpec,
    pub mode: Mode,
    /// Where the rootfs is (for [`crate::Rootfs::Dir`]: the directory itself; for an
    /// overlay: the empty directory to mount it on).
    pub root: PathBuf,
    /// Lower directories to use; the spec's, or one empty directory when it has none.
    pub lowers: Vec<PathBuf>,
    /// Generated files bind-mounted over `/etc/resolv.conf` and `/etc/hosts`.
    pub resolv_conf: PathBuf,
    pub hosts: PathBuf,
    /// The caller's pid: the helper dies with it.
    pub parent_pid: u32,
    /// `slirp4netns`, for [`crate::Network::Private`]; without it the private network
    /// has the loopback interface only.
    #[serde(default)]
    pub slirp: Option<PathBuf>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Mode {
    /// The built-in sandbox.
    Builtin,
    /// Mount the rootfs in a private mount namespace, create the mount targets, then
    /// exec the OCI runtime with `argv`, which starts with the runtime's path.
    Oci { argv: Vec<String>, config: PathBuf },
}

/// A path the helper created inside the rootfs to have somewhere to mount on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stub {
    /// Relative to the rootfs, symlinks resolved.
    pub path: PathBuf,
    pub dir: bool,
    /// atime and mtime (seconds, nanoseconds) of the parent directory before creation.
    pub parent_times: Option<[i64; 4]>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Message {
    Stub(Stub),
    /// Setup failed; the command did not start.
    Error(String),
    /// The command exited with a code (built-in mode only).
    Exited(i32),
    /// The command was killed by a signal (built-in mode only).
    Signaled(i32),
    /// The run ran into one of its limits.
    Limit(crate::cgroup::Hit),
    /// Something the caller should tell the user; the run went on.
    Warning(String),
}
