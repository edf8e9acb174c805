//! `rb schema`

use crate::exit_code;

/// Which schema.
#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
pub enum Which {
    /// The runbook format.
    #[default]
    Runbook,
    /// The JSON document of `rb plan --format json`.
    Plan,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which schema to print.
    #[arg(value_enum, default_value = "runbook")]
    pub which: Which,
}

pub fn run(args: &Args) -> u8 {
    match args.which {
        Which::Runbook => outln!("{}", crate::schema::json()),
        Which::Plan => out!("{}", crate::plan::render::json_schema()),
    }
    exit_code::OK
}
