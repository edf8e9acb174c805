//! Property tests of the loader → validator → planner pipeline (`rb::fuzzing::load_and_plan`,
//! the function the `load_and_plan` fuzz target calls): any runbook the loader accepts plans,
//! and renders in every plan format, without panic.
//!
//! - generated runbooks: random step graphs of valid types with random `needs`, params, vars,
//!   secrets and templates; built only from valid parts they must all plan, and with invalid
//!   parts mixed in none may panic;
//! - mutated shipped runbooks: lines dropped, duplicated, swapped, truncated, bytes changed.
//!
//! `RB_PROPTEST_CASES` sets the number of cases (default 64 each in CI).

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestRunner};
use rb::fuzzing::{Stage, load_and_plan};
use serde_json::{Value, json};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;

fn cases() -> u32 {
    std::env::var("RB_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    })
}

/// Templates valid in any step of the generated runbook (`{up}` is replaced by the id of a
/// step this one needs, when it needs any).
const VALID: &[&str] = &[
    "plain",
    "{{ params.name }}",
    "n{{ params.count * 2 }}",
    "{{ vars.stamp }}",
    "{{ vars.dir }}/{{ params.name }}.dump",
    "{{ now | strftime('%Y%m%d') }}",
    "{{ run.id }}-{{ run.name }}",
    "{{ params.dir | basename }}",
    "{{ params.dir | dirname | shell_quote }}",
    "{{ secrets.token }}",
    "{% if params.flag %}on{% else %}off{% endif %}",
    "{% for i in range(params.count) %}{{ i }}{% endfor %}",
    "$(touch /tmp/pwned); rm -rf x `id` 'q\" \\",
    "--help",
    "{{ steps.{up}.outputs.stdout | trim }}",
    "{{ steps.{up}.status }}",
];

/// Templates that are wrong in some way: the loader, validator or planner must say so.
const INVALID: &[&str] = &[
    "{{ params.missing }}",
    "{{ nope }}",
    "{{ a",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{{ steps.zz.outputs.x }}",
    "{{ now | strftime('%Q') }}",
    "{{ params.name | basename(1, 2) }}",
    "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "{% include 'x' %}",
    "{{ 'x' * 1000 }}",
];

#[derive(Debug, Clone)]
struct GenStep {
    kind: u8,
    needs: Vec<Index>,
    explicit_needs: bool,
    templates: [Index; 2],
    when: bool,
    flags: u8,
}

fn gen_step(max_needs: usize) -> impl Strategy<Value = GenStep> {
    (
        0u8..9,
        prop::collection::vec(any::<Index>(), 0..=max_needs),
        any::<bool>(),
        [any::<Index>(), any::<Index>()],
        any::<bool>(),
        any::<u8>(),
    )
        .prop_map(
            |(kind, needs, explicit_needs, templates, when, flags)| GenStep {
                kind,
                needs,
                explicit_needs,
                templates,
                when,
                flags,
            },
        )
}

/// One template for step `i`: from `pool`, `{up}` bound to one of its needs (for an output,
/// one whose type produces `stdout`: `rb validate` refuses an output a type never makes).
fn template(pool: &[&str], pick: Index, needs: &[String], with_stdout: &[String]) -> String {
    let t = pick.get(pool);
    let needs = if t.contains("outputs.stdout") {
        with_stdout
    } else {
        needs
    };
    match needs.first() {
        Some(up) => t.replace("{up}", up),
        // No step to read from: a plain value instead.
        None if t.contains("{up}") => "no-upstream".to_owned(),
        None => (*t).to_owned(),
    }
}

fn config(kind: u8, a: &str, b: &str) -> Value {
    match kind {
        0 => json!({"command": ["echo", a, b]}),
        1 => json!({"shell": format!("echo {a} {b}")}),
        2 => {
            json!({"container": a, "command": ["pg_dump", "-d", b], "stdout": {"file": format!("/tmp/rb-gen/{b}.dump"), "checksum": "sha256"}})
        }
        3 => json!({"duration": "1s"}),
        4 => json!({"that": ["params.flag or params.count > 0"], "message": a}),
        5 => json!({"message": a}),
        6 => json!({"source": format!("/tmp/rb-gen/{a}.sql"), "format": "zstd", "level": 3}),
        7 => json!({"files": [a, b], "write": "/tmp/rb-gen/SHA256SUMS"}),
        _ => json!({"name": a}),
    }
}

const TYPES: &[&str] = &[
    "exec",
    "exec",
    "container.exec",
    "sleep",
    "assert",
    "gate",
    "compress",
    "checksum",
    "network.create",
];

/// The runbook as JSON (which is YAML).
fn runbook(steps: &[GenStep], pool: &[&str]) -> String {
    let mut out = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let id = format!("s{i}");
        let mut needs: Vec<String> = if i == 0 {
            Vec::new()
        } else {
            s.needs.iter().map(|n| ids[n.index(i)].clone()).collect()
        };
        needs.sort();
        needs.dedup();
        // Without `needs`, a step needs the one before it.
        let readable: Vec<String> = if s.explicit_needs || i == 0 {
            needs.clone()
        } else {
            vec![ids[i - 1].clone()]
        };
        // exec, exec, container.exec: the kinds that produce `stdout`.
        let with_stdout: Vec<String> = readable
            .iter()
            .filter(|id| {
                let k: usize = id[1..].parse().expect("an id s<N>");
                usize::from(steps[k].kind) % TYPES.len() <= 2
            })
            .cloned()
            .collect();
        let a = template(pool, s.templates[0], &readable, &with_stdout);
        let b = template(pool, s.templates[1], &readable, &with_stdout);
        let mut step = json!({"id": id, "type": TYPES[usize::from(s.kind) % TYPES.len()]});
        let obj = step.as_object_mut().expect("an object");
        for (k, v) in config(s.kind, &a, &b).as_object().expect("an object") {
            obj.insert(k.clone(), v.clone());
        }
        if s.explicit_needs {
            obj.insert("needs".into(), json!(needs));
        }
        if s.when {
            obj.insert("when".into(), json!("params.flag"));
        }
        let f = s.flags;
        if f & 1 != 0 {
            obj.insert("timeout".into(), json!("5m"));
        }
        if f & 2 != 0 {
            obj.insert("retries".into(), json!(2));
        }
        if f & 4 != 0 {
            obj.insert("estimate".into(), json!(format!("{}m", f >> 4)));
        }
        if f & 8 != 0 {
            obj.insert("continue_on_error".into(), json!(true));
        }
        ids.push(id);
        out.push(step);
    }
    json!({
        "version": 1,
        "name": "generated",
        "objectives": {"rto": "1h", "rpo": "1d"},
        "params": {
            "name": {"type": "string", "default": "app"},
            "count": {"type": "int", "default": 3},
            "flag": {"type": "bool", "default": true},
            "dir": {"type": "path", "default": "/backups/x"},
            "wait": {"type": "duration", "default": "90s"},
            "req": {"type": "string", "required": true},
        },
        "secrets": {"token": {"env": "RB_PROPTEST_TOKEN"}},
        "vars": {
            "stamp": "{{ now | strftime('%Y%m%d_%H%M%S') }}",
            "dir": "{{ params.dir }}/{{ vars.stamp }}",
        },
        "steps": out,
    })
    .to_string()
}

fn steps() -> impl Strategy<Value = Vec<GenStep>> {
    prop::collection::vec(gen_step(3), 1..14)
}

#[test]
fn generated_valid_runbooks_all_plan() {
    runner()
        .run(&steps(), |steps| {
            let text = runbook(&steps, VALID);
            let stage = load_and_plan(text.as_bytes());
            prop_assert_eq!(stage, Stage::Planned, "{}", text);
            Ok(())
        })
        .unwrap();
}

#[test]
fn generated_runbooks_with_bad_parts_never_panic() {
    let pool: Vec<&str> = VALID.iter().chain(INVALID).copied().collect();
    let seen: RefCell<BTreeMap<String, usize>> = RefCell::default();
    runner()
        .run(&steps(), |steps| {
            let stage = load_and_plan(runbook(&steps, &pool).as_bytes());
            *seen.borrow_mut().entry(format!("{stage:?}")).or_default() += 1;
            Ok(())
        })
        .unwrap();
    let seen = seen.into_inner();
    // Both outcomes are reached, so the property is about something.
    assert!(seen.contains_key("Planned"), "{seen:?}");
    assert!(seen.len() >= 2, "{seen:?}");
}

#[derive(Debug, Clone)]
enum Mutation {
    DropLine(Index),
    DuplicateLine(Index),
    SwapLines(Index, Index),
    Truncate(Index),
    ReplaceByte(Index, u8),
    InsertText(Index, &'static str),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let snippets = prop::sample::select(vec![
        "{{",
        "}}",
        "{% for i in range(99999) %}",
        "&a ",
        "*a",
        "- ",
        ": ",
        "needs: [dump]\n",
        "\n  - { id: x, type: exec, command: [\"{{ steps.x.outputs.stdout }}\"] }\n",
        "\t",
        "\"",
        "é",
        "\u{0}",
        "[[[[[[[[[[[[",
        "when: \"",
    ]);
    prop_oneof![
        any::<Index>().prop_map(Mutation::DropLine),
        any::<Index>().prop_map(Mutation::DuplicateLine),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), any::<u8>()).prop_map(|(a, b)| Mutation::ReplaceByte(a, b)),
        (any::<Index>(), snippets).prop_map(|(a, s)| Mutation::InsertText(a, s)),
    ]
}

fn mutate(text: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = text.to_vec();
    for m in mutations {
        let mut lines: Vec<Vec<u8>> = bytes
            .split_inclusive(|b| *b == b'\n')
            .map(<[u8]>::to_vec)
            .collect();
        if lines.is_empty() {
            lines.push(Vec::new());
        }
        match m {
            Mutation::DropLine(i) => {
                lines.remove(i.index(lines.len()));
            }
            Mutation::DuplicateLine(i) => {
                let i = i.index(lines.len());
                lines.insert(i, lines[i].clone());
            }
            Mutation::SwapLines(a, b) => {
                let (a, b) = (a.index(lines.len()), b.index(lines.len()));
                lines.swap(a, b);
            }
            Mutation::Truncate(i) => {
                let joined = lines.concat();
                lines = vec![joined[..i.index(joined.len() + 1)].to_vec()];
            }
            Mutation::ReplaceByte(i, b) => {
                let mut joined = lines.concat();
                if !joined.is_empty() {
                    let i = i.index(joined.len());
                    joined[i] = *b;
                }
                lines = vec![joined];
            }
            Mutation::InsertText(i, s) => {
                let mut joined = lines.concat();
                let i = i.index(joined.len() + 1);
                joined.splice(i..i, s.bytes());
                lines = vec![joined];
            }
        }
        bytes = lines.concat();
    }
    bytes
}

fn shipped() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks");
    let mut files: Vec<_> = walkdir(&root);
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read(f).expect("read"))
        .collect()
}

fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        } else if p.extension().is_some_and(|x| x == "yaml")
            // Params files (`fleet.params.example.yaml`) are not runbooks.
            && !p.display().to_string().contains(".params.")
        {
            out.push(p);
        }
    }
    out
}

#[test]
fn mutated_shipped_runbooks_never_panic() {
    let originals = shipped();
    assert!(
        originals.len() >= 10,
        "{} shipped runbooks",
        originals.len()
    );
    for text in &originals {
        assert_eq!(
            load_and_plan(text),
            Stage::Planned,
            "a shipped runbook plans"
        );
    }
    let seen: RefCell<BTreeMap<String, usize>> = RefCell::default();
    let strategy = (any::<Index>(), prop::collection::vec(mutation(), 1..4));
    runner()
        .run(&strategy, |(pick, mutations)| {
            let text = pick.get(&originals);
            let stage = load_and_plan(&mutate(text, &mutations));
            *seen.borrow_mut().entry(format!("{stage:?}")).or_default() += 1;
            Ok(())
        })
        .unwrap();
    let seen = seen.into_inner();
    assert!(seen.len() >= 2, "{seen:?}");
}
