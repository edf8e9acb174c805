//! `rb plan FILE`

use super::ParamArgs;
use super::diagnostics::prepare;
use crate::exit_code;
use crate::plan::build::Mode;
use crate::plan::render;
use std::path::PathBuf;

/// Plan formats.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Text,
    Markdown,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The runbook.
    pub file: PathBuf,
    #[command(flatten)]
    pub params: ParamArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
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
    let out = match args.format {
        Format::Text => render::text(&p.plan),
        Format::Markdown => render::markdown(&p.plan),
        Format::Json => render::json(&p.plan),
    };
    print!("{out}");
    exit_code::OK
}
