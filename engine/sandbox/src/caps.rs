//! Capabilities by number, and the set RUN steps keep.

/// Linux capability names, indexed by number (`CAP_CHOWN` is 0, `CAP_CHECKPOINT_RESTORE`
/// 40), as `capabilities(7)` lists them.
pub(crate) const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

// Numbers of the capabilities named in code (the seccomp profile's rules).
pub(crate) const CAP_DAC_READ_SEARCH: u32 = 2;
pub(crate) const CAP_SYS_MODULE: u32 = 16;
pub(crate) const CAP_SYS_RAWIO: u32 = 17;
pub(crate) const CAP_SYS_CHROOT: u32 = 18;
pub(crate) const CAP_SYS_PTRACE: u32 = 19;
pub(crate) const CAP_SYS_PACCT: u32 = 20;
pub(crate) const CAP_SYS_ADMIN: u32 = 21;
pub(crate) const CAP_SYS_BOOT: u32 = 22;
pub(crate) const CAP_SYS_NICE: u32 = 23;
pub(crate) const CAP_SYS_TIME: u32 = 25;
pub(crate) const CAP_SYS_TTY_CONFIG: u32 = 26;
pub(crate) const CAP_SYSLOG: u32 = 34;
pub(crate) const CAP_PERFMON: u32 = 38;
pub(crate) const CAP_BPF: u32 = 39;

/// Every capability this table knows, as a bit mask.
pub(crate) const ALL: u64 = (1 << NAMES.len()) - 1;

/// Docker's default capability set: CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, SETGID,
/// SETUID, SETPCAP, NET_BIND_SERVICE, NET_RAW, SYS_CHROOT, MKNOD, AUDIT_WRITE, SETFCAP.
pub(crate) const DEFAULT: u64 = (1 << 0)
    | (1 << 1)
    | (1 << 3)
    | (1 << 4)
    | (1 << 5)
    | (1 << 6)
    | (1 << 7)
    | (1 << 8)
    | (1 << 10)
    | (1 << 13)
    | (1 << 18)
    | (1 << 27)
    | (1 << 29)
    | (1 << 31);

/// The names of the capabilities in `mask`.
pub(crate) fn names(mask: u64) -> impl Iterator<Item = &'static str> {
    NAMES
        .iter()
        .enumerate()
        .filter(move |(i, _)| mask & (1 << i) != 0)
        .map(|(_, n)| *n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_set_is_dockers() {
        let d: Vec<_> = names(DEFAULT).collect();
        assert_eq!(
            d,
            [
                "CAP_CHOWN",
                "CAP_DAC_OVERRIDE",
                "CAP_FOWNER",
                "CAP_FSETID",
                "CAP_KILL",
                "CAP_SETGID",
                "CAP_SETUID",
                "CAP_SETPCAP",
                "CAP_NET_BIND_SERVICE",
                "CAP_NET_RAW",
                "CAP_SYS_CHROOT",
                "CAP_MKNOD",
                "CAP_AUDIT_WRITE",
                "CAP_SETFCAP"
            ]
        );
        for (n, name) in [
            (CAP_DAC_READ_SEARCH, "CAP_DAC_READ_SEARCH"),
            (CAP_SYS_MODULE, "CAP_SYS_MODULE"),
            (CAP_SYS_RAWIO, "CAP_SYS_RAWIO"),
            (CAP_SYS_CHROOT, "CAP_SYS_CHROOT"),
            (CAP_SYS_PTRACE, "CAP_SYS_PTRACE"),
            (CAP_SYS_PACCT, "CAP_SYS_PACCT"),
            (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
            (CAP_SYS_BOOT, "CAP_SYS_BOOT"),
            (CAP_SYS_NICE, "CAP_SYS_NICE"),
            (CAP_SYS_TIME, "CAP_SYS_TIME"),
            (CAP_SYS_TTY_CONFIG, "CAP_SYS_TTY_CONFIG"),
            (CAP_SYSLOG, "CAP_SYSLOG"),
            (CAP_PERFMON, "CAP_PERFMON"),
            (CAP_BPF, "CAP_BPF"),
        ] {
            assert_eq!(NAMES[n as usize], name);
        }
        assert_eq!(names(ALL).count(), 41);
    }
}
