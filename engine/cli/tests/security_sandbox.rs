//! A RUN step must not reach the host: devices, the keyring, kernel doors
//! closed by seccomp, the host's network, unbounded processes or memory, the
//! host's /tmp after a crash. Each test runs the same attack with the built-in
//! sandbox, runc and crun, and checks a canary the test put on the host.
//!
//! The attacks need system calls busybox cannot make (keyctl, unshare with
//! flags, abstract unix sockets), so they come from `probe/probe.c`, built
//! static here and copied into the image; it prints `ok …` or `err ERRNO`.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::*;

const RUNTIMES: &[&str] = &["builtin", "runc", "crun"];

/// The probe, compiled once per test process.
fn probe() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/probe/probe.c");
        let out = std::env::temp_dir().join(format!("engine-probe-{}", std::process::id()));
        run_ok(
            Command::new("cc")
                .args(["-static", "-O1", "-o"])
                .arg(&out)
                .arg(&src),
        );
        out
    })
}

struct Built {
    ok: bool,
    stderr: String,
    out: tempfile::TempDir,
}

impl Built {
    /// A file the build wrote into its image, `""` when missing.
    fn file(&self, path: &str) -> String {
        std::fs::read_to_string(self.out.path().join("rootfs").join(path)).unwrap_or_default()
    }
}

/// Builds `dockerfile` (with the probe at `/probe` of the context) with a
/// fresh cache, exporting the root filesystem.
fn build(runtime: &str, dockerfile: &str, extra: &[&str]) -> Built {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    std::fs::copy(probe(), ctx.path().join("probe")).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let o = engine()
        .args(["build", "--progress", "plain", "--runtime", runtime])
        .arg("--cache-dir")
        .arg(cache.path())
        .args(["--build-context", &busybox_context_flag()])
        .arg("-o")
        .arg(format!(
            "type=local,dest={}",
            out.path().join("rootfs").display()
        ))
        .args(extra)
        .arg(ctx.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    Built {
        ok: o.status.success(),
        stderr,
        out,
    }
}

fn assert_denied(b: &Built, file: &str, runtime: &str) {
    let r = b.file(file);
    assert!(
        r.starts_with("err "),
        "{runtime}: {file} should be refused, got {r:?}\n{}",
        b.stderr
    );
}

// ---------------------------------------------------------------------------
// 1. Devices

/// A loop device over a file holding a canary, detached when dropped.
struct Loop {
    dev: String,
    backing: tempfile::NamedTempFile,
}

impl Loop {
    fn new() -> Loop {
        let mut backing = tempfile::NamedTempFile::new().unwrap();
        let mut data = b"LOOP-DEVICE-CANARY".to_vec();
        data.resize(1 << 20, 0);
        backing.write_all(&data).unwrap();
        backing.flush().unwrap();
        let o = run_ok(
            Command::new("losetup")
                .args(["-f", "--show"])
                .arg(backing.path()),
        );
        let dev = String::from_utf8_lossy(&o.stdout).trim().to_string();
        Loop { dev, backing }
    }

    fn major_minor(&self) -> (u64, u64) {
        use std::os::unix::fs::MetadataExt;
        let rdev = std::fs::metadata(&self.dev).unwrap().rdev();
        (libc::major(rdev) as u64, libc::minor(rdev) as u64)
    }

    fn backing_untouched(&self) -> bool {
        let data = std::fs::read(self.backing.path()).unwrap();
        data.starts_with(b"LOOP-DEVICE-CANARY") && data[18..].iter().all(|&b| b == 0)
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

fn kernel_log_has(needle: &str) -> bool {
    let o = Command::new("dmesg").output();
    o.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(needle))
}

#[test]
fn device_nodes_can_be_made_but_not_opened() {
    let lo = Loop::new();
    let (maj, min) = lo.major_minor();
    for runtime in RUNTIMES {
        let mark = format!("engine-kmsg-canary-{runtime}-{}", std::process::id());
        let df = format!(
            "FROM busybox\nCOPY probe /probe\n\
             RUN mknod /loop-in-layer b {maj} {min}\n\
             RUN mknod /tmp/l b {maj} {min} && ls -l /tmp/l > /made; \
             /probe open /tmp/l > /r-loop; \
             /probe write /tmp/l PWNED > /r-loop-write; \
             /probe open /loop-in-layer > /r-layer; \
             mknod /dev/l2 b {maj} {min} && /probe open /dev/l2 > /r-devdir; \
             mknod /tmp/kmsg c 1 11 && /probe write /tmp/kmsg {mark} > /r-kmsg; \
             mknod /tmp/kvm c 10 232 && /probe open /tmp/kvm > /r-kvm; \
             mknod /tmp/mem c 1 1 && /probe open /tmp/mem > /r-mem; \
             /probe open /dev/null > /r-null; /probe open /dev/urandom > /r-urandom; \
             /probe open /dev/zero > /r-zero; rm -f /tmp/l /tmp/kmsg /tmp/kvm /tmp/mem /dev/l2\n\
             RUN rm /loop-in-layer\n"
        );
        let b = build(runtime, &df, &[]);
        assert!(b.ok, "{runtime}: {}", b.stderr);
        // Making device nodes works: images need them.
        assert!(
            b.file("made").starts_with('b'),
            "{runtime}: {:?}",
            b.file("made")
        );
        for f in [
            "r-loop",
            "r-loop-write",
            "r-layer",
            "r-devdir",
            "r-kmsg",
            "r-kvm",
            "r-mem",
        ] {
            assert_denied(&b, f, runtime);
        }
        assert!(!b.file("r-loop").contains("CANARY"));
        // The sandbox's own devices stay usable.
        for f in ["r-null", "r-urandom", "r-zero"] {
            assert!(
                b.file(f).starts_with("ok"),
                "{runtime}: {f}: {:?}",
                b.file(f)
            );
        }
        assert!(
            lo.backing_untouched(),
            "{runtime}: the loop device was written"
        );
        assert!(!kernel_log_has(&mark), "{runtime}: wrote to the kernel log");
    }
}

// ---------------------------------------------------------------------------
// 2 and 3. The keyring, and kernel doors closed by seccomp

const KEYCTL_READ: libc::c_long = 11;
const KEYCTL_SEARCH: libc::c_long = 10;
const KEYCTL_INVALIDATE: libc::c_long = 21;
const KEY_SPEC_USER_KEYRING: libc::c_long = -4;

fn add_user_key(name: &str, payload: &str) -> i64 {
    let name = std::ffi::CString::new(name).unwrap();
    // SAFETY: add_key with valid strings and a payload of the given length.
    let id = unsafe {
        libc::syscall(
            libc::SYS_add_key,
            c"user".as_ptr(),
            name.as_ptr(),
            payload.as_ptr(),
            payload.len(),
            KEY_SPEC_USER_KEYRING,
        )
    };
    assert!(id > 0, "add_key: {}", std::io::Error::last_os_error());
    id
}

fn search_user_key(name: &str) -> Option<i64> {
    let name = std::ffi::CString::new(name).unwrap();
    // SAFETY: keyctl search with valid strings.
    let id = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_SEARCH,
            KEY_SPEC_USER_KEYRING,
            c"user".as_ptr(),
            name.as_ptr(),
            0,
        )
    };
    (id > 0).then_some(id)
}

fn read_key(id: i64) -> String {
    let mut buf = vec![0u8; 256];
    // SAFETY: the buffer is as long as we say.
    let n = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_READ,
            id,
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    assert!(n >= 0, "keyctl read: {}", std::io::Error::last_os_error());
    buf.truncate(n as usize);
    String::from_utf8_lossy(&buf).into_owned()
}

struct Key(i64);

impl Drop for Key {
    fn drop(&mut self) {
        // SAFETY: plain keyctl.
        unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_INVALIDATE, self.0) };
    }
}

#[test]
fn the_host_keyring_is_out_of_reach() {
    let name = format!("engine-canary-{}", std::process::id());
    let key = Key(add_user_key(&name, "keyring-secret-canary"));
    for runtime in RUNTIMES {
        let added = format!("{name}-added-by-{runtime}");
        let df = format!(
            "FROM busybox\nCOPY probe /probe\n\
             RUN /probe key-search user {name} > /r-search; \
             /probe key-search session {name} > /r-session; \
             /probe key-read {id} > /r-read; \
             /probe key-update {id} pwned > /r-update; \
             /probe key-add user {added} x > /r-add\n",
            id = key.0
        );
        let b = build(runtime, &df, &[]);
        assert!(b.ok, "{runtime}: {}", b.stderr);
        for f in ["r-search", "r-session", "r-read", "r-update", "r-add"] {
            assert_denied(&b, f, runtime);
            assert!(!b.file(f).contains("keyring-secret-canary"));
        }
        assert_eq!(read_key(key.0), "keyring-secret-canary", "{runtime}");
        if let Some(id) = search_user_key(&added) {
            drop(Key(id));
            panic!("{runtime}: a RUN step added a key to the host's keyring");
        }
    }
}

#[test]
fn seccomp_closes_user_namespaces_unless_insecure_is_granted() {
    let df = "FROM busybox\nCOPY probe /probe\n\
              RUN /probe unshare-user > /r-userns; /probe unshare-net > /r-netns; \
              (unshare -r true && echo ok || echo err-unshare | tr - ' ') > /r-unshare-r 2>/dev/null\n";
    let insecure = "FROM busybox\nCOPY probe /probe\n\
                    RUN --security=insecure /probe unshare-user > /r-userns\n";
    for runtime in RUNTIMES {
        let b = build(runtime, df, &[]);
        assert!(b.ok, "{runtime}: {}", b.stderr);
        for f in ["r-userns", "r-netns", "r-unshare-r"] {
            assert_denied(&b, f, runtime);
        }
        assert_eq!(b.file("r-userns").trim(), "err EPERM", "{runtime}");

        // --security=insecure is an entitlement: refused unless granted...
        let b = build(runtime, insecure, &[]);
        assert!(!b.ok, "{runtime}: insecure ran without --allow");
        assert!(
            b.stderr.contains("security.insecure") && b.stderr.contains("--allow"),
            "{runtime}: {}",
            b.stderr
        );
        // ... and lifts the filter when it is.
        let b = build(runtime, insecure, &["--allow", "security.insecure"]);
        assert!(b.ok, "{runtime}: {}", b.stderr);
        assert!(
            b.file("r-userns").starts_with("ok"),
            "{runtime}: {:?}",
            b.file("r-userns")
        );
    }
}

// ---------------------------------------------------------------------------
// 4. The network

/// A TCP server answering every connection with `greeting`.
fn serve_tcp(addr: &str, greeting: &'static str) -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind(addr).unwrap();
    let a = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let _ = c.write_all(greeting.as_bytes());
        }
    });
    a
}

/// An abstract unix socket server answering with `greeting`.
fn serve_abstract(name: &str, greeting: &'static str) {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let l = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let _ = c.write_all(greeting.as_bytes());
        }
    });
}

/// This host's address on its default route (no packet is sent).
fn host_address() -> std::net::IpAddr {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    s.connect("192.0.2.1:9").unwrap();
    s.local_addr().unwrap().ip()
}

#[test]
fn run_steps_have_their_own_network_with_outbound_access() {
    require_tool("/usr/bin/slirp4netns");
    let lo = serve_tcp("127.0.0.1:0", "host-loopback-canary");
    let abs = format!("engine-abstract-canary-{}", std::process::id());
    serve_abstract(&abs, "abstract-canary");
    let ip = host_address();
    let out = serve_tcp(&format!("{ip}:0"), "outbound-ok");
    let df = format!(
        "FROM busybox\nCOPY probe /probe\n\
         RUN /probe tcp 127.0.0.1 {lp} > /r-loopback; /probe abstract {abs} > /r-abstract; \
         /probe tcp {ip} {op} > /r-outbound; cat /etc/resolv.conf > /r-resolv\n",
        lp = lo.port(),
        op = out.port()
    );
    let host = format!(
        "FROM busybox\nCOPY probe /probe\n\
         RUN --network=host /probe tcp 127.0.0.1 {lp} > /r-loopback\n",
        lp = lo.port()
    );
    for runtime in RUNTIMES {
        let b = build(runtime, &df, &[]);
        assert!(b.ok, "{runtime}: {}", b.stderr);
        assert_denied(&b, "r-loopback", runtime);
        assert_denied(&b, "r-abstract", runtime);
        assert_eq!(
            b.file("r-outbound").trim(),
            "ok read outbound-ok",
            "{runtime}: no outbound access\n{}",
            b.stderr
        );
        assert!(b.file("r-resolv").contains("nameserver"), "{runtime}");

        let b = build(runtime, &host, &[]);
        assert!(!b.ok, "{runtime}: --network=host ran without --allow");
        assert!(
            b.stderr.contains("network.host") && b.stderr.contains("Dockerfile:3"),
            "{runtime}: {}",
            b.stderr
        );
        let b = build(runtime, &host, &["--allow", "network.host"]);
        assert!(b.ok, "{runtime}: {}", b.stderr);
        assert_eq!(b.file("r-loopback").trim(), "ok read host-loopback-canary");
    }
}

// ---------------------------------------------------------------------------
// 5. Limits

#[test]
fn a_process_flood_ends_in_a_clear_error() {
    // Bounded (300 short sleeps), so that a host where limits cannot be set
    // fails this test instead of going down.
    let df = "FROM busybox\n\
              RUN i=0; while [ $i -lt 300 ]; do sleep 1 & i=$((i+1)); done; wait\n";
    for runtime in RUNTIMES {
        let b = build(runtime, df, &["--pids-limit", "64"]);
        assert!(!b.ok, "{runtime}: 300 processes ran under a limit of 64");
        assert!(
            b.stderr.contains("limit of 64 processes"),
            "{runtime}: {}",
            b.stderr
        );
        assert!(!b.stderr.contains("without process and memory limits"));
        // Under the default limit the same step runs.
        let b = build(runtime, df, &[]);
        assert!(b.ok, "{runtime}: {}", b.stderr);
    }
}

#[test]
fn memory_limit_ends_in_a_clear_error() {
    let df = "FROM busybox\n\
              RUN --mount=type=tmpfs,target=/t dd if=/dev/zero of=/t/fill bs=1M count=160\n";
    for runtime in RUNTIMES {
        let b = build(runtime, df, &["--memory", "48m"]);
        assert!(!b.ok, "{runtime}: 160 MiB fit in 48 MiB");
        assert!(
            b.stderr.contains("ran out of memory"),
            "{runtime}: {}",
            b.stderr
        );
        let b = build(runtime, df, &["--memory", "512m"]);
        assert!(b.ok, "{runtime}: {}", b.stderr);
    }
}

#[test]
fn bad_limit_and_entitlement_flags_are_refused() {
    for (args, needle) in [
        (&["--pids-limit", "0"][..], "--pids-limit 0"),
        (&["--memory", "lots"][..], "--memory lots"),
        (&["--memory", "1k"][..], "minimum is 6 MiB"),
        (&["--allow", "kernel.everything"][..], "unknown entitlement"),
    ] {
        let b = build("builtin", "FROM busybox\nRUN true\n", args);
        assert!(!b.ok, "{args:?}");
        assert!(b.stderr.contains(needle), "{args:?}: {}", b.stderr);
    }
}

// ---------------------------------------------------------------------------
// 10. A killed engine leaves nothing in /tmp, and its leftovers are swept

#[test]
fn kill_9_during_run_leaves_nothing_behind() {
    for (i, runtime) in RUNTIMES.iter().enumerate() {
        // A duration no other process on the host is sleeping for.
        let secs = 100_000 + (std::process::id() % 1000) * 10 + i as u32;
        let ctx = tempfile::tempdir().unwrap();
        std::fs::write(
            ctx.path().join("Dockerfile"),
            format!("FROM busybox\nRUN echo started-sleeping && sleep {secs}\n"),
        )
        .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let mut child = engine()
            .args(["build", "--progress", "plain", "--runtime", runtime])
            .arg("--cache-dir")
            .arg(cache.path())
            .args(["--build-context", &busybox_context_flag()])
            .env("TMPDIR", tmp.path())
            .arg(ctx.path())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = std::io::Read::read(&mut err, &mut buf) {
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&seen).contains("started-sleeping") {
                    return true;
                }
            }
            false
        });
        assert!(reader.join().unwrap(), "{runtime}: the step never started");
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(500));
        let left: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{runtime}: left in TMPDIR: {left:?}");
        // The sandbox died with the engine (give the kernel a moment to reap).
        let sleeping = || {
            let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
            String::from_utf8_lossy(&ps.stdout)
                .lines()
                .any(|l| l.trim() == format!("sleep {secs}"))
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while sleeping() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert!(!sleeping(), "{runtime}: the step outlived the engine");
        // The next build with the same cache sweeps the dead session.
        std::fs::write(ctx.path().join("Dockerfile"), "FROM busybox\nRUN true\n").unwrap();
        run_ok(
            engine()
                .args(["build", "--progress", "quiet", "--runtime", runtime])
                .arg("--cache-dir")
                .arg(cache.path())
                .args(["--build-context", &busybox_context_flag()])
                .env("TMPDIR", tmp.path())
                .arg(ctx.path()),
        );
        let sessions: Vec<_> = std::fs::read_dir(cache.path().join("tmp"))
            .map(|d| d.map(|e| e.unwrap().file_name()).collect())
            .unwrap_or_default();
        assert!(
            sessions.is_empty(),
            "{runtime}: stale scratch: {sessions:?}"
        );
    }
}
