//! `rb graph FILE`

use super::ParamArgs;
use super::diagnostics::prepare;
use crate::exit_code;
use crate::plan::render;
use crate::template::Mode;
use std::path::PathBuf;

/// Graph formats.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Dot,
    Mermaid,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The runbook.
    pub file: PathBuf,
    #[command(flatten)]
    pub params: ParamArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "dot")]
    pub format: Format,
}

pub fn run(args: &Args) -> u8 {
    let Some(p) = prepare(
        &args.file,
        &args.params,
        Mode::Plan,
        "<run.id>",
        std::collections::BTreeMap::default(),
    ) else {
        return exit_code::INVALID;
    };
    out!(
        "{}",
        match args.format {
            Format::Dot => render::dot(&p.plan),
            Format::Mermaid => render::mermaid(&p.plan),
        }
    );
    exit_code::OK
}
