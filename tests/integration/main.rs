//! Integration tests around the real `rb` binary.

#[path = "../support/mod.rs"]
mod support;

mod bad_input;
mod completions;
mod containers;
mod fleets;
mod gates;
mod hostile;
mod hostile_containers;
mod hostile_input;
mod hostile_locks;
mod hostile_render;
mod hostile_state;
mod invalid;
mod notify;
mod plan;
mod plan_extra;
mod prune;
mod pull;
mod reports;
mod resume;
mod run;
mod scheduling;
mod schema;
mod store;
mod terminal;
mod transport;
