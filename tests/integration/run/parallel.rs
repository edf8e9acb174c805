//! Ordering and skipping: independent steps overlap (unless `--jobs 1`), a failure skips its
//! dependents while running steps end and `always` steps run, `when` skips only its own step.

use super::{events, expect, journal, report, run, stamp, step, the_run};
use crate::support::Test;

const PARALLEL: &str = r#"
version: 1
name: parallel
steps:
  - id: a
    type: exec
    needs: []
    shell: "date +%s.%N > a.start; sleep 0.7; date +%s.%N > a.end"
  - id: b
    type: exec
    needs: []
    shell: "date +%s.%N > b.start; sleep 0.7; date +%s.%N > b.end"
"#;

#[test]
fn independent_steps_overlap_unless_jobs_is_one() {
    let t = Test::new().file("rb.yaml", PARALLEL);
    expect(&run(&t, &[]), 0);
    let (a0, a1, b0, b1) = (
        stamp(&t, "a.start"),
        stamp(&t, "a.end"),
        stamp(&t, "b.start"),
        stamp(&t, "b.end"),
    );
    assert!(
        a0 < b1 && b0 < a1,
        "a [{a0}, {a1}] and b [{b0}, {b1}] should overlap"
    );

    let t = Test::new().file("rb.yaml", PARALLEL);
    expect(&run(&t, &["--jobs", "1"]), 0);
    let (a0, a1, b0, b1) = (
        stamp(&t, "a.start"),
        stamp(&t, "a.end"),
        stamp(&t, "b.start"),
        stamp(&t, "b.end"),
    );
    assert!(
        a1 <= b0 || b1 <= a0,
        "with --jobs 1, a [{a0}, {a1}] and b [{b0}, {b1}] must not overlap"
    );
}

#[test]
fn a_failure_skips_dependents_lets_running_steps_end_and_runs_always_steps() {
    let t = Test::new().file(
        "rb.yaml",
        r#"
version: 1
name: failing
steps:
  - id: slow
    type: exec
    needs: []
    shell: "sleep 0.8; touch slow.done"
  - id: bad
    type: exec
    needs: []
    shell: "echo broken >&2; exit 1"
  - id: after_bad
    type: exec
    needs: [bad]
    command: [touch, after_bad.done]
  - id: after_slow
    type: exec
    needs: [slow]
    command: [touch, after_slow.done]
  - id: cleanup
    type: exec
    needs: [slow, bad]
    always: true
    command: [touch, cleanup.done]
"#,
    );
    let ran = run(&t, &[]);
    ran.exits(1).stderr_has("broken");
    assert!(t.path("slow.done").exists(), "the running root finished");
    assert!(t.path("cleanup.done").exists(), "the always step ran");
    assert!(!t.path("after_bad.done").exists());
    assert!(
        !t.path("after_slow.done").exists(),
        "no new step starts after a failure"
    );

    let dir = the_run(&t);
    let r = report(&dir);
    assert_eq!(r["outcome"], "failed");
    for (id, status) in [
        ("slow", "succeeded"),
        ("bad", "failed"),
        ("after_bad", "skipped"),
        ("after_slow", "skipped"),
        ("cleanup", "succeeded"),
    ] {
        assert_eq!(step(&r, id)["status"], status, "{id}: {r:#}");
    }
    let j = journal(&dir);
    for id in ["after_bad", "after_slow"] {
        assert!(events(&j, "step_started", id).is_empty(), "{id} started");
        let fin = events(&j, "step_finished", id);
        assert_eq!(fin.len(), 1);
        assert_eq!(fin[0]["outcome"], "skipped");
    }
    assert_eq!(
        events(&j, "run_finished", "")[0]["outcome"],
        "failed",
        "{j:#?}"
    );
}

/// A step skipped by its own `when` does not skip its dependents; one skipped because its
/// need failed does.
#[test]
fn when_skips_only_the_step_and_failures_skip_dependents() {
    let t = Test::new().file(
        "rb.yaml",
        "version: 1\nname: w\nparams:\n  mode: { type: string, default: quick }\nsteps:\n  - { id: full_only, type: exec, when: \"params.mode == 'full'\", command: [touch, full] }\n  - { id: after_when, type: exec, command: [touch, after_when] }\n",
    );
    let ran = t.args(["run", "rb.yaml", "--state-dir", "state"]).expect(0);
    assert!(
        ran.stderr
            .contains("full_only skipped: `when: params.mode == 'full'` is false"),
        "{}",
        ran.stderr
    );
    let dir = Test::new().file(
        "rb.yaml",
        "version: 1\nname: w\nsteps:\n  - { id: a, type: exec, command: [false] }\n  - { id: b, type: exec, command: [touch, b] }\n  - { id: c, type: exec, command: [touch, c] }\n",
    );
    let ran = dir
        .args(["run", "rb.yaml", "--state-dir", "state"])
        .expect(1);
    ran.stderr_has("b skipped: needs `a`")
        .stderr_has("c skipped: needs `b`");
}

#[test]
fn when_skipped_dependency_lets_the_dependent_run() {
    let t = Test::new().file(
        "rb.yaml",
        "version: 1\nname: w\nsteps:\n  - { id: never, type: exec, when: 'false', command: [touch, never] }\n  - { id: after, type: exec, command: [touch, after] }\n",
    );
    let path = t.path("after");
    let t = t.args(["run", "rb.yaml", "--state-dir", "state"]);
    t.expect(0);
    assert!(
        path.exists(),
        "the dependent of a when-skipped step did not run"
    );
    assert!(
        !t.path("never").exists(),
        "a step whose `when` is false ran"
    );
}
