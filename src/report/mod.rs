//! Sinks of run events: the terminal, and the report that `report.json` (and `rb report`)
//! is made of.

pub mod model;
pub mod terminal;
