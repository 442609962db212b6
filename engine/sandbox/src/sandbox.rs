//! The built-in sandbox, caller side.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::files::{stub_base, Prepared};
use crate::proto::{Message, Mode};
use crate::spec::RunSpec;
use crate::{helper, stubs, CancelToken, Error, Executor, ExitStatus, Result};

/// After cancellation, how long the helper gets to kill the sandbox before it is killed
/// itself (which still takes the sandbox down, through the parent death signal).
const KILL_GRACE: Duration = Duration::from_secs(5);

/// The built-in sandbox (see the [crate docs](crate)).
#[derive(Debug, Clone)]
pub struct Sandbox {
    helper: PathBuf,
    temp_dir: Option<PathBuf>,
}

impl Sandbox {
    /// A sandbox whose helper is the current executable (`/proc/self/exe`, which stays
    /// valid even if the binary is replaced on disk), which must call
    /// [`maybe_run_init`](crate::maybe_run_init) first thing in `main`.
    pub fn new() -> Result<Self> {
        Ok(Self::with_helper(crate::self_exe()?))
    }

    /// A sandbox with another helper executable (one that calls
    /// [`maybe_run_init`](crate::maybe_run_init)), e.g. the `engine-sandbox-init` binary of
    /// this crate.
    pub fn with_helper(helper: impl Into<PathBuf>) -> Self {
        Sandbox {
            helper: helper.into(),
            temp_dir: None,
        }
    }

    /// Where per-run private directories go (default: [`std::env::temp_dir`]).
    pub fn temp_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.temp_dir = Some(dir.into());
        self
    }

    /// The helper executable.
    pub fn helper(&self) -> &Path {
        &self.helper
    }

    /// Runs `spec`, streaming the command's stdout and stderr to the sinks, and returns
    /// how it ended. Blocks until the command and everything it started are gone, and the
    /// mount points it had to create in the rootfs are removed again.
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
        let request = prepared.request(spec, Mode::Builtin);
        let (mut termed, mut killed) = (false, false);
        let mut on_cancel = |pid: u32, since: Duration| {
            // SAFETY: plain kill(2); the helper is not reaped yet, so `pid` is still it.
            if !termed {
                termed = true;
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
            } else if !killed && since > KILL_GRACE {
                killed = true;
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
        };
        let outcome = helper::run(
            &self.helper,
            &request,
            &mut stdout,
            &mut stderr,
            cancel,
            &mut on_cancel,
        )?;
        stubs::cleanup(stub_base(spec), &helper::stubs(&outcome.messages));
        drop(prepared);
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
        let status = outcome
            .messages
            .iter()
            .find_map(|m| match m {
                Message::Exited(c) => Some(ExitStatus::Code(*c)),
                Message::Signaled(s) => Some(ExitStatus::Signal(*s)),
                _ => None,
            })
            .ok_or_else(|| Error::Helper(outcome.status.to_string()))?;
        match helper::limit_error(&outcome.messages, status) {
            Some(e) => Err(e),
            None => Ok(status),
        }
    }
}

impl Executor for Sandbox {
    fn run(
        &self,
        spec: &RunSpec,
        stdout: &mut (dyn Write + Send),
        stderr: &mut (dyn Write + Send),
        cancel: &CancelToken,
    ) -> Result<ExitStatus> {
        Sandbox::run(self, spec, stdout, stderr, cancel)
    }
}
