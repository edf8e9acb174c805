//! `rb::io` against the real tools it must agree with (GNU tar, coreutils `sha256sum`, `gzip`,
//! `pigz`, `zstd`): archives, atomic publish, checksum files, compression.
//!
//! One test binary for the four parts (fewer to link after a change); `cargo test --test io
//! archive::` runs one part.

#[path = "../support/mod.rs"]
mod support;

mod archive;
mod atomic;
mod checksum;
mod compress;
