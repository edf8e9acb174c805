//! Loading, validating and planning a file from the command line, with diagnostics printed.

use super::ParamArgs;
use crate::plan::build::{self, Plan};
use crate::runbook::diagnostic::{Diagnostic, FileDiagnostic};
use crate::runbook::graph::Dag;
use crate::runbook::load::{self, Loaded};
use crate::runbook::model::Runbook;
use crate::runbook::params::Overrides;
use crate::runbook::validate;
use crate::template::{Context, Mode};
use chrono::{DateTime, Utc};
use miette::NamedSource;
use std::collections::BTreeMap;
use std::path::Path;

/// Print diagnostics of a file to stderr, as miette renders them.
pub fn print_diagnostics(
    path: &Path,
    source: Option<&std::sync::Arc<String>>,
    diags: &[Diagnostic],
) {
    for d in diags {
        eprintln!(
            "{:?}",
            miette::Report::new(file_diagnostic(path, source, d))
        );
    }
}

/// Bind a diagnostic to its file.
pub fn file_diagnostic(
    path: &Path,
    source: Option<&std::sync::Arc<String>>,
    d: &Diagnostic,
) -> FileDiagnostic {
    let name = path.display().to_string();
    let mut diag = d.clone();
    // A label on a very long line (minified or generated YAML) would print the whole line:
    // name the place instead of showing it.
    let long_line = source.and_then(|s| {
        let (span, _) = d.labels.first()?;
        let start = s[..span.offset().min(s.len())]
            .rfind('\n')
            .map_or(0, |i| i + 1);
        let end = s[start..].find('\n').map_or(s.len(), |i| start + i);
        (end - start > 400).then(|| {
            let line = s[..start].matches('\n').count() + 1;
            format!("{name}:{line}:{}", span.offset() - start + 1)
        })
    });
    if let Some(place) = &long_line {
        diag.message = format!("{} (at {place})", diag.message);
    }
    FileDiagnostic {
        diag,
        source: source
            .filter(|_| long_line.is_none())
            .map(|s| NamedSource::new(name.clone(), s.clone()).with_language("yaml")),
        file: name,
    }
}

/// Load and validate; print diagnostics. `None` when the runbook has errors.
pub fn load_valid(path: &Path) -> Option<(Runbook, Dag)> {
    let Loaded {
        source,
        runbook,
        mut diagnostics,
        ..
    } = load::load_file(path);
    let dag = runbook
        .as_ref()
        .map(|r| validate::validate(r, &mut diagnostics));
    if !diagnostics.is_empty() {
        print_diagnostics(path, source.as_ref(), &diagnostics);
        let n = diagnostics.len();
        eprintln!(
            "{}: {n} error{}",
            path.display(),
            if n == 1 { "" } else { "s" }
        );
        return None;
    }
    Some((runbook?, dag?))
}

/// A runbook ready to plan or run.
pub struct Prepared {
    pub runbook: Runbook,
    pub dag: Dag,
    pub ctx: Context,
    pub plan: Plan,
}

/// Load, validate, resolve params and vars, and build the plan. Diagnostics are printed.
pub fn prepare(
    path: &Path,
    args: &ParamArgs,
    mode: Mode,
    run_id: &str,
    secrets: BTreeMap<String, String>,
) -> Option<Prepared> {
    let (mut runbook, mut dag) = load_valid(path)?;
    let mut diags = Vec::new();
    let mut overrides = Overrides::default();
    for f in &args.params_files {
        if let Err(e) = overrides.add_file(f) {
            diags.push(Diagnostic::new("rb::params-file", e));
        }
    }
    for p in &args.params {
        if let Err(e) = overrides.add_pair(p) {
            diags.push(Diagnostic::new("rb::param", e));
        }
    }
    let now = match args.now.as_deref().map(parse_now) {
        None => Utc::now(),
        Some(Ok(t)) => t,
        Some(Err(e)) => {
            diags.push(Diagnostic::new("rb::usage", e));
            Utc::now()
        }
    };
    let planned = build::resolve_and_build(
        &mut runbook,
        &mut dag,
        &overrides,
        now,
        mode,
        run_id,
        secrets,
    )
    .map_err(|mut e| diags.append(&mut e))
    .ok();
    if !diags.is_empty() {
        print_diagnostics(path, Some(&runbook.source), &diags);
        return None;
    }
    let (ctx, plan) = planned?;
    Some(Prepared {
        runbook,
        dag,
        ctx,
        plan,
    })
}

fn parse_now(s: &str) -> Result<DateTime<Utc>, String> {
    crate::template::parse_time(s)
        .ok_or_else(|| format!("`--now {s}`: expected a time such as 2026-01-31T02:00:00Z"))
}
