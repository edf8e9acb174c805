//! A step that ends early or runs again: timeouts kill the whole process group, retries count
//! their attempts, Ctrl-C stops the step, runs cleanup and exits 130.

use super::{
    events, expect, gone, journal, lines, pid_in, poll, report, run, spawn, step, the_run,
    wait_started,
};
use crate::support::Test;
use std::time::{Duration, Instant};

#[test]
fn a_timeout_kills_the_whole_process_group() {
    let t = Test::new().file(
        "rb.yaml",
        r"
version: 1
name: timeout
steps:
  - id: long
    type: exec
    timeout: 1s
    command: [sh, -c, 'sleep 30 & echo $! > pid; wait']
",
    );
    let started = Instant::now();
    let ran = run(&t, &[]);
    let took = started.elapsed();
    expect(&ran, 1);
    assert!(took < Duration::from_secs(8), "took {took:?}");
    ran.stderr_has("timed out");
    let r = report(&the_run(&t));
    assert_eq!(step(&r, "long")["status"], "failed");
    assert!(
        step(&r, "long")["error"]
            .as_str()
            .unwrap()
            .contains("timed out")
    );
    let pid = pid_in(&t, "pid");
    poll("the grandchild to die", Duration::from_secs(5), || {
        gone(pid).then_some(())
    });
}

const RETRY: &str = r"
version: 1
name: retry
params:
  succeed_at: { type: int, default: 3 }
steps:
  - id: flaky
    type: exec
    retries: { attempts: 3, delay: 100ms }
    shell: 'echo x >> count; [ $(wc -l < count) -ge {{ params.succeed_at }} ]'
";

#[test]
fn retries_count_attempts() {
    let t = Test::new().file("rb.yaml", RETRY);
    expect(&run(&t, &[]), 0);
    assert_eq!(lines(&t, "count"), 3);
    let dir = the_run(&t);
    let r = report(&dir);
    assert_eq!(step(&r, "flaky")["status"], "succeeded");
    assert_eq!(step(&r, "flaky")["attempts"], 3);
    assert_eq!(events(&journal(&dir), "step_retrying", "flaky").len(), 2);

    // `attempts: 3` is three retries after the first attempt: four in all.
    let t = Test::new().file("rb.yaml", RETRY);
    expect(&run(&t, &["-p", "succeed_at=99"]), 1);
    assert_eq!(lines(&t, "count"), 4);
    let r = report(&the_run(&t));
    assert_eq!(step(&r, "flaky")["status"], "failed");
    assert_eq!(step(&r, "flaky")["attempts"], 4);
}

#[test]
fn ctrl_c_stops_the_step_runs_cleanup_and_exits_130() {
    let t = Test::new().file(
        "rb.yaml",
        r"
version: 1
name: interrupted
steps:
  - id: sleeper
    type: exec
    command: [sh, -c, 'sleep 30 & echo $! > sleep.pid; wait']
  - id: never
    type: exec
    command: [touch, never.done]
  - id: cleanup
    type: exec
    needs: [sleeper]
    always: true
    command: [touch, cleanup.done]
",
    );
    let mut rb = spawn(&t);
    let dir = wait_started(&t, "sleeper");
    let sleep_pid = pid_in(&t, "sleep.pid");
    let rb_pid = nix::unistd::Pid::from_raw(i32::try_from(rb.child().id()).unwrap());
    let sent = Instant::now();
    nix::sys::signal::kill(rb_pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let ran = rb.wait(Duration::from_secs(15));
    expect(&ran, 130);
    assert!(sent.elapsed() < Duration::from_secs(10));
    assert!(t.path("cleanup.done").exists(), "the always step ran");
    assert!(!t.path("never.done").exists());
    let j = journal(&dir);
    let finished = events(&j, "run_finished", "");
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0]["outcome"], "interrupted");
    assert_eq!(
        events(&j, "step_finished", "sleeper")[0]["outcome"],
        "cancelled"
    );
    poll("the sleep child to die", Duration::from_secs(5), || {
        gone(sleep_pid).then_some(())
    });
}
