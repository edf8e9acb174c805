//! A small writer for exec streams: keeps a bounded tail (hashing while passing through is
//! [`crate::io::digest::HashingWriter`]'s job).

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;

/// An `AsyncWrite` sink that keeps only the last `cap` bytes written: the stderr tail of a
/// command that may print gigabytes, in bounded memory.
#[derive(Debug, Clone)]
pub struct TailBuffer {
    cap: usize,
    buf: VecDeque<u8>,
    total: u64,
}

impl TailBuffer {
    /// A buffer keeping the last `cap` bytes.
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            buf: VecDeque::with_capacity(cap.min(64 * 1024)),
            total: 0,
        }
    }

    /// Appends bytes, dropping the oldest beyond the capacity.
    pub fn push(&mut self, data: &[u8]) {
        self.total += data.len() as u64;
        let data = &data[data.len().saturating_sub(self.cap)..];
        let overflow = (self.buf.len() + data.len()).saturating_sub(self.cap);
        self.buf.drain(..overflow);
        self.buf.extend(data);
    }

    /// The kept bytes, oldest first.
    pub fn bytes(&self) -> Vec<u8> {
        self.buf.iter().copied().collect()
    }

    /// Whether older bytes were dropped.
    pub fn cut(&self) -> bool {
        self.total > self.buf.len() as u64
    }

    /// The kept bytes, lossily decoded; starts with `…` when older bytes were dropped.
    pub fn text(&self) -> String {
        let text = String::from_utf8_lossy(&self.bytes()).into_owned();
        if self.cut() {
            format!("…{text}")
        } else {
            text
        }
    }

    /// How many bytes were written in all.
    pub fn total(&self) -> u64 {
        self.total
    }
}

impl AsyncWrite for TailBuffer {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::TailBuffer;

    #[test]
    fn tail_keeps_last_bytes() {
        let mut t = TailBuffer::new(4);
        t.push(b"ab");
        assert_eq!(t.text(), "ab");
        t.push(b"cdef");
        assert_eq!(t.bytes(), b"cdef");
        t.push(b"0123456789");
        assert_eq!(t.bytes(), b"6789");
        assert_eq!(t.total(), 16);
        assert_eq!(t.text(), "…6789");
    }
}
