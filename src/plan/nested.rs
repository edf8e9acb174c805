//! Sub-runbooks as a plan shows them: the steps of each `runbook` step's file, loaded
//! statically (their configs are rendered only when the run gets there), so that `rb plan`,
//! `rb graph` and the checks of `--approve`, `--from` and `--only` know every id a run can
//! reach, `parent/child` ones included.

use super::build::PlanStep;
use schemars::JsonSchema;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// How deep sub-runbooks are followed (a runbook that includes itself stops here).
const MAX_DEPTH: usize = 8;

/// A step of a sub-runbook.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SubStep {
    /// The id the run journals it under: `parent/child` (`parent/child/grandchild` deeper).
    pub id: String,
    #[serde(rename = "type")]
    pub type_name: String,
    pub description: Option<String>,
    /// The steps it waits for, as full ids.
    pub needs: Vec<String>,
    pub always: bool,
    /// How many sub-runbooks deep it is (1: a step of a sub-runbook of the top runbook).
    pub depth: usize,
}

/// The steps a `runbook` step runs, when its file can be known before the run.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SubPlan {
    /// The file, as the step names it.
    pub file: String,
    /// Its steps in run order, nested ones after their parent; empty when it could not be read.
    pub steps: Vec<SubStep>,
    /// Why its steps are not shown (a file known only at run time, an invalid runbook).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// The sub-plan of a rendered `runbook` step of the runbook in `base_dir`, if it is one.
pub fn sub_plan(step: &PlanStep, base_dir: &Path) -> Option<SubPlan> {
    let key = step.kind.step_type().includes?;
    let file = step.config.get(key)?.as_str()?.to_owned();
    let mut seen = Vec::new();
    Some(expand(&file, base_dir, &step.id, 1, &mut seen))
}

fn expand(
    file: &str,
    base_dir: &Path,
    prefix: &str,
    depth: usize,
    seen: &mut Vec<PathBuf>,
) -> SubPlan {
    let mut plan = SubPlan {
        file: file.to_owned(),
        steps: Vec::new(),
        problem: None,
    };
    if file.contains('<') || file.contains("{{") {
        plan.problem = Some("the file is known only at run time".into());
        return plan;
    }
    let path = base_dir.join(file);
    let canonical = path.canonicalize().unwrap_or_else(|_| path.clone());
    if depth > MAX_DEPTH || seen.contains(&canonical) {
        plan.problem = Some("it includes itself (directly or not)".into());
        return plan;
    }
    let loaded = crate::runbook::load::load_file(&path);
    let mut diags = loaded.diagnostics;
    let Some(child) = loaded.runbook else {
        plan.problem = Some(format!("`{}` cannot be loaded", path.display()));
        return plan;
    };
    let dag = crate::runbook::validate::validate(&child, &mut diags);
    if !dag.cycles().is_empty() {
        plan.problem = Some(format!("`{}` has a cycle", path.display()));
        return plan;
    }
    seen.push(canonical);
    let child_dir = child.base_dir();
    for i in dag.order() {
        let s = &child.steps[i];
        let id = format!("{prefix}/{}", s.id());
        plan.steps.push(SubStep {
            id: id.clone(),
            type_name: s.common.type_name.clone(),
            description: s.common.description.clone(),
            needs: dag.needs[i]
                .iter()
                .map(|&j| format!("{prefix}/{}", child.steps[j].id()))
                .collect(),
            always: s.common.always,
            depth,
        });
        if let Some(key) = crate::steps::step_type(&s.common.type_name).and_then(|t| t.includes)
            && let Some(f) = s.config_node.get(key).and_then(|n| n.as_str())
        {
            let deeper = expand(f, &child_dir, &id, depth + 1, seen);
            plan.steps.extend(deeper.steps);
        }
    }
    seen.pop();
    plan
}

/// Give each `runbook` step its sub-plan; returns every gate id the run can ask for.
pub fn attach(steps: &mut [PlanStep], base_dir: &Path) -> Vec<String> {
    for s in steps.iter_mut() {
        s.sub = sub_plan(s, base_dir);
    }
    all_ids(steps)
        .into_iter()
        .filter_map(|(id, gate)| gate.then_some(id))
        .collect()
}

/// Every step id a run of the plan can reach, top-level and nested, with whether it is a gate.
pub fn all_ids(steps: &[PlanStep]) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for s in steps {
        out.push((s.id.clone(), is_gate(&s.type_name)));
        if let Some(sub) = &s.sub {
            out.extend(
                sub.steps
                    .iter()
                    .map(|c| (c.id.clone(), is_gate(&c.type_name))),
            );
        }
    }
    out
}

/// Whether steps of the type named `type_name` are gates.
pub fn is_gate(type_name: &str) -> bool {
    crate::steps::step_type(type_name).is_some_and(|t| t.gate)
}
