//! The caller's side of a helper process: start it, hand it the request, stream its
//! output, watch for cancellation, collect its messages.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::proto::{InitRequest, Message, INIT_ARG};
use crate::{sys, CancelToken, Error, Result};

/// How often cancellation is checked.
const POLL_MS: libc::c_int = 50;

/// What a helper run produced.
pub(crate) struct Outcome {
    /// The helper's own exit status.
    pub status: std::process::ExitStatus,
    pub messages: Vec<Message>,
    pub cancelled: bool,
    /// The first error writing to a sink.
    pub output_error: Option<io::Error>,
}

/// Copies `from` to `to` until end of file. After a write error the rest is read and
/// dropped, so the command never blocks on a full pipe; the error is returned.
fn pump(mut from: impl Read, to: &mut (dyn Write + Send)) -> Option<io::Error> {
    let mut buf = vec![0u8; 64 << 10];
    let mut failed: Option<io::Error> = None;
    loop {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if failed.is_none() {
                    if let Err(e) = to.write_all(&buf[..n]) {
                        failed = Some(e);
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if failed.is_none() {
        if let Err(e) = to.flush() {
            failed = Some(e);
        }
    }
    failed
}

fn parse_messages(buf: &[u8]) -> Vec<Message> {
    buf.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect()
}

/// Runs `helper` with `request`. `on_cancel(pid, since)` is called on every poll tick
/// once `cancel` is set, with the helper's pid (not yet reaped, so it is safe to signal)
/// and the time since cancellation was first seen.
pub(crate) fn run(
    helper: &Path,
    request: &InitRequest,
    stdout: &mut (dyn Write + Send),
    stderr: &mut (dyn Write + Send),
    cancel: &CancelToken,
    on_cancel: &mut dyn FnMut(u32, Duration),
) -> Result<Outcome> {
    let json = serde_json::to_vec(request).map_err(|e| Error::io("serialize request", e.into()))?;
    let (ours, theirs) = UnixStream::pair().map_err(|e| Error::io("create socket pair", e))?;
    let mut child = Command::new(helper)
        .arg(INIT_ARG)
        .env_clear()
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Out of the terminal's process group: a Ctrl-C reaches the engine only, which
        // cancels properly.
        .process_group(0)
        .spawn()
        .map_err(|e| Error::io(format!("start sandbox helper {}", helper.display()), e))?;
    let pid = child.id();
    let pidfd = match sys::pidfd_open(pid) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::io("pidfd_open", e));
        }
    };
    // If the helper died early this fails; its exit status tells the rest.
    let _ = (&ours)
        .write_all(&json)
        .and_then(|()| ours.shutdown(Shutdown::Write));

    let out = child.stdout.take().expect("piped");
    let err = child.stderr.take().expect("piped");
    std::thread::scope(|s| {
        let t_out = s.spawn(move || pump(out, stdout));
        let t_err = s.spawn(move || pump(err, stderr));

        let mut buf = Vec::new();
        let mut open = ours.set_nonblocking(true).is_ok();
        let mut cancelled_at: Option<Instant> = None;
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: pidfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: ours.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            let n = if open { 2 } else { 1 };
            // SAFETY: `n` valid pollfds.
            unsafe { libc::poll(fds.as_mut_ptr(), n, POLL_MS) };
            if open {
                let mut tmp = [0u8; 8192];
                loop {
                    match (&ours).read(&mut tmp) {
                        Ok(0) => {
                            open = false;
                            break;
                        }
                        Ok(k) => buf.extend_from_slice(&tmp[..k]),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => {
                            open = false;
                            break;
                        }
                    }
                }
            }
            if cancel.is_cancelled() {
                let since = *cancelled_at.get_or_insert_with(Instant::now);
                on_cancel(pid, since.elapsed());
            }
            if fds[0].revents != 0 {
                break;
            }
        }
        let status = child
            .wait()
            .map_err(|e| Error::io("wait for sandbox helper", e));
        // Whatever is left: the helper is gone, and so is everything it started.
        if open {
            let _ = ours.set_nonblocking(false);
            let _ = ours.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = (&ours).read_to_end(&mut buf);
        }
        let e_out = t_out.join().unwrap_or(None);
        let e_err = t_err.join().unwrap_or(None);
        Ok(Outcome {
            status: status?,
            messages: parse_messages(&buf),
            cancelled: cancelled_at.is_some(),
            output_error: e_out.or(e_err),
        })
    })
}

/// The first setup error a helper reported.
pub(crate) fn first_error(messages: &[Message]) -> Option<&str> {
    messages.iter().find_map(|m| match m {
        Message::Error(e) => Some(e.as_str()),
        _ => None,
    })
}

/// The stubs a helper reported.
pub(crate) fn stubs(messages: &[Message]) -> Vec<crate::proto::Stub> {
    messages
        .iter()
        .filter_map(|m| match m {
            Message::Stub(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

/// The warnings a helper reported, as lines for the step's output.
pub(crate) fn write_warnings(messages: &[Message], stderr: &mut (dyn Write + Send)) {
    for m in messages {
        if let Message::Warning(w) = m {
            let _ = writeln!(stderr, "engine: warning: {w}");
        }
    }
}

/// The limit error to report for a run that ended with `status`, if it ran into one:
/// a refused fork always (a fork bomb's first shell exits 0), the memory limit when
/// the command failed.
pub(crate) fn limit_error(messages: &[Message], status: crate::ExitStatus) -> Option<Error> {
    messages.iter().find_map(|m| match m {
        Message::Limit(crate::cgroup::Hit::Pids(n)) => Some(Error::PidsLimit(*n)),
        Message::Limit(crate::cgroup::Hit::Memory(n)) if !status.success() => {
            Some(Error::MemoryLimit(*n))
        }
        _ => None,
    })
}
