//! Tests against the real Docker engines of `tests/env/up` (and real `PostgreSQL` servers in
//! them): `rb::docker` itself, faults injected into real runs, and the crash torture.
//!
//! One test binary for the three (fewer to link after a change); `cargo test --test engine
//! faults::` runs one part.

#[path = "../pg/mod.rs"]
mod pg;
#[path = "../support/mod.rs"]
mod support;

mod docker_engine;
mod faults;
mod torture;
