//! Locks: a runbook runs once at a time, a target lock is shared across runbooks and names its
//! holder, a stale one is taken over, a wait that expires says so.

use super::{expect, poll, rb, released, run, run_dirs, spawn, spawn_args, wait_started};
use crate::support::{Spawned, Test};
use std::time::{Duration, Instant};

#[test]
fn a_second_run_of_the_same_runbook_is_refused_naming_the_holder() {
    let t = Test::new().file(
        "rb.yaml",
        r"
version: 1
name: locked
steps:
  - id: wait
    type: exec
    shell: 'while [ ! -f go ]; do sleep 0.05; done'
",
    );
    let mut first = spawn(&t);
    let pid = first.child().id();
    let dir = wait_started(&t, "wait");
    let run_id = dir.file_name().unwrap().to_str().unwrap().to_owned();

    let started = Instant::now();
    let second = run(&t, &[]);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_ne!(second.code, 0);
    assert!(
        second.stderr.contains(&run_id) && second.stderr.contains(&format!("pid {pid}")),
        "{}",
        second.stderr
    );
    assert_eq!(run_dirs(&t.path("state")).len(), 1, "no second run started");

    std::fs::write(t.path("go"), "").unwrap();
    expect(&first.wait(Duration::from_secs(20)), 0);
}

/// Two runbooks (names `bk` and `rs`) that both lock `db/{{ params.target }}`; `bk` holds
/// it until the file `go` appears.
fn locking(t: Test) -> Test {
    let book = |name: &str, step: &str| {
        format!(
            r#"
version: 1
name: {name}
params:
  target: {{ type: string, default: one }}
locks: ["db/{{{{ params.target }}}}"]
steps:
  - id: work
    type: exec
    shell: "{step}"
"#
        )
    };
    t.file(
        "bk.yaml",
        book(
            "bk",
            "touch bk.started; while [ ! -f go ]; do sleep 0.05; done; touch bk.done",
        ),
    )
    .file("rs.yaml", book("rs", "touch rs.done"))
}

fn spawn_book(t: &Test, args: &[&str]) -> Spawned {
    spawn_args(t, args)
}

#[test]
fn a_target_lock_is_shared_across_runbooks_and_names_its_holder() {
    let t = locking(Test::new());
    let mut bk = spawn_book(&t, &["bk.yaml"]);
    poll("bk to start", Duration::from_secs(20), || {
        t.path("bk.started").exists().then_some(())
    });
    let bk_run = run_dirs(&t.path("state")).pop().expect("bk's run");
    let bk_id = bk_run.file_name().unwrap().to_str().unwrap().to_owned();

    // Another runbook on the same target is refused at once, naming the holder.
    let refused = rb(t.dir.path(), &["run", "rs.yaml", "--state-dir", "state"]);
    expect(&refused, 1);
    assert!(
        refused.stderr.contains("lock `db/one` is held by run")
            && refused.stderr.contains(&bk_id)
            && refused.stderr.contains("of runbook `bk`")
            && refused.stderr.contains("--lock-wait"),
        "{}",
        refused.stderr
    );
    assert!(
        !t.path("rs.done").exists(),
        "no step of the refused run ran"
    );
    assert_eq!(run_dirs(&t.path("state")).len(), 1, "no run was recorded");

    // A different target runs while `db/one` is held.
    let other = rb(
        t.dir.path(),
        &["run", "rs.yaml", "--state-dir", "state", "-p", "target=two"],
    );
    expect(&other, 0);
    std::fs::remove_file(t.path("rs.done")).unwrap();

    // With --lock-wait the same target waits for the holder, then runs.
    let mut waiting = spawn_book(&t, &["rs.yaml", "--lock-wait", "1m"]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !t.path("rs.done").exists(),
        "it waits while bk holds the lock"
    );
    std::fs::write(t.path("go"), "").unwrap();
    expect(&bk.wait(Duration::from_secs(20)), 0);
    expect(&waiting.wait(Duration::from_secs(20)), 0);
    assert!(t.path("bk.done").exists() && t.path("rs.done").exists());
    assert!(
        std::fs::read_dir(t.path("state/locks/targets"))
            .unwrap()
            .all(|e| released(&e.unwrap().path())),
        "every target lock is released"
    );
}

#[test]
fn a_stale_target_lock_is_taken_over_and_a_wait_that_expires_says_so() {
    let t = locking(Test::new()).file("go", "");
    // A lock file left by a process that is gone (no pid is that large on Linux).
    let lock = t.path("state/locks/targets/db%2Fone.lock");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    std::fs::write(&lock, "999999999\nold-run\nbk\ndb/one\n").unwrap();
    expect(
        &rb(t.dir.path(), &["run", "rs.yaml", "--state-dir", "state"]),
        0,
    );
    assert!(released(&lock));

    std::fs::remove_file(t.path("go")).unwrap();
    let mut bk = spawn_book(&t, &["bk.yaml"]);
    poll("bk to start", Duration::from_secs(20), || {
        t.path("bk.started").exists().then_some(())
    });
    let waited = rb(
        t.dir.path(),
        &[
            "run",
            "rs.yaml",
            "--state-dir",
            "state",
            "--lock-wait",
            "300ms",
        ],
    );
    waited.exits(1).stderr_has("after waiting");
    std::fs::write(t.path("go"), "").unwrap();
    expect(&bk.wait(Duration::from_secs(20)), 0);
}
