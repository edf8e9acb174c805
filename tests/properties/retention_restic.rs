//! Oracle tests against the real `restic forget` (Debian's 0.14): `rb::retention::decide`
//! on many policies, and the shipped backup runbook's `retention` step run by `rb` over a
//! generated backup root.
//!
//! rb decides as restic 0.16 and later do (checked against restic's golden files in
//! `src/retention/golden_tests.rs`); those releases also keep the oldest snapshot when a count
//! or window still has room for it. So here every decision under [`Rules::Restic014`] must
//! equal 0.14's, and every decision under the default rules must equal 0.14's except that the
//! oldest snapshot may be kept in addition, with `oldest …` reasons only.
//!
//! Each snapshot set becomes one restic group (its own `--host`, the same path), created with
//! `restic backup --time`; then, for every policy, one `restic forget --dry-run --json` over
//! the whole repository gives restic's keep/remove sets and reasons for every group at once.
//! restic must be installed: this test fails rather than skips without it, since CI installs
//! it and a skipped oracle proves nothing.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Instant;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use rb::retention::{KeepCount, KeepCounts, KeepWithin, Rules, Snapshot, decide_with};
use serde::Deserialize;
use serde_json::Value;

use crate::support::Test;

/// A policy as the `prune` step will read it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Policy {
    #[serde(default)]
    keep: KeepCounts,
    #[serde(default)]
    keep_within: KeepWithin,
}

impl Policy {
    /// The `restic forget` flags for this policy; weeks and `mo` in restic's units.
    fn restic_flags(&self) -> Vec<String> {
        let k = &self.keep;
        let counts = [
            ("last", k.last),
            ("hourly", k.hourly),
            ("daily", k.daily),
            ("weekly", k.weekly),
            ("monthly", k.monthly),
            ("yearly", k.yearly),
        ];
        let w = &self.keep_within;
        let windows = [
            ("within", w.within),
            ("within-hourly", w.hourly),
            ("within-daily", w.daily),
            ("within-weekly", w.weekly),
            ("within-monthly", w.monthly),
            ("within-yearly", w.yearly),
        ];
        let counts = counts.into_iter().filter_map(|(name, n)| {
            let n = match n? {
                KeepCount::Buckets(n) => n.to_string(),
                KeepCount::All => "-1".to_owned(),
            };
            Some((name, n))
        });
        let windows = windows
            .into_iter()
            .filter_map(|(name, span)| Some((name, span?.to_restic())));
        counts
            .chain(windows)
            .flat_map(|(name, value)| [format!("--keep-{name}"), value])
            .collect()
    }
}

/// The policies compared, as YAML-equivalent JSON.
const POLICIES: &[&str] = &[
    // The manual's "daily for 30 days, weekly for 12 weeks, monthly for 12 months, yearly
    // for 7 years".
    r#"{"keep_within": {"daily": "30d", "weekly": "12w", "monthly": "12mo", "yearly": "7y"}}"#,
    r#"{"keep": {"daily": 7, "weekly": 4, "monthly": 12, "yearly": 3}}"#,
    r#"{"keep": {"last": 5}}"#,
    r#"{"keep": {"last": 3, "hourly": 10}, "keep_within": {"within": "2w", "monthly": "1y6mo"}}"#,
    r#"{"keep": {"daily": 10}, "keep_within": {"hourly": "48h", "weekly": "3mo"}}"#,
    // 2024-03-31 less one month is "2024-02-31", i.e. 2024-03-02 in Go.
    r#"{"keep_within": {"within": "1mo"}}"#,
    r#"{"keep_within": {"within": "1y", "daily": "1y1mo1w1d1h"}}"#,
    r#"{"keep": {"weekly": 60, "yearly": 100}}"#,
    r#"{"keep": {"monthly": 100, "hourly": 3}}"#,
    r#"{"keep": {"last": 1}, "keep_within": {"monthly": "13mo", "yearly": "2y"}}"#,
];

fn at(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
}

/// About three years of irregular backups: bursts of several a day, gaps of up to 65 days.
fn random_set() -> Vec<NaiveDateTime> {
    // xorshift64: deterministic without a crate.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        i64::try_from(state % n).unwrap()
    };
    let end = at("2024-01-20 00:00:00");
    let mut t = at("2021-01-03 04:05:06");
    let mut set = Vec::new();
    while t < end {
        set.push(t);
        t += if next(20) < 7 {
            TimeDelta::minutes(30 + next(6 * 60))
        } else {
            TimeDelta::days(1 + next(65)) + TimeDelta::seconds(next(86_400))
        };
    }
    set
}

/// Days around an ISO 53-week year end, month ends, a leap day, and snapshots either side of
/// the 1-month window's Go-normalised edge: from 2024-03-31 12:00 that is 2024-03-02 12:00,
/// where clamping to the month's end would give 2024-02-29 12:00.
fn boundary_set() -> Vec<NaiveDateTime> {
    let day = |from: &str, days: i64, time: &str| -> Vec<NaiveDateTime> {
        let first = NaiveDate::parse_from_str(from, "%Y-%m-%d").unwrap();
        (0..days)
            .map(|i| at(&format!("{} {time}", first + TimeDelta::days(i))))
            .collect()
    };
    // 2020-12-28 (Mon) to 2021-01-03 (Sun) is ISO week 2020-W53.
    let mut set = day("2020-12-26", 12, "23:00:00");
    // Every other day from 2024-02-25 to 2024-03-30, across the leap day.
    set.extend(day("2024-02-25", 35, "12:00:00").into_iter().step_by(2));
    for t in [
        "2023-01-31 23:59:59",
        "2023-03-01 00:00:00",
        "2023-04-30 23:00:00",
        "2023-05-01 00:00:00",
        "2023-12-31 23:59:59",
        "2024-01-01 00:00:00",
        "2024-03-02 11:00:00",
        "2024-03-02 13:00:00",
        "2024-03-31 11:30:00",
        "2024-03-31 12:00:00", // the newest
    ] {
        set.push(at(t));
    }
    set
}

/// Newest on a leap day: one year back is "2023-02-29", i.e. 2023-03-01 10:00 in Go, where
/// clamping would give 2023-02-28 10:00.
fn leap_set() -> Vec<NaiveDateTime> {
    [
        "2023-02-28 12:00:00",
        "2023-03-01 09:00:00",
        "2023-03-01 11:00:00",
        "2024-01-29 09:00:00",
        "2024-01-29 11:00:00",
        "2024-02-29 10:00:00",
    ]
    .into_iter()
    .map(at)
    .collect()
}

/// A backup dated in the future must not move the windows (restic's `findLatestTimestamp`).
fn future_set() -> Vec<NaiveDateTime> {
    let mut set: Vec<_> = (1..=5)
        .map(|d| at(&format!("2024-01-0{d} 10:00:00")))
        .collect();
    set.push(at("2099-06-01 00:00:00"));
    set
}

/// A restic repository in a temp dir, with the environment every call needs.
struct Restic {
    dir: tempfile::TempDir,
    file: PathBuf,
}

impl Restic {
    fn new() -> Restic {
        let version = Command::new("restic").arg("version").output();
        match version {
            Ok(out) if out.status.success() => {
                eprintln!("oracle: {}", String::from_utf8_lossy(&out.stdout).trim());
            }
            _ => panic!(
                "`restic` is not installed or does not run: this oracle test needs the real \
                 binary (Debian: `apt-get install -y restic`) and does not skip without it"
            ),
        }
        // On tmpfs when there is one: restic syncs every file it writes, and the snapshots
        // are many.
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm)
        } else {
            tempfile::tempdir()
        }
        .unwrap();
        let file = dir.path().join("data");
        std::fs::write(&file, "tiny").unwrap();
        let restic = Restic { dir, file };
        restic.run(&["init"]);
        restic
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = Command::new("restic")
            .args(["--no-cache", "--quiet"])
            .args(args)
            .env("TZ", "UTC")
            .env("RESTIC_PASSWORD", "oracle")
            .env("RESTIC_REPOSITORY", self.dir.path().join("repo"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "restic {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn backup(&self, host: &str, time: NaiveDateTime) {
        let time = time.format("%Y-%m-%d %H:%M:%S").to_string();
        let file = self.file.to_str().unwrap();
        self.run(&["backup", "--host", host, "--time", &time, file]);
    }

    /// restic's verdicts for every group, by host.
    fn forget(&self, flags: &[String]) -> BTreeMap<String, Verdict> {
        let mut args = vec!["forget", "--dry-run", "--no-lock", "--json"];
        args.extend(flags.iter().map(String::as_str));
        let out = self.run(&args);
        let groups: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        groups
            .iter()
            .map(|g| {
                (
                    g["host"].as_str().unwrap().to_owned(),
                    Verdict::from_json(g),
                )
            })
            .collect()
    }
}

/// Kept and removed times, and the reasons of each kept one; restic's or ours.
#[derive(Debug, Default, PartialEq, Eq)]
struct Verdict {
    keep: Vec<NaiveDateTime>,
    remove: Vec<NaiveDateTime>,
    reasons: BTreeMap<NaiveDateTime, Vec<String>>,
}

impl Verdict {
    fn from_json(group: &Value) -> Verdict {
        let time = |v: &Value| {
            DateTime::parse_from_rfc3339(v["time"].as_str().unwrap())
                .unwrap()
                .naive_utc()
        };
        // `keep` and `remove` are `null`, not `[]`, when empty.
        let times = |v: &Value| {
            let mut list: Vec<_> = v
                .as_array()
                .map_or(&[][..], Vec::as_slice)
                .iter()
                .map(time)
                .collect();
            list.sort();
            list
        };
        let reasons = group["reasons"]
            .as_array()
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .map(|r| {
                let matches = r["matches"].as_array().unwrap().iter();
                (
                    time(&r["snapshot"]),
                    matches.map(|m| m.as_str().unwrap().to_owned()).collect(),
                )
            })
            .collect();
        Verdict {
            keep: times(&group["keep"]),
            remove: times(&group["remove"]),
            reasons,
        }
    }

    fn ours(set: &[NaiveDateTime], policy: &Policy, now: NaiveDateTime, rules: Rules) -> Verdict {
        let snapshots: Vec<_> = set
            .iter()
            .map(|t| Snapshot {
                id: t.to_string(),
                time: *t,
            })
            .collect();
        let mut verdict = Verdict::default();
        for d in decide_with(&snapshots, &policy.keep, &policy.keep_within, now, rules) {
            if d.keep {
                verdict.keep.push(d.time);
                verdict.reasons.insert(d.time, d.restic_reasons());
            } else {
                verdict.remove.push(d.time);
            }
        }
        verdict.keep.sort();
        verdict.remove.sort();
        verdict
    }
}

/// True when `current` (rb's default rules) is `old` (restic 0.14's verdict) but for `oldest …`
/// reasons of the oldest snapshot of `set`, which may also keep it where 0.14 removes it: the
/// one rule restic 0.16 added.
fn differs_only_by_the_oldest_rule(
    old: &Verdict,
    current: &Verdict,
    set: &[NaiveDateTime],
) -> bool {
    let Some(oldest) = set.iter().min() else {
        return old == current;
    };
    let mut without = Verdict {
        keep: current.keep.clone(),
        remove: current.remove.clone(),
        reasons: current.reasons.clone(),
    };
    if let Some(reasons) = without.reasons.get_mut(oldest) {
        reasons.retain(|r| !r.starts_with("oldest "));
        if reasons.is_empty() {
            without.reasons.remove(oldest);
            without.keep.retain(|t| t != oldest);
            without.remove.push(*oldest);
            without.remove.sort();
        }
    }
    &without == old
}

/// Run `f` on every item from a few threads: restic spends most of each call deriving the
/// repository key, so serial calls would blow the time budget.
fn parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let workers = thread::available_parallelism()
        .map_or(2, usize::from)
        .clamp(2, 8)
        + 1;
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let result = f(item);
                    results.lock().unwrap().push((i, result));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

#[test]
fn decide_matches_restic_forget() {
    let started = Instant::now();
    let mut sets: BTreeMap<&str, Vec<NaiveDateTime>> = [
        ("random", random_set()),
        ("boundary", boundary_set()),
        ("future", future_set()),
        ("leap", leap_set()),
    ]
    .into_iter()
    .collect();
    let restic = Restic::new();
    let backups: Vec<(&str, NaiveDateTime)> = sets
        .iter()
        .flat_map(|(host, set)| set.iter().map(move |t| (*host, *t)))
        .collect();
    parallel(&backups, |(host, time)| restic.backup(host, *time));
    let backed_up = started.elapsed();

    // Without grouping (host ""), restic decides on the union of all sets: one more set,
    // for no more backups.
    let mut union: Vec<NaiveDateTime> = sets.values().flatten().copied().collect();
    union.sort();
    assert!(
        union.windows(2).all(|w| w[0] != w[1]),
        "times must be unique"
    );
    sets.insert("", union);

    let policies: Vec<Policy> = POLICIES
        .iter()
        .map(|p| serde_json::from_str(p).unwrap())
        .collect();
    let calls: Vec<(usize, &[&str])> = (0..policies.len())
        .flat_map(|i| [(i, &[][..]), (i, &["--group-by", ""][..])])
        .collect();
    let verdicts = parallel(&calls, |(i, grouping)| {
        let mut flags = policies[*i].restic_flags();
        flags.extend(grouping.iter().map(|f| (*f).to_owned()));
        restic.forget(&flags)
    });
    let now = Utc::now().naive_utc();

    let mut mismatches = Vec::new();
    let (mut compared, mut oldest_rule_applied) = (0, 0);
    for ((i, _), theirs) in calls.iter().zip(&verdicts) {
        let (policy, text) = (&policies[*i], POLICIES[*i]);
        for (host, restic) in theirs {
            let set = &sets[host.as_str()];
            assert_eq!(restic.keep.len() + restic.remove.len(), set.len(), "{host}");
            let ours = Verdict::ours(set, policy, now, Rules::Restic014);
            let current = Verdict::ours(set, policy, now, Rules::Restic016);
            compared += set.len();
            if &ours != restic {
                mismatches.push(format!(
                    "policy {text} on set `{host}` (`` is the union):\n  restic keeps {:?}\n  \
                     we keep     {:?}\n  restic reasons {:?}\n  our reasons    {:?}",
                    restic.keep, ours.keep, restic.reasons, ours.reasons
                ));
            }
            if &current != restic {
                oldest_rule_applied += 1;
            }
            if !differs_only_by_the_oldest_rule(restic, &current, set) {
                mismatches.push(format!(
                    "policy {text} on set `{host}`: the current rules differ from 0.14 beyond \
                     the oldest snapshot:\n  restic keeps {:?}\n  we keep      {:?}\n  \
                     our reasons  {:?}",
                    restic.keep, current.keep, current.reasons
                ));
            }
        }
    }
    eprintln!(
        "compared {compared} decisions: {} sets and their union ({} snapshots), {} policies, \
         {} forget calls; backups took {backed_up:.1?}, all {:.1?}; the 0.16 oldest rule \
         changed {oldest_rule_applied} of the {} verdicts",
        sets.len() - 1,
        backups.len(),
        policies.len(),
        calls.len(),
        started.elapsed(),
        verdicts.iter().map(BTreeMap::len).sum::<usize>(),
    );
    assert_eq!(
        verdicts.iter().map(BTreeMap::len).sum::<usize>(),
        sets.len() * policies.len()
    );
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n\n"));
    assert!(
        oldest_rule_applied > 0,
        "the sets exercise the rule where 0.14 and current restic differ"
    );
}

// ---------------------------------------------------------------------------------------------
// End to end: the shipped backup runbook's `retention` step, run by `rb` over a backup root.
// ---------------------------------------------------------------------------------------------

/// The shipped step as it is, the root in place of the param, run by rb in a runbook of its
/// own (with the shipped runbook's `prune` param, which its `when` reads, at its default).
fn run_step_alone(mut step: Value, root: &std::path::Path, dir: &std::path::Path) {
    step["path"] = Value::String(root.display().to_string());
    let runbook = serde_json::json!({
        "version": 1,
        "name": "retention-only",
        "params": { "prune": { "type": "bool", "default": true } },
        "steps": [step],
    });
    let file = dir.join("rb.yaml");
    std::fs::write(&file, runbook.to_string()).unwrap();
    let state = dir.join("state");
    Test::new()
        .cwd(dir)
        .args(["run", file.to_str().unwrap(), "--state-dir"])
        .args([state.to_str().unwrap()])
        .expect(0);
}

/// The `retention` step of `runbooks/backup/database.yaml`, as written there.
fn shipped_retention_step() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/runbooks/backup/database.yaml");
    let runbook: Value = serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    runbook["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "retention")
        .expect("a `retention` step in backup/database.yaml")
        .clone()
}

/// Three years of daily backup directories (`YYYYMMDD`, as `backup/database.yaml` names them)
/// ending yesterday: every day for the last five weeks, then with gaps of 3 to 14 days; a
/// directory holds one to three dumps (several backups that day).
fn dated_dirs() -> Vec<(NaiveDate, usize)> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let newest = Utc::now().date_naive() - TimeDelta::days(1);
    let oldest = newest - TimeDelta::days(3 * 365);
    let mut day = newest;
    let mut dirs = Vec::new();
    while day >= oldest {
        dirs.push((day, 1 + usize::try_from(next(3)).unwrap()));
        let gap = if newest - day < TimeDelta::days(35) {
            1
        } else {
            3 + next(12)
        };
        day -= TimeDelta::days(i64::try_from(gap).unwrap());
    }
    dirs.reverse();
    dirs
}

/// Everything under `root`, relative, sorted (directories end in `/`).
fn tree(root: &std::path::Path) -> Vec<String> {
    let mut all: Vec<String> = walkdir::WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let rel = e.path().strip_prefix(root).unwrap().display().to_string();
            if e.file_type().is_dir() {
                rel + "/"
            } else {
                rel
            }
        })
        .collect();
    all.sort();
    all
}

#[test]
fn shipped_prune_step_keeps_exactly_what_restic_forget_keeps() {
    let step = shipped_retention_step();
    let policy = Policy {
        keep: serde_json::from_value(step["keep"].clone()).unwrap(),
        keep_within: serde_json::from_value(step["keep_within"].clone()).unwrap(),
    };
    let dirs = dated_dirs();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("backups");
    let mut catalog = String::new();
    for (i, (day, dumps)) in dirs.iter().enumerate() {
        let d = root.join(day.format("%Y%m%d").to_string());
        std::fs::create_dir_all(&d).unwrap();
        for k in 0..*dumps {
            let file = d.join(format!(
                "codexos_{}_0{k}0000.dump.zst",
                day.format("%Y%m%d")
            ));
            std::fs::write(&file, format!("dump {day} {k}")).unwrap();
            // The newest directory's last dump failed its verification: the newest
            // *verified* backup is the one before it.
            let verified = !(i == dirs.len() - 1 && k == dumps - 1);
            let entry =
                serde_json::json!({ "file": file.display().to_string(), "verified": verified });
            catalog.push_str(&entry.to_string());
            catalog.push('\n');
        }
        std::fs::write(d.join("SHA256SUMS"), "").unwrap();
    }
    std::fs::write(root.join("catalog.jsonl"), &catalog).unwrap();
    // Entries outside the match: never candidates, whatever their age.
    let outside = [
        "pre_recovery/pre_recovery_20200101_000000.dump.zst",
        "2020-01-01/old.dump",
        "20200101.tar.gz",
        "notes_20200101",
        "README",
    ];
    for f in outside {
        let p = root.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "keep me").unwrap();
    }
    let newest_verified = catalog
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .rfind(|e| e["verified"] == true)
        .and_then(|e| e["file"].as_str().map(str::to_owned))
        .unwrap();

    run_step_alone(step, &root, dir.path());

    // restic's verdict for the same times (a name without a time of day is midnight UTC).
    let restic = Restic::new();
    let times: Vec<NaiveDateTime> = dirs
        .iter()
        .map(|(d, _)| d.and_hms_opt(0, 0, 0).unwrap())
        .collect();
    parallel(&times, |t| restic.backup("prune", *t));
    let theirs = restic
        .forget(&policy.restic_flags())
        .remove("prune")
        .unwrap();
    assert_eq!(theirs.keep.len() + theirs.remove.len(), dirs.len());
    assert!(!theirs.remove.is_empty(), "the policy removes something");

    // rb keeps what current restic keeps: 0.14's verdict, plus the oldest directory if a
    // window still has room for it.
    let current = Verdict::ours(&times, &policy, Utc::now().naive_utc(), Rules::Restic016);
    assert!(
        differs_only_by_the_oldest_rule(&theirs, &current, &times),
        "restic 0.14 keeps {:?}\nrb keeps {:?}",
        theirs.keep,
        current.keep
    );

    let remaining: Vec<String> = tree(&root)
        .into_iter()
        .filter(|e| e.len() == 9 && e.ends_with('/'))
        .map(|e| e.trim_end_matches('/').to_owned())
        .collect();
    let expected: Vec<String> = current
        .keep
        .iter()
        .map(|t| t.format("%Y%m%d").to_string())
        .collect();
    assert_eq!(
        remaining, expected,
        "kept directories = current restic's keep"
    );
    for f in outside.iter().chain(["catalog.jsonl"].iter()) {
        assert!(root.join(f).is_file(), "{f} is untouched");
    }
    assert!(
        std::path::Path::new(&newest_verified).is_file(),
        "the newest verified backup {newest_verified} stays"
    );
    println!(
        "prune: {} dated directories, {} kept, {} removed",
        dirs.len(),
        theirs.keep.len(),
        theirs.remove.len()
    );
}
