//! The steps `rb run` names on its command line exist, checked before anything runs.

use super::super::Prepared;

/// `--approve`, `--from` and `--only` name steps the run can reach (sub-runbooks' included);
/// `--approve` names a gate. Checked before anything runs.
pub(super) fn check_ids(
    from: Option<&str>,
    only: Option<&str>,
    approve: &[String],
    p: &Prepared,
) -> Result<(), String> {
    let all = crate::plan::nested::all_ids(&p.plan.steps);
    let known = |id: &str| all.iter().any(|(k, _)| k == id);
    let name = &p.runbook.name;
    for id in from.into_iter().chain(only) {
        if !known(id) {
            let ids: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
            return Err(format!(
                "no step `{id}` in `{name}`; {}",
                crate::runbook::diagnostic::suggest(id, &ids, "step ids")
            ));
        }
    }
    for id in approve {
        if all.iter().any(|(k, gate)| k == id && *gate) {
            continue;
        }
        let gates = if p.plan.gates.is_empty() {
            "it has no gates".to_owned()
        } else {
            format!(
                "its gates: {}",
                p.plan
                    .gates
                    .iter()
                    .map(|g| format!("`{g}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let what = if known(id) {
            "is not a gate"
        } else {
            "is not a step"
        };
        return Err(format!(
            "`--approve {id}`: `{id}` {what} of `{name}`; {gates}"
        ));
    }
    Ok(())
}
