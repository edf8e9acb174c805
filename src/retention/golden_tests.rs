//! [`super::decide_at`] against restic's own golden files: the snapshots and policies of
//! `TestApplyPolicy` are read from restic's `snapshot_policy_test.go` as it is, and each
//! policy's expected keep list and reasons from its `policy_keep_snapshots_N` file, all copied
//! verbatim into `tests/fixtures/restic-golden/` (see the README there).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::Value;

use super::*;
use crate::retention::KeepCount;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/restic-golden")
}

/// A snapshot as restic's test and golden files identify it: time, tags, paths (several
/// snapshots share a time and differ only in tags or paths).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Ident {
    time: NaiveDateTime,
    tags: Vec<String>,
    paths: Vec<String>,
}

/// The text between the line starting with `start` and the next line that is exactly `end`.
fn block<'a>(source: &'a str, start: &str, end: &str) -> &'a str {
    let from = source.find(start).unwrap_or_else(|| panic!("no `{start}`"));
    let rest = &source[from..];
    let to = rest
        .find(end)
        .unwrap_or_else(|| panic!("no end of `{start}`"));
    &rest[start.len()..to]
}

/// The strings of a Go `[]string{"a", "b"}` literal following `key` in `line`.
fn go_strings(line: &str, key: &str) -> Vec<String> {
    let Some(at) = line.find(key) else {
        return Vec::new();
    };
    let rest = &line[at + key.len()..];
    let list = &rest[..rest.find('}').unwrap()];
    list.split(',')
        .map(|s| s.trim().trim_matches('"').to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// `testExpireSnapshots`, in the test's order.
fn inputs(source: &str) -> Vec<Ident> {
    let list = block(
        source,
        "var testExpireSnapshots = data.Snapshots{",
        "\n\t}\n",
    );
    list.lines()
        .filter(|l| l.contains("parseTimeUTC(\""))
        .map(|line| {
            let time = line.split('"').nth(1).unwrap();
            Ident {
                time: NaiveDateTime::parse_from_str(time, "%Y-%m-%d %H:%M:%S%.f").unwrap(),
                tags: go_strings(line, "Tags: []string{"),
                paths: go_strings(line, "Paths: []string{"),
            }
        })
        .collect()
}

/// The `{...}` entries of the test's `tests` list, as text.
fn policy_literals(source: &str) -> Vec<String> {
    let list = block(source, "var tests = []data.ExpirePolicy{", "\n\t}\n");
    let (mut out, mut depth, mut current) = (Vec::new(), 0, String::new());
    for line in list.lines() {
        // Comments after an entry (`// keep all`) are not part of it.
        let code = line.split("//").next().unwrap_or_default();
        for c in code.chars() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            if depth > 0 || c == '}' {
                current.push(c);
            }
            if depth == 0 && c == '}' {
                out.push(std::mem::take(&mut current));
            }
        }
    }
    out
}

/// restic's `Duration` syntax (`1y1d1m`: units in any order, `m` for months) as a
/// [`CalendarSpan`].
fn span_of(restic: &str) -> CalendarSpan {
    let (mut parts, mut number) = ([0_u32; 4], String::new());
    for c in restic.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let index = "ymdh".find(c).unwrap();
        parts[index] = std::mem::take(&mut number).parse().unwrap();
    }
    let mut text = String::new();
    for (n, unit) in parts.iter().zip(["y", "mo", "d", "h"]) {
        if *n != 0 {
            write!(text, "{n}{unit}").unwrap();
        }
    }
    text.parse().unwrap()
}

/// rb's policy for one of restic's, or why it has none.
fn policy_of(literal: &str) -> Result<(KeepCounts, KeepWithin), &'static str> {
    let (mut keep, mut within) = (KeepCounts::default(), KeepWithin::default());
    let inner = literal.trim().trim_start_matches('{').trim_end_matches('}');
    if inner.contains("Tags:") {
        return Err("tag policies have no files to match in rb");
    }
    for field in inner.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        let (name, value) = field.split_once(':').unwrap();
        let value = value.trim();
        if let Some(duration) = value.strip_prefix("data.ParseDurationOrPanic(") {
            let span = Some(span_of(duration.trim_end_matches(')').trim_matches('"')));
            *match name.trim() {
                "Within" => &mut within.within,
                "WithinHourly" => &mut within.hourly,
                "WithinDaily" => &mut within.daily,
                "WithinWeekly" => &mut within.weekly,
                "WithinMonthly" => &mut within.monthly,
                "WithinYearly" => &mut within.yearly,
                other => panic!("unknown window `{other}`"),
            } = span;
            continue;
        }
        let count = match value.parse::<i64>().unwrap() {
            -1 => KeepCount::All,
            n => KeepCount::Buckets(u32::try_from(n).unwrap()),
        };
        *match name.trim() {
            "Last" => &mut keep.last,
            "Hourly" => &mut keep.hourly,
            "Daily" => &mut keep.daily,
            "Weekly" => &mut keep.weekly,
            "Monthly" => &mut keep.monthly,
            "Yearly" => &mut keep.yearly,
            other => panic!("unknown count `{other}`"),
        } = Some(count);
    }
    if policy_is_empty(&keep, &within) {
        return Err("an empty policy is refused by rb (restic's ApplyPolicy keeps nothing)");
    }
    Ok((keep, within))
}

fn ident_of(snapshot: &Value) -> Ident {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    };
    Ident {
        time: DateTime::parse_from_rfc3339(snapshot["time"].as_str().unwrap())
            .unwrap()
            .naive_utc(),
        tags: strings(&snapshot["tags"]),
        paths: strings(&snapshot["paths"]),
    }
}

/// restic's expected keep list (newest first) and each kept snapshot's reasons.
fn golden(index: usize) -> Vec<(Ident, Vec<String>)> {
    let path = golden_dir().join(format!("policy_keep_snapshots_{index}"));
    let file: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let keep = file["keep"].as_array().map_or(&[][..], Vec::as_slice);
    let reasons = file["reasons"].as_array().map_or(&[][..], Vec::as_slice);
    assert_eq!(keep.len(), reasons.len(), "golden file {index}");
    keep.iter()
        .zip(reasons)
        .map(|(k, r)| {
            assert_eq!(ident_of(k), ident_of(&r["snapshot"]));
            let matches = r["matches"].as_array().unwrap().iter();
            (
                ident_of(k),
                matches.map(|m| m.as_str().unwrap().to_owned()).collect(),
            )
        })
        .collect()
}

/// The inputs as rb snapshots, identified by their index.
fn snapshots(inputs: &[Ident]) -> Vec<Snapshot> {
    inputs
        .iter()
        .enumerate()
        .map(|(i, s)| Snapshot {
            id: i.to_string(),
            time: s.time,
        })
        .collect()
}

/// Our keep list, newest first, with reasons written as restic writes spans (`1y2m3d3h`).
fn ours(
    inputs: &[Ident],
    keep: &KeepCounts,
    within: &KeepWithin,
) -> (Vec<(Ident, Vec<String>)>, usize) {
    let decisions = decide_at(&snapshots(inputs), keep, within, Utc::now().naive_utc());
    assert_eq!(decisions.len(), inputs.len());
    let removed = decisions.iter().filter(|d| !d.keep).count();
    let kept = decisions
        .into_iter()
        .filter(|d| d.keep)
        .map(|d| {
            let reasons = d.restic_reasons();
            (inputs[d.id.parse::<usize>().unwrap()].clone(), reasons)
        })
        .collect();
    (kept, removed)
}

#[test]
fn decisions_match_restics_golden_files() {
    let source = std::fs::read_to_string(golden_dir().join("snapshot_policy_test.go")).unwrap();
    let inputs = inputs(&source);
    assert_eq!(inputs.len(), 103, "restic's test snapshots");
    let literals = policy_literals(&source);
    assert_eq!(literals.len(), 40, "restic's test policies");

    let (mut compared, mut skipped, mut mismatches) = (0, Vec::new(), Vec::new());
    for (index, literal) in literals.iter().enumerate() {
        let (keep, within) = match policy_of(literal) {
            Ok(policy) => policy,
            Err(why) => {
                skipped.push((index, why));
                continue;
            }
        };
        let want = golden(index);
        let (got, removed) = ours(&inputs, &keep, &within);
        assert_eq!(got.len() + removed, inputs.len());
        compared += 1;
        if got != want {
            let first = got
                .iter()
                .zip(&want)
                .position(|(g, w)| g != w)
                .or(Some(got.len().min(want.len())));
            mismatches.push(format!(
                "policy {index} {literal}: restic keeps {}, we keep {}; first difference at \
                 {first:?}: restic {:?}, we {:?}",
                want.len(),
                got.len(),
                first.and_then(|i| want.get(i)),
                first.and_then(|i| got.get(i)),
            ));
        }
    }
    eprintln!("compared {compared} golden cases; skipped {skipped:?}");
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    // Every count and window policy of restic's test is compared; only the empty policy and
    // the three tag policies are not rb policies.
    assert_eq!(compared, 36);
    let skipped: Vec<usize> = skipped.iter().map(|(i, _)| *i).collect();
    assert_eq!(skipped, [0, 18, 19, 20]);
}

#[test]
fn restic_014_rules_differ_from_the_golden_files_only_by_the_oldest_rule() {
    // {Monthly: 3} runs out before the oldest snapshot, so the releases agree; with
    // {Monthly: 30} room is left and 0.16 also keeps the oldest, a month's second snapshot.
    let source = std::fs::read_to_string(golden_dir().join("snapshot_policy_test.go")).unwrap();
    let snapshots = snapshots(&inputs(&source));
    let now = Utc::now().naive_utc();
    for (months, oldest_differs) in [(3, false), (30, true)] {
        let keep = KeepCounts {
            monthly: Some(KeepCount::Buckets(months)),
            ..KeepCounts::default()
        };
        let new = decide_with(
            &snapshots,
            &keep,
            &KeepWithin::default(),
            now,
            Rules::Restic016,
        );
        let old = decide_with(
            &snapshots,
            &keep,
            &KeepWithin::default(),
            now,
            Rules::Restic014,
        );
        let (new_oldest, old_oldest) = (new.last().unwrap(), old.last().unwrap());
        assert_eq!(
            new[..new.len() - 1],
            old[..old.len() - 1],
            "monthly {months}"
        );
        assert_eq!(new_oldest.keep && !old_oldest.keep, oldest_differs);
        if oldest_differs {
            assert_eq!(new_oldest.reasons, ["oldest monthly snapshot"]);
        }
    }
}
