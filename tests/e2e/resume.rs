//! Resume and compensation on real containers (issue 11): the shipped restore runbook, stopped
//! at its gate or interrupted with Ctrl-C and resumed, leaves the application running, and a
//! resumed restore stops the application again before it touches the database.

use super::{
    DB, Env, app, backup, docker_ok, expect_code, fingerprint, free_port, password, poll, psql_ok,
    rb, rb_of, running, seed, start_pg,
};
use crate::support::Spawned;
use serde_json::Value;

use std::time::Duration;

/// The run id `rb` printed (`… as run ID`).
fn run_id(stderr: &str) -> String {
    stderr
        .lines()
        .find_map(|l| l.split(" as run ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no run id in {stderr}"))
        .to_owned()
}

fn journal(env: &Env, id: &str) -> Vec<Value> {
    let path = env
        .path("state")
        .join("runs")
        .join(id)
        .join("journal.jsonl");
    std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Positions in the journal of `event` for `step`.
fn at(j: &[Value], event: &str, step: &str) -> Vec<usize> {
    j.iter()
        .enumerate()
        .filter(|(_, e)| e["event"] == event && e["step"] == step)
        .map(|(i, _)| i)
        .collect()
}

/// When the container last started (RFC 3339 from the engine).
fn started_at(name: &str) -> String {
    docker_ok(&["inspect", "-f", "{{.State.StartedAt}}", name])
        .trim()
        .to_owned()
}

fn restore_args(env: &Env, pg: &str, be: &str, fe: &str, ports: (u16, u16)) -> Vec<String> {
    let mut a = vec![
        "run".to_owned(),
        "runbooks/restore/database.yaml".to_owned(),
    ];
    for p in [
        format!("container={pg}"),
        format!("backup_root={}", env.path("backups").display()),
        format!("backend={be}"),
        format!("frontend={fe}"),
        format!("backend_url=http://127.0.0.1:{}/health", ports.0),
        format!("frontend_url=http://127.0.0.1:{}/health", ports.1),
    ] {
        a.extend(["-p".to_owned(), p]);
    }
    a
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Another session takes an exclusive lock on `users` and keeps it (until terminated), so a
/// dump waits for it.
fn hold_users_lock(pg: &str, pw: &str) {
    docker_ok(&[
        "exec",
        "-d",
        "-e",
        &format!("PGPASSWORD={pw}"),
        pg,
        "psql",
        "-h",
        "127.0.0.1",
        "-U",
        super::USER,
        "-d",
        DB,
        "-c",
        "begin; lock table users in access exclusive mode; select pg_sleep(600);",
    ]);
}

/// `rb ARGS` started in the background, as `super::rb` runs it.
fn spawn_rb(env: &Env, pw: &str, args: &[String]) -> Spawned {
    rb_of(env, args)
        .env("PGPASSWORD", pw)
        .env("CODEXOS_SECRET_KEY", &format!("{pw}-key"))
        .spawn()
}

/// A restore scene: `PostgreSQL` seeded and backed up, two stand-in application containers,
/// the restore runbook's arguments, and the fingerprint of the backed-up data.
struct Scene {
    env: Env,
    pw: String,
    pg: String,
    be: String,
    fe: String,
    args: Vec<String>,
    backed_up: std::collections::BTreeMap<String, String>,
}

fn scene(test: &str) -> Scene {
    let mut env = Env::new(test);
    let pw = password(test);
    let pg = env.name("pg");
    let (be, fe) = (env.name("backend"), env.name("frontend"));
    let ports = (free_port(), free_port());
    start_pg(&pg, &pw);
    seed(&pg, &pw);
    app(&be, ports.0);
    app(&fe, ports.1);
    let backed_up = fingerprint(&pg, &pw, DB);
    backup(&env, &pw, &pg);
    let args = restore_args(&env, &pg, &be, &fe, ports);
    psql_ok(&pg, &pw, DB, "delete from users where id > 600");
    Scene {
        env,
        pw,
        pg,
        be,
        fe,
        args,
        backed_up,
    }
}

/// The documented flow without a terminal: stop at the gate, then `--resume --approve`.
#[test]
fn restore_resumed_at_its_gate_leaves_the_application_running() {
    let Scene {
        env,
        pw,
        pg,
        be,
        fe,
        args,
        backed_up,
    } = scene("resume-gate");
    let out = rb(&env, &pw, &strs(&args));
    expect_code(&out, 3);
    let id = run_id(&String::from_utf8_lossy(&out.stderr));
    let mut resume = args.clone();
    resume.extend([
        "--resume".into(),
        id.clone(),
        "--approve".into(),
        "approve_drop".into(),
    ]);
    let out = rb(&env, &pw, &strs(&resume));
    expect_code(&out, 0);
    assert_eq!(fingerprint(&pg, &pw, DB), backed_up, "restored");
    assert!(
        running(&be) && running(&fe),
        "the application runs after a restore resumed at its gate"
    );
    let j = journal(&env, &id);
    let start_app = at(&j, "step_started", "start_app");
    assert_eq!(start_app.len(), 2, "start_app ran in both attempts");
    assert!(start_app[1] > *at(&j, "step_finished", "restore").last().unwrap());
}

/// Ctrl-C while the safety dump waits for a lock held by another session: the application is
/// started again (always); the resumed run stops it again before the database is dropped, and
/// starts it once the restore is done.
#[test]
fn restore_interrupted_then_resumed_stops_the_application_again_before_the_drop() {
    let Scene {
        env,
        pw,
        pg,
        be,
        fe,
        args,
        backed_up,
    } = scene("resume-int");
    hold_users_lock(&pg, &pw);
    let mut with_approval = args.clone();
    with_approval.extend(["--approve".into(), "approve_drop".into()]);
    let mut restore = spawn_rb(&env, &pw, &with_approval);
    poll(
        "the safety dump to wait for the lock",
        Duration::from_mins(2),
        || {
            psql_ok(
            &pg,
            &pw,
            DB,
            "select count(*) from pg_stat_activity where wait_event_type = 'Lock' and application_name = 'pg_dump'",
        )
        .trim()
            == "1"
        },
    );
    assert!(!running(&be), "stop_app stopped the application");
    restore.signal(nix::sys::signal::Signal::SIGINT);
    let ran = restore.wait(Duration::from_mins(2));
    ran.exits(130);
    let id = run_id(&ran.stderr);
    assert!(
        running(&be) && running(&fe),
        "Ctrl-C started the application again"
    );
    psql_ok(
        &pg,
        &pw,
        DB,
        "select pg_terminate_backend(pid) from pg_stat_activity where query like '%pg_sleep(600)%' and pid <> pg_backend_pid()",
    );
    let before = started_at(&be);

    let mut resume = args.clone();
    resume.extend(["--resume".into(), id.clone()]);
    let out = rb(&env, &pw, &strs(&resume));
    expect_code(&out, 0);
    assert_eq!(fingerprint(&pg, &pw, DB), backed_up, "restored");
    assert!(
        running(&be) && running(&fe),
        "the application runs at the end"
    );
    assert_ne!(
        started_at(&be),
        before,
        "the application was stopped and started again"
    );
    let j = journal(&env, &id);
    let stops = at(&j, "step_started", "stop_app");
    assert_eq!(stops.len(), 2, "stop_app ran again in the resumed attempt");
    let drop = *at(&j, "step_started", "drop").last().unwrap();
    let stopped = at(&j, "step_finished", "stop_app");
    assert!(
        *stopped.last().unwrap() < drop,
        "the application was stopped again before the drop"
    );
    let restarted = *at(&j, "step_started", "start_app").last().unwrap();
    assert!(restarted > *at(&j, "step_finished", "restore").last().unwrap());

    // The report keeps both attempts and the wall time across them.
    let report: Value = serde_json::from_slice(
        &std::fs::read(env.path("state").join("runs").join(&id).join("report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        report["attempts"].as_array().unwrap().len(),
        2,
        "{report:#}"
    );
    assert_eq!(report["attempts"][0]["outcome"], "interrupted");
}
