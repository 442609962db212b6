//! Generated `/etc/resolv.conf` and `/etc/hosts`, and the per-run private directory.

use std::io::Read;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use crate::proto::InitRequest;
use crate::spec::{Rootfs, RunSpec};
use crate::{Error, Result};

const FALLBACK_RESOLV_CONF: &str = "nameserver 8.8.8.8\nnameserver 8.8.4.4\n";

/// `/etc/hosts` of a RUN step, as BuildKit writes it.
pub(crate) fn hosts(hostname: &str) -> String {
    format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n")
}

/// `/etc/resolv.conf` of a RUN step in a private network namespace: the host's, with
/// its loopback resolvers (systemd-resolved's 127.0.0.53, a local dnsmasq), which the
/// namespace cannot reach, replaced by slirp4netns's forwarder.
pub(crate) fn private_resolv_conf(host: &str) -> String {
    let mut out = String::new();
    let mut forwarder = false;
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            let addr = words.next().unwrap_or("");
            let loopback = addr
                .parse::<std::net::IpAddr>()
                .is_ok_and(|a| a.is_loopback());
            if loopback {
                if !forwarder {
                    forwarder = true;
                    out.push_str(&format!("nameserver {}\n", crate::net::SLIRP_DNS));
                }
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// `/etc/resolv.conf` of a RUN step: the host's, or public resolvers when it has none.
pub(crate) fn resolv_conf() -> String {
    let mut text = String::new();
    let read = std::fs::File::open("/etc/resolv.conf")
        .and_then(|f| f.take(64 << 10).read_to_string(&mut text));
    let has_ns = text
        .lines()
        .any(|l| l.split_whitespace().next() == Some("nameserver"));
    if read.is_ok() && has_ns {
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text
    } else {
        FALLBACK_RESOLV_CONF.to_string()
    }
}

/// The private directory of one run (mode 0700, removed when dropped) and the request
/// fields that live in it.
pub(crate) struct Prepared {
    pub dir: TempDir,
    pub root: PathBuf,
    pub lowers: Vec<PathBuf>,
    pub resolv_conf: PathBuf,
    pub hosts: PathBuf,
}

impl Prepared {
    pub(crate) fn new(spec: &RunSpec, temp_dir: Option<&Path>) -> Result<Self> {
        let base = temp_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(std::env::temp_dir);
        let dir = tempfile::Builder::new()
            .prefix("engine-sandbox-")
            .tempdir_in(&base)
            .map_err(|e| {
                Error::io(
                    format!("create a temporary directory in {}", base.display()),
                    e,
                )
            })?;
        let mkdir = |p: &Path| {
            std::fs::create_dir(p).map_err(|e| Error::io(format!("create {}", p.display()), e))
        };
        let (root, lowers) = match &spec.rootfs {
            Rootfs::Overlay { lowers, .. } => {
                let root = dir.path().join("rootfs");
                mkdir(&root)?;
                let lowers = if lowers.is_empty() {
                    let empty = dir.path().join("empty-lower");
                    mkdir(&empty)?;
                    vec![empty]
                } else {
                    lowers.clone()
                };
                (root, lowers)
            }
            Rootfs::Dir(d) => (d.clone(), Vec::new()),
        };
        let write = |name: &str, text: String| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).map_err(|e| Error::io(format!("write {}", p.display()), e))?;
            Ok::<_, Error>(p)
        };
        let resolv = match spec.network {
            crate::spec::Network::Private => private_resolv_conf(&resolv_conf()),
            _ => resolv_conf(),
        };
        let resolv_conf = write("resolv.conf", resolv)?;
        let hosts = write("hosts", hosts(&spec.hostname))?;
        Ok(Prepared {
            dir,
            root,
            lowers,
            resolv_conf,
            hosts,
        })
    }

    pub(crate) fn request(&self, spec: &RunSpec, mode: crate::proto::Mode) -> InitRequest {
        InitRequest {
            spec: spec.clone(),
            mode,
            root: self.root.clone(),
            lowers: self.lowers.clone(),
            resolv_conf: self.resolv_conf.clone(),
            hosts: self.hosts.clone(),
            parent_pid: std::process::id(),
            slirp: match spec.network {
                crate::spec::Network::Private => crate::net::slirp4netns_path(),
                _ => None,
            },
        }
    }
}

/// Where the stubs of a run ended up on the host: the upper directory of an overlay, or
/// the prepared directory.
pub(crate) fn stub_base(spec: &RunSpec) -> &Path {
    match &spec.rootfs {
        Rootfs::Overlay { upper, .. } => upper,
        Rootfs::Dir(d) => d,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_names_the_hostname() {
        let h = hosts("box");
        assert!(h.starts_with("127.0.0.1\tlocalhost box\n"));
        assert!(h.contains("::1\tlocalhost"));
    }

    #[test]
    fn private_resolv_conf_replaces_loopback_resolvers() {
        let r = private_resolv_conf(
            "search example.org\nnameserver 127.0.0.53\nnameserver ::1\nnameserver 10.1.2.3\n",
        );
        assert_eq!(
            r,
            "search example.org\nnameserver 10.0.2.3\nnameserver 10.1.2.3\n"
        );
    }

    #[test]
    fn resolv_conf_has_a_nameserver() {
        assert!(resolv_conf().contains("nameserver"));
    }
}
