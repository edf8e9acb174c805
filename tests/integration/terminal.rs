//! The terminal reporter as a person sees it: progress spinners and colour on a terminal
//! (a pty made by util-linux `script`), plain timestamped lines without one, `--quiet`,
//! `NO_COLOR`.

use crate::support::{RB, Test};
use std::process::Command;

const RUNBOOK: &str = "version: 1\nname: tty\nsteps:\n  - { id: wait, type: sleep, duration: 1200ms }\n  - { id: fin, type: exec, command: [echo, hi] }\n";

/// Run rb on a pseudo-terminal and return everything it drew.
fn on_a_terminal(t: &Test, extra: &str, env: &[(&str, &str)]) -> String {
    let mut rb = Test::new()
        .cwd(t.dir.path())
        .pty()
        .args(["run", "rb.yaml", "--state-dir", "state"])
        .args(extra.split_whitespace())
        .env_remove("NO_COLOR");
    for (k, v) in env {
        rb = rb.env(k, v);
    }
    rb.expect(0).stdout
}

#[test]
fn a_terminal_gets_spinners_and_colour() {
    let t = Test::new().file("rb.yaml", RUNBOOK);
    let drawn = on_a_terminal(&t, "", &[]);
    // indicatif redraws the running step's line in place (carriage return + clear line).
    assert!(
        drawn.contains("\r\x1b[2K"),
        "no progress redraws: {drawn:?}"
    );
    assert!(
        drawn.contains("wait sleep"),
        "no spinner for the running step: {drawn:?}"
    );
    assert!(
        drawn.contains("\x1b[32m✔\x1b[0m wait"),
        "no green tick: {drawn:?}"
    );
    assert!(drawn.contains("run \x1b[32msucceeded\x1b[0m"), "{drawn:?}");
}

#[test]
fn no_color_on_a_terminal_keeps_the_spinners_without_colour() {
    let t = Test::new().file("rb.yaml", RUNBOOK);
    let drawn = on_a_terminal(&t, "", &[("NO_COLOR", "1")]);
    assert!(drawn.contains("\r\x1b[2K"), "{drawn:?}");
    assert!(
        !drawn.contains("\x1b[32m"),
        "colour despite NO_COLOR: {drawn:?}"
    );
    assert!(drawn.contains("✔ wait"), "{drawn:?}");
}

#[test]
fn quiet_shows_only_the_final_line_and_failures() {
    let t = Test::new().file("rb.yaml", RUNBOOK);
    let drawn = on_a_terminal(&t, "--quiet", &[]);
    assert!(
        !drawn.contains("wait sleep"),
        "spinners in --quiet: {drawn:?}"
    );
    assert!(
        !drawn.contains("✔ wait") && !drawn.contains("m wait"),
        "{drawn:?}"
    );
    assert!(drawn.contains("succeeded"), "{drawn:?}");
    let failing = Test::new()
        .file("rb.yaml", "version: 1\nname: q\nsteps:\n  - { id: a, type: exec, command: [sh, -c, 'echo boom >&2; exit 3'] }\n")
        .args(["run", "rb.yaml", "--state-dir", "state", "--quiet"])
        .expect(1);
    assert!(
        failing.stderr.contains("a failed after") && failing.stderr.contains("boom"),
        "{}",
        failing.stderr
    );
    failing.stderr_lacks("▶");
}

#[test]
fn without_a_terminal_plain_timestamped_lines() {
    let ran = Test::new()
        .file("rb.yaml", RUNBOOK)
        .args(["run", "rb.yaml", "--state-dir", "state"])
        .expect(0);
    let lines: Vec<&str> = ran.stderr.lines().collect();
    assert!(
        !ran.stderr.contains('\x1b'),
        "escape codes without a terminal: {:?}",
        ran.stderr
    );
    assert!(
        lines.iter().any(|l| l.ends_with("▶ wait (sleep)")),
        "{lines:?}"
    );
    for l in &lines {
        let stamp = l.get(..8).unwrap_or_default();
        assert!(
            stamp.len() == 8 && stamp.as_bytes()[2] == b':' && stamp.as_bytes()[5] == b':',
            "line without a timestamp: {l:?}"
        );
    }
}

const TIMED: &str = "version: 1\nname: timed\nobjectives: { rto: 10m }\nsteps:\n  - { id: wait, type: sleep, duration: 1200ms, estimate: 2s }\n  - { id: fin, type: exec, command: [echo, hi], estimate: 30s }\n";

/// Seconds of a `human_secs` text (`31.5s`, `1m 02s`).
fn secs(text: &str) -> f64 {
    let mut total = 0.0;
    for part in text.split(' ') {
        let (n, unit) = part.split_at(part.len() - 1);
        let n: f64 = n.parse().unwrap_or_else(|_| panic!("a duration: {text:?}"));
        total += n * match unit {
            "h" => 3600.0,
            "m" => 60.0,
            _ => 1.0,
        };
    }
    total
}

/// Elapsed and projected finish of a `⏱ elapsed … of RTO …, projected finish +… (…)` line.
fn projection(line: &str) -> (f64, f64) {
    let rest = line.split("elapsed ").nth(1).expect("a projection line");
    let (elapsed, rest) = rest.split_once(" of RTO ").unwrap();
    let projected = rest.split("projected finish +").nth(1).unwrap();
    let projected = projected.split(" (").next().unwrap();
    (secs(elapsed), secs(projected))
}

#[test]
fn a_terminal_shows_elapsed_against_the_rto_and_the_projected_finish() {
    let t = Test::new().file("rb.yaml", TIMED);
    let drawn = on_a_terminal(&t, "", &[("NO_COLOR", "1")]);
    // At the start: nothing done, the estimates (2s + 30s) are left.
    assert!(
        drawn.contains("⏱ elapsed 0.0s of RTO 10m 00s, projected finish +32.0s (9m 28s to spare)"),
        "{drawn:?}"
    );
    assert!(drawn.contains("✔ wait"), "{drawn:?}");
}

/// TIMED with a milestone reached when `wait` ends.
const MILESTONED: &str = "version: 1\nname: timed\nobjectives: { rto: 10m, milestones: [{ name: waited, rto: 5m, steps: [wait] }] }\nsteps:\n  - { id: wait, type: sleep, duration: 1200ms, estimate: 2s }\n  - { id: fin, type: exec, command: [echo, hi], estimate: 30s }\n";

#[test]
fn without_a_terminal_the_projection_shows_at_the_start_and_at_milestones_only() {
    // No milestone: one projection line at the start, none after each step (a log is for
    // people reading it), then the final line.
    let plain = Test::new()
        .file("rb.yaml", TIMED)
        .args(["run", "rb.yaml", "--state-dir", "state"])
        .expect(0);
    let projections = plain.stderr.lines().filter(|l| l.contains("⏱")).count();
    assert_eq!(projections, 1, "{}", plain.stderr);

    let t =
        Test::new()
            .file("rb.yaml", MILESTONED)
            .args(["run", "rb.yaml", "--state-dir", "state"]);
    let ran = t.expect(0);
    let lines: Vec<&str> = ran.stderr.lines().collect();
    // At the start, the whole estimate (2s + 30s) is left.
    assert!(
        lines[1]
            .ends_with("⏱ elapsed 0.0s of RTO 10m 00s, projected finish +32.0s (9m 28s to spare)"),
        "{lines:?}"
    );
    let after_wait = lines
        .iter()
        .position(|l| l.contains("✔ wait"))
        .expect("wait finished");
    let line = lines[after_wait + 1];
    assert!(
        line.contains("⏱ milestone waited: ")
            && line.contains("of RTO 10m 00s")
            && line.contains("to spare"),
        "{line}"
    );
    // `fin` has not started: its estimate is what is left.
    let (elapsed, projected) = projection(line);
    assert!((projected - elapsed - 30.0).abs() < 0.15, "{line}");

    // The next run projects from the first run's durations, not the `estimate`s: `fin`
    // took milliseconds.
    let again = Test::new()
        .cwd(t.dir.path())
        .args(["run", "rb.yaml", "--state-dir", "state"])
        .expect(0);
    let lines: Vec<&str> = again.stderr.lines().collect();
    let at = lines.iter().position(|l| l.contains("✔ wait")).unwrap();
    let (elapsed, projected) = projection(lines[at + 1]);
    assert!(projected - elapsed < 1.0, "{}", lines[at + 1]);
}

/// Ends a tmux session when dropped (also when the test fails).
struct Kill<'a>(&'a str);
impl Drop for Kill<'_> {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", self.0])
            .output();
    }
}

/// A gate's question on a terminal, read from the screen as a person sees it (tmux): it stays
/// there, with its message, while another step runs and the progress display is active, and
/// the answer typed is taken.
#[test]
fn a_gate_question_stays_on_the_screen_while_other_steps_run() {
    let t = Test::new().file(
        "rb.yaml",
        "version: 1\nname: gt\nobjectives: { rto: 10m }\nsteps:\n  - { id: slow, type: sleep, duration: 3s, needs: [] }\n  - { id: approve, type: gate, message: \"Drop database shop and restore it?\", needs: [] }\n  - { id: after, type: exec, command: [\"true\"], needs: [approve, slow] }\n",
    );
    let session = format!("rbt-gate-{}", std::process::id());
    let tmux = |args: &[&str]| Command::new("tmux").args(args).output().expect("tmux runs");
    let cmd = format!(
        "cd {} && NO_COLOR=1 {RB} run rb.yaml --state-dir state; echo EXIT=$?; sleep 60",
        t.dir.path().display()
    );
    let started = tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "120",
        "-y",
        "30",
        &cmd,
    ]);
    assert!(started.status.success(), "{started:?}");
    let _kill = Kill(&session);
    let screen = || {
        String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", &session]).stdout).into_owned()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !screen().contains("approve? [y/N]") {
        assert!(
            std::time::Instant::now() < deadline,
            "no question: {}",
            screen()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The spinners redraw every 120 ms: look again after several redraws, with `slow` running.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let seen = screen();
    assert!(
        seen.contains("approve? [y/N]"),
        "the question was drawn over:\n{seen}"
    );
    assert!(
        seen.contains("Drop database shop and restore it?"),
        "the message was drawn over:\n{seen}"
    );
    tmux(&["send-keys", "-t", &session, "y", "Enter"]);
    while !screen().contains("EXIT=") {
        assert!(
            std::time::Instant::now() < deadline,
            "rb did not end: {}",
            screen()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let end = screen();
    assert!(end.contains("EXIT=0"), "{end}");
    assert!(end.contains("gate approve approved by"), "{end}");
}
