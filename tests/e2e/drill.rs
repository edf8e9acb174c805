//! The timed disaster-recovery drill (`runbooks/drills/dr-drill.yaml`): the containers and the
//! data volume really go, everything comes back from the backup, and the report's timings add
//! up and carry the right RTO verdict.

use super::{
    DB, Env, Stack, app, backup, docker, docker_ok, fingerprint, password, rb, root, run_args,
    seed, start_pg_with, tools_image,
};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::path::Path;

/// Slack between timestamps taken by different clocks and events (a loaded machine).
const TOLERANCE: f64 = 0.25;
/// A file written into the data volume before the disaster; it must not survive it.
const MARKER: &str = "/var/lib/postgresql/data/drill-marker";

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .unwrap_or_else(|| panic!("a timestamp: {v}"))
        .with_timezone(&Utc)
}

fn secs(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("a number: {v}"))
}

fn between(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    (b - a).as_seconds_f64()
}

/// The live stack the drill destroys: `PostgreSQL` on the named volume, Redis, two stand-ins.
fn start_stack(stack: &Stack, pw: &str) {
    docker_ok(&["network", "create", &stack.net]);
    let mount = format!("{}:/var/lib/postgresql/data", stack.vol);
    start_pg_with(&stack.pg, pw, &["--network", &stack.net, "-v", &mount], &[]);
    seed(&stack.pg, pw);
    docker_ok(&["exec", &stack.pg, "touch", MARKER]);
    docker_ok(&[
        "run",
        "-d",
        "--name",
        &stack.redis,
        "--network",
        &stack.net,
        &tools_image(),
        "redis-server",
        "--protected-mode",
        "no",
    ]);
    app(&stack.be, stack.be_port);
    app(&stack.fe, stack.fe_port);
}

/// Every step's own timing is consistent, steps sit inside their run (children inside their
/// parent), the sequential top-level steps add up to no more than the run, and gate wait is
/// counted apart from machine time.
fn assert_timings_add_up(r: &Value) {
    let (start, end) = (time(&r["start"]), time(&r["end"]));
    let total = secs(&r["duration_seconds"]);
    assert!(
        (between(start, end) - total).abs() < TOLERANCE,
        "run: end - start = {} but duration {total}",
        between(start, end)
    );
    let steps = r["steps"].as_array().expect("steps");
    let mut spans = std::collections::BTreeMap::new();
    for s in steps.iter().filter(|s| s["status"] == "succeeded") {
        let id = s["id"].as_str().expect("id");
        let (a, b, d) = (
            time(&s["start"]),
            time(&s["end"]),
            secs(&s["duration_seconds"]),
        );
        assert!(
            (between(a, b) - d).abs() < TOLERANCE,
            "step {id}: end - start = {} but duration {d}",
            between(a, b)
        );
        assert!(
            between(start, a) > -TOLERANCE && between(b, end) > -TOLERANCE,
            "step {id} lies inside the run"
        );
        spans.insert(id.to_owned(), (a, b, d));
    }
    // Children lie inside their parent step (`recover/…` in `recover`, and deeper).
    for (id, (a, b, _)) in &spans {
        if let Some((parent, _)) = id.rsplit_once('/') {
            let (pa, pb, _) = spans[parent];
            assert!(
                between(pa, *a) > -TOLERANCE && between(*b, pb) > -TOLERANCE,
                "step {id} lies inside {parent}"
            );
        }
    }
    // The drill's own steps run one after another: they add up to no more than the run.
    let top: Vec<_> = steps
        .iter()
        .map(|s| s["id"].as_str().expect("id"))
        .filter(|id| !id.contains('/'))
        .collect();
    assert_eq!(
        top,
        [
            "before",
            "destroy",
            "disaster",
            "recover",
            "after",
            "same_data",
            "backend_up",
            "frontend_up"
        ]
    );
    let sum: f64 = top.iter().map(|id| spans[*id].2).sum();
    assert!(
        sum <= total + TOLERANCE,
        "steps add up to {sum}, the run took {total}"
    );
    for w in top.windows(2) {
        assert!(
            between(spans[w[0]].1, spans[w[1]].0) > -TOLERANCE,
            "{} starts after {} ended",
            w[1],
            w[0]
        );
    }
    let gates: Vec<_> = r["gates"].as_array().expect("gates").iter().collect();
    let ids: Vec<_> = gates.iter().map(|g| g["step"].as_str().unwrap()).collect();
    assert_eq!(ids, ["destroy", "recover/restore/approve_drop"]);
    assert!(gates.iter().all(|g| g["approved"] == true));
    let waited: f64 = gates.iter().map(|g| secs(&g["waited_seconds"])).sum();
    let gate_wait = secs(&r["gate_wait_seconds"]);
    assert!(
        (gate_wait - waited).abs() < 1e-6,
        "gate wait {gate_wait} is the gates' {waited}"
    );
    assert!((secs(&r["machine_seconds"]) - (total - gate_wait)).abs() < 1e-6);
}

/// The verdict is the run's duration against `rto`, with the margin in seconds.
fn assert_verdict(r: &Value, rto: f64) {
    let total = secs(&r["duration_seconds"]);
    assert!((secs(&r["rto_seconds"]) - rto).abs() < 1e-9);
    assert!(
        (secs(&r["rto_margin_seconds"]) - (rto - total)).abs() < 1e-6,
        "margin is RTO - duration"
    );
    assert_eq!(r["rto_met"], total <= rto, "{r}");
}

/// The data the drill recorded before the disaster equals what it found after.
fn assert_same_data(r: &Value) {
    let stdout = |id: &str| {
        r["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .map_or_else(|| panic!("step {id}"), |s| s["outputs"]["stdout"].clone())
    };
    let before = stdout("before");
    assert_eq!(before, stdout("after"));
    assert_eq!(
        before.as_str().unwrap().lines().count(),
        3,
        "one line per table: {before}"
    );
}

/// A copy of the drill (and the runbooks it includes) with a 1-second RTO.
fn tiny_rto_copy(dir: &Path) -> String {
    let src = root().join("runbooks");
    for f in [
        "disaster-recovery.yaml",
        "restore/database.yaml",
        "restore/globals.yaml",
    ] {
        std::fs::create_dir_all(dir.join(f).parent().unwrap()).unwrap();
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let drill = std::fs::read_to_string(src.join("drills/dr-drill.yaml")).unwrap();
    let tiny = drill
        .replace("  rto: 4h\n", "  rto: 1s\n")
        .replace("rto: 2h,", "rto: 1s,");
    assert_ne!(tiny, drill);
    std::fs::create_dir_all(dir.join("drills")).unwrap();
    let file = dir.join("drills/dr-drill.yaml");
    std::fs::write(&file, tiny).unwrap();
    file.display().to_string()
}

/// Runs the drill `file` (reports `TAG.json` and `TAG.md`) with both gates approved and `extra` options; returns the exit
/// code, the JSON report and the Markdown report.
fn drill(
    env: &Env,
    pw: &str,
    tag: &str,
    file: &str,
    params: &[String],
    extra: &[&str],
) -> (i32, Value, String) {
    let (json, md) = (
        env.path(&format!("{tag}.json")),
        env.path(&format!("{tag}.md")),
    );
    let (json_s, md_s) = (json.display().to_string(), md.display().to_string());
    let mut args = vec![
        "--approve",
        "destroy",
        "--approve",
        "recover/restore/approve_drop",
        "--report",
        &json_s,
        "--report",
        &md_s,
    ];
    args.extend(extra);
    let out = rb(env, pw, &run_args(file, params, &args));
    let code = out.status.code().unwrap_or(-1);
    let (Ok(json), Ok(md)) = (std::fs::read_to_string(&json), std::fs::read_to_string(&md)) else {
        panic!(
            "no reports; rb exited {code}:\n{}",
            super::output_text(&out)
        );
    };
    (code, serde_json::from_str(&json).expect("JSON"), md)
}

#[test]
fn dr_drill_report_timings_add_up_and_the_rto_verdict_is_right() {
    let mut env = Env::new("drdrill");
    let pw = password("drdrill");
    let stack = Stack::new(&mut env);
    start_stack(&stack, &pw);
    let before = fingerprint(&stack.pg, &pw, DB);
    backup(&env, &pw, &stack.pg);
    let params = stack.params(&env);

    let (code, r, md) = drill(
        &env,
        &pw,
        "shipped",
        "runbooks/drills/dr-drill.yaml",
        &params,
        &[],
    );
    assert_eq!(code, 0, "{r:#}");
    // The disaster was real (the data volume went with the containers), the recovery too.
    assert!(
        !docker(&["exec", &stack.pg, "test", "-e", MARKER])
            .status
            .success(),
        "the data volume was removed and created again"
    );
    assert_eq!(fingerprint(&stack.pg, &pw, DB), before);
    stack.assert_up();
    assert_eq!(r["outcome"], "succeeded");
    assert_timings_add_up(&r);
    assert_verdict(&r, 4.0 * 3600.0);
    assert_eq!(r["rto_met"], true);
    assert_same_data(&r);
    // The achieved RPO: the age of the backup restored two runbooks down.
    super::assert_rpo(&r, "step `recover` output `restore.backup_time.stdout`");
    assert_eq!(r["rpo"]["met"], true, "RPO 24h");
    assert!(md.contains("RTO 4h") && md.contains("met with"), "{md}");

    // The same drill held to a 1-second RTO: the report says missed, and with
    // `--fail-over-rto` the exit code is 4 (spec: succeeded but over the RTO).
    let copy = tiny_rto_copy(&env.path("tiny"));
    let (code, r, md) = drill(&env, &pw, "tiny", &copy, &params, &["--fail-over-rto"]);
    assert_eq!(code, 4, "{r:#}");
    assert_eq!(r["outcome"], "succeeded");
    assert_timings_add_up(&r);
    assert_verdict(&r, 1.0);
    assert_eq!(r["rto_met"], false);
    assert_same_data(&r);
    assert!(md.contains("MISSED by"), "{md}");
    assert_eq!(fingerprint(&stack.pg, &pw, DB), before);
    stack.assert_up();
}
