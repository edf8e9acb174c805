//! Streaming a backup into a store: the writer stack on a blocking thread, and the async
//! task that turns full parts into a multipart upload with a bounded number in flight.

use super::client::Store;
use super::manifest::{self, Digest, Manifest};
use crate::io::compress::{Encoder, Format};
use crate::io::digest::SharedHasher;
use crate::io::encrypt::Recipients;
use crate::steps::cx::{Progress, StepError};
use bytes::Bytes;
use object_store::ObjectStoreExt as _;
use object_store::WriteMultipart;
use std::io::{self, Write};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Size of each part of a multipart upload. S3 allows 10,000 parts: objects up to 80 GiB.
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts uploading at once. With the part being filled and the queue, an upload holds at
/// most about `(PARTS_IN_FLIGHT + 1) × PART_SIZE + QUEUE × CHUNK` = 28 MiB.
pub const PARTS_IN_FLIGHT: usize = 2;
/// Bytes handed to the upload task at a time, and how many may wait.
const CHUNK: usize = 1024 * 1024;
const QUEUE: usize = 4;

/// How a stream is transformed before it is stored.
#[derive(Debug, Clone, Default)]
pub struct Transform {
    pub compress: Option<Format>,
    pub level: Option<i32>,
    pub recipients: Option<Arc<Recipients>>,
}

/// One layer of the writer stack; `finish` ends it and every layer below.
pub trait Stage: Write + Send {
    fn finish(self: Box<Self>) -> io::Result<()>;
}

impl Stage for Encoder<Box<dyn Stage>> {
    fn finish(self: Box<Self>) -> io::Result<()> {
        (*self).finish()?.finish()
    }
}

impl Stage for age::stream::StreamWriter<Box<dyn Stage>> {
    fn finish(self: Box<Self>) -> io::Result<()> {
        (*self).finish()?.finish()
    }
}

/// Hashes what it passes down.
struct Tap {
    inner: Box<dyn Stage>,
    slot: SharedHasher,
}

impl Write for Tap {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.slot.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl Stage for Tap {
    fn finish(self: Box<Self>) -> io::Result<()> {
        self.inner.finish()
    }
}

enum Msg {
    Data(Bytes),
    /// Everything was written: complete the upload (else it is aborted).
    Done,
}

/// The bottom of the stack: hands chunks to the upload task, waiting when it is behind.
struct Parts {
    buf: Vec<u8>,
    tx: mpsc::Sender<Msg>,
    progress: Option<Progress>,
    sent: u64,
    reported: u64,
}

fn stopped() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped")
}

impl Parts {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.sent += chunk.len() as u64;
        self.tx
            .blocking_send(Msg::Data(Bytes::from(chunk)))
            .map_err(|_| stopped())?;
        if let Some(p) = &self.progress
            && self.sent - self.reported >= 8 * 1024 * 1024
        {
            p.bytes(self.sent);
            self.reported = self.sent;
        }
        Ok(())
    }
}

impl Write for Parts {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Stage for Parts {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.send()?;
        self.tx.blocking_send(Msg::Done).map_err(|_| stopped())
    }
}

/// The writer stack: what is written is hashed, compressed, encrypted, hashed again and
/// queued for upload.
pub struct Pipeline {
    top: Box<dyn Stage>,
    plain: SharedHasher,
    stored: SharedHasher,
}

impl Write for Pipeline {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.top.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.top.flush()
    }
}

impl Pipeline {
    /// Ends the stream; returns the digests of the plaintext and of the stored bytes.
    pub fn finish(self) -> io::Result<(Digest, Digest)> {
        self.top.finish()?;
        Ok((self.plain.take().into(), self.stored.take().into()))
    }
}

/// An upload under way: write into `pipeline` (on a blocking thread), finish it, then
/// [`Uploading::complete`]. Dropping the pipeline unfinished aborts the upload.
pub struct Uploading {
    pub pipeline: Pipeline,
    task: tokio::task::JoinHandle<Result<(), StepError>>,
}

/// Starts a multipart upload of `key`.
pub fn start(
    store: &Arc<Store>,
    key: &str,
    transform: &Transform,
    progress: Option<Progress>,
    cancel: CancellationToken,
) -> Result<Uploading, StepError> {
    let (tx, rx) = mpsc::channel(QUEUE);
    let parts: Box<dyn Stage> = Box::new(Parts {
        buf: Vec::with_capacity(CHUNK),
        tx,
        progress,
        sent: 0,
        reported: 0,
    });
    let stored = SharedHasher::default();
    let mut top: Box<dyn Stage> = Box::new(Tap {
        inner: parts,
        slot: stored.clone(),
    });
    if let Some(r) = &transform.recipients {
        top = Box::new(
            r.encrypt(top)
                .map_err(|e| StepError::failed(e.to_string()))?,
        );
    }
    if let Some(f) = transform.compress {
        top = Box::new(Encoder::new(top, f, transform.level, 0)?);
    }
    let plain = SharedHasher::default();
    let top = Box::new(Tap {
        inner: top,
        slot: plain.clone(),
    });
    let task = tokio::spawn(upload(store.clone(), key.to_owned(), rx, cancel));
    Ok(Uploading {
        pipeline: Pipeline { top, plain, stored },
        task,
    })
}

impl Uploading {
    /// Splits off the pipeline, for the blocking thread that writes into it.
    pub fn split(self) -> (Pipeline, Finishing) {
        (self.pipeline, Finishing { task: self.task })
    }
}

/// The async half of an upload.
pub struct Finishing {
    task: tokio::task::JoinHandle<Result<(), StepError>>,
}

impl Finishing {
    /// Waits until the upload is completed (or aborted).
    pub async fn wait(self) -> Result<(), StepError> {
        self.task
            .await
            .map_err(|e| StepError::failed(format!("upload task: {e}")))?
    }
}

async fn upload(
    store: Arc<Store>,
    key: String,
    mut rx: mpsc::Receiver<Msg>,
    cancel: CancellationToken,
) -> Result<(), StepError> {
    let path = store.path(&key);
    let what = format!("uploading `{key}`");
    let mp = store
        .inner
        .put_multipart(&path)
        .await
        .map_err(|e| store.error(&what, &e))?;
    let mut writer = WriteMultipart::new_with_chunk_size(mp, PART_SIZE);
    loop {
        let msg = tokio::select! {
            () = cancel.cancelled() => None,
            m = rx.recv() => m,
        };
        let Some(msg) = msg else {
            // The writer failed or the step was cancelled: nothing under the final key.
            let _ = writer.abort().await;
            return Err(if cancel.is_cancelled() {
                StepError::Cancelled
            } else {
                StepError::failed(format!("{what}: the stream ended early; upload aborted"))
            });
        };
        match msg {
            Msg::Data(bytes) => {
                let ready = tokio::select! {
                    () = cancel.cancelled() => Err(None),
                    r = writer.wait_for_capacity(PARTS_IN_FLIGHT) => r.map_err(Some),
                };
                match ready {
                    Ok(()) => writer.put(bytes),
                    Err(e) => {
                        let _ = writer.abort().await;
                        return Err(e.map_or(StepError::Cancelled, |e| store.error(&what, &e)));
                    }
                }
            }
            Msg::Done => break,
        }
    }
    // Completing is short (the last parts); it is not cut by a cancel, which would leave
    // the upload neither complete nor aborted.
    writer
        .finish()
        .await
        .map(|_| ())
        .map_err(|e| store.error(&what, &e))
}

/// Describes what was uploaded, for the manifest.
pub struct Written {
    pub key: String,
    pub source: String,
    pub step: String,
    pub run_id: String,
    pub started: chrono::DateTime<chrono::Utc>,
    pub recipients: Vec<String>,
    pub compression: Option<Format>,
}

/// Writes the manifest once the object is complete.
pub async fn seal(
    store: &Store,
    runbook: &str,
    w: Written,
    plain: Digest,
    stored: Digest,
) -> Result<Manifest, StepError> {
    let m = Manifest {
        format_version: 1,
        key: w.key,
        stored,
        plaintext: plain,
        compression: w.compression,
        recipients: w.recipients,
        source: w.source,
        started: w.started,
        completed: chrono::Utc::now(),
        runbook: runbook.to_owned(),
        run_id: w.run_id,
        step: w.step,
    };
    manifest::write(store, &m).await?;
    Ok(m)
}
