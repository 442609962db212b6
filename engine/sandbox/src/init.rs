//! The helper process (started with [`INIT_ARG`](crate::INIT_ARG)).
//!
//! Built-in mode, single-threaded from the start:
//!
//! ```text
//! helper (host namespaces)          unshare(PID); fork; wait for the child, kill it on
//!   |                               SIGTERM/SIGINT/SIGHUP; report its exit status
//!   `- child = PID 1 of a new PID ns  unshare(mount, UTS, IPC, cgroup[, net]); mounts;
//!                                     pivot_root; drop privileges; execve the command
//! ```
//!
//! The child dies with the helper (`PR_SET_PDEATHSIG`), the helper with the caller's
//! thread, and when the child (the namespace's init) dies the kernel kills everything
//! else in its PID namespace; its mount namespace, holding every mount made here, goes
//! with the last of them.
//!
//! OCI mode: the helper enters a private mount namespace, mounts the overlay rootfs,
//! creates the mount targets, and execs the OCI runtime.

use std::convert::Infallible;
use std::ffi::CString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use rustix::fs::{self as rfs, FileType, Mode, OFlags};

use crate::cgroup::Cgroup;
use crate::mounts::{self, attach, clone_fd, clone_path, new_fs};
use crate::proto::{InitRequest, Message, Mode as RunMode, Stub, MAX_REQUEST};
use crate::root::{open_root, resolve, Create};
use crate::spec::{MountKind, Rootfs, RunSpec, User, DEFAULT_PATH};
use crate::sys::{self, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};
use crate::{caps, net, seccomp};

type R<T> = Result<T, String>;

/// Docker's masked paths: files get `/dev/null` bound over them, directories an empty
/// read-only tmpfs.
pub(crate) const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's read-only paths.
pub(crate) const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Device nodes bind-mounted from the host into the sandbox's `/dev`.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

fn ctx<E: std::fmt::Display>(what: impl std::fmt::Display) -> impl FnOnce(E) -> String {
    move |e| format!("{what}: {e}")
}

fn errno_ctx(what: impl std::fmt::Display) -> impl FnOnce(rustix::io::Errno) -> String {
    move |e| format!("{what}: {}", std::io::Error::from(e))
}

/// The channel back to the caller.
struct Status(UnixStream);

impl Status {
    fn send(&self, msg: &Message) {
        let mut line = serde_json::to_vec(msg).unwrap_or_default();
        line.push(b'\n');
        // The caller may be gone; nothing to do about it then.
        let _ = (&self.0).write_all(&line);
    }

    fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

pub(crate) fn main() -> ! {
    // fd 0 is the socket from the caller: move it to a close-on-exec fd and put
    // /dev/null on stdin, which the command inherits.
    // SAFETY: fcntl on fd 0.
    let fd = unsafe { libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 3) };
    if fd < 0 {
        eprintln!("engine-sandbox-init: no request socket on stdin");
        std::process::exit(125);
    }
    // SAFETY: fresh fd we own.
    let status = Status(UnixStream::from(unsafe { OwnedFd::from_raw_fd(fd) }));
    let code = match setup_and_run(&status) {
        Ok(code) => code,
        Err(msg) => {
            status.send(&Message::Error(msg));
            125
        }
    };
    std::process::exit(code)
}

fn setup_and_run(status: &Status) -> R<i32> {
    let devnull = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(ctx("open /dev/null"))?;
    // SAFETY: dup2 onto fd 0, which we own.
    sys::cvt(unsafe { libc::dup2(devnull.as_raw_fd(), 0) }).map_err(ctx("dup2 /dev/null"))?;
    drop(devnull);

    let mut raw = Vec::new();
    (&status.0)
        .take(MAX_REQUEST)
        .read_to_end(&mut raw)
        .map_err(ctx("read request"))?;
    let req: InitRequest = serde_json::from_slice(&raw).map_err(ctx("parse request"))?;

    // Die with the caller's thread; it may already be gone.
    sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0)
        .map_err(ctx("set parent death signal"))?;
    // SAFETY: getppid cannot fail.
    if unsafe { libc::getppid() } as u32 != req.parent_pid {
        return Err("caller exited".into());
    }
    sys::close_fds_except(&[status.fd()]).map_err(ctx("close inherited fds"))?;

    match &req.mode {
        RunMode::Builtin => run_builtin(&req, status),
        RunMode::Oci { argv, config } => run_oci(&req, argv, config, status),
    }
}

// ---------------------------------------------------------------------------------------
// Built-in mode

fn sigset(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// The run's cgroup (see `cgroup`), or none, with a warning to the caller,
/// where the host has no hierarchy that can hold the limits.
fn run_cgroup(req: &InitRequest, nest: bool, status: &Status) -> Option<Cgroup> {
    Cgroup::create(req.spec.limits, nest).unwrap_or_else(|e| {
        status.send(&Message::Warning(format!(
            "this RUN step runs without process and memory limits: {e}"
        )));
        None
    })
}

fn run_builtin(req: &InitRequest, status: &Status) -> R<i32> {
    let cgroup = run_cgroup(req, false, status);
    let r = supervise(req, status, cgroup.as_ref());
    if let Some(c) = cgroup {
        c.remove();
    }
    r
}

/// Forks the sandbox's PID 1 inside the run's network namespace and cgroup, waits for
/// it, and reports how it ended.
fn supervise(req: &InitRequest, status: &Status, cgroup: Option<&Cgroup>) -> R<i32> {
    let watched = sigset(&[
        libc::SIGCHLD,
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGHUP,
        libc::SIGQUIT,
    ]);
    // SAFETY: valid sigset; blocking before the fork leaves no window for a lost signal.
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &watched, std::ptr::null_mut()) };

    // The helper itself moves into the run's network namespace: the NAT process it
    // starts stays in the host's, and the sandbox inherits the new one.
    let slirp = net::enter(req.spec.network, req.slirp.as_deref())?;
    // The child watches the read end: it sees a hang-up once the helper is gone.
    let (life_r, life_w) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(errno_ctx("pipe"))?;
    // And reads one byte from this before it execs the command: the network is ready.
    let (go_r, go_w) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(errno_ctx("pipe"))?;
    // SAFETY: plain syscall; affects only children created from now on.
    sys::cvt(unsafe { libc::unshare(libc::CLONE_NEWPID) }).map_err(ctx("unshare pid namespace"))?;
    // Join the cgroup just for the fork: the child is born in it, the helper and the
    // NAT process stay out.
    let home = match cgroup {
        Some(c) => Some(c.join()?),
        None => None,
    };
    // SAFETY: this process is single-threaded (the helper never starts threads), so the
    // child may do anything.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        drop((life_w, go_w));
        let Err(msg) = child(req, status, life_r, go_r);
        status.send(&Message::Error(msg));
        // SAFETY: leave without running anything of the parent's.
        unsafe { libc::_exit(127) };
    }
    drop((life_r, go_r));
    // slirp4netns configured the namespace while the child set itself up; the child
    // waits for this go-ahead before it execs the command.
    if let Some(s) = &slirp {
        if let Err(e) = s.wait_ready() {
            // SAFETY: our unreaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            return Err(e);
        }
    }
    // SAFETY: write to our own pipe; a child that is gone just won't read it.
    unsafe { libc::write(go_w.as_raw_fd(), b"g".as_ptr().cast(), 1) };
    drop(go_w);
    if let (Some(c), Some(home)) = (cgroup, &home) {
        if let Err(e) = c.leave(home) {
            // SAFETY: our unreaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            return Err(e);
        }
    }

    loop {
        // SAFETY: valid sigset; a null info pointer is allowed.
        let sig = unsafe { libc::sigwaitinfo(&watched, std::ptr::null_mut()) };
        if sig < 0 {
            continue; // EINTR
        }
        if sig != libc::SIGCHLD {
            // Cancelled: kill the namespace's init, and with it the whole namespace.
            // The child is not reaped yet, so its pid cannot have been reused.
            // SAFETY: plain syscall.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            continue;
        }
        let mut st = 0;
        // SAFETY: plain syscall.
        let r = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
        if r == pid {
            if let Some(hit) = cgroup.and_then(Cgroup::hit) {
                status.send(&Message::Limit(hit));
            }
            let msg = if libc::WIFEXITED(st) {
                Message::Exited(libc::WEXITSTATUS(st))
            } else {
                Message::Signaled(libc::WTERMSIG(st))
            };
            status.send(&msg);
            drop(life_w);
            drop(slirp);
            return Ok(0);
        }
    }
}

fn parent_alive(life: BorrowedFd<'_>) -> R<()> {
    let mut pfd = libc::pollfd {
        fd: life.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    if n != 0 {
        return Err("sandbox helper exited".into());
    }
    Ok(())
}

/// PID 1 of the new PID namespace. Returns only on failure.
fn child(req: &InitRequest, status: &Status, life: OwnedFd, go: OwnedFd) -> R<Infallible> {
    sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0)
        .map_err(ctx("set parent death signal"))?;
    parent_alive(life.as_fd())?;
    let spec = &req.spec;

    // The network namespace was chosen by the helper (see `net`); the cgroup namespace
    // is made here, inside the run's cgroup, so the step sees its cgroup as the root.
    let flags = libc::CLONE_NEWNS | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC | libc::CLONE_NEWCGROUP;
    // SAFETY: plain syscall.
    sys::cvt(unsafe { libc::unshare(flags) }).map_err(ctx("unshare namespaces"))?;
    mounts::make_rprivate().map_err(ctx("make mounts private"))?;
    rustix::system::sethostname(spec.hostname.as_bytes()).map_err(errno_ctx("sethostname"))?;

    mount_rootfs(req, rootfs_attrs(spec))?;
    let root = open_root(&req.root).map_err(ctx("open rootfs"))?;
    let mut stubs = Vec::new();
    system_mounts(root.as_fd(), spec.insecure, &mut stubs)?;
    user_mounts(root.as_fd(), spec, true, &mut stubs)?;
    etc_files(root.as_fd(), req, true, &mut stubs)?;
    for s in stubs {
        status.send(&Message::Stub(s));
    }

    rustix::process::fchdir(&root).map_err(errno_ctx("chdir to rootfs"))?;
    drop(root);
    rustix::process::pivot_root(".", ".").map_err(errno_ctx("pivot_root"))?;
    rustix::mount::unmount(".", rustix::mount::UnmountFlags::DETACH)
        .map_err(errno_ctx("detach old root"))?;
    rustix::process::chdir("/").map_err(errno_ctx("chdir /"))?;
    // Nothing from the host but stdio may stay open past this point: a leaked
    // directory fd would be a way out through /proc/self/fd (CVE-2024-21626).
    sys::close_fds_except(&[status.fd(), life.as_raw_fd(), go.as_raw_fd()])
        .map_err(ctx("close fds"))?;

    let root = open_root(Path::new("/")).map_err(ctx("open /"))?;
    let user = match &spec.user_lookup {
        Some(u) => crate::user::resolve_user_at(root.as_fd(), u).map_err(|e| e.to_string())?,
        None => spec.user.clone(),
    };
    let mut env = spec.env.clone();
    if spec.env_get("HOME").is_none() {
        let home = crate::user::home_of(root.as_fd(), user.uid).unwrap_or_else(|| "/".into());
        env.push(format!("HOME={home}"));
    }
    let cwd = spec.cwd_or_root();
    let dir = resolve(root.as_fd(), cwd, Some(Create::Dir), &mut Vec::new())
        .map_err(ctx(format!("working directory {cwd}")))?;
    if dir.file_type != FileType::Directory {
        return Err(format!("working directory {cwd}: not a directory"));
    }
    rustix::process::fchdir(&dir.fd).map_err(errno_ctx(format!("chdir to {cwd}")))?;
    drop((dir, root));
    let here = rustix::process::getcwd(Vec::new()).map_err(errno_ctx("getcwd"))?;
    if here.as_bytes().first() != Some(&b'/') {
        return Err(format!(
            "working directory {cwd} is outside the container root"
        ));
    }
    // Only now, so that the working directory could be created.
    if spec.readonly_rootfs {
        sys::mount_setattr_path(c"/", false, MOUNT_ATTR_RDONLY)
            .map_err(ctx("make rootfs read-only"))?;
    }

    let mut b = [0u8; 1];
    if rustix::io::read(&go, &mut b) != Ok(1) {
        return Err("sandbox helper gave no go-ahead".into());
    }
    drop(go);
    new_session_keyring()?;
    drop_privileges(&user, spec)?;
    reset_signals();
    // SAFETY: plain syscalls.
    unsafe {
        libc::setsid();
        libc::umask(0o022);
    }
    // Changing credentials cleared the parent death signal.
    sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0)
        .map_err(ctx("set parent death signal"))?;
    parent_alive(life.as_fd())?;
    drop(life);
    sys::close_fds_except(&[status.fd()]).map_err(ctx("close fds"))?;
    Err(exec(&spec.args, &env))
}

/// Mount attributes of the rootfs: `nodev`, so that device nodes of the image (or made
/// by the step, which may create them: images ship them) cannot be opened. Only the
/// sandbox's own `/dev` entries, bound from the host, can. `--security=insecure` lifts it.
fn rootfs_attrs(spec: &RunSpec) -> u64 {
    if spec.insecure {
        0
    } else {
        MOUNT_ATTR_NODEV
    }
}

fn mount_rootfs(req: &InitRequest, attrs: u64) -> R<()> {
    match &req.spec.rootfs {
        Rootfs::Overlay { upper, work, .. } => {
            mounts::mount_overlay(&req.lowers, upper, work, &req.root, attrs)
        }
        Rootfs::Dir(dir) => {
            let m = clone_path(dir, true).map_err(ctx(format!("bind rootfs {}", dir.display())))?;
            if attrs != 0 {
                sys::mount_setattr(m.as_fd(), true, attrs)
                    .map_err(ctx(format!("set rootfs attributes on {}", dir.display())))?;
            }
            mounts::attach_path(m.as_fd(), &req.root)
                .map_err(ctx(format!("attach rootfs on {}", req.root.display())))
        }
    }
}

/// Resolves a system mount point (`/proc`, `/dev`, `/sys`), creating it if missing; a
/// symlink there is refused.
fn system_target(root: BorrowedFd<'_>, path: &str, stubs: &mut Vec<Stub>) -> R<OwnedFd> {
    let r = resolve(root, path, Some(Create::Dir), stubs)
        .map_err(ctx(format!("mount point {path}")))?;
    if r.rel != Path::new(path.trim_start_matches('/')) || r.file_type != FileType::Directory {
        return Err(format!(
            "mount point {path} must be a directory, not a symlink"
        ));
    }
    Ok(r.fd)
}

fn system_mounts(root: BorrowedFd<'_>, insecure: bool, stubs: &mut Vec<Stub>) -> R<()> {
    let attach_to = |mnt: OwnedFd, target: OwnedFd, what: &str| {
        attach(mnt.as_fd(), target.as_fd()).map_err(ctx(format!("attach {what}")))
    };
    // /proc, for the new PID namespace.
    let t = system_target(root, "/proc", stubs)?;
    let m = new_fs(
        "proc",
        &[],
        MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
    )?;
    attach_to(m, t, "/proc")?;

    // /dev: a small `nodev` tmpfs with a few host devices bound in (each bind is a
    // mount of its own, from the host's /dev, so they stay usable): a node the step
    // makes there with mknod cannot be opened.
    let t = system_target(root, "/dev", stubs)?;
    let dev_attrs = if insecure {
        MOUNT_ATTR_NOSUID
    } else {
        MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV
    };
    let m = new_fs(
        "tmpfs",
        &[("mode", Some("755")), ("size", Some("65536k"))],
        dev_attrs,
    )?;
    attach_to(m, t, "/dev")?;
    let dev = system_target(root, "/dev", &mut Vec::new())?;
    for name in DEVICES {
        let host = Path::new("/dev").join(name);
        let src = match clone_path(&host, false) {
            Ok(src) => src,
            // A host without /dev/tty (say) still gets the others.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) && *name == "tty" => continue,
            Err(e) => return Err(format!("bind {}: {e}", host.display())),
        };
        drop(
            rfs::openat(
                &dev,
                *name,
                OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o666),
            )
            .map_err(errno_ctx(format!("create /dev/{name}")))?,
        );
        let t = rfs::openat(
            &dev,
            *name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno_ctx(format!("open /dev/{name}")))?;
        attach_to(src, t, &format!("/dev/{name}"))?;
    }
    let mkdir = |name: &str| -> R<OwnedFd> {
        rfs::mkdirat(&dev, name, Mode::from_raw_mode(0o755))
            .map_err(errno_ctx(format!("mkdir /dev/{name}")))?;
        rfs::openat(
            &dev,
            name,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno_ctx(format!("open /dev/{name}")))
    };
    let t = mkdir("pts")?;
    let m = new_fs(
        "devpts",
        &[
            ("newinstance", None),
            ("ptmxmode", Some("0666")),
            ("mode", Some("0620")),
            ("gid", Some("5")),
        ],
        MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
    )?;
    attach_to(m, t, "/dev/pts")?;
    let t = mkdir("shm")?;
    let m = new_fs(
        "tmpfs",
        &[("mode", Some("1777")), ("size", Some("65536k"))],
        MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
    )?;
    attach_to(m, t, "/dev/shm")?;
    let t = mkdir("mqueue")?;
    // A kernel without POSIX message queues just goes without.
    if let Ok(m) = new_fs(
        "mqueue",
        &[],
        MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
    ) {
        attach_to(m, t, "/dev/mqueue")?;
    }
    let mut links = vec![
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ];
    if resolve(root, "/proc/kcore", None, &mut Vec::new()).is_ok() {
        links.push(("core", "/proc/kcore"));
    }
    for (name, target) in links {
        rfs::symlinkat(target, &dev, name).map_err(errno_ctx(format!("symlink /dev/{name}")))?;
    }

    // /sys, read-only.
    let t = system_target(root, "/sys", stubs)?;
    let m = new_fs(
        "sysfs",
        &[],
        MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
    )?;
    attach_to(m, t, "/sys")?;

    for path in MASKED_PATHS {
        let r = match resolve(root, path, None, &mut Vec::new()) {
            Ok(r) => r,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(format!("masked path {path}: {e}")),
        };
        let m = if r.file_type == FileType::Directory {
            new_fs("tmpfs", &[], MOUNT_ATTR_RDONLY)?
        } else {
            clone_path(Path::new("/dev/null"), false).map_err(ctx("bind /dev/null"))?
        };
        attach_to(m, r.fd, path)?;
    }
    for path in READONLY_PATHS {
        let r = match resolve(root, path, None, &mut Vec::new()) {
            Ok(r) => r,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(format!("read-only path {path}: {e}")),
        };
        let m = clone_fd(r.fd.as_fd(), true).map_err(ctx(format!("bind {path}")))?;
        sys::mount_setattr(m.as_fd(), true, MOUNT_ATTR_RDONLY)
            .map_err(ctx(format!("make {path} read-only")))?;
        attach_to(m, r.fd, path)?;
    }
    Ok(())
}

/// Resolves (creating it if missing) the target of an extra mount.
fn user_target(root: BorrowedFd<'_>, target: &str, dir: bool, stubs: &mut Vec<Stub>) -> R<OwnedFd> {
    let create = if dir { Create::Dir } else { Create::File };
    let r = resolve(root, target, Some(create), stubs)
        .map_err(ctx(format!("mount target {target}")))?;
    if r.is_root() {
        return Err(format!(
            "mount target {target} resolves to the root of the container"
        ));
    }
    match (dir, r.file_type == FileType::Directory) {
        (true, false) => Err(format!("mount target {target} is not a directory")),
        (false, true) => Err(format!("mount target {target} is a directory")),
        _ => Ok(r.fd),
    }
}

/// The extra mounts: attached when `attach` (built-in mode), targets created only
/// otherwise (OCI mode, where the runtime mounts).
fn user_mounts(
    root: BorrowedFd<'_>,
    spec: &RunSpec,
    do_attach: bool,
    stubs: &mut Vec<Stub>,
) -> R<()> {
    for m in spec.sorted_mounts() {
        match &m.kind {
            MountKind::Bind { source, readonly } => {
                let meta = std::fs::metadata(source)
                    .map_err(ctx(format!("bind mount source {}", source.display())))?;
                let target = user_target(root, &m.target, meta.is_dir(), stubs)?;
                if !do_attach {
                    continue;
                }
                let src = clone_path(source, true)
                    .map_err(ctx(format!("bind mount source {}", source.display())))?;
                // Device nodes in a cache mount or a bound snapshot are as closed as
                // those of the rootfs.
                let mut attrs = MOUNT_ATTR_NODEV;
                if *readonly {
                    attrs |= MOUNT_ATTR_RDONLY;
                }
                sys::mount_setattr(src.as_fd(), true, attrs)
                    .map_err(ctx(format!("set attributes of {}", m.target)))?;
                attach(src.as_fd(), target.as_fd())
                    .map_err(ctx(format!("bind mount on {}", m.target)))?;
            }
            MountKind::Tmpfs { size } => {
                let target = user_target(root, &m.target, true, stubs)?;
                if !do_attach {
                    continue;
                }
                let size = size.map(|s| s.to_string());
                let mut opts = vec![("mode", Some("1777"))];
                if let Some(s) = &size {
                    opts.push(("size", Some(s.as_str())));
                }
                let mnt = new_fs("tmpfs", &opts, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)?;
                attach(mnt.as_fd(), target.as_fd())
                    .map_err(ctx(format!("tmpfs on {}", m.target)))?;
            }
        }
    }
    Ok(())
}

/// `/etc/resolv.conf` and `/etc/hosts`: the generated files bound over them (created as
/// stubs when the image lacks them, like runc does for BuildKit).
fn etc_files(
    root: BorrowedFd<'_>,
    req: &InitRequest,
    do_attach: bool,
    stubs: &mut Vec<Stub>,
) -> R<()> {
    for (target, source) in [
        ("/etc/resolv.conf", &req.resolv_conf),
        ("/etc/hosts", &req.hosts),
    ] {
        let r = resolve(root, target, Some(Create::File), stubs).map_err(ctx(target))?;
        if r.file_type != FileType::RegularFile || !do_attach {
            continue;
        }
        let m = clone_path(source, false).map_err(ctx(format!("bind {}", source.display())))?;
        attach(m.as_fd(), r.fd.as_fd()).map_err(ctx(format!("bind on {target}")))?;
    }
    Ok(())
}

/// A fresh, empty session keyring, as runc gives each container: the engine's own
/// session keyring (and, through it, keys it can reach) is not inherited.
fn new_session_keyring() -> R<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: keyctl with a null name creates and joins an anonymous keyring.
    let r = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        // A kernel without keys support has nothing to leak.
        if e.raw_os_error() != Some(libc::ENOSYS) {
            return Err(format!("join a new session keyring: {e}"));
        }
    }
    Ok(())
}

fn drop_privileges(user: &User, spec: &RunSpec) -> R<()> {
    let caps = if spec.insecure { !0 } else { caps::DEFAULT };
    // The filter goes on while CAP_SYS_ADMIN is still held, so that no_new_privs is not
    // needed (it would break set-user-id programs such as sudo in RUN steps); everything
    // from here to execve is allowed by it.
    if !spec.insecure {
        seccomp::docker_default(caps).install()?;
    }
    for cap in 0..64u64 {
        if caps & (1 << cap) != 0 {
            continue;
        }
        match sys::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break, // past the last cap
            Err(e) => return Err(format!("drop capability {cap} from the bounding set: {e}")),
        }
    }
    let groups: Vec<libc::gid_t> = user.additional_gids.clone();
    // SAFETY: pointer and length of a live vector; single-threaded, so the libc wrappers
    // change the credentials of the whole process.
    unsafe {
        sys::cvt(libc::setgroups(groups.len(), groups.as_ptr())).map_err(ctx("setgroups"))?;
        sys::cvt(libc::setresgid(user.gid, user.gid, user.gid)).map_err(ctx("setgid"))?;
        sys::cvt(libc::setresuid(user.uid, user.uid, user.uid)).map_err(ctx("setuid"))?;
    }
    // Root keeps Docker's default set; for anyone else setuid already emptied it.
    let keep = caps & sys::cap_permitted().map_err(ctx("capget"))?;
    sys::capset(keep, keep, 0).map_err(ctx("capset"))?;
    sys::prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
        0,
    )
    .map_err(ctx("clear ambient capabilities"))?;
    if spec.no_new_privileges {
        sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0).map_err(ctx("set no_new_privs"))?;
    }
    Ok(())
}

/// Default dispositions and an empty mask: the Rust runtime ignores SIGPIPE, and the
/// helper blocked a few signals, and both would be inherited through execve.
fn reset_signals() {
    // SAFETY: resetting dispositions to SIG_DFL is always valid (SIGKILL and SIGSTOP
    // just fail); the empty set unblocks everything.
    unsafe {
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let empty = sigset(&[]);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
}

fn cstrings(v: &[String]) -> R<Vec<CString>> {
    v.iter()
        .map(|s| CString::new(s.as_str()).map_err(|_| format!("{s:?} contains a nul byte")))
        .collect()
}

fn execve(path: &CString, argv: &[CString], envp: &[CString]) -> std::io::Error {
    let mut a: Vec<*const libc::c_char> = argv.iter().map(|s| s.as_ptr()).collect();
    a.push(std::ptr::null());
    let mut e: Vec<*const libc::c_char> = envp.iter().map(|s| s.as_ptr()).collect();
    e.push(std::ptr::null());
    // SAFETY: nul-terminated strings in null-terminated arrays, all alive for the call.
    unsafe { libc::execve(path.as_ptr(), a.as_ptr(), e.as_ptr()) };
    std::io::Error::last_os_error()
}

/// Execs `args` with `env`, looking `args[0]` up in the environment's `PATH` like runc.
/// Returns only on failure.
fn exec(args: &[String], env: &[String]) -> String {
    let (argv, envp) = match (cstrings(args), cstrings(env)) {
        (Ok(a), Ok(e)) => (a, e),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    let name = &args[0];
    if name.contains('/') {
        let err = execve(&argv[0], &argv, &envp);
        return format!("exec {name:?}: {err}");
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    let mut denied = false;
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let Ok(candidate) = CString::new(format!("{dir}/{name}")) else {
            continue;
        };
        let err = execve(&candidate, &argv, &envp);
        match err.raw_os_error() {
            Some(
                libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ELOOP | libc::ENAMETOOLONG,
            ) => {}
            Some(libc::EACCES) => denied = true,
            _ => return format!("exec {:?}: {err}", candidate.to_string_lossy()),
        }
    }
    if denied {
        format!("exec: {name:?}: permission denied")
    } else {
        format!("exec: {name:?}: executable file not found in $PATH")
    }
}

// ---------------------------------------------------------------------------------------
// OCI mode

/// crun refuses to run on hosts in cgroup "hybrid" mode when the cgroup2 hierarchy has
/// controllers. Inside our private mount namespace only, detach that hierarchy: the
/// runtime then sees a plain cgroup v1 host.
fn hide_hybrid_cgroup2() {
    let unified = Path::new("/sys/fs/cgroup/unified");
    let busy = std::fs::read_to_string(unified.join("cgroup.controllers"))
        .map(|c| !c.trim().is_empty())
        .unwrap_or(false);
    if busy {
        let _ = rustix::mount::unmount(unified, rustix::mount::UnmountFlags::DETACH);
    }
}

fn run_oci(req: &InitRequest, argv: &[String], config: &Path, status: &Status) -> R<i32> {
    // SAFETY: plain syscall.
    sys::cvt(unsafe { libc::unshare(libc::CLONE_NEWNS) })
        .map_err(ctx("unshare mount namespace"))?;
    mounts::make_rprivate().map_err(ctx("make mounts private"))?;
    hide_hybrid_cgroup2();
    if let Rootfs::Overlay { upper, work, .. } = &req.spec.rootfs {
        mounts::mount_overlay(&req.lowers, upper, work, &req.root, rootfs_attrs(&req.spec))?;
    }
    let root = open_root(&req.root).map_err(ctx("open rootfs"))?;
    let mut stubs = Vec::new();
    for path in ["/proc", "/dev", "/sys"] {
        system_target(root.as_fd(), path, &mut stubs)?;
    }
    user_mounts(root.as_fd(), &req.spec, false, &mut stubs)?;
    etc_files(root.as_fd(), req, false, &mut stubs)?;
    for s in stubs {
        status.send(&Message::Stub(s));
    }
    if let Some(u) = &req.spec.user_lookup {
        let user = crate::user::resolve_user_at(root.as_fd(), u).map_err(|e| e.to_string())?;
        patch_config_user(config, &user)?;
    }
    drop(root);
    let argv = cstrings(argv)?;
    let env = cstrings(&[format!("PATH={DEFAULT_PATH}")])?;

    // The runtime's container nests in the run's cgroup (config.json's cgroupsPath
    // names a child of it), where the limits and their counters are.
    let cgroup = run_cgroup(req, true, status);
    if let Some(c) = &cgroup {
        patch_config_cgroup(config, &c.runtime_path())?;
    }
    let r = (|| {
        // The container gets no network namespace of its own in config.json: it
        // inherits the one made here, as in built-in mode.
        let slirp = net::enter(req.spec.network, req.slirp.as_deref())?;
        if let Some(s) = &slirp {
            s.wait_ready()?;
        }
        let watched = sigset(&[libc::SIGCHLD]);
        // SAFETY: valid sigset, blocked before the fork so no SIGCHLD is lost.
        unsafe { libc::sigprocmask(libc::SIG_BLOCK, &watched, std::ptr::null_mut()) };
        // SAFETY: single-threaded helper; the child only execs.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(format!("fork: {}", std::io::Error::last_os_error()));
        }
        if pid == 0 {
            let _ = sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0);
            reset_signals();
            let err = execve(&argv[0], &argv, &env);
            status.send(&Message::Error(format!(
                "exec {}: {err}",
                argv[0].to_string_lossy()
            )));
            // SAFETY: leave without running anything of the parent's.
            unsafe { libc::_exit(127) };
        }
        let mut st = 0;
        loop {
            // SAFETY: our own child.
            let r = unsafe { libc::waitpid(pid, &mut st, 0) };
            if r == pid {
                break;
            }
            if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return Err(format!(
                    "wait for the runtime: {}",
                    std::io::Error::last_os_error()
                ));
            }
        }
        if let Some(hit) = cgroup.as_ref().and_then(Cgroup::hit) {
            status.send(&Message::Limit(hit));
        }
        drop(slirp);
        Ok(if libc::WIFEXITED(st) {
            libc::WEXITSTATUS(st)
        } else {
            128 + libc::WTERMSIG(st)
        })
    })();
    if let Some(c) = cgroup {
        c.remove();
    }
    r
}

/// Points the bundle's `config.json` at the run's cgroup.
fn patch_config_cgroup(config: &Path, path: &Path) -> R<()> {
    patch_config(config, |v| {
        v["linux"]["cgroupsPath"] = serde_json::Value::from(path.to_string_lossy().into_owned());
    })
}

/// Rewrites the bundle's `config.json` with `change`.
fn patch_config(config: &Path, change: impl FnOnce(&mut serde_json::Value)) -> R<()> {
    let text = std::fs::read(config).map_err(ctx("read config.json"))?;
    let mut v: serde_json::Value =
        serde_json::from_slice(&text).map_err(ctx("parse config.json"))?;
    change(&mut v);
    let text = serde_json::to_vec_pretty(&v).map_err(ctx("serialize config.json"))?;
    std::fs::write(config, text).map_err(ctx("write config.json"))
}

/// Writes resolved credentials into the bundle's `config.json`.
fn patch_config_user(config: &Path, user: &User) -> R<()> {
    patch_config(config, |v| {
        v["process"]["user"] = serde_json::json!({
            "uid": user.uid,
            "gid": user.gid,
            "additionalGids": user.additional_gids,
        });
    })
}
