//! Runs a Dockerfile `RUN` step for real, in a Linux sandbox.
//!
//! Two executors share one [`RunSpec`]:
//!
//! * [`Sandbox`]: the built-in sandbox. It re-executes a helper binary (by default the
//!   current executable, which must call [`maybe_run_init`] first thing in `main`), so no
//!   complex work ever happens in a forked child of the multi-threaded engine. The helper
//!   creates mount, PID, UTS, IPC, cgroup (and, for [`Network::None`], network)
//!   namespaces, mounts the rootfs (overlayfs or a prepared directory), a fresh `/proc`,
//!   a minimal `/dev`, a read-only `/sys`, the extra mounts, `/etc/resolv.conf` and
//!   `/etc/hosts`, pivots into the new root, drops privileges to the requested user and
//!   Docker's default capability set, and execs the command as PID 1.
//! * [`OciRuntime`]: generates an OCI runtime bundle (`config.json` from `oci-spec`'s
//!   runtime types) and runs it with `runc`, `crun` or another OCI runtime.
//!
//! Both implement [`Executor`]. [`resolve_user`] turns a Dockerfile `USER` value into ids
//! by reading `/etc/passwd` and `/etc/group` inside a rootfs.
//!
//! Everything here needs Linux and root (real root: no user namespaces are used).

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

mod caps;
mod cgroup;
pub mod emulation;
mod files;
mod helper;
mod host;
mod init;
mod mounts;
mod net;
mod oci;
mod proto;
mod root;
mod sandbox;
mod seccomp;
mod spec;
mod stubs;
mod sys;
mod user;

pub use net::slirp4netns_path;
pub use oci::OciRuntime;
pub use sandbox::Sandbox;
pub use spec::{
    Limits, Mount, MountKind, Network, Rootfs, RunSpec, User, DEFAULT_HOSTNAME, DEFAULT_PATH,
    DEFAULT_PIDS_LIMIT,
};
pub use user::resolve_user;

/// The `argv[1]` marker that turns a binary calling [`maybe_run_init`] into the sandbox helper.
pub const INIT_ARG: &str = proto::INIT_ARG;

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The [`RunSpec`] cannot be run as given.
    #[error("invalid run spec: {0}")]
    InvalidSpec(String),
    /// An I/O error on the calling (host) side.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The sandbox could not be set up, or the command could not be started.
    #[error("sandbox setup failed: {0}")]
    Setup(String),
    /// The OCI runtime reported an error.
    #[error("oci runtime {runtime} failed: {message}")]
    Runtime {
        /// The runtime's path.
        runtime: String,
        /// The runtime's last error message.
        message: String,
    },
    /// No such OCI runtime.
    #[error("oci runtime {0} not found")]
    RuntimeNotFound(String),
    /// The run was cancelled through its [`CancelToken`].
    #[error("run was cancelled")]
    Cancelled,
    /// A user name that is not in the rootfs' `/etc/passwd`.
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UserNotFound(String),
    /// A group name that is not in the rootfs' `/etc/group`.
    #[error("unable to find group {0}: no matching entries in group file")]
    GroupNotFound(String),
    /// A malformed user value, or an unreadable passwd/group file.
    #[error("invalid user {user:?}: {reason}")]
    InvalidUser {
        /// The user value as given.
        user: String,
        /// Why it was refused.
        reason: String,
    },
    /// Writing the command's output to a caller's sink failed.
    #[error("failed to write command output")]
    Output(#[source] io::Error),
    /// The command ran into its process limit: a fork or clone was refused.
    #[error("the step ran into its limit of {0} processes and threads (a fork bomb?); raise it with --pids-limit")]
    PidsLimit(u64),
    /// The kernel killed the command at its memory limit.
    #[error("the step ran out of memory: it was killed at its limit of {0} bytes; raise it with --memory")]
    MemoryLimit(u64),
    /// The helper process died without reporting a result.
    #[error("sandbox helper exited unexpectedly ({0})")]
    Helper(String),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitStatus {
    /// It exited with this code.
    Code(i32),
    /// It was killed by this signal.
    Signal(i32),
}

impl ExitStatus {
    /// The shell-style exit code: the code, or 128 + the signal number.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(s) => 128 + s,
        }
    }

    /// Whether the command exited with code 0.
    pub fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit code: {c}"),
            ExitStatus::Signal(s) => write!(f, "killed by signal {s}"),
        }
    }
}

/// A cloneable cancellation flag. Cancelling kills the whole sandbox (its PID namespace)
/// and makes `run` return [`Error::Cancelled`] once everything is cleaned up.
///
/// Runs poll it every 50 ms.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels every run holding this token (or a clone of it).
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

impl From<Arc<AtomicBool>> for CancelToken {
    fn from(flag: Arc<AtomicBool>) -> Self {
        CancelToken(flag)
    }
}

/// Something that runs a [`RunSpec`]: the built-in [`Sandbox`] or an [`OciRuntime`].
///
/// Object safe, so the engine can pick one at run time (see [`executor_for`]).
pub trait Executor: Send + Sync {
    /// Runs the command, streaming its stdout and stderr to the sinks (its stdin is
    /// `/dev/null`), and returns how it ended. A non-zero exit is `Ok`; `Err` means the
    /// sandbox could not run it, or it was cancelled.
    fn run(
        &self,
        spec: &RunSpec,
        stdout: &mut (dyn Write + Send),
        stderr: &mut (dyn Write + Send),
        cancel: &CancelToken,
    ) -> Result<ExitStatus>;
}

/// The executor for an engine `--runtime` value: `builtin` (or empty) for the built-in
/// [`Sandbox`] (helper: the current executable), anything else (`runc`, `crun`, a path)
/// for an [`OciRuntime`].
///
/// `temp_dir` is where each run's private directory (bundle, generated files, mount
/// point) goes; the engine passes its cache dir's per-process scratch directory, which
/// is swept after a crash, so a `kill -9` leaves nothing in `/tmp`.
pub fn executor_for(
    runtime: &str,
    temp_dir: Option<&std::path::Path>,
) -> Result<Box<dyn Executor>> {
    match (runtime, temp_dir) {
        ("" | "builtin", None) => Ok(Box::new(Sandbox::new()?)),
        ("" | "builtin", Some(t)) => Ok(Box::new(Sandbox::new()?.temp_dir(t))),
        (other, None) => Ok(Box::new(OciRuntime::new(other)?)),
        (other, Some(t)) => Ok(Box::new(OciRuntime::new(other)?.temp_dir(t))),
    }
}

/// The running executable, as a path that stays valid when the file is replaced.
fn self_exe() -> Result<std::path::PathBuf> {
    let p = std::path::PathBuf::from("/proc/self/exe");
    if p.exists() {
        Ok(p)
    } else {
        std::env::current_exe().map_err(|e| Error::io("find the current executable", e))
    }
}

/// Runs the sandbox helper and exits if this process was started as one (`argv[1]` is
/// [`INIT_ARG`]); returns at once otherwise.
///
/// Call it as the very first thing in `main`, before any thread is started: the helper
/// forks, which is only safe while the process is single-threaded.
pub fn maybe_run_init() {
    let mut args = std::env::args_os();
    if args.nth(1).as_deref() == Some(std::ffi::OsStr::new(INIT_ARG)) {
        init::main();
    }
}
