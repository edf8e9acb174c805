//! YAML with source spans: `node` reads a document into a tree whose every node knows where
//! it came from, `de` decodes typed structs from that tree (serde derive), errors keeping the
//! span. The runbook loader and every step type's configuration decode through it.

pub mod de;
pub mod node;
