//! `rb run` end to end with host-side steps only: parallelism, failure handling, timeouts,
//! retries, resume (also after `kill -9`), locks, gates, secrets, argv safety, Ctrl-C,
//! `--dry-run` and atomic compressed outputs.

use crate::support::{RB, Ran, Test};
pub(super) use crate::support::{expect, poll};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Run `rb ARGS` in `dir` (stdin not a terminal).
pub(super) fn rb(dir: &Path, args: &[&str]) -> Ran {
    rb_env(dir, args, &[])
}

pub(super) fn rb_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Ran {
    let out = Command::new(RB)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("RB_STATE_DIR")
        .env("RB_LOCK_DIR", dir.join("state/locks/targets"))
        .envs(env.iter().copied())
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("rb runs");
    Ran::from(out)
}

/// `rb run rb.yaml --state-dir state EXTRA…` in the test directory.
pub(super) fn run(t: &Test, extra: &[&str]) -> Ran {
    let mut args = vec!["run", "rb.yaml", "--state-dir", "state"];
    args.extend_from_slice(extra);
    rb(t.dir.path(), &args)
}

/// Start `rb run rb.yaml --state-dir state` as a child process.
pub(super) fn spawn(t: &Test) -> Child {
    spawn_args(t, &["rb.yaml"])
}

/// Start `rb run --state-dir state ARGS…` as a child process.
pub(super) fn spawn_args(t: &Test, args: &[&str]) -> Child {
    Command::new(RB)
        .args(["run", "--state-dir", "state"])
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("RB_STATE_DIR")
        .env("RB_LOCK_DIR", t.path("state/locks/targets"))
        .current_dir(t.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rb starts")
}

/// Kills a spawned `rb` if a test fails before it ends.
pub(super) struct Reap(pub(super) Option<Child>);

impl Reap {
    pub(super) fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("child")
    }

    pub(super) fn wait(&mut self, within: Duration) -> Ran {
        let mut child = self.0.take().expect("child");
        let deadline = Instant::now() + within;
        while child.try_wait().expect("try_wait").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("rb did not end within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().expect("output");
        Ran {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Drop for Reap {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
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

/// The run directories in a state directory.
pub(super) fn run_dirs(state: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(state.join("runs"))
        .map(|r| r.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs
}

/// The only run directory.
pub(super) fn the_run(t: &Test) -> PathBuf {
    let dirs = run_dirs(&t.path("state"));
    assert_eq!(dirs.len(), 1, "one run expected: {dirs:?}");
    dirs[0].clone()
}

pub(super) fn journal(run_dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(run_dir.join("journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

pub(super) fn events<'a>(journal: &'a [Value], kind: &str, step: &str) -> Vec<&'a Value> {
    journal
        .iter()
        .filter(|e| e["event"] == kind && (step.is_empty() || e["step"] == step))
        .collect()
}

pub(super) fn report(run_dir: &Path) -> Value {
    let text = std::fs::read_to_string(run_dir.join("report.json")).expect("report.json");
    serde_json::from_str(&text).expect("report is JSON")
}

pub(super) fn step<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no step `{id}` in {report:#}"))
}

pub(super) fn read(t: &Test, name: &str) -> String {
    std::fs::read_to_string(t.path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub(super) fn lines(t: &Test, name: &str) -> usize {
    std::fs::read_to_string(t.path(name)).map_or(0, |s| s.lines().count())
}

fn stamp(t: &Test, name: &str) -> f64 {
    read(t, name).trim().parse().expect("a timestamp")
}

/// A process is gone (or a zombie nobody reaped yet: it runs no more).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

fn pid_in(t: &Test, name: &str) -> i32 {
    poll(name, Duration::from_secs(10), || {
        std::fs::read_to_string(t.path(name))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    })
}

/// Wait until the journal of the only run shows `step` started.
pub(super) fn wait_started(t: &Test, step_id: &str) -> PathBuf {
    poll(
        &format!("`{step_id}` to start"),
        Duration::from_secs(20),
        || {
            let dir = run_dirs(&t.path("state")).pop()?;
            (!events(&journal(&dir), "step_started", step_id).is_empty()).then_some(dir)
        },
    )
}

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
    expect(&ran, 1);
    assert!(ran.stderr.contains("broken"), "{}", ran.stderr);
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
    assert!(ran.stderr.contains("timed out"), "{}", ran.stderr);
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
    let mut rb = Reap(Some(spawn(&t)));
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

/// Whether the lock file at `path` is free: nobody holds its `flock` and it names nobody
/// (lock files stay in place; a released one is empty).
fn released(path: &Path) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return true;
    };
    let empty = file.metadata().is_ok_and(|m| m.len() == 0);
    empty && nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).is_ok()
}

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
    let mut first = Reap(Some(spawn(&t)));
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
    let cmd = format!("{RB} run rb.yaml --state-dir state");
    let mut child = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .current_dir(t.dir.path())
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux `script` runs");
    let _stdin = child.stdin.take();
    let ran = Reap(Some(child)).wait(Duration::from_secs(30));
    expect(&ran, 3);
    assert!(
        ran.stdout.contains("gate `approve` timed out after 1s"),
        "{}",
        ran.stdout
    );
    assert!(!t.path("after.done").exists(), "nothing after the gate ran");
    let j = journal(&the_run(&t));
    let answered = events(&j, "gate_answered", "approve");
    assert_eq!(answered.len(), 1, "{j:#?}");
    assert_eq!(answered[0]["approved"], false);
    assert_eq!(answered[0]["by"], "timeout");
    let finished = events(&j, "run_finished", "");
    assert_eq!(finished[0]["outcome"], "gate_rejected");
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn secrets_never_appear_in_anything_rb_writes() {
    const SECRET: &str = "s3cr3t-V4lue-9xq";
    let t = Test::new().file(
        "rb.yaml",
        r#"
version: 1
name: secretive
secrets:
  token: { env: RB_TEST_TOKEN }
vars:
  fname: "out/file-{{ secrets.token }}.txt"
steps:
  - id: echo
    type: exec
    command: [echo, "token={{ secrets.token }}"]
  - id: to_file
    type: exec
    command: [echo, hello]
    stdout: { file: "{{ vars.fname }}" }
  - id: err
    type: exec
    shell: 'echo "on stderr {{ secrets.token }}" >&2'
  - id: missing
    type: exec
    continue_on_error: true
    command: ["/nonexistent/{{ secrets.token }}"]
  - id: fails
    type: exec
    shell: 'echo "failing with {{ secrets.token }}" >&2; exit 3'
"#,
    );
    let (ran, _) = crate::support::run_book(&t, &[], &[("RB_TEST_TOKEN", SECRET)]);
    expect(&ran, 1);
    assert!(t.path(format!("out/file-{SECRET}.txt").as_str()).exists());
    let mut written: Vec<(String, Vec<u8>)> = vec![
        ("stdout".into(), ran.stdout.clone().into_bytes()),
        ("stderr".into(), ran.stderr.clone().into_bytes()),
        (
            "report.json".into(),
            std::fs::read(t.path("report.json")).unwrap(),
        ),
    ];
    for f in files_under(&t.path("state")) {
        assert!(!f.to_string_lossy().contains(SECRET), "{}", f.display());
        written.push((f.display().to_string(), std::fs::read(&f).unwrap()));
    }
    assert!(written.len() >= 5, "{written:?}");
    let mut stars = 0;
    for (name, bytes) in &written {
        let text = String::from_utf8_lossy(bytes);
        assert!(!text.contains(SECRET), "the secret is in {name}:\n{text}");
        stars += text.matches("***").count();
    }
    assert!(stars > 0, "nothing was masked");
    let r = report(&the_run(&t));
    assert_eq!(step(&r, "echo")["outputs"]["stdout"], "token=***\n");
    assert_eq!(step(&r, "err")["outputs"]["stderr"], "on stderr ***\n");
    assert!(
        step(&r, "to_file")["outputs"]["file"]
            .as_str()
            .unwrap()
            .ends_with("out/file-***.txt")
    );
    assert!(
        step(&r, "fails")["error"]
            .as_str()
            .unwrap()
            .contains("failing with ***")
    );
    assert!(
        step(&r, "missing")["error"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/***")
    );
}

#[test]
fn injection_strings_stay_one_argument() {
    let t = Test::new()
        .file(
            "rb.yaml",
            r"
version: 1
name: argv
params:
  a: { type: string, required: true }
  b: { type: string, required: true }
  c: { type: string, required: true }
  d: { type: string, required: true }
steps:
  - id: print
    type: exec
    command: [printf, '%s|', '{{ params.a }}', '{{ params.b }}', '{{ params.c }}', '{{ params.d }}']
",
        )
        .file("x", "keep me");
    let values = [
        "; rm -rf x",
        "$(touch pwned)",
        r#"it's "quoted" `touch pwned`"#,
        "line one\nline two; touch pwned",
    ];
    let mut args = vec!["run", "rb.yaml", "--state-dir", "state"];
    let pairs: Vec<String> = ["a", "b", "c", "d"]
        .iter()
        .zip(values)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for p in &pairs {
        args.extend(["-p", p]);
    }
    let ran = rb(t.dir.path(), &args);
    expect(&ran, 0);
    let r = report(&the_run(&t));
    let expected = values.join("|") + "|";
    assert_eq!(step(&r, "print")["outputs"]["stdout"], expected.as_str());
    assert!(!t.path("pwned").exists());
    assert_eq!(read(&t, "x"), "keep me");
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
    let mut rb = Reap(Some(spawn(&t)));
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
    assert!(dry.stdout.contains("hello-you"), "{}", dry.stdout);
    assert!(!t.path("hello-you").exists(), "a dry run ran a step");
    assert!(!t.path("state").exists(), "a dry run wrote state");
}

#[test]
fn exec_stdout_to_a_compressed_checksummed_file_is_atomic() {
    let t = Test::new().file(
        "rb.yaml",
        r"
version: 1
name: outfile
params:
  code: { type: int, default: 0 }
steps:
  - id: dump
    type: exec
    shell: 'seq 1 200000; exit {{ params.code }}'
    stdout: { file: out/seq.txt.gz, compress: gzip, checksum: sha256 }
",
    );
    expect(&run(&t, &[]), 0);
    let file = t.path("out/seq.txt.gz");
    let gzip = Command::new("gzip").arg("-t").arg(&file).status().unwrap();
    assert!(gzip.success());
    let sum = Command::new("sha256sum").arg(&file).output().unwrap();
    let sum = String::from_utf8(sum.stdout).unwrap();
    let r = report(&the_run(&t));
    let outputs = &step(&r, "dump")["outputs"];
    assert_eq!(
        outputs["sha256"].as_str().unwrap(),
        sum.split_whitespace().next().unwrap()
    );
    assert_eq!(
        outputs["bytes"].as_u64().unwrap(),
        std::fs::metadata(&file).unwrap().len()
    );
    let unzipped = Command::new("gzip").arg("-dc").arg(&file).output().unwrap();
    let seq = Command::new("seq").args(["1", "200000"]).output().unwrap();
    assert!(unzipped.stdout == seq.stdout, "content differs");

    let t = Test::new().file(
        "rb.yaml",
        r"
version: 1
name: outfile
params:
  code: { type: int, default: 0 }
steps:
  - id: dump
    type: exec
    shell: 'seq 1 200000; exit {{ params.code }}'
    stdout: { file: out/seq.txt.gz, compress: gzip, checksum: sha256 }
",
    );
    expect(&run(&t, &["-p", "code=2"]), 1);
    let left: Vec<_> = std::fs::read_dir(t.path("out"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "a failed step left {left:?}");
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
    assert!(
        ran.stderr.contains("b skipped: needs `a`"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("c skipped: needs `b`"),
        "{}",
        ran.stderr
    );
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

fn spawn_book(t: &Test, args: &[&str]) -> Reap {
    Reap(Some(spawn_args(t, args)))
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
    expect(&waited, 1);
    assert!(waited.stderr.contains("after waiting"), "{}", waited.stderr);
    std::fs::write(t.path("go"), "").unwrap();
    expect(&bk.wait(Duration::from_secs(20)), 0);
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
