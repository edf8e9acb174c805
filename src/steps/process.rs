//! Stream plumbing shared by `exec` and `container.exec`: standard input from text or a
//! (decompressed) file, standard output and error captured (capped) or streamed into a file
//! that is compressed and hashed on the way and published only when the step succeeds.

use super::exec::{Output, OutputFile, Stdin};
use crate::docker::TailBuffer;
use crate::exec::cx::{Outputs, StepCx, StepError};
use crate::io::digest::FileDigest;
use crate::io::sink::FileSink;
use serde_json::Value;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::mpsc;
use tokio::io::{AsyncWrite, DuplexStream};
use tokio::task::JoinHandle;
use tokio_util::io::SyncIoBridge;

/// Captured output is capped at this many bytes (the last ones are kept).
pub const CAPTURE_CAP: usize = 1024 * 1024;
const PIPE: usize = 256 * 1024;
/// What the writer of a discarded output file returns (not a failure of its own).
const DISCARDED: &str = "discarded";

/// Where one output stream goes while the process runs.
pub enum Sink {
    Capture(TailBuffer),
    File(FileWriter),
}

/// An output file being written on a blocking thread.
pub struct FileWriter {
    pipe: DuplexStream,
    commit: mpsc::Sender<bool>,
    task: JoinHandle<Result<FileDigest, String>>,
}

impl Sink {
    pub fn new(output: &Output, cx: &StepCx) -> Self {
        match output {
            Output::Capture => Sink::Capture(TailBuffer::new(CAPTURE_CAP)),
            Output::File(f) => Sink::File(FileWriter::start(f, cx)),
        }
    }

    /// The writer the process's stream goes into.
    pub fn writer(&mut self) -> &mut (dyn AsyncWrite + Unpin + Send) {
        match self {
            Sink::Capture(t) => t,
            Sink::File(f) => &mut f.pipe,
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
                outputs.insert(name.to_owned(), Value::String(cx.masker.mask(&t.text())));
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
        }
    }

    /// The captured tail as text (for error messages).
    pub fn tail(&self) -> String {
        match self {
            Sink::Capture(t) => t.text(),
            Sink::File(_) => String::new(),
        }
    }
}

impl FileWriter {
    fn start(spec: &OutputFile, cx: &StepCx) -> Self {
        let (pipe, reader) = tokio::io::duplex(PIPE);
        let (commit, decision) = mpsc::channel::<bool>();
        let path: PathBuf = cx.path(&spec.file);
        let format = spec.compress;
        let level = spec.level;
        let progress = cx.progress.clone();
        let task = tokio::task::spawn_blocking(move || {
            let mut input = SyncIoBridge::new(reader);
            let mut sink = FileSink::create(&path, format, level).map_err(|e| e.to_string())?;
            let mut buf = vec![0u8; PIPE];
            let mut total = 0u64;
            let mut reported = 0u64;
            loop {
                let n = match input.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(format!("reading the stream: {e}")),
                };
                sink.write_all(&buf[..n])
                    .map_err(|e| format!("cannot write `{}`: {e}", path.display()))?;
                total += n as u64;
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
        Self { pipe, commit, task }
    }

    async fn finish(self, ok: bool) -> Result<Option<FileDigest>, StepError> {
        let Self { pipe, commit, task } = self;
        drop(pipe);
        let _ = commit.send(ok);
        let result = task
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
        let file = spec.file.as_ref().map(|f| cx.path(f));
        let text = spec.text.clone();
        let decompress = spec.decompress;
        let progress = cx.progress.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = SyncIoBridge::new(writer);
            let mut input: Box<dyn Read + Send> = match (&file, text) {
                (Some(path), _) => {
                    crate::io::compress::open_input(path, decompress).map_err(|e| e.to_string())?
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

/// The error of a process that exited with a code not in `ok_codes`.
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
    let msg = if tail.is_empty() {
        format!("`{program}` exited with code {code}")
    } else {
        format!("`{program}` exited with code {code}; stderr ends with:\n{tail}")
    };
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
