//! A chunk-driven output file: what an `exec` step's `stdout: {file, compress, checksum}`
//! writes into as the process produces output.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::atomic::{AtomicFile, AtomicOptions};
use super::compress::{Encoder, Format};
use super::digest::{FileDigest, HashingWriter};
use super::error::{IoContext, Result};

/// An output file fed chunk by chunk, optionally compressed, hashed as written and published
/// atomically by [`FileSink::finish`].
///
/// It is `Send`, so an async caller can move it into `spawn_blocking` for each chunk (or
/// feed it from one blocking task through a channel). Dropping it without `finish` — the
/// process failed, the step was cancelled — leaves no file behind.
#[derive(Debug)]
pub struct FileSink {
    writer: SinkWriter,
    path: PathBuf,
    temp_path: PathBuf,
}

enum SinkWriter {
    Plain(HashingWriter<AtomicFile>),
    Compressed(Encoder<HashingWriter<AtomicFile>>),
    Encrypted(age::stream::StreamWriter<HashingWriter<AtomicFile>>),
    CompressedEncrypted(Encoder<age::stream::StreamWriter<HashingWriter<AtomicFile>>>),
}

impl std::fmt::Debug for SinkWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Plain(_) => "Plain",
            Self::Compressed(_) => "Compressed",
            Self::Encrypted(_) => "Encrypted",
            Self::CompressedEncrypted(_) => "CompressedEncrypted",
        })
    }
}

impl FileSink {
    /// Starts writing `path` (parent directories are created), compressing with `compress`
    /// at `level` (`None`: the format's default) on one worker per core.
    pub fn create(
        path: impl AsRef<Path>,
        compress: Option<Format>,
        level: Option<i32>,
    ) -> Result<Self> {
        Self::create_encrypted(path, compress, level, None)
    }

    /// [`FileSink::create`], encrypting with age to `recipients` after compressing (the
    /// digest is of the encrypted bytes on disk).
    pub fn create_encrypted(
        path: impl AsRef<Path>,
        compress: Option<Format>,
        level: Option<i32>,
        recipients: Option<&super::encrypt::Recipients>,
    ) -> Result<Self> {
        let path = path.as_ref();
        let options = AtomicOptions {
            create_dirs: true,
            ..AtomicOptions::default()
        };
        let atomic = AtomicFile::with_options(path, &options)?;
        let temp_path = atomic.temp_path().to_path_buf();
        let file = HashingWriter::new(atomic);
        let writer = match (compress, recipients) {
            (None, None) => SinkWriter::Plain(file),
            (Some(format), None) => SinkWriter::Compressed(Encoder::new(file, format, level, 0)?),
            (None, Some(r)) => SinkWriter::Encrypted(r.encrypt(file).ctx("write", path)?),
            (Some(format), Some(r)) => SinkWriter::CompressedEncrypted(Encoder::new(
                r.encrypt(file).ctx("write", path)?,
                format,
                level,
                0,
            )?),
        };
        Ok(Self {
            writer,
            path: path.to_path_buf(),
            temp_path,
        })
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The temporary file being written, for callers that must not read it back (an
    /// archive created inside its own source tree).
    pub fn temp_path(&self) -> &Path {
        &self.temp_path
    }

    /// Ends the stream, publishes the file and returns its size and SHA-256 (of the bytes
    /// on disk, compressed if compression was asked for).
    pub fn finish(self) -> Result<FileDigest> {
        let hashing = match self.writer {
            SinkWriter::Plain(w) => w,
            SinkWriter::Compressed(enc) => enc.finish().ctx("write", &self.path)?,
            SinkWriter::Encrypted(w) => w.finish().ctx("write", &self.path)?,
            SinkWriter::CompressedEncrypted(enc) => enc
                .finish()
                .and_then(age::stream::StreamWriter::finish)
                .ctx("write", &self.path)?,
        };
        let (atomic, digest) = hashing.finish();
        let path = atomic.commit()?;
        Ok(FileDigest::new(path, digest))
    }
}

impl Write for FileSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.writer {
            SinkWriter::Plain(w) => w.write(buf),
            SinkWriter::Compressed(w) => w.write(buf),
            SinkWriter::Encrypted(w) => w.write(buf),
            SinkWriter::CompressedEncrypted(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.writer {
            SinkWriter::Plain(w) => w.flush(),
            SinkWriter::Compressed(w) => w.flush(),
            SinkWriter::Encrypted(w) => w.flush(),
            SinkWriter::CompressedEncrypted(w) => w.flush(),
        }
    }
}
