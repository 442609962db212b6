use std::io::{self, BufRead, Read, Write};

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
    /// The OCI media type of a layer with this compression.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
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
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(
            Vec::with_capacity(data.len() / 2 + 64),
            flate2::Compression::default(),
        );
    enc.write_all(data)?;
    enc.finish()
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
            Compression::Zstd => {
                let mut enc = zstd::stream::write::Encoder::new(inner, 3)?;
                // Content size is unknown up front; a checksum lets readers
                // detect corruption even without a digest.
                enc.include_checksum(true)?;
                Encoder::Zstd(enc)
            }
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
