//! Issue 17, item 14: a template whose single operation never ends (a list doubled 30 times,
//! then printed by `~`, `format` or a string filter) is stopped within seconds by every
//! command, with an error naming the step and the field. rb is run with a watchdog: before
//! the fix these tests failed after 60 s instead of hanging the suite.

use crate::support::{Ran, Test};
use std::path::Path;
use std::time::{Duration, Instant};

/// A list of 2^31 items built in 30 instructions of fuel (minijinja keeps `+` lazy).
const DOUBLED: &str = "{% set ns = namespace(x=[1,1]) %}{% for i in range(30) %}{% set ns.x = ns.x + ns.x %}{% endfor %}";

/// Longest a command may take here; rb's own deadline is 2 s per template.
const FAST: Duration = Duration::from_secs(15);

/// Run `rb ARGS` in `dir`, killed (and the test failed) after 60 s; returns what it printed
/// and how long it took.
fn rb_with_watchdog(dir: &Path, args: &[&str]) -> (Ran, Duration) {
    let started = Instant::now();
    let ran = Test::new()
        .cwd(dir)
        .env_path("RB_STATE_DIR", dir.join("state"))
        .env_path("RB_LOCK_DIR", dir.join("locks"))
        .args(args)
        .spawn()
        .wait(Duration::from_mins(1));
    (ran, started.elapsed())
}

fn book(dir: &Path, yaml: &str) {
    std::fs::write(dir.join("rb.yaml"), yaml).unwrap();
}

#[test]
fn a_doubled_list_printed_by_concatenation_fails_validate_plan_and_run_within_seconds() {
    for printed in [
        "{{ ns.x ~ '' }}",
        "{{ '%s' | format(ns.x) }}",
        "{{ ns.x | lower }}",
    ] {
        let dir = tempfile::tempdir().unwrap();
        book(
            dir.path(),
            &crate::hostile::one_step(&format!("{DOUBLED}{printed}")),
        );
        for (args, code) in [
            (&["validate", "rb.yaml"][..], 2),
            (&["plan", "rb.yaml"][..], 2),
            (&["run", "rb.yaml"][..], 2),
        ] {
            let (ran, took) = rb_with_watchdog(dir.path(), args);
            assert_eq!(ran.code, code, "{printed} {args:?}: {}", ran.stderr);
            assert!(took < FAST, "{printed} {args:?} took {took:?}");
            let err = crate::support::one_line(&ran.stderr);
            for want in [
                "cannot render field `command[1]`",
                "of step `a`",
                "rendering took longer than 2 s",
            ] {
                assert!(
                    err.contains(want),
                    "{printed} {args:?}: no `{want}` in {}",
                    ran.stderr
                );
            }
        }
    }
}

#[test]
fn a_bomb_that_only_goes_off_at_run_time_fails_its_step_and_the_cleanup_still_runs() {
    // In the plan the output is a placeholder, so the list is never printed; at run time it
    // is: the step fails within seconds, later steps are skipped, the `always` one runs.
    let dir = tempfile::tempdir().unwrap();
    let bomb = format!(
        "{{% if steps.a.outputs.stdout | trim == 'go' %}}{DOUBLED}{{{{ ns.x ~ '' }}}}{{% endif %}}"
    );
    book(
        dir.path(),
        &format!(
            r"version: 1
name: late-bomb
steps:
  - id: a
    type: exec
    command: [echo, go]
  - id: b
    type: exec
    command: [echo, {}]
  - id: c
    needs: [b]
    type: exec
    command: [touch, never]
  - id: cleanup
    needs: [b]
    always: true
    type: exec
    command: [touch, cleaned]
",
            serde_json::to_string(&bomb).unwrap()
        ),
    );
    let (plan, _) = rb_with_watchdog(dir.path(), &["plan", "rb.yaml"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let (ran, took) = rb_with_watchdog(dir.path(), &["run", "rb.yaml", "--report", "report.json"]);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(took < FAST, "took {took:?}");
    let err = crate::support::one_line(&ran.stderr);
    assert!(
        err.contains("cannot render field `command[1]`")
            && err.contains("of step `b`: rendering took longer than 2 s"),
        "{}",
        ran.stderr
    );
    assert!(dir.path().join("cleaned").exists(), "the cleanup ran");
    assert!(!dir.path().join("never").exists());
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    let status = |id: &str| crate::support::report_step(&report, id)["status"].clone();
    assert_eq!(status("b"), "failed");
    assert_eq!(status("c"), "skipped");
    assert_eq!(status("cleanup"), "succeeded");
}

#[test]
fn ordinary_templates_render_as_fast_as_before() {
    // Each render now runs on a thread with a deadline: a plan of the largest shipped
    // runbook still takes a fraction of a second.
    let dir = tempfile::tempdir().unwrap();
    let file = crate::support::repo().join("runbooks/disaster-recovery.yaml");
    let started = Instant::now();
    let (ran, _) = rb_with_watchdog(
        dir.path(),
        &["plan", file.to_str().unwrap(), "--format", "json"],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}
