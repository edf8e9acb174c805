//! Replays the saved fuzz corpus and every crash the fuzzers found (`fuzz/corpus/TARGET`,
//! `fuzz/regressions/TARGET`) through the same functions the fuzz targets call, on stable:
//! none may panic. The fuzzing itself (nightly, libFuzzer) is described in RELIABILITY.md.

use rb::fuzzing::{self, Stage};
use std::path::{Path, PathBuf};

/// The saved inputs of a fuzz target; for `load_and_plan` also its seeds, which stay where
/// they are (the shipped runbooks and the invalid fixtures).
fn inputs(target: &str) -> Vec<PathBuf> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![
        repo.join("fuzz/corpus").join(target),
        repo.join("fuzz/regressions").join(target),
    ];
    if target == "load_and_plan" {
        dirs.push(repo.join("runbooks"));
        dirs.push(repo.join("tests/fixtures"));
    }
    let mut files: Vec<PathBuf> = dirs
        .iter()
        .flat_map(|d| walkdir::WalkDir::new(d).into_iter().flatten())
        .filter(|e| e.file_type().is_file())
        .map(walkdir::DirEntry::into_path)
        .collect();
    files.sort();
    files
}

/// Feed every saved input of `target` to `run`; how many `run` calls a success.
fn replay(target: &str, run: impl Fn(&[u8]) -> bool + std::panic::RefUnwindSafe) -> usize {
    replay_at_least(target, 50, run)
}

/// [`replay`], for a target whose corpus holds at least `min` inputs.
fn replay_at_least(
    target: &str,
    min: usize,
    run: impl Fn(&[u8]) -> bool + std::panic::RefUnwindSafe,
) -> usize {
    let files = inputs(target);
    assert!(files.len() > min, "corpus missing: {} files", files.len());
    files
        .iter()
        .filter(|f| {
            let data = std::fs::read(f).expect("read");
            std::panic::catch_unwind(|| run(&data))
                .unwrap_or_else(|_| panic!("{} panics", f.display()))
        })
        .count()
}

#[test]
fn load_and_plan_corpus_replays_without_panic() {
    let planned = replay("load_and_plan", |d| {
        fuzzing::load_and_plan(d) == Stage::Planned
    });
    // The shipped runbooks are in the corpus: they, at least, get all the way.
    assert!(planned >= 10, "only {planned} inputs planned");
}

#[test]
fn render_template_corpus_replays_without_panic() {
    let rendered = replay("render_template", |d| fuzzing::render_template(d).is_ok());
    assert!(rendered >= 20, "only {rendered} inputs rendered");
}

#[test]
fn read_journal_corpus_replays_without_panic() {
    // Real journals (a failure, a gate, a resume), every prefix of one, torn and garbled.
    let read = replay_at_least("read_journal", 50, |d| fuzzing::read_journal(d) > 0);
    assert!(read >= 40, "only {read} journals had events");
}

#[test]
fn read_params_corpus_replays_without_panic() {
    let resolved = replay_at_least("read_params", 10, |d| fuzzing::read_params(d) == 5);
    assert!(resolved >= 3, "only {resolved} inputs resolved every param");
}

#[test]
fn rendered_secrets_are_masked_and_loops_run_out_of_fuel() {
    let out = fuzzing::render_template(b"pw={{ secrets.db_password }}").expect("renders");
    assert_eq!(out, "pw=***");
    let err = fuzzing::render_template(
        b"{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    )
    .unwrap_err();
    assert!(err.contains("fuel"), "{err}");
    let shipped =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks/backup/database.yaml"))
            .expect("read");
    assert_eq!(fuzzing::load_and_plan(&shipped), Stage::Planned);
}

#[test]
fn crashes_found_by_fuzzing_stay_fixed() {
    let crash = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions/render_template/crash-format-key-inside-utf8-char");
    // minijinja's `format` sliced a `%(key)` inside a multi-byte character: a panic.
    let err = fuzzing::render_template(&std::fs::read(crash).expect("read")).unwrap_err();
    assert!(err.contains("must be ASCII"), "{err}");
}

#[test]
fn bugs_found_by_the_property_tests_stay_fixed() {
    let regressions = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/load_and_plan");
    let read = |name: &str| std::fs::read(regressions.join(name)).expect("read");
    // `range` (a minijinja global) was reported as "never defined".
    assert_eq!(
        fuzzing::load_and_plan(&read("proptest-range-is-defined.yaml")),
        Stage::Planned
    );
    // Macro recursion overflowed the stack of a 2 MiB thread (abort) instead of an error.
    assert_eq!(
        fuzzing::load_and_plan(&read("proptest-macro-recursion-stack-overflow.yaml")),
        Stage::PlanFailed
    );
}
