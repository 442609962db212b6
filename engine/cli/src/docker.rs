//! `--load`: the image goes into the local Docker daemon through its API
//! socket (`/var/run/docker.sock`, or `DOCKER_HOST=unix://PATH`), as
//! `docker load` sends it: `POST /images/load` with the docker archive as
//! the request body, streamed in chunks while the exporter writes it.
//!
//! HTTP/1.1 over a unix socket is a few lines: the request is written by
//! hand and the answer's head parsed with `httparse` (ureq, the registry
//! client, can reach a unix socket only through its unversioned transport
//! API).

use std::io::{BufWriter, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use crate::Failure;

const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
/// At most this much of an answer is read (load answers are a few lines).
const ANSWER_CAP: u64 = 16 << 20;

/// The daemon's API socket.
#[derive(Debug, Clone)]
pub struct Daemon {
    socket: PathBuf,
}

const NO_DAEMON_HINT: &str = "--load needs a running Docker daemon: start dockerd, or point \
     DOCKER_HOST at its socket (DOCKER_HOST=unix:///path/to/docker.sock); without one, write \
     the image with -o type=docker,dest=image.tar and `docker load -i image.tar` where a \
     daemon runs";

/// An HTTP answer: status and body (chunked transfer decoded).
struct Answer {
    status: u16,
    body: Vec<u8>,
}

impl Daemon {
    /// The socket `DOCKER_HOST` names (`unix://PATH`), or the default one.
    pub fn from_env() -> Result<Self, Failure> {
        Self::from_host(std::env::var("DOCKER_HOST").ok().as_deref())
    }

    fn from_host(host: Option<&str>) -> Result<Self, Failure> {
        let host = host.map(str::trim).filter(|h| !h.is_empty());
        let Some(host) = host else {
            return Ok(Daemon {
                socket: PathBuf::from(DEFAULT_SOCKET),
            });
        };
        match host.strip_prefix("unix://") {
            Some(path) if !path.is_empty() => Ok(Daemon {
                socket: PathBuf::from(path),
            }),
            _ => Err(Failure::hint(
                format!("--load: DOCKER_HOST={host} is not supported: the engine reaches the docker daemon through a unix socket only"),
                "set DOCKER_HOST=unix:///var/run/docker.sock (or unset it), or write the image with -o type=docker,dest=image.tar and `docker load -i image.tar`",
            )),
        }
    }

    fn shown(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    fn connect(&self) -> Result<UnixStream, Failure> {
        UnixStream::connect(&self.socket).map_err(|e| {
            let reason = match e.kind() {
                std::io::ErrorKind::NotFound => "no such socket".to_string(),
                std::io::ErrorKind::ConnectionRefused => {
                    "connection refused (is dockerd running?)".to_string()
                }
                _ => e.to_string().to_lowercase(),
            };
            let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
                "the socket is not yours to use: run as root or as a member of the docker group"
            } else {
                NO_DAEMON_HINT
            };
            Failure::infra(format!(
                "--load: cannot connect to the docker daemon at {}: {reason}",
                self.shown()
            ))
            .with_hint(hint)
        })
    }

    /// `GET /_ping`: checked before anything is built, so that a build
    /// never runs for an image that has nowhere to go.
    pub fn ping(&self) -> Result<(), Failure> {
        let stream = self.connect()?;
        let fail = |e: String| {
            Failure::infra(format!(
                "--load: the docker daemon at {} does not answer: {e}",
                self.shown()
            ))
            .with_hint(NO_DAEMON_HINT)
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| fail(e.to_string()))?;
        (&stream)
            .write_all(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
            .map_err(|e| fail(e.to_string()))?;
        let answer = read_answer(&stream).map_err(fail)?;
        if answer.status != 200 {
            return Err(fail(format!("HTTP {}", answer.status)));
        }
        Ok(())
    }

    /// Load a docker archive that `write` streams into the daemon; the
    /// names the daemon reports loading (`app:1`, or an image ID).
    pub fn load<R>(
        &self,
        write: impl FnOnce(&mut dyn Write) -> Result<R, Failure>,
    ) -> Result<(R, Vec<String>), Failure> {
        let stream = self.connect()?;
        let io = |e: std::io::Error| {
            Failure::infra(format!(
                "--load: cannot send the image to the docker daemon at {}",
                self.shown()
            ))
            .caused_by(&e)
        };
        (&stream)
            .write_all(
                concat!(
                    "POST /images/load?quiet=1 HTTP/1.1\r\n",
                    "Host: docker\r\n",
                    "User-Agent: engine/",
                    env!("CARGO_PKG_VERSION"),
                    "\r\n",
                    "Content-Type: application/x-tar\r\n",
                    "Transfer-Encoding: chunked\r\n",
                    "Connection: close\r\n\r\n"
                )
                .as_bytes(),
            )
            .map_err(io)?;
        let written = {
            let mut body = BufWriter::with_capacity(1 << 20, Chunked(&stream));
            write(&mut body).and_then(|r| body.flush().map(|()| r).map_err(io))
        };
        let result = match written {
            Ok(r) => r,
            Err(e) => {
                // The daemon may have stopped reading because it refused
                // the archive: its answer says why.
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                if let Ok(a) = read_answer(&stream) {
                    if let Some(m) = daemon_error(&a) {
                        return Err(self.refused(&m));
                    }
                }
                return Err(e);
            }
        };
        (&stream).write_all(b"0\r\n\r\n").map_err(io)?;
        let answer = read_answer(&stream).map_err(|e| {
            Failure::infra(format!(
                "--load: reading the docker daemon's answer from {}: {e}",
                self.shown()
            ))
        })?;
        if let Some(m) = daemon_error(&answer) {
            return Err(self.refused(&m));
        }
        Ok((result, loaded_names(&answer.body)))
    }

    fn refused(&self, message: &str) -> Failure {
        Failure::infra(format!(
            "--load: the docker daemon at {} refused the image: {}",
            self.shown(),
            message.trim()
        ))
    }
}

/// HTTP/1.1 chunked transfer encoding of what is written.
struct Chunked<'a>(&'a UnixStream);

impl Write for Chunked<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut s = self.0;
        s.write_all(format!("{:x}\r\n", buf.len()).as_bytes())?;
        s.write_all(buf)?;
        s.write_all(b"\r\n")?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Read an answer to the end (the request asked to close the connection).
fn read_answer(stream: &UnixStream) -> Result<Answer, String> {
    let mut raw = Vec::new();
    stream
        .take(ANSWER_CAP)
        .read_to_end(&mut raw)
        .map_err(|e| e.to_string())?;
    parse_answer(&raw)
}

fn parse_answer(raw: &[u8]) -> Result<Answer, String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp
        .parse(raw)
        .map_err(|e| format!("bad HTTP answer: {e}"))?
    {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial if raw.is_empty() => {
            return Err("the connection was closed without an answer".into())
        }
        httparse::Status::Partial => return Err("incomplete HTTP answer".into()),
    };
    let status = resp.code.unwrap_or(0);
    let header = |name: &str| {
        resp.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    let rest = &raw[head_len..];
    let body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        dechunk(rest)?
    } else if let Some(n) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        rest.get(..n)
            .ok_or("the answer is shorter than its Content-Length")?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Answer { status, body })
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunked answer")?;
        let size_text = String::from_utf8_lossy(&rest[..eol]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size `{size_text}`"))?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = rest.get(..size).ok_or("truncated chunk")?;
        out.extend_from_slice(chunk);
        rest = rest.get(size + 2..).ok_or("truncated chunk")?;
    }
}

/// The JSON messages of an answer body (one or more, concatenated).
fn messages(body: &[u8]) -> Vec<serde_json::Value> {
    serde_json::Deserializer::from_slice(body)
        .into_iter::<serde_json::Value>()
        .map_while(Result::ok)
        .collect()
}

/// The daemon's error, from a failed status or an `error` message of a
/// streamed answer.
fn daemon_error(a: &Answer) -> Option<String> {
    let msgs = messages(&a.body);
    let from_messages = msgs.iter().find_map(|m| {
        m.get("errorDetail")
            .and_then(|d| d.get("message"))
            .or_else(|| m.get("error"))
            .or_else(|| (a.status >= 400).then(|| m.get("message")).flatten())
            .and_then(|v| v.as_str())
            .map(str::to_string)
    });
    match from_messages {
        Some(m) => Some(m),
        None if a.status >= 400 => Some(format!(
            "HTTP {}: {}",
            a.status,
            String::from_utf8_lossy(&a.body).trim()
        )),
        None => None,
    }
}

/// `Loaded image: app:1` / `Loaded image ID: sha256:…` → `app:1`, `sha256:…`.
fn loaded_names(body: &[u8]) -> Vec<String> {
    messages(body)
        .iter()
        .filter_map(|m| m.get("stream")?.as_str().map(str::to_string))
        .flat_map(|s| s.lines().map(str::to_string).collect::<Vec<_>>())
        .filter_map(|l| {
            l.strip_prefix("Loaded image ID: ")
                .or_else(|| l.strip_prefix("Loaded image: "))
                .map(|n| n.trim().to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_host_forms() {
        assert_eq!(
            Daemon::from_host(None).unwrap().socket,
            PathBuf::from(DEFAULT_SOCKET)
        );
        assert_eq!(
            Daemon::from_host(Some("unix:///run/user/1000/docker.sock"))
                .unwrap()
                .socket,
            PathBuf::from("/run/user/1000/docker.sock")
        );
        for bad in ["tcp://127.0.0.1:2375", "ssh://host", "unix://"] {
            assert!(Daemon::from_host(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn answers_chunked_or_not() {
        let a = parse_answer(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\n{\"str\r\n1d\r\neam\":\"Loaded image: app:1\\n\"}\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(a.status, 200);
        assert_eq!(loaded_names(&a.body), ["app:1"]);
        assert!(daemon_error(&a).is_none());
        let e = parse_answer(
            b"HTTP/1.1 200 OK\r\nContent-Length: 55\r\n\r\n{\"errorDetail\":{\"message\":\"bad tar\"},\"error\":\"bad tar\"}xxxx",
        )
        .unwrap();
        assert_eq!(daemon_error(&e).as_deref(), Some("bad tar"));
        let s =
            parse_answer(b"HTTP/1.1 500 Internal Server Error\r\n\r\n{\"message\":\"no space\"}")
                .unwrap();
        assert_eq!(daemon_error(&s).as_deref(), Some("no space"));
        assert!(parse_answer(b"").is_err());
    }
}
