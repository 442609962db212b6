//! ADD of a local archive: detect tar (plain, gzip, bzip2, xz, zstd) by
//! content, and extract it inside the destination root.

use std::fs;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use crate::fsutil::resolve_in_root;
use crate::ownership::Ownership;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    Plain,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

fn sniff(head: &[u8]) -> Option<Codec> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Some(Codec::Gzip)
    } else if head.starts_with(b"BZh") {
        Some(Codec::Bzip2)
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Some(Codec::Xz)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(Codec::Zstd)
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        Some(Codec::Plain)
    } else {
        None
    }
}

fn decoder(path: &Path) -> io::Result<Option<Box<dyn Read>>> {
    // Only a regular file is opened (never a FIFO or device of a context).
    let mut f = crate::fsutil::open_regular(path, None)?;
    let mut head = [0u8; 512];
    let mut n = 0;
    while n < head.len() {
        let k = f.read(&mut head[n..])?;
        if k == 0 {
            break;
        }
        n += k;
    }
    let Some(codec) = sniff(&head[..n]) else {
        return Ok(None);
    };
    let f = BufReader::new(crate::fsutil::open_regular(path, None)?);
    let r: Box<dyn Read> = match codec {
        Codec::Plain => Box::new(f),
        Codec::Gzip => Box::new(flate2::read::MultiGzDecoder::new(f)),
        Codec::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(f)),
        Codec::Xz => Box::new(xz2::read::XzDecoder::new_multi_decoder(f)),
        Codec::Zstd => Box::new(zstd::stream::read::Decoder::new(f)?),
    };
    Ok(Some(r))
}

/// Whether ADD should extract this file: it must be a tar, possibly
/// compressed. A compressed file that is not a tar inside is copied as is.
pub fn is_archive(path: &Path) -> bool {
    let Ok(Some(mut r)) = decoder(path) else {
        return false;
    };
    let mut head = vec![0u8; 512];
    let mut n = 0;
    while n < head.len() {
        match r.read(&mut head[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    n == 512 && (&head[257..262] == b"ustar" || tar_checksum_ok(&head))
}

fn tar_checksum_ok(h: &[u8]) -> bool {
    let stored = std::str::from_utf8(&h[148..156])
        .ok()
        .map(|s| s.trim_matches(|c: char| c == '\0' || c == ' '));
    let Some(Ok(stored)) = stored.map(|s| u32::from_str_radix(s, 8)) else {
        return false;
    };
    let sum: u32 = h
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                *b as u32
            }
        })
        .sum();
    sum == stored && h[0] != 0
}

/// Unpacks `archive` (tar, possibly compressed) into `dest`, as ADD does;
/// nothing lands outside `dest`.
pub fn extract(archive: &Path, dest: &Path, ownership: Ownership) -> io::Result<()> {
    let r = decoder(archive)?.ok_or_else(|| invalid("not an archive"))?;
    let mut ar = tar::Archive::new(r);
    let mut dirs = Vec::new();
    for entry in ar.entries()? {
        let mut entry = entry?;
        // Devices, fifos and metadata-only entries (a pax global header,
        // `g`, has a path such as `/tmp/GlobalHead.0.1` but is no file) are
        // skipped before anything is made for them, as BuildKit does for ADD.
        if !matches!(
            entry.header().entry_type(),
            tar::EntryType::Directory
                | tar::EntryType::Symlink
                | tar::EntryType::Link
                | tar::EntryType::Regular
                | tar::EntryType::Continuous
        ) {
            continue;
        }
        let raw = entry.path()?.to_string_lossy().into_owned();
        let target = resolve_in_root(dest, &raw, false)?;
        if target == dest {
            continue;
        }
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        let h = entry.header().clone();
        let kind = h.entry_type();
        if let Ok(existing) = fs::symlink_metadata(&target) {
            if !(existing.is_dir() && kind.is_dir()) {
                if existing.is_dir() {
                    fs::remove_dir_all(&target)?;
                } else {
                    fs::remove_file(&target)?;
                }
            }
        }
        let mode = h.mode().unwrap_or(0o644) & 0o7777;
        match kind {
            tar::EntryType::Directory => {
                if !target.is_dir() {
                    fs::create_dir(&target)?;
                }
                dirs.push((target.clone(), h.mtime().unwrap_or(0)));
            }
            tar::EntryType::Symlink => {
                let link = entry
                    .link_name()?
                    .ok_or_else(|| invalid("a symlink without a target"))?;
                std::os::unix::fs::symlink(link, &target)?;
            }
            tar::EntryType::Link => {
                let link = entry
                    .link_name()?
                    .ok_or_else(|| invalid("a hard link without a target"))?;
                let src = resolve_in_root(dest, &link.to_string_lossy(), false)?;
                fs::hard_link(&src, &target)?;
                continue;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut w = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&target)?;
                io::copy(&mut entry, &mut w)?;
            }
            // Skipped above.
            _ => continue,
        }
        let (uid, gid) = match ownership {
            Ownership::Set(u, g) => (u, g),
            _ => (h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32),
        };
        let _ = std::os::unix::fs::lchown(&target, Some(uid), Some(gid));
        if !kind.is_symlink() {
            let _ = fs::set_permissions(&target, fs::Permissions::from_mode(mode));
            let t = filetime::FileTime::from_unix_time(h.mtime().unwrap_or(0) as i64, 0);
            let _ = filetime::set_file_times(&target, t, t);
        }
    }
    for (d, mtime) in dirs.into_iter().rev() {
        let t = filetime::FileTime::from_unix_time(mtime as i64, 0);
        let _ = filetime::set_file_times(&d, t, t);
    }
    Ok(())
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// Recreate a fifo or device node like `meta`'s.
pub fn mknod_like(to: &Path, meta: &fs::Metadata) -> io::Result<()> {
    use std::ffi::CString;
    let ft = meta.file_type();
    let kind = if ft.is_fifo() {
        libc::S_IFIFO
    } else if ft.is_char_device() {
        libc::S_IFCHR
    } else if ft.is_block_device() {
        libc::S_IFBLK
    } else {
        // Sockets are not copied.
        return Ok(());
    };
    let c = CString::new(to.as_os_str().as_encoded_bytes()).map_err(io::Error::other)?;
    // SAFETY: `c` is a valid NUL-terminated path; mknod has no other preconditions.
    let rc = unsafe {
        libc::mknod(
            c.as_ptr(),
            kind | (meta.mode() & 0o7777),
            meta.rdev() as libc::dev_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
