//! `rb validate FILE...`

use super::diagnostics::{load_valid, print_diagnostics};
use crate::exit_code;
use crate::plan::build;
use crate::runbook::params::Overrides;
use crate::template::Mode;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Runbook files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Render the runbook as `rb plan` would (defaults, placeholders for the rest) and report
/// only the templates stopped by a limit (time, size, fuel): those fail whatever the params
/// are. Other render errors may depend on a param's value, which `rb plan` checks.
fn renders_within_limits(
    path: &Path,
    mut runbook: crate::runbook::model::Runbook,
    mut dag: crate::runbook::graph::Dag,
) -> bool {
    let Err(diags) = build::resolve_and_build(
        &mut runbook,
        &mut dag,
        &Overrides::default(),
        chrono::Utc::now(),
        Mode::Plan,
        "validate",
        std::collections::BTreeMap::new(),
    ) else {
        return true;
    };
    let limits: Vec<_> = diags
        .into_iter()
        .filter(|d| d.code == crate::runbook::context::RENDER_LIMIT)
        .collect();
    if limits.is_empty() {
        return true;
    }
    print_diagnostics(path, Some(&runbook.source), &limits);
    let n = limits.len();
    eprintln!(
        "{}: {n} error{}",
        path.display(),
        if n == 1 { "" } else { "s" }
    );
    false
}

pub fn run(args: &Args) -> u8 {
    let mut bad = 0;
    for f in &args.files {
        if load_valid(f).is_some_and(|(runbook, dag)| renders_within_limits(f, runbook, dag)) {
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
