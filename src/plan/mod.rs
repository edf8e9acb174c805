//! Plans: the rendered plan of a validated runbook and its step graph ([`crate::runbook::graph`]):
//! `build`, the probes of `--check`, and its renderings for people and machines (`render`).

pub mod build;
pub mod check;
pub mod diff;
pub mod fleet;
pub mod nested;
pub mod render;
