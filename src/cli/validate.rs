//! `rb validate FILE...`

use super::diagnostics::load_valid;
use crate::exit_code;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Runbook files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

pub fn run(args: &Args) -> u8 {
    let mut bad = 0;
    for f in &args.files {
        if load_valid(f).is_some() {
            outln!("{}: ok", f.display());
        } else {
            bad += 1;
        }
    }
    if bad == 0 {
        exit_code::OK
    } else {
        exit_code::INVALID
    }
}
