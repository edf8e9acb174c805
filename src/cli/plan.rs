//! `rb plan FILE`

use super::ParamArgs;
use super::diagnostics::prepare;
use crate::exit_code;
use crate::plan::build::Mode;
use crate::plan::{check, render};
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
    /// Add read-only probes: engines reachable, containers and images present, free disk.
    #[arg(long)]
    pub check: bool,
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
    if !args.check {
        print!("{out}");
        return exit_code::OK;
    }
    let probes = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(check::run(&p.runbook, &p.plan)),
        Err(e) => {
            eprintln!("error: cannot start the probes: {e}");
            return exit_code::STEP_FAILED;
        }
    };
    match args.format {
        Format::Text => print!("{out}{}", check::text(&probes)),
        Format::Markdown => print!("{out}{}", check::markdown(&probes)),
        Format::Json => {
            let mut doc: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
            doc["checks"] = serde_json::to_value(&probes).unwrap_or_default();
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        }
    }
    if probes.iter().all(|pr| pr.ok) {
        exit_code::OK
    } else {
        exit_code::STEP_FAILED
    }
}
