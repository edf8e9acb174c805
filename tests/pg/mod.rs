//! Helpers shared by the test binaries that drive real `PostgreSQL` servers in Docker
//! (`e2e`, `torture`): the docker CLI, psql inside the container, data fingerprints.

#![allow(dead_code, reason = "each test binary uses a different part")]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const TABLES: [&str; 3] = ["users", "agents", "agent_execution_history"];
pub const USER: &str = "codexos";
pub const DB: &str = "codexos_db";

pub fn pg_image() -> String {
    std::env::var("RB_TEST_PG_IMAGE").unwrap_or_else(|_| "rb-test/postgres:15".into())
}

pub fn tools_image() -> String {
    std::env::var("RB_TEST_TOOLS_IMAGE").unwrap_or_else(|_| "rb-test/tools:1".into())
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A password that must never show up in output or journals.
pub fn password(test: &str) -> String {
    format!("pw-{test}-{}-s3cr3t", std::process::id())
}

pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("docker runs")
}

pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

pub fn psql(container: &str, pw: &str, db: &str, sql: &str) -> Output {
    psql_with(container, pw, db, sql, "")
}

/// `psql` with server options for the session (`PGOPTIONS`, e.g. `-c timezone=UTC`).
pub fn psql_with(container: &str, pw: &str, db: &str, sql: &str, options: &str) -> Output {
    let env = format!("PGPASSWORD={pw}");
    let options = format!("PGOPTIONS={options}");
    docker(&[
        "exec",
        "-e",
        &env,
        "-e",
        &options,
        container,
        "psql",
        "-h",
        "127.0.0.1",
        "-U",
        USER,
        "-d",
        db,
        "-v",
        "ON_ERROR_STOP=1",
        "-Atc",
        sql,
    ])
}

pub fn psql_ok(container: &str, pw: &str, db: &str, sql: &str) -> String {
    let out = psql(container, pw, db, sql);
    assert!(
        out.status.success(),
        "psql `{sql}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

/// Poll until `f` is true, failing after `limit`.
pub fn poll(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn start_pg(name: &str, pw: &str) {
    start_pg_with(name, pw, &[], &[]);
}

/// `start_pg` with more `docker run` options and server arguments (`-c key=value`).
pub fn start_pg_with(name: &str, pw: &str, docker_args: &[&str], server_args: &[&str]) {
    let env = format!("POSTGRES_PASSWORD={pw}");
    let image = pg_image();
    let mut args = vec![
        "run",
        "-d",
        "--name",
        name,
        "-e",
        "POSTGRES_USER=codexos",
        "-e",
        &env,
        "-e",
        "POSTGRES_DB=codexos_db",
    ];
    args.extend_from_slice(docker_args);
    args.push(&image);
    args.extend_from_slice(server_args);
    docker_ok(&args);
    poll("postgres to answer on TCP", Duration::from_mins(1), || {
        psql(name, pw, DB, "select 1").status.success()
    });
}

/// Per table: row count and a hash of all rows in primary-key order.
pub fn fingerprint(name: &str, pw: &str, db: &str) -> BTreeMap<String, String> {
    TABLES
        .iter()
        .map(|t| {
            let v = psql_ok(
                name,
                pw,
                db,
                &format!("select count(*) || ' ' || md5(coalesce(string_agg(t::text, '|' order by id), '')) from {t} t"),
            );
            ((*t).to_owned(), v)
        })
        .collect()
}

/// An application stand-in: busybox httpd answering `/health` with 200.
pub fn app(name: &str, port: u16) {
    let publish = format!("127.0.0.1:{port}:8000");
    docker_ok(&[
        "run",
        "-d",
        "--name",
        name,
        "-p",
        &publish,
        &tools_image(),
        "busybox",
        "httpd",
        "-f",
        "-p",
        "8000",
        "-h",
        "/www",
    ]);
}

/// Removes everything a test created, also on panic: containers, networks, volumes and
/// tmpfs mounts.
pub struct Env {
    pub prefix: String,
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
    pub mounts: Vec<PathBuf>,
    pub dir: tempfile::TempDir,
    /// `RB_TRANSPORT` for the runs of this test (`None`: rb's default, `auto`).
    pub transport: Option<&'static str>,
}

impl Env {
    pub fn new(test: &str) -> Env {
        Env {
            prefix: format!("rbt-{}-{test}", std::process::id()),
            containers: Vec::new(),
            networks: Vec::new(),
            volumes: Vec::new(),
            mounts: Vec::new(),
            dir: tempfile::tempdir().expect("temp dir"),
            transport: None,
        }
    }

    /// The same, with `RB_TRANSPORT` set for its runs (`engine`: the Engine API stream).
    pub fn with_transport(test: &str, transport: Option<&'static str>) -> Env {
        let suffix = transport.map(|t| format!("-{t}")).unwrap_or_default();
        let mut env = Env::new(&format!("{test}{suffix}"));
        env.transport = transport;
        env
    }

    /// A container name of this test, removed at the end.
    pub fn name(&mut self, what: &str) -> String {
        let n = format!("{}-{what}", self.prefix);
        self.containers.push(n.clone());
        n
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// A tmpfs of `size` (as `mount -o size=` takes it) at `p`, unmounted at the end.
    pub fn tmpfs(&mut self, p: &str, size: &str) -> PathBuf {
        let at = self.path(p);
        std::fs::create_dir_all(&at).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "mount tmpfs (this test needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.mounts.push(at.clone());
        at
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = docker(&["rm", "-f", "-v", c]);
        }
        for n in &self.networks {
            let _ = docker(&["network", "rm", n]);
        }
        for v in &self.volumes {
            let _ = docker(&["volume", "rm", "-f", v]);
        }
        for m in &self.mounts {
            let _ = Command::new("umount").arg(m).output();
        }
    }
}
