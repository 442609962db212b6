//! Helpers shared by the integration tests (real files in temp dirs; the
//! tests expect to run as root on Linux).
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use engine_layers::{flatten, FlatEntry};
use rustix::fs::{AtFlags, FileType, Mode, Timespec, Timestamps, CWD};

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("engine-layers-")
        .tempdir()
        .expect("create temp dir")
}

pub fn write_file(path: &Path, content: &[u8], mode: u32) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    let mut f = fs::File::create(path).unwrap();
    f.write_all(content).unwrap();
    drop(f);
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

pub fn mkdir(path: &Path, mode: u32) {
    fs::create_dir_all(path).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

pub fn symlink(target: impl AsRef<Path>, link: &Path) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

pub fn mknod(path: &Path, ft: FileType, mode: u32, major: u32, minor: u32) {
    rustix::fs::mknodat(
        CWD,
        path,
        ft,
        Mode::from_raw_mode(mode),
        rustix::fs::makedev(major, minor),
    )
    .unwrap();
    rustix::fs::chmodat(CWD, path, Mode::from_raw_mode(mode), AtFlags::empty()).unwrap();
}

pub fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
}

/// Sets atime and mtime (seconds), not following symlinks.
pub fn set_mtime(path: &Path, secs: i64) {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        CWD,
        path,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

/// Sets every mtime below (and including) `root` to `secs`, deepest first.
pub fn set_all_mtimes(root: &Path, secs: i64) {
    let mut paths = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = fs::symlink_metadata(&p).unwrap();
        if meta.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
        paths.push(p);
    }
    for p in paths.iter().rev() {
        set_mtime(p, secs);
    }
}

/// Whether user.* xattrs can be set on files under `dir`.
pub fn user_xattrs_supported(dir: &Path) -> bool {
    let probe = dir.join(".xattr-probe");
    fs::write(&probe, b"").unwrap();
    let ok =
        rustix::fs::setxattr(&probe, "user.probe", b"1", rustix::fs::XattrFlags::empty()).is_ok();
    fs::remove_file(&probe).unwrap();
    ok
}

pub fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty()).unwrap();
}

pub fn bytes_path(base: &Path, rel: &[u8]) -> PathBuf {
    base.join(OsStr::from_bytes(rel))
}

/// A directory with a "canary" sibling of the apply root, to prove that
/// applying a hostile layer leaves everything outside the root alone.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    pub canary: PathBuf,
    before: Snapshot,
}

#[derive(Debug, PartialEq)]
pub struct Snapshot {
    listing: Vec<FlatEntry>,
    canary_mode: u32,
    canary_mtime: i64,
    siblings: Vec<PathBuf>,
}

fn snapshot(dir: &Path, canary: &Path) -> Snapshot {
    let meta = fs::symlink_metadata(canary).expect("canary exists");
    let mut siblings: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    siblings.sort();
    Snapshot {
        listing: flatten(canary).unwrap(),
        canary_mode: meta.mode(),
        canary_mtime: meta.mtime(),
        siblings,
    }
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempdir();
        let root = dir.path().join("root");
        let canary = dir.path().join("canary");
        mkdir(&root, 0o755);
        mkdir(&canary, 0o755);
        write_file(&canary.join("secret"), b"canary", 0o644);
        mkdir(&canary.join("sub"), 0o700);
        write_file(&canary.join("sub/deep"), b"deep canary", 0o600);
        set_all_mtimes(&canary, 1_000_000);
        let before = snapshot(dir.path(), &canary);
        Sandbox {
            dir,
            root,
            canary,
            before,
        }
    }

    /// Asserts the canary and the root's siblings are exactly as before.
    pub fn assert_canary_intact(&self, case: &str) {
        let now = snapshot(self.dir.path(), &self.canary);
        assert_eq!(now, self.before, "canary changed in case {case}");
        assert_eq!(
            fs::read(self.canary.join("secret")).unwrap(),
            b"canary",
            "{case}"
        );
    }
}

/// One entry of a hand-crafted tar.
pub struct Raw<'a> {
    pub name: &'a [u8],
    pub kind: tar::EntryType,
    pub link: &'a [u8],
    pub mode: u32,
    pub data: &'a [u8],
}

impl<'a> Raw<'a> {
    pub fn file(name: &'a str, data: &'a [u8]) -> Self {
        Raw {
            name: name.as_bytes(),
            kind: tar::EntryType::Regular,
            link: b"",
            mode: 0o644,
            data,
        }
    }
    pub fn dir(name: &'a str, mode: u32) -> Self {
        Raw {
            name: name.as_bytes(),
            kind: tar::EntryType::Directory,
            link: b"",
            mode,
            data: b"",
        }
    }
    pub fn symlink(name: &'a str, target: &'a str) -> Self {
        Raw {
            name: name.as_bytes(),
            kind: tar::EntryType::Symlink,
            link: target.as_bytes(),
            mode: 0o777,
            data: b"",
        }
    }
    pub fn hardlink(name: &'a str, target: &'a str) -> Self {
        Raw {
            name: name.as_bytes(),
            kind: tar::EntryType::Link,
            link: target.as_bytes(),
            mode: 0o644,
            data: b"",
        }
    }
}

/// Builds a tar with raw header fields (no path validation at all), using
/// GNU long-name entries when a name or link does not fit.
pub fn raw_tar(entries: &[Raw<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        for (bytes, kind) in [(e.name, b'L'), (e.link, b'K')] {
            if bytes.len() > 100 {
                let mut h = tar::Header::new_gnu();
                h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
                h.set_entry_type(tar::EntryType::new(kind));
                h.set_size(bytes.len() as u64 + 1);
                h.set_mode(0);
                h.set_cksum();
                out.extend_from_slice(h.as_bytes());
                let mut data = bytes.to_vec();
                data.push(0);
                data.resize(data.len().div_ceil(512) * 512, 0);
                out.extend_from_slice(&data);
            }
        }
        let mut h = tar::Header::new_gnu();
        {
            let old = h.as_old_mut();
            let n = e.name.len().min(100);
            old.name[..n].copy_from_slice(&e.name[..n]);
            let l = e.link.len().min(100);
            old.linkname[..l].copy_from_slice(&e.link[..l]);
        }
        h.set_entry_type(e.kind);
        h.set_mode(e.mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_500_000_000);
        h.set_size(e.data.len() as u64);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        let mut data = e.data.to_vec();
        data.resize(data.len().div_ceil(512) * 512, 0);
        out.extend_from_slice(&data);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// Entries of an uncompressed tar as (name, type, link name, size), read
/// with the `tar` crate (an independent reader).
pub fn list_tar(data: &[u8]) -> Vec<(Vec<u8>, tar::EntryType, Vec<u8>, u64)> {
    let mut a = tar::Archive::new(data);
    let mut out = Vec::new();
    for e in a.entries().unwrap() {
        let e = e.unwrap();
        let link = e
            .link_name_bytes()
            .map(|l| l.into_owned())
            .unwrap_or_default();
        out.push((
            e.path_bytes().into_owned(),
            e.header().entry_type(),
            link,
            e.size(),
        ));
    }
    out
}

/// Names of the entries of an uncompressed tar, lossily as strings.
pub fn tar_names(data: &[u8]) -> Vec<String> {
    list_tar(data)
        .into_iter()
        .map(|(n, ..)| String::from_utf8_lossy(&n).into_owned())
        .collect()
}
