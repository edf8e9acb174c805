//! Any file at all gets a diagnostic and exit 2: never a panic or a hang.

use crate::support::Test;
use std::time::{Duration, Instant};

fn refused(t: Test, name: &str, want: &str) {
    let started = Instant::now();
    let ran = t.args(["validate", name]).expect(2);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{name} took {:?}",
        started.elapsed()
    );
    assert!(!ran.stderr.contains("panicked"), "{name}: {}", ran.stderr);
    assert!(
        ran.stderr.contains(want),
        "{name}: want {want:?} in\n{}",
        ran.stderr
    );
}

#[test]
fn binary_garbage() {
    let mut bytes = Vec::new();
    let mut x: u32 = 0x1234_5678;
    for _ in 0..100_000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        bytes.push((x & 0xff) as u8);
    }
    refused(
        Test::new().file("garbage.yaml", bytes),
        "garbage.yaml",
        "not UTF-8",
    );
}

#[test]
fn empty_file() {
    refused(
        Test::new().file("empty.yaml", ""),
        "empty.yaml",
        "a runbook is a YAML mapping",
    );
}

#[test]
fn fifty_megabytes() {
    let big = "# padding\n".repeat(5 * 1024 * 1024);
    refused(
        Test::new().file("big.yaml", big),
        "big.yaml",
        "a runbook may be at most",
    );
}

#[test]
fn deeply_nested() {
    let deep = format!(
        "version: 1\nname: x\nsteps: {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    refused(
        Test::new().file("deep.yaml", deep),
        "deep.yaml",
        "nested deeper than",
    );
}

#[test]
fn deeply_nested_block_mappings() {
    let mut deep = String::from("version: 1\nname: x\nsteps:\n");
    for i in 0..200 {
        deep.push_str(&" ".repeat(i + 1));
        deep.push_str("a:\n");
    }
    refused(
        Test::new().file("deep.yaml", deep),
        "deep.yaml",
        "nested deeper than",
    );
}

#[test]
fn alias_bomb() {
    use std::fmt::Write;
    let mut y = String::from(
        "version: 1\nname: x\na0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
    );
    for i in 1..12 {
        let prev = format!("*a{}", i - 1);
        writeln!(y, "a{i}: &a{i} [{}]", vec![prev; 9].join(", ")).unwrap();
    }
    y.push_str("steps: []\n");
    refused(Test::new().file("bomb.yaml", y), "bomb.yaml", "alias bomb");
}

#[test]
fn non_utf8() {
    refused(
        Test::new().file("latin1.yaml", b"name: caf\xe9\n".as_slice()),
        "latin1.yaml",
        "not UTF-8",
    );
}

#[test]
fn a_directory() {
    let t = Test::new().file("dir/x", "");
    refused(t, "dir", "is a directory");
}

#[test]
fn missing_file() {
    refused(Test::new(), "nope.yaml", "no such file");
}

/// `rb schema | head -c 10`: the reader goes away after a few bytes; rb stops quietly, without
/// a panic (exit 101) or a message about it.
#[test]
fn a_closed_stdout_ends_the_output_quietly() {
    use std::io::Read as _;
    let mut rb = Test::new().args(["schema"]).spawn();
    let mut first = [0u8; 10];
    rb.child()
        .stdout
        .take()
        .expect("stdout")
        .read_exact(&mut first)
        .expect("the first bytes");
    // The pipe is closed here (dropped): the rest of the 140 kB schema has nowhere to go.
    let ran = rb.wait(Duration::from_secs(30));
    ran.exits(0).stderr_lacks("panicked");
    assert!(ran.stderr.is_empty(), "{}", ran.stderr);
}

/// What `rb validate` cannot know (a sub-runbook's outputs) fails at run time naming the step,
/// the field and the template, not minijinja's `<string>:1`.
#[test]
fn a_run_time_render_error_names_the_step_the_field_and_the_template() {
    let t = crate::support::Test::new()
        .file(
            "child.yaml",
            "version: 1\nname: c\nsteps:\n  - { id: x, type: exec, command: [echo, hi] }\n",
        )
        .file(
            "rb.yaml",
            "version: 1\nname: p\nsteps:\n  - { id: inc, type: runbook, file: child.yaml }\n  - { id: use, type: exec, command: [echo, \"{{ steps.inc.outputs.nope.stdout }}\"] }\n",
        );
    let ran = crate::support::Test::new()
        .cwd(t.dir.path())
        .args(["run", "rb.yaml", "--state-dir", "state"])
        .expect(1);
    assert!(
        ran.stderr.contains(
            "cannot render field `command[1]` (`{{ steps.inc.outputs.nope.stdout }}`) of step `use`"
        ),
        "{}",
        ran.stderr
    );
}

/// Booleans reach programs as YAML and `-p` write them (`true`, not minijinja's `True`), also
/// through `string`; a failed conversion in `when` names the value.
#[test]
fn booleans_render_as_written_and_conversions_name_the_value() {
    let t = crate::support::Test::new().file(
        "rb.yaml",
        "version: 1\nname: b\nparams:\n  flag: { type: bool, default: false }\n  n: { type: string, default: abc }\nsteps:\n  - { id: a, type: exec, command: [echo, \"{{ params.flag }}\", \"{{ not params.flag }}\", \"{{ params.flag | string }}\"] }\n  - { id: w, type: exec, command: [\"true\"], when: \"params.n | int > 3\" }\n",
    );
    let plan = crate::support::Test::new()
        .cwd(t.dir.path())
        .args(["plan", "rb.yaml"])
        .expect(0);
    plan.stdout_has("command: echo false true false");
    let (ran, report) = crate::support::run_book(&t, &[], &[]);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert_eq!(
        crate::support::report_step(&report, "a")["outputs"]["stdout"],
        "false true false\n"
    );
    ran.stderr_has("cannot convert 'abc' to int");
}

/// Optional fields: a field that is one `{{ expression }}` may produce a list (or mapping),
/// and `omit` leaves a field (or a list item) out, as if it had not been written.
#[test]
fn a_field_can_be_a_list_from_an_expression_or_be_omitted() {
    let t = crate::support::Test::new().file(
        "rb.yaml",
        "version: 1\nname: o\nparams:\n  cmd: { type: string, default: \"\" }\n  dir: { type: string, default: \"\" }\nsteps:\n  - id: a\n    type: exec\n    command: \"{{ ['sh', '-c', params.cmd] if params.cmd else ['echo', 'default', omit] }}\"\n    cwd: \"{{ params.dir or omit }}\"\n",
    );
    std::fs::create_dir(t.path("sub")).unwrap();
    let run = |extra: &[&str]| {
        let (ran, report) = crate::support::run_book(&t, extra, &[]);
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        crate::support::report_step(&report, "a")["outputs"]["stdout"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        run(&[]),
        "default\n",
        "list from the expression, omit dropped the item"
    );
    assert_eq!(
        run(&["-p", "cmd=pwd", "-p", "dir=sub"]),
        format!("{}\n", t.path("sub").display()),
        "cwd given"
    );
    let plan = crate::support::Test::new()
        .cwd(t.dir.path())
        .args(["plan", "rb.yaml", "-p", "cmd=echo hi"])
        .expect(0);
    plan.stdout_has("command: sh -c 'echo hi'");
    assert!(
        !plan.stdout.contains("cwd:"),
        "cwd omitted: {}",
        plan.stdout
    );
}
