//! The writing end of a stream that a background task consumes and publishes only once told
//! the producer succeeded (a file renamed into place, an upload completed and its manifest
//! written). The file and object outputs of a process share it.

use std::sync::mpsc;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::task::{JoinError, JoinHandle};

pub struct Committed<P, R> {
    /// What the producer writes into.
    pub pipe: P,
    commit: mpsc::Sender<bool>,
    task: JoinHandle<R>,
}

impl<P: AsyncWrite + Unpin, R> Committed<P, R> {
    /// `task` reads what `pipe` carries and receives, on the other end of `commit`, whether
    /// to publish: it must publish only on `true`.
    pub fn new(pipe: P, commit: mpsc::Sender<bool>, task: JoinHandle<R>) -> Self {
        Self { pipe, commit, task }
    }

    /// Ends the stream and tells the task whether to publish (`ok`), then waits for it.
    pub async fn end(self, ok: bool) -> Result<R, JoinError> {
        let Self {
            mut pipe,
            commit,
            task,
        } = self;
        if ok {
            // Hands over what is still buffered; fails only when the task already ended,
            // whose own error is the one it returns.
            let _ = pipe.shutdown().await;
        }
        drop(pipe);
        let _ = commit.send(ok);
        task.await
    }
}
