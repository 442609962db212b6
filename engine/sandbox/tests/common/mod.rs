//! Shared fixtures: a busybox rootfs, the executors under test, output capture.
#![allow(dead_code)]

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use engine_sandbox::{
    CancelToken, Executor, ExitStatus, OciRuntime, Result, Rootfs, RunSpec, Sandbox,
};

pub const HELPER: &str = env!("CARGO_BIN_EXE_engine-sandbox-init");

const APPLETS: &[&str] = &[
    "sh", "echo", "ls", "cat", "id", "hostname", "touch", "sleep", "pwd", "rm", "mkdir",
    "readlink", "env", "grep", "test", "true", "false", "stat", "wc", "printf", "head", "kill",
];

pub fn require_root() {
    // SAFETY: geteuid cannot fail.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the sandbox tests need root (real root, not a user namespace)"
    );
}

/// The static busybox binary, or a loud failure.
pub fn busybox() -> PathBuf {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        if Path::new(p).is_file() {
            return PathBuf::from(p);
        }
    }
    panic!("busybox not found: install busybox-static (see .ci/run)");
}

/// Writes a minimal busybox rootfs into `dir` (which must not exist yet).
pub fn make_rootfs(dir: &Path) {
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::create_dir_all(dir.join("root")).unwrap();
    std::fs::create_dir_all(dir.join("home/app")).unwrap();
    std::fs::copy(busybox(), dir.join("bin/busybox")).unwrap();
    for a in APPLETS {
        symlink("busybox", dir.join("bin").join(a)).unwrap();
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("etc/group"),
        "root:x:0:\nwheel:x:10:app\napp:x:1000:\n",
    )
    .unwrap();
}

/// A private directory holding a fresh busybox rootfs at `root`.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
}

impl Fixture {
    pub fn new() -> Self {
        require_root();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        make_rootfs(&root);
        Fixture { dir, root }
    }

    pub fn spec(&self, script: &str) -> RunSpec {
        let mut s = RunSpec::new(
            Rootfs::Dir(self.root.clone()),
            vec!["/bin/sh".into(), "-c".into(), script.into()],
        );
        s.env = vec!["PATH=/bin".into()];
        s
    }
}

pub fn runtime(name: &str) -> OciRuntime {
    match OciRuntime::new(name) {
        Ok(r) => r.with_helper(HELPER),
        Err(e) => panic!("{e}: install runc and crun (see .ci/run)"),
    }
}

/// Every executor under test: the built-in sandbox, runc and crun.
pub fn executors() -> Vec<(&'static str, Box<dyn Executor>)> {
    require_root();
    vec![
        ("builtin", Box::new(Sandbox::with_helper(HELPER))),
        ("runc", Box::new(runtime("runc"))),
        ("crun", Box::new(runtime("crun"))),
    ]
}

pub struct Output {
    pub status: Result<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The exit code, with the error (and stderr) in the panic message otherwise.
    pub fn code(&self, who: &str) -> i32 {
        match &self.status {
            Ok(s) => s.code(),
            Err(e) => panic!("{who}: run failed: {e}\nstderr: {}", self.stderr),
        }
    }

    pub fn ok(&self, who: &str) -> &str {
        assert_eq!(self.code(who), 0, "{who}: stderr: {}", self.stderr);
        &self.stdout
    }
}

pub fn run(exec: &dyn Executor, spec: &RunSpec) -> Output {
    run_with(exec, spec, &CancelToken::new())
}

pub fn run_with(exec: &dyn Executor, spec: &RunSpec, cancel: &CancelToken) -> Output {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let status = exec.run(spec, &mut out, &mut err, cancel);
    Output {
        status,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    }
}

/// The host's mount table, minus fields that change without a mount (ids are stable).
pub fn host_mounts() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

/// Pids of host processes whose command line contains `needle`.
pub fn processes_with(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmd).contains(needle) && pid != std::process::id() {
                found.push(pid);
            }
        }
    }
    found
}
