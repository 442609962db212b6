//! The network namespace of a run (helper side).
//!
//! [`Network::Private`] and [`Network::None`] give the helper a new network namespace
//! before it forks the sandbox (or execs an OCI runtime, which then inherits it): the
//! host's loopback services and abstract unix sockets live in the host's namespace and
//! are out of reach. For `Private`, `slirp4netns` (a user-mode TCP/IP stack, the one
//! rootless BuildKit and Podman use) then gives the namespace a `tap0` with outbound
//! NAT; `--disable-host-loopback` keeps its gateway from forwarding to the host's
//! 127.0.0.1.
//!
//! `slirp4netns` is started from the host's namespace by a small launcher forked
//! before the helper leaves it. It dies with the helper (parent death signal, and its
//! `--exit-fd`), so a killed engine leaves no NAT process behind.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::pipe::{pipe_with, PipeFlags};

use crate::spec::Network;
use crate::sys;

/// The address slirp4netns gives the namespace's DNS forwarder.
pub(crate) const SLIRP_DNS: &str = "10.0.2.3";
/// How long slirp4netns gets to configure the namespace.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A running slirp4netns. Dropping it closes its exit fd, which ends it.
pub(crate) struct Slirp {
    pid: libc::pid_t,
    ready: OwnedFd,
    _exit_w: OwnedFd,
}

impl Slirp {
    /// Waits until slirp4netns has configured the namespace (it starts while the
    /// sandbox sets itself up).
    pub(crate) fn wait_ready(&self) -> Result<(), String> {
        wait_ready(&self.ready, self)
    }
}

impl Drop for Slirp {
    fn drop(&mut self) {
        // Not reaped here: its exit tears the tap device down, which takes the kernel
        // a network RCU grace period (~10 ms) that no step should wait for. The helper
        // exits right after; init reaps it.
        // SAFETY: our own unreaped child, so the pid is still it.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
    }
}

/// Moves the calling (single-threaded) helper into the network namespace `network`
/// asks for. Returns the NAT process for [`Network::Private`] when `slirp` is given,
/// still starting: call [`Slirp::wait_ready`] before the step's command runs.
pub(crate) fn enter(network: Network, slirp: Option<&Path>) -> Result<Option<Slirp>, String> {
    match network {
        Network::Host => Ok(None),
        Network::None => {
            unshare_net()?;
            Ok(None)
        }
        Network::Private => match slirp {
            None => {
                unshare_net()?;
                Ok(None)
            }
            Some(path) => start_slirp(path).map(Some),
        },
    }
}

fn unshare_net() -> Result<(), String> {
    // SAFETY: plain syscall.
    sys::cvt(unsafe { libc::unshare(libc::CLONE_NEWNET) })
        .map_err(|e| format!("unshare network namespace: {e}"))?;
    sys::loopback_up().map_err(|e| format!("bring up loopback: {e}"))
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    pipe_with(PipeFlags::CLOEXEC).map_err(|e| format!("pipe: {}", std::io::Error::from(e)))
}

fn start_slirp(path: &Path) -> Result<Slirp, String> {
    let (go_r, go_w) = pipe()?;
    let (ready_r, ready_w) = pipe()?;
    let (exit_r, exit_w) = pipe()?;
    let helper = std::process::id();
    let prog = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| "slirp4netns path contains a nul byte".to_string())?;
    let args: Vec<CString> = [
        path.to_string_lossy().into_owned(),
        "--configure".into(),
        "--mtu=65520".into(),
        "--disable-host-loopback".into(),
        format!("--ready-fd={}", ready_w.as_raw_fd()),
        format!("--exit-fd={}", exit_r.as_raw_fd()),
        helper.to_string(),
        "tap0".into(),
    ]
    .into_iter()
    .map(|a| CString::new(a).map_err(|_| "nul byte in slirp4netns arguments".to_string()))
    .collect::<Result<_, _>>()?;
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];

    // SAFETY: the helper is single-threaded; the child only makes async-signal-safe
    // calls before execve.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: async-signal-safe syscalls on fds we hold; _exit on any failure.
        unsafe {
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            );
            let mut b = [0u8; 1];
            // Wait until the helper is in its new namespace (or gone: read returns 0).
            if libc::read(go_r.as_raw_fd(), b.as_mut_ptr().cast(), 1) != 1 {
                libc::_exit(1);
            }
            // slirp4netns keeps these two across exec.
            for fd in [ready_w.as_raw_fd(), exit_r.as_raw_fd()] {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            }
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            if null >= 0 {
                libc::dup2(null, 0);
                libc::dup2(null, 1);
                libc::dup2(null, 2);
            }
            libc::execve(prog.as_ptr(), argv.as_ptr(), envp.as_ptr());
            libc::_exit(127);
        }
    }
    drop((go_r, ready_w, exit_r));
    let slirp = Slirp {
        pid,
        ready: ready_r,
        _exit_w: exit_w,
    };
    unshare_net()?;
    // SAFETY: write to our own pipe.
    if unsafe { libc::write(go_w.as_raw_fd(), b"g".as_ptr().cast(), 1) } != 1 {
        return Err("start slirp4netns: the launcher is gone".into());
    }
    drop(go_w);
    Ok(slirp)
}

fn wait_ready(ready: &OwnedFd, slirp: &Slirp) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "slirp4netns did not configure the network within {} s",
                READY_TIMEOUT.as_secs()
            ));
        }
        let mut pfd = libc::pollfd {
            fd: ready.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(1000) as libc::c_int) };
        if n < 0 {
            continue; // EINTR
        }
        if n == 0 {
            continue;
        }
        let mut b = [0u8; 1];
        // SAFETY: read into a live buffer.
        let r = unsafe { libc::read(ready.as_raw_fd(), b.as_mut_ptr().cast(), 1) };
        if r == 1 {
            return Ok(());
        }
        let mut st = 0;
        // SAFETY: our own child.
        let done = unsafe { libc::waitpid(slirp.pid, &mut st, libc::WNOHANG) } == slirp.pid;
        let how = if done && libc::WIFEXITED(st) {
            format!("exit code {}", libc::WEXITSTATUS(st))
        } else {
            "no reason given".to_string()
        };
        return Err(format!("slirp4netns failed to set up the network ({how})"));
    }
}

/// `slirp4netns` in the caller's `PATH` (or the default one), when installed.
pub fn slirp4netns_path() -> Option<std::path::PathBuf> {
    crate::host::find_in_path("slirp4netns")
}
