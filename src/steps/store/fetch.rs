//! Reading a backup back: the object streamed from the store into a synchronous reader,
//! decrypted and decompressed on the way, with both digests checked against the manifest.

use super::client::Store;
use super::manifest::{Digest, Manifest};
use crate::io::compress::{Decoder, Format};
use crate::io::digest::SharedHasher;
use crate::io::encrypt::Identity;
use crate::steps::cx::StepError;
use bytes::{Buf, Bytes};
use futures_util::StreamExt;
use object_store::ObjectStoreExt as _;
use std::io::{self, Read};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Chunks of the object queued between the download task and the reader.
const QUEUE: usize = 8;

/// Hashes what is read through it.
struct TapReader<R> {
    inner: R,
    slot: SharedHasher,
}

impl<R: Read> Read for TapReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.slot.update(&buf[..n]);
        Ok(n)
    }
}

/// The object's bytes as the download task receives them.
struct ChannelReader {
    rx: mpsc::Receiver<Result<Bytes, String>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

/// A download under way. [`Fetching::reader`] (on a blocking thread) gives the plaintext;
/// read it to the end, then [`Fetching::verify`].
pub struct Fetching {
    raw: ChannelReader,
    stored: SharedHasher,
    plain: SharedHasher,
    manifest: Manifest,
    key: String,
    describe: String,
}

/// Starts downloading `key`, whose manifest is `manifest`.
pub fn start(store: &Arc<Store>, key: &str, manifest: Manifest) -> Fetching {
    let (tx, rx) = mpsc::channel(QUEUE);
    let store2 = store.clone();
    let path = store.path(key);
    let what = format!("reading `{key}`");
    tokio::spawn(async move {
        let result = match store2.inner.get(&path).await {
            Ok(r) => {
                let mut stream = r.into_stream();
                while let Some(chunk) = stream.next().await {
                    let item = chunk.map_err(|e| store2.error(&what, &e));
                    let failed = item.is_err();
                    if tx.send(item.map_err(|e| message(&e))).await.is_err() || failed {
                        return;
                    }
                }
                return;
            }
            Err(e) => store2.error(&what, &e),
        };
        let _ = tx.send(Err(message(&result))).await;
    });
    Fetching {
        raw: ChannelReader {
            rx,
            current: Bytes::new(),
        },
        stored: SharedHasher::default(),
        plain: SharedHasher::default(),
        manifest,
        key: key.to_owned(),
        describe: store.describe(),
    }
}

fn message(e: &StepError) -> String {
    match e {
        StepError::Failed(m) => m.clone(),
        other => format!("{other:?}"),
    }
}

/// The reader side, moved to a blocking thread.
pub struct Opened {
    pub reader: Box<dyn Read + Send>,
    /// The reader gives the plaintext (not still compressed): its digest is checked too.
    plain_checked: bool,
    stored: SharedHasher,
    plain: SharedHasher,
    manifest: Manifest,
    key: String,
    describe: String,
}

impl Fetching {
    /// The manifest the object is checked against.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Builds the reader stack (blocking: reads the age header). `decompress`: the format to
    /// decompress (from the manifest unless told otherwise).
    pub fn open(
        self,
        identity: Option<&Identity>,
        decompress: Option<Format>,
    ) -> Result<Opened, String> {
        let stored: Box<dyn Read + Send> = Box::new(TapReader {
            inner: self.raw,
            slot: self.stored.clone(),
        });
        let recipients = &self.manifest.recipients;
        let decrypted: Box<dyn Read + Send> = match (identity, recipients.is_empty()) {
            (Some(id), _) => Box::new(
                id.decrypt(stored, recipients)
                    .map_err(|e| format!("`{}`: {e}", self.key))?,
            ),
            (None, true) => stored,
            (None, false) => {
                return Err(format!(
                    "`{}` is encrypted (to `{}`): give `decrypt: {{identity: SECRET}}`",
                    self.key,
                    recipients.join("`, `")
                ));
            }
        };
        let plain: Box<dyn Read + Send> = match decompress {
            Some(f) => Box::new(Decoder::new(decrypted, f).map_err(|e| e.to_string())?),
            None => decrypted,
        };
        let plain_checked = decompress.is_some() || self.manifest.compression.is_none();
        Ok(Opened {
            plain_checked,
            reader: Box::new(TapReader {
                inner: plain,
                slot: self.plain.clone(),
            }),
            stored: self.stored,
            plain: self.plain,
            manifest: self.manifest,
            key: self.key,
            describe: self.describe,
        })
    }
}

impl Opened {
    /// After the reader was read to its end: both digests match the manifest's, or the
    /// error says which does not.
    pub fn verify(mut self) -> Result<Digest, String> {
        // Whatever the consumer left unread still has to be checked.
        io::copy(&mut self.reader, &mut io::sink()).map_err(|e| format!("`{}`: {e}", self.key))?;
        drop(self.reader);
        let stored = Digest::from(self.stored.take());
        let plain = Digest::from(self.plain.take());
        let m = &self.manifest;
        if stored != m.stored {
            return Err(format!(
                "{}: `{}` does not match its manifest: {} bytes with sha256 {} read, the manifest says {} bytes with sha256 {} (corrupted or truncated; nothing was published)",
                self.describe,
                self.key,
                stored.bytes,
                stored.sha256,
                m.stored.bytes,
                m.stored.sha256
            ));
        }
        if self.plain_checked && plain != m.plaintext {
            return Err(format!(
                "{}: `{}` decodes to {} bytes with sha256 {}, the manifest says {} bytes with sha256 {}",
                self.describe,
                self.key,
                plain.bytes,
                plain.sha256,
                m.plaintext.bytes,
                m.plaintext.sha256
            ));
        }
        Ok(plain)
    }
}
