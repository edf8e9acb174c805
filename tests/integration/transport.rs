//! `container.exec` over a FIFO (issue 18) on the real engine with real `PostgreSQL`: every
//! route gives the same bytes as the Engine API stream, and every failure behaves as on it.

use super::containers::{
    FINGERPRINT, Guard, docker, docker_ok, engine1, name, outputs, pg_image, psql, run_book, seed,
    sh, start_pg, tools_image,
};
use crate::support::{Test, poll};
use std::time::{Duration, Instant};

/// A dump of `src` into a zstd file and its restore into `dst` (table `t` dropped first), with
/// `transport` on both steps; over TCP, so that a sidecar reaches the server too.
fn dump_restore_book(src: &str, dst: &str, transport: &str) -> String {
    format!(
        r#"version: 1
name: transport
steps:
  - id: dump
    type: container.exec
    container: {src}
    user: postgres
    env: {{ PGPASSWORD: pw }}
    command: [pg_dump, -h, 127.0.0.1, -Fc, --compress=0, postgres]
    stdout: {{ file: out/db.dump.zst, compress: zstd, checksum: sha256 }}
    transport: {transport}
  - id: restore
    type: container.exec
    needs: [dump]
    container: {dst}
    user: postgres
    env: {{ PGPASSWORD: pw }}
    shell: 'psql -h 127.0.0.1 -qc "drop table if exists t" && exec pg_restore -h 127.0.0.1 --exit-on-error -d postgres'
    stdin: {{ file: out/db.dump.zst, decompress: true }}
    transport: {transport}
"#
    )
}

/// The sidecars of the engine whose step is `step` (tests run at once: each uses its own ids).
fn sidecars(step: &str) -> String {
    docker_ok(
        &engine1(),
        &[
            "ps",
            "-a",
            "--filter",
            "label=rb.fifo.owner",
            "--format",
            "{{.ID}} {{.Label \"rb.fifo.owner\"}}",
        ],
    )
    .lines()
    .filter(|l| l.ends_with(&format!("/{step}")))
    .collect::<Vec<_>>()
    .join("\n")
}

#[test]
fn every_route_carries_the_same_data_as_the_engine_stream() {
    let mut g = Guard::new(&engine1());
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut with_bind = |tag: &str, dir: &tempfile::TempDir| {
        let c = g.container(&name(tag));
        let bind = format!("{}:/backup", dir.path().display());
        docker_ok(
            &engine1(),
            &[
                "run",
                "-d",
                "--name",
                &c,
                "-v",
                &bind,
                "-e",
                "POSTGRES_PASSWORD=pw",
                &pg_image(),
            ],
        );
        super::containers::wait_pg(&engine1(), &c);
        c
    };
    let src = with_bind("fsrc", &a);
    let dst = with_bind("fdst", &b);
    seed(&g.host, &src);
    let want = psql(&g.host, &src, FINGERPRINT);
    for (transport, routes, via) in [
        ("engine", "", None),
        ("auto", "target", Some("target")),
        ("fifo", "mount", Some("mount")),
        ("fifo", "sidecar", Some("sidecar")),
    ] {
        let t = Test::new().file("rb.yaml", dump_restore_book(&src, &dst, transport));
        let env: &[(&str, &str)] = if routes.is_empty() {
            &[]
        } else {
            &[("RB_FIFO_ROUTES", routes)]
        };
        let (ran, report) = run_book(&t, env);
        assert_eq!(
            ran.code, 0,
            "{transport}/{routes}: {}\n{}",
            ran.stdout, ran.stderr
        );
        for step in ["dump", "restore"] {
            let out = outputs(&report, step);
            let expected = if via.is_some() { "fifo" } else { "engine" };
            assert_eq!(out["transport"], expected, "{step} {transport}/{routes}");
            assert_eq!(out["fifo"].as_str(), via, "{step} {transport}/{routes}");
        }
        let file = t.path("out/db.dump.zst");
        let (ok, msg) = sh(&format!("zstd -t {}", file.display()));
        assert!(ok, "zstd -t: {msg}");
        let (_, sum) = sh(&format!("sha256sum {}", file.display()));
        assert_eq!(
            outputs(&report, "dump")["sha256"].as_str().unwrap(),
            &sum[..64]
        );
        assert_eq!(
            psql(&g.host, &dst, FINGERPRINT),
            want,
            "{transport}/{routes}"
        );
        // Nothing left behind: no FIFO directory in the container or the bind mount, no
        // sidecar.
        let tmp = docker_ok(&g.host, &["exec", &src, "ls", "-A", "/tmp", "/backup"]);
        assert!(!tmp.contains("rb-fifo"), "{tmp}");
        assert_eq!(sidecars("dump"), "");
        assert_eq!(sidecars("restore"), "");
    }
}

/// One step in `c` with `transport`, run to its end; (exit code, stdout + stderr, report).
fn one_step(t: &Test, c: &str, transport: &str, body: &str) -> (i32, String, serde_json::Value) {
    let yaml = format!(
        "version: 1\nname: f\nsteps:\n  - id: s\n    type: container.exec\n    container: {c}\n    \
         transport: {transport}\n{body}"
    );
    std::fs::write(t.path("rb.yaml"), yaml).unwrap();
    let _ = std::fs::remove_file(t.path("report.json"));
    let (ran, report) = run_book(t, &[]);
    (ran.code, format!("{}{}", ran.stdout, ran.stderr), report)
}

#[test]
fn failures_on_the_fifo_behave_as_on_the_engine_stream() {
    let mut g = Guard::new(&engine1());
    let pg = start_pg(&mut g, "ffail");
    seed(&g.host, &pg);
    for transport in ["engine", "fifo"] {
        let t = Test::new();
        // A non-zero exit: the stderr tail in the error, no file under its name or beside it.
        let (code, all, _) = one_step(
            &t,
            &pg,
            transport,
            "    user: postgres\n    command: [psql, -v, ON_ERROR_STOP=1, -c, \"select * from no_such_table\"]\n    \
             stdout: { file: out/bad.txt, checksum: sha256 }\n",
        );
        assert_eq!(code, 1, "{transport}: {all}");
        assert!(
            all.contains("`psql` exited with code 1"),
            "{transport}: {all}"
        );
        assert!(
            all.contains("\"no_such_table\" does not exist"),
            "{transport}: {all}"
        );
        let left: Vec<_> = std::fs::read_dir(t.path("out"))
            .map(|d| d.map(|e| e.unwrap().file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{transport}: {left:?}");

        // A timeout: the step fails in time and its process is gone from the container.
        let started = Instant::now();
        let (code, all, _) = one_step(
            &t,
            &pg,
            transport,
            "    shell: 'head -c 100000 /dev/zero; exec sleep 301'\n    \
             stdout: { file: out/slow.bin }\n    timeout: 2s\n",
        );
        assert_eq!(code, 1, "{transport}: {all}");
        assert!(all.contains("timed out after 2s"), "{transport}: {all}");
        assert!(started.elapsed() < Duration::from_secs(40), "{transport}");
        assert!(!t.path("out/slow.bin").exists());
        poll(
            "the timed-out process to go",
            Duration::from_secs(20),
            || {
                let top = docker_ok(&g.host, &["top", &pg]);
                (!top.contains("sleep 301")).then_some(())
            },
        );

        // The process stops reading its input early: the step ends, nothing hangs.
        std::fs::write(t.path("big.bin"), vec![7u8; 20 << 20]).unwrap();
        let started = Instant::now();
        let (code, all, report) = one_step(
            &t,
            &pg,
            transport,
            "    command: [head, -c, \"5\"]\n    stdin: { file: big.bin }\n    timeout: 1m\n",
        );
        assert_eq!(code, 0, "{transport}: {all}");
        assert_eq!(outputs(&report, "s")["stdout"], "\u{7}".repeat(5));
        assert!(started.elapsed() < Duration::from_secs(30), "{transport}");
        let tmp = docker_ok(&g.host, &["exec", &pg, "ls", "-A", "/tmp"]);
        assert!(!tmp.contains("rb-fifo"), "{tmp}");
    }
}

/// Unmounts the tmpfs of a test when dropped.
struct Umount(std::path::PathBuf);

impl Drop for Umount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_fails_the_step_names_the_cause_and_stops_the_writer() {
    let mut g = Guard::new(&engine1());
    let pg = start_pg(&mut g, "ffull");
    seed(&g.host, &pg);
    psql(
        &g.host,
        &pg,
        "create table big as select g, md5(g::text) a, md5((g+1)::text) b from generate_series(1, 100000) g",
    );
    let t = Test::new();
    let small = t.path("small");
    std::fs::create_dir_all(&small).unwrap();
    let (ok, msg) = sh(&format!(
        "mount -t tmpfs -o size=1m rbtest {}",
        small.display()
    ));
    assert!(ok, "mount tmpfs: {msg}");
    let _umount = Umount(small.clone());
    for transport in ["engine", "fifo"] {
        let (code, all, report) = one_step(
            &t,
            &pg,
            transport,
            "    user: postgres\n    command: [pg_dump, -Fc, --compress=0, postgres]\n    \
             stdout: { file: small/db.dump, checksum: sha256 }\n    timeout: 2m\n",
        );
        assert_eq!(code, 1, "{transport}: {all}");
        assert!(
            all.contains("No space left on device"),
            "{transport}: {all}"
        );
        assert!(report.is_object(), "{transport}: a report");
        let left: Vec<_> = std::fs::read_dir(&small)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{transport}: {left:?}");
        poll("pg_dump to go", Duration::from_secs(20), || {
            let top = docker_ok(&g.host, &["top", &pg]);
            (!top.contains("pg_dump")).then_some(())
        });
    }
}

#[test]
fn rb_killed_mid_stream_publishes_nothing_and_leaves_no_sidecar_after_resume() {
    let mut g = Guard::new(&engine1());
    let c = g.container(&name("fkill"));
    docker_ok(
        &g.host,
        &[
            "run",
            "-d",
            "--name",
            &c,
            "-v",
            "/data",
            &tools_image(),
            "sleep",
            "3600",
        ],
    );
    // The first attempt streams a little, then waits; the resumed one (marker in the shared
    // volume) finishes.
    let yaml = format!(
        r"version: 1
name: fkill
steps:
  - id: stream
    type: container.exec
    container: {c}
    transport: fifo
    shell: 'if [ -e /data/again ]; then echo done; else touch /data/again; head -c 3000000 /dev/zero; exec sleep 302; fi'
    stdout: {{ file: out/stream.bin, checksum: sha256 }}
"
    );
    let t = Test::new().file("rb.yaml", yaml);
    let locks = t.path("locks").display().to_string();
    let mut rb = Test::new()
        .cwd(t.dir.path())
        .args(["run", "--state-dir", "state", "rb.yaml"])
        .env("RB_FIFO_ROUTES", "sidecar")
        .env("RB_LOCK_DIR", &locks)
        .spawn();
    poll("the sidecar to stream", Duration::from_mins(1), || {
        let top = docker(&g.host, &["ps", "-q", "--filter", "label=rb.fifo.owner"]);
        let ids = String::from_utf8_lossy(&top.stdout).trim().to_owned();
        if ids.is_empty() {
            return None;
        }
        let top = docker(&g.host, &["top", &ids]);
        String::from_utf8_lossy(&top.stdout)
            .contains("sleep 302")
            .then_some(())
    });
    rb.child().kill().unwrap();
    let _ = rb.wait(Duration::from_secs(10));
    assert!(!t.path("out/stream.bin").exists());
    // The lifeline ends the sidecar as soon as rb is gone, before any resume.
    poll(
        "the orphaned sidecar to go",
        Duration::from_secs(30),
        || sidecars("stream").is_empty().then_some(()),
    );
    let ran = crate::support::Test::new()
        .cwd(t.dir.path())
        .args(["run", "--state-dir", "state", "rb.yaml", "--resume"])
        .env("RB_FIFO_ROUTES", "sidecar")
        .env("RB_LOCK_DIR", &t.path("locks").display().to_string())
        .run();
    assert_eq!(ran.code, 0, "{}\n{}", ran.stdout, ran.stderr);
    assert_eq!(
        std::fs::read_to_string(t.path("out/stream.bin")).unwrap(),
        "done\n"
    );
    assert_eq!(sidecars("stream"), "");
}
