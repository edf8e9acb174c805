//! SHA-256 and byte counts computed while data streams through.
//!
//! `sha2` 0.11 picks its SHA-NI backend at run time (through `cpufeatures`) on x86-64 CPUs
//! that have it, with no crate feature to enable; `examples/io_bench.rs` measures it.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};

use super::error::{IoContext, Result};

/// Read size for hashing whole files: big enough that syscalls cost nothing next to SHA-256.
const READ_BUFFER: usize = 256 * 1024;

/// What a stream hashed: its length and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamDigest {
    /// Bytes that went through.
    pub bytes: u64,
    /// SHA-256 of those bytes, lowercase hex.
    pub sha256: String,
}

/// A file that was written or read, with its size and SHA-256: the `file`, `bytes` and
/// `sha256` outputs of the steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    /// The file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its SHA-256, lowercase hex.
    pub sha256: String,
}

impl FileDigest {
    /// Pairs a stream digest with the file it describes.
    pub fn new(path: impl Into<PathBuf>, digest: StreamDigest) -> Self {
        Self {
            path: path.into(),
            bytes: digest.bytes,
            sha256: digest.sha256,
        }
    }
}

/// A running SHA-256 and byte count.
#[derive(Debug, Clone, Default)]
struct Hasher {
    sha: Sha256,
    bytes: u64,
}

impl Hasher {
    fn update(&mut self, data: &[u8]) {
        self.sha.update(data);
        self.bytes += data.len() as u64;
    }

    fn finish(self) -> StreamDigest {
        StreamDigest {
            bytes: self.bytes,
            sha256: hex::encode(self.sha.finalize()),
        }
    }
}

/// A running SHA-256 and byte count shared by handles: a tap deep inside a stack of boxed
/// writers or readers updates it, and the code that built the stack takes the digest once the
/// stream has ended.
#[derive(Debug, Clone, Default)]
pub struct SharedHasher(Arc<Mutex<Hasher>>);

impl SharedHasher {
    /// Hashes `data`.
    pub fn update(&self, data: &[u8]) {
        self.0.lock().expect("digest lock").update(data);
    }

    /// The digest of everything hashed so far; the hasher starts again from nothing.
    pub fn take(&self) -> StreamDigest {
        std::mem::take(&mut *self.0.lock().expect("digest lock")).finish()
    }
}

/// A writer that hashes what it passes on to `W`.
///
/// Only bytes that `W` accepted are hashed, so a short write never makes the digest differ
/// from what reached the inner writer.
#[derive(Debug)]
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Hasher::default(),
        }
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.hasher.bytes
    }

    /// The inner writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// Returns the inner writer (not flushed) and the digest of everything written.
    pub fn finish(self) -> (W, StreamDigest) {
        (self.inner, self.hasher.finish())
    }
}

/// The same over an async writer (a stream from the Docker engine to a file).
impl<W: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for HashingWriter<W> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        let this = self.get_mut();
        let n = std::task::ready!(std::pin::Pin::new(&mut this.inner).poll_write(cx, buf))?;
        this.hasher.update(&buf[..n]);
        std::task::Poll::Ready(Ok(n))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes what it reads from `R`.
#[derive(Debug)]
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Hasher::default(),
        }
    }

    /// Bytes read so far.
    pub fn bytes(&self) -> u64 {
        self.hasher.bytes
    }

    /// Reads the rest of the stream (so the digest covers all of it), then returns the inner
    /// reader and the digest.
    pub fn finish(mut self) -> io::Result<(R, StreamDigest)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((self.inner, self.hasher.finish()))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// The size and SHA-256 of a file, streamed through a fixed buffer.
pub fn sha256_file(path: impl AsRef<Path>) -> Result<FileDigest> {
    let path = path.as_ref();
    let mut file = File::open(path).ctx("open", path)?;
    let mut hasher = Hasher::default();
    let mut buf = vec![0; READ_BUFFER];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).ctx("read", path),
        }
    }
    Ok(FileDigest::new(path, hasher.finish()))
}
