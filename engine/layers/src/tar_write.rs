//! Streaming tar writer producing the same header layout as Go's
//! `archive/tar` with `Format = FormatPAX` (what BuildKit and containerd
//! write): plain USTAR headers when every field fits, otherwise a PAX `x`
//! header with sorted records followed by the USTAR header.

use std::io::{self, Read, Write};
use std::path::Path;

use crate::error::{Error, Result};

pub(crate) const BLOCK: usize = 512;

pub(crate) const TYPE_REG: u8 = b'0';
pub(crate) const TYPE_LINK: u8 = b'1';
pub(crate) const TYPE_SYMLINK: u8 = b'2';
pub(crate) const TYPE_CHAR: u8 = b'3';
pub(crate) const TYPE_BLOCK: u8 = b'4';
pub(crate) const TYPE_DIR: u8 = b'5';
pub(crate) const TYPE_FIFO: u8 = b'6';
const TYPE_PAX: u8 = b'x';

const NAME_LEN: usize = 100;
const PREFIX_LEN: usize = 155;

/// Everything needed to write one entry header.
pub(crate) struct Header<'a> {
    /// Name in the archive (directories end in `/`).
    pub(crate) name: &'a [u8],
    pub(crate) typeflag: u8,
    /// Permission and setuid/setgid/sticky bits only.
    pub(crate) mode: u32,
    pub(crate) uid: u64,
    pub(crate) gid: u64,
    pub(crate) size: u64,
    pub(crate) mtime: i64,
    pub(crate) linkname: &'a [u8],
    pub(crate) devmajor: u32,
    pub(crate) devminor: u32,
    /// Extended attributes, sorted by name.
    pub(crate) xattrs: &'a [(Vec<u8>, Vec<u8>)],
}

fn fits_octal(len: usize, x: i64) -> bool {
    let bits = 3 * (len as u32 - 1);
    x >= 0 && (bits >= 63 || x < (1i64 << bits))
}

/// Go's `formatOctal`: zero-padded octal, NUL terminated; 0 when it does not fit.
fn put_octal(field: &mut [u8], x: i64) {
    let x = if fits_octal(field.len(), x) { x } else { 0 };
    let s = format!("{:0width$o}", x, width = field.len() - 1);
    put_str(field, s.as_bytes());
}

/// Go's `formatString`: copy (truncating), NUL terminate when there is room.
fn put_str(field: &mut [u8], s: &[u8]) {
    let n = s.len().min(field.len());
    field[..n].copy_from_slice(&s[..n]);
    if n < field.len() {
        field[n] = 0;
    }
}

fn to_ascii(s: &[u8]) -> Vec<u8> {
    s.iter().copied().filter(|b| *b < 0x80).collect()
}

fn is_ascii(s: &[u8]) -> bool {
    s.iter().all(|b| *b < 0x80)
}

/// Go's `splitUSTARPath`.
fn split_ustar_path(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut length = s.len();
    if length <= NAME_LEN || !is_ascii(s) {
        return None;
    } else if length > PREFIX_LEN + 1 {
        length = PREFIX_LEN + 1;
    } else if s[length - 1] == b'/' {
        length -= 1;
    }
    let i = s[..length].iter().rposition(|b| *b == b'/')?;
    let nlen = s.len() - i - 1;
    if i == 0 || nlen > NAME_LEN || nlen == 0 || i > PREFIX_LEN {
        return None;
    }
    Some((&s[..i], &s[i + 1..]))
}

fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    const PADDING: usize = 3; // ' ', '=', '\n'
    let mut size = key.len() + value.len() + PADDING;
    size += size.to_string().len();
    let mut digits = size.to_string();
    if digits.len() + PADDING + key.len() + value.len() != size {
        size = digits.len() + PADDING + key.len() + value.len();
        digits = size.to_string();
    }
    out.extend_from_slice(digits.as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

fn set_magic(block: &mut [u8; BLOCK]) {
    block[257..263].copy_from_slice(b"ustar\0");
    block[263..265].copy_from_slice(b"00");
}

fn set_checksum(block: &mut [u8; BLOCK]) {
    block[148..156].fill(b' ');
    let sum: u32 = block.iter().map(|b| u32::from(*b)).sum();
    put_octal(&mut block[148..155], i64::from(sum));
    block[155] = b' ';
}

/// Name of the PAX header entry, as Go writes it.
fn pax_header_name(real: &[u8]) -> Vec<u8> {
    let (dir, file) = match real.iter().rposition(|b| *b == b'/') {
        Some(i) => (&real[..i], &real[i + 1..]),
        None => (&real[..0], real),
    };
    let mut name = Vec::new();
    let dir = trim_trailing_slashes(dir);
    if !dir.is_empty() {
        name.extend_from_slice(dir);
        name.push(b'/');
    }
    name.extend_from_slice(b"PaxHeaders.0");
    if !file.is_empty() {
        name.push(b'/');
        name.extend_from_slice(file);
    }
    let mut name = to_ascii(&name);
    name.truncate(NAME_LEN);
    let trimmed = trim_trailing_slashes(&name).len();
    name.truncate(trimmed);
    name
}

fn trim_trailing_slashes(s: &[u8]) -> &[u8] {
    let mut end = s.len();
    while end > 0 && s[end - 1] == b'/' {
        end -= 1;
    }
    &s[..end]
}

/// A tar stream writer; see the module docs for the format.
pub(crate) struct TarWriter<W: Write> {
    w: W,
    buf: Vec<u8>,
}

impl<W: Write> TarWriter<W> {
    pub(crate) fn new(w: W) -> Self {
        TarWriter {
            w,
            buf: vec![0; 256 * 1024],
        }
    }

    /// Writes the header(s) of one entry. `host` is only used in errors.
    pub(crate) fn write_header(&mut self, h: &Header<'_>, host: &Path) -> Result<()> {
        let unrep = |reason: String| Error::Unrepresentable {
            path: host.to_path_buf(),
            reason,
        };
        let mut pax: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();

        let name_fits = h.name.len() <= NAME_LEN && is_ascii(h.name);
        if !name_fits {
            pax.push((b"path".to_vec(), h.name.to_vec()));
        }
        if h.linkname.len() > NAME_LEN || !is_ascii(h.linkname) {
            pax.push((b"linkpath".to_vec(), h.linkname.to_vec()));
        }
        let uid = i64::try_from(h.uid).map_err(|_| unrep(format!("uid {} too large", h.uid)))?;
        let gid = i64::try_from(h.gid).map_err(|_| unrep(format!("gid {} too large", h.gid)))?;
        let size =
            i64::try_from(h.size).map_err(|_| unrep(format!("size {} too large", h.size)))?;
        for (key, value, len) in [
            ("uid", uid, 8),
            ("gid", gid, 8),
            ("size", size, 12),
            ("mtime", h.mtime, 12),
        ] {
            if !fits_octal(len, value) {
                pax.push((key.as_bytes().to_vec(), value.to_string().into_bytes()));
            }
        }
        for (dev, what) in [(h.devmajor, "major"), (h.devminor, "minor")] {
            if !fits_octal(8, i64::from(dev)) {
                return Err(unrep(format!("device {what} number {dev} too large")));
            }
        }
        for (k, v) in h.xattrs {
            if k.contains(&b'=') || k.contains(&0) || k.is_empty() {
                return Err(unrep(format!(
                    "xattr name {:?} cannot be stored in a pax record",
                    String::from_utf8_lossy(k)
                )));
            }
            let mut key = b"SCHILY.xattr.".to_vec();
            key.extend_from_slice(k);
            pax.push((key, v.clone()));
        }

        let split = if name_fits {
            None
        } else {
            split_ustar_path(h.name)
        };
        // A long name alone is stored with the USTAR prefix when it splits.
        let only_split_name = pax.len() == 1 && split.is_some();
        let use_pax = !pax.is_empty() && !only_split_name;

        if use_pax {
            pax.sort();
            let mut data = Vec::new();
            for (k, v) in &pax {
                pax_record(&mut data, k, v);
            }
            let mut block = [0u8; BLOCK];
            block[156] = TYPE_PAX;
            put_str(&mut block[0..100], &pax_header_name(h.name));
            put_octal(&mut block[100..108], 0);
            put_octal(&mut block[108..116], 0);
            put_octal(&mut block[116..124], 0);
            put_octal(&mut block[124..136], data.len() as i64);
            put_octal(&mut block[136..148], 0);
            set_magic(&mut block);
            set_checksum(&mut block);
            self.put(&block)?;
            self.put(&data)?;
            self.pad(data.len() as u64)?;
        }

        let mut block = [0u8; BLOCK];
        block[156] = h.typeflag;
        match (use_pax, split) {
            (false, Some((prefix, name))) => {
                put_str(&mut block[0..100], name);
                put_str(&mut block[345..500], prefix);
            }
            _ => put_str(&mut block[0..100], &to_ascii(h.name)),
        }
        put_str(&mut block[157..257], &to_ascii(h.linkname));
        put_octal(&mut block[100..108], i64::from(h.mode & 0o7777));
        put_octal(&mut block[108..116], uid);
        put_octal(&mut block[116..124], gid);
        put_octal(&mut block[124..136], size);
        put_octal(&mut block[136..148], h.mtime);
        put_str(&mut block[265..297], b"");
        put_str(&mut block[297..329], b"");
        put_octal(&mut block[329..337], i64::from(h.devmajor));
        put_octal(&mut block[337..345], i64::from(h.devminor));
        set_magic(&mut block);
        set_checksum(&mut block);
        self.put(&block)
    }

    /// Copies exactly `size` bytes of `src` as the entry's data, then pads.
    /// Fails with [`Error::FileChanged`] if `src` is shorter or longer.
    pub(crate) fn write_data(&mut self, src: &mut impl Read, size: u64, host: &Path) -> Result<()> {
        let mut left = size;
        while left > 0 {
            let want = left.min(self.buf.len() as u64) as usize;
            let n = match src.read(&mut self.buf[..want]) {
                Ok(0) => {
                    return Err(Error::FileChanged {
                        path: host.to_path_buf(),
                    })
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("read", host, e)),
            };
            self.w
                .write_all(&self.buf[..n])
                .map_err(|e| Error::stream("write layer", e))?;
            left -= n as u64;
        }
        // A file that grew would silently lose data: refuse it.
        let mut probe = [0u8; 1];
        loop {
            match src.read(&mut probe) {
                Ok(0) => break,
                Ok(_) => {
                    return Err(Error::FileChanged {
                        path: host.to_path_buf(),
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("read", host, e)),
            }
        }
        self.pad(size)
    }

    fn put(&mut self, data: &[u8]) -> Result<()> {
        self.w
            .write_all(data)
            .map_err(|e| Error::stream("write layer", e))
    }

    fn pad(&mut self, size: u64) -> Result<()> {
        let rem = (size % BLOCK as u64) as usize;
        if rem != 0 {
            let zeros = [0u8; BLOCK];
            self.put(&zeros[..BLOCK - rem])?;
        }
        Ok(())
    }

    /// Writes the end-of-archive marker and returns the inner writer.
    pub(crate) fn finish(mut self) -> Result<W> {
        self.put(&[0u8; 2 * BLOCK])?;
        Ok(self.w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_like_go() {
        let long = format!("{}/{}", "d".repeat(120), "f".repeat(50));
        let (p, n) = split_ustar_path(long.as_bytes()).unwrap();
        assert_eq!(p.len(), 120);
        assert_eq!(n.len(), 50);
        assert!(split_ustar_path(b"short").is_none());
        // Component longer than 100 bytes cannot be split.
        assert!(split_ustar_path(format!("a/{}", "x".repeat(101)).as_bytes()).is_none());
        // Directory names keep their trailing slash in the name part.
        let dir = format!("{}/{}/", "d".repeat(120), "e".repeat(10));
        let (p, n) = split_ustar_path(dir.as_bytes()).unwrap();
        assert_eq!(p.len(), 120);
        assert_eq!(n, format!("{}/", "e".repeat(10)).as_bytes());
    }

    #[test]
    fn pax_record_sizes() {
        let mut out = Vec::new();
        pax_record(&mut out, b"path", b"abc");
        assert_eq!(out, b"12 path=abc\n");
        // A record whose length crosses a power of ten.
        let mut out = Vec::new();
        let v = vec![b'x'; 92];
        pax_record(&mut out, b"path", &v);
        let text = String::from_utf8(out.clone()).unwrap();
        let (n, _) = text.split_once(' ').unwrap();
        assert_eq!(n.parse::<usize>().unwrap(), out.len());
    }

    #[test]
    fn pax_names() {
        assert_eq!(pax_header_name(b"a/b/"), b"a/b/PaxHeaders.0");
        assert_eq!(pax_header_name(b"x"), b"PaxHeaders.0/x");
        assert_eq!(pax_header_name(b"a/x"), b"a/PaxHeaders.0/x");
    }

    #[test]
    fn large_values_round_trip_through_pax() {
        let xattrs = vec![(b"user.k".to_vec(), vec![0u8, 1, 2])];
        let long = vec![b'n'; 300];
        let h = Header {
            name: &long,
            typeflag: TYPE_REG,
            mode: 0o4755,
            uid: 3_000_000,
            gid: 7,
            size: 9 << 30,
            mtime: -5,
            linkname: &[],
            devmajor: 0,
            devminor: 0,
            xattrs: &xattrs,
        };
        let mut w = TarWriter::new(Vec::new());
        w.write_header(&h, Path::new("x")).unwrap();
        let bytes = w.finish().unwrap();
        let mut r = crate::tar_read::TarReader::new(&bytes[..]);
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(e.path, long);
        assert_eq!(e.mode, 0o4755);
        assert_eq!(e.uid, 3_000_000);
        assert_eq!(e.gid, 7);
        assert_eq!(e.size, 9 << 30);
        assert_eq!(e.mtime, (-5, 0));
        assert_eq!(e.xattrs, xattrs);
        // The data is missing, so the next read fails cleanly.
        assert!(r.next_entry().is_err());
    }

    #[test]
    fn ustar_split_without_pax() {
        let name = format!("{}/{}", "d".repeat(120), "f".repeat(50));
        let h = Header {
            name: name.as_bytes(),
            typeflag: TYPE_REG,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 1,
            linkname: &[],
            devmajor: 0,
            devminor: 0,
            xattrs: &[],
        };
        let mut w = TarWriter::new(Vec::new());
        w.write_header(&h, Path::new("x")).unwrap();
        let bytes = w.finish().unwrap();
        // One header block plus the end marker: no PAX header.
        assert_eq!(bytes.len(), 3 * BLOCK);
        let mut r = crate::tar_read::TarReader::new(&bytes[..]);
        assert_eq!(r.next_entry().unwrap().unwrap().path, name.as_bytes());
        assert!(r.next_entry().unwrap().is_none());
    }

    #[test]
    fn octal_fields() {
        let mut f = [0u8; 8];
        put_octal(&mut f, 0o644);
        assert_eq!(&f, b"0000644\0");
        put_octal(&mut f, 1 << 21);
        assert_eq!(&f, b"0000000\0");
        let mut f = [0u8; 12];
        put_octal(&mut f, -1);
        assert_eq!(&f, b"00000000000\0");
    }
}
