//! Issue 17, items 6–11 and 12–15: secrets in plans and encodings, Markdown injection,
//! duplicate keys, and inputs too large or too odd, through the real `rb` binary.

use crate::support::{Test, expect};

#[test]
fn a_plan_shows_only_the_env_the_runbook_names_and_never_a_secret_read_through_env() {
    let book = r#"
version: 1
name: envplan
secrets:
  pw: { env: RB_TEST_PW }
steps:
  - id: a
    type: exec
    command: [echo, "{{ env.RB_TEST_PW }}", "{{ env }}", "{{ env.RB_TEST_SHOWN }}"]
"#;
    for format in ["text", "markdown", "json"] {
        let ran = Test::new()
            .file("rb.yaml", book)
            .args(["plan", "rb.yaml", "--format", format])
            .env("RB_TEST_PW", "hunter2-secret")
            .env("RB_TEST_SHOWN", "visible-value")
            .env("RB_TEST_UNRELATED", "leak-me")
            .expect(0);
        let all = ran.stdout + &ran.stderr;
        assert!(!all.contains("hunter2-secret"), "{format}: {all}");
        assert!(!all.contains("leak-me"), "{format}: {all}");
        assert!(!all.contains("RB_TEST_UNRELATED"), "{format}: {all}");
        assert!(all.contains("visible-value"), "{format}: {all}");
    }
}

#[test]
fn a_secret_written_through_any_encoding_never_reaches_the_journal_or_report() {
    let t = Test::new()
        .file(
            "rb.yaml",
            r#"
version: 1
name: encodings
secrets:
  pw: { env: PW }
steps:
  - id: a
    type: exec
    command:
      - echo
      - "{{ secrets.pw | tojson }}"
      - "{{ secrets.pw | escape }}"
      - "{{ secrets.pw | shell_quote }}"
      - "{{ secrets }}"
      - "{{ [secrets.pw] }}"
      - "{{ debug(secrets.pw) }}"
"#,
        )
        .args([
            "run",
            "rb.yaml",
            "--state-dir",
            "state",
            "--report",
            "r.json",
        ])
        .env("PW", r#"p'a"s\s<w>&rd"#);
    let ran = t.run();
    expect(&ran, 0);
    let mut all = ran.stdout + &ran.stderr;
    all += &std::fs::read_to_string(t.path("r.json")).unwrap();
    for run in std::fs::read_dir(t.path("state/runs")).unwrap() {
        all += &std::fs::read_to_string(run.unwrap().path().join("journal.jsonl")).unwrap();
    }
    for piece in ["p'a", "w>", "u0027a", "u003cw", "&lt;w", "&#x27;", "rd\\\""] {
        assert!(!all.contains(piece), "{piece}: {all}");
    }
}

#[test]
fn runbook_text_cannot_hide_the_markdown_plan() {
    let t = Test::new().file(
        "rb.yaml",
        r"
version: 1
name: md
description: '<!-- the rest of this comment is hidden'
params:
  p: { type: string, default: 'x` <!-- y' }
steps:
  - id: a
    type: exec
    command: [echo, '{{ params.p }}']
",
    );
    let ran = t
        .args(["plan", "rb.yaml", "--format", "markdown"])
        .expect(0);
    // `<!--` only inside a code span (literal there): an odd number of backticks before it.
    for line in ran.stdout.lines() {
        if let Some(at) = line.find("<!--") {
            let ticks = line[..at].matches('`').count();
            assert!(ticks % 2 == 1, "outside a code span: {line}");
        }
    }
    ran.stdout_has("&lt;!-- the rest")
        .stdout_has("| # | step |");
}

#[test]
fn duplicate_keys_are_errors_naming_both_places() {
    let cases = [
        (
            "steps",
            "version: 1\nname: dup\nsteps: []\nsteps:\n  - { id: a, type: exec, command: [true] }\n",
            "line 3, column 1",
        ),
        (
            "p",
            "version: 1\nname: dup\nparams:\n  p: { type: string, default: a }\n  p: { type: string, default: b }\nsteps:\n  - { id: a, type: exec, command: [true] }\n",
            "line 4, column 3",
        ),
        (
            "X",
            "version: 1\nname: dup\nsteps:\n  - id: a\n    type: exec\n    command: [true]\n    env: { X: a, X: b }\n",
            "line 7, column 12",
        ),
    ];
    for (key, yaml, first) in cases {
        let t = Test::new().file("rb.yaml", yaml);
        let ran = t.args(["validate", "rb.yaml"]).expect(2);
        assert!(
            ran.stderr
                .contains(&format!("duplicate key `{key}`: first at {first}")),
            "{key}: {}",
            ran.stderr
        );
    }
    let t = Test::new()
        .file("rb.yaml", "version: 1\nname: dup\nparams:\n  p: { type: string, default: a }\nsteps:\n  - { id: a, type: exec, command: [true] }\n")
        .file("p.yaml", "p: a\np: b\n");
    let ran = t
        .args(["plan", "rb.yaml", "--params-file", "p.yaml"])
        .expect(2);
    ran.stderr_has("duplicate key `p`");
}

#[test]
fn one_large_scalar_aliased_many_times_is_refused_quickly() {
    // 0.5 MB of file that expanded to 1 GB of text (4.9 GB of memory, 16 s) before.
    let big = "x".repeat(500_000);
    let yaml = format!(
        "version: 1\nname: bomb\nvars:\n  a: &a {big}\nsteps:\n  - id: s\n    type: exec\n    command: [{}]\n",
        vec!["*a"; 2000].join(", ")
    );
    let started = std::time::Instant::now();
    let ran = Test::new()
        .file("rb.yaml", yaml)
        .args(["validate", "rb.yaml"])
        .expect(2);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(
        ran.stderr
            .contains("document expands to more than 16 MiB of text (alias bomb?)"),
        "{}",
        ran.stderr
    );
}

#[test]
fn endless_files_are_read_no_further_than_the_limit() {
    let ran = Test::new().args(["validate", "/dev/zero"]).expect(2);
    ran.stderr_has("holds more than 4 MiB");
    let book = "version: 1\nname: big\nparams:\n  p: { type: string, default: a }\nsecrets:\n  s: { file: /dev/zero }\nsteps:\n  - { id: a, type: exec, command: [true] }\n";
    let ran = Test::new()
        .file("rb.yaml", book)
        .args(["plan", "rb.yaml", "--params-file", "/dev/zero"])
        .expect(2);
    assert!(
        ran.stderr
            .contains("params file `/dev/zero` holds more than 4 MiB"),
        "{}",
        ran.stderr
    );
    let ran = Test::new()
        .file("rb.yaml", book)
        .args(["run", "rb.yaml"])
        .expect(2);
    assert!(
        ran.stderr
            .contains("secret `s`: cannot read `/dev/zero`: more than 1 MiB"),
        "{}",
        ran.stderr
    );
}

#[test]
fn a_huge_backoff_is_refused_before_anything_runs() {
    let ran = Test::new()
        .file(
            "rb.yaml",
            "version: 1\nname: b\nsteps:\n  - id: a\n    type: exec\n    command: [false]\n    retries: { attempts: 3, delay: 1ms, backoff: 1e300, max_delay: 1ms }\n",
        )
        .args(["validate", "rb.yaml"])
        .expect(2);
    assert!(
        ran.stderr
            .contains("`backoff` must be between 1 and 100, found 1e300"),
        "{}",
        ran.stderr
    );
}

#[test]
fn yaml_tags_are_honoured_or_refused() {
    let ran = Test::new()
        .file(
            "rb.yaml",
            "version: 1\nname: tags\nsteps:\n  - id: a\n    type: exec\n    command: [echo, !!str 0755]\n",
        )
        .args(["plan", "rb.yaml"])
        .expect(0);
    ran.stdout_has("echo 0755");
    let ran = Test::new()
        .file(
            "rb.yaml",
            "version: 1\nname: tags\nsteps:\n  - id: a\n    type: exec\n    command: [echo, !!binary aGVsbG8=]\n",
        )
        .args(["validate", "rb.yaml"])
        .expect(2);
    ran.stderr_has("YAML tag `!!binary` is not supported");
}

#[test]
fn late_and_misleading_messages_are_early_and_exact() {
    // A duration param in a `duration:` field, a templated `container.copy`: valid.
    let ran = Test::new()
        .file(
            "rb.yaml",
            r#"version: 1
name: early
params:
  d: { type: duration, default: 1ms }
  from: { type: string, default: "ctr:/x" }
steps:
  - { id: a, type: sleep, duration: "{{ params.d }}" }
  - { id: b, type: container.copy, from: "{{ params.from }}", to: "{{ params.from | basename }}" }
"#,
        )
        .args(["validate", "rb.yaml"])
        .run();
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    // A NUL from an escape, a prune that keeps nothing, a too-large number, a templated
    // timeout: refused by validate, each with what is wrong.
    for (step, want) in [
        (
            r#"{ id: a, type: exec, command: [echo, "a\0b"] }"#,
            "a NUL character (`\\0`) cannot reach a command",
        ),
        (
            "{ id: a, type: prune, path: /tmp/x, keep: { daily: 0 } }",
            "the retention policy is empty",
        ),
        (
            "{ id: a, type: exec, command: [true], retries: 99999999999999999999 }",
            "`99999999999999999999` is too large for a number of retries",
        ),
        (
            "{ id: a, type: exec, command: [true], timeout: 99999999999999999999s }",
            "duration `99999999999999999999s` is too large",
        ),
        (
            r#"{ id: a, type: exec, command: [true], timeout: "{{ now }}" }"#,
            "`timeout` cannot be a template",
        ),
    ] {
        let ran = Test::new()
            .file(
                "rb.yaml",
                format!("version: 1\nname: late\nsteps:\n  - {step}\n"),
            )
            .args(["validate", "rb.yaml"])
            .expect(2);
        assert!(ran.stderr.contains(want), "{step}: {}", ran.stderr);
    }
    // A missing `cwd` is named as such.
    let t = Test::new().file(
        "rb.yaml",
        "version: 1\nname: cwd\nsteps:\n  - { id: a, type: exec, command: [true], cwd: nowhere }\n",
    );
    let ran = t.args(["run", "rb.yaml"]).expect(1);
    ran.stderr_has("nowhere` (`cwd`) does not exist");
}

#[test]
fn a_secret_transformed_in_a_way_rb_cannot_mask_is_refused_by_validate() {
    for (template, used) in [
        ("{{ secrets.pw | reverse }}", "secrets.pw | reverse"),
        ("{{ secrets.pw[1:] }}", "secrets.pw["),
        (
            "{{ secrets.pw | tojson | upper }}",
            "secrets.pw | tojson | upper",
        ),
    ] {
        let ran = Test::new()
            .file(
                "rb.yaml",
                format!(
                    "version: 1\nname: t\nsecrets:\n  pw: {{ env: PW }}\nsteps:\n  - id: a\n    type: exec\n    command: [echo, \"{template}\"]\n"
                ),
            )
            .args(["validate", "rb.yaml"])
            .expect(2);
        assert!(
            ran.stderr.contains(&format!("`{used}"))
                && ran
                    .stderr
                    .contains("rb cannot mask a secret written this way"),
            "{template}: {}",
            ran.stderr
        );
    }
}
