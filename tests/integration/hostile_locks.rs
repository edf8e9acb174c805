//! Locks (issue 17, items 16 and 17; issue 11, item 5): flock-held, so a lock is free exactly
//! when no process holds it (pid reuse, PID namespaces and half-written files change
//! nothing), and target locks are machine-wide: shared across state dirs and users.

use crate::support::{Spawned, Test, poll};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A runbook `NAME` locking `LOCK` whose one step waits for the file `go` in its directory.
fn holding(name: &str, lock: &str) -> String {
    format!(
        r#"
version: 1
name: {name}
locks: ["{lock}"]
steps:
  - id: hold
    type: exec
    command: [sh, -c, 'touch started-{name}; while ! test -e go; do sleep 0.05; done']
"#
    )
}

/// `rb run FILE --state-dir STATE` in `dir`, as `uid` when given; `lock_dir` `None` leaves
/// the default lock directory.
fn command(
    dir: &Path,
    file: &str,
    state: &str,
    lock_dir: Option<&Path>,
    uid: Option<u32>,
) -> Command {
    let mut rb = Test::new()
        .cwd(dir)
        .args(["run", file, "--state-dir", state])
        .env_remove("RB_STATE_DIR")
        .env_remove("RB_LOCK_DIR")
        .env_remove("XDG_RUNTIME_DIR");
    if let Some(uid) = uid {
        let (user, group) = (format!("--reuid={uid}"), format!("--regid={uid}"));
        rb = rb.via("setpriv", &[&user, &group, "--clear-groups"]);
    }
    if let Some(l) = lock_dir {
        rb = rb.env_path("RB_LOCK_DIR", l);
    }
    let mut c = rb.command();
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

/// Wait for a spawned `rb` (killed if the test fails first): its exit code and stderr.
fn finish(mut rb: Spawned) -> (i32, String) {
    let ran = rb.wait(Duration::from_secs(30));
    (ran.code, ran.stderr)
}

/// Run to the end (within a deadline: a run that should have been refused may wait for `go`).
fn output(mut c: Command) -> (i32, String) {
    finish(Spawned::from(c.spawn().expect("rb runs")))
}

/// A directory every user may use (the test's own temp dir is root's alone).
fn open_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    d
}

/// A lock name no other test (or machine) uses.
fn unique_lock(dir: &Path) -> String {
    format!(
        "rb-test/{}",
        dir.file_name()
            .unwrap()
            .to_string_lossy()
            .to_ascii_lowercase()
    )
}

#[test]
fn target_locks_are_machine_wide_across_state_dirs_and_users() {
    let d = open_dir();
    let lock = unique_lock(d.path());
    let write = |name: &str| {
        let p = d.path().join(format!("{name}.yaml"));
        std::fs::write(&p, holding(name, &lock)).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    };
    write("bk");
    write("rs");
    // Root holds the lock with state dir `s1`; a run with state dir `s2` is refused, as is
    // one by another user (uid 4242) with its own state dir.
    let holder = Spawned::from(
        command(d.path(), "bk.yaml", "s1", None, None)
            .spawn()
            .unwrap(),
    );
    poll("bk to hold the lock", Duration::from_secs(20), || {
        d.path().join("started-bk").exists().then_some(())
    });
    let (code, err) = output(command(d.path(), "rs.yaml", "s2", None, None));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("lock `{lock}` is held by run"))
            && err.contains("of runbook `bk`")
            && err.contains("/run/lock/rb/"),
        "{err}"
    );
    let (code, err) = output(command(d.path(), "rs.yaml", "s3", None, Some(4242)));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("of runbook `bk`"), "{err}");
    assert!(!d.path().join("started-rs").exists());

    std::fs::write(d.path().join("go"), "").unwrap();
    let (code, err) = finish(holder);
    assert_eq!(code, 0, "{err}");
    // Released: the other user takes it, and now root is refused.
    std::fs::remove_file(d.path().join("go")).unwrap();
    let other = Spawned::from(
        command(d.path(), "rs.yaml", "s3", None, Some(4242))
            .spawn()
            .unwrap(),
    );
    poll("rs to hold the lock", Duration::from_secs(20), || {
        d.path().join("started-rs").exists().then_some(())
    });
    let (code, err) = output(command(d.path(), "bk.yaml", "s1", None, None));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("of runbook `rs`"), "{err}");
    std::fs::write(d.path().join("go"), "").unwrap();
    let (code, err) = finish(other);
    assert_eq!(code, 0, "{err}");
    let dir = std::fs::metadata(rb_lock_dir()).unwrap();
    assert_eq!(
        dir.permissions().mode() & 0o7777,
        0o1777,
        "sticky, like /tmp"
    );
    // rb never removes a lock file; the test removes its own, now that nobody holds it.
    let file = rb_lock_dir().join(format!("{}.lock", lock.replace('/', "%2F")));
    std::fs::remove_file(&file).unwrap();
}

fn rb_lock_dir() -> PathBuf {
    PathBuf::from("/run/lock/rb")
}

#[test]
fn lock_dir_flag_and_env_choose_where_target_locks_live() {
    let t = Test::new().file("bk.yaml", holding("bk", "db/x"));
    let dir = t.path("elsewhere");
    let mut c = command(t.dir.path(), "bk.yaml", "state", None, None);
    c.args(["--lock-dir", dir.to_str().unwrap()]);
    std::fs::write(t.path("go"), "").unwrap();
    let (code, err) = output(c);
    assert_eq!(code, 0, "{err}");
    assert!(dir.join("db%2Fx.lock").exists());
    let env_dir = t.path("from-env");
    let (code, err) = output(command(
        t.dir.path(),
        "bk.yaml",
        "state",
        Some(&env_dir),
        None,
    ));
    assert_eq!(code, 0, "{err}");
    assert!(env_dir.join("db%2Fx.lock").exists());
}

/// `rb run bk.yaml` with lock directory `locks`, to the end.
fn run_bk(t: &Test, locks: &Path) -> (i32, String) {
    output(command(t.dir.path(), "bk.yaml", "state", Some(locks), None))
}

#[test]
fn a_lock_file_naming_a_live_pid_but_not_locked_is_free() {
    // Pid reuse, or rb as pid 1 in a container: the pid in the file is alive, but no
    // process holds the lock.
    let t = Test::new()
        .file("bk.yaml", holding("bk", "db/x"))
        .file("go", "");
    let locks = t.path("locks");
    std::fs::create_dir_all(t.path("state/locks")).unwrap();
    std::fs::create_dir_all(&locks).unwrap();
    std::fs::write(t.path("state/locks/bk.lock"), "1\nold-run\n").unwrap();
    std::fs::write(locks.join("db%2Fx.lock"), "1\nold-run\nbk\ndb/x\n").unwrap();
    let (code, err) = run_bk(&t, &locks);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_held_lock_is_refused_even_before_its_holder_wrote_its_name() {
    // A holder that has locked the file but not written into it yet: an empty file.
    let t = Test::new()
        .file("bk.yaml", holding("bk", "db/x"))
        .file("go", "");
    let locks = t.path("locks");
    std::fs::create_dir_all(&locks).unwrap();
    let file = std::fs::File::create(locks.join("db%2Fx.lock")).unwrap();
    let held = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| e)
        .unwrap();
    let (code, err) = run_bk(&t, &locks);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("lock `db/x` is held by run `?`"), "{err}");
    drop(held);
    let (code, err) = run_bk(&t, &locks);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn runs_racing_for_one_lock_never_hold_it_together() {
    let t = Test::new().file(
        "rb.yaml",
        r#"
version: 1
name: race
locks: ["db/race"]
steps:
  - id: inside
    type: exec
    command: [sh, -c, 'mkdir inside || echo overlap >> overlaps; sleep 0.1; rmdir inside']
"#,
    );
    let locks = t.path("locks");
    std::fs::create_dir_all(&locks).unwrap();
    // A lock file left by a run that is gone, for all of them to take over at once.
    std::fs::write(
        locks.join("db%2Frace.lock"),
        "999999999\nold\nrace\ndb/race\n",
    )
    .unwrap();
    let racers: Vec<Spawned> = (0..8)
        .map(|i| {
            let mut c = command(
                t.dir.path(),
                "rb.yaml",
                &format!("s{i}"),
                Some(&locks),
                None,
            );
            c.args(["--lock-wait", "1m"]);
            Spawned::from(c.spawn().unwrap())
        })
        .collect();
    for r in racers {
        let (code, err) = finish(r);
        assert_eq!(code, 0, "{err}");
    }
    assert!(
        !t.path("overlaps").exists(),
        "two runs held `db/race` at once"
    );
}
