//! gzip and zstd: format detection by extension, streaming encoder and decoder, and whole-file
//! compress/decompress through [`AtomicFile`] with the output hashed in the same pass.

use std::fs::{self, File, FileTimes};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use gzp::ZWriter as _;
use gzp::deflate::Gzip;
use gzp::par::compress::{ParCompress, ParCompressBuilder};
use serde::{Deserialize, Serialize};

use super::atomic::AtomicFile;
use super::digest::{FileDigest, HashingWriter};
use super::error::{Error, IoContext, Result};

/// Copy buffer for whole-file operations.
pub(crate) const COPY_BUFFER: usize = 256 * 1024;

/// Input per job of the multithreaded zstd encoder. zstd's default is four windows (8 MiB at
/// level 3), and it keeps up to `2 × workers + 3` output buffers of a job's size plus a round
/// input buffer of `workers + 3` jobs: 75 MiB of peak RSS for a 2-worker dump at level 3.
/// At 2 MiB it is 32 MiB (zstd raises the job size to the overlap when a high level needs
/// more), and the 1.2 GB benchmark dump compresses to the same 564 MB (BENCHMARKS.md).
const ZSTD_JOB_SIZE: u32 = 2 * 1024 * 1024;

/// A compression format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// gzip (RFC 1952), extension `.gz`; levels 0–9, default 6.
    Gzip,
    /// Zstandard, extension `.zst`; levels 1–22 (and negative fast levels), default 3.
    Zstd,
}

impl Format {
    /// The format named by the last extension of `path` (`.gz`, `.zst`).
    pub fn from_extension(path: impl AsRef<Path>) -> Option<Self> {
        match path.as_ref().extension()?.to_str()? {
            "gz" => Some(Self::Gzip),
            "zst" => Some(Self::Zstd),
            _ => None,
        }
    }

    /// Like [`Format::from_extension`], with an error naming the file.
    pub fn for_path(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Self::from_extension(path).ok_or_else(|| Error::UnknownFormat {
            what: "compression",
            path: path.to_path_buf(),
        })
    }

    /// The extension without its dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Gzip => "gz",
            Self::Zstd => "zst",
        }
    }

    /// The level used when none is given, the same as the command-line tools'.
    pub fn default_level(self) -> i32 {
        match self {
            Self::Gzip => 6,
            Self::Zstd => 3,
        }
    }

    /// `path` with this format's extension appended: `a.dump` → `a.dump.zst`.
    pub fn add_extension(self, path: impl AsRef<Path>) -> PathBuf {
        let mut s = path.as_ref().as_os_str().to_owned();
        s.push(".");
        s.push(self.extension());
        PathBuf::from(s)
    }

    /// `path` without this format's extension, or `None` when it does not end with it (or
    /// the name would become empty).
    pub fn strip_extension(self, path: impl AsRef<Path>) -> Option<PathBuf> {
        let path = path.as_ref();
        if path.extension()?.to_str()? != self.extension() {
            return None;
        }
        path.file_stem()?;
        Some(path.with_extension(""))
    }

    fn check_level(self, level: i32) -> Result<()> {
        let range = match self {
            Self::Gzip => 0..=9,
            Self::Zstd => zstd::compression_level_range(),
        };
        if range.contains(&level) {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "{self:?} level {level} is out of range {}..={}",
                range.start(),
                range.end()
            )))
        }
    }
}

/// Worker threads for `threads == 0`: one per core.
fn resolve_threads(threads: u32) -> u32 {
    if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(1))
    } else {
        threads
    }
}

/// A compressing writer. Call [`Encoder::finish`]: it writes the trailer and reports errors
/// that a `Drop` would have to swallow.
///
/// Dropping an unfinished encoder abandons the output (the stream is left truncated), which
/// is what an [`AtomicFile`] below it wants after an error.
pub struct Encoder<W: Write + Send + 'static> {
    kind: Option<EncoderKind<W>>,
    /// Set when abandoned, so gzp's own `Drop` (which unwraps its finish) cannot panic.
    abandoned: Arc<AtomicBool>,
    /// Set after an error: gzp tears its pipeline down then and panics if used again, so
    /// every later call must stop here.
    failed: bool,
}

enum EncoderKind<W: Write + Send + 'static> {
    Gzip(GzEncoder<W>),
    ParGzip(ParCompress<'static, Gzip, Abandonable<W>>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write + Send + 'static> std::fmt::Debug for Encoder<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Some(EncoderKind::Gzip(_)) => "gzip",
            Some(EncoderKind::ParGzip(_)) => "parallel gzip",
            Some(EncoderKind::Zstd(_)) => "zstd",
            None => "finished",
        };
        f.debug_struct("Encoder")
            .field("kind", &kind)
            .finish_non_exhaustive()
    }
}

impl<W: Write + Send + 'static> Encoder<W> {
    /// Compresses into `inner` with `format` at `level` (`None`: the format's default).
    ///
    /// `threads`: 0 = one worker per core, 1 = compress in the calling thread, n = n worker
    /// threads (zstdmt for zstd, gzp — pigz's block scheme — for gzip). With workers the
    /// calling thread only hands over blocks and writes, so hashing and I/O overlap with
    /// compression.
    pub fn new(inner: W, format: Format, level: Option<i32>, threads: u32) -> Result<Self> {
        let level = level.unwrap_or(format.default_level());
        format.check_level(level)?;
        let threads = resolve_threads(threads);
        let abandoned = Arc::new(AtomicBool::new(false));
        let kind = match format {
            Format::Gzip => {
                let compression = Compression::new(level.unsigned_abs());
                if threads <= 1 {
                    EncoderKind::Gzip(GzEncoder::new(inner, compression))
                } else {
                    let writer = Abandonable {
                        inner,
                        abandoned: Arc::clone(&abandoned),
                    };
                    let par = ParCompressBuilder::<Gzip>::new()
                        .num_threads(threads as usize)
                        .map_err(|e| Error::Invalid(format!("gzip threads: {e}")))?
                        .compression_level(compression)
                        .from_writer(writer);
                    EncoderKind::ParGzip(par)
                }
            }
            Format::Zstd => {
                let mut enc = zstd::stream::write::Encoder::new(inner, level)
                    .map_err(|e| Error::Invalid(format!("zstd encoder: {e}")))?;
                if threads > 1 {
                    enc.multithread(threads)
                        .and_then(|()| {
                            enc.set_parameter(zstd::zstd_safe::CParameter::JobSize(ZSTD_JOB_SIZE))
                        })
                        .map_err(|e| Error::Invalid(format!("zstd threads: {e}")))?;
                }
                EncoderKind::Zstd(enc)
            }
        };
        Ok(Self {
            kind: Some(kind),
            abandoned,
            failed: false,
        })
    }

    /// Writes the end of the stream and returns the inner writer (not flushed further).
    ///
    /// # Panics
    ///
    /// Never: `finish` consumes the encoder, which holds its stream until then.
    pub fn finish(mut self) -> io::Result<W> {
        if self.failed {
            return Err(failed_error());
        }
        match self.kind.take().expect("encoder finished once") {
            EncoderKind::Gzip(e) => e.finish(),
            EncoderKind::ParGzip(mut e) => e.finish().map(|w| w.inner).map_err(gzp_error),
            EncoderKind::Zstd(e) => e.finish(),
        }
    }
}

fn failed_error() -> io::Error {
    io::Error::other("the compressed stream failed earlier")
}

fn gzp_error(e: gzp::GzpError) -> io::Error {
    match e {
        gzp::GzpError::Io(e) => e,
        other => io::Error::other(other),
    }
}

impl<W: Write + Send + 'static> Drop for Encoder<W> {
    fn drop(&mut self) {
        if self.failed {
            return;
        }
        if let Some(EncoderKind::ParGzip(mut e)) = self.kind.take() {
            // Stop the worker threads now; the output is being abandoned, so its error (if
            // any) has nowhere to go.
            self.abandoned.store(true, Ordering::Relaxed);
            let _ = e.finish();
        }
    }
}

impl<W: Write + Send + 'static> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.failed {
            return Err(failed_error());
        }
        let result = match self.kind.as_mut().expect("encoder not finished") {
            EncoderKind::Gzip(e) => e.write(buf),
            EncoderKind::ParGzip(e) => e.write(buf),
            EncoderKind::Zstd(e) => e.write(buf),
        };
        self.failed = result.is_err();
        result
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.failed {
            return Err(failed_error());
        }
        let result = match self.kind.as_mut().expect("encoder not finished") {
            EncoderKind::Gzip(e) => e.flush(),
            EncoderKind::ParGzip(e) => e.flush(),
            EncoderKind::Zstd(e) => e.flush(),
        };
        self.failed = result.is_err();
        result
    }
}

/// A writer that turns into a sink once its owner abandons the stream.
struct Abandonable<W> {
    inner: W,
    abandoned: Arc<AtomicBool>,
}

impl<W: Write> Write for Abandonable<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.abandoned.load(Ordering::Relaxed) {
            return Ok(buf.len());
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.abandoned.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.inner.flush()
    }
}

/// A decompressing reader.
///
/// gzip input may hold several members (as `pigz` and `cat a.gz b.gz` produce), and zstd
/// input several frames; all are read, as the command-line tools do.
#[expect(clippy::large_enum_variant, reason = "one per input file")]
pub enum Decoder<R: Read> {
    /// gzip.
    Gzip(MultiGzDecoder<R>),
    /// zstd.
    Zstd(zstd::stream::read::Decoder<'static, BufReader<R>>),
}

impl<R: Read> std::fmt::Debug for Decoder<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Gzip(_) => "Decoder::Gzip",
            Self::Zstd(_) => "Decoder::Zstd",
        })
    }
}

impl<R: Read> Decoder<R> {
    /// Decompresses `inner` as `format`.
    pub fn new(inner: R, format: Format) -> io::Result<Self> {
        Ok(match format {
            Format::Gzip => Self::Gzip(MultiGzDecoder::new(inner)),
            Format::Zstd => Self::Zstd(zstd::stream::read::Decoder::new(inner)?),
        })
    }

    /// The compressed reader. Bytes it had buffered but not decoded are lost.
    pub fn into_inner(self) -> R {
        match self {
            Self::Gzip(d) => d.into_inner(),
            Self::Zstd(d) => d.finish().into_inner(),
        }
    }
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Gzip(d) => d.read(buf),
            Self::Zstd(d) => d.read(buf),
        }
    }
}

/// Opens `path` for reading, decompressing it when `decompress` is set (format from the
/// extension): the `stdin: {file, decompress}` of an `exec` step.
pub fn open_input(path: impl AsRef<Path>, decompress: bool) -> Result<Box<dyn Read + Send>> {
    let path = path.as_ref();
    let format = if decompress {
        Some(Format::for_path(path)?)
    } else {
        None
    };
    let file = File::open(path).ctx("open", path)?;
    Ok(match format {
        None => Box::new(BufReader::with_capacity(COPY_BUFFER, file)),
        Some(f) => Box::new(Decoder::new(file, f).ctx("read", path)?),
    })
}

/// Copies `reader` into `writer` through a fixed buffer; read errors are attributed to
/// `src`, write errors to `dest`.
pub(crate) fn copy_attributed(
    reader: &mut impl Read,
    writer: &mut impl Write,
    src: &Path,
    dest: &Path,
) -> Result<u64> {
    let mut buf = vec![0; COPY_BUFFER];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("read", src, e)),
        };
        writer.write_all(&buf[..n]).ctx("write", dest)?;
        total += n as u64;
    }
}

/// Compresses `src` into `dest` (default: `src` plus the format's extension), like `gzip`:
/// the output keeps the source's permissions and modification time, and with
/// `remove_source` the source is deleted once the output is published. Returns the digest of
/// the compressed file. Compression uses one worker per core.
pub fn compress_file(
    src: &Path,
    dest: Option<&Path>,
    format: Format,
    level: Option<i32>,
    remove_source: bool,
) -> Result<FileDigest> {
    let dest = dest.map_or_else(|| format.add_extension(src), Path::to_path_buf);
    transcode(src, &dest, remove_source, |input, output| {
        let mut enc = Encoder::new(output, format, level, 0)?;
        copy_attributed(input, &mut enc, src, &dest)?;
        enc.finish().ctx("write", &dest)
    })
}

/// Decompresses `src` into `dest` (default: `src` without its extension), with `format`
/// taken from the extension when `None`. Returns the digest of the decompressed file.
pub fn decompress_file(
    src: &Path,
    dest: Option<&Path>,
    format: Option<Format>,
    remove_source: bool,
) -> Result<FileDigest> {
    let format = match format {
        Some(f) => f,
        None => Format::for_path(src)?,
    };
    let dest = match dest {
        Some(d) => d.to_path_buf(),
        None => format.strip_extension(src).ok_or_else(|| {
            Error::Invalid(format!(
                "`{}` does not end in `.{}`: give a destination",
                src.display(),
                format.extension()
            ))
        })?,
    };
    transcode(src, &dest, remove_source, |input, mut output| {
        let mut dec = Decoder::new(input, format).ctx("read", src)?;
        copy_attributed(&mut dec, &mut output, src, &dest)?;
        Ok(output)
    })
}

/// The common frame of compress and decompress: open, publish atomically with the source's
/// mode and mtime, optionally remove the source.
fn transcode(
    src: &Path,
    dest: &Path,
    remove_source: bool,
    body: impl FnOnce(&mut File, HashingWriter<AtomicFile>) -> Result<HashingWriter<AtomicFile>>,
) -> Result<FileDigest> {
    if std::path::absolute(src).ok() == std::path::absolute(dest).ok() {
        return Err(Error::Invalid(format!(
            "source and destination are both `{}`",
            src.display()
        )));
    }
    let mut input = File::open(src).ctx("open", src)?;
    let meta = input.metadata().ctx("stat", src)?;
    let output = HashingWriter::new(AtomicFile::create(dest)?);
    let (mut atomic, digest) = body(&mut input, output)?.finish();
    // Flushed first so no later write moves the mtime set here.
    atomic.flush().ctx("write", dest)?;
    atomic
        .file()
        .set_permissions(meta.permissions())
        .ctx("set permissions of", dest)?;
    if let Ok(mtime) = meta.modified() {
        atomic
            .file()
            .set_times(FileTimes::new().set_modified(mtime))
            .ctx("set times of", dest)?;
    }
    let path = atomic.commit()?;
    if remove_source {
        fs::remove_file(src).ctx("remove", src)?;
    }
    Ok(FileDigest::new(path, digest))
}
