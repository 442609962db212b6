//! Whether this host can execute a platform's programs: natively, or
//! through a binfmt_misc handler (QEMU user emulation), checked before a
//! RUN step starts so that a missing handler is a clear error that says how
//! to install one, not an `Exec format error` from inside the sandbox.
//!
//! A handler must have the `F` (fix binary) flag: the kernel then opens the
//! interpreter when it is registered, so it works inside the sandbox's new
//! root, where `/usr/libexec/qemu-binfmt/…` does not exist.

use std::path::Path;

/// Where binfmt_misc is mounted.
pub const BINFMT_MISC: &str = "/proc/sys/fs/binfmt_misc";

/// ELF identity of an architecture: (class: 1 = 32-bit, 2 = 64-bit; data:
/// 1 = little-endian, 2 = big-endian; e_machine; QEMU's name for it).
fn elf_identity(arch: &str) -> Option<(u8, u8, u16, &'static str)> {
    Some(match arch {
        "amd64" => (2, 1, 0x3e, "x86_64"),
        "386" => (1, 1, 0x03, "i386"),
        "arm64" => (2, 1, 0xb7, "aarch64"),
        "arm" => (1, 1, 0x28, "arm"),
        "ppc64le" => (2, 1, 0x15, "ppc64le"),
        "s390x" => (2, 2, 0x16, "s390x"),
        "riscv64" => (2, 1, 0xf3, "riscv64"),
        "mips64le" => (2, 1, 0x08, "mips64el"),
        "loong64" => (2, 1, 0x102, "loongarch64"),
        _ => return None,
    })
}

/// The first 20 bytes of an executable of `arch` (what handlers match).
fn elf_header(class: u8, data: u8, machine: u16) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = class;
    h[5] = data;
    h[6] = 1; // EI_VERSION
    let (t, m) = if data == 2 {
        (2u16.to_be_bytes(), machine.to_be_bytes())
    } else {
        (2u16.to_le_bytes(), machine.to_le_bytes())
    };
    h[16..18].copy_from_slice(&t); // ET_EXEC
    h[18..20].copy_from_slice(&m);
    h
}

/// This machine's OCI architecture (`amd64`, `arm64`, …).
pub fn host_architecture() -> String {
    engine_ir::Platform::host().architecture
}

/// Architectures this machine runs without emulation.
fn native(arch: &str) -> bool {
    let host = host_architecture();
    arch == host || (host == "amd64" && arch == "386")
}

/// One registered handler, as `/proc/sys/fs/binfmt_misc/<name>` shows it.
#[derive(Debug, Default)]
struct Handler {
    enabled: bool,
    flags: String,
    offset: usize,
    magic: Vec<u8>,
    mask: Vec<u8>,
}

fn parse_handler(text: &str) -> Option<Handler> {
    let mut h = Handler::default();
    for line in text.lines() {
        let line = line.trim();
        if line == "enabled" {
            h.enabled = true;
        } else if let Some(f) = line.strip_prefix("flags:") {
            h.flags = f.trim().to_string();
        } else if let Some(o) = line.strip_prefix("offset ") {
            h.offset = o.trim().parse().ok()?;
        } else if let Some(m) = line.strip_prefix("magic ") {
            h.magic = hex::decode(m.trim()).ok()?;
        } else if let Some(m) = line.strip_prefix("mask ") {
            h.mask = hex::decode(m.trim()).ok()?;
        }
    }
    (!h.magic.is_empty()).then_some(h)
}

impl Handler {
    fn matches(&self, header: &[u8]) -> bool {
        self.magic.iter().enumerate().all(|(i, m)| {
            let mask = self.mask.get(i).copied().unwrap_or(0xff);
            header
                .get(self.offset + i)
                .is_some_and(|b| b & mask == m & mask)
        })
    }
}

/// `Ok` when RUN steps of `arch` (an OCI architecture: `arm64`, `s390x`, …)
/// can execute here; otherwise what is missing and how to fix it.
pub fn check_can_execute(arch: &str) -> Result<(), String> {
    check_in(Path::new(BINFMT_MISC), arch)
}

fn check_in(binfmt: &Path, arch: &str) -> Result<(), String> {
    if native(arch) {
        return Ok(());
    }
    let Some((class, data, machine, qemu)) = elf_identity(arch) else {
        return Err(format!(
            "cannot run programs for architecture `{arch}` on this {} host: no emulation is known for it",
            host_architecture()
        ));
    };
    let fix = format!(
        "install QEMU user emulation and register it with the F (fix binary) flag: \
         apt-get install qemu-user-static (Debian), then \
         `mount -t binfmt_misc binfmt_misc {BINFMT_MISC}` if it is not mounted, and \
         `cat /usr/lib/binfmt.d/qemu-{qemu}.conf > {BINFMT_MISC}/register`"
    );
    if !binfmt.join("status").exists() {
        return Err(format!(
            "RUN for linux/{arch} needs emulation, and binfmt_misc is not mounted at {}; {fix}",
            binfmt.display()
        ));
    }
    let header = elf_header(class, data, machine);
    let mut without_f = None;
    let entries =
        std::fs::read_dir(binfmt).map_err(|e| format!("reading {}: {e}", binfmt.display()))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "register" || name == "status" {
            continue;
        }
        let Some(h) = std::fs::read_to_string(e.path())
            .ok()
            .and_then(|t| parse_handler(&t))
        else {
            continue;
        };
        if !h.enabled || !h.matches(&header) {
            continue;
        }
        if h.flags.contains('F') {
            return Ok(());
        }
        without_f = Some(name);
    }
    Err(match without_f {
        Some(name) => format!(
            "RUN for linux/{arch} needs emulation, and its binfmt_misc handler `{name}` lacks the F \
             (fix binary) flag, so its interpreter cannot be found inside the build's root; \
             re-register it: `echo -1 > {BINFMT_MISC}/{name}`, then \
             `cat /usr/lib/binfmt.d/qemu-{qemu}.conf > {BINFMT_MISC}/register`"
        ),
        None => format!(
            "RUN for linux/{arch} needs emulation, and no binfmt_misc handler for {qemu} is registered; {fix}"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const AARCH64: &str = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n";

    fn dir(entries: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("status"), "enabled\n").unwrap();
        std::fs::write(d.path().join("register"), "").unwrap();
        for (n, t) in entries {
            std::fs::write(d.path().join(n), t).unwrap();
        }
        d
    }

    #[test]
    fn the_host_architecture_needs_nothing() {
        let d = tempfile::tempdir().unwrap(); // not even binfmt_misc
        assert!(check_in(d.path(), &host_architecture()).is_ok());
    }

    #[test]
    fn a_registered_handler_with_f_is_enough() {
        if host_architecture() == "arm64" {
            return; // arm64 is native there; other rows cover the logic
        }
        let d = dir(&[("qemu-aarch64", AARCH64)]);
        assert_eq!(check_in(d.path(), "arm64"), Ok(()));
        // The aarch64 handler does not run s390x programs.
        let e = check_in(d.path(), "s390x").unwrap_err();
        assert!(e.contains("no binfmt_misc handler for s390x"), "{e}");
        assert!(e.contains("qemu-s390x.conf"), "{e}");
    }

    #[test]
    fn missing_disabled_or_unfixed_handlers_say_how_to_fix() {
        if host_architecture() == "arm64" {
            return;
        }
        let e = check_in(&dir(&[]).path().join("absent"), "arm64").unwrap_err();
        assert!(e.contains("binfmt_misc is not mounted"), "{e}");
        assert!(e.contains("apt-get install qemu-user-static"), "{e}");
        let disabled = AARCH64.replacen("enabled", "disabled", 1);
        let e = check_in(dir(&[("qemu-aarch64", &disabled)]).path(), "arm64").unwrap_err();
        assert!(e.contains("no binfmt_misc handler for aarch64"), "{e}");
        let no_f = AARCH64.replace("flags: POF", "flags: P");
        let e = check_in(dir(&[("qemu-aarch64", &no_f)]).path(), "arm64").unwrap_err();
        assert!(e.contains("lacks the F"), "{e}");
        let e = check_in(dir(&[]).path(), "vax").unwrap_err();
        assert!(e.contains("no emulation is known"), "{e}");
    }

    #[test]
    fn headers_match_qemus_own_magic() {
        // qemu-aarch64.conf's magic and mask, applied to our header.
        let h = parse_handler(AARCH64).unwrap();
        let (c, d, m, _) = elf_identity("arm64").unwrap();
        assert!(h.matches(&elf_header(c, d, m)));
        let (c, d, m, _) = elf_identity("amd64").unwrap();
        assert!(!h.matches(&elf_header(c, d, m)));
        // Big-endian s390x, as qemu-s390x.conf writes it.
        let s390x = parse_handler(
            "enabled\nflags: F\noffset 0\nmagic 7f454c4602020100000000000000000000020016\nmask ffffffffffffff00fffffffffffffffffffeffff\n",
        )
        .unwrap();
        let (c, d, m, _) = elf_identity("s390x").unwrap();
        assert!(s390x.matches(&elf_header(c, d, m)));
    }
}
