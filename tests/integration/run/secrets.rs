//! Secrets never appear in anything rb writes; injection strings stay one argument.

use super::{expect, rb, read, report, step, the_run};
use crate::support::Test;
use std::path::{Path, PathBuf};

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
