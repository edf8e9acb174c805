//! Every broken runbook under tests/fixtures/invalid gets exit 2 and the diagnostic in its
//! snapshot (file, line, column, a label on the offending text, and help).

use crate::support::{Test, repo};

#[test]
fn each_invalid_fixture_has_its_diagnostic() {
    let dir = repo().join("tests/fixtures/invalid");
    let mut count = 0;
    insta::glob!("../fixtures/invalid", "*.yaml", |path| {
        let name = path.file_name().unwrap().to_str().unwrap();
        let ran = Test::new().cwd(&dir).args(["validate", name]).expect(2);
        assert!(
            ran.stdout.is_empty(),
            "{name}: nothing on stdout, got {}",
            ran.stdout
        );
        assert!(
            !ran.stderr.contains("panicked"),
            "{name} panicked:\n{}",
            ran.stderr
        );
        insta::assert_snapshot!(ran.stderr);
        count += 1;
    });
    assert!(count >= 30, "at least 30 broken runbooks, found {count}");
}

#[test]
fn all_problems_of_a_file_in_one_pass() {
    let ran = Test::new()
        .file(
            "rb.yaml",
            "version: 1\nname: x\nsteps:\n  - { id: a, type: exce }\n  - { id: b, type: sleep, duration: 1s, needs: [z] }\n  - { id: b, type: sleep, duration: 2x }\n",
        )
        .args(["validate", "rb.yaml"])
        .expect(2);
    for want in [
        "unknown step type `exce`",
        "unknown step `z`",
        "duplicate step id `b`",
        "invalid duration `2x`",
        "4 errors",
    ] {
        assert!(
            ran.stderr.contains(want),
            "missing {want:?} in\n{}",
            ran.stderr
        );
    }
}

#[test]
fn line_and_column_point_at_the_text() {
    let ran = Test::new()
        .file(
            "rb.yaml",
            "version: 1\nname: x\nsteps:\n  - id: a\n    type: exec\n    comand: [ls]\n",
        )
        .args(["validate", "rb.yaml"])
        .expect(2);
    ran.stderr_has("rb.yaml:6:5")
        .stderr_has("did you mean `command`?");
}

#[test]
fn validate_many_files_reports_each() {
    let t = Test::new()
        .file(
            "good.yaml",
            "version: 1\nname: good\nsteps:\n  - { id: a, type: sleep, duration: 1s }\n",
        )
        .file(
            "bad.yaml",
            "version: 1\nname: bad\nsteps:\n  - { id: a, type: slep, duration: 1s }\n",
        );
    let ran = t.args(["validate", "good.yaml", "bad.yaml"]).expect(2);
    ran.stdout_has("good.yaml: ok")
        .stderr_has("did you mean `sleep`?");
    Test::new()
        .file(
            "good.yaml",
            "version: 1\nname: good\nsteps:\n  - { id: a, type: sleep, duration: 1s }\n",
        )
        .args(["validate", "good.yaml", "good.yaml"])
        .expect(0);
}
