//! rb — a declarative runbook interpreter.
//!
//! The pipeline, one module a stage:
//!
//! ```text
//! load (YAML → spanned node tree → typed model)   runbook::load
//!   → validate (pure, collects every diagnostic)   runbook::validate
//!   → plan (petgraph DAG, order, critical path)    plan
//!   → execute (emits events, never prints)         exec
//!   → sinks: terminal, journal, reports, metrics   report
//! ```
//!
//! `cli` is the only module that wires the others together. The graph of the modules is
//! acyclic (`module_graph` tests it).

pub mod cli;
pub mod docker;
pub mod duration;
pub mod event;
pub mod exec;
pub mod exit_code;
pub mod fuzzing;
pub mod io;
pub mod journal;
#[cfg(test)]
mod module_graph;
pub mod plan;
pub mod report;
pub mod retention;
pub mod runbook;
pub mod schema;
pub mod steps;
pub mod template;
pub mod yaml;
