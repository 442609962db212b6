//! Sessions and leases: what a running build uses, so that collection in
//! another process (or at the end of this one) never deletes it.
//!
//! Each process that builds opens a [`Session`]:
//!
//! ```text
//! <root>/leases/<id>.lock    flock-ed exclusively for the session's life
//! <root>/leases/<id>.lease   what it uses, one `kind value` line per item
//! <root>/tmp/<id>/           its scratch space (staging, mount points)
//! ```
//!
//! A session is live exactly while its lock is held; the kernel drops the
//! lock when the process dies, however it dies, so liveness needs no pid
//! checks and no heartbeats. A dead session's files are swept by whoever
//! notices first.
//!
//! Items are appended while the caller holds the store's shared `gc.lock`
//! (see [`crate::store`]); collection reads leases under the exclusive one,
//! so it never sees half an update.

use std::collections::{BTreeSet, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::lock::FileLock;
use engine_oci::Digest;

/// Something a session uses.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LeaseItem {
    /// A cache key: its snapshot and record.
    Key(String),
    /// A blob.
    Blob(Digest),
    /// A cache mount directory (its hashed id).
    Mount(String),
}

impl LeaseItem {
    fn line(&self) -> String {
        match self {
            LeaseItem::Key(k) => format!("key {k}\n"),
            LeaseItem::Blob(d) => format!("blob {d}\n"),
            LeaseItem::Mount(m) => format!("mount {m}\n"),
        }
    }

    fn parse(line: &str) -> Option<LeaseItem> {
        let (kind, value) = line.split_once(' ')?;
        match kind {
            "key" if crate::valid_key(value) => Some(LeaseItem::Key(value.to_string())),
            "blob" => Digest::parse(value).ok().map(LeaseItem::Blob),
            "mount" if crate::valid_key(value) => Some(LeaseItem::Mount(value.to_string())),
            _ => None,
        }
    }
}

/// A live process's hold on the cache.
#[derive(Debug)]
pub struct Session {
    id: String,
    leases: PathBuf,
    tmp: PathBuf,
    lock: Option<FileLock>,
    file: Mutex<File>,
    items: Mutex<HashSet<LeaseItem>>,
}

fn unique_id() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    format!("{}-{:x}{n}", std::process::id(), nanos & 0xffff_ffff_ffff)
}

impl Session {
    /// Start a session under `root` (`leases/` and `tmp/` are created).
    pub fn start(root: &Path) -> io::Result<Session> {
        let leases = root.join("leases");
        let tmp_root = root.join("tmp");
        fs::create_dir_all(&leases)?;
        fs::create_dir_all(&tmp_root)?;
        // A sweeper in another process may grab a fresh lock file before we
        // do and take it for a dead session's: then start over.
        let mut attempt = 0;
        let (id, lock) = loop {
            let id = unique_id();
            if let Some(l) = FileLock::try_exclusive(&leases.join(format!("{id}.lock")))? {
                if l.still_linked() {
                    break (id, l);
                }
            }
            attempt += 1;
            if attempt > 20 {
                return Err(io::Error::other("cannot start a cache session"));
            }
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(leases.join(format!("{id}.lease")))?;
        let tmp = tmp_root.join(&id);
        fs::create_dir_all(&tmp)?;
        crate::fsflags::spread_subdirectories(&tmp);
        Ok(Session {
            id,
            leases,
            tmp,
            lock: Some(lock),
            file: Mutex::new(file),
            items: Mutex::new(HashSet::new()),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// This session's private scratch directory.
    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    /// Record that the session uses `item` (once; later calls are free).
    /// Call with the store's shared gc lock held.
    pub fn add(&self, item: LeaseItem) -> io::Result<()> {
        let mut items = self.items.lock().unwrap_or_else(|p| p.into_inner());
        if items.contains(&item) {
            return Ok(());
        }
        let mut f = self.file.lock().unwrap_or_else(|p| p.into_inner());
        // One write(2) on an O_APPEND file: readers see whole lines.
        f.write_all(item.line().as_bytes())?;
        items.insert(item);
        Ok(())
    }

    pub fn holds(&self, item: &LeaseItem) -> bool {
        self.items
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(item)
    }

    /// Every item this session holds.
    pub fn items(&self) -> Vec<LeaseItem> {
        let items = self.items.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<LeaseItem> = items.iter().cloned().collect();
        v.sort();
        v
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = crate::sweep::remove_tree(&self.tmp);
        let _ = fs::remove_file(self.leases.join(format!("{}.lease", self.id)));
        if let Some(l) = self.lock.take() {
            l.unlink();
        }
    }
}

/// What the live sessions hold, and how many there are.
#[derive(Debug, Default, Clone)]
pub struct LiveLeases {
    pub sessions: usize,
    pub items: BTreeSet<LeaseItem>,
}

impl LiveLeases {
    pub fn holds(&self, item: &LeaseItem) -> bool {
        self.items.contains(item)
    }

    pub fn holds_key(&self, key: &str) -> bool {
        self.items.contains(&LeaseItem::Key(key.to_string()))
    }
}

/// Read every live session's lease (including the caller's own, whose lock
/// is on another open file and so reads as held). Dead sessions found on
/// the way are swept: their scratch trees unmounted and removed, their
/// lease files deleted.
pub fn live_leases(root: &Path) -> io::Result<LiveLeases> {
    let leases = root.join("leases");
    let mut out = LiveLeases::default();
    let entries = match fs::read_dir(&leases) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    let mut ids = BTreeSet::new();
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if let Some(id) = name
            .strip_suffix(".lock")
            .or_else(|| name.strip_suffix(".lease"))
        {
            if !id.is_empty() && !id.contains('/') && !id.starts_with('.') {
                ids.insert(id.to_string());
            }
        }
    }
    for id in ids {
        let lock_path = leases.join(format!("{id}.lock"));
        let lease_path = leases.join(format!("{id}.lease"));
        match FileLock::try_exclusive_existing(&lock_path)? {
            None if lock_path.exists() => {
                // Held: live.
                out.sessions += 1;
                if let Ok(text) = fs::read_to_string(&lease_path) {
                    out.items.extend(text.lines().filter_map(LeaseItem::parse));
                }
            }
            held => {
                // Dead (we got its lock) or a lease without lock file.
                sweep_dead(root, &id);
                let _ = fs::remove_file(&lease_path);
                if let Some(l) = held {
                    l.unlink();
                }
            }
        }
    }
    Ok(out)
}

fn sweep_dead(root: &Path, id: &str) {
    let _ = crate::sweep::remove_tree(&root.join("tmp").join(id));
}

/// Sweep scratch directories in `<root>/tmp/` that belong to no live
/// session (left by a process killed before it could clean up).
pub fn sweep_orphan_tmp(root: &Path, live_ids: &HashSet<String>) {
    let Ok(entries) = fs::read_dir(root.join("tmp")) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if live_ids.contains(&name) {
            continue;
        }
        let lock = root.join("leases").join(format!("{name}.lock"));
        if lock.exists() {
            // Maybe live; `live_leases` decides that.
            continue;
        }
        let _ = crate::sweep::remove_tree(&e.path());
    }
}

/// The ids of sessions whose lock is held right now.
pub fn live_session_ids(root: &Path) -> HashSet<String> {
    let mut out = HashSet::new();
    let Ok(entries) = fs::read_dir(root.join("leases")) else {
        return out;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(id) = name.strip_suffix(".lock") {
            if let Ok(None) = FileLock::try_exclusive_existing(&e.path()) {
                out.insert(id.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_and_dead_sessions() {
        let d = tempfile::tempdir().unwrap();
        let key = "ab".repeat(32);
        let s = Session::start(d.path()).unwrap();
        s.add(LeaseItem::Key(key.clone())).unwrap();
        s.add(LeaseItem::Key(key.clone())).unwrap();
        s.add(LeaseItem::Blob(Digest::of(b"x"))).unwrap();
        fs::write(s.tmp_dir().join("scratch"), b"x").unwrap();
        let live = live_leases(d.path()).unwrap();
        assert_eq!(live.sessions, 1);
        assert!(live.holds_key(&key));
        assert!(live.holds(&LeaseItem::Blob(Digest::of(b"x"))));
        assert_eq!(live.items.len(), 2);

        // A "dead" session: files without a held lock.
        let dead = "999999-dead0";
        fs::write(d.path().join(format!("leases/{dead}.lock")), b"").unwrap();
        fs::write(
            d.path().join(format!("leases/{dead}.lease")),
            format!("key {}\n", "cd".repeat(32)),
        )
        .unwrap();
        fs::create_dir_all(d.path().join(format!("tmp/{dead}/snap"))).unwrap();
        let live = live_leases(d.path()).unwrap();
        assert_eq!(live.sessions, 1);
        assert!(!live.holds_key(&"cd".repeat(32)));
        assert!(!d.path().join(format!("tmp/{dead}")).exists());
        assert!(!d.path().join(format!("leases/{dead}.lease")).exists());
        assert!(!d.path().join(format!("leases/{dead}.lock")).exists());

        let tmp = s.tmp_dir().to_path_buf();
        drop(s);
        assert!(!tmp.exists());
        let live = live_leases(d.path()).unwrap();
        assert_eq!(live.sessions, 0);
        assert_eq!(fs::read_dir(d.path().join("leases")).unwrap().count(), 0);
    }

    #[test]
    fn garbage_lease_lines_are_ignored() {
        assert_eq!(LeaseItem::parse("key ../../etc"), None);
        assert_eq!(LeaseItem::parse("blob sha256:xyz"), None);
        assert_eq!(LeaseItem::parse("what ever"), None);
        let k = "ef".repeat(32);
        assert_eq!(
            LeaseItem::parse(&format!("key {k}")),
            Some(LeaseItem::Key(k))
        );
    }
}
