//! Runbooks: from YAML text to a validated, typed model.
//!
//! The YAML is read with spans by [`crate::yaml`]; `load` assembles the [`model::Runbook`]
//! collecting every decoding problem, and `validate` adds the checks across steps (ids, needs,
//! cycles, templates) and resolves `needs` into the step graph (`graph`). Both return
//! [`diagnostic::Diagnostic`]s; nothing here touches the outside world.

pub mod chains;
pub mod context;
pub mod diagnostic;
pub mod for_each;
pub mod graph;
pub mod load;
pub mod model;
pub mod notify;
pub mod params;
pub mod stores;
pub mod validate;
