//! Docker's default seccomp profile, as data, rendered as a BPF program for the built-in
//! sandbox and as the `linux.seccomp` section of an OCI runtime spec.
//!
//! # Where the table comes from
//!
//! [`PROFILE`] is written from the facts of moby's `profiles/seccomp/default.json` (the
//! `github.com/moby/profiles` module that Docker vendors), as of commit `3c28324` of
//! 2026-05-06 ("Revert: Block socketcall to prevent AF_ALG filter bypass"), the newest
//! change to the profile in a snapshot of that repository as of 2026-06-30. It includes
//! `lsm_*` gated by `CAP_SYS_ADMIN` (2025-05), the kernel 6.12/6.13 syscalls (`mseal`,
//! `listmount`, `statmount`, `*xattrat`, `uretprobe`), the socket rules that refuse
//! `AF_ALG` (38, 2026-04) and `AF_VSOCK` (40, 2022-12), and `socketcall` allowed again.
//! Entries keep the profile's order and structure: `defaultAction` `SCMP_ACT_ERRNO` with
//! `defaultErrnoRet` 1 (EPERM), one big allow-list, then entries with argument rules and
//! `includes`/`excludes` on capabilities and architectures, evaluated the way moby's
//! `setupSeccomp` does (every included capability must be kept, any excluded one drops the
//! entry, the architecture is the native one). `minKernel` entries (4.8, for `ptrace`,
//! `process_vm_readv`, `process_vm_writev`) count as present: the sandbox needs a far
//! newer kernel (its mount API) anyway.
//!
//! Syscall numbers for names come from [`SYSCALLS`]: the kernel's x86_64 and arm64
//! tables for exactly the names the profile uses (the numbers of seccompiler 0.5's kernel
//! 6.12 tables, which the crate does not export, plus 463..=466 of kernel 6.13; libc lacks
//! many of the recent ones). A test checks them against libc's `SYS_*` constants where
//! those exist. Names a native architecture does not have (`chown32`, `socketcall`,
//! `_llseek`, the `*_time64` calls...) are skipped, as libseccomp does.
//!
//! # Architectures
//!
//! Only the native architecture is compiled into [`Profile::bpf`] (x86_64 or aarch64;
//! elsewhere `bpf` fails). Docker's profile maps x86_64 to the sub-architectures x86 and
//! x32 and aarch64 to arm, so libseccomp's filter applies the same names to 32-bit
//! processes too. seccompiler only knows one architecture per filter, so here a syscall of
//! a foreign audit architecture (i386 `int 0x80`, arm32 compat) kills the process
//! (`SECCOMP_RET_KILL_PROCESS`), and an x32 syscall (native audit arch, number with bit
//! 0x4000_0000) matches no rule and gets EPERM: nothing of a foreign ABI gets through, but
//! 32-bit binaries do not run under the built-in sandbox. [`Profile::oci`] lists the
//! native family as Docker does (`SCMP_ARCH_X86_64`, `SCMP_ARCH_X86`, `SCMP_ARCH_X32`, or
//! `SCMP_ARCH_AARCH64`, `SCMP_ARCH_ARM`), so runc and crun behave exactly as under Docker.
//!
//! # Actions other than EPERM
//!
//! A seccompiler filter has one match action. The profile's only other result is
//! `clone3` → ENOSYS (38) without `CAP_SYS_ADMIN` (so that glibc falls back to `clone`,
//! whose flags the filter can see). [`Profile::bpf`] compiles each such errno group as its
//! own seccompiler filter (match: that errno, mismatch: allow) and turns its "allow"
//! returns into jumps to the main filter (match: allow, mismatch: EPERM) that follows it,
//! so the result is one program in which those syscalls return their own errno.
//!
//! Argument rules on `int`-typed arguments (`socket`'s family, `personality`'s persona)
//! compare the low 32 bits in the BPF program, which is what the kernel reads; libseccomp
//! compares all 64 bits on 64-bit architectures, so a caller setting the upper half could
//! slip `socket(AF_ALG)` past Docker's `> 40` rule. The OCI rendering cannot say "32 bits"
//! and keeps Docker's rules as they are.
//!
//! # Why `no_new_privs` is not set
//!
//! Without `no_new_privs` the kernel only lets a thread holding `CAP_SYS_ADMIN` install a
//! filter. [`Profile::install`] is meant to run in the sandbox's init while it still has
//! every capability, right before it drops to the step's capability set and user, and the
//! filter then stays on through `execve`. Setting `no_new_privs` (as seccompiler's
//! `apply_filter` does) would make set-user-id and file-capability programs (`sudo`, `su`,
//! `ping` on some distributions, `newuidmap`) lose their privileges in RUN steps, which
//! Docker does not do by default either.

use std::collections::btree_map::{self, BTreeMap};

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, LinuxSyscall,
};
use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};

/// `defaultErrnoRet`: what a syscall outside the profile returns.
const EPERM: u32 = libc::EPERM as u32;
/// What `clone3` returns without `CAP_SYS_ADMIN`.
const ENOSYS: u32 = libc::ENOSYS as u32;

// The capabilities the profile's `includes`/`excludes` name.
use crate::caps::{
    CAP_BPF, CAP_DAC_READ_SEARCH, CAP_PERFMON, CAP_SYSLOG, CAP_SYS_ADMIN, CAP_SYS_BOOT,
    CAP_SYS_CHROOT, CAP_SYS_MODULE, CAP_SYS_NICE, CAP_SYS_PACCT, CAP_SYS_PTRACE, CAP_SYS_RAWIO,
    CAP_SYS_TIME, CAP_SYS_TTY_CONFIG,
};

/// The namespace flags `clone` may not carry without `CAP_SYS_ADMIN`: CLONE_NEWNS,
/// NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET and NEWCGROUP.
const CLONE_NAMESPACES: u64 = 0x7E02_0000;
/// Socket families the profile refuses (`socket` is allowed below, between and above them).
const AF_ALG: u64 = 38;
const AF_VSOCK: u64 = 40;

/// What the filter does with a syscall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Let it run.
    Allow,
    /// Fail it with this errno, without running it.
    Errno(u32),
}

/// A comparison of the profile's argument rules (the ones the profile uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Lt,
    Gt,
    /// `arg & value == value_two`.
    MaskedEq,
}

/// One argument condition (`args` in the profile).
#[derive(Clone, Copy, Debug)]
struct Arg {
    index: u8,
    op: Op,
    value: u64,
    value_two: u64,
    /// The kernel reads the argument as a 32-bit `int`: the BPF program compares the low half.
    int32: bool,
}

const fn arg(index: u8, op: Op, value: u64) -> Arg {
    Arg {
        index,
        op,
        value,
        value_two: 0,
        int32: false,
    }
}

const fn int_arg(index: u8, op: Op, value: u64) -> Arg {
    Arg {
        int32: true,
        ..arg(index, op, value)
    }
}

/// An `includes` or `excludes` filter of the profile.
#[derive(Debug)]
struct When {
    caps: &'static [u32],
    /// Docker's (libseccomp's) architecture names: `amd64`, `x32`, `x86`, `arm64`, `arm`...
    arches: &'static [&'static str],
}

const ALWAYS: When = When {
    caps: &[],
    arches: &[],
};

const fn caps(caps: &'static [u32]) -> When {
    When { caps, arches: &[] }
}

const fn arches(arches: &'static [&'static str]) -> When {
    When { caps: &[], arches }
}

/// One entry of the profile's `syscalls` list.
#[derive(Debug)]
struct Entry {
    names: &'static [&'static str],
    action: Action,
    /// All must hold (several entries for one syscall are alternatives).
    args: &'static [Arg],
    includes: When,
    excludes: When,
}

const ALLOW: Entry = Entry {
    names: &[],
    action: Action::Allow,
    args: &[],
    includes: ALWAYS,
    excludes: ALWAYS,
};

/// Docker's default profile (see the module documentation for its version).
const PROFILE: &[Entry] = &[
    Entry {
        names: ALLOWED,
        ..ALLOW
    },
    // minKernel 4.8: before that, ptrace could bypass seccomp.
    Entry {
        names: &["process_vm_readv", "process_vm_writev", "ptrace"],
        ..ALLOW
    },
    // Every socket family but AF_ALG (38) and AF_VSOCK (40).
    Entry {
        names: &["socket"],
        args: &[int_arg(0, Op::Lt, AF_ALG)],
        ..ALLOW
    },
    Entry {
        names: &["socket"],
        args: &[int_arg(0, Op::Eq, 39)],
        ..ALLOW
    },
    Entry {
        names: &["socket"],
        args: &[int_arg(0, Op::Gt, AF_VSOCK)],
        ..ALLOW
    },
    // PER_LINUX, PER_LINUX32, UNAME26, UNAME26 | PER_LINUX32, and the query 0xffffffff.
    Entry {
        names: &["personality"],
        args: &[int_arg(0, Op::Eq, 0x0)],
        ..ALLOW
    },
    Entry {
        names: &["personality"],
        args: &[int_arg(0, Op::Eq, 0x8)],
        ..ALLOW
    },
    Entry {
        names: &["personality"],
        args: &[int_arg(0, Op::Eq, 0x2_0000)],
        ..ALLOW
    },
    Entry {
        names: &["personality"],
        args: &[int_arg(0, Op::Eq, 0x2_0008)],
        ..ALLOW
    },
    Entry {
        names: &["personality"],
        args: &[int_arg(0, Op::Eq, 0xffff_ffff)],
        ..ALLOW
    },
    Entry {
        names: &["sync_file_range2", "swapcontext"],
        includes: arches(&["ppc64le"]),
        ..ALLOW
    },
    Entry {
        names: &[
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "sync_file_range2",
            "breakpoint",
            "cacheflush",
            "set_tls",
        ],
        includes: arches(&["arm", "arm64"]),
        ..ALLOW
    },
    Entry {
        names: &["arch_prctl"],
        includes: arches(&["amd64", "x32"]),
        ..ALLOW
    },
    Entry {
        names: &["modify_ldt"],
        includes: arches(&["amd64", "x32", "x86"]),
        ..ALLOW
    },
    Entry {
        names: &[
            "s390_pci_mmio_read",
            "s390_pci_mmio_write",
            "s390_runtime_instr",
        ],
        includes: arches(&["s390", "s390x"]),
        ..ALLOW
    },
    Entry {
        names: &["riscv_flush_icache"],
        includes: arches(&["riscv64"]),
        ..ALLOW
    },
    Entry {
        names: &["open_by_handle_at"],
        includes: caps(&[CAP_DAC_READ_SEARCH]),
        ..ALLOW
    },
    Entry {
        names: &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "lsm_get_self_attr",
            "lsm_list_modules",
            "lsm_set_self_attr",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
        includes: caps(&[CAP_SYS_ADMIN]),
        ..ALLOW
    },
    // Without CAP_SYS_ADMIN, clone without namespace flags.
    Entry {
        names: &["clone"],
        args: &[arg(0, Op::MaskedEq, CLONE_NAMESPACES)],
        excludes: When {
            caps: &[CAP_SYS_ADMIN],
            arches: &["s390", "s390x"],
        },
        ..ALLOW
    },
    // s390 passes clone's flags second.
    Entry {
        names: &["clone"],
        args: &[arg(1, Op::MaskedEq, CLONE_NAMESPACES)],
        includes: arches(&["s390", "s390x"]),
        excludes: caps(&[CAP_SYS_ADMIN]),
        ..ALLOW
    },
    // clone3's flags are behind a pointer the filter cannot read: ENOSYS makes libcs fall
    // back to clone.
    Entry {
        names: &["clone3"],
        action: Action::Errno(ENOSYS),
        excludes: caps(&[CAP_SYS_ADMIN]),
        ..ALLOW
    },
    Entry {
        names: &["reboot"],
        includes: caps(&[CAP_SYS_BOOT]),
        ..ALLOW
    },
    Entry {
        names: &["chroot"],
        includes: caps(&[CAP_SYS_CHROOT]),
        ..ALLOW
    },
    Entry {
        names: &["delete_module", "init_module", "finit_module"],
        includes: caps(&[CAP_SYS_MODULE]),
        ..ALLOW
    },
    Entry {
        names: &["acct"],
        includes: caps(&[CAP_SYS_PACCT]),
        ..ALLOW
    },
    Entry {
        names: &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
        includes: caps(&[CAP_SYS_PTRACE]),
        ..ALLOW
    },
    Entry {
        names: &["iopl", "ioperm"],
        includes: caps(&[CAP_SYS_RAWIO]),
        ..ALLOW
    },
    Entry {
        names: &["settimeofday", "stime", "clock_settime", "clock_settime64"],
        includes: caps(&[CAP_SYS_TIME]),
        ..ALLOW
    },
    Entry {
        names: &["vhangup"],
        includes: caps(&[CAP_SYS_TTY_CONFIG]),
        ..ALLOW
    },
    Entry {
        names: &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
        includes: caps(&[CAP_SYS_NICE]),
        ..ALLOW
    },
    Entry {
        names: &["syslog"],
        includes: caps(&[CAP_SYSLOG]),
        ..ALLOW
    },
    Entry {
        names: &["bpf"],
        includes: caps(&[CAP_BPF]),
        ..ALLOW
    },
    Entry {
        names: &["perf_event_open"],
        includes: caps(&[CAP_PERFMON]),
        ..ALLOW
    },
];

/// The profile's big unconditional allow-list.
#[rustfmt::skip]
const ALLOWED: &[&str] = &[
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "cachestat",
    "capget", "capset", "chdir", "chmod", "chown", "chown32", "clock_adjtime",
    "clock_adjtime64", "clock_getres", "clock_getres_time64", "clock_gettime",
    "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64", "close", "close_range",
    "connect", "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create",
    "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2",
    "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "execve", "execveat", "exit",
    "exit_group", "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate",
    "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32",
    "fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork",
    "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64",
    "fsync", "ftruncate", "ftruncate64", "futex", "futex_requeue", "futex_time64",
    "futex_wait", "futex_waitv", "futex_wake", "futimesat", "getcpu", "getcwd", "getdents",
    "getdents64", "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32",
    "getgroups", "getgroups32", "getitimer", "getpeername", "getpgid", "getpgrp", "getpid",
    "getppid", "getpriority", "getrandom", "getresgid", "getresgid32", "getresuid",
    "getresuid32", "getrlimit", "get_robust_list", "getrusage", "getsid", "getsockname",
    "getsockopt", "get_thread_area", "gettid", "gettimeofday", "getuid", "getuid32",
    "getxattr", "getxattrat", "inotify_add_watch", "inotify_init", "inotify_init1",
    "inotify_rm_watch", "io_cancel", "ioctl", "io_destroy", "io_getevents", "io_pgetevents",
    "io_pgetevents_time64", "ioprio_get", "ioprio_set", "io_setup", "io_submit", "ipc",
    "kill", "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self",
    "lchown", "lchown32", "lgetxattr", "link", "linkat", "listen", "listmount", "listxattr",
    "listxattrat", "llistxattr", "_llseek", "lremovexattr", "lseek", "lsetxattr", "lstat",
    "lstat64", "madvise", "map_shadow_stack", "membarrier", "memfd_create", "memfd_secret",
    "mincore", "mkdir", "mkdirat", "mknod", "mknodat", "mlock", "mlock2", "mlockall",
    "mmap", "mmap2", "mprotect", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive",
    "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "mremap",
    "mseal", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock", "munlockall",
    "munmap", "name_to_handle_at", "nanosleep", "newfstatat", "_newselect", "open",
    "openat", "openat2", "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2",
    "pkey_alloc", "pkey_free", "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl",
    "pread64", "preadv", "preadv2", "prlimit64", "process_mrelease", "pselect6",
    "pselect6_time64", "pwrite64", "pwritev", "pwritev2", "read", "readahead", "readlink",
    "readlinkat", "readv", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg",
    "remap_file_pages", "removexattr", "removexattrat", "rename", "renameat", "renameat2",
    "restart_syscall", "riscv_hwprobe", "rmdir", "rseq", "rt_sigaction", "rt_sigpending",
    "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait",
    "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr",
    "sched_getparam", "sched_get_priority_max", "sched_get_priority_min",
    "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64",
    "sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler",
    "sched_yield", "seccomp", "select", "semctl", "semget", "semop", "semtimedop",
    "semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg", "sendmsg", "sendto",
    "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups",
    "setgroups32", "setitimer", "setpgid", "setpriority", "setregid", "setregid32",
    "setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32",
    "setrlimit", "set_robust_list", "setsid", "setsockopt", "set_thread_area",
    "set_tid_address", "setuid", "setuid32", "setxattr", "setxattrat", "shmat", "shmctl",
    "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4", "sigprocmask",
    "sigreturn", "socketcall", "socketpair", "splice", "stat", "stat64", "statfs",
    "statfs64", "statmount", "statx", "symlink", "symlinkat", "sync", "sync_file_range",
    "syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete",
    "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime",
    "timer_settime64", "timerfd_create", "timerfd_gettime", "timerfd_gettime64",
    "timerfd_settime", "timerfd_settime64", "times", "tkill", "truncate", "truncate64",
    "ugetrlimit", "umask", "uname", "unlink", "unlinkat", "uretprobe", "utime", "utimensat",
    "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid", "waitpid",
    "write", "writev"
];

/// No such syscall on that architecture.
const NO: i32 = -1;

/// Syscall numbers (x86_64, aarch64) of every name the profile uses.
#[rustfmt::skip]
const SYSCALLS: &[(&str, i32, i32)] = &[
    ("accept", 43, 202), ("accept4", 288, 242), ("access", 21, NO), ("acct", 163, 89),
    ("adjtimex", 159, 171), ("alarm", 37, NO), ("arch_prctl", 158, NO),
    ("arm_fadvise64_64", NO, NO), ("arm_sync_file_range", NO, NO), ("bind", 49, 200),
    ("bpf", 321, 280), ("breakpoint", NO, NO), ("brk", 12, 214), ("cacheflush", NO, NO),
    ("cachestat", 451, 451), ("capget", 125, 90), ("capset", 126, 91), ("chdir", 80, 49),
    ("chmod", 90, NO), ("chown", 92, NO), ("chown32", NO, NO), ("chroot", 161, 51),
    ("clock_adjtime", 305, 266), ("clock_adjtime64", NO, NO), ("clock_getres", 229, 114),
    ("clock_getres_time64", NO, NO), ("clock_gettime", 228, 113), ("clock_gettime64", NO, NO),
    ("clock_nanosleep", 230, 115), ("clock_nanosleep_time64", NO, NO),
    ("clock_settime", 227, 112), ("clock_settime64", NO, NO), ("clone", 56, 220),
    ("clone3", 435, 435), ("close", 3, 57), ("close_range", 436, 436), ("connect", 42, 203),
    ("copy_file_range", 326, 285), ("creat", 85, NO), ("delete_module", 176, 106),
    ("dup", 32, 23), ("dup2", 33, NO), ("dup3", 292, 24), ("epoll_create", 213, NO),
    ("epoll_create1", 291, 20), ("epoll_ctl", 233, 21), ("epoll_ctl_old", 214, NO),
    ("epoll_pwait", 281, 22), ("epoll_pwait2", 441, 441), ("epoll_wait", 232, NO),
    ("epoll_wait_old", 215, NO), ("eventfd", 284, NO), ("eventfd2", 290, 19),
    ("execve", 59, 221), ("execveat", 322, 281), ("exit", 60, 93), ("exit_group", 231, 94),
    ("faccessat", 269, 48), ("faccessat2", 439, 439), ("fadvise64", 221, 223),
    ("fadvise64_64", NO, NO), ("fallocate", 285, 47), ("fanotify_init", 300, 262),
    ("fanotify_mark", 301, 263), ("fchdir", 81, 50), ("fchmod", 91, 52), ("fchmodat", 268, 53),
    ("fchmodat2", 452, 452), ("fchown", 93, 55), ("fchown32", NO, NO), ("fchownat", 260, 54),
    ("fcntl", 72, 25), ("fcntl64", NO, NO), ("fdatasync", 75, 83), ("fgetxattr", 193, 10),
    ("finit_module", 313, 273), ("flistxattr", 196, 13), ("flock", 73, 32), ("fork", 57, NO),
    ("fremovexattr", 199, 16), ("fsconfig", 431, 431), ("fsetxattr", 190, 7),
    ("fsmount", 432, 432), ("fsopen", 430, 430), ("fspick", 433, 433), ("fstat", 5, 80),
    ("fstat64", NO, NO), ("fstatat64", NO, NO), ("fstatfs", 138, 44), ("fstatfs64", NO, NO),
    ("fsync", 74, 82), ("ftruncate", 77, 46), ("ftruncate64", NO, NO), ("futex", 202, 98),
    ("futex_requeue", 456, 456), ("futex_time64", NO, NO), ("futex_wait", 455, 455),
    ("futex_waitv", 449, 449), ("futex_wake", 454, 454), ("futimesat", 261, NO),
    ("get_mempolicy", 239, 236), ("get_robust_list", 274, 100), ("get_thread_area", 211, NO),
    ("getcpu", 309, 168), ("getcwd", 79, 17), ("getdents", 78, NO), ("getdents64", 217, 61),
    ("getegid", 108, 177), ("getegid32", NO, NO), ("geteuid", 107, 175), ("geteuid32", NO, NO),
    ("getgid", 104, 176), ("getgid32", NO, NO), ("getgroups", 115, 158),
    ("getgroups32", NO, NO), ("getitimer", 36, 102), ("getpeername", 52, 205),
    ("getpgid", 121, 155), ("getpgrp", 111, NO), ("getpid", 39, 172), ("getppid", 110, 173),
    ("getpriority", 140, 141), ("getrandom", 318, 278), ("getresgid", 120, 150),
    ("getresgid32", NO, NO), ("getresuid", 118, 148), ("getresuid32", NO, NO),
    ("getrlimit", 97, 163), ("getrusage", 98, 165), ("getsid", 124, 156),
    ("getsockname", 51, 204), ("getsockopt", 55, 209), ("gettid", 186, 178),
    ("gettimeofday", 96, 169), ("getuid", 102, 174), ("getuid32", NO, NO), ("getxattr", 191, 8),
    ("getxattrat", 464, 464), ("init_module", 175, 105), ("inotify_add_watch", 254, 27),
    ("inotify_init", 253, NO), ("inotify_init1", 294, 26), ("inotify_rm_watch", 255, 28),
    ("io_cancel", 210, 3), ("io_destroy", 207, 1), ("io_getevents", 208, 4),
    ("io_pgetevents", 333, 292), ("io_pgetevents_time64", NO, NO), ("io_setup", 206, 0),
    ("io_submit", 209, 2), ("ioctl", 16, 29), ("ioperm", 173, NO), ("iopl", 172, NO),
    ("ioprio_get", 252, 31), ("ioprio_set", 251, 30), ("ipc", NO, NO), ("kcmp", 312, 272),
    ("kill", 62, 129), ("landlock_add_rule", 445, 445), ("landlock_create_ruleset", 444, 444),
    ("landlock_restrict_self", 446, 446), ("lchown", 94, NO), ("lchown32", NO, NO),
    ("lgetxattr", 192, 9), ("link", 86, NO), ("linkat", 265, 37), ("listen", 50, 201),
    ("listmount", 458, 458), ("listxattr", 194, 11), ("listxattrat", 465, 465),
    ("llistxattr", 195, 12), ("_llseek", NO, NO), ("lookup_dcookie", 212, 18),
    ("lremovexattr", 198, 15), ("lseek", 8, 62), ("lsetxattr", 189, 6),
    ("lsm_get_self_attr", 459, 459), ("lsm_list_modules", 461, 461),
    ("lsm_set_self_attr", 460, 460), ("lstat", 6, NO), ("lstat64", NO, NO),
    ("madvise", 28, 233), ("map_shadow_stack", 453, 453), ("mbind", 237, 235),
    ("membarrier", 324, 283), ("memfd_create", 319, 279), ("memfd_secret", 447, 447),
    ("mincore", 27, 232), ("mkdir", 83, NO), ("mkdirat", 258, 34), ("mknod", 133, NO),
    ("mknodat", 259, 33), ("mlock", 149, 228), ("mlock2", 325, 284), ("mlockall", 151, 230),
    ("mmap", 9, 222), ("mmap2", NO, NO), ("modify_ldt", 154, NO), ("mount", 165, 40),
    ("mount_setattr", 442, 442), ("move_mount", 429, 429), ("mprotect", 10, 226),
    ("mq_getsetattr", 245, 185), ("mq_notify", 244, 184), ("mq_open", 240, 180),
    ("mq_timedreceive", 243, 183), ("mq_timedreceive_time64", NO, NO),
    ("mq_timedsend", 242, 182), ("mq_timedsend_time64", NO, NO), ("mq_unlink", 241, 181),
    ("mremap", 25, 216), ("mseal", 462, 462), ("msgctl", 71, 187), ("msgget", 68, 186),
    ("msgrcv", 70, 188), ("msgsnd", 69, 189), ("msync", 26, 227), ("munlock", 150, 229),
    ("munlockall", 152, 231), ("munmap", 11, 215), ("name_to_handle_at", 303, 264),
    ("nanosleep", 35, 101), ("newfstatat", 262, 79), ("_newselect", NO, NO), ("open", 2, NO),
    ("open_by_handle_at", 304, 265), ("open_tree", 428, 428), ("openat", 257, 56),
    ("openat2", 437, 437), ("pause", 34, NO), ("perf_event_open", 298, 241),
    ("personality", 135, 92), ("pidfd_getfd", 438, 438), ("pidfd_open", 434, 434),
    ("pidfd_send_signal", 424, 424), ("pipe", 22, NO), ("pipe2", 293, 59),
    ("pkey_alloc", 330, 289), ("pkey_free", 331, 290), ("pkey_mprotect", 329, 288),
    ("poll", 7, NO), ("ppoll", 271, 73), ("ppoll_time64", NO, NO), ("prctl", 157, 167),
    ("pread64", 17, 67), ("preadv", 295, 69), ("preadv2", 327, 286), ("prlimit64", 302, 261),
    ("process_madvise", 440, 440), ("process_mrelease", 448, 448),
    ("process_vm_readv", 310, 270), ("process_vm_writev", 311, 271), ("pselect6", 270, 72),
    ("pselect6_time64", NO, NO), ("ptrace", 101, 117), ("pwrite64", 18, 68),
    ("pwritev", 296, 70), ("pwritev2", 328, 287), ("quotactl", 179, 60),
    ("quotactl_fd", 443, 443), ("read", 0, 63), ("readahead", 187, 213), ("readlink", 89, NO),
    ("readlinkat", 267, 78), ("readv", 19, 65), ("reboot", 169, 142), ("recv", NO, NO),
    ("recvfrom", 45, 207), ("recvmmsg", 299, 243), ("recvmmsg_time64", NO, NO),
    ("recvmsg", 47, 212), ("remap_file_pages", 216, 234), ("removexattr", 197, 14),
    ("removexattrat", 466, 466), ("rename", 82, NO), ("renameat", 264, 38),
    ("renameat2", 316, 276), ("restart_syscall", 219, 128), ("riscv_flush_icache", NO, NO),
    ("riscv_hwprobe", NO, NO), ("rmdir", 84, NO), ("rseq", 334, 293), ("rt_sigaction", 13, 134),
    ("rt_sigpending", 127, 136), ("rt_sigprocmask", 14, 135), ("rt_sigqueueinfo", 129, 138),
    ("rt_sigreturn", 15, 139), ("rt_sigsuspend", 130, 133), ("rt_sigtimedwait", 128, 137),
    ("rt_sigtimedwait_time64", NO, NO), ("rt_tgsigqueueinfo", 297, 240),
    ("s390_pci_mmio_read", NO, NO), ("s390_pci_mmio_write", NO, NO),
    ("s390_runtime_instr", NO, NO), ("sched_get_priority_max", 146, 125),
    ("sched_get_priority_min", 147, 126), ("sched_getaffinity", 204, 123),
    ("sched_getattr", 315, 275), ("sched_getparam", 143, 121), ("sched_getscheduler", 145, 120),
    ("sched_rr_get_interval", 148, 127), ("sched_rr_get_interval_time64", NO, NO),
    ("sched_setaffinity", 203, 122), ("sched_setattr", 314, 274), ("sched_setparam", 142, 118),
    ("sched_setscheduler", 144, 119), ("sched_yield", 24, 124), ("seccomp", 317, 277),
    ("select", 23, NO), ("semctl", 66, 191), ("semget", 64, 190), ("semop", 65, 193),
    ("semtimedop", 220, 192), ("semtimedop_time64", NO, NO), ("send", NO, NO),
    ("sendfile", 40, 71), ("sendfile64", NO, NO), ("sendmmsg", 307, 269), ("sendmsg", 46, 211),
    ("sendto", 44, 206), ("set_mempolicy", 238, 237), ("set_mempolicy_home_node", 450, 450),
    ("set_robust_list", 273, 99), ("set_thread_area", 205, NO), ("set_tid_address", 218, 96),
    ("set_tls", NO, NO), ("setdomainname", 171, 162), ("setfsgid", 123, 152),
    ("setfsgid32", NO, NO), ("setfsuid", 122, 151), ("setfsuid32", NO, NO),
    ("setgid", 106, 144), ("setgid32", NO, NO), ("setgroups", 116, 159),
    ("setgroups32", NO, NO), ("sethostname", 170, 161), ("setitimer", 38, 103),
    ("setns", 308, 268), ("setpgid", 109, 154), ("setpriority", 141, 140),
    ("setregid", 114, 143), ("setregid32", NO, NO), ("setresgid", 119, 149),
    ("setresgid32", NO, NO), ("setresuid", 117, 147), ("setresuid32", NO, NO),
    ("setreuid", 113, 145), ("setreuid32", NO, NO), ("setrlimit", 160, 164),
    ("setsid", 112, 157), ("setsockopt", 54, 208), ("settimeofday", 164, 170),
    ("setuid", 105, 146), ("setuid32", NO, NO), ("setxattr", 188, 5), ("setxattrat", 463, 463),
    ("shmat", 30, 196), ("shmctl", 31, 195), ("shmdt", 67, 197), ("shmget", 29, 194),
    ("shutdown", 48, 210), ("sigaltstack", 131, 132), ("signalfd", 282, NO),
    ("signalfd4", 289, 74), ("sigprocmask", NO, NO), ("sigreturn", NO, NO), ("socket", 41, 198),
    ("socketcall", NO, NO), ("socketpair", 53, 199), ("splice", 275, 76), ("stat", 4, NO),
    ("stat64", NO, NO), ("statfs", 137, 43), ("statfs64", NO, NO), ("statmount", 457, 457),
    ("statx", 332, 291), ("stime", NO, NO), ("swapcontext", NO, NO), ("symlink", 88, NO),
    ("symlinkat", 266, 36), ("sync", 162, 81), ("sync_file_range", 277, 84),
    ("sync_file_range2", NO, NO), ("syncfs", 306, 267), ("sysinfo", 99, 179),
    ("syslog", 103, 116), ("tee", 276, 77), ("tgkill", 234, 131), ("time", 201, NO),
    ("timer_create", 222, 107), ("timer_delete", 226, 111), ("timer_getoverrun", 225, 109),
    ("timer_gettime", 224, 108), ("timer_gettime64", NO, NO), ("timer_settime", 223, 110),
    ("timer_settime64", NO, NO), ("timerfd_create", 283, 85), ("timerfd_gettime", 287, 87),
    ("timerfd_gettime64", NO, NO), ("timerfd_settime", 286, 86), ("timerfd_settime64", NO, NO),
    ("times", 100, 153), ("tkill", 200, 130), ("truncate", 76, 45), ("truncate64", NO, NO),
    ("ugetrlimit", NO, NO), ("umask", 95, 166), ("umount", NO, NO), ("umount2", 166, 39),
    ("uname", 63, 160), ("unlink", 87, NO), ("unlinkat", 263, 35), ("unshare", 272, 97),
    ("uretprobe", 335, NO), ("utime", 132, NO), ("utimensat", 280, 88),
    ("utimensat_time64", NO, NO), ("utimes", 235, NO), ("vfork", 58, NO), ("vhangup", 153, 58),
    ("vmsplice", 278, 75), ("wait4", 61, 260), ("waitid", 247, 95), ("waitpid", NO, NO),
    ("write", 1, 64), ("writev", 20, 66),
];

/// The architecture this binary runs on, as the profile and the two renderings name it.
#[derive(Clone, Copy, Debug)]
struct Native {
    /// Docker's name, matched against `includes`/`excludes` arches.
    name: &'static str,
    target: TargetArch,
    /// The OCI `architectures`: the native one and its sub-architectures, as in Docker's
    /// `archMap`.
    family: &'static [Arch],
    /// The column of [`SYSCALLS`].
    column: usize,
}

#[cfg(target_arch = "x86_64")]
const NATIVE: Option<Native> = Some(Native {
    name: "amd64",
    target: TargetArch::x86_64,
    family: &[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32],
    column: 0,
});

#[cfg(target_arch = "aarch64")]
const NATIVE: Option<Native> = Some(Native {
    name: "arm64",
    target: TargetArch::aarch64,
    family: &[Arch::ScmpArchAarch64, Arch::ScmpArchArm],
    column: 1,
});

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const NATIVE: Option<Native> = None;

/// The native number of a syscall the profile names: `Ok(None)` if this architecture does
/// not have it, `Err` for a name missing from [`SYSCALLS`].
fn number(native: Native, name: &str) -> Result<Option<i64>, String> {
    let (_, x86_64, aarch64) = SYSCALLS
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or_else(|| format!("seccomp: no syscall number for {name}"))?;
    let nr = if native.column == 0 {
        *x86_64
    } else {
        *aarch64
    };
    Ok((nr != NO).then_some(i64::from(nr)))
}

/// A seccomp profile for one capability set on the native architecture: the entries of
/// Docker's default profile that apply.
#[derive(Debug, Clone)]
pub(crate) struct Profile {
    entries: Vec<&'static Entry>,
}

/// Docker's default profile for a process that keeps the capabilities in `caps` (bit n is
/// capability n), e.g. no `unshare` or `mount` without `CAP_SYS_ADMIN`.
pub(crate) fn docker_default(caps: u64) -> Profile {
    let arch = NATIVE.map_or("", |n| n.name);
    let has = |cap: &u32| caps & (1u64 << cap) != 0;
    let entries = PROFILE
        .iter()
        .filter(|e| {
            !e.excludes.arches.contains(&arch)
                && !e.excludes.caps.iter().any(has)
                && (e.includes.arches.is_empty() || e.includes.arches.contains(&arch))
                && e.includes.caps.iter().all(has)
        })
        .collect();
    Profile { entries }
}

/// The rules of one seccompiler filter: syscall number → alternatives (empty: always).
type Rules = BTreeMap<i64, Vec<SeccompRule>>;

impl Profile {
    /// The profile as a seccomp BPF program for the native architecture: syscalls of
    /// another audit architecture kill the process, syscalls outside the profile fail with
    /// EPERM, `clone3` without `CAP_SYS_ADMIN` with ENOSYS.
    pub(crate) fn bpf(&self) -> Result<BpfProgram, String> {
        let native = NATIVE.ok_or_else(|| {
            format!(
                "seccomp: no filter for the {} architecture",
                std::env::consts::ARCH
            )
        })?;
        // One group per action; the allow group is the main filter and comes last.
        let mut groups: Vec<(Action, Rules)> = Vec::new();
        let mut allow = Rules::new();
        for entry in &self.entries {
            let rules = match entry.action {
                Action::Allow => &mut allow,
                action => {
                    if let Some(i) = groups.iter().position(|(a, _)| *a == action) {
                        &mut groups[i].1
                    } else {
                        groups.push((action, Rules::new()));
                        &mut groups.last_mut().expect("just pushed").1
                    }
                }
            };
            let rule = if entry.args.is_empty() {
                None
            } else {
                let conditions = entry
                    .args
                    .iter()
                    .map(condition)
                    .collect::<Result<Vec<_>, _>>()?;
                Some(SeccompRule::new(conditions).map_err(|e| format!("seccomp: {e}"))?)
            };
            for name in entry.names {
                let Some(nr) = number(native, name)? else {
                    continue;
                };
                // Several entries for a syscall are alternatives; no rule at all (an empty
                // list for seccompiler) means whatever the arguments, and wins.
                match (rules.entry(nr), &rule) {
                    (btree_map::Entry::Vacant(e), Some(rule)) => {
                        e.insert(vec![rule.clone()]);
                    }
                    (btree_map::Entry::Occupied(mut e), Some(rule)) => {
                        if !e.get().is_empty() {
                            e.get_mut().push(rule.clone());
                        }
                    }
                    (e, None) => {
                        *e.or_default() = Vec::new();
                    }
                }
            }
        }
        let compile = |rules: Rules, mismatch: SeccompAction, matched: SeccompAction| {
            SeccompFilter::new(rules, mismatch, matched, native.target)
                .and_then(BpfProgram::try_from)
                .map_err(|e| format!("seccomp: {e}"))
        };
        let mut program = BpfProgram::new();
        for (action, rules) in groups {
            let Action::Errno(errno) = action else {
                unreachable!("allow rules are not grouped")
            };
            let prefix = compile(rules, SeccompAction::Allow, SeccompAction::Errno(errno))?;
            program.extend(fall_through(prefix));
        }
        program.extend(compile(
            allow,
            SeccompAction::Errno(EPERM),
            SeccompAction::Allow,
        )?);
        // The kernel's BPF_MAXINSNS.
        if program.len() > 4096 {
            return Err(format!(
                "seccomp: the filter has {} instructions, more than the kernel's 4096",
                program.len()
            ));
        }
        Ok(program)
    }

    /// Compiles the profile and loads it into the calling thread (and so into everything it
    /// executes or forks from now on), without setting `no_new_privs`: the caller must hold
    /// `CAP_SYS_ADMIN`, so call it before dropping capabilities. Other threads are not
    /// affected.
    pub(crate) fn install(&self) -> Result<(), String> {
        let program = self.bpf()?;
        load(&program).map_err(|errno| {
            let e = std::io::Error::from_raw_os_error(errno);
            if errno == libc::EACCES {
                format!("install the seccomp filter: {e} (it needs CAP_SYS_ADMIN)")
            } else {
                format!("install the seccomp filter: {e}")
            }
        })
    }

    /// The profile as an OCI runtime spec `linux.seccomp` section, as Docker hands it to
    /// runc: default `SCMP_ACT_ERRNO` with errno 1, the native architecture family, and
    /// the applicable entries with their names for every architecture of the family.
    pub(crate) fn oci(&self) -> LinuxSeccomp {
        let syscalls = self
            .entries
            .iter()
            .map(|entry| {
                let mut syscall = LinuxSyscall::default();
                syscall.set_names(entry.names.iter().map(ToString::to_string).collect());
                match entry.action {
                    Action::Allow => syscall.set_action(LinuxSeccompAction::ScmpActAllow),
                    Action::Errno(errno) => syscall
                        .set_action(LinuxSeccompAction::ScmpActErrno)
                        .set_errno_ret(Some(errno)),
                };
                if !entry.args.is_empty() {
                    syscall.set_args(Some(entry.args.iter().map(oci_arg).collect()));
                }
                syscall
            })
            .collect();
        let mut seccomp = LinuxSeccomp::default();
        seccomp
            .set_default_action(LinuxSeccompAction::ScmpActErrno)
            .set_default_errno_ret(Some(EPERM))
            .set_architectures(NATIVE.map(|n| n.family.to_vec()))
            .set_syscalls(Some(syscalls));
        seccomp
    }
}

/// An argument rule as a seccompiler condition.
fn condition(arg: &Arg) -> Result<SeccompCondition, String> {
    let len = if arg.int32 {
        SeccompCmpArgLen::Dword
    } else {
        SeccompCmpArgLen::Qword
    };
    let (op, value) = match arg.op {
        Op::Eq => (SeccompCmpOp::Eq, arg.value),
        Op::Lt => (SeccompCmpOp::Lt, arg.value),
        Op::Gt => (SeccompCmpOp::Gt, arg.value),
        Op::MaskedEq => (SeccompCmpOp::MaskedEq(arg.value), arg.value_two),
    };
    SeccompCondition::new(arg.index, len, op, value).map_err(|e| format!("seccomp: {e}"))
}

fn oci_arg(arg: &Arg) -> LinuxSeccompArg {
    let builder = LinuxSeccompArgBuilder::default()
        .index(usize::from(arg.index))
        .value(arg.value)
        .op(match arg.op {
            Op::Eq => LinuxSeccompOperator::ScmpCmpEq,
            Op::Lt => LinuxSeccompOperator::ScmpCmpLt,
            Op::Gt => LinuxSeccompOperator::ScmpCmpGt,
            Op::MaskedEq => LinuxSeccompOperator::ScmpCmpMaskedEq,
        });
    let builder = if arg.value_two != 0 {
        builder.value_two(arg.value_two)
    } else {
        builder
    };
    // Every field has a default: building cannot fail.
    builder.build().expect("a complete seccomp argument")
}

// Classic BPF opcodes (linux/bpf_common.h).
const BPF_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
const BPF_JMP_JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;

/// Turns a filter whose mismatch action is "allow" into a prefix of the program that
/// follows it: each `return ALLOW` becomes a jump past the prefix's end.
fn fall_through(mut prefix: BpfProgram) -> BpfProgram {
    let len = prefix.len();
    for (i, insn) in prefix.iter_mut().enumerate() {
        if insn.code == BPF_RET_K && insn.k == libc::SECCOMP_RET_ALLOW {
            *insn = sock_filter {
                code: BPF_JMP_JA,
                jt: 0,
                jf: 0,
                // Relative to the next instruction; programs are < 4096 instructions.
                k: (len - i - 1) as u32,
            };
        }
    }
    prefix
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, 0, program)` for the calling thread. Allocates
/// nothing, so a forked child may call it. Errors are errno values.
fn load(program: &[sock_filter]) -> Result<(), i32> {
    let len = u16::try_from(program.len()).map_err(|_| libc::EINVAL)?;
    let fprog = libc::sock_fprog {
        len,
        // seccompiler's sock_filter is #[repr(C)] with the kernel's layout, as libc's is.
        filter: program.as_ptr().cast::<libc::sock_filter>().cast_mut(),
    };
    // SAFETY: `fprog` points at `len` live instructions; the kernel copies them.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0 as libc::c_uint,
            &fprog as *const libc::sock_fprog,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Docker's default capability set (as the sandbox keeps it).
    const DEFAULT_CAPS: u64 = crate::caps::DEFAULT;
    const ALL_CAPS: u64 = !0;

    #[cfg(target_arch = "x86_64")]
    const AUDIT_ARCH_NATIVE: u32 = 0xc000_003e;
    #[cfg(target_arch = "x86_64")]
    const AUDIT_ARCH_FOREIGN: u32 = 0x4000_0003; // i386
    #[cfg(target_arch = "aarch64")]
    const AUDIT_ARCH_NATIVE: u32 = 0xc000_00b7;
    #[cfg(target_arch = "aarch64")]
    const AUDIT_ARCH_FOREIGN: u32 = 0x4000_0028; // arm

    fn native() -> Native {
        NATIVE.expect("tests run on x86_64 or aarch64")
    }

    fn nr(name: &str) -> i64 {
        number(native(), name)
            .unwrap()
            .unwrap_or_else(|| panic!("{name} is not a native syscall"))
    }

    /// What the profile says, read from its entries: an errno entry first, then allow
    /// entries, else the default.
    fn verdict(profile: &Profile, name: &str, args: [u64; 6]) -> Action {
        let matches = |e: &&&Entry| {
            e.names.contains(&name)
                && e.args.iter().all(|a| {
                    let v = args[usize::from(a.index)];
                    let v = if a.int32 { v & 0xffff_ffff } else { v };
                    match a.op {
                        Op::Eq => v == a.value,
                        Op::Lt => v < a.value,
                        Op::Gt => v > a.value,
                        Op::MaskedEq => v & a.value == a.value_two,
                    }
                })
        };
        let hits: Vec<_> = profile.entries.iter().filter(matches).collect();
        hits.iter()
            .map(|e| e.action)
            .find(|a| *a != Action::Allow)
            .or(hits.first().map(|e| e.action))
            .unwrap_or(Action::Errno(EPERM))
    }

    /// A classic-BPF interpreter for what seccompiler emits, over a `seccomp_data`.
    fn run(program: &[sock_filter], arch: u32, nr: i64, args: [u64; 6]) -> u32 {
        let mut data = Vec::new();
        data.extend_from_slice(&(nr as i32).to_ne_bytes());
        data.extend_from_slice(&arch.to_ne_bytes());
        data.extend_from_slice(&0u64.to_ne_bytes());
        for a in args {
            data.extend_from_slice(&a.to_ne_bytes());
        }
        let (mut acc, mut pc) = (0u32, 0usize);
        loop {
            let insn = &program[pc];
            pc += 1;
            let k = insn.k;
            match insn.code {
                0x20 => {
                    let at = k as usize;
                    acc = u32::from_ne_bytes(data[at..at + 4].try_into().unwrap());
                }
                0x54 => acc &= k,
                0x05 => pc += k as usize,
                0x15 | 0x25 | 0x35 => {
                    let taken = match insn.code {
                        0x15 => acc == k,
                        0x25 => acc > k,
                        _ => acc >= k,
                    };
                    pc += usize::from(if taken { insn.jt } else { insn.jf });
                }
                0x06 => return k,
                code => panic!("unexpected BPF opcode {code:#x} at {}", pc - 1),
            }
        }
    }

    fn decode(ret: u32) -> Action {
        match ret {
            libc::SECCOMP_RET_ALLOW => Action::Allow,
            r if r & 0xffff_0000 == libc::SECCOMP_RET_ERRNO => Action::Errno(r & 0xffff),
            r => panic!("unexpected seccomp return {r:#x}"),
        }
    }

    /// The compiled program's verdict for a native syscall.
    fn bpf_verdict(program: &[sock_filter], nr: i64, args: [u64; 6]) -> Action {
        decode(run(program, AUDIT_ARCH_NATIVE, nr, args))
    }

    const DENIED: &[i64] = &[
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_kexec_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_open_by_handle_at,
        libc::SYS_fsopen,
        libc::SYS_open_tree,
        libc::SYS_move_mount,
        libc::SYS_swapon,
        libc::SYS_reboot,
        libc::SYS_settimeofday,
        libc::SYS_clock_settime,
        libc::SYS_acct,
        libc::SYS_kcmp,
        libc::SYS_userfaultfd,
        libc::SYS_io_uring_setup,
        libc::SYS_sethostname,
        libc::SYS_syslog,
        libc::SYS_quotactl,
        libc::SYS_mbind,
        libc::SYS_vhangup,
    ];

    const ALLOWED_PLAIN: &[i64] = &[
        libc::SYS_read,
        libc::SYS_write,
        libc::SYS_openat,
        libc::SYS_close,
        libc::SYS_execve,
        libc::SYS_getpid,
        libc::SYS_mmap,
        libc::SYS_futex,
        libc::SYS_chroot,
        libc::SYS_ptrace,
        libc::SYS_setresuid,
        libc::SYS_capset,
        libc::SYS_prctl,
        libc::SYS_seccomp,
        libc::SYS_name_to_handle_at,
        libc::SYS_wait4,
        libc::SYS_exit_group,
    ];

    #[test]
    fn default_caps_deny_the_dangerous_calls() {
        let profile = docker_default(DEFAULT_CAPS);
        let program = profile.bpf().unwrap();
        assert!(!program.is_empty());
        for &nr in DENIED {
            assert_eq!(
                bpf_verdict(&program, nr, [0; 6]),
                Action::Errno(EPERM),
                "syscall {nr}"
            );
        }
        for &nr in ALLOWED_PLAIN {
            assert_eq!(
                bpf_verdict(&program, nr, [0; 6]),
                Action::Allow,
                "syscall {nr}"
            );
        }
        // The profile's own view agrees.
        for name in [
            "unshare",
            "setns",
            "keyctl",
            "mount",
            "umount2",
            "pivot_root",
            "bpf",
        ] {
            assert_eq!(
                verdict(&profile, name, [0; 6]),
                Action::Errno(EPERM),
                "{name}"
            );
        }
        for name in ["read", "write", "execve", "ptrace", "chroot"] {
            assert_eq!(verdict(&profile, name, [0; 6]), Action::Allow, "{name}");
        }
    }

    #[test]
    fn clone_rules_depend_on_cap_sys_admin() {
        let newuser = libc::CLONE_NEWUSER as u64 | libc::SIGCHLD as u64;
        let thread = (libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD
            | libc::CLONE_SYSVSEM
            | libc::CLONE_SETTLS
            | libc::CLONE_PARENT_SETTID
            | libc::CLONE_CHILD_CLEARTID) as u64;
        let program = docker_default(DEFAULT_CAPS).bpf().unwrap();
        let clone = |flags| bpf_verdict(&program, libc::SYS_clone, [flags, 0, 0, 0, 0, 0]);
        assert_eq!(clone(libc::SIGCHLD as u64), Action::Allow);
        assert_eq!(clone(thread), Action::Allow);
        assert_eq!(clone(newuser), Action::Errno(EPERM));
        for flag in [
            libc::CLONE_NEWNS,
            libc::CLONE_NEWUTS,
            libc::CLONE_NEWIPC,
            libc::CLONE_NEWPID,
            libc::CLONE_NEWNET,
            libc::CLONE_NEWCGROUP,
        ] {
            assert_eq!(clone(flag as u64), Action::Errno(EPERM), "flag {flag:#x}");
        }
        assert_eq!(
            bpf_verdict(&program, libc::SYS_clone3, [0; 6]),
            Action::Errno(ENOSYS)
        );

        let all = docker_default(ALL_CAPS).bpf().unwrap();
        assert_eq!(
            bpf_verdict(&all, libc::SYS_clone, [newuser, 0, 0, 0, 0, 0]),
            Action::Allow
        );
        assert_eq!(bpf_verdict(&all, libc::SYS_clone3, [0; 6]), Action::Allow);
        for nr in [
            libc::SYS_unshare,
            libc::SYS_mount,
            libc::SYS_setns,
            libc::SYS_reboot,
        ] {
            assert_eq!(bpf_verdict(&all, nr, [0; 6]), Action::Allow, "syscall {nr}");
        }
        // Never in the profile, whatever the capabilities.
        for nr in [
            libc::SYS_keyctl,
            libc::SYS_add_key,
            libc::SYS_request_key,
            libc::SYS_pivot_root,
            libc::SYS_kexec_load,
            libc::SYS_userfaultfd,
            libc::SYS_io_uring_setup,
        ] {
            assert_eq!(
                bpf_verdict(&all, nr, [0; 6]),
                Action::Errno(EPERM),
                "syscall {nr}"
            );
        }
    }

    #[test]
    fn socket_and_personality_argument_rules() {
        let program = docker_default(DEFAULT_CAPS).bpf().unwrap();
        let socket = |family: u64| bpf_verdict(&program, libc::SYS_socket, [family, 1, 0, 0, 0, 0]);
        for family in [
            libc::AF_UNIX,
            libc::AF_INET,
            libc::AF_INET6,
            libc::AF_NETLINK,
            37,
            39,
        ] {
            assert_eq!(socket(family as u64), Action::Allow, "family {family}");
        }
        assert_eq!(socket(41), Action::Allow);
        assert_eq!(socket(AF_ALG), Action::Errno(EPERM));
        assert_eq!(socket(AF_VSOCK), Action::Errno(EPERM));
        // The kernel reads an int: upper bits do not smuggle AF_ALG past `> 40`.
        assert_eq!(socket((1 << 32) | AF_ALG), Action::Errno(EPERM));

        let personality = |p: u64| bpf_verdict(&program, libc::SYS_personality, [p, 0, 0, 0, 0, 0]);
        for p in [0, 8, 0x2_0000, 0x2_0008, 0xffff_ffff] {
            assert_eq!(personality(p), Action::Allow, "persona {p:#x}");
        }
        // ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC.
        assert_eq!(personality(0x004_0000), Action::Errno(EPERM));
        assert_eq!(personality(0x040_0000), Action::Errno(EPERM));
    }

    #[test]
    fn foreign_architectures_are_killed_or_denied() {
        let program = docker_default(DEFAULT_CAPS).bpf().unwrap();
        assert_eq!(
            run(&program, AUDIT_ARCH_FOREIGN, 3, [0; 6]),
            libc::SECCOMP_RET_KILL_PROCESS
        );
        // x32 syscalls share x86_64's audit arch, with bit 30 set in the number.
        let x32_read = 0x4000_0000 | nr("read");
        assert_eq!(
            bpf_verdict(&program, x32_read, [0; 6]),
            Action::Errno(EPERM)
        );
    }

    /// Every native syscall of the table, and the argument cases, get the same verdict
    /// from the compiled program as from the profile's entries, for a few capability sets.
    #[test]
    fn compiled_program_matches_the_profile() {
        for caps in [
            0,
            DEFAULT_CAPS,
            ALL_CAPS,
            DEFAULT_CAPS | 1 << CAP_SYS_PTRACE,
        ] {
            let profile = docker_default(caps);
            let program = profile.bpf().unwrap();
            for (name, _, _) in SYSCALLS {
                let Some(nr) = number(native(), name).unwrap() else {
                    continue;
                };
                let mut cases = vec![[0; 6], [1, 2, 3, 4, 5, 6]];
                if *name == "clone" {
                    cases.push([libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0]);
                }
                if *name == "socket" {
                    cases.extend([38, 39, 40, 41].map(|f| [f, 0, 0, 0, 0, 0]));
                }
                if *name == "personality" {
                    cases.extend([8, 0x2_0008, 0xffff_ffff, 9].map(|p| [p, 0, 0, 0, 0, 0]));
                }
                for args in cases {
                    assert_eq!(
                        bpf_verdict(&program, nr, args),
                        verdict(&profile, name, args),
                        "{name}{args:?} with caps {caps:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn syscall_table_covers_the_profile() {
        let mut names: Vec<&str> = PROFILE.iter().flat_map(|e| e.names).copied().collect();
        names.sort_unstable();
        names.dedup();
        let mut table: Vec<&str> = SYSCALLS.iter().map(|(n, _, _)| *n).collect();
        table.sort_unstable();
        let len = table.len();
        table.dedup();
        assert_eq!(len, table.len(), "duplicate names in SYSCALLS");
        assert_eq!(names, table, "SYSCALLS and PROFILE name different syscalls");

        for column in [1, 2] {
            let mut numbers: Vec<i32> = SYSCALLS
                .iter()
                .map(|row| if column == 1 { row.1 } else { row.2 })
                .filter(|nr| *nr != NO)
                .collect();
            let len = numbers.len();
            numbers.sort_unstable();
            numbers.dedup();
            assert_eq!(len, numbers.len(), "duplicate numbers in column {column}");
        }
    }

    /// The table against libc's constants, where libc has them (it lacks the newest).
    #[test]
    fn syscall_numbers_agree_with_libc() {
        macro_rules! check {
            ($($sys:ident),* $(,)?) => {$(
                let name = stringify!($sys).strip_prefix("SYS_").unwrap();
                assert_eq!(nr(name), libc::$sys, "{name}");
            )*};
        }
        #[rustfmt::skip]
        check!(
            SYS_accept, SYS_accept4, SYS_adjtimex, SYS_bind, SYS_brk, SYS_capget, SYS_capset,
            SYS_chdir, SYS_clock_adjtime, SYS_clock_getres, SYS_clock_gettime,
            SYS_clock_nanosleep, SYS_close, SYS_close_range, SYS_connect, SYS_copy_file_range,
            SYS_dup, SYS_dup3, SYS_epoll_create1, SYS_epoll_ctl, SYS_epoll_pwait,
            SYS_epoll_pwait2, SYS_eventfd2, SYS_execve, SYS_execveat, SYS_exit, SYS_exit_group,
            SYS_faccessat, SYS_faccessat2, SYS_fadvise64, SYS_fallocate, SYS_fanotify_mark,
            SYS_fchdir, SYS_fchmod, SYS_fchmodat, SYS_fchown, SYS_fchownat, SYS_fcntl,
            SYS_fdatasync, SYS_fgetxattr, SYS_flistxattr, SYS_flock, SYS_fremovexattr,
            SYS_fsetxattr, SYS_fstat, SYS_fstatfs, SYS_fsync, SYS_ftruncate, SYS_futex,
            SYS_futex_waitv, SYS_getcpu, SYS_getcwd, SYS_getdents64, SYS_getegid, SYS_geteuid,
            SYS_getgid, SYS_getgroups, SYS_getitimer, SYS_getpeername, SYS_getpgid, SYS_getpid,
            SYS_getppid, SYS_getpriority, SYS_getrandom, SYS_getresgid, SYS_getresuid,
            SYS_get_robust_list, SYS_getrusage, SYS_getsid, SYS_getsockname, SYS_getsockopt,
            SYS_gettid, SYS_gettimeofday, SYS_getuid, SYS_getxattr, SYS_inotify_add_watch,
            SYS_inotify_init1, SYS_inotify_rm_watch, SYS_io_cancel, SYS_ioctl, SYS_io_destroy,
            SYS_io_getevents, SYS_ioprio_get, SYS_ioprio_set, SYS_io_setup, SYS_io_submit,
            SYS_kill, SYS_landlock_add_rule, SYS_landlock_create_ruleset,
            SYS_landlock_restrict_self, SYS_lgetxattr, SYS_linkat, SYS_listen, SYS_listxattr,
            SYS_llistxattr, SYS_lremovexattr, SYS_lseek, SYS_lsetxattr, SYS_madvise,
            SYS_membarrier, SYS_memfd_create, SYS_memfd_secret, SYS_mincore, SYS_mkdirat,
            SYS_mknodat, SYS_mlock, SYS_mlock2, SYS_mlockall, SYS_mmap, SYS_mprotect,
            SYS_mq_getsetattr, SYS_mq_notify, SYS_mq_open, SYS_mq_timedreceive,
            SYS_mq_timedsend, SYS_mq_unlink, SYS_mremap, SYS_mseal, SYS_msgctl, SYS_msgget,
            SYS_msgrcv, SYS_msgsnd, SYS_msync, SYS_munlock, SYS_munlockall, SYS_munmap,
            SYS_name_to_handle_at, SYS_nanosleep, SYS_newfstatat, SYS_openat, SYS_openat2,
            SYS_pidfd_open, SYS_pidfd_send_signal, SYS_pipe2, SYS_pkey_alloc, SYS_pkey_free,
            SYS_pkey_mprotect, SYS_ppoll, SYS_prctl, SYS_pread64, SYS_preadv, SYS_preadv2,
            SYS_prlimit64, SYS_process_mrelease, SYS_pselect6, SYS_pwrite64, SYS_pwritev,
            SYS_pwritev2, SYS_read, SYS_readahead, SYS_readlinkat, SYS_readv, SYS_recvfrom,
            SYS_recvmmsg, SYS_recvmsg, SYS_remap_file_pages, SYS_removexattr, SYS_renameat2,
            SYS_restart_syscall, SYS_rseq, SYS_rt_sigaction, SYS_rt_sigpending,
            SYS_rt_sigprocmask, SYS_rt_sigqueueinfo, SYS_rt_sigreturn, SYS_rt_sigsuspend,
            SYS_rt_sigtimedwait, SYS_rt_tgsigqueueinfo, SYS_sched_getaffinity,
            SYS_sched_getattr, SYS_sched_getparam, SYS_sched_get_priority_max,
            SYS_sched_get_priority_min, SYS_sched_getscheduler, SYS_sched_rr_get_interval,
            SYS_sched_setaffinity, SYS_sched_setattr, SYS_sched_setparam,
            SYS_sched_setscheduler, SYS_sched_yield, SYS_seccomp, SYS_semctl, SYS_semget,
            SYS_semop, SYS_semtimedop, SYS_sendfile, SYS_sendmmsg, SYS_sendmsg, SYS_sendto,
            SYS_setfsgid, SYS_setfsuid, SYS_setgid, SYS_setgroups, SYS_setitimer, SYS_setpgid,
            SYS_setpriority, SYS_setregid, SYS_setresgid, SYS_setresuid, SYS_setreuid,
            SYS_set_robust_list, SYS_setsid, SYS_setsockopt, SYS_set_tid_address, SYS_setuid,
            SYS_setxattr, SYS_shmat, SYS_shmctl, SYS_shmdt, SYS_shmget, SYS_shutdown,
            SYS_sigaltstack, SYS_signalfd4, SYS_socketpair, SYS_splice, SYS_statfs, SYS_statx,
            SYS_symlinkat, SYS_sync, SYS_syncfs, SYS_sysinfo, SYS_tee, SYS_tgkill,
            SYS_timer_create, SYS_timer_delete, SYS_timer_getoverrun, SYS_timer_gettime,
            SYS_timer_settime, SYS_timerfd_create, SYS_timerfd_gettime, SYS_timerfd_settime,
            SYS_times, SYS_tkill, SYS_truncate, SYS_umask, SYS_uname, SYS_unlinkat,
            SYS_utimensat, SYS_vmsplice, SYS_wait4, SYS_waitid, SYS_write, SYS_writev,
            SYS_process_vm_readv, SYS_process_vm_writev, SYS_ptrace, SYS_socket,
            SYS_personality, SYS_open_by_handle_at, SYS_bpf, SYS_clone, SYS_clone3,
            SYS_fanotify_init, SYS_fsconfig, SYS_fsmount, SYS_fsopen, SYS_fspick,
            SYS_lookup_dcookie, SYS_mount, SYS_mount_setattr, SYS_move_mount, SYS_open_tree,
            SYS_perf_event_open, SYS_quotactl, SYS_quotactl_fd, SYS_setdomainname,
            SYS_sethostname, SYS_setns, SYS_syslog, SYS_umount2, SYS_unshare, SYS_reboot,
            SYS_chroot, SYS_delete_module, SYS_init_module, SYS_finit_module, SYS_acct,
            SYS_kcmp, SYS_pidfd_getfd, SYS_process_madvise, SYS_settimeofday, SYS_clock_settime,
            SYS_vhangup, SYS_get_mempolicy, SYS_mbind, SYS_set_mempolicy,
            SYS_set_mempolicy_home_node,
        );
        #[cfg(target_arch = "x86_64")]
        #[rustfmt::skip]
        check!(
            SYS_access, SYS_alarm, SYS_chmod, SYS_chown, SYS_creat, SYS_dup2, SYS_epoll_create,
            SYS_epoll_ctl_old, SYS_epoll_wait, SYS_epoll_wait_old, SYS_eventfd, SYS_fchmodat2,
            SYS_fork, SYS_futimesat, SYS_getdents, SYS_getpgrp, SYS_getrlimit,
            SYS_get_thread_area, SYS_inotify_init, SYS_lchown, SYS_link, SYS_lstat, SYS_mkdir,
            SYS_mknod, SYS_open, SYS_pause, SYS_pipe, SYS_poll, SYS_readlink, SYS_rename,
            SYS_renameat, SYS_rmdir, SYS_select, SYS_setrlimit, SYS_set_thread_area,
            SYS_signalfd, SYS_stat, SYS_symlink, SYS_sync_file_range, SYS_time, SYS_unlink,
            SYS_utime, SYS_utimes, SYS_vfork, SYS_arch_prctl, SYS_modify_ldt, SYS_iopl,
            SYS_ioperm,
        );
    }

    #[test]
    fn oci_rendering_round_trips() {
        let seccomp = docker_default(DEFAULT_CAPS).oci();
        let json = serde_json::to_string_pretty(&seccomp).unwrap();
        let back: LinuxSeccomp = serde_json::from_str(&json).unwrap();
        assert_eq!(back, seccomp);

        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(v["defaultErrnoRet"], 1);
        #[cfg(target_arch = "x86_64")]
        let family = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"];
        #[cfg(target_arch = "aarch64")]
        let family = ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"];
        assert_eq!(v["architectures"], serde_json::json!(family));

        let syscalls = v["syscalls"].as_array().unwrap();
        let names_of = |pred: &dyn Fn(&serde_json::Value) -> bool| -> Vec<String> {
            syscalls
                .iter()
                .filter(|s| pred(s))
                .flat_map(|s| s["names"].as_array().unwrap().iter())
                .map(|n| n.as_str().unwrap().to_string())
                .collect()
        };
        let unconditional =
            names_of(&|s| s["action"] == "SCMP_ACT_ALLOW" && s.get("args").is_none());
        for name in ["read", "write", "execve", "socketcall", "ptrace", "chroot"] {
            assert!(
                unconditional.iter().any(|n| n == name),
                "{name} not allowed"
            );
        }
        let allowed = names_of(&|s| s["action"] == "SCMP_ACT_ALLOW");
        for name in [
            "keyctl",
            "add_key",
            "request_key",
            "unshare",
            "setns",
            "mount",
            "umount2",
            "pivot_root",
            "bpf",
            "perf_event_open",
            "kexec_load",
            "init_module",
            "clone3",
        ] {
            assert!(!allowed.iter().any(|n| n == name), "{name} allowed");
        }
        let clone3: Vec<_> = syscalls
            .iter()
            .filter(|s| s["names"] == serde_json::json!(["clone3"]))
            .collect();
        assert_eq!(clone3.len(), 1);
        assert_eq!(clone3[0]["action"], "SCMP_ACT_ERRNO");
        assert_eq!(clone3[0]["errnoRet"], 38);
        let clone: Vec<_> = syscalls
            .iter()
            .filter(|s| s["names"] == serde_json::json!(["clone"]))
            .collect();
        assert_eq!(clone.len(), 1);
        assert_eq!(
            clone[0]["args"],
            serde_json::json!([{"index": 0, "value": 0x7E02_0000u64, "op": "SCMP_CMP_MASKED_EQ"}])
        );
        let socket: Vec<_> = syscalls
            .iter()
            .filter(|s| s["names"] == serde_json::json!(["socket"]))
            .map(|s| (s["args"][0]["op"].clone(), s["args"][0]["value"].clone()))
            .collect();
        assert_eq!(
            socket,
            [
                ("SCMP_CMP_LT", 38),
                ("SCMP_CMP_EQ", 39),
                ("SCMP_CMP_GT", 40)
            ]
            .map(|(op, v)| (serde_json::json!(op), serde_json::json!(v)))
        );

        // With every capability: unconditional clone, clone3 and unshare, no errno rules.
        let all = serde_json::to_value(docker_default(ALL_CAPS).oci()).unwrap();
        let all = all["syscalls"].as_array().unwrap();
        assert!(all.iter().all(|s| s["action"] == "SCMP_ACT_ALLOW"));
        assert!(all.iter().any(|s| {
            let names = s["names"].as_array().unwrap();
            names.contains(&serde_json::json!("unshare"))
                && names.contains(&serde_json::json!("clone3"))
        }));
    }

    /// Runs `probe` in a forked child that first loads `program`, and returns the
    /// results it reports: a syscall's return value, or minus its errno.
    fn in_filtered_child<const N: usize>(
        program: &[sock_filter],
        probe: fn() -> [i64; N],
    ) -> (i64, [i64; N]) {
        let mut fds = [0; 2];
        // SAFETY: a two-element array for pipe2.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: the child only makes raw syscalls (no allocation, no locks) and _exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            let mut out = [0i64; 64];
            out[0] = match load(program) {
                Ok(()) => 0,
                Err(errno) => -i64::from(errno),
            };
            if out[0] == 0 {
                out[1..=N].copy_from_slice(&probe());
            }
            // SAFETY: writes a live buffer, then exits without running any destructor.
            unsafe {
                libc::write(fds[1], out.as_ptr().cast(), 8 * (N + 1));
                libc::_exit(0)
            }
        }
        // SAFETY: closing our copy of the write end.
        unsafe { libc::close(fds[1]) };
        let mut buf = [0u8; 8 * 65];
        let mut got = 0;
        loop {
            // SAFETY: reads into the rest of a live buffer.
            let n = unsafe { libc::read(fds[0], buf[got..].as_mut_ptr().cast(), buf.len() - got) };
            if n <= 0 {
                break;
            }
            got += n as usize;
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        unsafe {
            libc::close(fds[0]);
            libc::waitpid(pid, &mut status, 0);
        }
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "filtered child ended with status {status:#x}"
        );
        assert_eq!(got, 8 * (N + 1), "child reported {got} bytes");
        let word = |i: usize| i64::from_ne_bytes(buf[8 * i..8 * i + 8].try_into().unwrap());
        let mut results = [0; N];
        for (i, r) in results.iter_mut().enumerate() {
            *r = word(i + 1);
        }
        (word(0), results)
    }

    /// A raw syscall's result: its return value, or minus errno.
    fn sys(r: libc::c_long) -> i64 {
        if r == -1 {
            -i64::from(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
        } else {
            r
        }
    }

    /// Reaps a child a probe cloned (the child itself exits at once).
    fn reap(r: i64) -> i64 {
        if r == 0 {
            // SAFETY: we are the cloned grandchild: leave now.
            unsafe { libc::_exit(0) }
        }
        if r > 0 {
            // SAFETY: waits for our own child.
            unsafe { libc::waitpid(r as libc::pid_t, std::ptr::null_mut(), 0) };
        }
        r
    }

    const PROBES: usize = 13;

    fn probe() -> [i64; PROBES] {
        type L = libc::c_long;
        // SAFETY: raw syscalls with scalar arguments or pointers to live values; the clone
        // variants share nothing (no CLONE_VM) and the new process exits at once in `reap`.
        unsafe {
            let mut clone_args = [0u64; 8]; // struct clone_args, CLONE_ARGS_SIZE_VER0
            clone_args[4] = libc::SIGCHLD as u64; // exit_signal
            [
                sys(libc::syscall(
                    libc::SYS_prctl,
                    libc::PR_GET_NO_NEW_PRIVS as L,
                    0 as L,
                    0 as L,
                    0 as L,
                    0 as L,
                )),
                sys(libc::syscall(libc::SYS_getpid)),
                sys(libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER as L)),
                sys(libc::syscall(libc::SYS_unshare, libc::CLONE_NEWNS as L)),
                // Without the filter: EBADF.
                sys(libc::syscall(libc::SYS_setns, -1 as L, 0 as L)),
                // KEYCTL_GET_KEYRING_ID of KEY_SPEC_SESSION_KEYRING.
                sys(libc::syscall(libc::SYS_keyctl, 0 as L, -3 as L, 0 as L)),
                // Without the filter: ENOENT.
                sys(libc::syscall(
                    libc::SYS_mount,
                    c"none".as_ptr(),
                    c"/nonexistent/seccomp-probe".as_ptr(),
                    c"tmpfs".as_ptr(),
                    0 as L,
                    0 as L,
                )),
                reap(sys(libc::syscall(
                    libc::SYS_clone,
                    (libc::CLONE_NEWUSER | libc::SIGCHLD) as L,
                    0 as L,
                    0 as L,
                    0 as L,
                    0 as L,
                ))),
                reap(sys(libc::syscall(
                    libc::SYS_clone,
                    libc::SIGCHLD as L,
                    0 as L,
                    0 as L,
                    0 as L,
                    0 as L,
                ))),
                reap(sys(libc::syscall(
                    libc::SYS_clone3,
                    clone_args.as_mut_ptr(),
                    std::mem::size_of_val(&clone_args) as L,
                ))),
                sys(libc::syscall(
                    libc::SYS_socket,
                    AF_VSOCK as L,
                    libc::SOCK_STREAM as L,
                    0 as L,
                )),
                sys(libc::syscall(
                    libc::SYS_socket,
                    libc::AF_UNIX as L,
                    (libc::SOCK_STREAM | libc::SOCK_CLOEXEC) as L,
                    0 as L,
                )),
                sys(libc::syscall(libc::SYS_personality, 0xffff_ffff as L)),
            ]
        }
    }

    /// The filter in a real process: as root (so with CAP_SYS_ADMIN, and no
    /// no_new_privs), a forked child installs it and tries what it must refuse and allow.
    #[test]
    fn installed_filter_is_enforced() {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: installing the filter without no_new_privs needs root");
            return;
        }
        let program = docker_default(DEFAULT_CAPS).bpf().unwrap();
        let (loaded, r) = in_filtered_child(&program, probe);
        assert_eq!(loaded, 0, "seccomp(SET_MODE_FILTER) failed");
        let eperm = -i64::from(libc::EPERM);
        assert_eq!(r[0], 0, "no_new_privs was set");
        assert!(r[1] > 0, "getpid: {}", r[1]);
        assert_eq!(r[2], eperm, "unshare(CLONE_NEWUSER)");
        assert_eq!(r[3], eperm, "unshare(CLONE_NEWNS)");
        assert_eq!(r[4], eperm, "setns");
        assert_eq!(r[5], eperm, "keyctl");
        assert_eq!(r[6], eperm, "mount");
        assert_eq!(r[7], eperm, "clone(CLONE_NEWUSER)");
        assert!(r[8] > 0, "clone(SIGCHLD): {}", r[8]);
        assert_eq!(r[9], -i64::from(libc::ENOSYS), "clone3");
        assert_eq!(r[10], eperm, "socket(AF_VSOCK)");
        assert!(r[11] >= 0, "socket(AF_UNIX): {}", r[11]);
        assert!(r[12] >= 0, "personality(query): {}", r[12]);
    }

    /// The same probes with every capability kept: the namespace calls go through.
    #[test]
    fn installed_filter_with_all_caps_allows_namespaces() {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: installing the filter without no_new_privs needs root");
            return;
        }
        let program = docker_default(ALL_CAPS).bpf().unwrap();
        let (loaded, r) = in_filtered_child(&program, probe);
        assert_eq!(loaded, 0, "seccomp(SET_MODE_FILTER) failed");
        let eperm = -i64::from(libc::EPERM);
        assert_eq!(r[3], 0, "unshare(CLONE_NEWNS)");
        assert_eq!(r[4], -i64::from(libc::EBADF), "setns(-1)");
        assert_eq!(r[5], eperm, "keyctl");
        assert_eq!(
            r[6],
            -i64::from(libc::ENOENT),
            "mount on a missing directory"
        );
        assert!(r[9] > 0, "clone3: {}", r[9]);
    }

    /// Forks a child that runs `f` and exits with its result; returns the wait status.
    fn child_status(f: impl FnOnce() -> i32) -> i32 {
        // SAFETY: the child only makes raw syscalls (no allocation, no locks) and _exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            let code = f();
            // SAFETY: leaves the child without running any destructor.
            unsafe { libc::_exit(code) }
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        status
    }

    /// getpid through the i386 entry point (`int 0x80`, audit arch I386).
    #[cfg(target_arch = "x86_64")]
    fn i386_getpid() -> i32 {
        let mut eax: u32 = 20; // __NR_getpid on i386
                               // SAFETY: a compat syscall without pointer arguments; int 0x80 zeroes r8-r11.
        unsafe {
            std::arch::asm!(
                "int 0x80",
                inout("eax") eax,
                out("r8") _,
                out("r9") _,
                out("r10") _,
                out("r11") _,
                options(nostack)
            );
        }
        eax as i32
    }

    /// A 32-bit syscall of a filtered process kills it (Docker would apply the same
    /// names to it through its x86 sub-architecture).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn installed_filter_kills_i386_syscalls() {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: installing the filter without no_new_privs needs root");
            return;
        }
        // SAFETY: getpid cannot fail.
        let baseline = child_status(|| i32::from(i386_getpid() != unsafe { libc::getpid() }));
        if !(libc::WIFEXITED(baseline) && libc::WEXITSTATUS(baseline) == 0) {
            eprintln!("skipped: this kernel runs no i386 syscalls (status {baseline:#x})");
            return;
        }
        let program = docker_default(DEFAULT_CAPS).bpf().unwrap();
        let status = child_status(|| {
            if load(&program).is_err() {
                return 2;
            }
            i386_getpid();
            3
        });
        assert!(
            libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSYS,
            "status {status:#x}"
        );
    }
}
