//! Running external commands with a time limit and readable failures.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a finished command printed.
#[derive(Debug, Clone)]
pub struct Finished {
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// How a command is shown in messages: program and arguments, shell-ish.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains([' ', '"', '\'']) {
            s.push_str(&format!(" '{a}'"));
        } else {
            s.push(' ');
            s.push_str(&a);
        }
    }
    s
}

/// Keeps the last `max` lines of `text`.
pub fn tail(text: &str, max: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(max);
    let mut out = String::new();
    if start > 0 {
        out.push_str(&format!("  [... {start} lines elided]\n"));
    }
    for l in &lines[start..] {
        out.push_str("  | ");
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// Runs `cmd` to completion (stdin closed, output captured), killing it
/// after `limit`. A non-zero exit status is an error carrying the tail of
/// both output streams.
pub fn run(cmd: &mut Command, limit: Duration) -> Result<Finished, String> {
    let shown = describe(cmd);
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start `{shown}`: {e}"))?;
    let mut out_pipe = child.stdout.take().expect("stdout is piped");
    let mut err_pipe = child.stderr.take().expect("stderr is piped");
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() > limit => {
                // Only the child we started, by its handle.
                let _ = child.kill();
                timed_out = true;
                break child
                    .wait()
                    .map_err(|e| format!("waiting for `{shown}`: {e}"))?;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting for `{shown}`: {e}")),
        }
    };
    let stdout = String::from_utf8_lossy(&out_reader.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
    let elapsed = start.elapsed();
    if timed_out {
        return Err(format!(
            "`{shown}` timed out after {}s\nstdout:\n{}stderr:\n{}",
            limit.as_secs(),
            tail(&stdout, 20),
            tail(&stderr, 40)
        ));
    }
    if !status.success() {
        return Err(format!(
            "`{shown}` failed ({status})\nstdout:\n{}stderr:\n{}",
            tail(&stdout, 20),
            tail(&stderr, 40)
        ));
    }
    Ok(Finished {
        stdout,
        stderr,
        elapsed,
    })
}
