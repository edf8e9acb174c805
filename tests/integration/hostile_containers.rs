//! Issue 17, item 5, for processes in containers: a second Ctrl-C stops what a
//! `container.exec` runs in its container before rb exits, on the real Docker engine.

use crate::containers::{Guard, docker_ok, engine1, name, tools_image};
use crate::hostile_state::{journals, spawn, wait_code};
use crate::support::{Test, poll};
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

/// The command lines of the processes running in container `c` (`docker top`).
fn processes(host: &str, c: &str) -> String {
    docker_ok(host, &["top", c, "-o", "pid,args"])
}

#[test]
fn a_second_ctrl_c_stops_the_process_a_container_exec_runs() {
    // The first Ctrl-C stops `work` (its exec is stopped by the step) and starts the
    // `always` step; the second one arrives while that step's `sleep 1002` runs in the
    // container. Before, rb exited at once and the `sleep` ran on until the next --resume.
    let mut g = Guard::new(&engine1());
    let c = g.container(&name("twice"));
    docker_ok(
        &g.host,
        &["run", "-d", "--name", &c, &tools_image(), "sleep", "3600"],
    );
    let t = Test::new().file(
        "rb.yaml",
        format!(
            r#"version: 1
name: twice-in-container
steps:
  - {{ id: work, type: container.exec, container: {c}, command: [sleep, "1001"] }}
  - {{ id: cleanup, type: container.exec, container: {c}, command: [sleep, "1002"], always: true }}
"#
        ),
    );
    let mut child = spawn(&t);
    let started = |what: &str| {
        poll(what, Duration::from_secs(30), || {
            processes(&g.host, &c).contains(what).then_some(())
        });
    };
    started("sleep 1001");
    child.signal(Signal::SIGINT);
    started("sleep 1002");
    let second = Instant::now();
    child.signal(Signal::SIGINT);
    assert_eq!(wait_code(&mut child), 130);
    let exited = second.elapsed();
    // Stopped before rb exited (the stop is confirmed by the engine).
    let left = processes(&g.host, &c);
    assert!(!left.contains("sleep 100"), "left running: {left}");
    assert!(
        exited < Duration::from_secs(15),
        "rb took {exited:?} to exit"
    );
    let journal = journals(&t);
    let events: Vec<serde_json::Value> = journal
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let finished = |step: &str| {
        events
            .iter()
            .rfind(|e| e["event"] == "step_finished" && e["step"] == step)
            .unwrap_or_else(|| panic!("no step_finished for {step}: {journal}"))
            .clone()
    };
    let cleanup = finished("cleanup");
    assert_eq!(cleanup["outcome"], "cancelled", "{cleanup}");
    let error = cleanup["error"].as_str().unwrap();
    assert!(
        error.contains("stopped at once by a second interrupt")
            && error.contains(&format!("its process in container `{c}` was stopped")),
        "{error}"
    );
    assert_eq!(finished("work")["outcome"], "cancelled");
    let run_finished = events
        .iter()
        .rfind(|e| e["event"] == "run_finished")
        .expect("run_finished");
    assert_eq!(run_finished["outcome"], "interrupted");
}
