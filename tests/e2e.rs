//! End-to-end: the runbooks under `runbooks/` driven by the real `rb` binary against a real
//! `PostgreSQL` server (and stand-in services) in Docker.
//!
//! Every container, network and volume is named `rbt-<pid>-<test>-…` and removed by a guard,
//! also when the test fails.

mod pg;
#[path = "support/mod.rs"]
mod support;

use pg::{
    DB, Env, USER, app, docker, docker_ok, fingerprint, free_port, password, pg_image, poll, psql,
    psql_ok, root, start_pg, start_pg_with, tools_image,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "e2e/audit.rs"]
mod audit;
#[path = "e2e/drill.rs"]
mod drill;
#[path = "e2e/fidelity.rs"]
mod fidelity;
#[path = "e2e/offsite.rs"]
mod offsite;
#[path = "e2e/resume.rs"]
mod resume;

fn seed(name: &str, pw: &str) {
    psql_ok(
        name,
        pw,
        DB,
        "create table users(id int primary key, email text not null, created_at timestamptz default now());
         insert into users(id, email) select g, md5(random()::text) || '@example.com' from generate_series(1, 700) g;
         create table agents(id int primary key, owner int references users, config text);
         insert into agents select g, 1 + g % 700, md5(random()::text) || md5(random()::text) from generate_series(1, 300) g;
         create table agent_execution_history(id bigint primary key, agent_id int references agents, output text);
         insert into agent_execution_history select g, 1 + g % 300, repeat(md5(random()::text), 4) from generate_series(1, 4000) g;",
    );
}

/// Runs `rb` with the password (and the secret key made from it) in the environment; `rb run`
/// also writes every report format and the metrics. Asserts no secret leaks (`audit`).
fn rb(env: &Env, pw: &str, args: &[&str]) -> Output {
    rb_with(env, pw, args, &[])
}

/// [`rb`] with more environment variables (their values are secrets: checked not to leak).
fn rb_with(env: &Env, pw: &str, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut args: Vec<String> = args.iter().map(ToString::to_string).collect();
    if args.first().is_some_and(|a| a == "run") {
        args.extend(audit::report_args(&env.path("audit")));
    }
    let key = format!("{pw}-key");
    let mut rb = rb_of(env, &args)
        .env("PGPASSWORD", pw)
        .env("CODEXOS_SECRET_KEY", &key)
        .env("RB_TRANSPORT", env.transport.unwrap_or("auto"));
    for (k, v) in vars {
        rb = rb.env(k, v);
    }
    let out = rb.output();
    let mut secrets = vec![pw, key.as_str()];
    secrets.extend(
        vars.iter()
            .filter(|(k, _)| k.contains("SECRET"))
            .map(|(_, v)| *v),
    );
    audit::assert_clean(&args, &out, env.dir.path(), &secrets);
    if args[0] == "run" && out.status.success() {
        check_transports(env, &report_of(env, &out));
    }
    out
}

/// Every stream of a run forced onto the Engine API stayed there; with the default (`auto`,
/// a local engine, rb as root) every step that streams a file used a FIFO.
fn check_transports(env: &Env, report: &serde_json::Value) {
    for s in report["steps"].as_array().into_iter().flatten() {
        let out = &s["outputs"];
        let Some(t) = out["transport"].as_str() else {
            continue;
        };
        if env.transport == Some("engine") {
            assert_eq!(t, "engine", "step {}", s["id"]);
        } else if out.get("file").is_some() {
            assert_eq!(t, "fifo", "step {} wrote a file", s["id"]);
        }
    }
}

/// `rb ARGS` from the repository root, with the state and lock directories of this test.
fn rb_of<S: AsRef<str>>(env: &Env, args: &[S]) -> support::Test {
    support::Test::new()
        .cwd(&root())
        .env_path("RB_STATE_DIR", env.path("state"))
        .env_path("RB_LOCK_DIR", env.path("locks"))
        .args(args)
}

/// The report of the run `out` was the output of, as `rb report RUN_ID` renders it from the
/// journal alone.
fn report_of(env: &Env, out: &Output) -> serde_json::Value {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let run_id = stderr
        .lines()
        .find_map(|l| l.split(" as run ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no run id in {stderr}"));
    let out = rb_of(env, &["report", run_id, "--format", "json"]).output();
    expect_code(&out, 0);
    serde_json::from_slice(&out.stdout).expect("a JSON report")
}

/// The report's achieved RPO: from `source`, a time, a plausible age, within the RPO if set.
/// Returns the value the time was read from.
fn assert_rpo(report: &serde_json::Value, source: &str) -> String {
    let rpo = &report["rpo"];
    assert_eq!(rpo["source"], source, "{rpo:#}");
    assert!(rpo["restore_point"].is_string(), "{rpo:#}");
    let age = rpo["achieved_seconds"].as_f64().expect("an achieved RPO");
    // The data was made minutes before the run (not a timing claim: a sanity range).
    assert!((0.0..3600.0).contains(&age), "{rpo:#}");
    assert_ne!(rpo["met"], false, "{rpo:#}");
    rpo["value"].as_str().unwrap_or_default().to_owned()
}

fn expect_code(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "rb exited {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn backup(env: &Env, pw: &str, pg: &str) -> PathBuf {
    let root = env.path("backups");
    let out = rb(
        env,
        pw,
        &[
            "run",
            "runbooks/backup/database.yaml",
            "-p",
            &format!("container={pg}"),
            "-p",
            &format!("backup_root={}", root.display()),
        ],
    );
    expect_code(&out, 0);
    let catalog = std::fs::read_to_string(root.join("catalog.jsonl")).expect("catalog written");
    let last: serde_json::Value =
        serde_json::from_str(catalog.lines().last().expect("an entry")).expect("JSON line");
    assert_eq!(last["verified"], true);
    PathBuf::from(last["file"].as_str().expect("file"))
}

/// Restores `dump` into a fresh database `db` of `pg` with plain `pg_restore`.
fn restore_by_hand(pg: &str, pw: &str, dump: &Path, db: &str) {
    psql_ok(pg, pw, "postgres", &format!("create database {db}"));
    let mut zstd = Command::new("zstd")
        .args(["-dc"])
        .arg(dump)
        .stdout(Stdio::piped())
        .spawn()
        .expect("zstd");
    let env = format!("PGPASSWORD={pw}");
    let out = Command::new("docker")
        .args([
            "exec",
            "-i",
            "-e",
            &env,
            pg,
            "pg_restore",
            "-h",
            "127.0.0.1",
            "-U",
            USER,
            "-d",
            db,
            "--exit-on-error",
        ])
        .stdin(zstd.stdout.take().expect("piped"))
        .output()
        .expect("pg_restore");
    assert!(
        zstd.wait().expect("zstd exits").success(),
        "zstd -dc failed"
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn running(name: &str) -> bool {
    docker_ok(&["inspect", "-f", "{{.State.Running}}", name]).trim() == "true"
}

#[test]
fn backup_database_writes_a_verified_restorable_dump() {
    backup_database_writes_a_verified_restorable_dump_on(None);
}

#[test]
fn backup_database_writes_a_verified_restorable_dump_over_the_engine_stream() {
    backup_database_writes_a_verified_restorable_dump_on(Some("engine"));
}

fn backup_database_writes_a_verified_restorable_dump_on(transport: Option<&'static str>) {
    let mut env = Env::with_transport("bk", transport);
    let pw = password("bk");
    let pg = env.name("pg");
    start_pg(&pg, &pw);
    seed(&pg, &pw);
    let before = fingerprint(&pg, &pw, DB);

    let dump = backup(&env, &pw, &pg);
    assert!(dump.starts_with(env.path("backups")));
    assert!(dump.to_string_lossy().ends_with(".dump.zst"));
    let dir = dump.parent().expect("dated dir");

    let t = Command::new("zstd")
        .arg("-t")
        .arg(&dump)
        .output()
        .expect("zstd");
    assert!(
        t.status.success(),
        "zstd -t: {}",
        String::from_utf8_lossy(&t.stderr)
    );
    let c = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(dir)
        .output()
        .expect("sha256sum");
    assert!(
        c.status.success(),
        "sha256sum -c: {}",
        String::from_utf8_lossy(&c.stdout)
    );
    let listed = String::from_utf8_lossy(&c.stdout);
    assert!(
        listed.contains(".dump.zst: OK") && listed.contains("globals_"),
        "{listed}"
    );
    let catalog = std::fs::read_to_string(env.path("backups/catalog.jsonl")).expect("catalog");
    let entry: serde_json::Value = serde_json::from_str(catalog.trim()).expect("one JSON line");
    assert_eq!(
        entry["bytes"],
        std::fs::metadata(&dump).expect("dump").len()
    );

    restore_by_hand(&pg, &pw, &dump, "copy_db");
    assert_eq!(fingerprint(&pg, &pw, "copy_db"), before);
}

#[test]
fn restore_database_brings_back_the_backup_and_refuses_a_corrupted_one() {
    restore_database_brings_back_the_backup_and_refuses_a_corrupted_one_on(None);
}

#[test]
fn restore_database_brings_back_the_backup_and_refuses_a_corrupted_one_over_the_engine_stream() {
    restore_database_brings_back_the_backup_and_refuses_a_corrupted_one_on(Some("engine"));
}

fn restore_database_brings_back_the_backup_and_refuses_a_corrupted_one_on(
    transport: Option<&'static str>,
) {
    let mut env = Env::with_transport("rs", transport);
    let pw = password("rs");
    let pg = env.name("pg");
    let (be, fe) = (env.name("backend"), env.name("frontend"));
    let (be_port, fe_port) = (free_port(), free_port());
    start_pg(&pg, &pw);
    seed(&pg, &pw);
    app(&be, be_port);
    app(&fe, fe_port);
    let backed_up = fingerprint(&pg, &pw, DB);
    let dump = backup(&env, &pw, &pg);

    psql_ok(
        &pg,
        &pw,
        DB,
        "delete from agent_execution_history where id % 3 = 0; update users set email = 'x' where id < 50; insert into agents values (9999, 1, 'new')",
    );
    let mutated = fingerprint(&pg, &pw, DB);
    assert_ne!(mutated, backed_up);

    let params = |extra: &str| {
        vec![
            format!("container={pg}"),
            format!("backup_root={}", env.path("backups").display()),
            format!("backend={be}"),
            format!("frontend={fe}"),
            format!("backend_url=http://127.0.0.1:{be_port}/health"),
            format!("frontend_url=http://127.0.0.1:{fe_port}/health"),
            extra.to_owned(),
        ]
    };
    let args = |ps: &[String]| {
        let mut a = vec![
            "run".to_owned(),
            "runbooks/restore/database.yaml".to_owned(),
        ];
        for p in ps {
            a.extend(["-p".to_owned(), p.clone()]);
        }
        a.extend(["--approve".to_owned(), "approve_drop".to_owned()]);
        a
    };

    // Without approval the run stops at the gate, before anything is stopped or dropped.
    let ps = params("tables=users agents agent_execution_history");
    let mut no_gate: Vec<String> = args(&ps);
    no_gate.truncate(no_gate.len() - 2);
    let out = rb(
        &env,
        &pw,
        &no_gate.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    expect_code(&out, 3);
    assert_eq!(fingerprint(&pg, &pw, DB), mutated);
    assert!(
        running(&be) && running(&fe),
        "an unanswered gate leaves the application running"
    );

    // From the catalog (no `backup` param): the newest verified backup.
    let a = args(&ps);
    let out = rb(&env, &pw, &a.iter().map(String::as_str).collect::<Vec<_>>());
    expect_code(&out, 0);
    assert_eq!(fingerprint(&pg, &pw, DB), backed_up);
    assert!(running(&be) && running(&fe), "the application runs again");
    let safety = std::fs::read_dir(env.path("backups/pre_recovery"))
        .expect("safety dumps")
        .count();
    assert_eq!(safety, 1, "one safety dump of the database being replaced");
    let report = report_of(&env, &out);
    assert_rpo(&report, "step `backup_time` output `stdout`");
    assert_eq!(report["rpo"]["met"], true, "RPO 24h");
    assert_eq!(report["milestones"][0]["name"], "database-restored");
    assert_eq!(report["milestones"][0]["status"], "met");
    let path = report["critical_path"].as_array().expect("a critical path");
    assert_eq!(path.first().unwrap(), "choose", "{path:?}");

    // A corrupted backup (one byte flipped) is refused before anything is stopped or dropped.
    psql_ok(&pg, &pw, DB, "delete from users where id > 690");
    let mutated = fingerprint(&pg, &pw, DB);
    let mut bytes = std::fs::read(&dump).expect("dump");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&dump, bytes).expect("corrupt");
    let ps = params(&format!("backup={}", dump.display()));
    let a = args(&ps);
    let out = rb(&env, &pw, &a.iter().map(String::as_str).collect::<Vec<_>>());
    expect_code(&out, 1);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("verify_checksum"), "{text}");
    assert_eq!(
        fingerprint(&pg, &pw, DB),
        mutated,
        "the database was not touched"
    );
    assert!(
        running(&be) && running(&fe),
        "the application was not stopped"
    );
}

/// The services of a stack as `disaster-recovery.yaml` rebuilds them: names, volume, ports.
struct Stack {
    net: String,
    vol: String,
    pg: String,
    redis: String,
    be: String,
    fe: String,
    redis_port: u16,
    be_port: u16,
    fe_port: u16,
}

impl Stack {
    /// Names (removed with `env`) and free ports; nothing is started.
    fn new(env: &mut Env) -> Stack {
        let net = format!("{}-net", env.prefix);
        let vol = format!("{}-pgdata", env.prefix);
        env.networks.push(net.clone());
        env.volumes.push(vol.clone());
        Stack {
            net,
            vol,
            pg: env.name("pg"),
            redis: env.name("redis"),
            be: env.name("backend"),
            fe: env.name("frontend"),
            redis_port: free_port(),
            be_port: free_port(),
            fe_port: free_port(),
        }
    }

    /// The params of `disaster-recovery.yaml` (and of the DR drill) for this stack, with
    /// busybox httpd standing in for the backend and the frontend.
    fn params(&self, env: &Env) -> Vec<String> {
        let httpd = "busybox httpd -f -p 8000 -h /www";
        vec![
            format!("network={}", self.net),
            format!("backup_root={}", env.path("backups").display()),
            format!("db_container={}", self.pg),
            format!("db_image={}", pg_image()),
            format!("db_volume={}", self.vol),
            format!("redis_container={}", self.redis),
            format!("redis_image={}", tools_image()),
            format!("redis_port={}", self.redis_port),
            format!("backend={}", self.be),
            format!("backend_image={}", tools_image()),
            format!("backend_command={httpd}"),
            format!("backend_port={}", self.be_port),
            format!("frontend={}", self.fe),
            format!("frontend_image={}", tools_image()),
            format!("frontend_command={httpd}"),
            format!("frontend_port={}", self.fe_port),
            "frontend_container_port=8000".to_owned(),
            "frontend_path=/health".to_owned(),
        ]
    }

    /// Every service runs and Redis answers.
    fn assert_up(&self) {
        for c in [&self.pg, &self.redis, &self.be, &self.fe] {
            assert!(running(c), "{c} runs");
        }
        let ping = docker_ok(&["exec", &self.redis, "redis-cli", "ping"]);
        assert_eq!(ping.trim(), "PONG");
    }
}

/// `rb run FILE -p …` for every param, then `extra`.
fn run_args<'a>(file: &'a str, params: &'a [String], extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["run", file];
    for p in params {
        args.extend(["-p", p.as_str()]);
    }
    args.extend(extra);
    args
}

#[test]
fn disaster_recovery_rebuilds_every_service_from_the_backup() {
    disaster_recovery_rebuilds_every_service_from_the_backup_on(None);
}

#[test]
fn disaster_recovery_rebuilds_every_service_from_the_backup_over_the_engine_stream() {
    disaster_recovery_rebuilds_every_service_from_the_backup_on(Some("engine"));
}

fn disaster_recovery_rebuilds_every_service_from_the_backup_on(transport: Option<&'static str>) {
    let mut env = Env::with_transport("dr", transport);
    let pw = password("dr");
    let stack = Stack::new(&mut env);
    let pg = stack.pg.clone();
    start_pg(&pg, &pw);
    seed(&pg, &pw);
    let before = fingerprint(&pg, &pw, DB);
    backup(&env, &pw, &pg);

    // The disaster: the database container and its data are gone.
    docker_ok(&["rm", "-f", "-v", &pg]);

    let params = stack.params(&env);
    let report = env.path("dr-report.json");
    let report_s = report.display().to_string();
    let args = run_args(
        "runbooks/disaster-recovery.yaml",
        &params,
        &["--approve", "restore/approve_drop", "--report", &report_s],
    );
    let out = rb(&env, &pw, &args);
    expect_code(&out, 0);

    assert_eq!(fingerprint(&pg, &pw, DB), before);
    stack.assert_up();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).expect("report")).expect("JSON");
    let text = report.to_string();
    for step in [
        "backend_healthy",
        "frontend_healthy",
        "db_query",
        "redis_pong",
        "restore/restore",
    ] {
        assert!(text.contains(step), "report mentions {step}");
    }
    // The age of the backup the `restore` sub-runbook chose, from the catalog.
    assert_rpo(&report, "step `restore` output `backup_time.stdout`");
    assert_eq!(
        report["milestones"][0]["status"], "met",
        "{:#}",
        report["milestones"]
    );
    assert_eq!(report["critical_path"][0], "network");
}

/// Every entry under `dir` (relative name → mode and content; a link's target; `dir` for
/// directories), for byte-for-byte comparisons of trees.
fn tree(dir: &Path) -> BTreeMap<String, (u32, Vec<u8>)> {
    use std::os::unix::fs::PermissionsExt;
    walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            let e = e.expect("walk");
            let meta = e.path().symlink_metadata().expect("stat");
            let content = if meta.file_type().is_symlink() {
                std::fs::read_link(e.path())
                    .expect("link")
                    .into_os_string()
                    .into_encoded_bytes()
            } else if meta.is_dir() {
                b"dir".to_vec()
            } else {
                std::fs::read(e.path()).expect("read")
            };
            let rel = e.path().strip_prefix(dir).expect("under dir");
            (
                rel.display().to_string(),
                (meta.permissions().mode(), content),
            )
        })
        .collect()
}

fn write_file(path: &Path, content: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, content).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The one `.tar.gz` in the single dated directory under `root` whose name starts with `prefix`.
fn only_file(root: &Path, prefix: &str) -> PathBuf {
    let dated: Vec<_> = std::fs::read_dir(root)
        .expect("backup root")
        .flatten()
        .filter(|e| e.path().is_dir())
        .collect();
    assert_eq!(
        dated.len(),
        1,
        "one dated directory under {}",
        root.display()
    );
    let found: Vec<PathBuf> = std::fs::read_dir(dated[0].path())
        .expect("dated dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n.starts_with(prefix) && n.ends_with(".tar.gz")
            })
        })
        .collect();
    assert_eq!(found.len(), 1, "one {prefix}* file: {found:?}");
    found.into_iter().next().expect("one")
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn output_text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

fn sha256sum_ok(dir: &Path, list: &str) {
    let c = Command::new("sha256sum")
        .args(["-c", list])
        .current_dir(dir)
        .output()
        .expect("sha256sum");
    assert!(
        c.status.success(),
        "sha256sum -c {list}: {}",
        String::from_utf8_lossy(&c.stdout)
    );
}

#[test]
fn config_backup_restores_byte_identical_and_refuses_a_corrupted_archive() {
    let env = Env::new("cfg");
    let pw = password("cfg");
    let app = env.path("app");
    write_file(&app.join(".env"), "DATABASE_URL=postgres://db\n", 0o644);
    write_file(&app.join(".env.production"), "SECRET_KEY=abc\n", 0o600);
    write_file(&app.join("docker-compose.yml"), "services: {}\n", 0o644);
    write_file(
        &app.join("docker-compose.prod.yml"),
        "services: {x: {}}\n",
        0o640,
    );
    write_file(&app.join("startup.sh"), "#!/bin/sh\nexec app\n", 0o750);
    write_file(&app.join("main.py"), "print(1)\n", 0o644);
    write_file(&app.join("node_modules/x/index.js"), "x\n", 0o644);
    let config = [
        ".env",
        ".env.production",
        "docker-compose.prod.yml",
        "docker-compose.yml",
        "startup.sh",
    ];
    let expected: BTreeMap<_, _> = tree(&app)
        .into_iter()
        .filter(|(k, _)| config.contains(&k.as_str()))
        .collect();
    assert_eq!(expected.len(), config.len());

    let root = env.path("backups/config");
    let out = rb(
        &env,
        &pw,
        &[
            "run",
            "runbooks/backup/config.yaml",
            "-p",
            &format!("app_dir={}", app.display()),
            "-p",
            &format!("backup_root={}", root.display()),
        ],
    );
    expect_code(&out, 0);
    let archive = only_file(&root, "config_");
    let dir = archive.parent().expect("dated dir");
    let archive_name = archive.file_name().expect("name").to_string_lossy();
    assert!(archive_name.ends_with(".tar.gz"));
    assert_eq!(
        names_in(dir),
        vec!["SHA256SUMS".to_owned(), archive_name.to_string()],
        "only the archive and its sums: no staging or scratch left"
    );
    sha256sum_ok(dir, "SHA256SUMS");

    let dest = env.path("restored/config");
    let out = rb(
        &env,
        &pw,
        &[
            "run",
            "runbooks/restore/config.yaml",
            "-p",
            &format!("archive={}", archive.display()),
            "-p",
            &format!("dest={}", dest.display()),
        ],
    );
    expect_code(&out, 0);
    assert_eq!(tree(&dest), expected, "contents and modes restored exactly");

    // One flipped byte: refused by the checksum before anything is extracted.
    let mut bytes = std::fs::read(&archive).expect("archive");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&archive, bytes).expect("corrupt");
    let dest2 = env.path("restored/config2");
    let out = rb(
        &env,
        &pw,
        &[
            "run",
            "runbooks/restore/config.yaml",
            "-p",
            &format!("archive={}", archive.display()),
            "-p",
            &format!("dest={}", dest2.display()),
        ],
    );
    expect_code(&out, 1);
    let text = output_text(&out);
    assert!(text.contains("verify_checksum"), "{text}");
    assert!(
        !dest2.exists(),
        "nothing extracted from a corrupted archive"
    );
    assert_eq!(
        names_in(&env.path("restored")),
        vec!["config".to_owned()],
        "no staging directory left beside the destination"
    );
}

#[test]
fn source_backup_leaves_out_dependencies_and_build_output() {
    use std::os::unix::fs::symlink;
    let env = Env::new("src");
    let pw = password("src");
    let app = env.path("codexos");
    write_file(&app.join("backend/main.py"), "print('hi')\n", 0o644);
    write_file(&app.join("backend/requirements.txt"), "fastapi\n", 0o644);
    write_file(&app.join("scripts/run.sh"), "#!/bin/sh\n", 0o755);
    write_file(&app.join("frontend/package.json"), "{}\n", 0o644);
    write_file(&app.join("frontend/src/app.tsx"), "export {}\n", 0o600);
    write_file(&app.join("docs/building.md"), "# not a build dir\n", 0o644);
    symlink("backend/main.py", app.join("main.py")).expect("symlink");
    for junk in [
        "node_modules/a/index.js",
        "frontend/node_modules/b/index.js",
        "venv/bin/python",
        "backend/venv/lib/x.py",
        ".git/HEAD",
        "dist/app.js",
        "frontend/dist/bundle.js",
        "build/out.o",
        "frontend/build/index.html",
    ] {
        write_file(&app.join(junk), "junk\n", 0o644);
    }
    let excluded = ["node_modules", "venv", ".git", "dist", "build"];
    let expected: BTreeMap<_, _> = tree(&app)
        .into_iter()
        .filter(|(k, _)| !k.split('/').any(|c| excluded.contains(&c)))
        .collect();
    assert!(expected.contains_key("docs/building.md") && expected.contains_key("main.py"));

    let root = env.path("backups/source");
    let out = rb(
        &env,
        &pw,
        &[
            "run",
            "runbooks/backup/source.yaml",
            "-p",
            &format!("app_dir={}", app.display()),
            "-p",
            &format!("backup_root={}", root.display()),
        ],
    );
    expect_code(&out, 0);
    let archive = only_file(&root, "codexos_source_");
    sha256sum_ok(archive.parent().expect("dir"), "SHA256SUMS");
    let listed = Command::new("tar")
        .arg("tzf")
        .arg(&archive)
        .output()
        .expect("tar");
    assert!(listed.status.success());
    let listed = String::from_utf8(listed.stdout).expect("utf-8");
    for name in listed.lines() {
        assert!(!name.starts_with('/'), "absolute name {name}");
        assert!(
            !name
                .trim_end_matches('/')
                .split('/')
                .any(|c| excluded.contains(&c)),
            "{name} should have been excluded"
        );
    }
    assert!(listed.lines().any(|l| l == "backend/main.py"), "{listed}");

    let dest = env.path("restored/codexos");
    let out = rb(
        &env,
        &pw,
        &[
            "run",
            "runbooks/restore/source.yaml",
            "-p",
            &format!("archive={}", archive.display()),
            "-p",
            &format!("dest={}", dest.display()),
        ],
    );
    expect_code(&out, 0);
    assert_eq!(tree(&dest), expected, "everything else restored exactly");
}

#[test]
fn userdata_backup_archives_only_what_is_present() {
    let env = Env::new("ud");
    let pw = password("ud");
    let uploads = env.path("data/uploads");
    write_file(&uploads.join("u1/avatar.png"), "png-bytes", 0o644);
    write_file(&uploads.join("u2/report.pdf"), "pdf-bytes", 0o640);
    let root = env.path("backups/userdata");
    let out = rb(
        &env,
        &pw,
        &[
            "run",
            "runbooks/backup/userdata.yaml",
            "-p",
            &format!("uploads_dir={}", uploads.display()),
            "-p",
            &format!("rag_dir={}", env.path("data/rag_documents").display()),
            "-p",
            &format!("backup_root={}", root.display()),
        ],
    );
    expect_code(&out, 0);
    let text = output_text(&out);
    assert!(text.contains("rag skipped"), "{text}");
    let archive = only_file(&root, "uploads_");
    let dir = archive.parent().expect("dated dir");
    let name = archive
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert_eq!(
        names_in(dir),
        vec![name.clone(), format!("{name}.sha256")],
        "one archive and its checksum, no RAG archive"
    );
    sha256sum_ok(dir, &format!("{name}.sha256"));
    let sums = std::fs::read_to_string(dir.join(format!("{name}.sha256"))).expect("sums");
    assert_eq!(sums.lines().count(), 1);
    assert!(sums.trim_end().ends_with(&format!("  {name}")), "{sums}");
    let listed = Command::new("tar")
        .arg("tzf")
        .arg(&archive)
        .output()
        .expect("tar");
    let listed = String::from_utf8(listed.stdout).expect("utf-8");
    assert!(
        listed.lines().any(|l| l == "uploads/u2/report.pdf"),
        "{listed}"
    );
}

#[test]
fn backup_verification_drill_restores_into_a_scratch_server_and_compares() {
    let mut env = Env::new("drill");
    let pw = password("drill");
    let pg = env.name("pg");
    let (scratch1, scratch2) = (env.name("scratch1"), env.name("scratch2"));
    start_pg(&pg, &pw);
    seed(&pg, &pw);
    let before = fingerprint(&pg, &pw, DB);
    backup(&env, &pw, &pg);

    let drill = |scratch: &str| {
        rb(
            &env,
            &pw,
            &[
                "run",
                "runbooks/drills/backup-verification.yaml",
                "-p",
                &format!("live={pg}"),
                "-p",
                &format!("scratch={scratch}"),
                "-p",
                &format!("image={}", pg_image()),
                "-p",
                &format!("backup_root={}", env.path("backups").display()),
            ],
        )
    };
    let out = drill(&scratch1);
    expect_code(&out, 0);
    assert_rpo(&report_of(&env, &out), "step `backup_time` output `stdout`");
    assert!(
        !docker(&["inspect", &scratch1]).status.success(),
        "the scratch container is removed"
    );
    assert_eq!(
        fingerprint(&pg, &pw, DB),
        before,
        "the live database is untouched"
    );

    // The live database drifted from the backup: the drill fails on the comparison, and the
    // scratch container is still removed.
    psql_ok(
        &pg,
        &pw,
        DB,
        "update users set email = 'changed' where id = 7",
    );
    let out = drill(&scratch2);
    expect_code(&out, 1);
    let text = output_text(&out);
    assert!(text.contains("compare"), "{text}");
    assert!(
        !docker(&["inspect", &scratch2]).status.success(),
        "the scratch container is removed after a failed drill"
    );
}

// ---------------------------------------------------------------------------------------------
// Point-in-time recovery: backup/wal-archive.yaml and restore/pitr.yaml.
// ---------------------------------------------------------------------------------------------

/// A primary that archives its WAL into the named volume `archive` (mounted at /archive),
/// configured as operators do: `ALTER SYSTEM` (postgresql.auto.conf) and a line in
/// postgresql.conf, then a restart. A restored server must archive neither way.
fn start_archiving_pg(name: &str, pw: &str, archive: &str) {
    let vol = format!("{archive}:/archive");
    start_pg_with(
        name,
        pw,
        &["-v", &vol],
        &["-c", "wal_level=replica", "-c", "timezone=UTC"],
    );
    psql_ok(name, pw, DB, "alter system set archive_mode = on");
    psql_ok(
        name,
        pw,
        DB,
        "alter system set archive_command = 'test ! -f /archive/%f && cp %p /archive/%f.tmp && mv /archive/%f.tmp /archive/%f'",
    );
    psql_ok(name, pw, DB, "alter system set archive_timeout = 60");
    docker_ok(&[
        "exec",
        "-u",
        "postgres",
        name,
        "sh",
        "-c",
        "echo 'archive_mode = on' >> \"$PGDATA/postgresql.conf\"",
    ]);
    docker_ok(&["restart", name]);
    poll(
        "postgres to answer after the restart",
        Duration::from_mins(1),
        || psql(name, pw, DB, "select 1").status.success(),
    );
    assert_eq!(psql_ok(name, pw, DB, "show archive_mode"), "on");
}

const SERVER_NOW: &str =
    "select to_char(clock_timestamp() at time zone 'UTC','YYYY-MM-DD\"T\"HH24:MI:SS.US')||'+00'";

/// Switches to a new WAL segment and waits until the one just closed is archived.
fn switch_and_archive(pg: &str, pw: &str) {
    let seg = psql_ok(pg, pw, DB, "select pg_walfile_name(pg_switch_wal())");
    poll(
        &format!("segment {seg} to be archived"),
        Duration::from_mins(2),
        || {
            let last = psql_ok(
                pg,
                pw,
                DB,
                "select coalesce(last_archived_wal, '') from pg_stat_archiver",
            );
            !last.is_empty() && last.as_str() >= seg.as_str()
        },
    );
}

fn pitr_args(params: &[String]) -> Vec<String> {
    let mut a = vec!["run".to_owned(), "runbooks/restore/pitr.yaml".to_owned()];
    for p in params {
        a.extend(["-p".to_owned(), p.clone()]);
    }
    a
}

/// Runs backup/wal-archive.yaml against `pg`; checks SHA256SUMS and the catalog line.
/// Returns the backup root and the backup's end time.
fn pitr_base_backup(env: &Env, pw: &str, pg: &str) -> (PathBuf, String) {
    let root = env.path("base");
    let out = rb(
        env,
        pw,
        &[
            "run",
            "runbooks/backup/wal-archive.yaml",
            "-p",
            &format!("container={pg}"),
            "-p",
            &format!("backup_root={}", root.display()),
        ],
    );
    expect_code(&out, 0);
    let catalog = std::fs::read_to_string(root.join("catalog.jsonl")).expect("catalog");
    let entry: serde_json::Value = serde_json::from_str(catalog.trim()).expect("one JSON line");
    let dir = PathBuf::from(entry["dir"].as_str().expect("dir"));
    let end = entry["end"].as_str().expect("end").to_owned();
    assert!(end.ends_with("+00"), "end time with an offset: {end}");
    let c = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&dir)
        .output()
        .expect("sha256sum");
    let listed = String::from_utf8_lossy(&c.stdout);
    assert!(c.status.success(), "sha256sum -c: {listed}");
    for f in [
        "base.tar.gz: OK",
        "pg_wal.tar.gz: OK",
        "backup_manifest: OK",
    ] {
        assert!(listed.contains(f), "{listed}");
    }
    let inner = docker(&["exec", pg, "ls", "-A", "/backup"]);
    assert!(
        String::from_utf8_lossy(&inner.stdout).trim().is_empty(),
        "the in-container copy was removed"
    );

    (root, end)
}

#[test]
fn pitr_restores_exactly_the_rows_committed_before_the_target() {
    pitr_restores_exactly_the_rows_committed_before_the_target_on(None);
}

#[test]
fn pitr_restores_exactly_the_rows_committed_before_the_target_over_the_engine_stream() {
    pitr_restores_exactly_the_rows_committed_before_the_target_on(Some("engine"));
}

fn pitr_restores_exactly_the_rows_committed_before_the_target_on(transport: Option<&'static str>) {
    let mut env = Env::with_transport("pitr", transport);
    let pw = password("pitr");
    let pg = env.name("pg");
    let restored = env.name("restored");
    env.name("restored-prep");
    let archive = format!("{}-archive", env.prefix);
    let data = format!("{}-pgdata", env.prefix);
    env.volumes.push(archive.clone());
    env.volumes.push(data.clone());
    start_archiving_pg(&pg, &pw, &archive);
    psql_ok(
        &pg,
        &pw,
        DB,
        "create table events(id int primary key, batch text not null)",
    );
    fidelity::build(&pg, &pw);

    let started = Instant::now();
    let (root, end) = pitr_base_backup(&env, &pw, &pg);

    // Batch A, the target from the server's clock, batch B, archived.
    psql_ok(
        &pg,
        &pw,
        DB,
        "insert into events select g, 'A' from generate_series(1, 500) g",
    );
    let at_target = fidelity::change_the_cluster(&pg, &pw);
    let target = psql_ok(&pg, &pw, DB, SERVER_NOW);
    assert!(target.as_str() > end.as_str(), "{target} after {end}");
    psql_ok(
        &pg,
        &pw,
        DB,
        "insert into events select g, 'B' from generate_series(501, 800) g",
    );
    switch_and_archive(&pg, &pw);

    // The disaster: the primary and its data are gone (the archive volume stays).
    docker_ok(&["rm", "-f", "-v", &pg]);

    let params = |target: &str| {
        vec![
            format!("target_time={target}"),
            format!("backup_root={}", root.display()),
            format!("archive_volume={archive}"),
            format!("data_volume={data}"),
            format!("container={restored}"),
            format!("image={}", pg_image()),
        ]
    };

    pitr_refuses_outside_the_window(&env, &pw, &restored, &params, &target);

    // The same instant written with `Z`, as ISO 8601 allows (PostgreSQL itself refuses it).
    let target = format!("{}Z", target.trim_end_matches("+00"));
    let args = pitr_args(&params(&target));
    let out = rb(
        &env,
        &pw,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    expect_code(&out, 0);
    assert!(running(&restored));
    assert_recovered_to_batch_a(&restored, &pw);
    // The primary archived through ALTER SYSTEM and postgresql.conf; the new server must not
    // write its timeline into the production archive.
    assert_eq!(psql_ok(&restored, &pw, DB, "show archive_mode"), "off");
    fidelity::assert_the_cluster_came_back(&restored, &pw, &at_target);
    pitr_report_has_the_achieved_rpo(&env, &out, &target);
    eprintln!("pitr test took {:.1}s", started.elapsed().as_secs_f64());
}

/// Outside the window: before the base backup ended, after the newest archived commit, and
/// without an offset. Nothing is started.
/// A PITR to the target between the two batches brought back exactly batch A (none of B) and
/// the server was promoted.
fn assert_recovered_to_batch_a(container: &str, pw: &str) {
    let batches = psql_ok(
        container,
        pw,
        DB,
        "select batch || ':' || count(*) || ':' || min(id) || '-' || max(id) from events group by batch order by batch",
    );
    assert_eq!(batches, "A:500:1-500", "exactly batch A, none of batch B");
    assert_eq!(
        psql_ok(container, pw, DB, "select pg_is_in_recovery()"),
        "f"
    );
}

fn pitr_refuses_outside_the_window(
    env: &Env,
    pw: &str,
    restored: &str,
    params: &dyn Fn(&str) -> Vec<String>,
    target: &str,
) {
    let far = "2099-01-01T00:00:00+00".to_owned();
    for (bad, step, why) in [
        ("2000-01-01T00:00:00+00", "choose", "ends before the target"),
        (
            far.as_str(),
            "wal_window",
            "is after the newest archived commit",
        ),
        (
            target.trim_end_matches("+00"),
            "target",
            "(an explicit offset)",
        ),
    ] {
        let out = rb(
            env,
            pw,
            &pitr_args(&params(bad))
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        );
        expect_code(&out, 1);
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            text.contains(&format!("✘ {step} failed")) && text.contains(why),
            "{bad} refused at {step}: {text}"
        );
        assert!(
            !docker(&["inspect", restored]).status.success(),
            "no server started for {bad}"
        );
        let volume = params(bad)
            .iter()
            .find_map(|p| p.strip_prefix("data_volume=").map(str::to_owned))
            .expect("a data volume param");
        assert!(
            !docker(&["volume", "inspect", &volume]).status.success(),
            "a refused recovery ({bad}) left its empty data volume behind"
        );
    }
}

/// The recovery target is the restore point: its age at the start is the achieved RPO.
fn pitr_report_has_the_achieved_rpo(env: &Env, out: &Output, target: &str) {
    let from = assert_rpo(&report_of(env, out), "param `target_time`");
    assert_eq!(from, target);
}
