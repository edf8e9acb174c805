//! Streaming file I/O: atomic publish, hashing and compression while copying, archives.
//!
//! Everything here is synchronous `std::io`: async callers run it in
//! `tokio::task::spawn_blocking`, or drive the `Write`/`Read` adapters ([`sink::FileSink`],
//! [`compress::open_input`]) chunk by chunk from a blocking task. Memory stays bounded: files
//! are streamed through fixed buffers, never read whole.
//!
//! The layers stack as writers, outermost first:
//!
//! ```text
//! tar::Builder → compress::Encoder → digest::HashingWriter → atomic::AtomicFile
//! ```
//!
//! so the digest is always that of the bytes that land on disk, computed in the same pass,
//! and nothing appears under a final name until [`atomic::AtomicFile::commit`] has fsynced and
//! renamed it.

pub mod archive;
pub mod atomic;
pub mod bounded;
pub mod checksum;
pub mod commit;
pub mod compress;
pub mod digest;
pub mod encrypt;
pub mod error;
pub mod sink;

pub use error::{Error, Result};
