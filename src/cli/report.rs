//! `rb report RUN_ID`: render a past run's report again from its journal.

use crate::exec::state;
use crate::exit_code;
use crate::journal;
use crate::report::{self, Format, model};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run (`latest` for the newest run in the state directory).
    #[arg(required_unless_present = "schema")]
    pub run_id: Option<String>,
    /// With `latest`: the newest run of this runbook (its `name`).
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// State directory (runs, journals, locks).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Print the JSON Schema of the JSON report instead.
    #[arg(long, conflicts_with_all = ["run_id", "format"])]
    pub schema: bool,
}

pub fn run(args: &Args) -> u8 {
    if args.schema {
        outln!(
            "{}",
            serde_json::to_string_pretty(&model::schema()).unwrap_or_default()
        );
        return exit_code::OK;
    }
    let state = state::state_dir(args.state_dir.as_deref());
    let wanted = args.run_id.as_deref().unwrap_or("latest");
    if args.name.is_some() && wanted != "latest" {
        eprintln!("error: a runbook name goes with `latest` (`rb report latest NAME`)");
        return exit_code::INVALID;
    }
    let runs = match journal::runs(&state, args.name.as_deref()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot read the runs in `{}`: {e}", state.display());
            return exit_code::INVALID;
        }
    };
    let found = if wanted == "latest" {
        runs.last()
    } else {
        runs.iter().find(|r| r.run_id == wanted)
    };
    let Some(record) = found else {
        match &args.name {
            Some(n) => eprintln!("error: no run of `{n}` in `{}`", state.display()),
            None => eprintln!("error: no run `{wanted}` in `{}`", state.display()),
        }
        let ids: Vec<&str> = runs
            .iter()
            .rev()
            .take(5)
            .map(|r| r.run_id.as_str())
            .collect();
        if !ids.is_empty() {
            eprintln!("newest runs: {}", ids.join(", "));
        }
        return exit_code::INVALID;
    };
    let Some(rep) = model::build(&record.events) else {
        eprintln!(
            "error: the journal of run `{}` has no start event",
            record.run_id
        );
        return exit_code::INVALID;
    };
    let history: Vec<model::Report> = if matches!(args.format, Format::Html | Format::Prometheus) {
        runs.iter()
            .take_while(|r| r.run_id != rep.run_id)
            .filter(|r| r.runbook == rep.runbook)
            .filter_map(|r| model::build(&r.events))
            .collect()
    } else {
        Vec::new()
    };
    out!("{}", report::render(&rep, args.format, &history));
    exit_code::OK
}
