//! The terminal reporter as a person sees it: progress spinners and colour on a terminal
//! (a pty made by util-linux `script`), plain timestamped lines without one, `--quiet`,
//! `NO_COLOR`.

use crate::support::{RB, Test};
use std::process::Command;

const RUNBOOK: &str = "version: 1\nname: tty\nsteps:\n  - { id: wait, type: sleep, duration: 1200ms }\n  - { id: fin, type: exec, command: [echo, hi] }\n";

/// Run rb on a pseudo-terminal and return everything it drew.
fn on_a_terminal(t: &Test, extra: &str, env: &[(&str, &str)]) -> String {
    let cmd = format!("{RB} run rb.yaml --state-dir state {extra}");
    let mut c = Command::new("script");
    c.args(["-qec", &cmd, "/dev/null"])
        .current_dir(t.dir.path())
        .env_remove("NO_COLOR");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c
        .output()
        .expect("util-linux `script` runs (it makes the pty)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
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
    assert!(!failing.stderr.contains("▶"), "{}", failing.stderr);
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
