//! Faults injected into real runs against real Docker engines and a real `PostgreSQL`
//! server: the Docker daemon stopped in the middle of a step (a third, private dockerd, so the
//! shared engines are never touched), a full disk under a backup, a truncated dump, SIGTERM
//! in the middle of a data stream, a cancelled shell in the database container; and
//! concurrency: a backup and a restore of the same database never run at once.
//!
//! Every container, mount, bridge and daemon a test makes is removed by a guard, also when
//! the test fails.

use crate::pg::{
    DB, Env, app, docker, docker_ok, free_port, password, poll, psql_ok, root, start_pg,
};
use crate::support::Test;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// `rb ARGS` from the repository root with the password in its environment.
fn rb_test(g: &Env, pw: &str, args: &[&str]) -> Test {
    Test::new()
        .cwd(&root())
        .env("PGPASSWORD", pw)
        .env_path("RB_STATE_DIR", g.path("state"))
        .env_path("RB_LOCK_DIR", g.path("locks"))
        .args(args)
}

fn rb_cmd(g: &Env, pw: &str, args: &[&str]) -> Command {
    rb_test(g, pw, args).command()
}

fn rb(g: &Env, pw: &str, args: &[&str]) -> Output {
    rb_test(g, pw, args).output()
}

fn spawn(g: &Env, pw: &str, args: &[&str]) -> Child {
    rb_cmd(g, pw, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rb starts")
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
}

#[track_caller]
fn expect_code(out: &Output, code: i32) {
    assert_eq!(out.status.code(), Some(code), "{}", text(out));
}

fn wait(child: Child) -> Output {
    child.wait_with_output().expect("rb ends")
}

/// The journal events of every run of `runbook` in the state dir, oldest run first.
fn journals(g: &Env, runbook: &str) -> Vec<Vec<Value>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(g.path("state/runs"))
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs.iter()
        .map(|d| {
            std::fs::read_to_string(d.join("journal.jsonl"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .collect::<Vec<_>>()
        })
        .filter(|j| j.first().is_some_and(|e| e["runbook"] == runbook))
        .collect()
}

fn event<'a>(journal: &'a [Value], kind: &str, step: &str) -> Option<&'a Value> {
    journal
        .iter()
        .rev()
        .find(|e| e["event"] == kind && (step.is_empty() || e["step"] == step))
}

/// A journal tells the truth: it ends with the run's end, and every step that started ended.
fn assert_consistent(journal: &[Value]) {
    assert_eq!(
        journal.last().map(|e| &e["event"]),
        Some(&Value::from("run_finished")),
        "{journal:#?}"
    );
    for s in journal.iter().filter(|e| e["event"] == "step_started") {
        assert!(
            event(
                journal,
                "step_finished",
                s["step"].as_str().unwrap_or_default()
            )
            .is_some(),
            "step {} started and never ended: {journal:#?}",
            s["step"]
        );
    }
}

fn names_under(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            e.path()
                .strip_prefix(dir)
                .expect("under")
                .display()
                .to_string()
        })
        .collect();
    v.sort();
    v
}

/// Every file under `dir` (temporary ones too) with its SHA-256.
fn digests(dir: &Path) -> Vec<(String, String)> {
    names_under(dir)
        .into_iter()
        .map(|n| {
            let out = Command::new("sha256sum")
                .arg(dir.join(&n))
                .output()
                .expect("sha256sum");
            let d = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
            (n, d)
        })
        .collect()
}

/// No process of an rb exec is left in the container (each user reads its own processes).
fn no_exec_left(container: &str, users: &[&str]) {
    for user in users {
        let out = docker(&[
            "exec",
            "-u",
            user,
            container,
            "sh",
            "-c",
            "for d in /proc/[0-9]*; do if tr '\\000' '\\n' < $d/environ 2>/dev/null | grep -q '^RB_EXEC_ID='; then echo ${d#/proc/}; fi; done",
        ]);
        let left = String::from_utf8_lossy(&out.stdout);
        assert!(left.trim().is_empty(), "exec processes left: {left}");
    }
}

fn backup_args<'a>(pg: &'a str, root: &'a str) -> Vec<String> {
    vec![
        "run".into(),
        "runbooks/backup/database.yaml".into(),
        "-p".into(),
        format!("container={pg}"),
        "-p".into(),
        format!("backup_root={root}"),
        "-p".into(),
        "zstd_level=1".into(),
    ]
}

/// The database container and the application around it, for the restore runbook.
struct App<'a> {
    pg: &'a str,
    backend: (&'a str, u16),
    frontend: (&'a str, u16),
}

fn restore_args(app: &App, backups: &str, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = vec!["run".into(), "runbooks/restore/database.yaml".into()];
    for p in [
        format!("container={}", app.pg),
        format!("backup_root={backups}"),
        format!("backend={}", app.backend.0),
        format!("frontend={}", app.frontend.0),
        format!("backend_url=http://127.0.0.1:{}/health", app.backend.1),
        format!("frontend_url=http://127.0.0.1:{}/health", app.frontend.1),
        "tables=users".to_owned(),
    ] {
        a.extend(["-p".into(), p]);
    }
    a.extend(["--approve".into(), "approve_drop".into()]);
    a.extend(extra.iter().map(|e| (*e).to_owned()));
    a
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn rows(pg: &str, pw: &str, table: &str, n: u32) {
    psql_ok(
        pg,
        pw,
        DB,
        &format!(
            "create table if not exists {table}(id serial primary key, v text);
             insert into {table}(v) select md5(random()::text) || md5(random()::text) from generate_series(1, {n})"
        ),
    );
}

#[test]
fn disk_full_while_writing_a_backup_fails_and_keeps_the_earlier_backup() {
    let mut g = Env::new("full");
    let pw = password("full");
    let pg = g.name("pg");
    start_pg(&pg, &pw);
    rows(&pg, &pw, "small", 2_000);
    let backups = g.tmpfs("backups", "2m");
    let root_s = backups.display().to_string();
    expect_code(&rb(&g, &pw, &strs(&backup_args(&pg, &root_s))), 0);
    let before = digests(&backups);
    assert!(
        before.iter().any(|(n, _)| n.ends_with(".dump.zst")),
        "{before:?}"
    );

    // Far more than the 2 MiB file system holds (random text barely compresses).
    rows(&pg, &pw, "big", 120_000);
    std::thread::sleep(Duration::from_millis(1100)); // a new `now`: new file names
    let out = rb(&g, &pw, &strs(&backup_args(&pg, &root_s)));
    expect_code(&out, 1);
    let all = text(&out);
    assert!(
        all.contains("No space left on device") && all.contains(&root_s),
        "the error says what happened and where:\n{all}"
    );
    println!("{all}");
    let after = digests(&backups);
    for (name, digest) in &before {
        assert_eq!(
            after.iter().find(|(n, _)| n == name).map(|(_, d)| d),
            Some(digest),
            "{name}: the earlier backup, its SHA256SUMS and the catalog are untouched"
        );
    }
    // Only the roles file, written whole by the step that ran beside the dump, may be new.
    for (name, _) in after.iter().filter(|a| !before.contains(a)) {
        assert!(
            name.contains("/globals_") && Path::new(name).extension().is_some_and(|e| e == "sql"),
            "a new file under a final name after a failed dump: {name} (all: {after:?})"
        );
    }
    let runs = journals(&g, "backup-database");
    let last = runs.last().expect("a run");
    assert_consistent(last);
    assert_eq!(
        event(last, "step_finished", "dump").expect("dump ended")["outcome"],
        "failed"
    );
}

#[test]
fn a_truncated_dump_is_refused_before_anything_is_stopped_or_dropped() {
    let mut g = Env::new("trunc");
    let pw = password("trunc");
    let pg = g.name("pg");
    let (be, fe) = (g.name("backend"), g.name("frontend"));
    let (be_port, fe_port) = (free_port(), free_port());
    start_pg(&pg, &pw);
    app(&be, be_port);
    app(&fe, fe_port);
    rows(&pg, &pw, "users", 5_000);
    let backups = g.path("backups").display().to_string();
    expect_code(&rb(&g, &pw, &strs(&backup_args(&pg, &backups))), 0);
    let dump = names_under(&g.path("backups"))
        .into_iter()
        .find(|n| n.ends_with(".dump.zst"))
        .map(|n| g.path("backups").join(n))
        .expect("a dump");
    let dir = dump.parent().expect("dated dir").to_owned();

    // Cut it in half and make its checksum match, as a broken backup job would have.
    let bytes = std::fs::read(&dump).expect("dump");
    std::fs::write(&dump, &bytes[..bytes.len() / 2]).expect("truncate");
    let sums = Command::new("sh")
        .args([
            "-c",
            "sha256sum codexos_*.dump.zst globals_*.sql > SHA256SUMS",
        ])
        .current_dir(&dir)
        .output()
        .expect("sha256sum");
    assert!(sums.status.success());
    psql_ok(&pg, &pw, DB, "delete from users where id > 4000");
    let count = || psql_ok(&pg, &pw, DB, "select count(*) from users");
    assert_eq!(count(), "4000");

    let app = App {
        pg: &pg,
        backend: (&be, be_port),
        frontend: (&fe, fe_port),
    };
    let out = rb(&g, &pw, &strs(&restore_args(&app, &backups, &[])));
    expect_code(&out, 1);
    let runs = journals(&g, "restore-database");
    let j = runs.last().expect("a restore run");
    assert_consistent(j);
    assert_eq!(
        event(j, "step_finished", "verify_dump").expect("ran")["outcome"],
        "failed"
    );
    for never in ["stop_app", "safety_dump", "drop", "restore"] {
        assert!(
            event(j, "step_started", never).is_none(),
            "{never} ran:\n{}",
            text(&out)
        );
    }
    assert_eq!(count(), "4000", "the database was not touched");
    for c in [&be, &fe] {
        assert_eq!(
            docker_ok(&["inspect", "-f", "{{.State.Running}}", c]).trim(),
            "true",
            "the application was not stopped"
        );
    }
}

/// A runbook streaming endless data out of `container` into a compressed file, until
/// `/tmp/short` exists in the container; a cleanup step that always runs.
fn stream_book(g: &Env, container: &str) -> PathBuf {
    let file = g.path("stream.yaml");
    let out = g.path("out/stream.bin.zst");
    std::fs::write(
        &file,
        format!(
            r#"version: 1
name: stream
steps:
  - id: stream
    type: container.exec
    container: {container}
    command: [sh, -c, "if [ -f /tmp/short ]; then head -c 1000000 /dev/urandom; else cat /dev/urandom; fi"]
    stdout: {{ file: "{}", compress: zstd, checksum: sha256 }}
  - id: cleanup
    type: exec
    always: true
    command: [touch, "{}"]
"#,
            out.display(),
            g.path("cleanup.ran").display()
        ),
    )
    .expect("runbook");
    file
}

#[test]
fn sigterm_during_a_data_stream_cancels_the_step_and_the_run_resumes() {
    let mut g = Env::new("term");
    let tools = g.name("tools");
    docker_ok(&["run", "-d", "--name", &tools, &crate::pg::tools_image()]);
    let book = stream_book(&g, &tools);
    let book_s = book.display().to_string();
    let child = spawn(&g, "unused", &["run", &book_s]);
    poll(
        "data to flow into the temporary file",
        Duration::from_secs(30),
        || {
            std::fs::read_dir(g.path("out")).ok().is_some_and(|mut d| {
                d.any(|e| e.is_ok_and(|e| e.metadata().is_ok_and(|m| m.len() > 0)))
            })
        },
    );
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let out = wait(child);
    expect_code(&out, 130);
    assert_eq!(
        names_under(&g.path("out")),
        Vec::<String>::new(),
        "no partial file"
    );
    assert!(g.path("cleanup.ran").exists(), "always steps ran");
    let runs = journals(&g, "stream");
    let j = runs.last().expect("a run");
    assert_consistent(j);
    assert_eq!(
        event(j, "step_finished", "stream").expect("ended")["outcome"],
        "cancelled"
    );
    assert_eq!(
        event(j, "run_finished", "").expect("ended")["outcome"],
        "interrupted"
    );
    no_exec_left(&tools, &["root"]);

    docker_ok(&["exec", &tools, "touch", "/tmp/short"]);
    let out = rb(&g, "unused", &["run", &book_s, "--resume"]);
    expect_code(&out, 0);
    let z = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "zstd -dc '{}' | wc -c",
            g.path("out/stream.bin.zst").display()
        ))
        .output()
        .expect("zstd");
    assert_eq!(String::from_utf8_lossy(&z.stdout).trim(), "1000000");
}

#[test]
fn a_cancelled_shell_in_the_database_container_does_not_crash_the_server() {
    let mut g = Env::new("shell");
    let pw = password("shell");
    let pg = g.name("pg");
    start_pg(&pg, &pw);
    let book = g.path("slow.yaml");
    std::fs::write(
        &book,
        format!(
            r#"version: 1
name: slow
secrets:
  pw: {{ env: PGPASSWORD }}
steps:
  - id: slow
    type: container.exec
    container: {pg}
    env: {{ PGPASSWORD: "{{{{ secrets.pw }}}}" }}
    command: [sh, -c, "psql -h 127.0.0.1 -U codexos -d codexos_db -c 'select pg_sleep(60)'; echo after"]
    timeout: 2s
"#
        ),
    )
    .expect("runbook");
    let out = rb(&g, &pw, &["run", &book.display().to_string()]);
    expect_code(&out, 1);
    assert!(text(&out).contains("timed out"), "{}", text(&out));
    no_exec_left(&pg, &["root", "postgres"]);
    // The server (PID 1 in its container) took no child's death for a crashed backend.
    let logs = docker(&["logs", &pg]);
    let logs = String::from_utf8_lossy(&logs.stderr);
    assert!(
        !logs.contains("terminated by signal") && !logs.contains("recovery mode"),
        "{logs}"
    );
    assert_eq!(psql_ok(&pg, &pw, DB, "select 1"), "1");
}

/// A third Docker daemon of this test's own (the shared engines are never stopped): its own
/// data root, exec root, pidfile and socket, no iptables, and its own bridge (a daemon
/// started with `--bridge=none` would delete engine 1's `docker0`).
struct Daemon {
    dir: PathBuf,
    bridge: String,
    child: Option<Child>,
}

impl Daemon {
    fn new(tag: &str) -> Self {
        // Short: unix socket paths are limited to 108 bytes.
        let dir = PathBuf::from(format!("/tmp/rbd3-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("daemon dir");
        std::fs::write(dir.join("daemon.json"), "{}").expect("config");
        let bridge = format!("rbtor{tag}0");
        let ip = |args: &[&str]| Command::new("ip").args(args).output().expect("ip runs");
        let _ = ip(&["link", "add", &bridge, "type", "bridge"]);
        let _ = ip(&["addr", "add", "10.215.7.1/24", "dev", &bridge]);
        let _ = ip(&["link", "set", &bridge, "up"]);
        let mut d = Self {
            dir,
            bridge,
            child: None,
        };
        d.start();
        d
    }

    fn host(&self) -> String {
        format!("unix://{}/docker.sock", self.dir.display())
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("dockerd.log"))
            .expect("log");
        let d = |p: &str| self.dir.join(p).display().to_string();
        let child = Command::new("dockerd")
            .args(["--config-file", &d("daemon.json")])
            .args(["--data-root", &d("data"), "--exec-root", &d("exec")])
            .args(["--pidfile", &d("docker.pid"), "-H", &self.host()])
            .args(["--iptables=false", "--ip-forward=false", "--ip-masq=false"])
            .args(["--bridge", &self.bridge])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("dockerd starts");
        self.child = Some(child);
        poll(
            "the third dockerd to answer",
            Duration::from_mins(1),
            || self.docker(&["version"]).status.success(),
        );
    }

    /// Stops the daemon (SIGTERM, as `systemctl stop docker` does) and waits for it.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(c.id()).expect("pid"));
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = std::time::Instant::now() + Duration::from_mins(1);
            while c.try_wait().expect("wait").is_none() {
                if std::time::Instant::now() > deadline {
                    let _ = c.kill();
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .args(["-H", &self.host()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("docker runs")
    }

    fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(out.status.success(), "docker {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `docker save IMAGE` from engine 1 into this daemon.
    fn load(&self, image: &str) {
        let mut save = Command::new("docker")
            .args(["save", image])
            .stdout(Stdio::piped())
            .spawn()
            .expect("docker save");
        let load = Command::new("docker")
            .args(["-H", &self.host(), "load", "-q"])
            .stdin(save.stdout.take().expect("piped"))
            .output()
            .expect("docker load");
        assert!(save.wait().expect("save").success());
        assert!(load.status.success(), "{}", text(&load));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.docker(&["rm", "-f", "-v", "rbfault-lines"]);
        }
        self.stop();
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
        let _ = Command::new("umount")
            .args(["-R", &self.dir.display().to_string()])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn docker_daemon_stopped_mid_step_fails_clearly_and_resumes_once_it_is_back() {
    let g = Env::new("daemon");
    let mut d = Daemon::new("d");
    d.load(&crate::pg::tools_image());
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "rbfault-lines",
        "--network",
        "none",
        &crate::pg::tools_image(),
    ]);
    let out_file = g.path("out/lines.txt");
    let book = g.path("lines.yaml");
    std::fs::write(
        &book,
        format!(
            r#"version: 1
name: lines
steps:
  - id: lines
    type: container.exec
    container: rbfault-lines
    command: [sh, -c, "if [ -f /tmp/fast ]; then echo quick; else i=0; while [ $i -lt 600 ]; do echo line $i; i=$((i+1)); sleep 0.1; done; fi"]
    stdout: {{ file: "{}" }}
  - id: after
    type: exec
    command: [cat, "{}"]
"#,
            out_file.display(),
            out_file.display()
        ),
    )
    .expect("runbook");
    let book_s = book.display().to_string();
    let host = d.host();
    let mut cmd = rb_cmd(&g, "unused", &["run", &book_s]);
    cmd.env("DOCKER_HOST", &host)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().expect("rb starts");
    poll("the step to stream", Duration::from_secs(30), || {
        let top = d.docker(&["top", "rbfault-lines"]);
        String::from_utf8_lossy(&top.stdout).contains("sleep 0.1")
    });
    d.stop();
    let out = wait(child);
    expect_code(&out, 1);
    let all = text(&out);
    assert!(all.contains(&host), "the error names the endpoint:\n{all}");
    println!("{all}");
    assert_eq!(
        names_under(&g.path("out")),
        Vec::<String>::new(),
        "no partial file"
    );
    let runs = journals(&g, "lines");
    let j = runs.last().expect("a run");
    assert_consistent(j);
    assert_eq!(
        event(j, "step_finished", "lines").expect("ended")["outcome"],
        "failed"
    );
    assert_eq!(
        event(j, "run_finished", "").expect("ended")["outcome"],
        "failed"
    );

    // The daemon is back; the container too (its file system kept).
    d.start();
    d.docker_ok(&["start", "rbfault-lines"]);
    d.docker_ok(&["exec", "rbfault-lines", "touch", "/tmp/fast"]);
    let mut cmd = rb_cmd(&g, "unused", &["run", &book_s, "--resume"]);
    cmd.env("DOCKER_HOST", &host);
    let out = cmd.output().expect("rb runs");
    expect_code(&out, 0);
    assert_eq!(
        std::fs::read_to_string(&out_file).expect("published"),
        "quick\n"
    );
}

fn at(e: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(e["at"].as_str().expect("at")).expect("RFC 3339")
}

/// When each run of `runbook` started and finished, oldest first.
fn spans(
    g: &Env,
    runbook: &str,
) -> Vec<(
    chrono::DateTime<chrono::FixedOffset>,
    chrono::DateTime<chrono::FixedOffset>,
)> {
    journals(g, runbook)
        .iter()
        .map(|j| {
            (
                at(event(j, "run_started", "").expect("started")),
                at(event(j, "run_finished", "").expect("finished")),
            )
        })
        .collect()
}

#[test]
fn a_backup_and_a_restore_of_the_same_database_never_run_at_once() {
    let mut g = Env::new("lock");
    let pw = password("lock");
    let (a, b) = (g.name("pg-a"), g.name("pg-b"));
    let (be, fe) = (g.name("backend"), g.name("frontend"));
    let (be_port, fe_port) = (free_port(), free_port());
    for pg in [&a, &b] {
        start_pg(pg, &pw);
        rows(pg, &pw, "users", 20_000);
    }
    app(&be, be_port);
    app(&fe, fe_port);
    let app_a = App {
        pg: &a,
        backend: (&be, be_port),
        frontend: (&fe, fe_port),
    };
    let backups = g.path("backups").display().to_string();
    expect_code(&rb(&g, &pw, &strs(&backup_args(&a, &backups))), 0);
    let started = |n: usize| {
        poll(
            "the backup to hold its lock",
            Duration::from_secs(30),
            || journals(&g, "backup-database").len() >= n,
        );
    };

    // Same database: the restore is refused at once, naming the backup that holds the lock.
    let backup = spawn(&g, &pw, &strs(&backup_args(&a, &backups)));
    started(2);
    let out = rb(&g, &pw, &strs(&restore_args(&app_a, &backups, &[])));
    expect_code(&out, 1);
    let all = text(&out);
    assert!(
        all.contains(&format!("lock `postgres/{a}` is held by run"))
            && all.contains("of runbook `backup-database`"),
        "{all}"
    );
    assert!(
        journals(&g, "restore-database").is_empty(),
        "the restore never started"
    );
    expect_code(&wait(backup), 0);

    // With --lock-wait it waits for the backup, then runs.
    let backup = spawn(&g, &pw, &strs(&backup_args(&a, &backups)));
    started(3);
    let out = rb(
        &g,
        &pw,
        &strs(&restore_args(&app_a, &backups, &["--lock-wait", "5m"])),
    );
    expect_code(&out, 0);
    expect_code(&wait(backup), 0);
    let bk = spans(&g, "backup-database");
    let rs = spans(&g, "restore-database");
    assert!(
        rs[0].0 >= bk[2].1,
        "the restore started after the backup ended: {bk:?} {rs:?}"
    );

    // Different databases: a backup of B and a restore of A run at the same time.
    let backup_b = spawn(
        &g,
        &pw,
        &strs(&backup_args(&b, &g.path("backups-b").display().to_string())),
    );
    let restore_a = spawn(&g, &pw, &strs(&restore_args(&app_a, &backups, &[])));
    expect_code(&wait(backup_b), 0);
    expect_code(&wait(restore_a), 0);
    let bk = spans(&g, "backup-database");
    let rs = spans(&g, "restore-database");
    let (b_run, a_run) = (bk[3], rs[1]);
    assert!(
        b_run.0 < a_run.1 && a_run.0 < b_run.1,
        "the two runs overlapped: {b_run:?} {a_run:?}"
    );
}

#[test]
fn resume_stops_what_a_killed_attempt_left_running_in_the_container() {
    let mut g = Env::new("leftover");
    let tools = g.name("tools");
    docker_ok(&["run", "-d", "--name", &tools, &crate::pg::tools_image()]);
    let book = g.path("left.yaml");
    std::fs::write(
        &book,
        format!(
            r#"version: 1
name: left
steps:
  - id: work
    type: container.exec
    container: {tools}
    command: [sh, -c, "if [ -f /tmp/go ]; then echo done; else touch /tmp/started; sleep 301; fi"]
"#
        ),
    )
    .expect("runbook");
    let book_s = book.display().to_string();
    let mut child = spawn(&g, "unused", &["run", &book_s]);
    poll("the step to start", Duration::from_secs(30), || {
        docker(&["exec", &tools, "test", "-f", "/tmp/started"])
            .status
            .success()
    });
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let sleeping =
        || String::from_utf8_lossy(&docker(&["top", &tools]).stdout).contains("sleep 301");
    assert!(
        sleeping(),
        "the Engine API has no kill for an exec: rb's death leaves it running"
    );

    docker_ok(&["exec", &tools, "touch", "/tmp/go"]);
    let out = rb(&g, "unused", &["run", &book_s, "--resume"]);
    expect_code(&out, 0);
    assert!(
        !sleeping(),
        "the resumed step stopped what its killed attempt left"
    );
    no_exec_left(&tools, &["root"]);
}
