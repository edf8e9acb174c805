//! Issue 17, items 1–5: hostile input and damaged state that lost or corrupted data, through
//! the real `rb` binary: rendered strings re-typed as numbers, a damaged journal, a full state
//! filesystem, archives with links, and a second signal.

use crate::support::{Ran, Spawned, Test, expect, poll};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// `rb` in the test directory, with its state and locks there.
fn rb_at(t: &Test) -> Test {
    Test::new()
        .cwd(t.dir.path())
        .env_path("RB_STATE_DIR", t.path("state"))
        .env_path("RB_LOCK_DIR", t.path("locks"))
}

fn rb(t: &Test, args: &[&str], env: &[(&str, &str)]) -> Ran {
    let mut rb = rb_at(t).args(args);
    for (k, v) in env {
        rb = rb.env(k, v);
    }
    rb.run()
}

/// Every journal line of every run in the test's state dir.
pub fn journals(t: &Test) -> String {
    let mut all = String::new();
    for run in std::fs::read_dir(t.path("state/runs")).unwrap() {
        all += &std::fs::read_to_string(run.unwrap().path().join("journal.jsonl")).unwrap();
    }
    all
}

#[test]
fn string_params_and_secrets_reach_argv_env_and_journal_exactly_as_given() {
    let t = Test::new().file(
        "rb.yaml",
        r#"
version: 1
name: exact
params:
  s: { type: string, required: true }
  h: { type: string, required: true }
  f: { type: string, required: true }
secrets:
  pw: { env: PW }
steps:
  - id: a
    type: exec
    command: [sh, -c, 'printf "%s|%s|%s|%s|%s" "$1" "$2" "$3" "$4" "$V" > out', x, "{{ params.s }}", "{{ params.h }}", "{{ params.f }}", "{{ secrets.pw }}"]
    env: { V: "{{ params.s }}" }
  - id: b
    type: exec
    command: [echo, "{{ secrets.pw }}"]
"#,
    );
    let ran = rb(
        &t,
        &[
            "run", "rb.yaml", "-p", "s=007", "-p", "h=0x10", "-p", "f=1.10",
        ],
        &[("PW", "000123456")],
    );
    expect(&ran, 0);
    let out = std::fs::read_to_string(t.path("out")).unwrap();
    assert_eq!(out, "007|0x10|1.10|000123456|007");
    let journal = journals(&t);
    assert!(!journal.contains("123456"), "{journal}");
    assert!(journal.contains("\"007\""), "{journal}");
}

const TWO_STEPS: &str = r"
version: 1
name: damaged
steps:
  - id: a
    type: exec
    command: [sh, -c, 'echo x >> a.count']
  - id: b
    type: exec
    command: [sh, -c, 'echo x >> b.count; test -e go']
";

fn lines(t: &Test, name: &str) -> usize {
    std::fs::read_to_string(t.path(name)).map_or(0, |s| s.lines().count())
}

#[test]
fn a_damaged_journal_is_read_as_far_as_it_can_be_and_the_run_stays_resumable() {
    let t = Test::new().file("rb.yaml", TWO_STEPS);
    expect(&rb(&t, &["run", "rb.yaml"], &[]), 1);
    let run = std::fs::read_dir(t.path("state/runs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let journal = run.join("journal.jsonl");
    let text = std::fs::read_to_string(&journal).unwrap();
    let mut damaged: Vec<u8> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        damaged.extend_from_slice(line.as_bytes());
        damaged.push(b'\n');
        if i == 1 {
            damaged.extend_from_slice(b"garbage that is not json\n");
            damaged.extend_from_slice(b"{\"at\":\"2026-01-01T00:00:00Z\",\"kind\":\"Nonsense\"}\n");
        }
    }
    // A torn last line that ends inside a UTF-8 character.
    damaged.extend_from_slice(b"{\"at\":\"2026-01-01T00:00:00Z\",\"kind\":\"\xc3");
    std::fs::write(&journal, &damaged).unwrap();

    let history = rb(&t, &["history"], &[]);
    history.exits(0).stdout_has("damaged").stderr_has("line 3");
    let report = rb(&t, &["report", "latest"], &[]);
    report.exits(0).stderr_has("line 3");

    std::fs::write(t.path("go"), "").unwrap();
    let resumed = rb(&t, &["run", "rb.yaml", "--resume"], &[]);
    expect(&resumed, 0);
    assert_eq!(lines(&t, "a.count"), 1, "a is not run again");
    assert_eq!(lines(&t, "b.count"), 2);
    // The resumed attempt's events are lines of their own, not glued to the torn line.
    let started = std::fs::read(&journal)
        .unwrap()
        .split(|&b| b == b'\n')
        .filter_map(|l| serde_json::from_slice::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "run_started")
        .count();
    assert_eq!(started, 2);
}

/// A tmpfs mounted on `dir` for the test, unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("mount runs")
            .success();
        assert!(
            ok,
            "mount a tmpfs on {} (the tests run as root)",
            dir.display()
        );
        Self(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_journal_that_cannot_be_written_stops_the_run_before_the_next_step() {
    let t = Test::new().file(
        "rb.yaml",
        r#"
version: 1
name: full
steps:
  - id: fill
    type: exec
    # Fills the state filesystem, then prints more than a page: its finish cannot be journaled.
    command: [sh, -c, 'head -c 10000000 /dev/zero > state/filler 2>/dev/null; head -c 200000 /dev/zero | tr "\0" x']
  - id: next
    type: exec
    command: [touch, next-ran]
"#,
    );
    let _fs = Tmpfs::mount(&t.path("state"), "256k");
    let ran = rb(&t, &["run", "rb.yaml"], &[]);
    ran.exits(1).stderr_has("the journal could not be written");
    assert!(!t.path("next-ran").exists(), "the next step did not start");
}

const ARCHIVE: &str = r"
version: 1
name: links
steps:
  - id: pack
    type: archive
    sources: [data]
    dest: out.tar.gz
  - id: unpack
    type: extract
    source: out.tar.gz
    dest: restored
";

fn symlink(target: &str, link: &Path) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

#[test]
fn links_inside_the_tree_round_trip_and_a_link_out_of_it_fails_the_backup() {
    let t = Test::new()
        .file("rb.yaml", ARCHIVE)
        .file("data/file.txt", "hello")
        .file("data/sub/keep", "");
    symlink("file.txt", &t.path("data/inside"));
    symlink("../file.txt", &t.path("data/sub/up"));
    expect(&rb(&t, &["run", "rb.yaml"], &[]), 0);
    let up = t.path("restored/data/sub/up");
    assert_eq!(std::fs::read_link(&up).unwrap(), Path::new("../file.txt"));
    assert_eq!(std::fs::read_to_string(up).unwrap(), "hello");
    assert_eq!(
        std::fs::read_link(t.path("restored/data/inside")).unwrap(),
        Path::new("file.txt")
    );

    // A link whose target leaves the tree: refused when the backup is made, not at restore.
    for (i, target) in ["/etc/passwd", "../../outside", "sub/../../.."]
        .iter()
        .enumerate()
    {
        let t = Test::new()
            .file("rb.yaml", ARCHIVE)
            .file("data/file.txt", "x");
        symlink(target, &t.path(&format!("data/evil{i}")));
        let ran = rb(&t, &["run", "rb.yaml"], &[]);
        expect(&ran, 1);
        assert!(
            ran.stderr.contains(&format!("data/evil{i}"))
                && ran.stderr.contains("leaves the archived tree"),
            "{target}: {}",
            ran.stderr
        );
        assert!(!t.path("out.tar.gz").exists(), "no archive is published");
    }
}

/// Whether process `pid` is gone (or a zombie nobody reaped yet).
fn gone(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'))
    })
}

/// `rb run rb.yaml` in the background, its output dropped.
pub fn spawn(t: &Test) -> Spawned {
    let mut c = rb_at(t).args(["run", "rb.yaml"]).command();
    c.stdout(Stdio::null()).stderr(Stdio::null());
    Spawned::from(c.spawn().expect("rb starts"))
}

fn read_pid(t: &Test, name: &str) -> Option<i32> {
    std::fs::read_to_string(t.path(name))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The exit code of a spawned `rb`, within 30 s.
pub fn wait_code(rb: &mut Spawned) -> i32 {
    rb.wait(Duration::from_secs(30)).code
}

/// Kills what a test left running, if it fails.
struct Cleanup(Vec<i32>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for pid in &self.0 {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

#[test]
fn a_second_ctrl_c_still_stops_every_process_rb_started() {
    // The first Ctrl-C stops `work` and starts the cleanup step; the second one arrives
    // while the cleanup runs.
    let t = Test::new().file(
        "rb.yaml",
        r"
version: 1
name: twice
steps:
  - id: work
    type: exec
    command: [sh, -c, 'echo $$ > work.pid; exec sleep 1000']
  - id: cleanup
    type: exec
    always: true
    command: [sh, -c, 'echo $$ > cleanup.pid; exec sleep 1000']
",
    );
    let mut child = spawn(&t);
    let work = poll("work to start", Duration::from_secs(20), || {
        read_pid(&t, "work.pid")
    });
    let mut cleanup = Cleanup(vec![work]);
    child.signal(nix::sys::signal::Signal::SIGINT);
    let pid = poll("cleanup to start", Duration::from_secs(20), || {
        read_pid(&t, "cleanup.pid")
    });
    cleanup.0.push(pid);
    child.signal(nix::sys::signal::Signal::SIGINT);
    assert_eq!(wait_code(&mut child), 130);
    // The hard stop is journaled with the time the run took, not 0 s.
    let finished: serde_json::Value = journals(&t)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .rfind(|e| e["event"] == "run_finished")
        .expect("a run_finished event");
    assert_eq!(finished["outcome"], "interrupted");
    assert!(
        finished["duration_seconds"].as_f64().unwrap() > 0.0,
        "{finished}"
    );
    poll(
        "the cleanup step's process to be stopped",
        Duration::from_secs(10),
        || gone(pid).then_some(()),
    );
    assert!(gone(work));
}

#[test]
fn sighup_stops_the_run_like_ctrl_c() {
    let t = Test::new().file(
        "rb.yaml",
        r"
version: 1
name: hangup
steps:
  - id: work
    type: exec
    command: [sh, -c, 'echo $$ > work.pid; exec sleep 1000']
  - id: cleanup
    type: exec
    always: true
    command: [touch, cleaned]
",
    );
    let mut child = spawn(&t);
    let work = poll("work to start", Duration::from_secs(20), || {
        read_pid(&t, "work.pid")
    });
    let _cleanup = Cleanup(vec![work]);
    child.signal(nix::sys::signal::Signal::SIGHUP);
    assert_eq!(wait_code(&mut child), 130);
    assert!(t.path("cleaned").exists(), "the cleanup step ran");
    poll("work to be stopped", Duration::from_secs(10), || {
        gone(work).then_some(())
    });
}
