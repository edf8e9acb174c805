//! `rb plan` and `rb graph`: rendered steps, groups, critical path, budget; no side effects.

use std::io::Write as _;

use crate::support::{Test, repo};

const NOW: &str = "2026-11-26T02:00:00Z";

fn shipped(name: &str) -> String {
    repo().join("runbooks").join(name).display().to_string()
}

fn redact(s: &str) -> String {
    s.replace(&repo().display().to_string(), "[REPO]")
}

#[test]
fn shipped_backup_plan_text() {
    let ran = Test::new()
        .cwd(&repo())
        .args(["plan", "runbooks/backup/database.yaml", "--now", NOW])
        .expect(0);
    insta::assert_snapshot!(ran.stdout);
}

#[test]
fn shipped_backup_plan_markdown() {
    let ran = Test::new()
        .cwd(&repo())
        .args([
            "plan",
            "runbooks/backup/database.yaml",
            "--now",
            NOW,
            "--format",
            "markdown",
        ])
        .expect(0);
    insta::assert_snapshot!(ran.stdout);
}

#[test]
fn shipped_backup_plan_json_is_stable() {
    let ran = Test::new()
        .cwd(&repo())
        .args([
            "plan",
            "runbooks/backup/database.yaml",
            "--now",
            NOW,
            "--format",
            "json",
        ])
        .expect(0);
    let doc: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(doc["format_version"], 1);
    assert_eq!(doc["steps"][1]["id"], "dump");
    insta::assert_json_snapshot!(doc);
}

/// Every shipped runbook validates, and its plan (text) is a stable snapshot.
#[test]
fn every_shipped_runbook_validates_and_plans() {
    let mut n = 0;
    for entry in walk(&repo().join("runbooks")) {
        let rel = entry.strip_prefix(repo()).unwrap().display().to_string();
        Test::new().cwd(&repo()).args(["validate", &rel]).expect(0);
        let mut args = vec!["plan", rel.as_str(), "--now", NOW];
        // Restores have no default for what to restore and where.
        if rel.ends_with("restore/config.yaml") || rel.ends_with("restore/source.yaml") {
            args.extend([
                "-p",
                "archive=/backups/a/20260101/a.tar.gz",
                "-p",
                "dest=/restored",
            ]);
        }
        // Params a runbook requires (no default): a value for the plan.
        if rel.ends_with("pitr.yaml") {
            args.extend(["-p", "target_time=2026-11-26T09:40:00.123456+00"]);
        }
        // A fleet's list of databases: the example params file shipped beside it.
        if rel.ends_with("backup/fleet.yaml") {
            args.extend(["--params-file", "runbooks/backup/fleet.params.example.yaml"]);
        }
        if rel.ends_with("restore/globals.yaml") {
            args.extend([
                "-p",
                "globals=/backups/postgres/20260101/globals_20260101_020000.sql",
            ]);
        }
        let ran = Test::new().cwd(&repo()).args(args).expect(0);
        let name = rel
            .trim_start_matches("runbooks/")
            .trim_end_matches(".yaml")
            .replace('/', "-");
        insta::assert_snapshot!(format!("shipped-plan-{name}"), redact(&ran.stdout));
        n += 1;
    }
    assert!(n >= 13, "{n} shipped runbooks");
}

pub fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "yaml")
            // Params files (`fleet.params.example.yaml`) are not runbooks.
            && !p.display().to_string().contains(".params.")
        {
            out.push(p);
        }
    }
    out.sort();
    out
}

const PARALLEL: &str = r#"version: 1
name: par
objectives: { rto: 1h, milestones: [{ name: first, rto: 10m, steps: [b] }] }
params:
  dir: { type: path, default: /data }
  n: { type: int, required: true }
secrets:
  pw: { env: RB_TEST_PW }
vars:
  out: "{{ params.dir }}/{{ now | strftime('%Y%m%d') }}"
steps:
  - { id: a, type: exec, command: [touch, "{{ vars.out }}.a"], estimate: 10m }
  - { id: b, type: exec, needs: [], command: [echo, "{{ secrets.pw }}", "{{ params.n }}"], estimate: 5m }
  - { id: c, type: exec, needs: [a, b], command: [cat, "{{ steps.a.outputs.file }}"], estimate: 50m }
  - { id: d, type: exec, needs: [b], command: [true] }
"#;

#[test]
fn groups_critical_path_budget_placeholders_and_secrets() {
    let ran = Test::new()
        .file("rb.yaml", PARALLEL)
        .env("RB_TEST_PW", "hunter2-very-secret")
        .args(["plan", "rb.yaml", "-p", "n=7", "--now", NOW])
        .expect(0);
    let out = &ran.stdout;
    assert!(out.contains("1: a, b"), "{out}");
    assert!(out.contains("2: c, d"), "{out}");
    assert!(out.contains("critical path: a → c (1h 00m 00s)"), "{out}");
    assert!(
        out.contains("without an estimate (counted as 0): d"),
        "{out}"
    );
    assert!(out.contains("fits with 0.0s to spare"), "{out}");
    assert!(
        out.contains("command: cat '<steps.a.outputs.file>'"),
        "{out}"
    );
    assert!(out.contains("command: echo '***' 7"), "{out}");
    assert!(out.contains("touch /data/20261126.a"), "{out}");
    assert!(
        out.contains("milestone first: RTO 10m 00s, estimate 5m 00s (fits)"),
        "{out}"
    );
    assert!(!out.contains("hunter2") && !ran.stderr.contains("hunter2"));
}

#[test]
fn over_budget_is_flagged() {
    let ran = Test::new()
        .file("rb.yaml", PARALLEL.replace("rto: 1h", "rto: 30m"))
        .args([
            "plan", "rb.yaml", "-p", "n=1", "--format", "markdown", "--now", NOW,
        ])
        .expect(0);
    ran.stdout_has("is OVER by 30m 00s").stdout_has("❌ over");
}

#[test]
fn params_missing_wrong_unknown_and_from_file() {
    let t = Test::new()
        .file("rb.yaml", PARALLEL)
        .file("p.yaml", "n: 3\ndir: /srv\n");
    // `rb plan` shows a missing required param as a placeholder (for review); `rb run` refuses.
    let ran = t.args(["plan", "rb.yaml"]).expect(0);
    ran.stderr_has("required param `n` has no value");
    let t = Test::new().file("rb.yaml", PARALLEL);
    let ran = t
        .env("RB_TEST_PW", "x")
        .args(["run", "rb.yaml", "--state-dir", "st"])
        .expect(2);
    ran.stderr_has("missing required param `n`");
    let t = Test::new().file("rb.yaml", PARALLEL);
    let ran = t
        .args(["plan", "rb.yaml", "-p", "n=seven", "-p", "dri=/x"])
        .expect(2);
    assert!(
        ran.stderr
            .contains("param `n` (from `-p`): expected an integer, found \"seven\""),
        "{}",
        ran.stderr
    );
    ran.stderr_has("unknown param `dri`")
        .stderr_has("did you mean `dir`?");
    let t = Test::new()
        .file("rb.yaml", PARALLEL)
        .file("p.yaml", "n: 3\ndir: /srv\n");
    let ran = t
        .args(["plan", "rb.yaml", "--params-file", "p.yaml", "--now", NOW])
        .expect(0);
    ran.stdout_has("touch /srv/20261126.a");
}

#[test]
fn plan_has_no_side_effects() {
    use std::os::unix::net::UnixListener;
    let t = Test::new().file(
        "rb.yaml",
        "version: 1\nname: fx\nsteps:\n  - { id: a, type: exec, command: [touch, made-by-a] }\n  - { id: b, type: container.exec, container: db, command: [touch, /x] }\n  - { id: c, type: exec, shell: 'echo hi > made-by-c' }\n",
    );
    let sock = t.path("docker.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    listener.set_nonblocking(true).unwrap();
    let before: Vec<_> = std::fs::read_dir(t.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let dir = t.dir.path().to_owned();
    let t = t
        .env("DOCKER_HOST", &format!("unix://{}", sock.display()))
        .args(["plan", "rb.yaml"]);
    t.expect(0);
    let mut after: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    after.sort();
    let mut before = before;
    before.sort();
    assert_eq!(before, after, "plan created or removed files");
    assert!(
        listener.accept().is_err(),
        "plan connected to the Docker socket"
    );
}

#[test]
fn graph_dot_renders_with_graphviz_and_marks_the_critical_path() {
    let t = Test::new().file("rb.yaml", PARALLEL);
    let ran = t.args(["graph", "rb.yaml", "-p", "n=1"]).expect(0);
    assert!(
        ran.stdout
            .contains("\"a\" -> \"c\" [color=red, penwidth=2];"),
        "{}",
        ran.stdout
    );
    ran.stdout_has("\"b\" -> \"d\";");
    let dot = std::process::Command::new("dot")
        .args(["-Tsvg"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("Graphviz `dot` is installed (apt-get install graphviz)");
    dot.stdin
        .as_ref()
        .unwrap()
        .write_all(ran.stdout.as_bytes())
        .unwrap();
    let out = dot.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "dot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svg = String::from_utf8_lossy(&out.stdout);
    assert!(svg.contains("<svg") && svg.contains(">c</text>"), "{svg}");
}

#[test]
fn graph_mermaid() {
    let t = Test::new().file("rb.yaml", PARALLEL);
    let ran = t
        .args(["graph", "rb.yaml", "-p", "n=1", "--format", "mermaid"])
        .expect(0);
    insta::assert_snapshot!(redact(&ran.stdout));
}

#[test]
fn shipped_graph_dot() {
    let ran = Test::new()
        .args(["graph", &shipped("backup/database.yaml")])
        .expect(0);
    insta::assert_snapshot!(ran.stdout);
}
