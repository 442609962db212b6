//! Disk usage, reconciling the index with the store, and collection.
//!
//! **Reconcile** makes the index agree with the disk, which is the truth:
//! a complete snapshot without a record gets one (from its `meta.json` and
//! `layer-*.json`), a record without its snapshot (or cache mount) is
//! dropped, sizes are measured where unknown. It runs inside `du` and every
//! collection, so an index lost or dropped is rebuilt by the next one.
//!
//! **Collection** runs under the exclusive `gc.lock` (no build can start
//! using anything meanwhile), reads the live leases, and deletes, least
//! recently used first, what no lease holds: a record's snapshot (renamed
//! into `trash/` under the lock, deleted after it is released), the blobs
//! no remaining record refers to, and blobs no record ever referred to.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::index::IndexTxn;
use crate::lease::{self, LeaseItem, LiveLeases};
use crate::lock::FileLock;
use crate::record::read_meta;
use crate::record::{Kind, Record, StepLayer};
use crate::store::CacheStore;
use crate::sweep::disk_usage;
use crate::{now_secs, valid_key, CacheError};
use engine_oci::Digest;

/// What a collection may delete.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Also cache mounts (`prune --all`).
    pub all: bool,
    /// Stop once the cache is at most this big.
    pub keep_storage: Option<u64>,
    /// Only what was last used longer ago than this.
    pub until: Option<Duration>,
    /// Wait for running lookups (a prune) or give up if any (automatic
    /// collection at the end of a build).
    pub wait: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    /// False when an automatic collection found the store busy.
    pub ran: bool,
    pub records: usize,
    pub blobs: usize,
    pub reclaimed: u64,
    pub size_before: u64,
    pub size_after: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct UsageRow {
    pub kind: String,
    pub items: u64,
    pub size: u64,
    pub reclaimable: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecordUsage {
    pub key: String,
    pub kind: Kind,
    pub description: String,
    pub size: u64,
    pub last_used: u64,
    pub in_use: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Usage {
    pub rows: Vec<UsageRow>,
    pub total: u64,
    pub reclaimable: u64,
    /// Builds running on this cache right now.
    pub live_builds: usize,
    pub records: Vec<RecordUsage>,
}

/// The `layer-<tag>.json` files of a snapshot directory.
fn read_layers(dir: &Path) -> BTreeMap<String, StepLayer> {
    let mut out = BTreeMap::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(tag) = name
            .strip_prefix("layer-")
            .and_then(|n| n.strip_suffix(".json"))
        else {
            continue;
        };
        if let Some(l) = fs::read(e.path())
            .ok()
            .and_then(|b| serde_json::from_slice::<StepLayer>(&b).ok())
        {
            out.insert(tag.to_string(), l);
        }
    }
    out
}

fn mtime_secs(p: &Path) -> u64 {
    fs::metadata(p)
        .map(|m| m.mtime().max(0) as u64)
        .unwrap_or(0)
}

/// What the disk holds, with the index brought in line.
struct View {
    /// key → (record, bytes of its snapshot or mount directory).
    records: BTreeMap<String, (Record, u64)>,
    /// Every blob on disk → bytes on disk.
    blobs: BTreeMap<Digest, u64>,
}

fn reconcile(store: &CacheStore, txn: &IndexTxn, measure_all: bool) -> Result<View, CacheError> {
    let root = store.root();
    let mut indexed: BTreeMap<String, Record> =
        txn.all()?.into_iter().map(|r| (r.key.clone(), r)).collect();
    let mut records = BTreeMap::new();
    let now = now_secs();

    let snaps = root.join("snapshots");
    for e in fs::read_dir(&snaps).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let dir = e.path();
        if !valid_key(&name) || !dir.join("done").exists() {
            continue;
        }
        let mut changed = false;
        let mut r = match indexed.remove(&name) {
            Some(r) if r.kind != Kind::CacheMount => r,
            _ => {
                changed = true;
                let meta = read_meta(&dir);
                let kind = meta.as_ref().map_or(Kind::File, |m| m.kind);
                let mut r = Record::new(&name, kind, meta.as_ref().map_or(now, |m| m.created));
                r.last_used = mtime_secs(&dir);
                if let Some(m) = meta {
                    r.description = m.description;
                    r.base_layers = m.base_layers;
                    r.base_config = m.base_config;
                }
                r
            }
        };
        for (tag, l) in read_layers(&dir) {
            if r.layers.get(&tag) != Some(&l) {
                r.layers.insert(tag, l);
                changed = true;
            }
        }
        let size = match r.snapshot_size {
            Some(s) if !measure_all => s,
            _ => {
                let s = disk_usage(&dir);
                if r.snapshot_size != Some(s) {
                    r.snapshot_size = Some(s);
                    changed = true;
                }
                s
            }
        };
        if changed {
            txn.put(&r)?;
        }
        records.insert(name, (r, size));
    }

    let mounts = root.join("mounts");
    for e in fs::read_dir(&mounts).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !valid_key(&name) || !e.path().is_dir() {
            continue;
        }
        let size = disk_usage(&e.path());
        let mut r = match indexed.remove(&name) {
            Some(r) if r.kind == Kind::CacheMount => r,
            _ => {
                let mut r = Record::new(&name, Kind::CacheMount, mtime_secs(&e.path()));
                r.description = "cache mount".into();
                r
            }
        };
        if r.snapshot_size != Some(size) {
            r.snapshot_size = Some(size);
            txn.put(&r)?;
        }
        records.insert(name, (r, size));
    }

    // Records whose snapshot or mount is gone.
    for k in indexed.keys() {
        txn.remove(k)?;
    }

    let mut blobs = BTreeMap::new();
    for d in store.blobs().list()? {
        if let Ok(m) = fs::metadata(store.blobs().path(&d)) {
            blobs.insert(d, m.blocks() * 512);
        }
    }
    Ok(View { records, blobs })
}

fn leased(leases: &LiveLeases, r: &Record) -> bool {
    match r.kind {
        Kind::CacheMount => leases.holds(&LeaseItem::Mount(r.key.clone())),
        _ => leases.holds_key(&r.key),
    }
}

/// Trash entries are `<key>.<nonce>` (or anything else, e.g. an old index).
fn trash_key(name: &str) -> Option<&str> {
    name.split_once('.')
        .map(|(k, _)| k)
        .filter(|k| valid_key(k))
}

impl CacheStore {
    /// Disk usage by kind, and what `prune --all` would reclaim now.
    pub fn du(&self) -> Result<Usage, CacheError> {
        let _g = self.using()?;
        let leases = lease::live_leases(self.root())
            .map_err(CacheError::io("reading leases in", self.root()))?;
        let view = self.index().with(|txn| {
            self.fold_journal(txn)?;
            reconcile(self, txn, true)
        })?;
        let mut rows: BTreeMap<&'static str, UsageRow> = BTreeMap::new();
        let mut row = |kind: &'static str, size: u64, reclaimable: bool| {
            let r = rows.entry(kind).or_insert_with(|| UsageRow {
                kind: kind.to_string(),
                ..Default::default()
            });
            r.items += 1;
            r.size += size;
            if reclaimable {
                r.reclaimable += size;
            }
        };
        // Blobs: reclaimable unless a kept (leased) record or a lease holds them.
        let mut held_blobs: HashSet<Digest> = HashSet::new();
        let mut referenced: HashSet<Digest> = HashSet::new();
        let mut records = Vec::new();
        for (r, size) in view.records.values() {
            let in_use = leased(&leases, r);
            row(r.kind.as_str(), *size, !in_use);
            for (d, _) in r.blobs() {
                referenced.insert(*d);
                if in_use {
                    held_blobs.insert(*d);
                }
            }
            records.push(RecordUsage {
                key: r.key.clone(),
                kind: r.kind,
                description: r.description.clone(),
                size: *size,
                last_used: r.last_used,
                in_use,
            });
        }
        for (d, size) in &view.blobs {
            let in_use = held_blobs.contains(d) || leases.holds(&LeaseItem::Blob(*d));
            let kind = if referenced.contains(d) {
                "layer-blob"
            } else {
                "unreferenced-blob"
            };
            row(kind, *size, !in_use);
        }
        let trash = disk_usage(&self.root().join("trash"));
        let trash_entries = fs::read_dir(self.root().join("trash"))
            .map(|r| r.count() as u64)
            .unwrap_or(0);
        let mut rows: Vec<UsageRow> = rows.into_values().collect();
        if trash_entries > 0 {
            rows.push(UsageRow {
                kind: "trash".into(),
                items: trash_entries,
                size: trash,
                reclaimable: trash,
            });
        }
        let accounted: u64 = rows.iter().map(|r| r.size).sum();
        let on_disk = disk_usage(self.root());
        rows.push(UsageRow {
            kind: "metadata".into(),
            items: 1,
            size: on_disk.saturating_sub(accounted),
            reclaimable: 0,
        });
        let total = rows.iter().map(|r| r.size).sum();
        let reclaimable = rows.iter().map(|r| r.reclaimable).sum();
        records.sort_by(|a, b| b.last_used.cmp(&a.last_used).then(a.key.cmp(&b.key)));
        Ok(Usage {
            rows,
            total,
            reclaimable,
            // Not counting this process's own session.
            live_builds: leases.sessions.saturating_sub(1),
            records,
        })
    }

    /// Collect per `policy`. Never deletes what a live session leases.
    pub fn gc(&self, policy: &Policy) -> Result<GcReport, CacheError> {
        let lock_path = self.root().join("gc.lock");
        let guard = if policy.wait {
            FileLock::exclusive(&lock_path).map(Some)
        } else {
            FileLock::try_exclusive(&lock_path)
        }
        .map_err(CacheError::io("locking", &lock_path))?;
        let Some(guard) = guard else {
            return Ok(GcReport::default());
        };
        let leases = lease::live_leases(self.root())
            .map_err(CacheError::io("reading leases in", self.root()))?;
        lease::sweep_orphan_tmp(self.root(), &lease::live_session_ids(self.root()));
        let now = now_secs();
        let cutoff = policy.until.map(|d| now.saturating_sub(d.as_secs()));
        let report = self.index().with(|txn| {
            self.fold_journal(txn)?;
            let view = reconcile(self, txn, false)?;
            let mut refs: HashMap<Digest, usize> = HashMap::new();
            for (r, _) in view.records.values() {
                for (d, _) in r.blobs() {
                    *refs.entry(*d).or_default() += 1;
                }
            }
            let blob_size = |d: &Digest| view.blobs.get(d).copied().unwrap_or(0);
            let mut total: u64 = view.records.values().map(|(_, s)| *s).sum::<u64>()
                + view.blobs.values().sum::<u64>();
            let mut report = GcReport {
                ran: true,
                size_before: total,
                ..Default::default()
            };
            let done = |total: u64| policy.keep_storage.is_some_and(|k| total <= k);
            let delete_blob = |d: &Digest, total: &mut u64, report: &mut GcReport| {
                if leases.holds(&LeaseItem::Blob(*d)) {
                    return;
                }
                if self.blobs().delete(d).unwrap_or(false) {
                    let s = blob_size(d);
                    *total = total.saturating_sub(s);
                    report.reclaimed += s;
                    report.blobs += 1;
                }
            };
            // Blobs nothing refers to: garbage first, oldest first.
            let mut garbage: Vec<(u64, Digest)> = view
                .blobs
                .keys()
                .filter(|d| !refs.contains_key(d))
                .map(|d| (mtime_secs(&self.blobs().path(d)), *d))
                .filter(|(t, _)| cutoff.is_none_or(|c| *t < c))
                .collect();
            garbage.sort();
            for (_, d) in &garbage {
                if done(total) {
                    break;
                }
                delete_blob(d, &mut total, &mut report);
            }
            // Records, least recently used first.
            let mut candidates: Vec<&(Record, u64)> = view
                .records
                .values()
                .filter(|(r, _)| !leased(&leases, r))
                .filter(|(r, _)| policy.all || r.kind != Kind::CacheMount)
                .filter(|(r, _)| cutoff.is_none_or(|c| r.last_used < c))
                .collect();
            candidates.sort_by(|a, b| {
                a.0.last_used
                    .cmp(&b.0.last_used)
                    .then(a.0.key.cmp(&b.0.key))
            });
            for (r, size) in candidates {
                if done(total) {
                    break;
                }
                let dir = match r.kind {
                    Kind::CacheMount => self.mount_dir(&r.key),
                    _ => self.snapshot_dir(&r.key),
                };
                self.to_trash(&dir, &r.key)?;
                txn.remove(&r.key)?;
                total = total.saturating_sub(*size);
                report.reclaimed += size;
                report.records += 1;
                for (d, _) in r.blobs() {
                    let n = refs.entry(*d).or_default();
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        delete_blob(d, &mut total, &mut report);
                    }
                }
            }
            report.size_after = total;
            Ok(report)
        })?;
        self.sweep_locks();
        drop(guard);
        self.empty_trash(&leases);
        Ok(report)
    }

    /// Delete key lock files of keys without a snapshot, unless held.
    fn sweep_locks(&self) {
        let dir = self.root().join("locks");
        for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(key) = name.strip_suffix(".lock").filter(|k| valid_key(k)) else {
                continue;
            };
            if self.snapshot_dir(key).join("done").exists() {
                continue;
            }
            if let Ok(Some(l)) = FileLock::try_exclusive_existing(&e.path()) {
                l.unlink();
            }
        }
    }

    /// Delete trash entries no live session may still use.
    fn empty_trash(&self, leases: &LiveLeases) {
        let dir = self.root().join("trash");
        for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if trash_key(&name).is_some_and(|k| {
                leases.holds_key(k) || leases.holds(&LeaseItem::Mount(k.to_string()))
            }) {
                continue;
            }
            let _ = crate::sweep::remove_tree(&e.path());
        }
    }

    /// Write this build's records ([`flush`](Self::flush)), then collect
    /// least recently used entries down to `limit` if the cache is bigger.
    /// Never waits for other builds: a busy store is collected next time.
    pub fn finish(&self, limit: Option<u64>) -> Result<GcReport, CacheError> {
        let Some(size) = self.flush()? else {
            // Nothing new: the cache did not grow.
            return Ok(GcReport::default());
        };
        match limit {
            Some(limit) if size > limit => self.gc(&Policy {
                all: true,
                keep_storage: Some(limit),
                until: None,
                wait: false,
            }),
            _ => Ok(GcReport {
                size_before: size,
                size_after: size,
                ..Default::default()
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::LayerRef;
    use std::path::PathBuf;

    fn key(n: u8) -> String {
        format!("{n:02x}").repeat(32)
    }

    fn commit(store: &CacheStore, k: &str, bytes: usize, used: u64) -> PathBuf {
        let s = store.staging(k).unwrap();
        fs::create_dir_all(s.join("fs")).unwrap();
        fs::write(s.join("fs/data"), vec![7u8; bytes]).unwrap();
        let mut r = Record::new(k, Kind::Exec, used);
        r.last_used = used;
        store.commit_snapshot(&s, &r, false).unwrap();
        store.snapshot_dir(k)
    }

    fn layer(store: &CacheStore, k: &str, content: &[u8]) -> Digest {
        let (d, size) = store.blobs().put_bytes(content).unwrap();
        store
            .put_step_layer(
                k,
                "Gzip-none",
                &StepLayer::Blob(LayerRef {
                    digest: d,
                    diff_id: d,
                    size,
                    media_type: "x".into(),
                }),
            )
            .unwrap();
        d
    }

    #[test]
    fn prune_all_empties_but_spares_leased_keys() {
        let d = tempfile::tempdir().unwrap();
        let builder = CacheStore::open(d.path()).unwrap();
        let (k1, k2) = (key(1), key(2));
        commit(&builder, &k1, 10_000, 1);
        let b1 = layer(&builder, &k1, b"one");
        commit(&builder, &k2, 20_000, 2);
        let b2 = layer(&builder, &k2, b"two");
        builder.blobs().put_bytes(b"garbage").unwrap();
        builder.flush().unwrap();
        drop(builder);

        // Another "build" holds k2.
        let running = CacheStore::open(d.path()).unwrap();
        assert!(running.acquire(&k2).unwrap());
        running.step_layer(&k2, "Gzip-none").unwrap().unwrap();

        let pruner = CacheStore::open(d.path()).unwrap();
        let du = pruner.du().unwrap();
        assert_eq!(du.live_builds, 1, "the running build");
        assert_eq!(du.total, du.rows.iter().map(|r| r.size).sum::<u64>());
        let exec = du.rows.iter().find(|r| r.kind == "exec").unwrap();
        assert_eq!(exec.items, 2);
        assert!(exec.reclaimable > 0 && exec.reclaimable < exec.size);

        let rep = pruner
            .gc(&Policy {
                all: true,
                wait: true,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(rep.records, 1);
        assert_eq!(rep.blobs, 2, "k1's layer and the garbage");
        assert!(!pruner.snapshot_dir(&k1).exists());
        assert!(!pruner.blobs().contains(&b1));
        assert!(pruner.snapshot_dir(&k2).join("done").exists());
        assert!(pruner.blobs().contains(&b2));
        assert_eq!(fs::read_dir(d.path().join("trash")).unwrap().count(), 0);

        drop(running);
        pruner
            .gc(&Policy {
                all: true,
                wait: true,
                ..Default::default()
            })
            .unwrap();
        let du = pruner.du().unwrap();
        assert_eq!(du.reclaimable, 0);
        assert!(
            du.rows.iter().all(|r| r.kind == "metadata"),
            "{:?}",
            du.rows
        );
        assert!(pruner.blobs().list().unwrap().is_empty());
    }

    #[test]
    fn keep_storage_removes_least_recently_used_first() {
        let d = tempfile::tempdir().unwrap();
        let s = CacheStore::open(d.path()).unwrap();
        for (n, used) in [(1u8, 30u64), (2, 10), (3, 20)] {
            commit(&s, &key(n), 100_000, used);
        }
        s.flush().unwrap();
        drop(s);
        let s = CacheStore::open(d.path()).unwrap();
        let rep = s
            .gc(&Policy {
                keep_storage: Some(250_000),
                wait: true,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(rep.records, 1);
        assert!(!s.snapshot_dir(&key(2)).exists(), "oldest went first");
        assert!(s.snapshot_dir(&key(1)).exists() && s.snapshot_dir(&key(3)).exists());
        assert!(rep.size_after <= 250_000);
    }

    #[test]
    fn until_only_removes_old_entries() {
        let d = tempfile::tempdir().unwrap();
        let s = CacheStore::open(d.path()).unwrap();
        commit(&s, &key(1), 1000, 5);
        commit(&s, &key(2), 1000, now_secs());
        s.flush().unwrap();
        drop(s);
        let s = CacheStore::open(d.path()).unwrap();
        s.gc(&Policy {
            until: Some(Duration::from_secs(3600)),
            wait: true,
            ..Default::default()
        })
        .unwrap();
        assert!(!s.snapshot_dir(&key(1)).exists());
        assert!(s.snapshot_dir(&key(2)).exists());
    }

    #[test]
    fn index_is_rebuilt_from_disk() {
        let d = tempfile::tempdir().unwrap();
        let s = CacheStore::open(d.path()).unwrap();
        let k = key(9);
        commit(&s, &k, 5000, 7);
        let b = layer(&s, &k, b"layer");
        s.flush().unwrap();
        drop(s);
        fs::remove_dir_all(d.path().join(crate::index::INDEX_DIR)).unwrap();
        let s = CacheStore::open(d.path()).unwrap();
        let du = s.du().unwrap();
        let r = s.index().with(|t| t.get(&k)).unwrap().unwrap();
        assert_eq!(r.kind, Kind::Exec);
        assert_eq!(r.blobs().next().unwrap().0, &b);
        assert!(du.rows.iter().any(|r| r.kind == "layer-blob"));
        assert!(!du.rows.iter().any(|r| r.kind == "unreferenced-blob"));
    }

    #[test]
    fn cache_mounts_go_only_with_all() {
        let d = tempfile::tempdir().unwrap();
        let s = CacheStore::open(d.path()).unwrap();
        let id = "ab".repeat(16);
        let dir = s.use_mount(&id).unwrap();
        fs::write(dir.join("f"), b"cached").unwrap();
        s.flush().unwrap();
        drop(s);
        let s = CacheStore::open(d.path()).unwrap();
        s.gc(&Policy {
            wait: true,
            ..Default::default()
        })
        .unwrap();
        assert!(dir.join("f").exists());
        s.gc(&Policy {
            all: true,
            wait: true,
            ..Default::default()
        })
        .unwrap();
        assert!(!dir.exists());
    }

    #[test]
    fn finish_collects_down_to_the_limit_but_not_what_this_build_used() {
        let d = tempfile::tempdir().unwrap();
        let s = CacheStore::open(d.path()).unwrap();
        commit(&s, &key(1), 50_000, 1);
        s.flush().unwrap();
        drop(s);
        let s = CacheStore::open(d.path()).unwrap();
        commit(&s, &key(2), 50_000, 2);
        let rep = s.finish(Some(1)).unwrap();
        assert!(rep.ran);
        assert!(!s.snapshot_dir(&key(1)).exists());
        assert!(s.snapshot_dir(&key(2)).exists(), "leased by this build");
    }

    #[test]
    fn a_build_that_made_nothing_journals_its_uses_instead_of_opening_the_index() {
        let d = tempfile::tempdir().unwrap();
        let s = CacheStore::open(d.path()).unwrap();
        let k = key(4);
        commit(&s, &k, 1000, 5);
        assert!(
            s.flush().unwrap().is_some(),
            "made something: index session"
        );
        drop(s);
        let s = CacheStore::open(d.path()).unwrap();
        assert!(s.acquire(&k).unwrap());
        let mut r = Record::new(&k, Kind::Exec, 1_000_000);
        r.last_used = 1_000_000;
        s.note(r);
        assert_eq!(s.flush().unwrap(), None, "reused only: journaled");
        assert_eq!(fs::read_dir(d.path().join("journal")).unwrap().count(), 1);
        let before = s.index().with(|t| t.get(&k)).unwrap().unwrap();
        assert_eq!(before.last_used, 5);
        s.du().unwrap();
        let after = s.index().with(|t| t.get(&k)).unwrap().unwrap();
        assert_eq!(after.last_used, 1_000_000, "folded in");
        assert_eq!(fs::read_dir(d.path().join("journal")).unwrap().count(), 0);
    }
}
