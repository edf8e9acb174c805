//! Object stores (`stores:`): S3 and S3-compatible services, GCS, Azure and local
//! directories through the `object_store` crate, with every backup streamed through
//! compress → encrypt → hash → multipart upload in one pass, and a manifest written last.
//!
//! ```text
//! source ─ Tap(plaintext sha256) ─ Encoder ─ age ─ Tap(stored sha256) ─ Parts ─▶ multipart upload
//! ```
//!
//! The writing side is synchronous `std::io` (on a blocking thread, like `io`); full parts
//! cross to an async task that keeps at most [`upload::PARTS_IN_FLIGHT`] parts in flight.
//! A key whose manifest (`KEY.manifest.json`) is missing is an incomplete backup.

pub mod client;
pub mod fetch;
pub mod manifest;
pub mod probe;
pub mod prune;
pub mod spec;
pub mod stream;
pub mod upload;

pub use client::{Store, Stores};
pub use spec::{Address, StoreSpec, StoreUrl};
