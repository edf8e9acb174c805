//! Crash torture: the shipped `runbooks/backup/database.yaml` and
//! `runbooks/restore/database.yaml` against a real `PostgreSQL` server, with `rb` killed by
//! SIGKILL at random instants and resumed with `--resume` (resumes are killed too, at
//! random), until the run succeeds. After every successful run the harness checks that:
//!
//! - the run's journal ends in success;
//! - the data equals the source (row counts and a content hash per table), after a restore;
//! - every dump in the backup root is complete and verified: listed in its `SHA256SUMS`
//!   with the right digest, `zstd -t` passes and `pg_restore` reads all of it; files checked
//!   before are unchanged (earlier backups untouched);
//! - the catalog has only whole lines, each naming a file whose size and digest match;
//! - no temporary file (`.NAME.rb-tmp.*`) is left, neither in the backup root nor in the
//!   state directory;
//! - no process rb started is left: none on this machine carries the harness's marker
//!   variable (every child of rb inherits its environment), none in the container carries
//!   rb's exec marker `RB_EXEC_ID`, and `docker top` shows no `pg_dump`, `pg_restore`,
//!   `psql` or shell.
//!
//! `RB_TORTURE_KILLS` (default 3) is the number of kills per runbook; `RB_TORTURE_SEED`
//! fixes the random instants (the seed is printed either way). The full local run:
//! `RB_TORTURE_KILLS=50 cargo test --test engine torture:: -- --nocapture`.

use crate::pg::{DB, app, docker, docker_ok, free_port, root, start_pg};
use crate::support::Test;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// splitmix64: small, seedable, good enough to spread kill instants.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A duration in `[0, max)`.
    fn below(&mut self, max: Duration) -> Duration {
        let ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX).max(1);
        Duration::from_millis(self.next() % ms)
    }

    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
}

/// The containers and files of one torture run, removed also when it fails.
struct World {
    tag: String,
    pw: String,
    pg: String,
    backend: (String, u16),
    frontend: (String, u16),
    dir: tempfile::TempDir,
    /// Files checked complete before, by path: their digest must never change.
    verified: BTreeMap<PathBuf, String>,
    kills: usize,
    resumes: usize,
    fresh_restarts: usize,
    checks: usize,
    spawned: usize,
}

impl Drop for World {
    fn drop(&mut self) {
        for c in [&self.pg, &self.backend.0, &self.frontend.0] {
            let _ = docker(&["rm", "-f", "-v", c]);
        }
    }
}

impl World {
    fn new(what: &str) -> Self {
        let tag = format!("torture-{}-{what}", std::process::id());
        let w = World {
            pw: format!("pw-{tag}-s3cr3t"),
            pg: format!("{tag}-pg"),
            backend: (format!("{tag}-backend"), free_port()),
            frontend: (format!("{tag}-frontend"), free_port()),
            tag,
            dir: tempfile::tempdir().expect("temp dir"),
            verified: BTreeMap::new(),
            kills: 0,
            resumes: 0,
            fresh_restarts: 0,
            checks: 0,
            spawned: 0,
        };
        start_pg(&w.pg, &w.pw);
        for (name, port) in [&w.backend, &w.frontend] {
            app(name, *port);
        }
        w
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn psql_ok(&self, sql: &str) -> String {
        crate::pg::psql_ok(&self.pg, &self.pw, DB, sql)
    }

    /// Enough rows that the dump and the restore take a while: kills land inside them.
    fn seed(&self) {
        self.psql_ok(
            "create table users(id int primary key, email text not null);
             insert into users select g, md5(g::text) || '@example.com' from generate_series(1, 5000) g;
             create table agents(id int primary key, owner int references users, config text);
             insert into agents select g, 1 + g % 5000, repeat(md5(g::text), 8) from generate_series(1, 3000) g;
             create table agent_execution_history(id bigint primary key, agent_id int references agents, output text);
             insert into agent_execution_history select g, 1 + g % 3000, repeat(md5(random()::text), 16) from generate_series(1, 60000) g;",
        );
    }

    fn fingerprint(&self) -> BTreeMap<String, String> {
        crate::pg::fingerprint(&self.pg, &self.pw, DB)
    }

    fn backup_args(&self) -> Vec<String> {
        let mut a = vec!["run".into(), "runbooks/backup/database.yaml".into()];
        for p in [
            format!("container={}", self.pg),
            format!("backup_root={}", self.path("backups").display()),
            "zstd_level=1".to_owned(),
        ] {
            a.extend(["-p".into(), p]);
        }
        a
    }

    fn restore_args(&self) -> Vec<String> {
        let mut a = vec!["run".into(), "runbooks/restore/database.yaml".into()];
        for p in [
            format!("container={}", self.pg),
            format!("backup_root={}", self.path("backups").display()),
            format!("backend={}", self.backend.0),
            format!("frontend={}", self.frontend.0),
            format!("backend_url=http://127.0.0.1:{}/health", self.backend.1),
            format!("frontend_url=http://127.0.0.1:{}/health", self.frontend.1),
        ] {
            a.extend(["-p".into(), p]);
        }
        a.extend(["--approve".into(), "approve_drop".into()]);
        a
    }

    /// Starts `rb`; its output goes to files (read on failure).
    fn spawn(&mut self, args: &[String]) -> (Child, PathBuf) {
        self.spawned += 1;
        let log = self.path(&format!("logs/{}.log", self.spawned));
        std::fs::create_dir_all(log.parent().expect("parent")).expect("logs dir");
        let file = std::fs::File::create(&log).expect("log file");
        let child = Test::new()
            .cwd(&root())
            .env("PGPASSWORD", &self.pw)
            .env_path("RB_STATE_DIR", self.path("state"))
            .env_path("RB_LOCK_DIR", self.path("locks"))
            .env("RB_TORTURE_MARK", &self.tag)
            .args(args)
            .command()
            .stdout(file.try_clone().expect("dup"))
            .stderr(file)
            .spawn()
            .expect("rb starts");
        (child, log)
    }

    /// Runs `args` to success, killing it at a random instant within `span` and killing
    /// each resume with probability 1/2 (`kill_first`: the first attempt is killed too).
    fn torture(&mut self, rng: &mut Rng, args: &[String], span: Duration, kill_first: bool) {
        let mut attempt = 0usize;
        let mut resume = false;
        loop {
            let mut a = args.to_vec();
            if resume {
                a.push("--resume".into());
            }
            if resume {
                self.resumes += 1;
            }
            let (mut child, log) = self.spawn(&a);
            let kill = if attempt == 0 { kill_first } else { rng.coin() };
            let kill_at = kill.then(|| rng.below(span));
            attempt += 1;
            let status = match kill_at {
                Some(at) => {
                    let deadline = Instant::now() + at;
                    loop {
                        if let Some(s) = child.try_wait().expect("wait") {
                            break Some(s);
                        }
                        if Instant::now() >= deadline {
                            child.kill().expect("SIGKILL");
                            child.wait().expect("reaped");
                            self.kills += 1;
                            break None;
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
                None => Some(wait_for(&mut child, Duration::from_mins(5))),
            };
            let Some(status) = status else {
                resume = true;
                continue;
            };
            let text = read_log(&log);
            if status.success() {
                return;
            }
            // Killed before the start of the run reached the journal: nothing ran, so a
            // fresh run is the right way on.
            if resume && status.code() == Some(2) && text.contains("no unfinished run") {
                self.fresh_restarts += 1;
                resume = false;
                continue;
            }
            let logs = docker(&["logs", "--tail", "40", &self.pg]);
            let ps = docker(&["exec", &self.pg, "ps", "-eo", "pid,ppid,stat,lstart,args"]);
            panic!(
                "rb {a:?} exited {status}:\n{text}\nthe server's last log lines:\n{}\nprocesses:\n{}",
                String::from_utf8_lossy(&logs.stderr),
                String::from_utf8_lossy(&ps.stdout)
            );
        }
    }
}

fn wait_for(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("rb did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_log(path: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    s
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(walkdir::DirEntry::into_path)
        .collect()
}

/// Digests listed in every `SHA256SUMS` under `dir`, by absolute path.
fn listed_sums(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    for f in files_under(dir) {
        if f.file_name().is_some_and(|n| n == "SHA256SUMS") {
            let parent = f.parent().expect("parent");
            for line in std::fs::read_to_string(&f).expect("sums").lines() {
                let (digest, name) = line.split_once("  ").expect("sha256sum line");
                out.insert(parent.join(name), digest.to_owned());
            }
        }
    }
    out
}

impl World {
    /// Every file under the backup root is complete and verified; files checked before are
    /// unchanged; nothing temporary is left anywhere.
    fn check_files(&mut self) {
        let backups = self.path("backups");
        let sums = listed_sums(&backups);
        for f in files_under(&backups) {
            let name = f.file_name().expect("name").to_string_lossy().into_owned();
            assert!(
                !name.contains(".rb-tmp."),
                "a temporary file is left: {}",
                f.display()
            );
            let digest = sha256(&f);
            let is_dump = name.ends_with(".dump.zst");
            let in_sums = f.parent().is_some_and(|p| !p.ends_with("pre_recovery"));
            if (is_dump || f.extension().is_some_and(|e| e == "sql")) && in_sums {
                assert_eq!(
                    sums.get(&f),
                    Some(&digest),
                    "{} is not listed with its digest in its SHA256SUMS",
                    f.display()
                );
            }
            if let Some(before) = self.verified.get(&f) {
                assert_eq!(
                    &digest,
                    before,
                    "{} changed after it was verified",
                    f.display()
                );
                continue;
            }
            if is_dump {
                self.check_dump(&f);
            }
            if name != "SHA256SUMS" && name != "catalog.jsonl" {
                self.verified.insert(f, digest);
            }
        }
        for f in files_under(&self.path("state")) {
            assert!(
                !f.to_string_lossy().contains(".rb-tmp."),
                "a temporary file is left: {}",
                f.display()
            );
        }
        self.check_catalog();
    }

    /// `zstd -t`, then `pg_restore` reads the whole dump (its table of contents alone
    /// passes on a truncated file).
    fn check_dump(&self, f: &Path) {
        let t = Command::new("zstd")
            .arg("-tq")
            .arg(f)
            .output()
            .expect("zstd");
        assert!(
            t.status.success(),
            "zstd -t {}: {}",
            f.display(),
            String::from_utf8_lossy(&t.stderr)
        );
        let mut z = Command::new("zstd")
            .arg("-dc")
            .arg(f)
            .stdout(Stdio::piped())
            .spawn()
            .expect("zstd -dc");
        let out = Command::new("docker")
            .args(["exec", "-i", &self.pg, "pg_restore", "-f", "/dev/null"])
            .stdin(z.stdout.take().expect("piped"))
            .output()
            .expect("pg_restore");
        assert!(z.wait().expect("zstd").success());
        assert!(
            out.status.success(),
            "pg_restore of {}: {}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn check_catalog(&self) {
        let path = self.path("backups/catalog.jsonl");
        let Ok(text) = std::fs::read_to_string(&path) else {
            return;
        };
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "a torn catalog line"
        );
        let mut seen = BTreeSet::new();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("a whole JSON line");
            assert_eq!(v["verified"], true);
            let file = PathBuf::from(v["file"].as_str().expect("file"));
            assert_eq!(v["sha256"].as_str(), Some(sha256(&file).as_str()), "{line}");
            assert!(
                seen.insert(file.clone()),
                "{} is in the catalog twice",
                file.display()
            );
        }
    }

    /// No process rb started is left, here or in the container.
    fn check_processes(&self) {
        let mark = format!("RB_TORTURE_MARK={}", self.tag);
        let mut here = Vec::new();
        for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
            let Ok(env) = std::fs::read(e.path().join("environ")) else {
                continue;
            };
            if env.split(|b| *b == 0).any(|v| v == mark.as_bytes()) {
                let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
                here.push(format!(
                    "{} {}",
                    e.file_name().display(),
                    String::from_utf8_lossy(&cmd)
                ));
            }
        }
        assert!(here.is_empty(), "processes of rb left behind: {here:?}");
        // Each user reads its own processes' environment (root in a container lacks
        // CAP_SYS_PTRACE for the others).
        for user in ["root", "postgres"] {
            let marked = docker_ok(&[
                "exec",
                "-u",
                user,
                &self.pg,
                "sh",
                "-c",
                "for d in /proc/[0-9]*; do if tr '\\000' '\\n' < $d/environ 2>/dev/null | grep -q '^RB_EXEC_ID='; then echo \"${d#/proc/} $(tr '\\000' ' ' < $d/cmdline)\"; fi; done",
            ]);
            assert!(
                marked.trim().is_empty(),
                "exec sessions left in the container: {marked}"
            );
        }
        let top = docker_ok(&["top", &self.pg, "-eo", "pid,args"]);
        for bad in ["pg_dump", "pg_restore", "psql", "sh -c", "pg_isready"] {
            assert!(
                !top.lines().skip(1).any(|l| l.contains(bad)),
                "`{bad}` still runs in the container:\n{top}"
            );
        }
    }

    /// The newest run succeeded according to its journal.
    fn check_journal(&self) {
        let runs = self.path("state/runs");
        let newest = std::fs::read_dir(&runs)
            .expect("runs")
            .flatten()
            .map(|e| e.path())
            .max()
            .expect("a run");
        let text = std::fs::read_to_string(newest.join("journal.jsonl")).expect("journal");
        let last = text
            .lines()
            .rev()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON line"))
            .find(|v| v["event"] == "run_finished")
            .expect("the run finished");
        assert_eq!(last["outcome"], "succeeded", "{last}");
    }

    fn report(&self, what: &str, seed: u64) {
        println!(
            "torture {what}: seed {seed}, kills {}, resumes {}, fresh restarts {}, successful runs checked {}",
            self.kills, self.resumes, self.fresh_restarts, self.checks
        );
    }
}

fn seed_and_kills() -> (u64, usize) {
    let seed = std::env::var("RB_TORTURE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .subsec_nanos()
                .into()
        });
    let kills = std::env::var("RB_TORTURE_KILLS")
        .unwrap_or_else(|_| "3".into())
        .parse()
        .expect("RB_TORTURE_KILLS is a number");
    println!("RB_TORTURE_SEED={seed} RB_TORTURE_KILLS={kills}");
    (seed, kills)
}

/// How long an undisturbed run of `args` takes: kill instants are drawn below it.
fn timed_run(w: &mut World, args: &[String]) -> Duration {
    let started = Instant::now();
    let (mut child, log) = w.spawn(args);
    let status = wait_for(&mut child, Duration::from_mins(5));
    assert!(status.success(), "{}", read_log(&log));
    started.elapsed()
}

#[test]
fn backup_survives_sigkill_at_any_instant() {
    let (seed, kills) = seed_and_kills();
    let mut rng = Rng(seed);
    let mut w = World::new("bk");
    w.seed();
    let args = w.backup_args();
    let span = timed_run(&mut w, &args);
    w.check_files();
    w.checks += 1;
    while w.kills < kills {
        w.torture(&mut rng, &args, span, true);
        w.check_journal();
        w.check_files();
        w.check_processes();
        w.checks += 1;
    }
    w.report("backup", seed);
}

#[test]
fn restore_survives_sigkill_at_any_instant() {
    let (seed, kills) = seed_and_kills();
    let mut rng = Rng(seed ^ 0x5eed);
    let mut w = World::new("rs");
    w.seed();
    let source = w.fingerprint();
    let backup = w.backup_args();
    timed_run(&mut w, &backup);
    let args = w.restore_args();
    let span = timed_run(&mut w, &args);
    assert_eq!(w.fingerprint(), source);
    while w.kills < kills {
        // Change the data so that only a real restore brings the source back.
        w.psql_ok("delete from agent_execution_history where id % 7 = 0; update users set email = 'x' where id < 100");
        assert_ne!(w.fingerprint(), source);
        w.torture(&mut rng, &args, span, true);
        w.check_journal();
        assert_eq!(
            w.fingerprint(),
            source,
            "the restored data equals the source"
        );
        w.check_files();
        w.check_processes();
        w.checks += 1;
    }
    w.report("restore", seed);
}
