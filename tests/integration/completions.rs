//! `rb completions SHELL` and `rb man`: generated from the clap definitions, each script parsed
//! by its own shell (bash -n, zsh -n, fish --no-execute), each page checked by groff with every
//! warning on and rendered by man(1).

use crate::support::Test;
use std::process::{Command, Output};

/// Run a checker on a file; it must be installed (tests/env/up installs it).
fn check(program: &str, args: &[&str], package: &str) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("`{program}` is needed (Debian: apt-get install -y {package}): {e}")
        })
}

#[track_caller]
fn assert_clean(out: &Output, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "{what}:\n{stderr}"
    );
}

#[test]
fn each_shells_completion_script_parses_in_that_shell_and_knows_rbs_commands() {
    let t = Test::new();
    let shells = [
        ("bash", vec!["-n"], "bash"),
        ("zsh", vec!["-n"], "zsh"),
        ("fish", vec!["--no-execute"], "fish"),
    ];
    for (shell, args, package) in shells {
        let script = Test::new().args(["completions", shell]).expect(0).stdout;
        for word in [
            "validate",
            "plan",
            "run",
            "status",
            "completions",
            "approve",
            "state-dir",
        ] {
            assert!(script.contains(word), "{shell} completion lacks `{word}`");
        }
        let path = t.path(&format!("rb.{shell}"));
        std::fs::write(&path, &script).unwrap();
        let mut argv: Vec<&str> = args.clone();
        argv.push(path.to_str().unwrap());
        assert_clean(&check(shell, &argv, package), &format!("{shell} {args:?}"));
        // The check is real: a broken script fails it.
        std::fs::write(&path, format!("{script}\nif then fi (\n")).unwrap();
        let out = check(shell, &argv, package);
        assert!(!out.status.success(), "{shell} accepted a broken script");
    }
    for shell in ["elvish", "powershell"] {
        let script = Test::new().args(["completions", shell]).expect(0).stdout;
        assert!(script.contains("--approve"), "{shell}");
    }
    let ran = Test::new().args(["completions", "tcsh"]).expect(2);
    assert!(
        ran.stderr
            .contains("possible values: bash, elvish, fish, powershell, zsh"),
        "{}",
        ran.stderr
    );
}

#[test]
fn the_man_pages_pass_groff_with_all_warnings_and_render_with_man() {
    let t = Test::new();
    let page = Test::new().args(["man"]).expect(0).stdout;
    assert!(
        page.starts_with(".ie \\n(.g"),
        "roff: {}",
        &page[..80.min(page.len())]
    );
    assert!(
        page.is_ascii(),
        "a man page is ASCII (other characters as \\[uXXXX])"
    );
    std::fs::write(t.path("stdout.1"), &page).unwrap();
    Test::new()
        .args(["man", "--dir", t.path("man1").to_str().unwrap()])
        .expect(0);
    let mut pages: Vec<String> = std::fs::read_dir(t.path("man1"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    pages.sort();
    for cmd in [
        "validate",
        "plan",
        "run",
        "graph",
        "report",
        "history",
        "status",
        "schema",
        "completions",
        "man",
    ] {
        assert!(
            pages.contains(&format!("rb-{cmd}.1")),
            "rb-{cmd}.1 in {pages:?}"
        );
    }
    assert!(pages.contains(&"rb.1".to_owned()));
    assert_eq!(std::fs::read_to_string(t.path("man1/rb.1")).unwrap(), page);
    for name in &pages {
        let path = t.path(&format!("man1/{name}"));
        let p = path.to_str().unwrap();
        assert_clean(
            &check("groff", &["-man", "-Tutf8", "-ww", "-z", p], "groff-base"),
            name,
        );
        // Rendered as a reader sees it: no warnings, and the text is there.
        let out = man(&path);
        assert_clean(&out, name);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("NAME") && text.contains("SYNOPSIS"),
            "{name}:\n{text}"
        );
    }
    let run = man_text(&t.path("man1/rb-run.1"));
    for want in [
        "--approve",
        "--resume",
        "--state-dir",
        "Approve a gate (repeatable)",
    ] {
        assert!(run.contains(want), "rb-run(1) lacks {want}:\n{run}");
    }
    let rb = man_text(&t.path("man1/rb.1"));
    for want in [
        "EXIT STATUS",
        "rb-run(1)",
        "130",
        "interrupted",
        "rb status has nothing to judge",
    ] {
        assert!(rb.contains(want), "rb(1) lacks {want}:\n{rb}");
    }
}

/// `man -l PATH`, as a reader sees it (wide, no pager), stderr kept.
fn man(path: &std::path::Path) -> Output {
    Command::new("man")
        .args(["-l", path.to_str().unwrap()])
        .env("MANWIDTH", "200")
        .env("MAN_KEEP_STDERR", "1")
        .env("MANPAGER", "cat")
        .output()
        .unwrap_or_else(|e| panic!("`man` is needed (Debian: apt-get install -y man-db): {e}"))
}

fn man_text(path: &std::path::Path) -> String {
    String::from_utf8_lossy(&man(path).stdout).into_owned()
}
