//! Stream plumbing shared by `exec` and `container.exec`: standard input from text or a
//! (decompressed) file, standard output and error captured (capped) or streamed into a file
//! that is compressed and hashed on the way and published only when the step succeeds.

use super::exec::{Output, OutputFile, Stdin};
use crate::docker::{CAPTURE_LIMIT, TailBuffer};
use crate::io::digest::FileDigest;
use crate::io::sink::FileSink;
use crate::steps::cx::{Outputs, StepCx, StepError};
use serde_json::Value;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::mpsc;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncWrite, DuplexStream};
use tokio::task::JoinHandle;
use tokio_util::io::SyncIoBridge;
use tokio_util::sync::PollSender;

const PIPE: usize = 256 * 1024;
/// What the writer of a discarded output file returns (not a failure of its own).
const DISCARDED: &str = "discarded";
/// Output reaches the file thread in chunks of this size: one hand-off between threads per
/// chunk, not one per frame the engine sends (a few KiB to 32 KiB each).
const CHUNK: usize = 256 * 1024;
/// Chunks queued for the file thread: the stream's memory stays under (DEPTH + 2) × CHUNK,
/// and a slow disk or compressor slows the process down instead.
const DEPTH: usize = 4;

/// Where one output stream goes while the process runs.
pub enum Sink {
    Capture(TailBuffer),
    File(FileWriter),
    Object(crate::steps::store::stream::ObjectWriter),
}

/// An output file being written on a blocking thread.
pub struct FileWriter(crate::io::commit::Committed<ChunkPipe, Result<FileDigest, String>>);

impl Sink {
    pub fn new(output: &Output, cx: &StepCx) -> Self {
        match output {
            // Enough past the cap that a secret straddling it is masked before the cut.
            Output::Capture => Sink::Capture(TailBuffer::new(CAPTURE_LIMIT + cx.masker.longest())),
            Output::File(f) => Sink::File(FileWriter::start(f, cx)),
            Output::Object(o) => {
                Sink::Object(crate::steps::store::stream::ObjectWriter::start(o, cx))
            }
        }
    }

    /// The writer the process's stream goes into.
    pub fn writer(&mut self) -> &mut (dyn AsyncWrite + Unpin + Send) {
        match self {
            Sink::Capture(t) => t,
            Sink::File(f) => &mut f.0.pipe,
            Sink::Object(o) => o.writer(),
        }
    }

    /// End the stream: publish the file when `ok`, else discard it. Captured text is masked.
    pub async fn finish(
        self,
        ok: bool,
        name: &str,
        cx: &StepCx,
        outputs: &mut Outputs,
    ) -> Result<(), StepError> {
        match self {
            Sink::Capture(t) => {
                let text = cx.masker.mask_tail(&t.text(), CAPTURE_LIMIT, t.cut());
                outputs.insert(name.to_owned(), Value::String(text));
                Ok(())
            }
            Sink::File(f) => {
                let digest = f.finish(ok).await?;
                if let Some(d) = digest {
                    outputs.insert("file".into(), Value::String(d.path.display().to_string()));
                    outputs.insert("bytes".into(), Value::from(d.bytes));
                    outputs.insert("sha256".into(), Value::String(d.sha256.clone()));
                }
                Ok(())
            }
            Sink::Object(o) => o.finish(ok, outputs).await,
        }
    }

    /// The captured tail as text (for error messages).
    pub fn tail(&self) -> String {
        match self {
            Sink::Capture(t) => t.text(),
            Sink::File(_) | Sink::Object(_) => String::new(),
        }
    }
}

impl FileWriter {
    fn start(spec: &OutputFile, cx: &StepCx) -> Self {
        let (tx, mut chunks) = tokio::sync::mpsc::channel::<Vec<u8>>(DEPTH);
        let pipe = ChunkPipe {
            buf: Vec::with_capacity(CHUNK),
            tx: PollSender::new(tx),
        };
        let (commit, decision) = mpsc::channel::<bool>();
        let path: PathBuf = cx.path(&spec.file);
        let format = spec.compress;
        let level = spec.level;
        let encrypt = spec.encrypt.clone();
        let progress = cx.progress.clone();
        let task = tokio::task::spawn_blocking(move || {
            let recipients = encrypt
                .map(|e| crate::io::encrypt::Recipients::parse(&e.recipients))
                .transpose()?;
            let mut sink = FileSink::create_encrypted(&path, format, level, recipients.as_ref())
                .map_err(|e| e.to_string())?;
            let mut total = 0u64;
            let mut reported = 0u64;
            while let Some(chunk) = chunks.blocking_recv() {
                sink.write_all(&chunk)
                    .map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
                total += chunk.len() as u64;
                if total - reported >= 8 * 1024 * 1024 {
                    progress.bytes(total);
                    reported = total;
                }
            }
            // Publish only once the process is known to have succeeded; dropping the sink
            // removes the temporary file.
            if decision.recv().unwrap_or(false) {
                sink.finish().map_err(|e| e.to_string())
            } else {
                Err(DISCARDED.into())
            }
        });
        Self(crate::io::commit::Committed::new(pipe, commit, task))
    }

    async fn finish(self, ok: bool) -> Result<Option<FileDigest>, StepError> {
        let result = self
            .0
            .end(ok)
            .await
            .map_err(|e| StepError::failed(format!("output writer: {e}")))?;
        match result {
            Ok(d) if ok => Ok(Some(d)),
            Ok(_) => Ok(None),
            Err(e) if e == DISCARDED => Ok(None),
            // The writer itself failed (a full disk): that is the cause of whatever the
            // process then did (a broken pipe), so it is the step's error.
            Err(e) => Err(StepError::Failed(e)),
        }
    }
}

/// The async end of an output file: gathers what the process writes into [`CHUNK`]-sized
/// buffers and queues full ones for the file thread, without copying them again.
pub struct ChunkPipe {
    buf: Vec<u8>,
    tx: PollSender<Vec<u8>>,
}

impl ChunkPipe {
    /// Queues the buffer (when not empty), waiting for room.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.buf.is_empty() {
            return Poll::Ready(Ok(()));
        }
        ready!(self.tx.poll_reserve(cx)).map_err(|_| closed())?;
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx.send_item(chunk).map_err(|_| closed())?;
        Poll::Ready(Ok(()))
    }
}

/// The file thread ended (it failed to create or write the file): the process's output has
/// nowhere to go.
fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the output file was closed")
}

impl AsyncWrite for ChunkPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.buf.len() >= CHUNK {
            ready!(this.poll_send(cx))?;
        }
        let n = data.len().min(CHUNK - this.buf.len());
        this.buf.extend_from_slice(&data[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_send(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        this.tx.close();
        Poll::Ready(Ok(()))
    }
}

/// Standard input being fed from a blocking thread.
pub struct Feeder {
    task: JoinHandle<Result<u64, String>>,
}

impl Feeder {
    /// Start feeding `spec` into a new pipe; returns the pipe's read end for the process.
    pub fn start(spec: &Stdin, cx: &StepCx) -> (DuplexStream, Self) {
        let (reader, writer) = tokio::io::duplex(PIPE);
        let task = Self::feed(spec, cx, writer);
        (reader, Self { task })
    }

    /// Feed `spec` into any async writer (a child's stdin).
    pub fn feed<W: AsyncWrite + Unpin + Send + 'static>(
        spec: &Stdin,
        cx: &StepCx,
        writer: W,
    ) -> JoinHandle<Result<u64, String>> {
        if let Some(object) = &spec.object {
            let input = crate::steps::store::stream::InputObject {
                object,
                decrypt: spec.decrypt.as_ref(),
                decompress: spec.decompress,
            };
            return crate::steps::store::stream::feed(&input, cx, writer);
        }
        let identity = match super::object::identity(cx, spec.decrypt.as_ref()) {
            Ok(i) => i,
            Err(e) => {
                let message = match e {
                    StepError::Failed(m) => m,
                    other => format!("{other:?}"),
                };
                return tokio::spawn(async move { Err(message) });
            }
        };
        let file = spec.file.as_ref().map(|f| cx.path(f));
        let text = spec.text.clone();
        let decompress = spec.decompress;
        let progress = cx.progress.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = SyncIoBridge::new(writer);
            let mut input: Box<dyn Read + Send> = match (&file, text) {
                (Some(path), _) => {
                    crate::steps::store::stream::open_file(path, decompress, identity.as_ref())?
                }
                (None, Some(t)) => Box::new(std::io::Cursor::new(t.into_bytes())),
                (None, None) => Box::new(std::io::empty()),
            };
            let mut buf = vec![0u8; PIPE];
            let mut total = 0u64;
            loop {
                let n = match input.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(format!("reading stdin file: {e}")),
                };
                // The process may exit without reading all of its input: not our error.
                if out.write_all(&buf[..n]).is_err() {
                    break;
                }
                total += n as u64;
                if total % (64 * 1024 * 1024) < n as u64 {
                    progress.bytes(total);
                }
            }
            let _ = out.shutdown();
            Ok(total)
        })
    }

    /// Wait for the feeder; a failure to read the input file fails the step.
    pub async fn finish(self) -> Result<u64, StepError> {
        self.task
            .await
            .map_err(|e| StepError::failed(format!("stdin feeder: {e}")))?
            .map_err(StepError::Failed)
    }
}

/// Discard both outputs of a process that did not end normally; returns the failure of an
/// output file's writer (a full disk), which explains the process's own error.
pub async fn discard(out: Sink, err: Sink, cx: &StepCx) -> Option<StepError> {
    let o = out.finish(false, "stdout", cx, &mut Outputs::new()).await;
    let e = err.finish(false, "stderr", cx, &mut Outputs::new()).await;
    o.err().or(e.err()).map(|e| e.masked(&cx.masker))
}

/// End a process step: publish or discard its output files, collect `exit_code`, `stdout`,
/// `stderr` (and `file`, `bytes`, `sha256`), and fail unless the code is in `ok_codes` and its
/// standard input was fed completely.
pub async fn conclude(
    program: &str,
    code: i64,
    ok_codes: &[i64],
    fed: Result<(), StepError>,
    out: Sink,
    err: Sink,
    cx: &StepCx,
) -> Result<Outputs, StepError> {
    let ok = ok_codes.contains(&code) && fed.is_ok();
    let stderr_tail = err.tail();
    let mut outputs = Outputs::new();
    outputs.insert("exit_code".into(), code.into());
    out.finish(ok, "stdout", cx, &mut outputs).await?;
    err.finish(ok, "stderr", cx, &mut outputs).await?;
    fed?;
    if !ok {
        return Err(exit_error(program, code, &stderr_tail, cx));
    }
    Ok(outputs)
}

/// The error of a process that exited with a code not in `ok_codes` (its last 10 lines of
/// standard error).
pub fn exit_error(program: &str, code: i64, stderr_tail: &str, cx: &StepCx) -> StepError {
    let tail: String = stderr_tail
        .trim_end()
        .lines()
        .rev()
        .take(10)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    let msg = crate::docker::exit_message(program, None, code, &tail);
    StepError::Failed(cx.masker.mask(&msg))
}

/// The argv of a step: `command`, or `sh -c SHELL`.
pub fn argv(command: Option<&Vec<String>>, shell: Option<&String>) -> Vec<String> {
    match (command, shell) {
        (Some(c), _) => c.clone(),
        (None, Some(s)) => vec!["sh".into(), "-c".into(), s.clone()],
        (None, None) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::{CHUNK, ChunkPipe, DEPTH};
    use tokio::io::AsyncWriteExt;
    use tokio_util::sync::PollSender;

    fn pipe() -> (ChunkPipe, tokio::sync::mpsc::Receiver<Vec<u8>>) {
        let (tx, rx) = tokio::sync::mpsc::channel(DEPTH);
        let pipe = ChunkPipe {
            buf: Vec::new(),
            tx: PollSender::new(tx),
        };
        (pipe, rx)
    }

    #[tokio::test]
    async fn chunks_carry_every_byte_in_order() {
        let (mut pipe, mut rx) = pipe();
        let data: Vec<u8> = (0..CHUNK * 3 + 12_345)
            .map(|i| u8::try_from(i % 251).unwrap())
            .collect();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut sizes = Vec::new();
            while let Some(chunk) = rx.recv().await {
                sizes.push(chunk.len());
                got.extend_from_slice(&chunk);
            }
            (got, sizes)
        });
        // Odd frame sizes, as the engine sends them.
        for frame in data.chunks(32 * 1024 - 7) {
            pipe.write_all(frame).await.unwrap();
        }
        pipe.shutdown().await.unwrap();
        drop(pipe);
        let (got, sizes) = reader.await.unwrap();
        assert!(got == data, "bytes differ");
        assert_eq!(sizes, [CHUNK, CHUNK, CHUNK, 12_345]);
    }

    #[tokio::test]
    async fn a_closed_file_thread_fails_the_writer() {
        let (mut pipe, rx) = pipe();
        drop(rx);
        let err = pipe.write_all(&vec![0; CHUNK + 1]).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe);
    }
}
