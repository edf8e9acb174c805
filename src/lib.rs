//! rb — a declarative runbook interpreter.
//!
//! The pipeline, one module a stage:
//!
//! ```text
//! load (YAML → spanned node tree → typed raw model)   runbook::load
//!   → validate (pure, collects every diagnostic)       runbook::validate
//!   → plan (petgraph DAG, order, critical path)        plan
//!   → execute (emits events, never prints)             exec
//!   → sinks: terminal, journal, reports, metrics       report
//! ```

pub mod docker;
pub mod io;
pub mod retention;
