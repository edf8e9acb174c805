//! `rb plan --diff OLD NEW`: what changed between two versions of a runbook, in terms of
//! rendered steps (both planned with the same params and `now`).

use super::build::{Plan, PlanStep};
use super::render::fields;
use crate::duration::human_secs;
use serde::Serialize;
use std::fmt::Write as _;

/// One changed field of a step: name, old value, new value (`—` when absent).
#[derive(Debug, Clone, Serialize)]
pub struct FieldChange {
    pub field: String,
    pub old: String,
    pub new: String,
}

/// A step present in both versions whose rendered definition differs.
#[derive(Debug, Clone, Serialize)]
pub struct StepChange {
    pub id: String,
    pub changes: Vec<FieldChange>,
}

/// A step only in one version.
#[derive(Debug, Clone, Serialize)]
pub struct StepRef {
    pub id: String,
    #[serde(rename = "type")]
    pub type_name: String,
}

/// The critical path and budget of one version.
#[derive(Debug, Clone, Serialize)]
pub struct Budget {
    pub critical_path: Vec<String>,
    pub critical_path_seconds: f64,
    pub rto_seconds: Option<f64>,
    pub rto_margin_seconds: Option<f64>,
}

/// The difference of two plans.
#[derive(Debug, Clone, Serialize)]
pub struct PlanDiff {
    pub old_file: String,
    pub new_file: String,
    pub runbook: String,
    pub added: Vec<StepRef>,
    pub removed: Vec<StepRef>,
    pub changed: Vec<StepChange>,
    pub unchanged: usize,
    pub old: Budget,
    pub new: Budget,
}

const NONE: &str = "—";

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| NONE.to_owned(), |x| x.to_string())
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        NONE.to_owned()
    } else {
        v.join(", ")
    }
}

/// The fields of a step a diff compares, in a stable order.
fn facets(s: &PlanStep) -> Vec<(String, String)> {
    let mut out = vec![
        ("type".to_owned(), s.type_name.clone()),
        ("needs".to_owned(), list(&s.needs)),
        ("when".to_owned(), opt(s.when.as_ref())),
        ("timeout".to_owned(), opt(s.timeout)),
        ("estimate".to_owned(), opt(s.estimate)),
        ("retries".to_owned(), s.retries.to_string()),
        ("always".to_owned(), s.always.to_string()),
        (
            "continue_on_error".to_owned(),
            s.continue_on_error.to_string(),
        ),
    ];
    out.extend(
        fields(s)
            .into_iter()
            .map(|(k, v)| (format!("config.{k}"), v)),
    );
    out
}

fn step_changes(old: &PlanStep, new: &PlanStep) -> Vec<FieldChange> {
    let a = facets(old);
    let b = facets(new);
    let mut keys: Vec<&String> = a.iter().map(|(k, _)| k).collect();
    for (k, _) in &b {
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let get = |v: &[(String, String)], k: &str| {
        v.iter()
            .find(|(x, _)| x == k)
            .map_or_else(|| NONE.to_owned(), |(_, v)| v.clone())
    };
    keys.into_iter()
        .filter_map(|k| {
            let (o, n) = (get(&a, k), get(&b, k));
            (o != n).then(|| FieldChange {
                field: k.clone(),
                old: o,
                new: n,
            })
        })
        .collect()
}

fn budget(p: &Plan) -> Budget {
    Budget {
        critical_path: p.critical_path.clone(),
        critical_path_seconds: p.critical_path_seconds,
        rto_seconds: p.rto_seconds,
        rto_margin_seconds: p.rto_margin_seconds,
    }
}

/// Compare two plans step by step (by id).
pub fn diff(old: &Plan, new: &Plan) -> PlanDiff {
    let find = |p: &Plan, id: &str| p.steps.iter().find(|s| s.id == id).cloned();
    let reference = |s: &PlanStep| StepRef {
        id: s.id.clone(),
        type_name: s.type_name.clone(),
    };
    let added = new
        .steps
        .iter()
        .filter(|s| find(old, &s.id).is_none())
        .map(reference)
        .collect();
    let removed = old
        .steps
        .iter()
        .filter(|s| find(new, &s.id).is_none())
        .map(reference)
        .collect();
    let mut changed = Vec::new();
    let mut unchanged = 0;
    for s in &new.steps {
        if let Some(o) = find(old, &s.id) {
            let edits = step_changes(&o, s);
            if edits.is_empty() {
                unchanged += 1;
            } else {
                changed.push(StepChange {
                    id: s.id.clone(),
                    changes: edits,
                });
            }
        }
    }
    PlanDiff {
        old_file: old.file.clone(),
        new_file: new.file.clone(),
        runbook: new.runbook.clone(),
        added,
        removed,
        changed,
        unchanged,
        old: budget(old),
        new: budget(new),
    }
}

fn signed(delta: f64) -> String {
    if delta < 0.0 {
        format!("-{}", human_secs(-delta))
    } else {
        format!("+{}", human_secs(delta))
    }
}

fn path_line(b: &Budget) -> String {
    format!(
        "{} ({})",
        if b.critical_path.is_empty() {
            NONE.to_owned()
        } else {
            b.critical_path.join(" → ")
        },
        human_secs(b.critical_path_seconds)
    )
}

fn budget_word(b: &Budget) -> String {
    match (b.rto_seconds, b.rto_margin_seconds) {
        (Some(rto), Some(m)) if m >= 0.0 => {
            format!(
                "RTO {}, fits with {} to spare",
                human_secs(rto),
                human_secs(m)
            )
        }
        (Some(rto), Some(m)) => format!("RTO {}, OVER by {}", human_secs(rto), human_secs(-m)),
        _ => "no RTO".to_owned(),
    }
}

impl PlanDiff {
    /// Whether any step changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    fn delta(&self) -> String {
        signed(self.new.critical_path_seconds - self.old.critical_path_seconds)
    }
}

/// Plain text.
pub fn text(d: &PlanDiff) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "plan diff of `{}`", d.runbook);
    let _ = writeln!(o, "  old: {}", d.old_file);
    let _ = writeln!(o, "  new: {}", d.new_file);
    if d.is_empty() {
        let _ = writeln!(o, "\nno step changed ({} unchanged)", d.unchanged);
    }
    if !d.added.is_empty() {
        let _ = writeln!(o, "\nsteps added ({}):", d.added.len());
        for s in &d.added {
            let _ = writeln!(o, "  + {} ({})", s.id, s.type_name);
        }
    }
    if !d.removed.is_empty() {
        let _ = writeln!(o, "\nsteps removed ({}):", d.removed.len());
        for s in &d.removed {
            let _ = writeln!(o, "  - {} ({})", s.id, s.type_name);
        }
    }
    if !d.changed.is_empty() {
        let _ = writeln!(o, "\nsteps changed ({}):", d.changed.len());
        for s in &d.changed {
            let _ = writeln!(o, "  ~ {}", s.id);
            for c in &s.changes {
                let _ = writeln!(o, "      {}: {} → {}", c.field, c.old, c.new);
            }
        }
    }
    if !d.is_empty() {
        let _ = writeln!(o, "\nunchanged steps: {}", d.unchanged);
    }
    let _ = writeln!(o, "\ncritical path:");
    let _ = writeln!(o, "  old: {}", path_line(&d.old));
    let _ = writeln!(o, "  new: {} [{}]", path_line(&d.new), d.delta());
    let _ = writeln!(o, "RTO budget:");
    let _ = writeln!(o, "  old: {}", budget_word(&d.old));
    let _ = writeln!(o, "  new: {}", budget_word(&d.new));
    o
}

fn code(s: &str) -> String {
    if s == NONE {
        s.to_owned()
    } else {
        format!(
            "`{}`",
            s.replace('`', "'").replace('|', "\\|").replace('\n', " ")
        )
    }
}

/// Markdown for a pull request comment.
pub fn markdown(d: &PlanDiff) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "### Plan diff: `{}`\n", d.runbook);
    let _ = writeln!(
        o,
        "`{}` → `{}`: {} added, {} removed, {} changed, {} unchanged\n",
        d.old_file,
        d.new_file,
        d.added.len(),
        d.removed.len(),
        d.changed.len(),
        d.unchanged
    );
    if !d.is_empty() {
        let _ = writeln!(o, "| | step | field | old | new |\n|---|---|---|---|---|");
        for s in &d.added {
            let _ = writeln!(o, "| ➕ | `{}` | type | — | {} |", s.id, s.type_name);
        }
        for s in &d.removed {
            let _ = writeln!(o, "| ➖ | `{}` | type | {} | — |", s.id, s.type_name);
        }
        for s in &d.changed {
            for c in &s.changes {
                let _ = writeln!(
                    o,
                    "| ✏️ | `{}` | {} | {} | {} |",
                    s.id,
                    c.field,
                    code(&c.old),
                    code(&c.new)
                );
            }
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(
        o,
        "| | critical path | length | RTO budget |\n|---|---|---|---|"
    );
    let _ = writeln!(
        o,
        "| old | {} | {} | {} |",
        d.old.critical_path.join(" → "),
        human_secs(d.old.critical_path_seconds),
        budget_word(&d.old)
    );
    let _ = writeln!(
        o,
        "| new | {} | {} ({}) | {} |",
        d.new.critical_path.join(" → "),
        human_secs(d.new.critical_path_seconds),
        d.delta(),
        budget_word(&d.new)
    );
    o
}
