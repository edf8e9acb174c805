//! The `prune` step run by the real binary: a failed run's half-filled directories are left
//! alone and not counted (`require:`), and its decisions (kept with reasons, removed,
//! incomplete) appear on the terminal and in every report format.

use crate::support::Test;

/// Five complete daily backups and two newer directories of failed runs (no `SHA256SUMS`).
fn backup_root(t: Test) -> Test {
    let mut t = t;
    for day in 1..=7 {
        t = t.file(&format!("backups/2024010{day}/db.dump"), "x");
        if day <= 5 {
            t = t.file(&format!("backups/2024010{day}/SHA256SUMS"), "");
        }
    }
    t
}

const RUNBOOK: &str = "version: 1\nname: retention\nsteps:\n  - id: retention\n    type: prune\n    path: backups\n    match: \"2024*\"\n    time: \"name:%Y%m%d\"\n    require: SHA256SUMS\n    keep: { daily: 2 }\n";

#[test]
fn incomplete_backups_are_left_alone_and_decisions_reach_every_report() {
    let t = backup_root(Test::new().file("rb.yaml", RUNBOOK));
    let state = t.path("state");
    let t = t.args([
        "run",
        "rb.yaml",
        "--state-dir",
        state.to_str().unwrap(),
        "--report",
        "out.json",
        "--report",
        "out.md",
        "--report",
        "out.html",
        "--report",
        "out.txt",
        "--report",
        "out.xml",
    ]);
    let ran = t.expect(0);

    // Counted without `require`, the two failed runs would have been the two days kept.
    let remaining: Vec<String> = {
        let mut v: Vec<String> = std::fs::read_dir(t.path("backups"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(remaining, ["20240104", "20240105", "20240106", "20240107"]);

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(t.path("out.json")).unwrap()).unwrap();
    let outputs = &json["steps"][0]["outputs"];
    assert_eq!(outputs["kept"], serde_json::json!(["20240105", "20240104"]));
    assert_eq!(
        outputs["removed"],
        serde_json::json!(["20240103", "20240102", "20240101"])
    );
    assert_eq!(
        outputs["incomplete"],
        serde_json::json!(["20240106", "20240107"])
    );

    let missing = "`20240106/SHA256SUMS` is missing";
    let summary = "2 kept, 3 removed, 2 incomplete (left alone)";
    for (name, text) in [
        ("terminal", ran.stderr.clone()),
        (
            "out.txt",
            std::fs::read_to_string(t.path("out.txt")).unwrap(),
        ),
        ("out.md", std::fs::read_to_string(t.path("out.md")).unwrap()),
        (
            "out.html",
            std::fs::read_to_string(t.path("out.html")).unwrap(),
        ),
        (
            "out.xml",
            std::fs::read_to_string(t.path("out.xml")).unwrap(),
        ),
    ] {
        // HTML and XML escape the backticks' neighbours only; the words stay.
        for want in [summary, "daily snapshot", "no policy keeps it", "20240103"] {
            assert!(text.contains(want), "{name} lacks {want:?}:\n{text}");
        }
        assert!(
            text.contains(missing) || text.contains("20240106/SHA256SUMS"),
            "{name} lacks why 20240106 was left alone:\n{text}"
        );
    }
    let md = std::fs::read_to_string(t.path("out.md")).unwrap();
    assert!(
        md.contains("| `20240106` | left alone | `20240106/SHA256SUMS` is missing |"),
        "{md}"
    );
    let txt = std::fs::read_to_string(t.path("out.txt")).unwrap();
    assert!(
        txt.contains("decisions of retention: 2 kept, 3 removed"),
        "{txt}"
    );
}

#[test]
fn an_invalid_require_is_a_validation_error_at_its_position() {
    let runbook = RUNBOOK.replace("require: SHA256SUMS", "require: ../elsewhere");
    let ran = Test::new()
        .file("rb.yaml", runbook)
        .args(["validate", "rb.yaml"])
        .expect(2);
    assert!(
        ran.stderr
            .contains("invalid `require` `../elsewhere`: it must stay inside"),
        "{}",
        ran.stderr
    );
    ran.stderr_has("rb.yaml:9:14");
}
