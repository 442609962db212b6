use std::io::{self, BufRead, Read, Write};

use engine_oci::LayerMediaType;

/// Compression of a layer blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// `application/vnd.oci.image.layer.v1.tar+gzip` (default).
    #[default]
    Gzip,
    /// `application/vnd.oci.image.layer.v1.tar+zstd`.
    Zstd,
    /// Plain `application/vnd.oci.image.layer.v1.tar`.
    None,
}

impl Compression {
    /// The media type of a layer with this compression.
    pub fn media_type(self) -> LayerMediaType {
        match self {
            Compression::Gzip => LayerMediaType::TarGzip,
            Compression::Zstd => LayerMediaType::TarZstd,
            Compression::None => LayerMediaType::Tar,
        }
    }
}

const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Detects the compression of a layer from its first bytes (at least 4
/// should be given; fewer bytes are treated as a plain tar).
///
/// Gzip and zstd are recognised by their magic numbers; anything else is
/// assumed to be an uncompressed tar.
pub fn detect_compression(first_bytes: &[u8]) -> Compression {
    if first_bytes.starts_with(&GZIP_MAGIC) {
        Compression::Gzip
    } else if first_bytes.starts_with(&ZSTD_MAGIC) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Number of bytes [`detect_compression`] wants to look at.
pub(crate) const MAGIC_LEN: usize = 4;

/// Uncompressed bytes per gzip member. Each member is compressed on its own
/// thread; members are written in order, so the output is deterministic.
const GZIP_CHUNK: usize = 4 << 20;

/// Parallel gzip: the stream is cut into fixed-size chunks, each becomes one
/// gzip member (RFC 1952 allows several; Go's, zlib's and our readers read
/// them as one stream). A layer smaller than a chunk is one member, exactly
/// what a plain gzip writer produces.
pub(crate) struct ParGzip<W: Write> {
    inner: W,
    buf: Vec<u8>,
    pending: std::collections::VecDeque<std::thread::JoinHandle<io::Result<Vec<u8>>>>,
    max_pending: usize,
}

fn gzip_member(data: &[u8]) -> io::Result<Vec<u8>> {
    let level = if incompressible(data) {
        flate2::Compression::none()
    } else {
        flate2::Compression::default()
    };
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::with_capacity(data.len() / 2 + 64), level);
    enc.write_all(data)?;
    enc.finish()
}

/// Bytes looked at in each of three places of a chunk to tell whether it
/// compresses at all.
const PROBE: usize = 64 << 10;

/// Whether deflate would not even save 2 % on `data`, judged from fast
/// compression of its start, middle and end. Such chunks (random data,
/// already-compressed files) are stored: deflating them costs most of the
/// time of a big layer and saves nothing. The choice depends on the bytes
/// only, so the output stays deterministic.
fn incompressible(data: &[u8]) -> bool {
    if data.len() < 4 * PROBE {
        return false;
    }
    let mid = data.len() / 2 - PROBE / 2;
    let mut raw = 0usize;
    let mut packed = 0usize;
    for start in [0, mid, data.len() - PROBE] {
        let sample = &data[start..start + PROBE];
        let mut c = flate2::Compress::new(flate2::Compression::fast(), false);
        let mut out = Vec::with_capacity(PROBE + 1024);
        if c.compress_vec(sample, &mut out, flate2::FlushCompress::Finish)
            .is_err()
        {
            return false;
        }
        raw += PROBE;
        packed += c.total_out() as usize;
    }
    packed * 100 >= raw * 98
}

impl<W: Write> ParGzip<W> {
    fn new(inner: W) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        ParGzip {
            inner,
            buf: Vec::with_capacity(GZIP_CHUNK),
            pending: Default::default(),
            max_pending: cores.max(1),
        }
    }

    fn drain_one(&mut self) -> io::Result<()> {
        if let Some(h) = self.pending.pop_front() {
            let member = h
                .join()
                .map_err(|_| io::Error::other("gzip worker panicked"))??;
            self.inner.write_all(&member)?;
        }
        Ok(())
    }

    fn dispatch(&mut self) -> io::Result<()> {
        while self.pending.len() >= self.max_pending {
            self.drain_one()?;
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(GZIP_CHUNK));
        self.pending
            .push_back(std::thread::spawn(move || gzip_member(&chunk)));
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        // An empty stream is still one (empty) member, as a plain writer makes.
        if !self.buf.is_empty() || self.pending.is_empty() {
            self.dispatch()?;
        }
        while !self.pending.is_empty() {
            self.drain_one()?;
        }
        Ok(self.inner)
    }
}

impl<W: Write> Write for ParGzip<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = GZIP_CHUNK - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == GZIP_CHUNK {
            self.dispatch()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Members are cut at fixed offsets only, so flushing does not cut one.
        self.inner.flush()
    }
}

/// zstd's level for layers (its default, as BuildKit's and containerd's).
const ZSTD_LEVEL: i32 = 3;

/// Worker threads of the zstd encoder: the cores.
fn zstd_workers() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

/// A zstd encoder in multi-threaded mode with `workers` (at least 1) threads.
/// zstd cuts the input into jobs independently of the worker count, so the
/// output is the same for any count ≥ 1 (it differs from single-threaded
/// mode, which is never used): a layer's digest does not depend on the
/// machine's cores.
fn zstd_encoder<W: Write>(
    inner: W,
    workers: u32,
) -> io::Result<zstd::stream::write::Encoder<'static, W>> {
    let mut enc = zstd::stream::write::Encoder::new(inner, ZSTD_LEVEL)?;
    enc.multithread(workers.max(1))?;
    // Content size is unknown up front; a checksum lets readers detect
    // corruption even without a digest.
    enc.include_checksum(true)?;
    Ok(enc)
}

/// A compressing writer that can be finished to get the inner writer back.
pub(crate) enum Encoder<W: Write> {
    Gzip(ParGzip<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
    None(W),
}

impl<W: Write> Encoder<W> {
    pub(crate) fn new(inner: W, compression: Compression) -> io::Result<Self> {
        Ok(match compression {
            // Deterministic header: no file name, mtime 0, OS "unknown".
            Compression::Gzip => Encoder::Gzip(ParGzip::new(inner)),
            Compression::Zstd => Encoder::Zstd(zstd_encoder(inner, zstd_workers())?),
            Compression::None => Encoder::None(inner),
        })
    }

    pub(crate) fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
            Encoder::None(w) => Ok(w),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
            Encoder::None(w) => w.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.write_all(buf),
            Encoder::Zstd(e) => e.write_all(buf),
            Encoder::None(w) => w.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
            Encoder::None(w) => w.flush(),
        }
    }
}

/// A decompressing reader over a buffered source, which can be taken apart
/// again to drain whatever the decoder did not consume.
pub(crate) enum Decoder<R: BufRead> {
    Gzip(Box<flate2::bufread::MultiGzDecoder<R>>),
    Zstd(zstd::stream::read::Decoder<'static, R>),
    None(R),
}

impl<R: BufRead> Decoder<R> {
    pub(crate) fn new(inner: R, compression: Compression) -> io::Result<Self> {
        Ok(match compression {
            Compression::Gzip => {
                Decoder::Gzip(Box::new(flate2::bufread::MultiGzDecoder::new(inner)))
            }
            Compression::Zstd => Decoder::Zstd(zstd::stream::read::Decoder::with_buffer(inner)?),
            Compression::None => Decoder::None(inner),
        })
    }

    pub(crate) fn into_inner(self) -> R {
        match self {
            Decoder::Gzip(d) => d.into_inner(),
            Decoder::Zstd(d) => d.finish(),
            Decoder::None(r) => r,
        }
    }
}

impl<R: BufRead> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Gzip(d) => d.read(buf),
            Decoder::Zstd(d) => d.read(buf),
            Decoder::None(r) => r.read(buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn zstd_output_does_not_depend_on_the_worker_count() {
        // Compressible and incompressible parts, several zstd jobs long.
        let mut data = pseudo_random(9 << 20);
        data.extend(std::iter::repeat_n(b"layer data ".as_slice(), 800_000).flatten());
        let compress = |workers| {
            let mut e = zstd_encoder(Vec::new(), workers).unwrap();
            for chunk in data.chunks(100_000) {
                e.write_all(chunk).unwrap();
            }
            e.finish().unwrap()
        };
        let one = compress(1);
        for w in [2, 3, 8] {
            assert!(compress(w) == one, "{w} workers gave other bytes");
        }
        assert!(one.len() < data.len());
        assert_eq!(zstd::decode_all(&one[..]).unwrap(), data);
    }

    fn pseudo_random(n: usize) -> Vec<u8> {
        // xorshift: incompressible for deflate, reproducible.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    fn gunzip(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(b)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn random_chunks_are_stored_and_round_trip() {
        let data = pseudo_random(GZIP_CHUNK);
        assert!(incompressible(&data));
        let member = gzip_member(&data).unwrap();
        // Stored deflate blocks: a few header bytes per block.
        let overhead = member.len() - data.len();
        assert!(overhead < data.len() / 1000, "overhead {overhead}");
        assert_eq!(gunzip(&member), data);
    }

    #[test]
    fn text_chunks_are_compressed() {
        let line = b"a line of a text file that deflate shrinks a lot\n";
        let data: Vec<u8> = line.iter().copied().cycle().take(GZIP_CHUNK).collect();
        assert!(!incompressible(&data));
        let member = gzip_member(&data).unwrap();
        assert!(member.len() < data.len() / 20, "{}", member.len());
        assert_eq!(gunzip(&member), data);
    }

    #[test]
    fn half_random_chunks_are_still_compressed() {
        // Random start, text middle and end: the probes disagree, deflate wins.
        let mut data = pseudo_random(GZIP_CHUNK / 4);
        let line = b"compressible text follows the random head\n";
        data.extend(line.iter().copied().cycle().take(GZIP_CHUNK * 3 / 4));
        assert!(!incompressible(&data));
        assert_eq!(gunzip(&gzip_member(&data).unwrap()), data);
    }

    #[test]
    fn small_chunks_are_never_judged() {
        assert!(!incompressible(&pseudo_random(PROBE)));
    }
}
