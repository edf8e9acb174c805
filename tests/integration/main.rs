//! Integration tests around the real `rb` binary.

mod support;

mod bad_input;
mod invalid;
mod plan;
mod run;
mod schema;
