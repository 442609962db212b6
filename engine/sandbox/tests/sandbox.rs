//! Real runs, as root, with the built-in sandbox, runc and crun.
//! Needs busybox-static, runc and crun (see .ci/run); fails loudly without them.

mod common;

use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt};
use std::time::{Duration, Instant};

use common::*;
use engine_sandbox::{
    executor_for, CancelToken, Error, ExitStatus, Mount, MountKind, Network, Rootfs, Sandbox, User,
};

#[test]
fn echo_output_is_captured() {
    for (name, exec) in executors() {
        let f = Fixture::new();
        let out = run(&*exec, &f.spec("echo hello; echo oops >&2; echo world"));
        assert_eq!(out.ok(name), "hello\nworld\n", "{name}");
        assert_eq!(out.stderr, "oops\n", "{name}");
    }
}

#[test]
fn exit_code_propagates() {
    for (name, exec) in executors() {
        let f = Fixture::new();
        let out = run(&*exec, &f.spec("echo partial; exit 7"));
        assert_eq!(out.code(name), 7, "{name}");
        assert!(matches!(out.status, Ok(ExitStatus::Code(7))), "{name}");
        assert_eq!(out.stdout, "partial\n", "{name}");
    }
}

#[test]
fn command_is_pid_1() {
    for (name, exec) in executors() {
        let f = Fixture::new();
        let out = run(&*exec, &f.spec("echo $$; ls /proc | grep -c '^[0-9]'"));
        // The shell is PID 1 and, with ls and grep, the only processes there.
        let lines: Vec<&str> = out.ok(name).lines().collect();
        assert_eq!(lines[0], "1", "{name}");
        assert!(lines[1].parse::<u32>().unwrap() <= 4, "{name}: {lines:?}");
    }
}

#[test]
fn hostname_is_set() {
    for (name, exec) in executors() {
        let f = Fixture::new();
        let out = run(&*exec, &f.spec("hostname; cat /etc/hosts"));
        let text = out.ok(name);
        assert!(text.starts_with("buildkitsandbox\n"), "{name}: {text}");
        assert!(
            text.contains("127.0.0.1\tlocalhost buildkitsandbox"),
            "{name}: {text}"
        );
        let mut spec = f.spec("hostname");
        spec.hostname = "custom-host".into();
        assert_eq!(run(&*exec, &spec).ok(name), "custom-host\n", "{name}");
    }
}

#[test]
fn runs_as_the_given_user() {
    for (name, exec) in executors() {
        let f = Fixture::new();
        let mut spec = f.spec("cat /proc/self/status; id -G; echo HOME=$HOME");
        spec.user = User {
            uid: 1000,
            gid: 1000,
            additional_gids: vec![10],
        };
        let out = run(&*exec, &spec);
        let text = out.ok(name);
        assert!(
            text.contains("Uid:\t1000\t1000\t1000\t1000\n"),
            "{name}: {text}"
        );
        assert!(
            text.contains("Gid:\t1000\t1000\t1000\t1000\n"),
            "{name}: {text}"
        );
        assert!(text.contains("Groups:\t10 "), "{name}: {text}");
        assert!(
            text.contains("CapEff:\t0000000000000000\n"),
            "{name}: {text}"
        );
        assert!(
            text.contains("CapBnd:\t00000000a80425fb\n"),
            "{name}: {text}"
        );
        assert!(text.contains("HOME=/home/app\n"), "{name}: {text}");
    }
}

#[test]
fn root_gets_docker_default_capabilities() {
    for (name, exec) in executors() {
        let f = Fixture::new();
        let out = run(
            &*exec,
            &f.spec("grep -E '^(Cap|NoNewPrivs)' /proc/self/status; echo HOME=$HOME"),
        );
        let text = out.ok(name);
        for line in [
            "CapInh:\t0000000000000000",
            "CapPrm:\t00000000a80425fb",
            "CapEff:\t00000000a80425fb",
            "CapBnd:\t00000000a80425fb",
            "CapAmb:\t0000000000000000",
            "NoNewPrivs:\t0",
            "HOME=/root",
        ] {
            assert!(text.contains(line), "{name}: missing {line:?} in {text}");
        }
    }
}

#[test]
fn no_new_privileges_when_asked() {
    for (name, exec) in executors() {
        let f = Fixture::new();
        let mut spec = f.spec("grep NoNewPrivs /proc/self/status");
        spec.no_new_privileges = true;
        assert_eq!(run(&*exec, &spec).ok(name), "NoNewPrivs:\t1\n", "{name}");
    }
}

#[test]
fn user_lookup_resolves_inside_the_rootfs() {
    for (name, exec) in executors() {
        let f = Fixture::new();
        let mut spec = f.spec("id -u; id -g; id -G");
        spec.user_lookup = Some("app".into());
        assert_eq!(
            run(&*exec, &spec).ok(name),
            "1000\n1000\n1000 10\n",
            "{name}"
        );
        spec.user_lookup = Some("nobody".into());
        let out = run(&*exec, &spec);
        let err = out.status.expect_err(name).to_string();
        assert!(
            err.contains("unable to find user nobody: no matching entries in passwd file"),
            "{name}: {err}"
        );
    }
}

#[test]
fn sys_is_read_only_and_proc_is_masked() {
    for (name, exec) in executors() {
        let f = Fixture::new();
        let script = "touch /sys/x 2>&1 && echo sys-writable; \
                      (echo 1 > /proc/sys/kernel/domainname) 2>&1 && echo procsys-writable; \
                      echo keys=$(cat /proc/keys /proc/timer_list | wc -c); \
                      echo firmware=$(ls /sys/firmware | wc -l); \
                      true";
        let out = run(&*exec, &f.spec(script));
        let text = out.ok(name);
        assert!(!text.contains("sys-writable"), "{name}: {text}");
        assert!(!text.contains("procsys-writable"), "{name}: {text}");
        assert!(text.contains("Read-only file system"), "{name}: {text}");
        assert!(
            text.contains("keys=0\n"),
            "{name}: /proc/keys not masked: {text}"
        );
        assert!(
            text.contains("firmware=0\n"),
            "{name}: /sys/firmware not masked: {text}"
        );
    }
}

#[test]
fn dev_is_minimal() {
    for (name, exec) in executors() {
        let f = Fixture::new();
        let script = "ls /dev; echo x > /dev/null && head -c 5 /dev/zero | wc -c; \
                      readlink /dev/fd; readlink /dev/stdout; ls -d /dev/pts /dev/shm";
        let out = run(&*exec, &f.spec(script));
        let text = out.ok(name);
        let entries: Vec<&str> = text.lines().collect();
        for dev in [
            "null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx", "fd",
        ] {
            assert!(entries.contains(&dev), "{name}: /dev lacks {dev}: {text}");
        }
        assert!(
            !entries.contains(&"sda") && !entries.contains(&"vda"),
            "{name}: {text}"
        );
        assert!(
            text.contains("\n5\n/proc/self/fd\n/proc/self/fd/1\n"),
            "{name}: {text}"
        );
    }
}

#[test]
fn only_stdio_fds_are_open() {
    for (name, exec) in executors() {
        let f = Fixture::new();
        // 3 is the directory ls itself opens.
        let out = run(&*exec, &f.spec("ls /proc/self/fd"));
        assert_eq!(out.ok(name), "0\n1\n2\n3\n", "{name}");
        // stdin is empty (runc and crun put a pipe of their own in between).
        let out = run(&*exec, &f.spec("cat; echo eof"));
        assert_eq!(out.ok(name), "eof\n", "{name}: stdin");
        if name == "builtin" {
            let out = run(&*exec, &f.spec("readlink /proc/self/fd/0"));
            assert_eq!(out.ok(name), "/dev/null\n", "{name}: stdin");
        }
    }
}

#[test]
fn cwd_is_created() {
    for (name, exec) in executors() {
        let f = Fixture::new();
        let mut spec = f.spec("pwd; touch here");
        spec.cwd = "/work/deep/dir".into();
        assert_eq!(run(&*exec, &spec).ok(name), "/work/deep/dir\n", "{name}");
        assert!(f.root.join("work/deep/dir/here").is_file(), "{name}");
    }
}

#[test]
fn env_is_passed_and_path_is_searched() {
    for (name, exec) in executors() {
        let f = Fixture::new();
        let mut spec = f.spec("echo \"$FOO|$BAR\"");
        spec.env.push("FOO=hello world".into());
        spec.env.push("BAR=a=b".into());
        assert_eq!(run(&*exec, &spec).ok(name), "hello world|a=b\n", "{name}");
        let mut spec = f.spec("");
        spec.args = vec!["echo".into(), "looked".into(), "up".into()];
        assert_eq!(run(&*exec, &spec).ok(name), "looked up\n", "{name}");
        spec.args = vec!["no-such-command".into()];
        let out = run(&*exec, &spec);
        let err = out.status.expect_err(name).to_string();
        assert!(err.contains("no-such-command"), "{name}: {err}");
    }
}

#[test]
fn overlay_rootfs_writes_to_upper() {
    for (name, exec) in executors() {
        let f = Fixture::new();
        std::fs::write(f.root.join("keep"), "kept\n").unwrap();
        std::fs::write(f.root.join("gone"), "to be deleted\n").unwrap();
        let upper = f.dir.path().join("upper");
        let work = f.dir.path().join("work");
        std::fs::create_dir(&upper).unwrap();
        std::fs::create_dir(&work).unwrap();
        let mut spec = f.spec("echo new > /newfile; rm /gone; cat /keep; ls /");
        spec.rootfs = Rootfs::Overlay {
            lowers: vec![f.root.clone()],
            upper: upper.clone(),
            work,
        };
        let before = host_mounts();
        let text = run(&*exec, &spec).ok(name).to_string();
        assert!(text.starts_with("kept\n"), "{name}: {text}");
        assert_eq!(
            std::fs::read_to_string(upper.join("newfile")).unwrap(),
            "new\n",
            "{name}"
        );
        let wh = std::fs::symlink_metadata(upper.join("gone")).unwrap();
        assert!(
            wh.file_type().is_char_device() && wh.rdev() == 0,
            "{name}: no whiteout"
        );
        assert_eq!(
            std::fs::read_to_string(f.root.join("gone")).unwrap(),
            "to be deleted\n"
        );
        assert!(!f.root.join("newfile").exists(), "{name}: lower changed");
        // The mount points the run needed are gone from the layer again.
        let mut left: Vec<String> = std::fs::read_dir(&upper)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert!(
            left.iter()
                .all(|e| ["etc", "gone", "newfile"].contains(&e.as_str())),
            "{name}: upper holds {left:?}"
        );
        if upper.join("etc").exists() {
            assert_eq!(
                std::fs::read_dir(upper.join("etc")).unwrap().count(),
                0,
                "{name}"
            );
        }
        assert_eq!(host_mounts(), before, "{name}: host mount table changed");
    }
}

#[test]
fn overlay_without_lowers_and_with_several() {
    let f = Fixture::new();
    let exec = Sandbox::with_helper(HELPER);
    let top = f.dir.path().join("top");
    std::fs::create_dir(&top).unwrap();
    std::fs::write(top.join("layer"), "top\n").unwrap();
    let upper = f.dir.path().join("upper");
    let work = f.dir.path().join("work");
    std::fs::create_dir(&upper).unwrap();
    std::fs::create_dir(&work).unwrap();
    let mut spec = f.spec("cat /layer");
    spec.rootfs = Rootfs::Overlay {
        lowers: vec![top, f.root.clone()],
        upper: upper.clone(),
        work: work.clone(),
    };
    assert_eq!(run(&exec, &spec).ok("builtin"), "top\n");
    // No lower at all (FROM scratch): the command itself cannot exist, but the mount works.
    spec.rootfs = Rootfs::Overlay {
        lowers: vec![],
        upper,
        work,
    };
    let err = run(&exec, &spec).status.unwrap_err().to_string();
    assert!(err.contains("/bin/sh"), "{err}");
}

#[test]
fn network_none_has_only_loopback() {
    for (name, exec) in executors() {
        let f = Fixture::new();
        let mut spec = f.spec("cat /proc/net/dev");
        spec.network = Network::None;
        let text = run(&*exec, &spec).ok(name).to_string();
        let ifaces: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split_once(':').map(|(i, _)| i.trim()))
            .collect();
        assert_eq!(ifaces, ["lo"], "{name}: {text}");
        let mut spec = f.spec("cat /sys/class/net/lo/operstate /sys/class/net/lo/flags");
        spec.network = Network::None;
        let text = run(&*exec, &spec).ok(name).to_string();
        let flags = text.lines().nth(1).unwrap();
        let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).unwrap();
        assert_eq!(flags & 1, 1, "{name}: lo is not up: {text}");
    }
}

#[test]
fn hostile_cwd_does_not_reach_the_host() {
    // CVE-2024-21626: a working directory through a leaked fd would be a host directory.
    let host_only = [
        "work",
        "usr",
        "boot",
        "var",
        "resolv.conf",
        "engine-sandbox",
    ];
    for (name, exec) in executors() {
        let f = Fixture::new();
        for n in 3..=12 {
            let mut spec = f.spec("pwd; ls -a; ls -a ..; ls -a ../..");
            spec.cwd = format!("/proc/self/fd/{n}");
            let out = run(&*exec, &spec);
            if name == "builtin" {
                // The built-in sandbox refuses magic links and fds that do not exist.
                let err = out.status.as_ref().expect_err(name).to_string();
                assert!(err.contains("working directory /proc/self/fd/"), "{err}");
            }
            if out.status.is_err() {
                continue;
            }
            for entry in out.stdout.lines() {
                assert!(
                    !host_only.contains(&entry.trim()),
                    "{name}: cwd fd {n} shows host entry {entry:?}: {}",
                    out.stdout
                );
            }
        }
    }
}

#[test]
fn bind_mount_targets_resolve_inside_the_rootfs() {
    for (name, exec) in executors() {
        let f = Fixture::new();
        let src = f.dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("marker"), "from the host\n").unwrap();
        // A link to "/": mounting there would cover the whole root.
        symlink("/", f.root.join("evil")).unwrap();
        let before = host_mounts();
        let mut spec = f.spec("ls /");
        spec.mounts.push(Mount {
            target: "/evil".into(),
            kind: MountKind::Bind {
                source: src.clone(),
                readonly: false,
            },
        });
        let out = run(&*exec, &spec);
        let err = out.status.expect_err(name).to_string();
        assert!(err.contains("root of the container"), "{name}: {err}");
        // An absolute link to /etc and one climbing out: both land in the rootfs' /etc.
        symlink("/etc", f.root.join("etclink")).unwrap();
        symlink("../../../../../../etc/sub", f.root.join("uplink")).unwrap();
        let mut spec = f.spec("cat /etc/marker /etc/sub/marker");
        spec.mounts = vec![
            Mount {
                target: "/etclink/marker".into(),
                kind: MountKind::Bind {
                    source: src.join("marker"),
                    readonly: true,
                },
            },
            Mount {
                target: "/uplink".into(),
                kind: MountKind::Bind {
                    source: src.clone(),
                    readonly: true,
                },
            },
        ];
        let out = run(&*exec, &spec);
        assert_eq!(out.ok(name), "from the host\nfrom the host\n", "{name}");
        assert!(!std::path::Path::new("/etc/marker").exists());
        assert!(!std::path::Path::new("/etc/sub").exists());
        // The stubs went away again.
        assert!(!f.root.join("etc/marker").exists(), "{name}");
        assert!(!f.root.join("etc/sub").exists(), "{name}");
        assert_eq!(host_mounts(), before, "{name}: host mount table changed");
    }
}

#[test]
fn extra_mounts_and_read_only_rootfs() {
    for (name, exec) in executors() {
        let f = Fixture::new();
        let cache = f.dir.path().join("cache");
        std::fs::create_dir(&cache).unwrap();
        let ro = f.dir.path().join("ro");
        std::fs::create_dir(&ro).unwrap();
        let mut spec = f.spec(
            "echo cached > /var/cache/x/file; \
             touch /ro/nope 2>/dev/null && echo ro-writable; \
             echo t > /scratch/t && cat /scratch/t; \
             touch /rootfile 2>/dev/null && echo root-writable; true",
        );
        spec.readonly_rootfs = true;
        spec.cwd = "/made/here".into();
        spec.mounts = vec![
            Mount {
                target: "/var/cache/x".into(),
                kind: MountKind::Bind {
                    source: cache.clone(),
                    readonly: false,
                },
            },
            Mount {
                target: "/ro".into(),
                kind: MountKind::Bind {
                    source: ro,
                    readonly: true,
                },
            },
            Mount {
                target: "/scratch".into(),
                kind: MountKind::Tmpfs {
                    size: Some(1 << 20),
                },
            },
        ];
        assert_eq!(run(&*exec, &spec).ok(name), "t\n", "{name}");
        assert_eq!(
            std::fs::read_to_string(cache.join("file")).unwrap(),
            "cached\n"
        );
        assert!(f.root.join("made/here").is_dir(), "{name}: cwd not created");
        for stub in [
            "var",
            "ro",
            "scratch",
            "proc",
            "dev",
            "sys",
            "etc/hosts",
            "etc/resolv.conf",
        ] {
            assert!(
                !f.root.join(stub).exists(),
                "{name}: stub {stub} left behind"
            );
        }
    }
}

#[test]
fn cancellation_kills_everything() {
    for (name, exec) in executors() {
        let f = Fixture::new();
        let marker = format!("cancel-marker-{name}-{}", std::process::id());
        let mut spec = f.spec(&format!("sleep 100 & sleep 100; echo {marker}"));
        spec.network = Network::None;
        let before = host_mounts();
        let cancel = CancelToken::new();
        let c2 = cancel.clone();
        let m2 = marker.clone();
        let watcher = std::thread::spawn(move || {
            // Wait until the command runs, then cancel.
            let start = Instant::now();
            while processes_with(&m2).is_empty() && start.elapsed() < Duration::from_secs(20) {
                std::thread::sleep(Duration::from_millis(20));
            }
            std::thread::sleep(Duration::from_millis(200));
            c2.cancel();
            Instant::now()
        });
        let out = run_with(&*exec, &spec, &cancel);
        let done = Instant::now();
        let cancelled_at = watcher.join().unwrap();
        assert!(
            matches!(out.status, Err(Error::Cancelled)),
            "{name}: {:?}",
            out.status
        );
        let took = done - cancelled_at;
        assert!(
            took < Duration::from_secs(2),
            "{name}: cancellation took {took:?}"
        );
        assert_eq!(
            processes_with(&marker),
            Vec::<u32>::new(),
            "{name}: processes left"
        );
        assert_eq!(host_mounts(), before, "{name}: host mount table changed");
    }
}

#[test]
fn no_mounts_leak_into_the_host() {
    for (name, exec) in executors() {
        let f = Fixture::new();
        let before = host_mounts();
        let out = run(&*exec, &f.spec("grep -c . /proc/self/mountinfo"));
        let inside: u32 = out.ok(name).trim().parse().unwrap();
        assert!(inside >= 8, "{name}: {inside} mounts inside");
        assert_eq!(host_mounts(), before, "{name}");
    }
}

#[test]
fn concurrent_runs_on_one_lower() {
    let f = Fixture::new();
    let lower = f.root.clone();
    let mut jobs = Vec::new();
    for (name, exec) in executors() {
        let exec: std::sync::Arc<dyn engine_sandbox::Executor> = exec.into();
        for i in 0..3 {
            let exec = exec.clone();
            let lower = lower.clone();
            let base = f.dir.path().join(format!("{name}-{i}"));
            jobs.push(std::thread::spawn(move || {
                let upper = base.join("upper");
                let work = base.join("work");
                std::fs::create_dir_all(&upper).unwrap();
                std::fs::create_dir_all(&work).unwrap();
                let mut spec = engine_sandbox::RunSpec::new(
                    Rootfs::Overlay {
                        lowers: vec![lower],
                        upper: upper.clone(),
                        work,
                    },
                    vec![
                        "/bin/sh".into(),
                        "-c".into(),
                        format!("echo {name}-{i} > /id; cat /id"),
                    ],
                );
                spec.env = vec!["PATH=/bin".into()];
                let out = run(&*exec, &spec);
                assert_eq!(out.ok(name), format!("{name}-{i}\n"));
                assert_eq!(
                    std::fs::read_to_string(upper.join("id")).unwrap(),
                    format!("{name}-{i}\n")
                );
            }));
        }
    }
    for j in jobs {
        j.join().unwrap();
    }
    assert!(!lower.join("id").exists());
}

#[test]
fn already_cancelled_runs_nothing() {
    for (name, exec) in executors() {
        let f = Fixture::new();
        let cancel = CancelToken::new();
        cancel.cancel();
        let out = run_with(&*exec, &f.spec("touch /ran"), &cancel);
        assert!(matches!(out.status, Err(Error::Cancelled)), "{name}");
        assert!(!f.root.join("ran").exists(), "{name}");
    }
}

#[test]
fn executor_for_picks_the_runtime() {
    require_root();
    assert!(
        executor_for("runc", None).is_ok(),
        "install runc (see .ci/run)"
    );
    assert!(matches!(
        executor_for("/no/such/runtime", None),
        Err(Error::RuntimeNotFound(_))
    ));
}
