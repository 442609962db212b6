//! A comparable listing of a directory tree, for tests and differential
//! checks (e.g. against BuildKit-produced trees).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::walk::{host_path, join_rel, read_dir_sorted, Node};
use crate::xattrs;

/// Type of a filesystem object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
}

/// One object of a flattened tree.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlatEntry {
    /// Relative path (no leading `./`, no trailing `/`), bytes preserved.
    pub path: PathBuf,
    pub kind: FileKind,
    /// Permission bits plus setuid/setgid/sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Size of regular files, 0 otherwise.
    pub size: u64,
    /// Modification time, whole seconds.
    pub mtime: i64,
    /// Lowercase hex sha256 of a regular file's content.
    pub sha256: Option<String>,
    /// Target of a symlink.
    pub link_target: Option<PathBuf>,
    /// (major, minor) of a device node.
    pub rdev: Option<(u32, u32)>,
    /// Extended attributes that layers carry ([`crate::keep_xattr`]), sorted.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// For a non-directory sharing its inode with an earlier entry of this
    /// listing: that entry's path.
    pub hardlink_to: Option<PathBuf>,
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("read", path, e)),
        };
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Lists every object below `root` (not `root` itself) in layer order:
/// depth first, each directory's children sorted by name bytes.
pub fn flatten(root: &Path) -> Result<Vec<FlatEntry>> {
    let mut out = Vec::new();
    let mut inodes: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut stack: Vec<(Vec<u8>, std::vec::IntoIter<Node>)> =
        vec![(Vec::new(), read_dir_sorted(root)?.into_iter())];
    while let Some((dir_rel, children)) = stack.last_mut() {
        let Some(node) = children.next() else {
            stack.pop();
            continue;
        };
        let rel = join_rel(dir_rel, &node.name);
        let host = host_path(root, &rel);
        let meta = &node.meta;
        let ft = meta.file_type();
        let kind = if ft.is_dir() {
            FileKind::Dir
        } else if ft.is_symlink() {
            FileKind::Symlink
        } else if ft.is_char_device() {
            FileKind::CharDevice
        } else if ft.is_block_device() {
            FileKind::BlockDevice
        } else if ft.is_fifo() {
            FileKind::Fifo
        } else if ft.is_socket() {
            FileKind::Socket
        } else {
            FileKind::File
        };
        let path = PathBuf::from(OsStr::from_bytes(&rel));
        let hardlink_to = if kind != FileKind::Dir && meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            match inodes.get(&key) {
                Some(first) => Some(first.clone()),
                None => {
                    inodes.insert(key, path.clone());
                    None
                }
            }
        } else {
            None
        };
        let entry = FlatEntry {
            kind,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            size: if kind == FileKind::File {
                meta.len()
            } else {
                0
            },
            mtime: meta.mtime(),
            sha256: if kind == FileKind::File {
                Some(sha256_file(&host)?)
            } else {
                None
            },
            link_target: if kind == FileKind::Symlink {
                Some(std::fs::read_link(&host).map_err(|e| Error::io("read link", &host, e))?)
            } else {
                None
            },
            rdev: if matches!(kind, FileKind::CharDevice | FileKind::BlockDevice) {
                Some((
                    rustix::fs::major(meta.rdev()),
                    rustix::fs::minor(meta.rdev()),
                ))
            } else {
                None
            },
            xattrs: xattrs::read_kept(&host).map_err(|e| Error::io("read xattrs of", &host, e))?,
            hardlink_to,
            path,
        };
        out.push(entry);
        if kind == FileKind::Dir {
            let children = read_dir_sorted(&host)?.into_iter();
            stack.push((rel, children));
        }
    }
    Ok(out)
}
