//! `rb run --dry-run` prints the plan and runs nothing.

use super::{expect, rb};
use crate::support::Test;

#[test]
fn dry_run_prints_the_plan() {
    let t = Test::new().file(
        "rb.yaml",
        r#"
version: 1
name: dry
params:
  who: { type: string, default: world }
steps:
  - id: hello
    type: exec
    command: [touch, "hello-{{ params.who }}"]
    estimate: 1m
  - id: other
    type: sleep
    needs: []
    duration: 1s
"#,
    );
    let dry = rb(
        t.dir.path(),
        &[
            "run",
            "rb.yaml",
            "--dry-run",
            "-p",
            "who=you",
            "--now",
            "2026-11-26T02:00:00Z",
            "--state-dir",
            "state",
        ],
    );
    expect(&dry, 0);
    // The same `now` for both: two calls may straddle a second.
    let plan = rb(
        t.dir.path(),
        &[
            "plan",
            "rb.yaml",
            "-p",
            "who=you",
            "--now",
            "2026-11-26T02:00:00Z",
        ],
    );
    expect(&plan, 0);
    assert_eq!(dry.stdout, plan.stdout);
    dry.stdout_has("hello-you");
    assert!(!t.path("hello-you").exists(), "a dry run ran a step");
    assert!(!t.path("state").exists(), "a dry run wrote state");
}
