//! Whole-input properties of rb: the fuzz corpus replayed on stable, property tests of the
//! loader → validator → planner pipeline, and retention checked against the real `restic`.
//!
//! One test binary for the three (fewer to link after a change); `cargo test --test properties
//! proptest_runbooks::` runs one part.

#[path = "../support/mod.rs"]
mod support;

mod fuzz_corpus;
mod proptest_runbooks;
mod retention_restic;
