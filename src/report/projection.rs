//! The projected finish of a running run: the time elapsed so far plus what is left of the
//! critical path of the steps not yet finished, by their estimates (medians of past runs,
//! else the runbook's `estimate`). The terminal shows it against the RTO.

use crate::duration::human_secs;
use crate::event::{EventKind, PlannedStep, RunEvent};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Pending,
    Running(DateTime<Utc>),
    Ended,
}

/// The run as far as the events tell.
#[derive(Debug, Clone)]
pub struct Projection {
    start: DateTime<Utc>,
    rto: Option<f64>,
    steps: Vec<PlannedStep>,
    state: Vec<State>,
    index: HashMap<String, usize>,
    /// Each step's needs, as indices.
    needs: Vec<Vec<usize>>,
    /// When the projection or a step's start was last printed (plain output).
    last_shown: DateTime<Utc>,
}

impl Projection {
    /// From the run's start event; `None` for other events, or when there is nothing to
    /// project against (no RTO and no estimates).
    pub fn start(e: &RunEvent) -> Option<Self> {
        let EventKind::RunStarted {
            rto_seconds, steps, ..
        } = &e.kind
        else {
            return None;
        };
        if rto_seconds.is_none() && steps.iter().all(|s| s.estimate_seconds.is_none()) {
            return None;
        }
        let index: HashMap<String, usize> = steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.id.clone(), i))
            .collect();
        let needs = steps
            .iter()
            .map(|s| {
                s.needs
                    .iter()
                    .filter_map(|n| index.get(n).copied())
                    .collect()
            })
            .collect();
        Some(Self {
            start: e.at,
            last_shown: e.at,
            rto: *rto_seconds,
            state: vec![State::Pending; steps.len()],
            index,
            needs,
            steps: steps.clone(),
        })
    }

    /// Follow a step starting or ending.
    pub fn event(&mut self, e: &RunEvent) {
        let (step, state) = match &e.kind {
            EventKind::StepStarted { step, attempt, .. } => {
                let i = self.index.get(step).copied();
                // A retry keeps the first attempt's start: the estimate covers all attempts.
                if *attempt > 1 && i.is_some_and(|i| matches!(self.state[i], State::Running(_))) {
                    return;
                }
                (step, State::Running(e.at))
            }
            EventKind::StepFinished { step, .. } => (step, State::Ended),
            _ => return,
        };
        if let Some(&i) = self.index.get(step) {
            self.state[i] = state;
        }
        // A step starting gets a line of its own: the quiet time counts from there.
        if matches!(e.kind, EventKind::StepStarted { .. }) {
            self.last_shown = e.at;
        }
    }

    /// Count elapsed time from `start` (a resumed run: its first attempt's start).
    pub fn count_from(&mut self, start: DateTime<Utc>) {
        self.start = start;
    }

    /// The projection was printed at `at`.
    pub fn shown(&mut self, at: DateTime<Utc>) {
        self.last_shown = at;
    }

    /// The line to print when a step is running and nothing was printed for `every` seconds.
    pub fn due(&mut self, now: DateTime<Utc>, every: f64) -> Option<String> {
        let quiet_for = (now - self.last_shown).num_milliseconds() as f64 / 1000.0;
        let running = self.state.iter().any(|s| matches!(s, State::Running(_)));
        if !running || quiet_for < every {
            return None;
        }
        self.last_shown = now;
        Some(self.line(now))
    }

    /// Seconds from the start of the run to `now`.
    pub fn elapsed(&self, now: DateTime<Utc>) -> f64 {
        ((now - self.start).num_milliseconds() as f64 / 1000.0).max(0.0)
    }

    /// The longest chain, along `needs`, of what is left of the unfinished steps.
    pub fn remaining(&self, now: DateTime<Utc>) -> f64 {
        let mut memo: Vec<Option<f64>> = vec![None; self.steps.len()];
        (0..self.steps.len())
            .map(|i| self.finish(i, now, &mut memo, 0))
            .fold(0.0, f64::max)
    }

    fn finish(
        &self,
        i: usize,
        now: DateTime<Utc>,
        memo: &mut Vec<Option<f64>>,
        depth: usize,
    ) -> f64 {
        if let Some(f) = memo[i] {
            return f;
        }
        // The journal's graph has no cycles; the depth bound keeps a broken one finite.
        if depth > self.steps.len() {
            return 0.0;
        }
        let est = self.steps[i].estimate_seconds.unwrap_or(0.0);
        let own = match self.state[i] {
            State::Ended => 0.0,
            State::Pending => est,
            State::Running(since) => {
                (est - (now - since).num_milliseconds() as f64 / 1000.0).max(0.0)
            }
        };
        let before = self.needs[i]
            .iter()
            .map(|&j| self.finish(j, now, memo, depth + 1))
            .fold(0.0, f64::max);
        let f = before + own;
        memo[i] = Some(f);
        f
    }

    /// `elapsed 1m 02s of RTO 15m 00s, projected finish +3m 10s (11m 50s to spare)`.
    pub fn line(&self, now: DateTime<Utc>) -> String {
        let elapsed = self.elapsed(now);
        let projected = elapsed + self.remaining(now);
        let Some(rto) = self.rto else {
            return format!(
                "elapsed {}, projected finish +{}",
                human_secs(elapsed),
                human_secs(projected)
            );
        };
        let margin = rto - projected;
        let verdict = if margin >= 0.0 {
            format!("{} to spare", human_secs(margin))
        } else {
            format!("OVER the RTO by {}", human_secs(-margin))
        };
        format!(
            "elapsed {} of RTO {}, projected finish +{} ({verdict})",
            human_secs(elapsed),
            human_secs(rto),
            human_secs(projected)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn planned(id: &str, needs: &[&str], est: f64) -> PlannedStep {
        PlannedStep {
            id: id.into(),
            needs: needs.iter().map(|s| (*s).to_owned()).collect(),
            estimate_seconds: Some(est),
        }
    }

    fn ev(secs: i64, kind: EventKind) -> RunEvent {
        RunEvent { at: at(secs), kind }
    }

    fn started(steps: Vec<PlannedStep>) -> RunEvent {
        ev(
            0,
            EventKind::RunStarted {
                version: 1,
                run_id: "r".into(),
                runbook: "b".into(),
                file: "f".into(),
                file_sha256: String::new(),
                now: at(0),
                params: Map::new(),
                vars: Map::new(),
                secrets: Vec::new(),
                rto_seconds: Some(600.0),
                rpo_seconds: None,
                resumed: false,
                derived_from: None,
                pid: 1,
                steps,
                milestones: Vec::new(),
                restore_point: None,
            },
        )
    }

    fn step(secs: i64, id: &str, finished: bool) -> RunEvent {
        let step = id.to_owned();
        ev(
            secs,
            if finished {
                EventKind::StepFinished {
                    step,
                    outcome: crate::event::Outcome::Succeeded,
                    attempts: 1,
                    duration_seconds: 0.0,
                    fingerprint: String::new(),
                    outputs: Map::new(),
                    error: None,
                    reason: None,
                    reused: false,
                }
            } else {
                EventKind::StepStarted {
                    step,
                    type_name: "exec".into(),
                    attempt: 1,
                    fingerprint: String::new(),
                    note: None,
                }
            },
        )
    }

    #[test]
    fn remaining_follows_the_longest_unfinished_chain() {
        // a(60) → b(100) → d(10); a → c(300) → d: the chain through c is the critical one.
        let steps = vec![
            planned("a", &[], 60.0),
            planned("b", &["a"], 100.0),
            planned("c", &["a"], 300.0),
            planned("d", &["b", "c"], 10.0),
        ];
        let mut p = Projection::start(&started(steps)).unwrap();
        assert!((p.remaining(at(0)) - 370.0).abs() < 1e-9);
        p.event(&step(0, "a", false));
        p.event(&step(90, "a", true));
        p.event(&step(90, "b", false));
        p.event(&step(90, "c", false));
        // 90 s in: c has 300 - 10 left at t=100, then d.
        assert!((p.remaining(at(100)) - 300.0).abs() < 1e-9);
        assert_eq!(
            p.line(at(100)),
            "elapsed 1m 40s of RTO 10m 00s, projected finish +6m 40s (3m 20s to spare)"
        );
        // A step over its estimate counts as about to end.
        p.event(&step(500, "b", true));
        assert!((p.remaining(at(500)) - 10.0).abs() < 1e-9);
        assert!(
            p.line(at(700)).contains("OVER the RTO by"),
            "{}",
            p.line(at(700))
        );
    }

    #[test]
    fn without_a_terminal_a_line_every_so_often_while_a_step_runs() {
        let mut p = Projection::start(&started(vec![planned("a", &[], 600.0)])).unwrap();
        assert_eq!(p.due(at(120), 60.0), None, "nothing runs yet");
        p.event(&step(120, "a", false));
        assert!(p.due(at(170), 60.0).is_none());
        let line = p.due(at(180), 60.0).expect("a minute without a line");
        assert!(line.starts_with("elapsed 3m 00s of RTO 10m 00s"), "{line}");
        assert_eq!(p.due(at(200), 60.0), None, "just printed");
        p.shown(at(230));
        assert_eq!(p.due(at(260), 60.0), None, "printed at a step end");
        assert!(p.due(at(290), 60.0).is_some());
        p.event(&step(300, "a", true));
        assert_eq!(p.due(at(900), 60.0), None, "nothing runs any more");
    }

    #[test]
    fn nothing_to_project_without_rto_or_estimates() {
        let mut e = started(vec![PlannedStep {
            id: "a".into(),
            needs: Vec::new(),
            estimate_seconds: None,
        }]);
        if let EventKind::RunStarted { rto_seconds, .. } = &mut e.kind {
            *rto_seconds = None;
        }
        assert!(Projection::start(&e).is_none());
    }
}
