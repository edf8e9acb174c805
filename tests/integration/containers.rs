//! Container steps through the real `rb` binary on the real Docker engines (tests/env).

use crate::support::{self, Ran, Test};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub fn var(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

pub fn engine1() -> String {
    var("DOCKER_HOST", "unix:///var/run/docker.sock")
}
fn engine2_tcp() -> String {
    var("RB_TEST_DOCKER2_TCP", "tcp://127.0.0.1:2376")
}
fn tls_dir() -> String {
    var("RB_TEST_TLS_DIR", "/var/lib/rb-testenv/tls")
}
pub(super) fn pg_image() -> String {
    var("RB_TEST_PG_IMAGE", "rb-test/postgres:15")
}
pub fn tools_image() -> String {
    var("RB_TEST_TOOLS_IMAGE", "rb-test/tools:1")
}

/// A unique container (or network) name for this test process.
pub fn name(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "rbt-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// `docker` CLI against an engine (test setup and verification only).
pub fn docker(host: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new("docker");
    cmd.env("DOCKER_HOST", host).args(args);
    if host.starts_with("tcp://") {
        let d = tls_dir();
        cmd.env("DOCKER_TLS_VERIFY", "1").env("DOCKER_CERT_PATH", d);
    }
    cmd.output().expect("docker CLI runs")
}

pub fn docker_ok(host: &str, args: &[&str]) -> String {
    let out = docker(host, args);
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Removes containers and networks when dropped, also when the test fails.
pub struct Guard {
    pub host: String,
    containers: Vec<String>,
    networks: Vec<String>,
}

impl Guard {
    pub fn new(host: &str) -> Self {
        Self {
            host: host.to_owned(),
            containers: Vec::new(),
            networks: Vec::new(),
        }
    }
    pub fn container(&mut self, n: &str) -> String {
        self.containers.push(n.to_owned());
        n.to_owned()
    }
    fn network(&mut self, n: &str) -> String {
        self.networks.push(n.to_owned());
        n.to_owned()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = docker(&self.host, &["rm", "-f", "-v", c]);
        }
        for n in &self.networks {
            let _ = docker(&self.host, &["network", "rm", n]);
        }
    }
}

/// Start a `PostgreSQL` container (through the CLI) and wait until it accepts connections.
pub(super) fn start_pg(guard: &mut Guard, tag: &str) -> String {
    let n = guard.container(&name(tag));
    docker_ok(
        &guard.host,
        &[
            "run",
            "-d",
            "--name",
            &n,
            "-e",
            "POSTGRES_PASSWORD=pw",
            &pg_image(),
        ],
    );
    wait_pg(&guard.host, &n);
    n
}

pub(super) fn wait_pg(host: &str, n: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        // pg_isready over the socket, then a real query (the entrypoint restarts the server once).
        let out = docker(
            host,
            &[
                "exec",
                "-e",
                "PGPASSWORD=pw",
                "-u",
                "postgres",
                n,
                "psql",
                "-h",
                "127.0.0.1",
                "-tAc",
                "select 1",
            ],
        );
        if out.status.success() {
            return;
        }
        assert!(Instant::now() < deadline, "{n} never accepted connections");
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub(super) fn psql(host: &str, n: &str, sql: &str) -> String {
    docker_ok(host, &["exec", "-u", "postgres", n, "psql", "-tAc", sql])
        .trim()
        .to_owned()
}

pub(super) fn seed(host: &str, n: &str) {
    psql(
        host,
        n,
        "create table t as select g as id, md5(g::text) as v from generate_series(1, 20000) g",
    );
}

pub(super) const FINGERPRINT: &str =
    "select count(*) || ' ' || md5(string_agg(v, ',' order by id)) from t";

/// Run a runbook written into the test dir, with a state dir and a JSON report.
pub(super) fn run_book(t: &Test, extra_env: &[(&str, &str)]) -> (Ran, Value) {
    support::run_book(t, &[], extra_env)
}

fn step<'a>(report: &'a Value, id: &str) -> &'a Value {
    support::report_step(report, id)
}

pub(super) fn outputs<'a>(report: &'a Value, id: &str) -> &'a Value {
    &step(report, id)["outputs"]
}

pub(super) fn sh(cmd: &str) -> (bool, String) {
    let out = Command::new("sh").args(["-c", cmd]).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn pg_dump_streams_to_zstd_file_and_restores_into_a_fresh_container() {
    let mut g = Guard::new(&engine1());
    let src = start_pg(&mut g, "src");
    let dst = start_pg(&mut g, "dst");
    let yaml = format!(
        r#"version: 1
name: dump-restore
steps:
  - {{ id: ready, type: container.exec, container: {src}, command: [pg_isready, -U, postgres] }}
  - id: seed
    type: container.exec
    container: {src}
    user: postgres
    command: [psql, -v, ON_ERROR_STOP=1, -c, "create table t as select g as id, md5(g::text) as v from generate_series(1, 20000) g"]
  - id: dump
    type: container.exec
    container: {src}
    user: postgres
    command: [pg_dump, -Fc, postgres]
    stdout: {{ file: out/db.dump.zst, compress: zstd, checksum: sha256 }}
  - id: restore
    type: container.exec
    container: {dst}
    user: postgres
    command: [pg_restore, --exit-on-error, -d, postgres]
    stdin: {{ file: out/db.dump.zst, decompress: true }}
"#
    );
    let t = Test::new().file("rb.yaml", yaml);
    let (ran, report) = run_book(&t, &[]);
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    assert!(
        outputs(&report, "ready")["stdout"]
            .as_str()
            .unwrap()
            .contains("accepting connections")
    );
    let file = t.path("out/db.dump.zst");
    let (ok, msg) = sh(&format!("zstd -t {}", file.display()));
    assert!(ok, "zstd -t: {msg}");
    let (_, sum) = sh(&format!("sha256sum {}", file.display()));
    let out = outputs(&report, "dump");
    assert_eq!(out["sha256"].as_str().unwrap(), &sum[..64]);
    assert_eq!(out["file"].as_str().unwrap(), file.display().to_string());
    assert_eq!(
        out["bytes"].as_u64().unwrap(),
        std::fs::metadata(&file).unwrap().len()
    );
    let want = psql(&g.host, &src, FINGERPRINT);
    assert!(want.starts_with("20000 "), "{want}");
    assert_eq!(psql(&g.host, &dst, FINGERPRINT), want);
}

#[test]
fn failing_exec_shows_stderr_tail_and_leaves_no_file_and_user_env_workdir_apply() {
    let mut g = Guard::new(&engine1());
    let pg = start_pg(&mut g, "fail");
    let yaml = format!(
        r#"version: 1
name: exec-fail
steps:
  - id: who
    type: container.exec
    container: {pg}
    user: postgres
    workdir: /backup
    env: {{ RB_PROBE: "x y;z" }}
    shell: 'echo "$(id -un)|$RB_PROBE|$(pwd)"'
  - id: bad
    type: container.exec
    container: {pg}
    user: postgres
    command: [psql, -v, ON_ERROR_STOP=1, -c, "select * from no_such_table"]
    stdout: {{ file: out/bad.txt, checksum: sha256 }}
"#
    );
    let t = Test::new().file("rb.yaml", yaml);
    let (ran, report) = run_book(&t, &[]);
    assert_eq!(ran.code, 1, "{}\n{}", ran.stdout, ran.stderr);
    assert_eq!(
        outputs(&report, "who")["stdout"].as_str().unwrap(),
        "postgres|x y;z|/backup\n"
    );
    let all = format!("{}{}", ran.stdout, ran.stderr);
    assert!(all.contains("`psql` exited with code"), "{all}");
    assert!(
        all.contains("relation \"no_such_table\" does not exist"),
        "{all}"
    );
    assert!(!t.path("out/bad.txt").exists());
    let leftovers: Vec<_> = std::fs::read_dir(t.path("out"))
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn step_timeout_kills_the_process_in_the_container() {
    let mut g = Guard::new(&engine1());
    let c = g.container(&name("sleep"));
    docker_ok(
        &g.host,
        &["run", "-d", "--name", &c, &tools_image(), "sleep", "3600"],
    );
    let yaml = format!(
        r#"version: 1
name: exec-timeout
steps:
  - {{ id: nap, type: container.exec, container: {c}, command: [sleep, "300"], timeout: 2s }}
"#
    );
    let t = Test::new().file("rb.yaml", yaml);
    let started = Instant::now();
    let (ran, _) = run_book(&t, &[]);
    assert_eq!(ran.code, 1, "{}\n{}", ran.stdout, ran.stderr);
    assert!(started.elapsed() < Duration::from_mins(1));
    assert!(
        format!("{}{}", ran.stdout, ran.stderr).contains("timed out after 2s"),
        "{}",
        ran.stderr
    );
    // The container's own `sleep 3600` stays; the step's `sleep 300` is gone.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let top = docker_ok(&g.host, &["top", &c]);
        assert!(top.contains("sleep 3600"), "{top}");
        if !top.contains("sleep 300\n") && !top.lines().any(|l| l.trim_end().ends_with("sleep 300"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "sleep 300 still running:\n{top}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn write_tree(root: &Path) {
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    let mut bytes = Vec::with_capacity(300_000);
    let mut x: u32 = 12345;
    for _ in 0..300_000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        bytes.push(x.to_be_bytes()[1]);
    }
    std::fs::write(root.join("random.bin"), &bytes).unwrap();
    std::fs::write(root.join("sub/hello.txt"), "hello\n").unwrap();
    std::fs::write(root.join("sub/deeper/empty"), "").unwrap();
    std::os::unix::fs::symlink("random.bin", root.join("link")).unwrap();
}

/// Every entry under `root`: relative path → content (files), target (links) or `dir`.
fn tree(root: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&p).unwrap();
                out.insert(rel, format!("-> {}", target.display()).into_bytes());
            } else if meta.is_dir() {
                out.insert(rel, b"dir".to_vec());
                stack.push(p);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn copy_directories_and_files_both_ways() {
    let mut g = Guard::new(&engine1());
    let c = g.container(&name("copy"));
    docker_ok(
        &g.host,
        &["run", "-d", "--name", &c, &tools_image(), "sleep", "3600"],
    );
    let yaml = format!(
        r#"version: 1
name: copy
steps:
  - {{ id: dir_in, type: container.copy, from: local/tree, to: "{c}:/tmp/tree" }}
  - {{ id: dir_out, type: container.copy, from: "{c}:/tmp/tree", to: back/tree }}
  - {{ id: file_in, type: container.copy, from: local/tree/random.bin, to: "{c}:/tmp/one.bin" }}
  - {{ id: file_out, type: container.copy, from: "{c}:/tmp/one.bin", to: back/one.bin }}
"#
    );
    let t = Test::new().file("rb.yaml", yaml);
    write_tree(&t.path("local/tree"));
    let (ran, report) = run_book(&t, &[]);
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    let original = tree(&t.path("local/tree"));
    assert_eq!(original.len(), 6);
    assert_eq!(tree(&t.path("back/tree")), original);
    // The container holds the same bytes (checked with its own tools).
    let (_, local_sum) = sh(&format!(
        "sha256sum {}",
        t.path("local/tree/random.bin").display()
    ));
    let inside = docker_ok(&g.host, &["exec", &c, "sha256sum", "/tmp/tree/random.bin"]);
    assert_eq!(&inside[..64], &local_sum[..64]);
    assert_eq!(
        std::fs::read(t.path("back/one.bin")).unwrap(),
        std::fs::read(t.path("local/tree/random.bin")).unwrap()
    );
    // Outputs: path, bytes (file content), sha256 (of the single file).
    for id in ["file_in", "file_out"] {
        let o = outputs(&report, id);
        assert_eq!(o["bytes"], 300_000, "{id}: {o}");
        assert_eq!(o["sha256"].as_str().unwrap(), &local_sum[..64], "{id}");
    }
    assert_eq!(
        outputs(&report, "file_out")["path"].as_str().unwrap(),
        t.path("back/one.bin").display().to_string()
    );
    assert_eq!(outputs(&report, "file_in")["path"], "/tmp/one.bin");
    for id in ["dir_in", "dir_out"] {
        let o = outputs(&report, id);
        assert_eq!(o["bytes"], 300_006, "{id}: {o}");
        assert_eq!(o["sha256"].as_str().unwrap().len(), 64, "{id}");
    }
}

#[test]
fn lifecycle_is_idempotent_and_health_fails_fast_on_exit() {
    let mut g = Guard::new(&engine1());
    let c = g.container(&name("life"));
    let dies = g.container(&name("dies"));
    let net = g.network(&name("net"));
    let tools = tools_image();
    let yaml = format!(
        r#"version: 1
name: lifecycle
steps:
  - {{ id: run, type: container.run, name: {c}, image: "{tools}", command: [sleep, "3600"] }}
  - {{ id: replaced, type: container.run, name: {c}, image: "{tools}", command: [sleep, "3600"], replace: true }}
  - {{ id: stop1, type: container.stop, containers: [{c}], timeout: 30s }}
  - {{ id: stop2, type: container.stop, containers: [{c}] }}
  - {{ id: start1, type: container.start, containers: [{c}], timeout: 30s }}
  - {{ id: start2, type: container.start, containers: [{c}] }}
  - {{ id: net1, type: network.create, name: {net} }}
  - {{ id: net2, type: network.create, name: {net} }}
  - {{ id: probe, type: health, container: {{ name: {c}, command: ["true"] }}, interval: 100ms, timeout: 30s }}
  - {{ id: doomed, type: container.run, name: {dies}, image: "{tools}", command: [sh, -c, "sleep 3; echo last-words-1; echo last-words-2 >&2; exit 7"] }}
  - {{ id: deadprobe, type: health, container: {{ name: {dies}, command: ["false"] }}, interval: 200ms, timeout: 120s, continue_on_error: true }}
  - {{ id: rm1, type: container.remove, containers: [{c}] }}
  - {{ id: rm2, type: container.remove, containers: [{c}] }}
"#
    );
    let t = Test::new().file("rb.yaml", yaml);
    let (ran, report) = run_book(&t, &[]);
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    let first = outputs(&report, "run")["id"].as_str().unwrap().to_owned();
    let second = outputs(&report, "replaced")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(first.len(), 64);
    assert_ne!(first, second, "replace makes a new container");
    for (id, changed) in [
        ("stop1", true),
        ("stop2", false),
        ("start1", true),
        ("start2", false),
        ("net1", true),
        ("net2", false),
        ("rm1", true),
        ("rm2", false),
    ] {
        assert_eq!(outputs(&report, id)["changed"], changed, "{id}");
    }
    assert_eq!(
        outputs(&report, "net1")["id"],
        outputs(&report, "net2")["id"]
    );
    let dead = step(&report, "deadprobe");
    assert_eq!(dead["status"], "failed");
    let err = dead["error"].as_str().unwrap();
    assert!(err.contains("exited with code 7"), "{err}");
    assert!(
        err.contains("last-words-1") && err.contains("last-words-2"),
        "{err}"
    );
    assert!(dead["duration_seconds"].as_f64().unwrap() < 30.0, "{dead}");
    assert!(
        !docker(&g.host, &["inspect", &c]).status.success(),
        "removed"
    );
    docker_ok(&g.host, &["network", "inspect", &net]);

    // Without `replace`, an existing name fails the step and names the way out.
    let yaml = format!(
        r#"version: 1
name: lifecycle2
steps:
  - {{ id: again, type: container.run, name: {dies}, image: "{tools}" }}
"#
    );
    let t = Test::new().file("rb.yaml", yaml);
    let (ran, _) = run_book(&t, &[]);
    assert_eq!(ran.code, 1);
    let all = ran.stdout + &ran.stderr;
    assert!(
        all.contains("already in use") && all.contains("replace: true"),
        "{all}"
    );
}

fn one_step_run(step_yaml: &str, env: &[(&str, &str)]) -> String {
    let yaml = format!("version: 1\nname: errs\nsteps:\n  - {step_yaml}\n");
    let t = Test::new().file("rb.yaml", yaml);
    let (ran, _) = run_book(&t, env);
    assert_eq!(ran.code, 1, "{}\n{}", ran.stdout, ran.stderr);
    ran.stdout + &ran.stderr
}

#[test]
fn clear_errors_through_rb() {
    let out = one_step_run(
        "{ id: a, type: container.exec, container: x, command: [\"true\"] }",
        &[("DOCKER_HOST", "unix:///nonexistent.sock")],
    );
    assert!(
        out.contains("docker engine `unix:///nonexistent.sock` is unreachable"),
        "{out}"
    );
    let missing = name("missing");
    let out = one_step_run(
        &format!("{{ id: a, type: container.exec, container: {missing}, command: [\"true\"] }}"),
        &[],
    );
    assert!(
        out.contains(&format!("container `{missing}` not found on engine")),
        "{out}"
    );
    let mut g = Guard::new(&engine1());
    let c = g.container(&name("img"));
    let out = one_step_run(
        &format!(
            "{{ id: a, type: container.run, name: {c}, image: \"rb-test/does-not-exist:0\", pull: never }}"
        ),
        &[],
    );
    assert!(
        out.contains("image `rb-test/does-not-exist:0` not found") && out.contains("`pull: never`"),
        "{out}"
    );
    let out = one_step_run(
        &format!(
            "{{ id: a, type: container.run, name: {c}, image: \"{}\", command: [sh, -c, \"exit 0\"] }}\n  - {{ id: b, type: container.exec, container: {c}, shell: \"echo to-stderr-1 >&2; echo to-stderr-2 >&2; exit 5\" }}",
            tools_image()
        ),
        &[],
    );
    // The container exited at once: exec into it is refused with a clear message, or runs.
    assert!(
        out.contains("exited with code 5") || out.contains("not running"),
        "{out}"
    );
    let c2 = g.container(&name("up"));
    docker_ok(
        &g.host,
        &["run", "-d", "--name", &c2, &tools_image(), "sleep", "3600"],
    );
    let out = one_step_run(
        &format!(
            "{{ id: b, type: container.exec, container: {c2}, shell: \"echo to-stderr-1 >&2; echo to-stderr-2 >&2; exit 5\" }}"
        ),
        &[],
    );
    assert!(out.contains("`sh` exited with code 5"), "{out}");
    assert!(out.contains("to-stderr-1\nto-stderr-2"), "{out}");
}

#[test]
fn permission_denied_on_the_socket_is_explained() {
    let Some(sock) = engine1().strip_prefix("unix://").map(str::to_owned) else {
        return;
    };
    // As `nobody`, who is not in the socket's group.
    let t = Test::new().file(
        "rb.yaml",
        "version: 1\nname: perm\nsteps:\n  - { id: a, type: container.exec, container: x, command: [\"true\"] }\n",
    );
    std::fs::create_dir(t.path("state")).unwrap();
    for (p, mode) in [(t.dir.path().to_owned(), 0o755), (t.path("state"), 0o777)] {
        std::os::unix::fs::PermissionsExt::set_mode(
            &mut std::fs::metadata(&p).unwrap().permissions(),
            mode,
        );
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    }
    let ran = Test::new()
        .cwd(t.dir.path())
        .via(
            "setpriv",
            &["--reuid=65534", "--regid=65534", "--clear-groups"],
        )
        .args(["run", "rb.yaml", "--state-dir", "state"])
        .env_remove("RB_STATE_DIR")
        .env_remove("RB_LOCK_DIR")
        .env("DOCKER_HOST", &engine1())
        .expect(1);
    let all = ran.stdout + &ran.stderr;
    assert!(
        all.contains(&format!(
            "permission denied on docker engine `unix://{sock}`"
        )),
        "{all}"
    );
    assert!(all.contains("docker` group"), "{all}");
}

#[test]
fn dump_on_one_engine_restores_on_another_over_tls() {
    let mut g1 = Guard::new(&engine1());
    let mut g2 = Guard::new(&engine2_tcp());
    let src = start_pg(&mut g1, "primary");
    let dst = start_pg(&mut g2, "standby");
    seed(&g1.host, &src);
    let tls = tls_dir();
    let e1 = engine1();
    let e2 = engine2_tcp();
    let yaml = format!(
        r#"version: 1
name: two-engines
hosts:
  primary: {{ docker: "{e1}" }}
  standby: {{ docker: "{e2}", tls: {{ ca: {tls}/ca.pem, cert: {tls}/cert.pem, key: {tls}/key.pem }} }}
steps:
  - id: dump
    type: container.exec
    host: primary
    container: {src}
    user: postgres
    command: [pg_dump, -Fc, postgres]
    stdout: {{ file: xfer/db.dump.zst, compress: zstd, checksum: sha256 }}
  - id: restore
    type: container.exec
    host: standby
    container: {dst}
    user: postgres
    command: [pg_restore, --exit-on-error, -d, postgres]
    stdin: {{ file: xfer/db.dump.zst, decompress: true }}
  - id: count
    type: container.exec
    host: standby
    container: {dst}
    user: postgres
    command: [psql, -tAc, "{FINGERPRINT}"]
"#
    );
    let t = Test::new().file("rb.yaml", yaml);
    let (ran, report) = run_book(&t, &[]);
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    let want = psql(&g1.host, &src, FINGERPRINT);
    assert!(want.starts_with("20000 "));
    assert_eq!(
        outputs(&report, "count")["stdout"].as_str().unwrap().trim(),
        want
    );
    // The standby container really is on engine 2, not engine 1.
    assert!(!docker(&g1.host, &["inspect", &dst]).status.success());
    assert_eq!(psql(&g2.host, &dst, FINGERPRINT), want);
}

/// `rb ARGS` run in another test's directory.
fn in_dir<const N: usize>(t: &Test, args: [&str; N]) -> Test {
    Test::new().cwd(t.dir.path()).args(args)
}

#[test]
#[expect(clippy::too_many_lines, reason = "one scenario per engine state")]
fn plan_check_probes_engines_containers_images_and_disk() {
    let mut g = Guard::new(&engine1());
    let c = g.container(&name("chk"));
    docker_ok(
        &g.host,
        &["run", "-d", "--name", &c, &tools_image(), "sleep", "3600"],
    );
    let missing = name("absent");
    let created = name("created");
    let tools = tools_image();
    let good = format!(
        r#"version: 1
name: check-good
steps:
  - {{ id: dump, type: container.exec, container: {c}, command: ["true"], stdout: {{ file: out/x.dump }} }}
  - {{ id: run, type: container.run, name: {created}, image: "{tools}" }}
  - {{ id: use, type: container.exec, container: {created}, command: ["true"] }}
  - {{ id: byid, type: container.exec, container: "{{{{ steps.run.outputs.id }}}}", command: ["true"] }}
"#
    );
    let t = Test::new().file("rb.yaml", &good);
    let ran = in_dir(&t, ["plan", "rb.yaml", "--check"]).expect(0);
    ran.stdout_has("Checks:");
    assert!(
        ran.stdout.contains("engine    default: ") && ran.stdout.contains("reachable, Docker "),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout
            .contains(&format!("ok   container {c} on default: running")),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout
            .contains(&format!("ok   image     {tools} on default: present")),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout
            .contains(&format!("ok   disk      {}: ", t.path("out").display())),
        "{}",
        ran.stdout
    );
    let checks = ran.stdout.split("Checks:").nth(1).unwrap();
    assert!(
        !checks.contains(&created),
        "created by run: not probed\n{checks}"
    );
    ran.stdout_lacks("FAIL");
    // Without --check: no probes.
    let plain = in_dir(&t, ["plan", "rb.yaml"]).expect(0);
    assert!(!plain.stdout.contains("Checks:"));
    // JSON carries the probes.
    let json = in_dir(&t, ["plan", "rb.yaml", "--check", "--format", "json"]).expect(0);
    let doc: Value = serde_json::from_str(&json.stdout).unwrap();
    assert!(
        doc["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["ok"] == true)
    );

    // A stopped container is shown with its state.
    docker_ok(&g.host, &["stop", "-t", "0", &c]);
    let ran = in_dir(&t, ["plan", "rb.yaml", "--check"]).expect(0);
    assert!(
        ran.stdout
            .contains(&format!("ok   container {c} on default: exited")),
        "{}",
        ran.stdout
    );

    let bad = format!(
        r#"version: 1
name: check-bad
steps:
  - {{ id: a, type: container.exec, container: {missing}, command: ["true"] }}
  - {{ id: r, type: container.run, name: {created}, image: "rb-test/not-here:0", pull: never }}
"#
    );
    let t = Test::new().file("rb.yaml", &bad);
    let ran = in_dir(&t, ["plan", "rb.yaml", "--check"]).expect(1);
    assert!(
        ran.stdout.contains(&format!(
            "FAIL container {missing} on default: container `{missing}` not found"
        )),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout
            .contains("FAIL image     rb-test/not-here:0 on default: missing (`pull: never`"),
        "{}",
        ran.stdout
    );
    // Nothing was created by the check.
    assert!(!docker(&g.host, &["inspect", &created]).status.success());

    // An unreachable engine fails its probe and names the endpoint.
    let ran = in_dir(&t, ["plan", "rb.yaml", "--check"])
        .env("DOCKER_HOST", "unix:///nonexistent.sock")
        .expect(1);
    assert!(
        ran.stdout.contains(
            "FAIL engine    default: docker engine `unix:///nonexistent.sock` is unreachable"
        ),
        "{}",
        ran.stdout
    );
}

/// The names of a container's volumes (anonymous ones are hex ids).
fn volume_names(host: &str, c: &str) -> Vec<String> {
    docker_ok(
        host,
        &["inspect", "-f", "{{range .Mounts}}{{.Name}} {{end}}", c],
    )
    .split_whitespace()
    .map(str::to_owned)
    .collect()
}

fn volume_exists(host: &str, v: &str) -> bool {
    docker(host, &["volume", "inspect", v]).status.success()
}

/// Removes volumes when dropped (after the containers' guard, declared before it).
struct Volumes(String, Vec<String>);

impl Drop for Volumes {
    fn drop(&mut self) {
        for v in &self.1 {
            let _ = docker(&self.0, &["volume", "rm", "-f", v]);
        }
    }
}

#[test]
fn remove_takes_anonymous_volumes_and_named_ones_only_when_asked() {
    let mut vols = Volumes(engine1(), Vec::new());
    let mut g = Guard::new(&engine1());
    let (keep, drop) = (g.container(&name("keepvol")), g.container(&name("dropvol")));
    let (named, named2) = (name("named"), name("named2"));
    for (c, v) in [(&keep, &named), (&drop, &named2)] {
        let mount = format!("{v}:/named");
        docker_ok(
            &g.host,
            &[
                "run",
                "-d",
                "--name",
                c,
                "-v",
                "/anonymous",
                "-v",
                &mount,
                &tools_image(),
                "sleep",
                "3600",
            ],
        );
        vols.1.extend(volume_names(&g.host, c));
    }
    let (kept_vols, dropped_vols) = (volume_names(&g.host, &keep), volume_names(&g.host, &drop));
    assert_eq!(kept_vols.len(), 2, "{kept_vols:?}");
    assert_eq!(dropped_vols.len(), 2, "{dropped_vols:?}");

    // A volume in use cannot go: the step fails and says which volume.
    let yaml = format!(
        r#"version: 1
name: volumes
steps:
  - {{ id: busy, type: container.remove, containers: [{keep}], named_volumes: ["{named2}"] }}
"#
    );
    let (ran, _) = run_book(&Test::new().file("rb.yaml", yaml), &[]);
    assert_eq!(ran.code, 1, "{}\n{}", ran.stdout, ran.stderr);
    assert!((ran.stdout.clone() + &ran.stderr).contains(&format!("volume `{named2}`")));
    // Without `volumes`, the anonymous volume stays; named volumes stay unless listed.
    assert!(kept_vols.iter().all(|v| volume_exists(&g.host, v)));

    let yaml = format!(
        r#"version: 1
name: volumes2
steps:
  - {{ id: rm, type: container.remove, containers: [{drop}], volumes: true, named_volumes: ["{named2}", "{named}-absent"] }}
  - {{ id: again, type: container.remove, containers: [{drop}], volumes: true, named_volumes: ["{named2}"] }}
"#
    );
    let (ran, report) = run_book(&Test::new().file("rb.yaml", yaml), &[]);
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    assert!(dropped_vols.iter().all(|v| !volume_exists(&g.host, v)));
    assert_eq!(outputs(&report, "rm")["changed"], true);
    assert_eq!(
        outputs(&report, "rm")["volumes_removed"],
        serde_json::json!([named2])
    );
    assert_eq!(outputs(&report, "again")["changed"], false);
}

/// Hostile input through the Docker steps (issue 7): shell syntax in every templated field of
/// `container.exec` reaches the process literally; a directory holding links that lead out of
/// it is refused by `container.copy`, and nothing is written on the host.
#[test]
fn hostile_values_stay_literal_in_containers_and_links_leading_out_are_not_copied() {
    const P: &str =
        "$(touch /tmp/pwned); rm -rf /tmp/keep `touch /tmp/pwned2` 'q\" && touch /tmp/pwned3";
    const N: &str = "$(touch pwned);x`id`&&y";
    let mut g = Guard::new(&engine1());
    let c = g.container(&name("hostile"));
    docker_ok(
        &g.host,
        &["run", "-d", "--name", &c, &tools_image(), "sleep", "3600"],
    );
    let workdir = format!("/tmp/{N}");
    docker_ok(&g.host, &["exec", &c, "mkdir", "-p", &workdir, "/tmp/keep"]);
    docker_ok(&g.host, &["exec", &c, "mkdir", "-p", "/tmp/escape/sub"]);
    docker_ok(
        &g.host,
        &["exec", &c, "ln", "-s", "/etc", "/tmp/escape/sub/etc"],
    );
    let yaml = format!(
        r#"version: 1
name: hostile-containers
params:
  p: {{ type: string, required: true }}
  n: {{ type: string, required: true }}
steps:
  - {{ id: argv, type: container.exec, container: {c}, command: [printf, '%s|', '{{{{ params.p }}}}', 'a{{{{ params.p }}}}b'] }}
  - {{ id: env, type: container.exec, container: {c}, command: [printenv, RB_NASTY], env: {{ RB_NASTY: '{{{{ params.p }}}}' }} }}
  - {{ id: stdin, type: container.exec, container: {c}, command: [cat], stdin: {{ text: '{{{{ params.p }}}}' }} }}
  - {{ id: workdir, type: container.exec, container: {c}, command: [pwd], workdir: '/tmp/{{{{ params.n }}}}' }}
  - {{ id: out, type: container.copy, from: "{c}:/tmp/escape", to: back/escape, continue_on_error: true }}
"#
    );
    let t = Test::new().file("rb.yaml", yaml);
    let (p_arg, n_arg) = (format!("p={P}"), format!("n={N}"));
    let (ran, report) = support::run_book(&t, &["-p", &p_arg, "-p", &n_arg], &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let stdout = |id: &str| outputs(&report, id)["stdout"].as_str().unwrap().to_owned();
    assert_eq!(stdout("argv"), format!("{P}|a{P}b|"));
    assert_eq!(stdout("env"), format!("{P}\n"));
    assert_eq!(stdout("stdin"), P);
    assert_eq!(stdout("workdir"), format!("{workdir}\n"));
    let listing = docker_ok(&g.host, &["exec", &c, "ls", "-a", "/tmp", &workdir]);
    for f in ["pwned", "pwned2", "pwned3"] {
        assert!(
            !listing.lines().any(|l| l == f),
            "{f} made by a shell:\n{listing}"
        );
    }
    assert!(listing.lines().any(|l| l == "keep"), "{listing}");
    // The copy out: refused, naming the entry, nothing under the destination.
    assert_eq!(step(&report, "out")["status"], "failed");
    let error = step(&report, "out")["error"].as_str().unwrap();
    assert!(error.contains("sub/etc"), "{error}");
    let back: Vec<_> = std::fs::read_dir(t.path("back"))
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(back.is_empty(), "{back:?}");
}

/// `sleep` as PID 1 ignores SIGTERM: only the kill after the grace period stops it. The grace
/// is the step's own (default 10 s, or half a shorter `timeout`), not the step `timeout`, so
/// the step ends before its timeout; a `grace` that does not fit is refused by `rb validate`.
#[test]
fn stop_kills_after_its_grace_period_inside_the_step_timeout() {
    let mut g = Guard::new(&engine1());
    let a = g.container(&name("deaf-a"));
    let b = g.container(&name("deaf-b"));
    let tools = tools_image();
    for c in [&a, &b] {
        docker_ok(
            &g.host,
            &["run", "-d", "--name", c, &tools, "sleep", "3600"],
        );
    }
    let yaml = format!(
        r"version: 1
name: stopping
steps:
  - {{ id: default_grace, type: container.stop, containers: [{a}], timeout: 5s }}
  - {{ id: short_grace, type: container.stop, containers: [{b}], grace: 1s, timeout: 5s }}
"
    );
    let t = Test::new().file("rb.yaml", yaml);
    let (ran, report) = run_book(&t, &[]);
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    for c in [&a, &b] {
        let running = docker_ok(&g.host, &["inspect", "-f", "{{.State.Running}}", c]);
        assert_eq!(running.trim(), "false", "{c} stopped");
    }
    let took = |id: &str| step(&report, id)["duration_seconds"].as_f64().unwrap();
    assert!(took("default_grace") < 5.0, "{report:#}");
    assert!(took("short_grace") < 3.0, "{report:#}");
    assert_eq!(outputs(&report, "short_grace")["changed"], true);

    let bad = Test::new().file(
        "rb.yaml",
        "version: 1\nname: s\nsteps:\n  - { id: s, type: container.stop, containers: [x], grace: 10s, timeout: 5s }\n",
    );
    let ran = Test::new()
        .cwd(bad.dir.path())
        .args(["validate", "rb.yaml"])
        .run();
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("`grace: 10s` does not fit inside the step `timeout: 5s`"),
        "{}",
        ran.stderr
    );
}

/// During a rebuild the container a health check names may not exist yet: it is polled until
/// it exists and passes, not failed at once.
#[test]
fn container_health_waits_for_a_container_that_does_not_exist_yet() {
    let mut g = Guard::new(&engine1());
    let c = g.container(&name("late"));
    let tools = tools_image();
    let yaml = format!(
        r#"version: 1
name: late
steps:
  - {{ id: wait, type: sleep, duration: 2s, needs: [] }}
  - {{ id: create, type: container.run, name: {c}, image: "{tools}", command: [sleep, "3600"], needs: [wait] }}
  - {{ id: probe, type: health, container: {{ name: {c}, command: ["true"] }}, interval: 200ms, timeout: 60s, needs: [] }}
"#
    );
    let t = Test::new().file("rb.yaml", yaml);
    let (ran, report) = run_book(&t, &[]);
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    assert!(
        outputs(&report, "probe")["attempts"].as_u64().unwrap() > 1,
        "{report:#}"
    );
}
