//! A cgroup of its own for each run, holding its limits (helper side).
//!
//! The helper creates a leaf, writes the limits, and either joins it just long enough
//! to fork the sandbox (built-in mode) or hands the OCI runtime a `cgroupsPath` below
//! it ([`Cgroup::runtime_path`]), so that the container nests in it and the limits,
//! and their counters, cover it. Afterwards it reads whether a limit was hit.
//!
//! Placement: on cgroup v2, below the engine's own cgroup; on v1, `engine-run-<pid>`
//! at the root of the `pids` and `memory` hierarchies, the one place both an absolute
//! `cgroupsPath` and our own leaves agree on in every hierarchy.
//!
//! Both hierarchies are handled: the unified one (cgroup v2, `/sys/fs/cgroup` is
//! `cgroup2`) and the v1 `pids` and `memory` controllers of legacy and hybrid hosts.
//! A host where neither can be written (a v2 cgroup with processes of its own and no
//! delegation, say) runs without limits; [`Cgroup::create`] says so, and the caller
//! warns.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::spec::Limits;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const CGROUP2_SUPER_MAGIC: libc::c_long = 0x6367_7270;
/// Prefix of the leaves, `<prefix><helper pid>`: a crashed engine's leftovers are
/// recognised by a dead pid and removed by the next run.
const PREFIX: &str = "engine-run-";

/// Which limit a run ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Hit {
    /// A fork or clone was refused at the pids limit.
    Pids(u64),
    /// The kernel killed a process of the run at the memory limit.
    Memory(u64),
}

#[derive(Debug)]
enum Layout {
    /// One leaf in the unified hierarchy.
    V2(PathBuf),
    /// A leaf per v1 controller: `pids`, then `memory` when a memory limit is set.
    V1 {
        pids: Option<PathBuf>,
        memory: Option<PathBuf>,
    },
}

/// The run's cgroup. Removed by [`Cgroup::remove`] (or by the next run after a crash).
#[derive(Debug)]
pub(crate) struct Cgroup {
    layout: Layout,
    limits: Limits,
}

/// Where the helper was before [`Cgroup::join`], per hierarchy (its
/// `cgroup.procs` files), for [`Cgroup::leave`].
pub(crate) struct Home(Vec<PathBuf>);

fn own_path(controller: Option<&str>) -> io::Result<PathBuf> {
    let text = fs::read_to_string("/proc/self/cgroup")?;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (parts.next(), parts.next(), parts.next());
        let (Some(ctrls), Some(path)) = (ctrls, path) else {
            continue;
        };
        let matches = match controller {
            None => ctrls.is_empty(),
            Some(c) => ctrls.split(',').any(|x| x == c),
        };
        if matches {
            return Ok(PathBuf::from(path.trim_start_matches('/')));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!(
            "no {} cgroup in /proc/self/cgroup",
            controller.unwrap_or("unified")
        ),
    ))
}

fn is_cgroup2(path: &Path) -> bool {
    rustix::fs::statfs(path).is_ok_and(|s| s.f_type == CGROUP2_SUPER_MAGIC)
}

fn write(path: &Path, value: &str) -> io::Result<()> {
    fs::write(path, value).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// Removes leaves left by helpers that are gone (a `kill -9` of the engine).
fn sweep(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: kill with signal 0 only checks for existence.
        let alive = unsafe { libc::kill(pid, 0) } == 0
            || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if !alive {
            // An OCI runtime's container cgroup may sit below it.
            let _ = remove_leaf(&e.path().join("container"));
            let _ = remove_leaf(&e.path());
        }
    }
}

/// [`sweep`] in every v1 hierarchy: an OCI runtime makes its cgroup path in each.
fn sweep_v1(root: &Path) {
    if let Ok(entries) = fs::read_dir(root) {
        for e in entries.flatten() {
            sweep(&e.path());
        }
    }
}

/// Kills what is left in a leaf and removes it (retrying while the kernel reaps).
fn remove_leaf(dir: &Path) -> io::Result<()> {
    for _ in 0..200 {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                if fs::write(dir.join("cgroup.kill"), "1").is_err() {
                    let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                        // SAFETY: plain kill(2) of a process in the run's own cgroup.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => return Err(e),
        }
    }
    fs::remove_dir(dir)
}

fn counter(file: &Path, key: &str) -> u64 {
    fs::read_to_string(file)
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == key).then(|| v.trim().parse().ok()).flatten()
            })
        })
        .unwrap_or(0)
}

impl Cgroup {
    /// Creates the run's cgroup with `limits`. `Ok(None)` when there is nothing to
    /// limit; `Err` when limits are asked for and no hierarchy can hold them.
    pub(crate) fn create(limits: Limits, nest: bool) -> Result<Option<Cgroup>, String> {
        if limits.pids.is_none() && limits.memory.is_none() {
            return Ok(None);
        }
        let name = format!("{PREFIX}{}", std::process::id());
        let root = Path::new(CGROUP_ROOT);
        let layout = if is_cgroup2(root) {
            Self::create_v2(root, &name, limits, nest)?
        } else {
            Self::create_v1(root, &name, limits)?
        };
        Ok(Some(Cgroup { layout, limits }))
    }

    /// The `cgroupsPath` to give an OCI runtime: a child of the run's leaf, as a path
    /// from the hierarchy's root.
    pub(crate) fn runtime_path(&self) -> PathBuf {
        let leaf = match &self.layout {
            Layout::V2(d) => d
                .strip_prefix(CGROUP_ROOT)
                .map(Path::to_path_buf)
                .unwrap_or_else(|_| d.clone()),
            // `<root>/<controller>/<leaf>`: the same name at the root of every hierarchy.
            Layout::V1 { pids, memory } => pids
                .iter()
                .chain(memory.iter())
                .find_map(|d| d.file_name())
                .map(PathBuf::from)
                .unwrap_or_default(),
        };
        Path::new("/").join(leaf).join("container")
    }

    fn create_v2(root: &Path, name: &str, limits: Limits, nest: bool) -> Result<Layout, String> {
        let parent = root.join(own_path(None).map_err(|e| e.to_string())?);
        sweep(&parent);
        let mut wanted = Vec::new();
        if limits.pids.is_some() {
            wanted.push("pids");
        }
        if limits.memory.is_some() {
            wanted.push("memory");
        }
        let have = fs::read_to_string(parent.join("cgroup.subtree_control")).unwrap_or_default();
        for c in &wanted {
            if !have.split_whitespace().any(|h| h == *c) {
                write(&parent.join("cgroup.subtree_control"), &format!("+{c}")).map_err(|e| {
                    format!(
                        "cannot enable the {c} controller for RUN steps ({e}); the engine's \
                         cgroup holds processes of its own: run it in a delegated cgroup \
                         (systemd-run --scope -p Delegate=yes) or inside a container"
                    )
                })?;
            }
        }
        let dir = parent.join(name);
        fs::create_dir(&dir).map_err(|e| format!("create cgroup {}: {e}", dir.display()))?;
        let set = || -> io::Result<()> {
            if let Some(p) = limits.pids {
                write(&dir.join("pids.max"), &p.to_string())?;
            }
            if let Some(m) = limits.memory {
                write(&dir.join("memory.max"), &m.to_string())?;
                // Swap would let the run go past its limit.
                let _ = fs::write(dir.join("memory.swap.max"), "0");
            }
            Ok(())
        };
        if let Err(e) = set() {
            let _ = fs::remove_dir(&dir);
            return Err(format!("set limits: {e}"));
        }
        if nest {
            // The runtime's container goes below the leaf, which holds no process.
            let ctrl: Vec<String> = wanted.iter().map(|c| format!("+{c}")).collect();
            if let Err(e) = write(&dir.join("cgroup.subtree_control"), &ctrl.join(" ")) {
                let _ = fs::remove_dir(&dir);
                return Err(format!("delegate controllers: {e}"));
            }
        }
        Ok(Layout::V2(dir))
    }

    fn create_v1(root: &Path, name: &str, limits: Limits) -> Result<Layout, String> {
        sweep_v1(root);
        let leaf = |ctrl: &str| -> Result<PathBuf, String> {
            let mount = root.join(ctrl);
            if !mount.join("cgroup.procs").exists() {
                return Err(format!(
                    "no writable cgroup hierarchy with the {ctrl} controller under {CGROUP_ROOT}"
                ));
            }
            let dir = mount.join(name);
            fs::create_dir(&dir).map_err(|e| format!("create cgroup {}: {e}", dir.display()))?;
            Ok(dir)
        };
        let (mut pids, mut memory) = (None, None);
        let r = (|| -> Result<(), String> {
            if let Some(p) = limits.pids {
                let d = leaf("pids")?;
                pids = Some(d.clone());
                write(&d.join("pids.max"), &p.to_string()).map_err(|e| e.to_string())?;
            }
            if let Some(m) = limits.memory {
                let d = leaf("memory")?;
                memory = Some(d.clone());
                write(&d.join("memory.limit_in_bytes"), &m.to_string())
                    .map_err(|e| e.to_string())?;
                let _ = fs::write(d.join("memory.memsw.limit_in_bytes"), m.to_string());
                let _ = fs::write(d.join("memory.swappiness"), "0");
            }
            Ok(())
        })();
        let layout = Layout::V1 { pids, memory };
        if let Err(e) = r {
            remove_layout(&layout);
            return Err(e);
        }
        Ok(layout)
    }

    fn leaves(&self) -> Vec<&Path> {
        match &self.layout {
            Layout::V2(d) => vec![d.as_path()],
            Layout::V1 { pids, memory } => pids
                .iter()
                .chain(memory.iter())
                .map(PathBuf::as_path)
                .collect(),
        }
    }

    /// Moves the calling process into the run's cgroup; returns where it was.
    pub(crate) fn join(&self) -> Result<Home, String> {
        let root = Path::new(CGROUP_ROOT);
        let homes = match &self.layout {
            Layout::V2(_) => vec![root.join(own_path(None).map_err(|e| e.to_string())?)],
            Layout::V1 { pids, memory } => {
                let mut v = Vec::new();
                for (leaf, ctrl) in [(pids, "pids"), (memory, "memory")] {
                    if leaf.is_some() {
                        let own = own_path(Some(ctrl)).map_err(|e| e.to_string())?;
                        v.push(root.join(ctrl).join(own));
                    }
                }
                v
            }
        };
        let me = std::process::id().to_string();
        for d in self.leaves() {
            write(&d.join("cgroup.procs"), &me).map_err(|e| format!("join cgroup: {e}"))?;
        }
        Ok(Home(
            homes.into_iter().map(|d| d.join("cgroup.procs")).collect(),
        ))
    }

    /// Moves the calling process back to where it was before [`Cgroup::join`].
    pub(crate) fn leave(&self, home: &Home) -> Result<(), String> {
        let me = std::process::id().to_string();
        for procs in &home.0 {
            write(procs, &me).map_err(|e| format!("leave cgroup: {e}"))?;
        }
        Ok(())
    }

    /// The limit the run ran into, if any.
    pub(crate) fn hit(&self) -> Option<Hit> {
        let (pids, memory) = match &self.layout {
            Layout::V2(d) => (Some(d.clone()), Some(d.clone())),
            Layout::V1 { pids, memory } => (pids.clone(), memory.clone()),
        };
        if let (Some(limit), Some(d)) = (self.limits.memory, &memory) {
            let v2 = matches!(self.layout, Layout::V2(_));
            // v1 counts OOM kills and refused forks in the cgroup where they happened,
            // which an OCI runtime has removed by now: that the leaf's usage reached
            // its limit tells instead (the limit error is only reported for a failed
            // command).
            let number = |f: &str| {
                fs::read_to_string(d.join(f))
                    .ok()
                    .and_then(|t| t.trim().parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let hit = if v2 {
                counter(&d.join("memory.events"), "oom_kill") > 0
            } else {
                counter(&d.join("memory.oom_control"), "oom_kill") > 0
                    || number("memory.failcnt") > 0
                    || number("memory.max_usage_in_bytes") >= limit
            };
            if hit {
                return Some(Hit::Memory(limit));
            }
        }
        if let (Some(limit), Some(d)) = (self.limits.pids, &pids) {
            let peak = fs::read_to_string(d.join("pids.peak"))
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
                .unwrap_or(0);
            if counter(&d.join("pids.events"), "max") > 0 || peak >= limit {
                return Some(Hit::Pids(limit));
            }
        }
        None
    }

    /// Kills whatever is left in the cgroup and removes it, with what a runtime made
    /// below it.
    pub(crate) fn remove(self) {
        remove_layout(&self.layout);
    }
}

/// Removes a run's leaves and what a runtime made below them (on v1, in every
/// hierarchy: runc makes its path in each), killing what is left in them.
fn remove_layout(layout: &Layout) {
    let mut dirs: Vec<PathBuf> = match layout {
        Layout::V2(d) => vec![d.clone()],
        Layout::V1 { pids, memory } => {
            let name = pids
                .as_ref()
                .or(memory.as_ref())
                .and_then(|d| d.file_name())
                .map(|n| n.to_os_string());
            let hierarchies = fs::read_dir(CGROUP_ROOT)
                .map(|r| r.flatten().map(|e| e.path()).collect::<Vec<_>>())
                .unwrap_or_default();
            match name {
                Some(n) => hierarchies.into_iter().map(|h| h.join(&n)).collect(),
                None => Vec::new(),
            }
        }
    };
    dirs.retain(|d| d.exists());
    for d in &dirs {
        let _ = remove_leaf(&d.join("container"));
        let _ = remove_leaf(d);
    }
}
