//! Reports: every format rendered from fixed journals (snapshots), `JUnit` read by a real
//! consumer, metrics checked by the real `promtool`, the JSON schema, `rb report` on a real
//! run, `rb history`, `rb status` and the HTML page in headless Chromium.

use crate::support::{Ran, Test, repo};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

const OLD: &str = "20261125T020000Z-0001";
const NEW: &str = "20261126T020000Z-0002";
/// A recovery run of another runbook, with a restore point.
const RESTORE: &str = "20261126T030000Z-0003";

#[expect(
    clippy::needless_pass_by_value,
    reason = "callers build the value inline"
)]
fn ev(at: &str, event: &str, fields: Value) -> String {
    let mut v = json!({ "at": at, "event": event });
    v.as_object_mut()
        .unwrap()
        .extend(fields.as_object().unwrap().clone());
    serde_json::to_string(&v).unwrap()
}

fn started(run_id: &str, at: &str) -> String {
    ev(
        at,
        "run_started",
        json!({
            "version": 1, "run_id": run_id, "runbook": "nightly-backup",
            "file": "runbooks/backup/database.yaml", "file_sha256": "0123456789abcdef0123",
            "now": at, "params": { "db": "app" }, "vars": {}, "secrets": ["pw"],
            "rto_seconds": 600.0, "rpo_seconds": 86400.0, "resumed": false, "pid": 42
        }),
    )
}

fn step(at: &str, id: &str, ty: &str, attempt: u32) -> String {
    ev(
        at,
        "step_started",
        json!({ "step": id, "type": ty, "attempt": attempt, "fingerprint": "fp" }),
    )
}

#[expect(
    clippy::needless_pass_by_value,
    reason = "callers build the value inline"
)]
fn finished(at: &str, id: &str, outcome: &str, attempts: u32, secs: f64, extra: Value) -> String {
    let mut f = json!({
        "step": id, "outcome": outcome, "attempts": attempts, "duration_seconds": secs,
        "fingerprint": "fp"
    });
    f.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    ev(at, "step_finished", f)
}

/// NEW's start, with the step graph and milestones rb records since report format 2.
fn new_started() -> String {
    let mut new_start: Value = serde_json::from_str(&started(NEW, "2026-11-26T02:00:00Z")).unwrap();
    new_start.as_object_mut().unwrap().extend(
        json!({
            "steps": [
                { "id": "dump", "needs": [], "estimate_seconds": 60.0 },
                { "id": "approve", "needs": ["dump"] },
                { "id": "upload", "needs": ["approve"], "estimate_seconds": 120.0 },
                { "id": "cleanup", "needs": ["upload"] }
            ],
            "milestones": [
                { "name": "dumped", "rto_seconds": 300.0, "steps": ["dump"] },
                { "name": "approved", "rto_seconds": 120.0, "steps": ["approve"] },
                { "name": "uploaded", "rto_seconds": 480.0, "steps": ["dump", "upload"] }
            ]
        })
        .as_object()
        .unwrap()
        .clone(),
    );
    new_start.to_string()
}

/// An older successful backup run, and a newer one that failed after a gate.
fn write_journals(state: &Path) {
    let old = [
        started(OLD, "2026-11-25T02:00:00Z"),
        step("2026-11-25T02:00:00Z", "dump", "exec", 1),
        finished(
            "2026-11-25T02:01:00Z",
            "dump",
            "succeeded",
            1,
            60.0,
            json!({ "outputs": { "file": "/backup/app.dump", "bytes": 2_000_000_000_u64 } }),
        ),
        step("2026-11-25T02:01:00Z", "upload", "exec", 1),
        finished(
            "2026-11-25T02:02:00Z",
            "upload",
            "succeeded",
            1,
            60.0,
            json!({}),
        ),
        ev(
            "2026-11-25T02:02:00Z",
            "run_finished",
            json!({ "outcome": "succeeded", "duration_seconds": 120.0, "gate_wait_seconds": 0.0 }),
        ),
    ];
    let new = [
        new_started(),
        step("2026-11-26T02:00:00Z", "dump", "exec", 1),
        ev(
            "2026-11-26T02:00:05Z",
            "step_retrying",
            json!({ "step": "dump", "attempt": 1, "delay_seconds": 5.0, "error": "exit 1" }),
        ),
        step("2026-11-26T02:00:10Z", "dump", "exec", 2),
        finished(
            "2026-11-26T02:01:10Z",
            "dump",
            "succeeded",
            2,
            70.0,
            json!({ "outputs": { "file": "/backup/app.dump", "bytes": 123_456 } }),
        ),
        step("2026-11-26T02:01:10Z", "approve", "gate", 1),
        ev(
            "2026-11-26T02:01:10Z",
            "gate_requested",
            json!({ "step": "approve", "message": "upload?" }),
        ),
        ev(
            "2026-11-26T02:06:10Z",
            "gate_answered",
            json!({ "step": "approve", "approved": true, "by": "alice", "waited_seconds": 300.0 }),
        ),
        finished(
            "2026-11-26T02:06:10Z",
            "approve",
            "succeeded",
            1,
            300.0,
            json!({}),
        ),
        step("2026-11-26T02:06:10Z", "upload", "exec", 1),
        finished(
            "2026-11-26T02:12:10Z",
            "upload",
            "failed",
            1,
            360.0,
            json!({ "error": "exit status 1: <connection refused> & \"gave up\"\nsecond line" }),
        ),
        finished(
            "2026-11-26T02:12:10Z",
            "cleanup",
            "skipped",
            0,
            0.0,
            json!({ "reason": "a need failed" }),
        ),
        ev(
            "2026-11-26T02:12:10Z",
            "run_finished",
            json!({ "outcome": "failed", "duration_seconds": 730.0, "gate_wait_seconds": 300.0 }),
        ),
    ];
    let restore = recovery_journal();
    for (id, lines) in [(OLD, &old[..]), (NEW, &new[..]), (RESTORE, &restore[..])] {
        let dir = state.join("runs").join(id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("journal.jsonl"), lines.join("\n") + "\n").unwrap();
    }
}

/// A point-in-time recovery 90 minutes after its target (RPO 1h: over by 30m); `restore`
/// and `notify` run side by side after `choose`, and `verify` waits for `restore`.
fn recovery_journal() -> Vec<String> {
    let mut start: Value = serde_json::from_str(&started(RESTORE, "2026-11-26T03:00:00Z")).unwrap();
    start.as_object_mut().unwrap().extend(
        json!({
            "runbook": "restore-db", "file": "runbooks/restore/pitr.yaml",
            "params": { "target_time": "2026-11-26 01:30:00+00" },
            "rto_seconds": 3600.0, "rpo_seconds": 3600.0,
            "steps": [
                { "id": "choose", "needs": [], "estimate_seconds": 5.0 },
                { "id": "restore", "needs": ["choose"], "estimate_seconds": 60.0 },
                { "id": "notify", "needs": ["choose"] },
                { "id": "verify", "needs": ["restore"] }
            ],
            "milestones": [{ "name": "restored", "rto_seconds": 1800.0, "steps": ["verify"] }],
            "restore_point": { "param": "target_time" }
        })
        .as_object()
        .unwrap()
        .clone(),
    );
    let mut lines = vec![start.to_string()];
    for (id, from, to) in [
        ("choose", "03:00:00", "03:00:10"),
        ("restore", "03:00:10", "03:01:10"),
        ("notify", "03:00:10", "03:00:20"),
        ("verify", "03:01:10", "03:01:20"),
    ] {
        let (from, to) = (format!("2026-11-26T{from}Z"), format!("2026-11-26T{to}Z"));
        lines.push(step(&from, id, "exec", 1));
        let secs = (chrono::DateTime::parse_from_rfc3339(&to).unwrap()
            - chrono::DateTime::parse_from_rfc3339(&from).unwrap())
        .num_seconds();
        // A safety dump: a file with a size, which in a recovery run is not a backup.
        let outputs = if id == "restore" {
            json!({ "outputs": { "file": "/backup/safety.dump", "bytes": 99 } })
        } else {
            json!({})
        };
        #[expect(clippy::cast_precision_loss, reason = "seconds of a fixture")]
        lines.push(finished(&to, id, "succeeded", 1, secs as f64, outputs));
    }
    lines.push(ev(
        "2026-11-26T03:01:20Z",
        "run_finished",
        json!({ "outcome": "succeeded", "duration_seconds": 80.0, "gate_wait_seconds": 0.0 }),
    ));
    lines
}

fn fixture() -> Test {
    let t = Test::new();
    write_journals(&t.path("state"));
    t
}

fn rb(t: &Test, args: &[&str]) -> Ran {
    let state = t.path("state");
    Test::new()
        .cwd(t.dir.path())
        .args(args)
        .args(["--state-dir", state.to_str().unwrap()])
        .expect(0)
}

#[test]
fn each_format_renders_the_fixed_run() {
    let t = fixture();
    for format in ["text", "markdown", "json", "junit", "html", "prometheus"] {
        let ran = rb(&t, &["report", NEW, "--format", format]);
        insta::assert_snapshot!(format!("report-{format}"), ran.stdout);
    }
}

#[test]
fn each_format_renders_the_fixed_recovery_run() {
    let t = fixture();
    for format in ["text", "markdown", "json", "junit", "html", "prometheus"] {
        let ran = rb(&t, &["report", RESTORE, "--format", format]);
        insta::assert_snapshot!(format!("recovery-{format}"), ran.stdout);
    }
}

#[test]
fn reports_show_the_actual_critical_path_milestones_and_achieved_rpo() {
    let t = fixture();
    let text = rb(&t, &["report", NEW]).stdout;
    for line in [
        "critical path: dump → approve → upload (12m 10s of 12m 10s)",
        "milestone dumped (RTO 5m 00s): met with 3m 50s to spare (reached after 1m 10s)",
        "milestone approved (RTO 2m 00s): MISSED by 4m 10s (reached after 6m 10s)",
        "milestone uploaded (RTO 8m 00s): NOT REACHED",
    ] {
        assert!(text.contains(line), "{line}\n{text}");
    }
    let doc: Value =
        serde_json::from_str(&rb(&t, &["report", NEW, "--format", "json"]).stdout).unwrap();
    assert_eq!(doc["format_version"], 3);
    assert_eq!(doc["critical_path"], json!(["dump", "approve", "upload"]));
    assert_eq!(doc["milestones"][2]["status"], "not_reached");
    assert_eq!(doc["rpo"], Value::Null, "not a recovery run");
    let by_id = |id: &str| {
        doc["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(by_id("upload")["on_critical_path"], true);
    assert_eq!(by_id("cleanup")["on_critical_path"], false);

    // The recovery run: `notify` ran beside `restore` but did not decide the finish.
    let rec: Value =
        serde_json::from_str(&rb(&t, &["report", RESTORE, "--format", "json"]).stdout).unwrap();
    assert_eq!(rec["critical_path"], json!(["choose", "restore", "verify"]));
    assert_eq!(rec["rpo"]["restore_point"], "2026-11-26T01:30:00Z");
    assert_eq!(rec["rpo"]["achieved_seconds"], 5400.0);
    assert_eq!(rec["rpo"]["met"], false);
    assert_eq!(rec["milestones"][0]["status"], "met");
    let text = rb(&t, &["report", RESTORE]).stdout;
    assert!(
        text.contains("achieved RPO 1h 30m 00s (restored data of 2026-11-26T01:30:00+00:00, from param `target_time`): OVER the RPO of 1h 00m 00s by 30m 00s"),
        "{text}"
    );
    let prom = t.path("restore.prom");
    std::fs::write(
        &prom,
        rb(&t, &["report", RESTORE, "--format", "prometheus"]).stdout,
    )
    .unwrap();
    let checked = promtool_check(&prom);
    let metrics = std::fs::read_to_string(&prom).unwrap();
    assert!(
        metrics.contains("rb_rpo_achieved_seconds{runbook=\"restore-db\"} 5400\n"),
        "{metrics}{checked}"
    );
    assert!(!metrics.contains("backup_size_bytes"), "{metrics}");
    let junit = rb(&t, &["report", RESTORE, "--format", "junit"]).stdout;
    assert!(
        junit.contains("name=\"rpo\" time=\"0.000\">\n      <failure"),
        "{junit}"
    );
    assert!(
        junit.contains("<property name=\"critical_path\" value=\"choose restore verify\"/>"),
        "{junit}"
    );
}

#[test]
fn a_journal_without_the_step_graph_still_renders() {
    // OLD was written the way rb wrote journals before the graph and objectives were in it.
    let t = fixture();
    let doc: Value =
        serde_json::from_str(&rb(&t, &["report", OLD, "--format", "json"]).stdout).unwrap();
    assert_eq!(doc["critical_path"], json!([]));
    assert_eq!(doc["milestones"], json!([]));
    let text = rb(&t, &["report", OLD]).stdout;
    assert!(text.contains("RTO 10m 00s: met"), "{text}");
    assert!(text.contains("critical path: unknown"), "{text}");
}

#[test]
fn text_report_has_the_verdict_and_the_split_of_time() {
    let t = fixture();
    let out = rb(&t, &["report", NEW]).stdout;
    // A failed run recovered nothing: no "met" or "missed by", whatever the time.
    assert!(
        out.contains("RTO 10m 00s: not met, the run failed after 12m 10s"),
        "{out}"
    );
    assert!(
        out.contains("total 12m 10s = machine 7m 10s + gate wait 5m 00s"),
        "{out}"
    );
    let old = rb(&t, &["report", OLD]).stdout;
    assert!(
        old.contains("RTO 10m 00s: met with 8m 00s to spare"),
        "{old}"
    );
}

fn python(script: &str, input: &str) -> std::process::Output {
    use std::io::Write as _;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 must be installed");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn junit_is_read_by_junitparser() {
    let t = fixture();
    let xml = rb(&t, &["report", NEW, "--format", "junit"]).stdout;
    let script = r#"
import sys
try:
    from junitparser import JUnitXml, Failure, Skipped
except ImportError:
    sys.exit("junitparser is missing: pip install junitparser")
xml = JUnitXml.fromstring(sys.stdin.read())
for suite in xml:
    print("suite", suite.name, suite.tests, suite.failures, suite.skipped, suite.time)
    for case in suite:
        kinds = [type(r).__name__ for r in case.result]
        msgs = [r.message for r in case.result]
        print("case", case.name, case.time, kinds, msgs)
"#;
    let out = python(script, &xml);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = "suite nightly-backup 8 4 1 730.0
case dump 70.0 [] []
case approve 300.0 [] []
case upload 360.0 ['Failure'] ['exit status 1: <connection refused> & \"gave up\"']
case cleanup 0.0 ['Skipped'] ['a need failed']
case rto 730.0 ['Failure'] ['not recovered: the run failed after 730.000s of the RTO of 600.000s']
case milestone dumped 70.0 [] []
case milestone approved 370.0 ['Failure'] ['milestone approved (RTO 2m 00s): MISSED by 4m 10s (reached after 6m 10s)']
case milestone uploaded 0.0 ['Failure'] ['milestone uploaded (RTO 8m 00s): NOT REACHED (not all of its steps succeeded)']
";
    assert_eq!(stdout, expected);
}

fn promtool_check(path: &Path) -> String {
    let out = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(path).unwrap())
        .output()
        .unwrap_or_else(|e| {
            panic!("promtool is needed for this test (Debian: apt-get install -y prometheus): {e}")
        });
    assert!(
        out.status.success(),
        "promtool rejects {}:\n{}{}\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(path).unwrap()
    );
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn metrics_of_a_failed_run_keep_the_last_good_backup_and_pass_promtool() {
    let t = fixture();
    let text = rb(&t, &["report", NEW, "--format", "prometheus"]).stdout;
    let path = t.path("fixed.prom");
    std::fs::write(&path, &text).unwrap();
    promtool_check(&path);
    assert!(
        text.contains("rb_run_success{runbook=\"nightly-backup\"} 0\n"),
        "{text}"
    );
    // The failed run made no backup: the metrics are those of the run before it.
    let old_end = chrono::DateTime::parse_from_rfc3339("2026-11-25T02:02:00Z")
        .unwrap()
        .timestamp();
    assert!(
        text.contains(&format!(
            "backup_last_success_timestamp{{runbook=\"nightly-backup\"}} {old_end}\n"
        )),
        "{text}"
    );
    assert!(
        text.contains("backup_size_bytes{runbook=\"nightly-backup\"} 2000000000\n"),
        "{text}"
    );
}

fn exec_runbook(name: &str) -> String {
    format!(
        "version: 1\nname: {name}\nobjectives: {{ rto: 10m, rpo: 1h }}\nsteps:\n  - {{ id: dump, type: exec, shell: 'head -c 5000 /dev/zero', stdout: {{ file: dump.bin }} }}\n  - {{ id: check, type: exec, needs: [dump], command: [test, -s, dump.bin] }}\n  - {{ id: note, type: exec, needs: [check], command: [echo, done] }}\n"
    )
}

#[test]
fn a_real_run_writes_every_report_format_and_metrics() {
    let t = Test::new().file("rb.yaml", exec_runbook("drill"));
    let state = t.path("state");
    let s = state.to_str().unwrap();
    let t = t.args([
        "run",
        "rb.yaml",
        "--state-dir",
        s,
        "--report",
        "out.json",
        "--report",
        "out.md",
        "--report",
        "out.xml",
        "--report",
        "out.html",
        "--report",
        "out.txt",
        "--metrics",
        "drill.prom",
    ]);
    t.expect(0);
    let metrics = std::fs::read_to_string(t.path("drill.prom")).unwrap();
    promtool_check(&t.path("drill.prom"));
    assert!(
        metrics.contains("rb_run_success{runbook=\"drill\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("rb_rto_seconds{runbook=\"drill\"} 600\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("backup_size_bytes{runbook=\"drill\"} 5000\n"),
        "{metrics}"
    );
    for step in ["dump", "check", "note"] {
        assert!(
            metrics.contains(&format!(
                "rb_step_duration_seconds{{runbook=\"drill\",step=\"{step}\"}}"
            )),
            "{metrics}"
        );
    }
    let stamp: i64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("backup_last_success_timestamp{runbook=\"drill\"} "))
        .unwrap()
        .parse()
        .unwrap();
    assert!((chrono::Utc::now().timestamp() - stamp).abs() < 300);

    // `rb report` re-renders the same run from its journal.
    let runs: Vec<_> = std::fs::read_dir(state.join("runs")).unwrap().collect();
    assert_eq!(runs.len(), 1);
    let run_id = runs[0].as_ref().unwrap().file_name().into_string().unwrap();
    let again = |format: &str| {
        Test::new()
            .args(["report", &run_id, "--format", format, "--state-dir", s])
            .expect(0)
            .stdout
    };
    let json = std::fs::read_to_string(t.path("out.json")).unwrap();
    assert_eq!(again("json"), json);
    assert_eq!(
        std::fs::read_to_string(state.join("runs").join(&run_id).join("report.json")).unwrap(),
        json
    );
    assert_eq!(
        again("markdown"),
        std::fs::read_to_string(t.path("out.md")).unwrap()
    );
    assert_eq!(
        again("junit"),
        std::fs::read_to_string(t.path("out.xml")).unwrap()
    );
    assert_eq!(
        again("text"),
        std::fs::read_to_string(t.path("out.txt")).unwrap()
    );
    let report: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["outcome"], "succeeded");
    assert_eq!(report["steps"].as_array().unwrap().len(), 3);
    assert_eq!(report["steps"][0]["outputs"]["bytes"], 5000);
    assert_eq!(report["critical_path"], json!(["dump", "check", "note"]));
    assert_eq!(report["steps"][1]["needs"], json!(["dump"]));
    let html = std::fs::read_to_string(t.path("out.html")).unwrap();
    assert!(html.contains("<svg id=\"gantt\"") && html.contains("id=\"rto\""));
    validate_against_schema(&report);

    // A second run: the markdown names it, and history shows both.
    let t2 = Test::new()
        .cwd(t.dir.path())
        .args(["run", "rb.yaml", "--state-dir", s, "-q"]);
    t2.expect(0);
    let hist = Test::new()
        .args(["history", "drill", "--state-dir", s])
        .expect(0)
        .stdout;
    assert!(hist.contains("2 runs, 2 succeeded"), "{hist}");
    assert!(hist.contains(&run_id), "{hist}");
}

#[test]
fn unknown_report_extension_is_a_usage_error_before_anything_runs() {
    let t = Test::new().file("rb.yaml", exec_runbook("drill")).args([
        "run",
        "rb.yaml",
        "--state-dir",
        "state",
        "--report",
        "out.pdf",
    ]);
    let ran = t.expect(2);
    assert!(
        ran.stderr
            .contains("cannot tell the report format of `out.pdf`"),
        "{}",
        ran.stderr
    );
    assert!(!t.path("state").join("runs").exists());
    assert!(!t.path("dump.bin").exists());
}

#[test]
fn report_of_an_unknown_run_fails_and_names_the_newest() {
    let t = fixture();
    let state = t.path("state");
    let ran = Test::new()
        .args(["report", "nope", "--state-dir", state.to_str().unwrap()])
        .expect(2);
    ran.stderr_has("no run `nope`");
    assert!(ran.stderr.contains(NEW), "{}", ran.stderr);
}

fn report_schema() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(repo().join("schemas/report.schema.json")).unwrap(),
    )
    .unwrap()
}

fn validate_against_schema(report: &Value) {
    let validator = jsonschema::validator_for(&report_schema()).expect("a valid JSON Schema");
    let errors: Vec<String> = validator
        .iter_errors(report)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn committed_report_schema_has_not_drifted() {
    let ran = Test::new().args(["report", "--schema"]).expect(0);
    let committed = std::fs::read_to_string(repo().join("schemas/report.schema.json")).unwrap();
    assert!(
        ran.stdout.trim_end() == committed.trim_end(),
        "schemas/report.schema.json is out of date: run `cargo run -- report --schema > schemas/report.schema.json`"
    );
}

#[test]
fn fixed_reports_validate_and_broken_ones_do_not() {
    let t = fixture();
    let validator = jsonschema::validator_for(&report_schema()).unwrap();
    for id in [OLD, NEW, RESTORE] {
        let doc: Value =
            serde_json::from_str(&rb(&t, &["report", id, "--format", "json"]).stdout).unwrap();
        validate_against_schema(&doc);
        let mut bad = doc.clone();
        bad["steps"][0]["status"] = json!("exploded");
        assert!(!validator.is_valid(&bad));
        let mut bad = doc;
        bad["outcome"] = json!("meh");
        assert!(!validator.is_valid(&bad));
    }
}

#[test]
fn history_lists_runs_oldest_first_with_the_trend() {
    let t = fixture();
    let out = rb(&t, &["history"]).stdout;
    insta::assert_snapshot!(out);
    assert!(out.find(OLD).unwrap() < out.find(NEW).unwrap());
    let none = Test::new()
        .args([
            "history",
            "other",
            "--state-dir",
            t.path("state").to_str().unwrap(),
        ])
        .expect(0);
    assert!(none.stderr.contains("no runs of `other`"));
}

#[test]
fn status_checks_the_rpo_against_the_newest_successful_run() {
    let t = fixture();
    let state = t.path("state");
    let s = state.to_str().unwrap();
    // The last success ended 2026-11-25T02:02:00Z; the RPO is 24h.
    let ok = Test::new()
        .args(["status", "--state-dir", s, "--now", "2026-11-26T01:00:00Z"])
        .expect(0);
    assert!(
        ok.stdout.contains("nightly-backup") && ok.stdout.contains(" ok"),
        "{}",
        ok.stdout
    );
    let late = Test::new()
        .args(["status", "--state-dir", s, "--now", "2026-11-26T02:02:01Z"])
        .expect(1);
    insta::assert_snapshot!(late.stdout);
    assert!(late.stdout.contains("RPO VIOLATED"));
    // `restore-db` has an RPO too, but restores backups (it has a restore point).
    late.stdout_lacks("restore-db");
}

/// What headless Chromium did with a page: its stderr (console messages show there as
/// `CONSOLE` lines), the URLs of the page's requests (from the net log, without the
/// browser's own calls home), and the `--dump-dom` output when asked.
struct Opened {
    console: Vec<String>,
    requests: Vec<String>,
    stdout: String,
}

fn chromium(page: &Path, args: &[String]) -> Opened {
    let browser = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("chromium is needed for this test (Debian: apt-get install -y chromium)");
    let profile = tempfile::tempdir().unwrap();
    let net = profile.path().join("net.json");
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1000,900",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!(
            "--user-data-dir={}",
            profile.path().join("p").display()
        ))
        .arg(format!("--log-net-log={}", net.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let log = std::fs::read_to_string(&net).unwrap_or_default();
    let requests = log
        .split("\"url\":\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|u| !u.starts_with("file://"))
        .filter(|u| {
            let host = u.split('/').nth(2).unwrap_or_default();
            !(host.ends_with("google.com") || host.ends_with("googleapis.com"))
        })
        .map(str::to_owned)
        .collect();
    Opened {
        console: stderr
            .lines()
            .filter(|l| l.contains(":CONSOLE"))
            .map(str::to_owned)
            .collect(),
        requests,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

#[test]
fn html_report_renders_in_headless_chromium() {
    let t = fixture();
    let html = rb(&t, &["report", NEW, "--format", "html"]).stdout;
    assert!(
        html.contains("content=\"default-src 'none'; style-src 'unsafe-inline'\""),
        "the page must forbid every fetch"
    );
    // Both runs are in the trend.
    assert!(html.contains(&format!("<title>{OLD} succeeded")), "{html}");
    let page = t.path("report.html");
    std::fs::write(&page, &html).unwrap();
    let shot = t.path("shot.png");
    let opened = chromium(&page, &[format!("--screenshot={}", shot.display())]);
    assert_eq!(opened.console, Vec::<String>::new(), "console messages");
    assert_eq!(opened.requests, Vec::<String>::new(), "the page fetched");
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 5000,
        "{} bytes",
        png.len()
    );

    // The DOM as the browser built it: the critical path's bars, the RTO line, a marker and
    // a verdict for each milestone, the trend of the earlier run.
    let dom = chromium(&page, &["--dump-dom".to_owned()]).stdout;
    assert_eq!(
        dom.matches("<rect class=\"succeeded critical\"").count()
            + dom.matches("<rect class=\"failed critical\"").count(),
        3,
        "dump, approve and upload are on the critical path: {dom}"
    );
    assert!(
        dom.contains("id=\"critical-path\">critical path: dump → approve → upload"),
        "{dom}"
    );
    assert!(dom.contains("<line id=\"rto\""), "{dom}");
    for m in ["dumped", "approved", "uploaded"] {
        assert!(
            dom.contains(&format!("<g class=\"milestone\" data-milestone=\"{m}\">")),
            "no marker for {m}: {dom}"
        );
        assert!(
            dom.contains(&format!("data-milestone=\"{m}\">milestone {m} (RTO")),
            "no verdict for {m}: {dom}"
        );
    }
    assert!(dom.contains("<svg id=\"trend\""), "{dom}");

    // The checks above do catch a page that fetches or logs.
    let bad = t.path("bad.html");
    std::fs::write(
        &bad,
        "<html><body><img src=\"http://127.0.0.1:9/x.png\"><script>console.error('boom')</script></body></html>",
    )
    .unwrap();
    let opened = chromium(&bad, &["--dump-dom".to_owned()]);
    assert!(
        opened.console.iter().any(|l| l.contains("boom")),
        "{:?}",
        opened.console
    );
    assert!(
        opened
            .requests
            .iter()
            .any(|u| u.starts_with("http://127.0.0.1:9/")),
        "{:?}",
        opened.requests
    );
}

/// The first YAML code block after `## Alert rules` in `docs/metrics.md`.
fn documented_rules() -> String {
    let doc = std::fs::read_to_string(repo().join("docs/metrics.md")).unwrap();
    let after = &doc[doc.find("## Alert rules").expect("an Alert rules section")..];
    let start = after.find("```yaml\n").unwrap() + "```yaml\n".len();
    after[start..start + after[start..].find("```").unwrap()].to_owned()
}

#[test]
fn documented_alert_rules_fire_on_the_metrics_rb_writes() {
    let t = fixture();
    let metrics = rb(&t, &["report", NEW, "--format", "prometheus"]).stdout;
    // The series the rules are tested on are the ones rb writes (names and labels).
    let series = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{")))
            .and_then(|l| l.split_once(' '))
            .map_or_else(|| panic!("no {name} in\n{metrics}"), |(s, _)| s.to_owned())
    };
    std::fs::write(t.path("rules.yml"), documented_rules()).unwrap();
    let tests = format!(
        r"rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1h
    input_series:
      - series: '{stamp}'
        values: '0x30'
      - series: '{size}'
        values: '2000000000x30'
    alert_rule_test:
      - eval_time: 23h
        alertname: BackupFailed
        exp_alerts: []
      - eval_time: 25h
        alertname: BackupFailed
        exp_alerts:
          - exp_labels: {{ severity: critical, runbook: nightly-backup }}
            exp_annotations:
              summary: No successful backup of nightly-backup for over 24h
              description: Last success 1970-01-01 00:00:00 +0000 UTC. Check `rb history nightly-backup` and the newest run's report (`rb report latest`).
      - eval_time: 1h
        alertname: BackupTooLarge
        exp_alerts:
          - exp_labels: {{ severity: warning, runbook: nightly-backup }}
            exp_annotations:
              summary: Backup of nightly-backup is 1.863GiB (over 1 GiB)
",
        stamp = series("backup_last_success_timestamp"),
        size = series("backup_size_bytes"),
    );
    std::fs::write(t.path("rules_test.yml"), tests).unwrap();
    let out = Command::new("promtool")
        .args(["test", "rules", "rules_test.yml"])
        .current_dir(t.dir.path())
        .output()
        .unwrap_or_else(|e| {
            panic!("promtool is needed for this test (Debian: apt-get install -y prometheus): {e}")
        });
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A run far shorter than its RTO: the timeline fits the run (bars wide enough to read), the
/// RTO is marked at the edge as off scale, times are to the second, and a first run shows no
/// chart of earlier runs.
#[test]
fn html_timeline_fits_a_run_much_shorter_than_its_rto() {
    let t = Test::new().file(
        "rb.yaml",
        "version: 1\nname: quick\nobjectives: { rto: 4h }\nsteps:\n  - { id: a, type: sleep, duration: 300ms }\n  - { id: b, type: sleep, duration: 300ms }\n",
    );
    let (ran, _) = crate::support::run_book(&t, &["--report", "r.html"], &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let html = std::fs::read_to_string(t.path("r.html")).unwrap();
    let width_of = |step: &str| -> f64 {
        let title = format!("<title>{step}: succeeded");
        let at = html.find(&title).unwrap_or_else(|| panic!("{html}"));
        let rect = &html[html[..at].rfind("<rect").unwrap()..at];
        let w = rect.split("width=\"").nth(1).unwrap();
        w[..w.find('"').unwrap()].parse().unwrap()
    };
    assert!(width_of("a") > 150.0 && width_of("b") > 150.0, "{html}");
    assert!(html.contains("RTO 4h 00m 00s (off scale) ▸"), "{html}");
    assert!(html.contains(" UTC ("), "{html}");
    assert!(html.contains("no earlier runs to compare"), "{html}");
    assert!(!html.contains("<svg id=\"trend\""), "{html}");
}
