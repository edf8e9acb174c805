//! Resuming a run: succeeded steps reused, changed ones rerun, after `kill -9` too (the stale
//! lock taken over), `--only`, and which run is the newest.

use super::{
    events, expect, journal, lines, pid_in, poll, rb, read, released, report, run, run_dirs, spawn,
    step, the_run, wait_started,
};
use crate::support::Test;
use serde_json::Value;
use std::time::Duration;

const RESUME: &str = r#"
version: 1
name: resume
vars:
  stamp: "{{ now | strftime('%Y%m%d_%H%M%S_%f') }}"
steps:
  - id: one
    type: exec
    shell: "echo run >> one.count; touch one_{{ vars.stamp }}"
  - id: two
    type: exec
    shell: "test -f marker && touch two_{{ vars.stamp }}"
  - id: three
    type: exec
    command: [touch, "three_{{ vars.stamp }}"]
"#;

/// Names of the files in the test directory starting with `prefix`.
fn named(t: &Test, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(t.dir.path())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect();
    v.sort();
    v
}

#[test]
fn resume_after_a_failure_reuses_succeeded_steps_and_keeps_now() {
    let t = Test::new().file("rb.yaml", RESUME);
    let first = run(&t, &[]);
    expect(&first, 1);
    let dir = the_run(&t);
    let run_id = dir.file_name().unwrap().to_str().unwrap().to_owned();
    assert!(
        first.stderr.contains(&format!("--resume {run_id}")),
        "{}",
        first.stderr
    );
    let ones = named(&t, "one_");
    assert_eq!(ones.len(), 1);
    let stamp = ones[0].trim_start_matches("one_").to_owned();
    assert!(named(&t, "two_").is_empty());

    std::fs::write(t.path("marker"), "").unwrap();
    let second = run(&t, &["--resume"]);
    expect(&second, 0);
    assert_eq!(lines(&t, "one.count"), 1, "step one ran again");
    assert_eq!(named(&t, "two_"), [format!("two_{stamp}")]);
    assert_eq!(named(&t, "three_"), [format!("three_{stamp}")]);
    assert_eq!(the_run(&t), dir, "the same run continues");

    let j = journal(&dir);
    assert_eq!(events(&j, "step_started", "one").len(), 1);
    let one = events(&j, "step_finished", "one");
    assert_eq!(one.len(), 2);
    assert_eq!(one[1]["reused"], true);
    assert_eq!(
        events(&j, "step_finished", "two").last().unwrap()["outcome"],
        "succeeded"
    );
    let r = report(&dir);
    assert_eq!(r["outcome"], "succeeded");
    assert_eq!(step(&r, "one")["reused"], true);
    assert_eq!(step(&r, "three")["status"], "succeeded");

    // A finished run is evidence: naming it to --resume is refused, nothing runs.
    let third = run(&t, &["--resume", &run_id]);
    expect(&third, 2);
    assert!(
        third
            .stderr
            .contains("already succeeded and is kept as it is"),
        "{}",
        third.stderr
    );
    assert_eq!(lines(&t, "one.count"), 1);
}

#[test]
fn resume_reruns_a_step_whose_definition_changed() {
    let t = Test::new().file("rb.yaml", RESUME);
    expect(&run(&t, &[]), 1);
    assert_eq!(lines(&t, "one.count"), 1);
    let changed = RESUME.replace("echo run >>", "echo changed >>");
    std::fs::write(t.path("rb.yaml"), changed).unwrap();
    std::fs::write(t.path("marker"), "").unwrap();
    expect(&run(&t, &["--resume"]), 0);
    assert_eq!(read(&t, "one.count"), "run\nchanged\n");
    let j = journal(&the_run(&t));
    assert_eq!(events(&j, "step_started", "one").len(), 2);
    assert_eq!(
        events(&j, "step_finished", "one").last().unwrap()["reused"],
        false
    );
}

/// Kills a process group left behind (a step's tree after `kill -9` of rb).
struct GroupKill(i32);

impl Drop for GroupKill {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.0),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

#[test]
fn kill_9_then_resume_completes_and_takes_over_the_stale_lock() {
    let t = Test::new()
        .file(
            "rb.yaml",
            r#"
version: 1
name: crashy
steps:
  - id: one
    type: exec
    shell: "echo run >> one.count"
  - id: two
    type: exec
    shell: "echo $$ > two.pid; echo data; if [ -f slow ]; then sleep 30; fi"
    stdout: { file: out/two.txt }
  - id: three
    type: exec
    command: [cat, out/two.txt]
"#,
        )
        .file("slow", "");
    let mut rb = spawn(&t);
    let rb_pid = rb.child().id();
    let dir = wait_started(&t, "two");
    // The step's process group outlives `kill -9` of rb: remove it at the end.
    let _group = GroupKill(pid_in(&t, "two.pid"));
    poll("the temporary output", Duration::from_secs(10), || {
        std::fs::read_dir(t.path("out")).ok()?.next().map(|_| ())
    });
    rb.child().kill().unwrap(); // SIGKILL
    rb.child().wait().unwrap();
    rb.0 = None;

    let leftovers: Vec<String> = std::fs::read_dir(t.path("out"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        leftovers.iter().all(|n| n.starts_with(".two.txt.rb-tmp.")),
        "only a hidden temporary file may remain: {leftovers:?}"
    );
    let lock = read(&t, "state/locks/crashy.lock");
    assert!(lock.starts_with(&format!("{rb_pid}\n")), "{lock}");

    std::fs::remove_file(t.path("slow")).unwrap();
    let resumed = run(&t, &["--resume"]);
    expect(&resumed, 0);
    assert_eq!(lines(&t, "one.count"), 1, "step one ran again");
    assert_eq!(read(&t, "out/two.txt"), "data\n");
    let r = report(&dir);
    assert_eq!(r["outcome"], "succeeded");
    assert_eq!(step(&r, "one")["reused"], true);
    assert_eq!(step(&r, "three")["outputs"]["stdout"], "data\n");
    assert!(
        released(&t.path("state/locks/crashy.lock")),
        "the lock is released"
    );
}

/// `--only STEP` on a resumed run: only that step runs; its needs are taken from the run.
#[test]
fn only_runs_one_step_of_a_resumed_run() {
    let t = Test::new().file(
        "rb.yaml",
        "version: 1\nname: o\nsteps:\n  - { id: a, type: exec, command: [sh, -c, 'echo x >> a.count'] }\n  - { id: b, type: exec, command: [sh, -c, 'echo x >> b.count'] }\n  - { id: c, type: exec, command: [sh, -c, 'echo x >> c.count'] }\n",
    );
    let count = |name: &str| std::fs::read_to_string(t.path(name)).map_or(0, |s| s.lines().count());
    let first = Test::new()
        .cwd(t.dir.path())
        .args(["run", "rb.yaml", "--state-dir", "state"]);
    first.expect(0);
    let again = Test::new().cwd(t.dir.path()).args([
        "run",
        "rb.yaml",
        "--state-dir",
        "state",
        "--resume",
        "--only",
        "b",
    ]);
    let ran = again.expect(0);
    assert_eq!(
        (count("a.count"), count("b.count"), count("c.count")),
        (1, 2, 1),
        "{}",
        ran.stderr
    );
}

#[test]
fn the_newest_run_is_the_one_that_started_last_not_the_last_id() {
    let t = Test::new().file(
        "rb.yaml",
        "version: 1\nname: twice\nsteps:\n  - { id: one, type: exec, command: [\"true\"] }\n",
    );
    expect(&run(&t, &[]), 0);
    let first = the_run(&t);
    // Two runs in the same second differ only in a random suffix: give the older run a
    // directory that sorts after every real id.
    let renamed = first.with_file_name("99991231T235959Z-ffff");
    std::fs::rename(&first, &renamed).unwrap();
    expect(&run(&t, &[]), 0);
    let newer = run_dirs(&t.path("state"))
        .into_iter()
        .find(|d| *d != renamed)
        .expect("the second run");
    let newer_id = journal(&newer)[0]["run_id"].as_str().unwrap().to_owned();
    let shown = rb(
        t.dir.path(),
        &[
            "report",
            "latest",
            "--format",
            "json",
            "--state-dir",
            "state",
        ],
    );
    expect(&shown, 0);
    let shown: Value = serde_json::from_str(&shown.stdout).expect("JSON report");
    assert_eq!(shown["run_id"], newer_id.as_str());
}
