//! Remembered content hashes of context files, by what identifies a file's
//! content without reading it: (device, inode, size, mtime, ctime).
//!
//! ctime cannot be set by users and changes on every write, so a file with
//! the same stamp has the same content, with one exception that git calls
//! "racily clean": a write within the same timestamp tick as the stamp
//! taken. Entries are therefore only remembered for files whose ctime is
//! older than [`RACY_WINDOW`] when they are hashed.
//!
//! The memo is one file, `<root>/memo/files-v1`, loaded on first use and
//! rewritten (temp file + rename) at the end of a build that added entries.
//! Concurrent builds may overwrite each other's additions: that costs a
//! re-read later, never a wrong hash. A file that fails its checksum is
//! ignored.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MAGIC: &[u8; 8] = b"ENGMEMO1";
const ENTRY: usize = 8 * 5 + 32;
/// At most this many entries are kept (72 bytes each).
pub const MAX_ENTRIES: usize = 250_000;
/// Files changed more recently than this are not remembered.
pub const RACY_WINDOW: Duration = Duration::from_secs(2);

/// What identifies a file's content without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileStamp {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl FileStamp {
    #[cfg(unix)]
    pub fn of(meta: &fs::Metadata) -> FileStamp {
        use std::os::unix::fs::MetadataExt;
        FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: meta.mtime().saturating_mul(1_000_000_000) + meta.mtime_nsec(),
            ctime_ns: meta.ctime().saturating_mul(1_000_000_000) + meta.ctime_nsec(),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    map: HashMap<FileStamp, [u8; 32]>,
    used: HashSet<FileStamp>,
    dirty: bool,
}

#[derive(Debug)]
pub struct FileHashMemo {
    path: PathBuf,
    state: Mutex<State>,
}

impl FileHashMemo {
    /// The memo of the cache at `root`; empty if missing or unreadable.
    pub fn load(root: &Path) -> FileHashMemo {
        Self::load_path(root.join("memo").join("files-v1"))
    }

    /// The memo stored at `path`; empty if missing or unreadable.
    pub fn load_path(path: PathBuf) -> FileHashMemo {
        let map = fs::read(&path)
            .ok()
            .and_then(|b| decode(&b))
            .unwrap_or_default();
        FileHashMemo {
            path,
            state: Mutex::new(State {
                map,
                ..Default::default()
            }),
        }
    }

    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, stamp: &FileStamp) -> Option<[u8; 32]> {
        let mut st = self.lock();
        let h = st.map.get(stamp).copied();
        if h.is_some() {
            st.used.insert(*stamp);
        }
        h
    }

    /// Remember `hash` for `stamp` unless the file changed within
    /// [`RACY_WINDOW`] of `now`.
    pub fn insert(&self, stamp: FileStamp, hash: [u8; 32], now: SystemTime) {
        let now_ns = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        let window = RACY_WINDOW.as_nanos() as i64;
        if stamp.ctime_ns > now_ns - window || stamp.mtime_ns > now_ns - window {
            return;
        }
        let mut st = self.lock();
        st.used.insert(stamp);
        if st.map.insert(stamp, hash) != Some(hash) {
            st.dirty = true;
        }
    }

    /// Write the memo back if entries were added: the ones used by this
    /// process first, then others up to [`MAX_ENTRIES`].
    pub fn save(&self) -> io::Result<()> {
        let st = self.lock();
        if !st.dirty {
            return Ok(());
        }
        let mut entries: Vec<(&FileStamp, &[u8; 32])> =
            st.map.iter().filter(|(k, _)| st.used.contains(k)).collect();
        entries.extend(st.map.iter().filter(|(k, _)| !st.used.contains(k)));
        entries.truncate(MAX_ENTRIES);
        let bytes = encode(&entries);
        let dir = self.path.parent().expect("memo path has a parent");
        fs::create_dir_all(dir)?;
        let mut tmp = tempfile::Builder::new().prefix(".memo-").tempfile_in(dir)?;
        tmp.write_all(&bytes)?;
        tmp.persist(&self.path).map_err(|e| e.error)?;
        Ok(())
    }
}

fn encode(entries: &[(&FileStamp, &[u8; 32])]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + entries.len() * ENTRY + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    for (s, h) in entries {
        out.extend_from_slice(&s.dev.to_le_bytes());
        out.extend_from_slice(&s.ino.to_le_bytes());
        out.extend_from_slice(&s.size.to_le_bytes());
        out.extend_from_slice(&s.mtime_ns.to_le_bytes());
        out.extend_from_slice(&s.ctime_ns.to_le_bytes());
        out.extend_from_slice(*h);
    }
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

fn decode(b: &[u8]) -> Option<HashMap<FileStamp, [u8; 32]>> {
    if b.len() < 16 + 32 || &b[..8] != MAGIC {
        return None;
    }
    let (body, sum) = b.split_at(b.len() - 32);
    if blake3::hash(body).as_bytes() != sum {
        return None;
    }
    let n = u64::from_le_bytes(body[8..16].try_into().ok()?) as usize;
    if body.len() != 16 + n.checked_mul(ENTRY)? {
        return None;
    }
    let u = |c: &[u8]| u64::from_le_bytes(c.try_into().expect("8 bytes"));
    let mut map = HashMap::with_capacity(n);
    for e in body[16..].chunks_exact(ENTRY) {
        let stamp = FileStamp {
            dev: u(&e[0..8]),
            ino: u(&e[8..16]),
            size: u(&e[16..24]),
            mtime_ns: u(&e[24..32]) as i64,
            ctime_ns: u(&e[32..40]) as i64,
        };
        let mut h = [0u8; 32];
        h.copy_from_slice(&e[40..72]);
        map.insert(stamp, h);
    }
    Some(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(ino: u64, t: i64) -> FileStamp {
        FileStamp {
            dev: 1,
            ino,
            size: 10,
            mtime_ns: t,
            ctime_ns: t,
        }
    }

    #[test]
    fn remembers_across_loads_and_skips_racy_files() {
        let d = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let now_ns = now.duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64;
        let m = FileHashMemo::load(d.path());
        assert!(m.is_empty());
        m.insert(stamp(1, 1_000), [7; 32], now);
        m.insert(stamp(2, now_ns - 1_000_000), [8; 32], now);
        assert_eq!(m.get(&stamp(1, 1_000)), Some([7; 32]));
        assert_eq!(m.get(&stamp(2, now_ns - 1_000_000)), None, "racy");
        m.save().unwrap();
        let m2 = FileHashMemo::load(d.path());
        assert_eq!(m2.get(&stamp(1, 1_000)), Some([7; 32]));
        assert_eq!(m2.get(&stamp(1, 1_001)), None, "another mtime");
        assert_eq!(m2.len(), 1);
    }

    #[test]
    fn corrupt_files_are_ignored() {
        let d = tempfile::tempdir().unwrap();
        let m = FileHashMemo::load(d.path());
        m.insert(stamp(1, 5), [1; 32], SystemTime::now());
        m.save().unwrap();
        let p = d.path().join("memo/files-v1");
        let mut b = fs::read(&p).unwrap();
        let n = b.len();
        b[n / 2] ^= 1;
        fs::write(&p, &b).unwrap();
        assert!(FileHashMemo::load(d.path()).is_empty());
        fs::write(&p, &b[..20]).unwrap();
        assert!(FileHashMemo::load(d.path()).is_empty());
    }
}
