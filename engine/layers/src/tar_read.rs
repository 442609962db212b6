//! A small streaming tar reader for untrusted layers.
//!
//! It follows Go's `archive/tar` reader (what containerd and BuildKit use)
//! where formats are ambiguous: header-only entry types carry no data, PAX
//! `size`/`uid`/`gid`/`mtime`/`path`/`linkpath` override the header, a zero
//! block must be followed by another one, and PAX/GNU long-name entries are
//! capped at 1 MiB so a hostile stream cannot make us buffer without bound.

use std::collections::BTreeMap;
use std::io::{self, Read};

use crate::error::{show, Error, Result};

const BLOCK: usize = 512;
/// Same cap as Go's `maxSpecialFileSize`.
const MAX_SPECIAL: u64 = 1 << 20;

/// One entry's metadata, with all extensions applied.
#[derive(Debug, Clone, Default)]
pub(crate) struct TarEntry {
    pub(crate) path: Vec<u8>,
    pub(crate) typeflag: u8,
    pub(crate) linkname: Vec<u8>,
    /// Permission and setuid/setgid/sticky bits.
    pub(crate) mode: u32,
    pub(crate) uid: u64,
    pub(crate) gid: u64,
    /// Size of the entry's data in the stream.
    pub(crate) size: u64,
    pub(crate) mtime: (i64, u32),
    pub(crate) atime: Option<(i64, u32)>,
    pub(crate) devmajor: u32,
    pub(crate) devminor: u32,
    /// Extended attributes from `SCHILY.xattr.*` records.
    pub(crate) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidArchive(msg.into())
}

fn read_err(e: io::Error) -> Error {
    Error::stream("read layer", e)
}

/// Go's `parseNumeric`: base-256 or (space/NUL padded) octal.
fn parse_numeric(field: &[u8], what: &str) -> Result<i64> {
    if let Some(&first) = field.first() {
        if first & 0x80 != 0 {
            let inv = if first & 0x40 != 0 { 0xff } else { 0 };
            let mut x: u64 = 0;
            for (i, &c) in field.iter().enumerate() {
                let mut c = c ^ inv;
                if i == 0 {
                    c &= 0x7f;
                }
                if x >> 56 > 0 {
                    return Err(invalid(format!("{what} field overflows")));
                }
                x = (x << 8) | u64::from(c);
            }
            if x >> 63 > 0 {
                return Err(invalid(format!("{what} field overflows")));
            }
            let x = x as i64;
            return Ok(if inv == 0xff { !x } else { x });
        }
    }
    let trimmed = trim(field);
    if trimmed.is_empty() {
        return Ok(0);
    }
    let mut x: u64 = 0;
    for &c in trimmed {
        if !(b'0'..=b'7').contains(&c) {
            return Err(invalid(format!("invalid octal in {what} field")));
        }
        x = x
            .checked_mul(8)
            .and_then(|x| x.checked_add(u64::from(c - b'0')))
            .ok_or_else(|| invalid(format!("{what} field overflows")))?;
    }
    i64::try_from(x).map_err(|_| invalid(format!("{what} field overflows")))
}

fn trim(field: &[u8]) -> &[u8] {
    let is_pad = |b: &u8| *b == b' ' || *b == 0;
    let start = field.iter().position(|b| !is_pad(b)).unwrap_or(field.len());
    let end = field
        .iter()
        .rposition(|b| !is_pad(b))
        .map_or(start, |i| i + 1);
    &field[start..end]
}

fn cstr(field: &[u8]) -> &[u8] {
    match field.iter().position(|b| *b == 0) {
        Some(i) => &field[..i],
        None => field,
    }
}

fn parse_decimal(v: &[u8], what: &str) -> Result<i64> {
    std::str::from_utf8(v)
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| invalid(format!("invalid pax {what} record")))
}

/// Go's `parsePAXTime`: `[-]seconds[.fraction]`.
fn parse_pax_time(v: &[u8]) -> Result<(i64, u32)> {
    let bad = || invalid("invalid pax time record");
    let (neg, body) = match v.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let (secs, frac) = match body.iter().position(|b| *b == b'.') {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, &body[..0]),
    };
    if secs.is_empty() || !secs.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    if !frac.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let secs: i64 = std::str::from_utf8(secs)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let mut nsec: u32 = 0;
    for i in 0..9 {
        nsec = nsec * 10 + frac.get(i).map_or(0, |d| u32::from(d - b'0'));
    }
    if !neg {
        return Ok((secs, nsec));
    }
    if nsec == 0 {
        Ok((-secs, 0))
    } else {
        Ok((-secs - 1, 1_000_000_000 - nsec))
    }
}

/// Parsed `x` header: ordered records (later duplicates win).
#[derive(Default)]
struct Pax {
    records: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Pax {
    fn parse(mut data: &[u8]) -> Result<Pax> {
        let mut pax = Pax::default();
        while !data.is_empty() {
            let bad = || invalid("malformed pax record");
            let sp = data.iter().position(|b| *b == b' ').ok_or_else(bad)?;
            let n: usize = std::str::from_utf8(&data[..sp])
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse().ok())
                .ok_or_else(bad)?;
            if n <= sp + 1 || n > data.len() {
                return Err(bad());
            }
            let rec = &data[sp + 1..n];
            data = &data[n..];
            let rec = rec.strip_suffix(b"\n").ok_or_else(bad)?;
            let eq = rec.iter().position(|b| *b == b'=').ok_or_else(bad)?;
            let (k, v) = (&rec[..eq], &rec[eq + 1..]);
            if k.is_empty() || k.contains(&0) {
                return Err(bad());
            }
            if k.starts_with(b"GNU.sparse.") {
                return Err(invalid("sparse files are not supported"));
            }
            pax.records.insert(k.to_vec(), v.to_vec());
        }
        Ok(pax)
    }

    fn get(&self, key: &str) -> Option<&[u8]> {
        self.records.get(key.as_bytes()).map(Vec::as_slice)
    }
}

/// Streaming reader; see the module docs.
pub(crate) struct TarReader<R: Read> {
    r: R,
    /// Unread data bytes of the current entry.
    remaining: u64,
    /// Padding after the current entry's data.
    pad: u64,
    done: bool,
}

impl<R: Read> TarReader<R> {
    pub(crate) fn new(r: R) -> Self {
        TarReader {
            r,
            remaining: 0,
            pad: 0,
            done: false,
        }
    }

    /// Returns the underlying reader (positioned after the end marker).
    pub(crate) fn into_inner(self) -> R {
        self.r
    }

    /// Reader over the current entry's data.
    pub(crate) fn data(&mut self) -> EntryData<'_, R> {
        EntryData { t: self }
    }

    fn read_block(&mut self, block: &mut [u8; BLOCK]) -> Result<bool> {
        let mut got = 0;
        while got < BLOCK {
            match self.r.read(&mut block[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(read_err(e)),
            }
        }
        match got {
            0 => Ok(false),
            BLOCK => Ok(true),
            _ => Err(invalid("unexpected end of archive in header")),
        }
    }

    fn skip(&mut self, mut n: u64) -> Result<()> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let want = n.min(buf.len() as u64) as usize;
            match self.r.read(&mut buf[..want]) {
                Ok(0) => return Err(invalid("unexpected end of archive in entry data")),
                Ok(k) => n -= k as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(read_err(e)),
            }
        }
        Ok(())
    }

    fn read_special(&mut self, size: u64, what: &str) -> Result<Vec<u8>> {
        if size > MAX_SPECIAL {
            return Err(invalid(format!(
                "{what} entry larger than {MAX_SPECIAL} bytes"
            )));
        }
        let mut data = vec![0u8; size as usize];
        let mut got = 0;
        while got < data.len() {
            match self.r.read(&mut data[got..]) {
                Ok(0) => return Err(invalid(format!("unexpected end of archive in {what}"))),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(read_err(e)),
            }
        }
        self.skip(padding(size))?;
        Ok(data)
    }

    /// Advances to the next entry, skipping any unread data of the current
    /// one. Returns `None` at the end of the archive.
    pub(crate) fn next_entry(&mut self) -> Result<Option<TarEntry>> {
        let rest = self.remaining + self.pad;
        self.remaining = 0;
        self.pad = 0;
        self.skip(rest)?;
        if self.done {
            return Ok(None);
        }

        let mut pax: Option<Pax> = None;
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut block = [0u8; BLOCK];
        loop {
            let pending = pax.is_some() || long_name.is_some() || long_link.is_some();
            if !self.read_block(&mut block)? {
                self.done = true;
                if pending {
                    return Err(invalid("extended header without a following entry"));
                }
                return Ok(None);
            }
            if block.iter().all(|b| *b == 0) {
                // End of archive: Go requires the second block to be zero too
                // (or missing).
                let mut second = [0u8; BLOCK];
                let more = self.read_block(&mut second)?;
                if more && second.iter().any(|b| *b != 0) {
                    return Err(invalid("data after end-of-archive block"));
                }
                self.done = true;
                if pending {
                    return Err(invalid("extended header without a following entry"));
                }
                return Ok(None);
            }

            let stored = parse_numeric(&block[148..156], "checksum")?;
            let mut unsigned: i64 = 0;
            let mut signed: i64 = 0;
            for (i, b) in block.iter().enumerate() {
                let b = if (148..156).contains(&i) { b' ' } else { *b };
                unsigned += i64::from(b);
                signed += i64::from(b as i8);
            }
            if stored != unsigned && stored != signed {
                return Err(invalid("header checksum mismatch"));
            }

            let magic = &block[257..263];
            let version = &block[263..265];
            let is_ustar = magic == b"ustar\0";
            let is_gnu = magic == b"ustar " && version == b" \0";
            let typeflag = block[156];
            let size = parse_numeric(&block[124..136], "size")?;
            if size < 0 {
                return Err(invalid("negative entry size"));
            }
            let size = size as u64;

            match typeflag {
                b'x' => {
                    if pax.is_some() {
                        return Err(invalid("two pax headers for one entry"));
                    }
                    let data = self.read_special(size, "pax header")?;
                    pax = Some(Pax::parse(&data)?);
                    continue;
                }
                b'g' => {
                    // Global headers are ignored, like containerd does.
                    self.read_special(size, "pax global header")?;
                    continue;
                }
                b'L' => {
                    if long_name.is_some() {
                        return Err(invalid("two long names for one entry"));
                    }
                    long_name = Some(cstr(&self.read_special(size, "long name")?).to_vec());
                    continue;
                }
                b'K' => {
                    if long_link.is_some() {
                        return Err(invalid("two long link names for one entry"));
                    }
                    long_link = Some(cstr(&self.read_special(size, "long link")?).to_vec());
                    continue;
                }
                _ => {}
            }

            let pax = pax.unwrap_or_default();
            let mut e = TarEntry {
                typeflag,
                ..TarEntry::default()
            };
            e.path = if let Some(p) = pax.get("path") {
                p.to_vec()
            } else if let Some(p) = long_name {
                p
            } else {
                let name = cstr(&block[0..100]);
                let prefix = cstr(&block[345..500]);
                if is_ustar && !prefix.is_empty() {
                    let mut p = prefix.to_vec();
                    p.push(b'/');
                    p.extend_from_slice(name);
                    p
                } else {
                    name.to_vec()
                }
            };
            e.linkname = if let Some(l) = pax.get("linkpath") {
                l.to_vec()
            } else if let Some(l) = long_link {
                l
            } else {
                cstr(&block[157..257]).to_vec()
            };
            let mode = parse_numeric(&block[100..108], "mode")?;
            e.mode = (mode & 0o7777) as u32;
            let uid = match pax.get("uid") {
                Some(v) => parse_decimal(v, "uid")?,
                None => parse_numeric(&block[108..116], "uid")?,
            };
            let gid = match pax.get("gid") {
                Some(v) => parse_decimal(v, "gid")?,
                None => parse_numeric(&block[116..124], "gid")?,
            };
            e.uid = u64::try_from(uid).map_err(|_| invalid("negative uid"))?;
            e.gid = u64::try_from(gid).map_err(|_| invalid("negative gid"))?;
            e.size = match pax.get("size") {
                Some(v) => parse_decimal(v, "size")? as u64,
                None => size,
            };
            e.mtime = match pax.get("mtime") {
                Some(v) => parse_pax_time(v)?,
                None => (parse_numeric(&block[136..148], "mtime")?, 0),
            };
            e.atime = pax.get("atime").map(parse_pax_time).transpose()?;
            if is_ustar || is_gnu {
                let major = parse_numeric(&block[329..337], "devmajor")?;
                let minor = parse_numeric(&block[337..345], "devminor")?;
                e.devmajor = u32::try_from(major).map_err(|_| invalid("invalid devmajor"))?;
                e.devminor = u32::try_from(minor).map_err(|_| invalid("invalid devminor"))?;
            }
            for (k, v) in &pax.records {
                if let Some(name) = k.strip_prefix(b"SCHILY.xattr.") {
                    e.xattrs.push((name.to_vec(), v.clone()));
                }
            }
            // Old-style regular files: a trailing slash means directory.
            if e.typeflag == 0 {
                e.typeflag = if e.path.ends_with(b"/") { b'5' } else { b'0' };
            }
            if e.typeflag == b'S' {
                return Err(Error::UnsupportedEntry {
                    typeflag: 'S',
                    path: show(&e.path),
                });
            }
            // Header-only types carry no data, whatever their size says.
            let data_len = match e.typeflag {
                b'1'..=b'6' => 0,
                _ => e.size,
            };
            if matches!(e.typeflag, b'1'..=b'6') {
                e.size = 0;
            }
            self.remaining = data_len;
            self.pad = padding(data_len);
            return Ok(Some(e));
        }
    }
}

fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// The data of the current entry.
pub(crate) struct EntryData<'a, R: Read> {
    t: &'a mut TarReader<R>,
}

impl<R: Read> Read for EntryData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.t.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = (buf.len() as u64).min(self.t.remaining) as usize;
        let n = self.t.r.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "unexpected end of archive in entry data",
            ));
        }
        self.t.remaining -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_fields() {
        assert_eq!(parse_numeric(b"0000644\0", "m").unwrap(), 0o644);
        assert_eq!(parse_numeric(b"  644 \0", "m").unwrap(), 0o644);
        assert_eq!(parse_numeric(b"\0\0\0\0", "m").unwrap(), 0);
        assert_eq!(
            parse_numeric(&[0x80, 0, 0, 0, 0, 0, 1, 0], "m").unwrap(),
            256
        );
        assert_eq!(parse_numeric(&[0xff; 8], "m").unwrap(), -1);
        assert!(parse_numeric(b"0009\0", "m").is_err());
        assert!(
            parse_numeric(&[0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], "m").is_err()
        );
    }

    #[test]
    fn pax_times() {
        assert_eq!(parse_pax_time(b"12").unwrap(), (12, 0));
        assert_eq!(parse_pax_time(b"12.5").unwrap(), (12, 500_000_000));
        assert_eq!(parse_pax_time(b"-1.5").unwrap(), (-2, 500_000_000));
        assert_eq!(parse_pax_time(b"1.1234567899").unwrap(), (1, 123_456_789));
        assert!(parse_pax_time(b"").is_err());
        assert!(parse_pax_time(b"1.x").is_err());
        assert!(parse_pax_time(b"--1").is_err());
    }

    #[test]
    fn pax_parse() {
        let p = Pax::parse(b"12 path=abc\n").unwrap();
        assert_eq!(p.get("path"), Some(&b"abc"[..]));
        for bad in [
            &b"12 path=abc"[..],
            b"99 path=abc\n",
            b"x path=abc\n",
            b"5 a=b\n",
            b"7 abc\n\n",
        ] {
            assert!(
                Pax::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn garbage_never_panics() {
        // Cheap deterministic fuzz: random-ish blocks must give errors, not panics.
        let mut seed: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..2000 {
            let mut data = vec![0u8; 1536];
            for b in data.iter_mut() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *b = seed as u8;
            }
            let mut r = TarReader::new(&data[..]);
            let _ = r.next_entry();
        }
    }
}
