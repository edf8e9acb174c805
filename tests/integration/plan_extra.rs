//! `rb plan --diff OLD NEW`, and estimates from the history of past runs.

use crate::support::{Ran, Test};
use serde_json::{Value, json};

const NOW: &str = "2026-11-26T02:00:00Z";

const V1: &str = r#"
version: 1
name: nightly
objectives:
  rto: 5m
params:
  db: { type: string, default: app }
steps:
  - id: prepare
    type: exec
    command: [mkdir, -p, "/backup/{{ params.db }}"]
    estimate: 10s
  - id: dump
    type: exec
    needs: [prepare]
    command: [pg_dump, -Fc, "{{ params.db }}"]
    estimate: 2m
    timeout: 10m
  - id: pause
    type: sleep
    needs: [prepare]
    duration: 1s
  - id: notify
    type: exec
    needs: [dump]
    command: [echo, done]
"#;

const V2: &str = r#"
version: 1
name: nightly
objectives:
  rto: 5m
params:
  db: { type: string, default: app }
steps:
  - id: prepare
    type: exec
    command: [mkdir, -p, "/backup/{{ params.db }}"]
    estimate: 10s
  - id: dump
    type: exec
    needs: [prepare]
    command: [pg_dump, -Fc, -Z, "6", "{{ params.db }}"]
    estimate: 4m
    timeout: 20m
    when: "params.db != 'skip'"
  - id: verify
    type: exec
    needs: [dump]
    command: [pg_restore, --list, "/backup/{{ params.db }}.dump"]
    estimate: 1m
  - id: notify
    type: exec
    needs: [verify]
    command: [echo, done]
"#;

fn diff(format: &str, extra: &[&str]) -> Ran {
    let mut args = vec![
        "plan", "--diff", "v1.yaml", "v2.yaml", "--now", NOW, "--format", format,
    ];
    args.extend_from_slice(extra);
    Test::new()
        .file("v1.yaml", V1)
        .file("v2.yaml", V2)
        .args(args)
        .expect(0)
}

#[test]
fn diff_text_shows_added_removed_changed_and_budget() {
    let ran = diff("text", &["-p", "db=sales"]);
    let out = &ran.stdout;
    assert!(out.contains("  + verify (exec)"), "{out}");
    assert!(out.contains("  - pause (sleep)"), "{out}");
    assert!(out.contains("      estimate: 2m → 4m"), "{out}");
    assert!(out.contains("      timeout: 10m → 20m"), "{out}");
    // Rendered with the same params on both sides.
    assert!(
        out.contains("config.command: pg_dump -Fc sales → pg_dump -Fc -Z 6 sales"),
        "{out}"
    );
    assert!(out.contains("      needs: dump → verify"), "{out}");
    assert!(
        !out.contains("~ prepare"),
        "an unchanged step shows as changed: {out}"
    );
    assert!(out.contains("[+3m 00s]"), "{out}");
    insta::assert_snapshot!(ran.stdout);
}

#[test]
fn diff_markdown_is_a_table() {
    let ran = diff("markdown", &[]);
    let out = &ran.stdout;
    assert!(out.starts_with("### Plan diff: `nightly`"), "{out}");
    assert!(
        out.contains("1 added, 1 removed, 2 changed, 1 unchanged"),
        "{out}"
    );
    assert!(out.contains("| ➕ | `verify` | type | — | exec |"), "{out}");
    assert!(
        out.contains("| ✏️ | `dump` | estimate | `2m` | `4m` |"),
        "{out}"
    );
    assert!(
        out.contains(
            "| new | prepare → dump → verify | 5m 10s (+3m 00s) | RTO 5m 00s, OVER by 10.0s |"
        ),
        "{out}"
    );
}

#[test]
fn diff_of_identical_versions_is_empty() {
    let ran = Test::new()
        .file("v1.yaml", V1)
        .file("same.yaml", V1)
        .args(["plan", "--diff", "v1.yaml", "same.yaml", "--now", NOW])
        .expect(0);
    ran.stdout_has("no step changed (4 unchanged)")
        .stdout_has("[+0.0s]");
}

#[test]
fn diff_of_an_invalid_version_exits_2() {
    let ran = Test::new()
        .file("v1.yaml", V1)
        .file("bad.yaml", "version: 1\nname: nightly\nsteps: 3\n")
        .args(["plan", "--diff", "v1.yaml", "bad.yaml"])
        .expect(2);
    ran.stderr_has("bad.yaml");
}

const HIST: &str = r"
version: 1
name: hist
objectives:
  rto: 1m
steps:
  - id: fast
    type: exec
    command: [true]
    estimate: 10s
  - id: slow
    type: exec
    needs: [fast]
    command: [true]
    estimate: 20s
  - id: side
    type: exec
    needs: []
    command: [true]
    estimate: 5s
";

fn event(mut kind: Value) -> String {
    kind["at"] = json!("2026-11-25T00:00:00Z");
    kind.to_string()
}

/// A journal by hand: the steps' (id, duration) and the run's outcome.
fn journal(runbook: &str, run_id: &str, steps: &[(&str, f64)], outcome: &str) -> String {
    let mut lines = vec![event(json!({
        "event": "run_started", "version": 1, "run_id": run_id, "runbook": runbook,
        "file": "rb.yaml", "file_sha256": "00", "now": "2026-11-25T00:00:00Z",
        "params": {}, "vars": {}, "secrets": [], "rto_seconds": 60.0, "resumed": false, "pid": 1
    }))];
    for (id, secs) in steps {
        lines.push(event(json!({
            "event": "step_finished", "step": id, "outcome": "succeeded", "attempts": 1,
            "duration_seconds": secs, "fingerprint": "ff", "outputs": {}
        })));
    }
    lines.push(event(json!({
        "event": "run_finished", "outcome": outcome, "duration_seconds": 1.0,
        "gate_wait_seconds": 0.0
    })));
    lines.join("\n") + "\n"
}

/// 12 successful runs (the 2 oldest far slower, out of the window of 10), then a failed
/// run and a run of another runbook, both far slower: none of those may count.
fn with_history() -> Test {
    let mut t = Test::new().file("rb.yaml", HIST);
    let mut n = 0;
    let mut add = |t: Test, runbook: &str, steps: &[(&str, f64)], outcome: &str| {
        let id = format!("20261125T0000{n:02}Z-0000");
        n += 1;
        t.file(
            &format!("state/runs/{id}/journal.jsonl"),
            journal(runbook, &id, steps, outcome),
        )
    };
    for _ in 0..2 {
        t = add(t, "hist", &[("fast", 500.0), ("slow", 1000.0)], "succeeded");
    }
    for slow in [30.0, 40.0, 50.0, 60.0, 70.0, 30.0, 40.0, 50.0, 60.0, 70.0] {
        t = add(t, "hist", &[("fast", 20.0), ("slow", slow)], "succeeded");
    }
    t = add(t, "hist", &[("fast", 9999.0), ("slow", 9999.0)], "failed");
    add(
        t,
        "other",
        &[("fast", 9999.0), ("slow", 9999.0)],
        "succeeded",
    )
}

#[test]
fn history_medians_replace_estimates_and_warn_over_rto() {
    let t = with_history().args(["plan", "rb.yaml", "--state-dir", "state", "--now", NOW]);
    let ran = t.expect(0);
    let out = &ran.stdout;
    assert!(
        out.contains("fast (exec) [group 1, estimate 20.0s (history, 10 runs)"),
        "{out}"
    );
    assert!(
        out.contains("slow (exec) [group 2, estimate 50.0s (history, 10 runs)"),
        "{out}"
    );
    assert!(
        out.contains("side (exec) [group 1, estimate 5s (estimate)"),
        "{out}"
    );
    assert!(out.contains("critical path: fast → slow (1m 10s)"), "{out}");
    assert!(
        out.contains(
            "predicted finish 2026-11-26T02:01:10Z (from history), RTO deadline 2026-11-26T02:01:00Z"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "WARNING: the critical path (1m 10s) does not fit the RTO (1m 00s): over by 10.0s"
        ),
        "{out}"
    );
    insta::assert_snapshot!(ran.stdout);

    let json = with_history()
        .args([
            "plan",
            "rb.yaml",
            "--state-dir",
            "state",
            "--now",
            NOW,
            "--format",
            "json",
        ])
        .expect(0);
    let doc: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["steps"][0]["id"], "fast");
    assert_eq!(
        doc["steps"][0]["history"],
        json!({"median_seconds": 20.0, "runs": 10})
    );
    assert_eq!(doc["rto_margin_seconds"], json!(-10.0));
    assert_eq!(doc["predicted_finish"], "2026-11-26T02:01:10Z");

    let md = with_history()
        .args([
            "plan",
            "rb.yaml",
            "--state-dir",
            "state",
            "--now",
            NOW,
            "--format",
            "markdown",
        ])
        .expect(0);
    md.stdout_has("| 50.0s (history, 10 runs) |")
        .stdout_has("> ⚠️ **WARNING: the critical path");
}

#[test]
fn no_history_keeps_the_plan_of_estimates() {
    let t = with_history();
    let plain = Test::new()
        .cwd(t.dir.path())
        .args(["plan", "rb.yaml", "--state-dir", "empty", "--now", NOW])
        .expect(0);
    let out = &plain.stdout;
    assert!(
        out.contains("fast (exec) [group 1, estimate 10s, critical path]"),
        "{out}"
    );
    assert!(!out.contains("history"), "{out}");
    assert!(!out.contains("WARNING"), "{out}");
    assert!(out.contains("critical path: fast → slow (30.0s)"), "{out}");
    let ignored = Test::new()
        .cwd(t.dir.path())
        .args([
            "plan",
            "rb.yaml",
            "--state-dir",
            "state",
            "--no-history",
            "--now",
            NOW,
        ])
        .expect(0);
    assert_eq!(ignored.stdout, plain.stdout);
}

/// A pull request can review a runbook whose required params have no value: they show as
/// placeholders, with a warning; `rb run` still refuses. `--check` probes each secret's
/// source without reading it out.
#[test]
fn plan_shows_missing_required_params_as_placeholders_and_check_probes_secret_sources() {
    let t = crate::support::Test::new().file(
        "rb.yaml",
        "version: 1\nname: sc\nparams:\n  target: { type: string, required: true }\nsecrets:\n  pw: { env: RB_TEST_SC_PW }\n  key: { file: key.txt }\nsteps:\n  - { id: a, type: exec, command: [echo, \"{{ params.target }}\"] }\n",
    );
    let plan = crate::support::Test::new()
        .cwd(t.dir.path())
        .args(["plan", "rb.yaml"])
        .expect(0);
    plan.stdout_has("command: echo '<params.target>'");
    assert!(
        plan.stderr
            .contains("warning: required param `target` has no value"),
        "{}",
        plan.stderr
    );
    let check = crate::support::Test::new()
        .cwd(t.dir.path())
        .env("RB_TEST_SC_PW", "s3cr3t-value")
        .args(["plan", "rb.yaml", "-p", "target=x", "--check"])
        .expect(1);
    assert!(
        check
            .stdout
            .contains("ok   secret    pw: from `$RB_TEST_SC_PW` (set)"),
        "{}",
        check.stdout
    );
    check.stdout_has("FAIL secret    key:");
    assert!(!check.stdout.contains("s3cr3t-value") && !check.stderr.contains("s3cr3t-value"));
    std::fs::write(t.path("key.txt"), "k").unwrap();
    let ran = crate::support::Test::new()
        .cwd(t.dir.path())
        .env("RB_TEST_SC_PW", "s3cr3t-value")
        .args(["run", "rb.yaml", "--state-dir", "state"])
        .expect(2);
    ran.stderr_has("missing required param `target`");
    let ok = crate::support::Test::new()
        .cwd(t.dir.path())
        .env("RB_TEST_SC_PW", "s3cr3t-value")
        .args(["plan", "rb.yaml", "-p", "target=x", "--check"])
        .expect(0);
    ok.stdout_has("2 of 2 checks passed");
}
