//! Plans: the DAG of a runbook's steps (`graph`), the rendered plan (`build`), and its
//! renderings for people and machines (`render`).

pub mod build;
pub mod check;
pub mod diff;
pub mod graph;
pub mod nested;
pub mod render;
