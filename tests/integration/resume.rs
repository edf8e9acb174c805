//! Resume you can trust (issue 11): attempts are first-class (wall time and the RTO from the
//! first attempt, gate wait until `--approve`, timings of the attempt that did the work),
//! `always` steps re-run after work and undo what they `undoes`, finished runs are never
//! reopened, nested ids are known before anything runs, and `rb status` does not call a
//! backup that never ran "ok".

use super::run::{
    events, expect, journal, read, report, run, run_dirs, spawn_args, step, the_run, wait_started,
};
use crate::support::Test;
use std::time::{Duration, Instant};

/// `approve` → `stop_app` → `work` → `start_app` (always, undoes `stop_app`). `work` logs whether the
/// "application" (the file `up`) is running, fails while `fail` exists and waits while `hang`
/// exists.
const APP: &str = r#"
version: 1
name: app
objectives: { rto: 1h }
steps:
  - id: approve
    type: gate
    message: replace it?
  - id: stop_app
    type: exec
    shell: "echo stop >> log; rm -f up"
  - id: work
    type: exec
    shell: "if test -f up; then echo work-with-app-UP >> log; else echo work >> log; fi; test ! -f fail; while test -f hang; do sleep 0.05; done"
  - id: start_app
    type: exec
    always: true
    undoes: [stop_app]
    shell: "echo start >> log; touch up"
"#;

fn app() -> Test {
    Test::new().file("rb.yaml", APP).file("up", "")
}

fn log(t: &Test) -> Vec<String> {
    read(t, "log").lines().map(str::to_owned).collect()
}

#[test]
fn an_always_step_runs_again_when_a_step_it_follows_ran_in_the_resumed_attempt() {
    let t = app();
    expect(&run(&t, &[]), 3);
    assert_eq!(log(&t), ["start"], "only the always step ran (a no-op)");
    let ran = run(&t, &["--resume", "--approve", "approve"]);
    expect(&ran, 0);
    assert_eq!(log(&t), ["start", "stop", "work", "start"]);
    assert!(t.path("up").exists(), "the application is left running");
    let j = journal(&the_run(&t));
    let last = events(&j, "step_finished", "start_app")
        .last()
        .copied()
        .unwrap();
    assert_eq!(last["reused"], false, "start_app was not reused");
}

#[test]
fn after_ctrl_c_a_resumed_run_redoes_what_an_always_step_undid() {
    let t = app().file("hang", "");
    let mut rb = spawn_args(&t, &["rb.yaml", "--approve", "approve"]);
    wait_started(&t, "work");
    super::run::poll("`work` to log", Duration::from_secs(10), || {
        std::fs::read_to_string(t.path("log"))
            .ok()
            .filter(|l| l.contains("work"))
    });
    rb.signal(nix::sys::signal::Signal::SIGINT);
    rb.wait(Duration::from_secs(20)).exits(130);
    assert_eq!(log(&t), ["stop", "work", "start"]);
    std::fs::remove_file(t.path("hang")).unwrap();

    let ran = run(&t, &["--resume"]);
    expect(&ran, 0);
    assert_eq!(
        log(&t),
        ["stop", "work", "start", "stop", "work", "start"],
        "stop_app ran again before work: {}",
        ran.stderr
    );
    ran.stderr_has("`start_app` undid it");
    assert!(t.path("up").exists());
}

#[test]
fn undoes_must_name_an_earlier_step_of_an_always_step() {
    let t = Test::new().file(
        "rb.yaml",
        "version: 1\nname: u\nsteps:\n  - { id: a, type: exec, command: [\"true\"] }\n  - { id: b, type: exec, command: [\"true\"], undoes: [a] }\n  - { id: c, type: exec, command: [\"true\"], needs: [], always: true, undoes: [a, zz] }\n",
    );
    let ran = t.args(["validate", "rb.yaml"]).run();
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    for msg in [
        "step `b` has `undoes` but is not `always`",
        "step `c` undoes `a`, which does not run before it",
        "step `c` undoes unknown step `zz`",
    ] {
        assert!(ran.stderr.contains(msg), "{msg}\n{}", ran.stderr);
    }
}

/// fast → slow (1 s) → flaky (fails while `fail` exists); RTO 2 s, milestone on `flaky`.
const TIMED: &str = r#"
version: 1
name: timed
objectives: { rto: 2s, milestones: [{ name: done, rto: 2s, steps: [flaky] }] }
steps:
  - { id: slow, type: sleep, duration: 1s }
  - { id: flaky, type: exec, shell: "test ! -f fail" }
"#;

#[test]
fn the_rto_and_milestones_are_judged_on_the_wall_time_across_attempts() {
    let t = Test::new().file("rb.yaml", TIMED).file("fail", "");
    expect(&run(&t, &[]), 1);
    // The operator takes a while to fix the cause: the clock runs on.
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::remove_file(t.path("fail")).unwrap();
    let ran = run(&t, &["--resume", "--fail-over-rto"]);
    expect(&ran, 4);
    let r = report(&the_run(&t));
    let total = r["duration_seconds"].as_f64().unwrap();
    assert!(total >= 2.5, "wall time from the first attempt: {r:#}");
    assert_eq!(r["rto_met"], false, "{r:#}");
    assert_eq!(r["milestones"][0]["status"], "missed", "{r:#}");
    let attempts = r["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["outcome"], "failed");
    let between = r["between_attempts_seconds"].as_f64().unwrap();
    assert!(between >= 1.5, "{r:#}");
    let machine = r["machine_seconds"].as_f64().unwrap();
    let gate = r["gate_wait_seconds"].as_f64().unwrap();
    assert!((machine + gate + between - total).abs() < 0.01, "{r:#}");
    // The step that did its work in the first attempt keeps that attempt's time.
    let slow = step(&r, "slow");
    assert!(slow["duration_seconds"].as_f64().unwrap() >= 1.0, "{r:#}");
    assert_eq!(slow["attempt"], 1);
    assert_eq!(slow["reused"], true);
    assert_eq!(step(&r, "flaky")["attempt"], 2);
    ran.stderr_has("since the first attempt")
        .stderr_lacks("within the RTO");

    let text = crate::support::Test::new()
        .args(["report", "latest", "--state-dir"])
        .args([t.path("state").display().to_string()])
        .expect(0)
        .stdout;
    assert!(text.contains("over 2 attempts"), "{text}");
    assert!(text.contains("between attempts"), "{text}");
    let metrics = crate::support::Test::new()
        .args(["report", "latest", "--format", "prometheus", "--state-dir"])
        .args([t.path("state").display().to_string()])
        .expect(0)
        .stdout;
    let slow_metric = metrics
        .lines()
        .find(|l| l.starts_with("rb_step_duration_seconds{runbook=\"timed\",step=\"slow\"}"))
        .unwrap_or_else(|| panic!("{metrics}"));
    let secs: f64 = slow_metric.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(secs >= 1.0, "{slow_metric}");
    assert!(
        metrics.contains("rb_run_attempts{runbook=\"timed\"} 2"),
        "{metrics}"
    );
}

#[test]
fn a_failed_run_has_no_rto_verdict() {
    let t = Test::new().file("rb.yaml", TIMED).file("fail", "");
    let ran = run(&t, &[]);
    ran.exits(1)
        .stderr_lacks("within the RTO")
        .stderr_has("not recovered");
    let r = report(&the_run(&t));
    assert_eq!(r["rto_met"], serde_json::Value::Null, "{r:#}");
    assert_eq!(r["rto_margin_seconds"], serde_json::Value::Null, "{r:#}");
}

#[test]
fn time_stopped_at_a_gate_until_approve_is_gate_wait() {
    let t = app();
    expect(&run(&t, &[]), 3);
    let stopped = Instant::now();
    std::thread::sleep(Duration::from_millis(1200));
    expect(&run(&t, &["--resume", "--approve", "approve"]), 0);
    let waited = stopped.elapsed().as_secs_f64();
    let r = report(&the_run(&t));
    let gate = r["gate_wait_seconds"].as_f64().unwrap();
    assert!(gate >= 1.2 && gate <= waited + 0.5, "{r:#}");
    assert!(
        r["between_attempts_seconds"].as_f64().unwrap() < 0.05,
        "{r:#}"
    );
}

const NOTE: &str = r#"
version: 1
name: nightly
objectives: { rpo: 1d }
steps:
  - { id: dump, type: exec, shell: "echo data > dump.out; echo x >> dump.count", stdout: { file: "dump-{{ run.id }}.txt" } }
  - { id: note, type: exec, shell: "echo x >> note.count" }
"#;

#[test]
fn a_finished_run_is_never_rewritten_and_only_starts_a_derived_run() {
    let t = Test::new().file("rb.yaml", NOTE);
    expect(&run(&t, &[]), 0);
    let first = the_run(&t);
    let journal_before = std::fs::read(first.join("journal.jsonl")).unwrap();
    let report_before = std::fs::read(first.join("report.json")).unwrap();
    let status = |t: &Test| {
        crate::support::Test::new()
            .args(["status", "nightly", "--state-dir"])
            .args([t.path("state").display().to_string()])
            .expect(0)
            .stdout
            .lines()
            .nth(1)
            .map(|l| {
                l.split_whitespace()
                    .skip(3)
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap()
    };
    let status_before = status(&t);

    let ran = run(&t, &["--resume", "--only", "note"]);
    ran.exits(0).stderr_has("finished and stays as it is");
    let ran = run(&t, &["--only", "note"]);
    expect(&ran, 0);
    assert!(
        ran.stderr
            .contains(", taking the steps it does not run from run "),
        "{}",
        ran.stderr
    );
    assert_eq!(read(&t, "dump.count").lines().count(), 1);
    assert_eq!(read(&t, "note.count").lines().count(), 3);
    assert_eq!(
        std::fs::read(first.join("journal.jsonl")).unwrap(),
        journal_before
    );
    assert_eq!(
        std::fs::read(first.join("report.json")).unwrap(),
        report_before
    );
    assert_eq!(
        status(&t),
        status_before,
        "rb status still counts the full run"
    );

    let dirs = run_dirs(&t.path("state"));
    assert_eq!(dirs.len(), 3);
    let id = first.file_name().unwrap().to_str().unwrap();
    let derived: Vec<serde_json::Value> = dirs
        .iter()
        .filter(|d| **d != first)
        .map(|d| report(d))
        .collect();
    assert!(derived.iter().all(|r| r["derived_from"].is_string()));
    assert!(
        derived.iter().any(|r| r["derived_from"] == id),
        "{derived:#?}"
    );
    for r in &derived {
        assert_eq!(step(r, "dump")["reused"], true);
        assert_eq!(step(r, "dump")["attempt"], 0, "not done in the derived run");
    }

    let named = run(&t, &["--resume", id]);
    expect(&named, 2);
    assert!(
        named
            .stderr
            .contains("already succeeded and is kept as it is"),
        "{}",
        named.stderr
    );
}

#[test]
fn only_on_a_new_run_takes_its_needs_from_the_newest_successful_run_or_says_which() {
    let t = Test::new().file("rb.yaml", NOTE);
    let ran = run(&t, &["--only", "note"]);
    ran.exits(2).stderr_has("`--only note` needs `dump`");
    assert!(!t.path("note.count").exists());
    expect(&run(&t, &["--only", "dump"]), 0);
    expect(&run(&t, &["--only", "note"]), 0);
    assert_eq!(read(&t, "note.count").lines().count(), 1);
}

const NESTED: &str = r#"
version: 1
name: parent
steps:
  - { id: before, type: exec, command: ["true"] }
  - { id: inc, type: runbook, file: child.yaml }
"#;
const CHILD: &str = r#"
version: 1
name: child
steps:
  - { id: ok, type: gate, message: "go on?" }
  - { id: work, type: exec, shell: "echo x >> work.count" }
  - { id: other, type: exec, shell: "echo x >> other.count" }
"#;

fn nested() -> Test {
    Test::new()
        .file("rb.yaml", NESTED)
        .file("child.yaml", CHILD)
}

#[test]
fn nested_steps_and_gates_are_known_before_the_run() {
    let t = nested();
    let plan = crate::support::Test::new()
        .cwd(t.dir.path())
        .args(["plan", "rb.yaml"])
        .expect(0)
        .stdout;
    assert!(plan.contains("inc/ok (gate)"), "{plan}");
    assert!(plan.contains("gates (`--approve ID`): inc/ok"), "{plan}");
    let md = crate::support::Test::new()
        .cwd(t.dir.path())
        .args(["plan", "rb.yaml", "--format", "markdown"])
        .expect(0)
        .stdout;
    assert!(md.contains("↳ `inc/work`"), "{md}");
    let json: serde_json::Value = serde_json::from_str(
        &crate::support::Test::new()
            .cwd(t.dir.path())
            .args(["plan", "rb.yaml", "--format", "json"])
            .expect(0)
            .stdout,
    )
    .unwrap();
    assert_eq!(json["gates"], serde_json::json!(["inc/ok"]));
    let dot = crate::support::Test::new()
        .cwd(t.dir.path())
        .args(["graph", "rb.yaml"])
        .expect(0)
        .stdout;
    assert!(dot.contains("subgraph \"cluster_inc\""), "{dot}");
    assert!(dot.contains("\"inc/ok\" -> \"inc/work\""), "{dot}");

    for (args, msg) in [
        (vec!["--approve", "inc"], "`inc` is not a gate"),
        (vec!["--approve", "before"], "`before` is not a gate"),
        (vec!["--approve", "inc/nope"], "`inc/nope` is not a step"),
        (vec!["--from", "inc/zzz"], "no step `inc/zzz`"),
        (vec!["--only", "verfy"], "no step `verfy`"),
    ] {
        let ran = run(&t, &args);
        expect(&ran, 2);
        assert!(ran.stderr.contains(msg), "{args:?}: {}", ran.stderr);
        assert!(
            ran.stderr.contains("inc/ok"),
            "names the gates: {}",
            ran.stderr
        );
    }
    assert!(
        !t.path("state/runs").exists(),
        "nothing ran, nothing journaled"
    );
}

#[test]
fn a_nested_gate_prints_its_own_approve_and_child_ids_select_child_steps() {
    let t = nested();
    let ran = run(&t, &[]);
    ran.exits(3)
        .stderr_has("--approve inc/ok")
        .stderr_lacks("--approve inc ");
    assert!(
        !ran.stderr.trim_end().ends_with("--approve inc"),
        "{}",
        ran.stderr
    );
    expect(&run(&t, &["--resume", "--approve", "inc/ok"]), 0);
    assert_eq!(read(&t, "work.count").lines().count(), 1);

    // One step of the sub-runbook, in a new run derived from the finished one.
    expect(&run(&t, &["--only", "inc/work", "--approve", "inc/ok"]), 0);
    assert_eq!(read(&t, "work.count").lines().count(), 2);
    assert_eq!(
        read(&t, "other.count").lines().count(),
        1,
        "only inc/work ran"
    );
    // From a step of the sub-runbook: it and what follows it there run again.
    expect(&run(&t, &["--from", "inc/work", "--approve", "inc/ok"]), 0);
    assert_eq!(read(&t, "work.count").lines().count(), 3);
    assert_eq!(read(&t, "other.count").lines().count(), 2);
}

#[test]
fn status_of_a_runbook_that_never_ran_or_a_missing_state_dir_is_not_ok() {
    let t = Test::new().file("rb.yaml", NOTE);
    let missing = crate::support::Test::new()
        .args(["status", "nightly", "--state-dir"])
        .args([t.path("nowhere").display().to_string()])
        .run();
    assert_eq!(missing.code, 5, "{}", missing.stderr);
    missing.stderr_has("does not exist");
    expect(&run(&t, &[]), 0);
    let typo = crate::support::Test::new()
        .args(["status", "nightyl", "--state-dir"])
        .args([t.path("state").display().to_string()])
        .run();
    assert_eq!(typo.code, 5, "{}", typo.stderr);
    typo.stderr_has("no run of `nightyl`");
}

#[test]
fn report_latest_of_a_runbook_and_history_as_json_with_a_limit() {
    let t = Test::new()
        .file(
            "rb.yaml",
            "version: 1\nname: one\nsteps:\n  - { id: a, type: exec, command: [\"true\"] }\n",
        )
        .file(
            "two.yaml",
            "version: 1\nname: two\nsteps:\n  - { id: b, type: exec, command: [\"true\"] }\n",
        );
    for _ in 0..3 {
        expect(&run(&t, &[]), 0);
    }
    expect(
        &super::run::rb(t.dir.path(), &["run", "two.yaml", "--state-dir", "state"]),
        0,
    );
    let state = t.path("state").display().to_string();
    let cli = |args: &[&str]| {
        crate::support::Test::new()
            .args(args.iter().copied())
            .args(["--state-dir", &state])
            .expect(0)
            .stdout
    };
    let latest_one: serde_json::Value =
        serde_json::from_str(&cli(&["report", "latest", "one", "--format", "json"])).unwrap();
    assert_eq!(latest_one["runbook"], "one");
    let latest: serde_json::Value =
        serde_json::from_str(&cli(&["report", "latest", "--format", "json"])).unwrap();
    assert_eq!(latest["runbook"], "two");
    let history: serde_json::Value = serde_json::from_str(&cli(&[
        "history", "one", "--format", "json", "--limit", "2",
    ]))
    .unwrap();
    let runs = history.as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r["runbook"] == "one"));
    assert_eq!(runs[1]["run_id"], latest_one["run_id"], "newest last");
}

/// A value corrected with `-p` on a `--resume` (a PITR target the server refused) stays for
/// the next `--resume`: params come from the newest attempt.
#[test]
fn a_param_corrected_on_resume_stays_for_the_next_attempt() {
    let t = Test::new().file(
        "rb.yaml",
        "version: 1\nname: p\nparams:\n  target: { type: string, required: true }\nsteps:\n  - { id: check, type: exec, shell: 'echo \"{{ params.target }}\" >> seen; test \"{{ params.target }}\" != bad' }\n  - { id: then, type: exec, shell: 'test -f go' }\n",
    );
    expect(&run(&t, &["-p", "target=bad"]), 1);
    expect(&run(&t, &["--resume", "-p", "target=good"]), 1);
    std::fs::write(t.path("go"), "").unwrap();
    expect(&run(&t, &["--resume"]), 0);
    assert_eq!(
        log_of(&t, "seen"),
        ["bad", "good"],
        "the corrected value stayed"
    );
}

fn log_of(t: &Test, name: &str) -> Vec<String> {
    read(t, name).lines().map(str::to_owned).collect()
}
