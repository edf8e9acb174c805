//! Gates and objectives: a gate without approval stops with the resume command, one that times
//! out is rejected, gate wait (also of an included runbook) is kept apart from the RTO.

use super::{events, expect, journal, lines, rb_env, report, run, step, the_run};
use crate::support::{Spawned, Test};
use std::process::Stdio;
use std::time::Duration;

#[test]
fn a_gate_without_approval_stops_with_the_resume_command() {
    let t = Test::new().file(
        "rb.yaml",
        r#"
version: 1
name: gated
steps:
  - id: before
    type: exec
    shell: "echo run >> before.count"
  - id: approve
    type: gate
    message: "Switch traffic to the standby?"
  - id: after
    type: exec
    command: [touch, after.done]
"#,
    );
    let ran = run(&t, &[]);
    expect(&ran, 3);
    let dir = the_run(&t);
    let run_id = dir.file_name().unwrap().to_str().unwrap();
    assert!(
        ran.stderr
            .contains(&format!("--resume {run_id} --approve approve")),
        "{}",
        ran.stderr
    );
    assert!(!t.path("after.done").exists());

    // Run the printed command as it is.
    let line = ran
        .stderr
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("rb run "))
        .unwrap_or_else(|| panic!("no command in {}", ran.stderr));
    let args: Vec<&str> = line.split_whitespace().skip(1).collect();
    let resumed = rb_env(t.dir.path(), &args, &[("USER", "alice")]);
    expect(&resumed, 0);
    assert_eq!(
        lines(&t, "before.count"),
        1,
        "steps before the gate ran again"
    );
    assert!(t.path("after.done").exists());

    let r = report(&dir);
    assert_eq!(r["outcome"], "succeeded");
    let gates = r["gates"].as_array().unwrap();
    assert_eq!(gates.len(), 1, "{r:#}");
    assert_eq!(gates[0]["step"], "approve");
    assert_eq!(gates[0]["approved"], true);
    assert_eq!(gates[0]["by"], "alice");
    assert!(gates[0]["at"].as_str().is_some_and(|s| s.starts_with("20")));
    let outputs = &step(&r, "approve")["outputs"];
    assert_eq!(outputs["approved_by"], "alice");
    assert!(outputs["approved_at"].is_string());
}

#[test]
fn a_run_over_its_rto_succeeds_but_exits_4_with_fail_over_rto() {
    let t = Test::new().file(
        "rb.yaml",
        "version: 1\nname: slow\nobjectives: { rto: 1s }\nsteps:\n  - { id: nap, type: sleep, duration: 1200ms }\n",
    );
    expect(&run(&t, &[]), 0);
    let r = report(&the_run(&t));
    assert_eq!(r["outcome"], "succeeded");
    assert_eq!(r["rto_met"], false);
    let margin = r["rto_margin_seconds"].as_f64().unwrap();
    let took = r["duration_seconds"].as_f64().unwrap();
    assert!(took >= 1.2 && (margin - (1.0 - took)).abs() < 1e-9, "{r:#}");
    let ran = run(&t, &["--fail-over-rto"]);
    expect(&ran, 4);
}

#[test]
fn gates_of_an_included_runbook_count_as_gate_wait() {
    let t = Test::new()
        .file(
            "child.yaml",
            "version: 1\nname: child\nsteps:\n  - { id: ok, type: gate, message: go? }\n  - { id: work, type: exec, command: [\"true\"] }\n",
        )
        .file(
            "rb.yaml",
            "version: 1\nname: parent\nsteps:\n  - { id: inc, type: runbook, file: child.yaml }\n  - { id: own, type: gate, message: more? }\n",
        );
    expect(&run(&t, &["--approve", "inc/ok", "--approve", "own"]), 0);
    let r = report(&the_run(&t));
    let gates = r["gates"].as_array().unwrap();
    let ids: Vec<_> = gates.iter().map(|g| g["step"].as_str().unwrap()).collect();
    assert_eq!(ids, ["inc/ok", "own"]);
    let waited: f64 = gates
        .iter()
        .map(|g| g["waited_seconds"].as_f64().unwrap())
        .sum();
    let gate_wait = r["gate_wait_seconds"].as_f64().unwrap();
    assert!(waited > 0.0 && (gate_wait - waited).abs() < 1e-9, "{r:#}");
    let machine = r["machine_seconds"].as_f64().unwrap();
    let total = r["duration_seconds"].as_f64().unwrap();
    assert!((machine - (total - gate_wait).max(0.0)).abs() < 1e-9);
}

#[test]
fn a_gate_that_times_out_is_rejected_never_approved() {
    let t = Test::new().file(
        "rb.yaml",
        r#"
version: 1
name: gated
steps:
  - id: approve
    type: gate
    message: "Drop the database?"
    timeout: 1s
  - id: after
    type: exec
    command: [touch, after.done]
"#,
    );
    // On a terminal (a pty made by util-linux `script`) nobody answers; stdin stays open.
    let mut child = Test::new()
        .cwd(t.dir.path())
        .pty()
        .args(["run", "rb.yaml", "--state-dir", "state"])
        .command()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux `script` runs");
    let _stdin = child.stdin.take();
    let ran = Spawned::from(child).wait(Duration::from_secs(30));
    ran.exits(3).stdout_has("gate `approve` timed out after 1s");
    assert!(!t.path("after.done").exists(), "nothing after the gate ran");
    let j = journal(&the_run(&t));
    let answered = events(&j, "gate_answered", "approve");
    assert_eq!(answered.len(), 1, "{j:#?}");
    assert_eq!(answered[0]["approved"], false);
    assert_eq!(answered[0]["by"], "timeout");
    let finished = events(&j, "run_finished", "");
    assert_eq!(finished[0]["outcome"], "gate_rejected");
}
