//! Every destructive step of a shipped runbook (removing containers or volumes, dropping a
//! database, deleting backups) has a gate among its ancestors, or is listed here with the
//! reason it runs without one.

use crate::plan::walk;
use crate::support::repo;
use serde_json::Value;

/// Destructive steps that run without a gate, and why (also in docs/manual-mapping.md).
const UNGATED: &[(&str, &str, &str)] = &[
    (
        "backup/database.yaml",
        "retention",
        "cron cannot answer a gate; the policy keeps the newest (just verified) backup, only \
         dated directories are candidates, and `-p prune=false` turns it off",
    ),
    (
        "backup/database.yaml",
        "offsite_retention",
        "cron, as `retention`; the newest (just uploaded) backup stays, objects without a          manifest are left alone, and `-p offsite_prune=false` turns it off",
    ),
    (
        "backup/config.yaml",
        "offsite_retention",
        "cron, as `backup/database.yaml`'s `offsite_retention`: the newest upload stays, \
         objects without a manifest are left alone, `-p offsite_prune=false` turns it off",
    ),
    (
        "backup/source.yaml",
        "offsite_retention",
        "cron, as `backup/database.yaml`'s `offsite_retention`: the newest upload stays, \
         objects without a manifest are left alone, `-p offsite_prune=false` turns it off",
    ),
    (
        "backup/userdata.yaml",
        "offsite_uploads_retention",
        "cron, as `backup/database.yaml`'s `offsite_retention`: the newest upload stays, \
         objects without a manifest are left alone, `-p offsite_prune=false` turns it off",
    ),
    (
        "backup/userdata.yaml",
        "offsite_rag_retention",
        "cron, as `backup/database.yaml`'s `offsite_retention`: the newest upload stays, \
         objects without a manifest are left alone, `-p offsite_prune=false` turns it off",
    ),
    (
        "backup/database.yaml",
        "offsite_globals_retention",
        "cron, as `offsite_retention` (the roles files under the same policy)",
    ),
    (
        "backup/fleet.yaml",
        "retention",
        "cron, as `backup/database.yaml`'s `retention`, per database of the fleet",
    ),
    (
        "backup/fleet.yaml",
        "offsite_retention",
        "cron, as `backup/database.yaml`'s `offsite_retention`, per database of the fleet",
    ),
    (
        "backup/fleet.yaml",
        "offsite_globals_retention",
        "cron, as `backup/database.yaml`'s `offsite_globals_retention`, per database",
    ),
    (
        "restore/pitr.yaml",
        "remove_helper",
        "the helper container this run created",
    ),
    (
        "restore/pitr.yaml",
        "remove_empty_volume",
        "the new data volume, only while it is empty (a refused recovery)",
    ),
    (
        "restore/pitr.yaml",
        "remove_failed_server",
        "the server container this run created, only when it never came up (its volume stays)",
    ),
    (
        "drills/demo.yaml",
        "start",
        "replaces the demo's own throwaway container",
    ),
    (
        "drills/demo.yaml",
        "cleanup",
        "the demo's own throwaway container",
    ),
    (
        "drills/backup-verification.yaml",
        "cleanup",
        "the scratch container this run created",
    ),
];

/// Removes containers or volumes, replaces a container, deletes backups, drops data.
fn destructive(step: &Value) -> bool {
    let argv = format!("{} {}", step["command"], step["shell"]).to_lowercase();
    match step["type"].as_str() {
        Some("container.remove") => true,
        Some("prune") => step["dry_run"] != true,
        Some("container.run") => step["replace"] == true,
        Some("exec" | "container.exec") => [
            "dropdb",
            "drop database",
            "drop table",
            "truncate",
            "rm -r",
            "rm -f",
        ]
        .iter()
        .any(|w| argv.contains(w)),
        _ => false,
    }
}

/// The ids of a step's ancestors: `needs`, else the step before it in the file.
fn ancestors(steps: &[Value], i: usize) -> Vec<usize> {
    let index = |id: &str| steps.iter().position(|s| s["id"] == id).unwrap();
    let mut todo = vec![i];
    let mut seen = vec![false; steps.len()];
    while let Some(j) = todo.pop() {
        let parents: Vec<usize> = match steps[j]["needs"].as_array() {
            Some(needs) => needs.iter().map(|n| index(n.as_str().unwrap())).collect(),
            None => j.checked_sub(1).into_iter().collect(),
        };
        for p in parents {
            if !seen[p] {
                seen[p] = true;
                todo.push(p);
            }
        }
    }
    (0..steps.len()).filter(|k| seen[*k]).collect()
}

#[test]
fn every_destructive_step_of_a_shipped_runbook_has_a_gate_before_it() {
    let mut ungated_seen = Vec::new();
    let mut missing = Vec::new();
    for path in walk(&repo().join("runbooks")) {
        let rel = path.strip_prefix(repo().join("runbooks")).unwrap();
        let rel = rel.display().to_string();
        let runbook: Value =
            serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let steps = runbook["steps"].as_array().unwrap();
        for (i, step) in steps.iter().enumerate() {
            if !destructive(step) {
                continue;
            }
            let id = step["id"].as_str().unwrap();
            let gated = ancestors(steps, i)
                .iter()
                .any(|a| steps[*a]["type"] == "gate");
            let excused = UNGATED.iter().any(|(f, s, _)| *f == rel && *s == id);
            if excused {
                ungated_seen.push((rel.clone(), id.to_owned()));
            } else if !gated {
                missing.push(format!("{rel}: step `{id}` ({})", step["type"]));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "destructive steps without a gate before them:\n{}",
        missing.join("\n")
    );
    // The exceptions are still there and still destructive: the list does not rot.
    for (f, s, _) in UNGATED {
        assert!(
            ungated_seen.iter().any(|(rf, rs)| rf == f && rs == s),
            "{f}: `{s}` is listed as ungated but is not a destructive step"
        );
    }
}

#[test]
fn the_gate_audit_sees_an_ungated_removal() {
    let steps: Vec<Value> = serde_json::from_str(
        r#"[{"id": "a", "type": "gate"}, {"id": "b", "type": "container.remove", "needs": []},
            {"id": "c", "type": "container.exec", "command": ["dropdb", "x"]}]"#,
    )
    .unwrap();
    assert!(destructive(&steps[1]) && destructive(&steps[2]));
    assert!(
        !ancestors(&steps, 1)
            .iter()
            .any(|a| steps[*a]["type"] == "gate")
    );
    assert_eq!(
        ancestors(&steps, 2),
        [1],
        "c needs b (the step before it), b nothing"
    );
}
