//! Runbooks: from YAML text to a validated, typed model.
//!
//! `node` reads YAML into a tree that remembers source spans, `de` decodes typed structs from
//! that tree, `load` assembles the [`model::Runbook`] collecting every decoding problem, and
//! `validate` adds the checks across steps (ids, needs, cycles, templates). Both return
//! [`diagnostic::Diagnostic`]s; nothing here touches the outside world.

pub mod de;
pub mod diagnostic;
pub mod load;
pub mod model;
pub mod node;
pub mod notify;
pub mod params;
pub mod validate;
