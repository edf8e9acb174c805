//! What a run starts from, read from the journals: nothing, an unfinished run it continues
//! (`--resume`), or a finished run whose steps it takes (`--from`/`--only` after it
//! finished: a new run); and the journal's first line, `RunStarted`.

use super::{RunRecord, runs};
use crate::event::{EventKind, PlannedMilestone, PlannedStep, RunEvent};
use crate::exec::executor::Resume;
use crate::plan::build::Plan;
use crate::runbook::graph::Dag;
use crate::runbook::model::Runbook;
use crate::template::Context;
use sha2::{Digest, Sha256};
use std::path::Path;

/// What a run starts from.
#[derive(Debug)]
pub enum Basis {
    Fresh,
    Resume(RunRecord),
    Derived(RunRecord),
}

/// What the command line asks to start from.
#[derive(Debug, Clone, Copy, Default)]
pub struct Wanted<'a> {
    /// `--resume` (empty: the newest unfinished run), `--resume RUN_ID`, or not given.
    pub resume: Option<&'a str>,
    /// `--from STEP` or `--only STEP` was given.
    pub selecting: bool,
}

impl Basis {
    /// Find what the run of runbook `name` starts from. A finished run is never continued:
    /// its journal and reports are the evidence of what happened.
    pub fn find(wanted: Wanted<'_>, state: &Path, name: &str) -> Result<Self, String> {
        let selecting = wanted.selecting;
        if wanted.resume.is_none() && !selecting {
            return Ok(Self::Fresh);
        }
        let runs = runs(state, Some(name)).map_err(|e| format!("cannot read runs: {e}"))?;
        let newest_success = || runs.iter().rev().find(|r| r.succeeded()).cloned();
        match wanted.resume {
            Some("") => {
                if let Some(r) = runs.iter().rev().find(|r| !r.succeeded()) {
                    return Ok(Self::Resume(r.clone()));
                }
                match newest_success() {
                    Some(r) if selecting => {
                        eprintln!(
                            "run `{}` of `{name}` finished and stays as it is; a new run takes its steps",
                            r.run_id
                        );
                        Ok(Self::Derived(r))
                    }
                    _ => Err(format!(
                        "no unfinished run of `{name}` to resume in `{}`",
                        state.display()
                    )),
                }
            }
            Some(wanted) => {
                let r = runs.iter().find(|r| r.run_id == wanted).ok_or_else(|| {
                    format!("no run `{wanted}` of `{name}` in `{}`", state.display())
                })?;
                if r.succeeded() {
                    return Err(format!(
                        "run `{wanted}` of `{name}` already succeeded and is kept as it is; to run \
                         steps again in a new run that takes the others from it, give `--from STEP` \
                         or `--only STEP` without `--resume`"
                    ));
                }
                Ok(Self::Resume(r.clone()))
            }
            None => Ok(newest_success().map_or(Self::Fresh, Self::Derived)),
        }
    }

    /// The run it continues or derives from.
    pub fn record(&self) -> Option<&RunRecord> {
        match self {
            Self::Fresh => None,
            Self::Resume(r) | Self::Derived(r) => Some(r),
        }
    }

    /// The unfinished run it continues.
    pub fn resumed(&self) -> Option<&RunRecord> {
        match self {
            Self::Resume(r) => Some(r),
            _ => None,
        }
    }

    /// The finished run a new run derives from.
    pub fn derived_from(&self) -> Option<&RunRecord> {
        match self {
            Self::Derived(r) => Some(r),
            _ => None,
        }
    }

    /// The id of the run: the continued run's, else a new one.
    pub fn run_id(&self) -> String {
        self.resumed().map_or_else(
            || crate::exec::state::new_run_id(chrono::Utc::now()),
            |r| r.run_id.clone(),
        )
    }

    /// The events of the attempts before this one (a resumed run's), oldest first.
    pub fn earlier_events(&self) -> Vec<RunEvent> {
        self.resumed().map(|r| r.events.clone()).unwrap_or_default()
    }

    /// On resume, `now` and the params come from the journal so names stay the same: those
    /// of the newest attempt (`NAME=VALUE`), so that a value corrected with `-p` on one
    /// `--resume` stays for the next. The caller puts the params given now after them.
    pub fn earlier_params(&self) -> Option<(String, Vec<String>)> {
        let EventKind::RunStarted { now, params, .. } = &self.resumed()?.last_started()?.kind
        else {
            return None;
        };
        let pairs = params
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                )
            })
            .collect();
        Some((now.to_rfc3339(), pairs))
    }

    /// What the run takes from the run it continues or derives from, and what it selects.
    pub fn resume(&self, from: Option<&str>, only: Option<&str>) -> Resume {
        let mut resume = self.record().map(RunRecord::earlier).unwrap_or_default();
        resume.from = from.iter().map(|&s| s.to_owned()).collect();
        resume.only = only.map(|o| vec![o.to_owned()]);
        resume
    }

    /// `--only` in a new run: the selected step's needs must come from the run it derives
    /// from. `earlier` is [`Basis::resume`]'s.
    pub fn check_only_needs(
        &self,
        runbook: &Runbook,
        dag: &Dag,
        earlier: &Resume,
        only: &str,
    ) -> Result<(), String> {
        if matches!(self, Self::Resume(_)) {
            return Ok(()); // the unfinished run's own steps: the executor re-runs what it must
        }
        let Some(i) = runbook.steps.iter().position(|s| s.id() == only) else {
            return Ok(()); // a sub-runbook's step: its parent runs, the sub-runbook checks the rest
        };
        let missing: Vec<String> = dag.needs[i]
            .iter()
            .map(|&j| runbook.steps[j].id().to_owned())
            .filter(|id| !earlier.done.contains_key(id))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = missing.iter().map(|m| format!("`{m}`")).collect();
        Err(match self.record() {
            Some(r) => format!(
                "`--only {only}` needs {}, which did not succeed in run `{}`; run them too (`--from`) or the whole runbook",
                list.join(", "),
                r.run_id
            ),
            None => format!(
                "`--only {only}` needs {}, and no earlier successful run of `{}` has them; run the whole runbook first",
                list.join(", "),
                runbook.name
            ),
        })
    }
}

/// The journal's first line for an attempt: what runs, with which params, vars (masked),
/// secrets (named only), objectives and step estimates.
pub fn started(
    file: &Path,
    run_id: &str,
    basis: &Basis,
    runbook: &Runbook,
    ctx: &Context,
    plan: &Plan,
) -> RunEvent {
    let masker = ctx.masker();
    RunEvent::now(EventKind::RunStarted {
        version: crate::event::JOURNAL_VERSION,
        run_id: run_id.to_owned(),
        runbook: runbook.name.clone(),
        file: file.display().to_string(),
        file_sha256: sha256_file(file),
        now: ctx.now,
        params: ctx.params.clone().into_iter().collect(),
        vars: ctx
            .vars
            .iter()
            .map(|(k, v)| (k.clone(), masker.mask(v).into()))
            .collect(),
        secrets: ctx.secrets.keys().cloned().collect(),
        rto_seconds: plan.rto_seconds,
        rpo_seconds: plan.rpo_seconds,
        resumed: basis.resumed().is_some(),
        derived_from: basis.derived_from().map(|r| r.run_id.clone()),
        pid: std::process::id(),
        steps: planned_steps(plan),
        milestones: runbook
            .objectives
            .milestones
            .iter()
            .map(|m| PlannedMilestone {
                name: m.name.clone(),
                rto_seconds: m.rto.secs(),
                steps: m.steps.clone(),
            })
            .collect(),
        restore_point: runbook.objectives.restore_point.clone(),
    })
}

/// Each step with its needs and estimate (median of past runs, else `estimate`).
fn planned_steps(plan: &Plan) -> Vec<PlannedStep> {
    plan.steps
        .iter()
        .map(|s| PlannedStep {
            id: s.id.clone(),
            needs: s.needs.clone(),
            estimate_seconds: s
                .history
                .map(|h| h.median_seconds)
                .or(s.estimate.map(crate::duration::Dur::secs)),
        })
        .collect()
}

/// The runbook file's SHA-256 (empty when it cannot be read).
fn sha256_file(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| hex::encode(Sha256::digest(&b)))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::{Basis, Wanted};
    use crate::event::{EventKind, RunEvent, RunOutcome};
    use crate::journal::Journal;
    use chrono::{TimeZone, Utc};
    use std::path::Path;

    /// A run of runbook `b` journaled in `state`, started at `secs`, ended with `outcome`
    /// (or unfinished).
    fn journal_run(state: &Path, id: &str, secs: i64, outcome: Option<RunOutcome>) {
        let at = Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap();
        let mut j = Journal::open(&state.join("runs").join(id)).unwrap();
        let mut params = serde_json::Map::new();
        params.insert("db".into(), "app".into());
        j.append(&RunEvent {
            at,
            kind: EventKind::RunStarted {
                version: 1,
                run_id: id.into(),
                runbook: "b".into(),
                file: "b.yaml".into(),
                file_sha256: String::new(),
                now: at,
                params,
                vars: serde_json::Map::new(),
                secrets: Vec::new(),
                rto_seconds: None,
                rpo_seconds: None,
                resumed: false,
                derived_from: None,
                pid: 1,
                steps: Vec::new(),
                milestones: Vec::new(),
                restore_point: None,
            },
        })
        .unwrap();
        if let Some(outcome) = outcome {
            j.append(&RunEvent {
                at,
                kind: EventKind::RunFinished {
                    outcome,
                    duration_seconds: 1.0,
                    gate_wait_seconds: 0.0,
                },
            })
            .unwrap();
        }
    }

    fn find(state: &Path, resume: Option<&str>, selecting: bool) -> Result<Basis, String> {
        Basis::find(Wanted { resume, selecting }, state, "b")
    }

    fn id(b: &Basis) -> (&'static str, Option<&str>) {
        match b {
            Basis::Fresh => ("fresh", None),
            Basis::Resume(r) => ("resume", Some(&r.run_id)),
            Basis::Derived(r) => ("derived", Some(&r.run_id)),
        }
    }

    #[test]
    fn a_run_resumes_the_newest_unfinished_run_and_never_a_finished_one() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path();
        assert_eq!(id(&find(state, None, false).unwrap()), ("fresh", None));
        let none = find(state, Some(""), false).unwrap_err();
        assert!(
            none.contains("no unfinished run of `b` to resume"),
            "{none}"
        );
        journal_run(state, "r1", 0, Some(RunOutcome::Failed));
        journal_run(state, "r2", 10, Some(RunOutcome::Succeeded));
        journal_run(state, "r3", 20, None);
        let b = find(state, Some(""), false).unwrap();
        assert_eq!(id(&b), ("resume", Some("r3")));
        assert_eq!(b.run_id(), "r3");
        let (now, params) = b.earlier_params().unwrap();
        assert!(now.starts_with("2023-11-14T22:13:40"), "{now}");
        assert_eq!(params, ["db=app"]);
        assert_eq!(
            id(&find(state, Some("r1"), false).unwrap()),
            ("resume", Some("r1"))
        );
        let kept = find(state, Some("r2"), false).unwrap_err();
        assert!(
            kept.contains("already succeeded and is kept as it is"),
            "{kept}"
        );
        let missing = find(state, Some("r9"), false).unwrap_err();
        assert!(missing.contains("no run `r9` of `b`"), "{missing}");
        // `--from`/`--only` in a new run: the steps of the newest successful run.
        let derived = find(state, None, true).unwrap();
        assert_eq!(id(&derived), ("derived", Some("r2")));
        assert!(derived.resumed().is_none() && derived.earlier_params().is_none());
        assert_ne!(derived.run_id(), "r2");
    }
}
