//! Object stores on the real Garage started by `tests/env/up` (a single node, a node the
//! tests stop and start, and a three-node cluster with replication 3), with rclone as the
//! independent S3 client and the real `age` command for encryption interop.

use crate::support::{Ran, Spawned, Test, expect, poll, repo, run_book};
use serde_json::Value;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const GARAGE_KEY: &str = "/var/lib/rb-testenv/garage/key";

fn var(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// The key id and secret (from the environment `tests/env/up` prints, else its state file).
fn credentials() -> (String, String) {
    if let (Ok(id), Ok(secret)) = (
        std::env::var("RB_TEST_S3_KEY_ID"),
        std::env::var("RB_TEST_S3_SECRET"),
    ) {
        return (id, secret);
    }
    let text = std::fs::read_to_string(GARAGE_KEY).expect("garage key (run tests/env/up)");
    let mut it = text.split_whitespace();
    (
        it.next().expect("key id").to_owned(),
        it.next().expect("secret").to_owned(),
    )
}

struct Garage {
    endpoint: String,
    bucket: String,
}

fn single() -> Garage {
    Garage {
        endpoint: var("RB_TEST_S3_ENDPOINT", "http://127.0.0.1:3900"),
        bucket: var("RB_TEST_S3_BUCKET", "rb-single"),
    }
}

fn fault() -> Garage {
    Garage {
        endpoint: var("RB_TEST_S3_FAULT_ENDPOINT", "http://127.0.0.1:3940"),
        bucket: var("RB_TEST_S3_FAULT_BUCKET", "rb-fault"),
    }
}

fn cluster(node: usize) -> Garage {
    let all = var(
        "RB_TEST_S3_CLUSTER_ENDPOINTS",
        "http://127.0.0.1:3910,http://127.0.0.1:3920,http://127.0.0.1:3930",
    );
    Garage {
        endpoint: all.split(',').nth(node).expect("cluster node").to_owned(),
        bucket: var("RB_TEST_S3_CLUSTER_BUCKET", "rb-cluster"),
    }
}

/// A prefix no other test (or earlier run) uses.
fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("t/{tag}-{}-{nanos}", std::process::id())
}

/// rclone against `g`, configured only through the environment.
fn rclone(g: &Garage, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let (id, secret) = credentials();
    let mut cmd = Command::new("rclone");
    cmd.args(args)
        .env("RCLONE_CONFIG", "/dev/null")
        .env("RCLONE_CONFIG_G_TYPE", "s3")
        .env("RCLONE_CONFIG_G_PROVIDER", "Other")
        .env("RCLONE_CONFIG_G_ACCESS_KEY_ID", id)
        .env("RCLONE_CONFIG_G_SECRET_ACCESS_KEY", secret)
        .env("RCLONE_CONFIG_G_ENDPOINT", &g.endpoint)
        .env("RCLONE_CONFIG_G_REGION", "garage")
        .env("RCLONE_CONFIG_G_FORCE_PATH_STYLE", "true")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("rclone runs (tests/env/up installs it)");
    if let Some(data) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(data).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn rclone_cat(g: &Garage, key: &str) -> Vec<u8> {
    let out = rclone(g, &["cat", &format!("g:{}/{key}", g.bucket)], None);
    assert!(
        out.status.success(),
        "rclone cat {key}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn rclone_put(g: &Garage, key: &str, data: &[u8]) {
    let out = rclone(g, &["rcat", &format!("g:{}/{key}", g.bucket)], Some(data));
    assert!(
        out.status.success(),
        "rclone rcat {key}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The keys below `prefix`, as rclone lists them.
fn rclone_ls(g: &Garage, prefix: &str) -> Vec<String> {
    let out = rclone(
        g,
        &[
            "lsf",
            "-R",
            "--files-only",
            &format!("g:{}/{prefix}", g.bucket),
        ],
        None,
    );
    let mut keys: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    keys.sort();
    keys
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(data))
}

/// Random-looking bytes (a fixed xorshift stream: incompressible, reproducible).
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// An age identity in `t`'s `key.txt`; returns its public recipient.
fn age_identity(t: &Test, file: &str) -> String {
    let path = t.path(file);
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(&path)
        .output()
        .expect("age-keygen (tests/env/up installs age)");
    assert!(out.status.success());
    let out = Command::new("age-keygen")
        .arg("-y")
        .arg(&path)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A runbook with one store `off` at `g` below `prefix`, and `steps`.
fn book(g: &Garage, prefix: &str, extra: &str, steps: &str) -> String {
    format!(
        r"version: 1
name: offsite-test
secrets:
  s3_id: {{ env: T_S3_ID }}
  s3_secret: {{ env: T_S3_SECRET }}
  age_key: {{ file: key.txt }}
stores:
  off:
    url: s3://{bucket}/{prefix}
    endpoint: {endpoint}
    region: garage
    access_key_id: s3_id
    secret_access_key: s3_secret
{extra}steps:
{steps}",
        bucket = g.bucket,
        endpoint = g.endpoint,
    )
}

fn creds_env() -> Vec<(&'static str, String)> {
    let (id, secret) = credentials();
    vec![("T_S3_ID", id), ("T_S3_SECRET", secret)]
}

fn run(t: &Test, args: &[&str]) -> (Ran, Value) {
    let env = creds_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run_book(t, args, &env)
}

fn outputs<'a>(report: &'a Value, id: &str) -> &'a Value {
    &crate::support::report_step(report, id)["outputs"]
}

/// `sh -c SCRIPT` in the test's directory (the real `age`, `zstd`, `gzip`), which must succeed.
fn sh(t: &Test, script: &str) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(t.dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "`{script}`: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn store_put_is_read_back_by_rclone_and_age_and_get_restores_it() {
    let g = single();
    let prefix = unique("roundtrip");
    let data = random_bytes(12 * 1024 * 1024, 7);
    let t = Test::new().file("data.bin", &data);
    let recipient = age_identity(&t, "key.txt");
    let t = t.file(
        "rb.yaml",
        book(
            &g,
            &prefix,
            "",
            &format!(
                r#"  - id: put
    type: object.put
    source: data.bin
    dest: off:db/data.bin.zst.age
    compress: zstd
    encrypt: {{ recipients: ["{recipient}"] }}
  - id: get
    type: object.get
    needs: [put]
    source: off:db/data.bin.zst.age
    dest: restored/data.bin
    decrypt: {{ identity: age_key }}
  - id: list
    type: object.list
    needs: [get]
    prefix: "off:db/"
"#
            ),
        ),
    );
    let (ran, report) = run(&t, &[]);
    expect(&ran, 0);
    // rclone reads what rb wrote: the real `age` decrypts it, zstd decompresses it.
    let stored = rclone_cat(&g, &format!("{prefix}/db/data.bin.zst.age"));
    let put = outputs(&report, "put");
    assert_eq!(put["sha256"], sha256_hex(&stored));
    assert_eq!(put["bytes"], stored.len());
    assert_eq!(put["plaintext_sha256"], sha256_hex(&data));
    std::fs::write(t.path("stored.age"), &stored).unwrap();
    sh(
        &t,
        "age -d -i key.txt stored.age | zstd -dc > decrypted.bin",
    );
    assert_eq!(std::fs::read(t.path("decrypted.bin")).unwrap(), data);
    // The manifest, read by rclone, records both digests and the recipient.
    let manifest: Value = serde_json::from_slice(&rclone_cat(
        &g,
        &format!("{prefix}/db/data.bin.zst.age.manifest.json"),
    ))
    .unwrap();
    assert_eq!(manifest["stored"]["sha256"], sha256_hex(&stored));
    assert_eq!(manifest["plaintext"]["sha256"], sha256_hex(&data));
    assert_eq!(manifest["recipients"][0], recipient.as_str());
    assert_eq!(manifest["runbook"], "offsite-test");
    assert!(!manifest.to_string().contains("AGE-SECRET-KEY"));
    // object.get restored it, and object.list sees one complete backup.
    assert_eq!(std::fs::read(t.path("restored/data.bin")).unwrap(), data);
    let list = outputs(&report, "list");
    assert_eq!(list["latest"], "db/data.bin.zst.age");
    assert_eq!(list["objects"][0]["complete"], true);
    assert_eq!(list["objects"][0]["encrypted"], true);
    // A second run finds the manifest matching and does not send it again.
    let (ran, report) = run(&t, &["--only", "put"]);
    expect(&ran, 0);
    assert_eq!(outputs(&report, "put")["skipped"], true);
}

#[test]
fn store_get_reads_what_rclone_and_age_wrote_and_refuses_a_key_without_manifest() {
    let g = single();
    let prefix = unique("foreign");
    let data = random_bytes(3 * 1024 * 1024 + 17, 11);
    let t = Test::new().file("plain.bin", &data);
    let recipient = age_identity(&t, "key.txt");
    let out = Command::new("age")
        .args(["-r", &recipient, "-o", "sealed.age", "plain.bin"])
        .current_dir(t.dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let sealed = std::fs::read(t.path("sealed.age")).unwrap();
    rclone_put(&g, &format!("{prefix}/x.age"), &sealed);
    rclone_put(&g, &format!("{prefix}/orphan.bin"), b"no manifest");
    let manifest = serde_json::json!({
        "format_version": 1, "key": "x.age",
        "stored": {"bytes": sealed.len(), "sha256": sha256_hex(&sealed)},
        "plaintext": {"bytes": data.len(), "sha256": sha256_hex(&data)},
        "compression": null, "recipients": [recipient], "source": "age + rclone",
        "started": "2026-01-01T00:00:00Z", "completed": "2026-01-01T00:00:01Z",
        "runbook": "by-hand", "run_id": "none", "step": "none"
    });
    rclone_put(
        &g,
        &format!("{prefix}/x.age.manifest.json"),
        manifest.to_string().as_bytes(),
    );
    let t = t.file(
        "rb.yaml",
        book(
            &g,
            &prefix,
            "",
            r"  - id: get
    type: object.get
    source: off:x.age
    dest: out.bin
    decrypt: { identity: age_key }
  - id: orphan
    type: object.get
    needs: [get]
    source: off:orphan.bin
    dest: orphan.bin
",
        ),
    );
    let (ran, _) = run(&t, &[]);
    expect(&ran, 1);
    assert_eq!(std::fs::read(t.path("out.bin")).unwrap(), data);
    assert!(
        ran.stderr.contains("`orphan.bin` has no manifest")
            || ran.stdout.contains("`orphan.bin` has no manifest"),
        "{}\n{}",
        ran.stdout,
        ran.stderr
    );
    assert!(!t.path("orphan.bin").exists());
}

#[test]
fn store_wrong_identity_names_the_key_and_the_recipients_never_the_secret() {
    let g = single();
    let prefix = unique("wrongkey");
    let t = Test::new().file("data.bin", random_bytes(100_000, 3));
    let recipient = age_identity(&t, "right.txt");
    let wrong = age_identity(&t, "key.txt");
    let secret = std::fs::read_to_string(t.path("key.txt")).unwrap();
    let secret_line = secret
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY"))
        .unwrap()
        .to_owned();
    let t = t.file(
        "rb.yaml",
        book(
            &g,
            &prefix,
            "",
            &format!(
                r#"  - id: put
    type: object.put
    source: data.bin
    dest: off:d.age
    encrypt: {{ recipients: ["{recipient}"] }}
  - id: get
    type: object.get
    needs: [put]
    source: off:d.age
    dest: out.bin
    decrypt: {{ identity: age_key }}
"#
            ),
        ),
    );
    let (ran, report) = run(&t, &[]);
    expect(&ran, 1);
    let error = crate::support::report_step(&report, "get")["error"].to_string();
    assert!(error.contains(&wrong), "names the key used: {error}");
    assert!(error.contains(&recipient), "names the recipients: {error}");
    let journal = std::fs::read_dir(t.path("state/runs"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path().join("journal.jsonl")).unwrap())
        .collect::<String>();
    for text in [&ran.stdout, &ran.stderr, &journal, &report.to_string()] {
        assert!(!text.contains(&secret_line));
    }
    assert!(!t.path("out.bin").exists());
}

#[test]
fn store_validation_names_bad_urls_secrets_stores_and_recipients_with_positions() {
    let t = Test::new().file(
        "rb.yaml",
        r"version: 1
name: bad-stores
secrets:
  s3_id: { env: X }
stores:
  off:
    url: ftp://nope
    access_key_id: s3_id
    secret_access_key: s3_secrett
steps:
  - id: put
    type: object.put
    source: a
    dest: offsite:x
    encrypt: { recipients: [age1nope] }
",
    );
    let ran = Test::new()
        .cwd(t.dir.path())
        .args(["validate", "rb.yaml"])
        .expect(2);
    for needle in [
        "rb.yaml:7:10",
        "unknown store scheme `ftp://`",
        "rb.yaml:9:24",
        "unknown secret `s3_secrett`",
        "rb.yaml:14:11",
        "unknown store `offsite`",
        "`age1nope` is not an age recipient",
    ] {
        assert!(
            ran.stdout.contains(needle) || ran.stderr.contains(needle),
            "{needle}:\n{}{}",
            ran.stdout,
            ran.stderr
        );
    }
}

#[test]
fn store_plan_hides_credentials_and_check_names_refused_credentials_and_missing_bucket() {
    let g = single();
    let (id, secret) = credentials();
    // A good store: the plan shows it with *** for credentials; --check lists the bucket.
    let ok = Test::new().file("key.txt", "");
    let ok = ok.file(
        "rb.yaml",
        book(
            &g,
            &unique("check"),
            "",
            "  - id: s\n    type: sleep\n    duration: 0s\n",
        ),
    );
    let plan = |env: &[(&str, &str)], check: bool| {
        let mut cmd = Test::new().cwd(ok.dir.path()).args(["plan", "rb.yaml"]);
        if check {
            cmd = cmd.args(["--check"]);
        }
        for (k, v) in env {
            cmd = cmd.env(k, v);
        }
        cmd.run()
    };
    let shown = plan(&[("T_S3_ID", &id), ("T_S3_SECRET", &secret)], false);
    expect(&shown, 0);
    assert!(
        shown
            .stdout
            .contains("access_key_id ***, secret_access_key ***"),
        "{}",
        shown.stdout
    );
    assert!(!shown.stdout.contains(&secret) && !shown.stdout.contains(&id));
    let checked = plan(&[("T_S3_ID", &id), ("T_S3_SECRET", &secret)], true);
    expect(&checked, 0);
    assert!(
        checked
            .stdout
            .contains("credentials accepted, listing allowed"),
        "{}",
        checked.stdout
    );
    // Wrong credentials: refused, and the secret given is never shown.
    let bogus = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let refused = plan(&[("T_S3_ID", &id), ("T_S3_SECRET", bogus)], true);
    refused.exits(1).stdout_has("the credentials were refused");
    assert!(!refused.stdout.contains(bogus) && !refused.stderr.contains(bogus));
    // A missing bucket: named.
    std::fs::write(
        ok.path("rb.yaml"),
        book(
            &Garage {
                endpoint: g.endpoint.clone(),
                bucket: "rb-no-such-bucket".into(),
            },
            "x",
            "",
            "  - id: s\n    type: sleep\n    duration: 0s\n",
        ),
    )
    .unwrap();
    let missing = plan(&[("T_S3_ID", &id), ("T_S3_SECRET", &secret)], true);
    expect(&missing, 1);
    assert!(
        missing.stdout.contains("bucket `rb-no-such-bucket`")
            && missing.stdout.contains("does not exist"),
        "{}",
        missing.stdout
    );
    assert!(!missing.stdout.contains(&secret));
}

#[test]
fn store_corrupted_object_is_refused_before_the_restore_goes_on() {
    let g = single();
    let prefix = unique("corrupt");
    let data = random_bytes(2 * 1024 * 1024, 5);
    let t = Test::new().file("data.bin", &data).file("key.txt", "");
    let steps = r"  - id: put
    type: object.put
    source: data.bin
    dest: off:d.bin
";
    let t = t.file("rb.yaml", book(&g, &prefix, "", steps));
    let (ran, _) = run(&t, &[]);
    expect(&ran, 0);
    // One byte changed through the store's own API.
    let key = format!("{prefix}/d.bin");
    let mut stored = rclone_cat(&g, &key);
    stored[1_000_000] ^= 0x01;
    rclone_put(&g, &key, &stored);
    std::fs::write(
        t.path("rb.yaml"),
        book(
            &g,
            &prefix,
            "",
            r"  - id: get
    type: object.get
    source: off:d.bin
    dest: restored.bin
  - id: destroy
    type: exec
    needs: [get]
    command: [touch, destroyed]
",
        ),
    )
    .unwrap();
    let (ran, report) = run(&t, &[]);
    expect(&ran, 1);
    let error = crate::support::report_step(&report, "get")["error"].to_string();
    assert!(error.contains("does not match its manifest"), "{error}");
    assert!(!t.path("restored.bin").exists());
    assert!(!t.path("destroyed").exists());
}

/// The longest a background upload run may take.
const UPLOAD: Duration = Duration::from_mins(5);

/// Starts `rb run` in the background.
fn spawn_rb(t: &Test, args: &[&str]) -> Spawned {
    let env = creds_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    crate::support::book(t, args, &env)
        .env_path("RB_LOCK_DIR", t.path(".locks"))
        .spawn()
}

/// Waits until the run's journal shows `bytes` sent by step `step`.
fn wait_progress(t: &Test, step: &str, bytes: u64) {
    poll("upload progress", Duration::from_mins(2), || {
        let runs = std::fs::read_dir(t.path("state/runs")).ok()?;
        for run in runs.flatten() {
            let journal = std::fs::read_to_string(run.path().join("journal.jsonl")).ok()?;
            for line in journal.lines() {
                let v: Value = serde_json::from_str(line).ok()?;
                if v["event"] == "step_progressed"
                    && v["step"] == step
                    && v["bytes"].as_u64().unwrap_or(0) >= bytes
                {
                    return Some(());
                }
            }
        }
        None
    });
}

fn garage_ctl(action: &str, node: &str) {
    let ctl = var(
        "RB_TEST_GARAGE_CTL",
        &repo().join("tests/env/garage").display().to_string(),
    );
    let out = Command::new(ctl).args([action, node]).output().unwrap();
    assert!(
        out.status.success(),
        "garage {action} {node}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The big upload the fault tests interrupt.
fn upload_book(g: &Garage, prefix: &str, extra: &str) -> String {
    book(
        g,
        prefix,
        extra,
        r"  - id: put
    type: object.put
    source: big.bin
    dest: off:big.bin
",
    )
}

/// A sparse file of `mb` MiB of zeros (instant to make, cheap to store: Garage deduplicates
/// blocks), and its SHA-256.
fn big_file(t: &Test, mb: u64) -> String {
    let f = std::fs::File::create(t.path("big.bin")).unwrap();
    f.set_len(mb * 1024 * 1024).unwrap();
    let out = Command::new("sha256sum")
        .arg(t.path("big.bin"))
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_owned()
}

/// rclone downloads the object and hashes it; the manifest agrees.
fn check_uploaded(g: &Garage, prefix: &str, sha256: &str) {
    let out = rclone(
        g,
        &[
            "hashsum",
            "sha256",
            "--download",
            &format!("g:{}/{prefix}/big.bin", g.bucket),
        ],
        None,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(sha256),
        "rclone hashsum: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: Value =
        serde_json::from_slice(&rclone_cat(g, &format!("{prefix}/big.bin.manifest.json"))).unwrap();
    assert_eq!(manifest["stored"]["sha256"], sha256);
}

#[test]
fn store_cluster_upload_completes_when_one_node_of_three_is_killed() {
    let g = cluster(0);
    let prefix = unique("cluster");
    let t = Test::new().file("key.txt", "");
    let sha = big_file(&t, 256);
    let t = t.file("rb.yaml", upload_book(&g, &prefix, ""));
    let mut child = spawn_rb(&t, &[]);
    wait_progress(&t, "put", 16 * 1024 * 1024);
    garage_ctl("stop", "c3");
    assert!(
        child.exited().is_none(),
        "the upload still ran when the node stopped"
    );
    let ran = child.wait(UPLOAD);
    garage_ctl("start", "c3");
    ran.exits(0);
    // Read back through another node of the cluster.
    check_uploaded(&cluster(1), &prefix, &sha);
}

#[test]
fn store_stopped_mid_upload_fails_naming_it_and_resume_finishes() {
    let g = fault();
    let prefix = unique("stopped");
    let t = Test::new().file("key.txt", "");
    let sha = big_file(&t, 256);
    let t = t.file(
        "rb.yaml",
        upload_book(&g, &prefix, "    retry_timeout: 3s\n"),
    );
    let mut child = spawn_rb(&t, &[]);
    wait_progress(&t, "put", 16 * 1024 * 1024);
    garage_ctl("stop", "fault");
    assert!(
        child.exited().is_none(),
        "the upload still ran when the node stopped"
    );
    let ran = child.wait(UPLOAD);
    garage_ctl("start", "fault");
    ran.exits(1);
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(t.path("report.json")).unwrap()).unwrap();
    let error = crate::support::report_step(&report, "put")["error"].to_string();
    assert!(
        error.contains(&g.endpoint) && error.contains(&g.bucket),
        "{error}"
    );
    assert!(
        rclone_ls(&g, &prefix).is_empty(),
        "nothing under the final key: {:?}",
        rclone_ls(&g, &prefix)
    );
    let (ran, _) = run(&t, &["--resume"]);
    expect(&ran, 0);
    check_uploaded(&g, &prefix, &sha);
}

#[test]
fn store_rb_killed_mid_upload_leaves_no_backup_and_resume_finishes() {
    let g = single();
    let prefix = unique("killed");
    let t = Test::new().file("key.txt", "");
    let sha = big_file(&t, 256);
    let t = t.file("rb.yaml", upload_book(&g, &prefix, ""));
    let mut child = spawn_rb(&t, &[]);
    wait_progress(&t, "put", 16 * 1024 * 1024);
    child.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = child.wait(UPLOAD);
    assert!(
        rclone_ls(&g, &prefix).is_empty(),
        "{:?}",
        rclone_ls(&g, &prefix)
    );
    let (ran, _) = run(&t, &["--resume"]);
    expect(&ran, 0);
    check_uploaded(&g, &prefix, &sha);
}

#[test]
fn store_pg_dump_streams_to_the_bucket_encrypted_and_back_into_pg_restore() {
    use crate::containers::{FINGERPRINT, Guard, engine1, psql, start_pg};
    let g = single();
    let prefix = unique("pgstream");
    let mut guard = Guard::new(&engine1());
    let src = start_pg(&mut guard, "offsrc");
    let dst = start_pg(&mut guard, "offdst");
    let t = Test::new();
    let recipient = age_identity(&t, "key.txt");
    let steps = format!(
        r#"  - id: seed
    type: container.exec
    container: {src}
    user: postgres
    command: [psql, -v, ON_ERROR_STOP=1, -c, "create table t as select g as id, md5(g::text) as v from generate_series(1, 20000) g"]
  - id: dump
    type: container.exec
    needs: [seed]
    container: {src}
    user: postgres
    command: [pg_dump, -Fc, postgres]
    stdout: {{ object: "off:pg/db.dump.zst.age", compress: zstd, encrypt: {{ recipients: ["{recipient}"] }}, checksum: sha256 }}
  - id: restore
    type: container.exec
    needs: [dump]
    container: {dst}
    user: postgres
    command: [pg_restore, --exit-on-error, -d, postgres]
    stdin: {{ object: "off:pg/db.dump.zst.age", decrypt: {{ identity: age_key }}, decompress: true }}
"#
    );
    let t = t.file("rb.yaml", book(&g, &prefix, "", &steps));
    let (ran, report) = run(&t, &[]);
    expect(&ran, 0);
    assert_eq!(
        psql(&guard.host, &dst, FINGERPRINT),
        psql(&guard.host, &src, FINGERPRINT)
    );
    // Nothing on local disk but the runbook, the key and rb's own state.
    let mut local: Vec<String> = std::fs::read_dir(t.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    local.sort();
    assert_eq!(local, ["key.txt", "rb.yaml", "report.json", "state"]);
    // The stored dump is what `age -d | zstd -d` turns into a valid custom-format archive.
    let stored = rclone_cat(&g, &format!("{prefix}/pg/db.dump.zst.age"));
    assert_eq!(outputs(&report, "dump")["sha256"], sha256_hex(&stored));
    std::fs::write(t.path("d.age"), &stored).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg("age -d -i key.txt d.age | zstd -dc | head -c 5")
        .current_dir(t.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"PGDMP");
}

#[test]
fn store_prune_keeps_the_policy_removes_object_and_manifest_together_and_leaves_incomplete() {
    let g = single();
    let prefix = unique("prune");
    let mut t = Test::new().file("key.txt", "").file("d.bin", b"backup");
    let days = ["20260101", "20260102", "20260103", "20260104"];
    let mut steps = String::new();
    for d in days {
        use std::fmt::Write as _;
        let _ = writeln!(
            steps,
            "  - {{ id: put_{d}, type: object.put, source: d.bin, dest: \"off:db/db-{d}.bin\" }}"
        );
    }
    t = t.file("rb.yaml", book(&g, &prefix, "", &steps));
    let (ran, _) = run(&t, &[]);
    expect(&ran, 0);
    rclone_put(
        &g,
        &format!("{prefix}/db/db-20260105.bin"),
        b"half-written, no manifest",
    );
    let prune = |dry: bool| {
        format!(
            "  - id: prune\n    type: prune\n    store: \"off:db/\"\n    match: \"db-*.bin\"\n    time: \"name:db-%Y%m%d.bin\"\n    keep: {{ daily: 2 }}\n    dry_run: {dry}\n"
        )
    };
    std::fs::write(t.path("rb.yaml"), book(&g, &prefix, "", &prune(true))).unwrap();
    let (ran, report) = run(&t, &[]);
    expect(&ran, 0);
    assert_eq!(
        outputs(&report, "prune")["removed"],
        serde_json::json!(["db-20260102.bin", "db-20260101.bin"])
    );
    assert_eq!(rclone_ls(&g, &prefix).len(), 9, "a dry run deletes nothing");
    std::fs::write(t.path("rb.yaml"), book(&g, &prefix, "", &prune(false))).unwrap();
    let (ran, report) = run(&t, &[]);
    expect(&ran, 0);
    let out = outputs(&report, "prune");
    assert_eq!(
        out["kept"],
        serde_json::json!(["db-20260104.bin", "db-20260103.bin"])
    );
    assert_eq!(out["incomplete"], serde_json::json!(["db-20260105.bin"]));
    assert_eq!(
        rclone_ls(&g, &prefix),
        [
            "db/db-20260103.bin",
            "db/db-20260103.bin.manifest.json",
            "db/db-20260104.bin",
            "db/db-20260104.bin.manifest.json",
            "db/db-20260105.bin",
        ]
    );
}

/// The keys of multipart uploads under way below `prefix`, as rclone lists them.
fn pending_uploads(g: &Garage, prefix: &str) -> Vec<String> {
    let out = rclone(
        g,
        &[
            "backend",
            "list-multipart-uploads",
            &format!("g:{}", g.bucket),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v[&g.bucket]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|u| u["Key"].as_str())
        .filter(|k| k.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

#[test]
fn store_interrupted_upload_is_aborted_leaving_nothing_under_the_key() {
    let g = single();
    let prefix = unique("sigint");
    let t = Test::new().file("key.txt", "");
    big_file(&t, 256);
    let t = t.file("rb.yaml", upload_book(&g, &prefix, ""));
    let mut child = spawn_rb(&t, &[]);
    wait_progress(&t, "put", 16 * 1024 * 1024);
    assert_eq!(
        pending_uploads(&g, &prefix).len(),
        1,
        "a multipart upload is under way"
    );
    child.signal(nix::sys::signal::Signal::SIGINT);
    child.wait(UPLOAD).exits(130);
    assert!(rclone_ls(&g, &prefix).is_empty());
    assert!(
        pending_uploads(&g, &prefix).is_empty(),
        "the multipart upload was aborted"
    );
}

#[test]
fn store_ssh_ed25519_recipient_interoperates_with_age_both_ways() {
    let g = single();
    let prefix = unique("ssh");
    let t = Test::new().file("data.bin", random_bytes(500_000, 23));
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "ops@example", "-f"])
        .arg(t.path("key.txt"))
        .output()
        .expect("ssh-keygen");
    assert!(out.status.success());
    let public = std::fs::read_to_string(t.path("key.txt.pub")).unwrap();
    let steps = format!(
        r#"  - id: put
    type: object.put
    source: data.bin
    dest: off:s.age
    compress: gzip
    encrypt: {{ recipients: ["{}"] }}
  - id: get
    type: object.get
    needs: [put]
    source: off:s.age
    dest: out.bin
    decrypt: {{ identity: age_key }}
"#,
        public.trim()
    );
    let t = t.file("rb.yaml", book(&g, &prefix, "", &steps));
    let (ran, _) = run(&t, &[]);
    expect(&ran, 0);
    let data = std::fs::read(t.path("data.bin")).unwrap();
    assert_eq!(std::fs::read(t.path("out.bin")).unwrap(), data);
    std::fs::write(t.path("s.age"), rclone_cat(&g, &format!("{prefix}/s.age"))).unwrap();
    sh(&t, "age -d -i key.txt s.age | gzip -dc > by-age.bin");
    assert_eq!(std::fs::read(t.path("by-age.bin")).unwrap(), data);
}

#[test]
fn store_stdin_file_is_decrypted_and_decompressed_from_what_age_wrote() {
    let data = random_bytes(300_000, 29);
    let t = Test::new().file("d.bin", &data);
    let recipient = age_identity(&t, "key.txt");
    sh(
        &t,
        &format!("zstd -q -c d.bin | age -r {recipient} -o d.bin.zst.age"),
    );
    let t = t.file(
        "rb.yaml",
        r"version: 1
name: stdin-decrypt
secrets:
  age_key: { file: key.txt }
steps:
  - id: sum
    type: exec
    command: [sha256sum]
    stdin: { file: d.bin.zst.age, decrypt: { identity: age_key }, decompress: true }
",
    );
    let (ran, report) = run_book(&t, &[], &[]);
    expect(&ran, 0);
    let stdout = outputs(&report, "sum")["stdout"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(stdout.starts_with(&sha256_hex(&data)), "{stdout}");
}

#[test]
fn store_stdout_file_encrypted_by_rb_is_read_by_age() {
    let data = random_bytes(300_000, 31);
    let t = Test::new().file("d.bin", &data);
    let recipient = age_identity(&t, "key.txt");
    let t = t.file(
        "rb.yaml",
        format!(
            r#"version: 1
name: stdout-encrypt
steps:
  - id: write
    type: exec
    command: [cat, d.bin]
    stdout: {{ file: out/d.bin.zst.age, compress: zstd, checksum: sha256, encrypt: {{ recipients: ["{recipient}"] }} }}
"#
        ),
    );
    let (ran, report) = run_book(&t, &[], &[]);
    expect(&ran, 0);
    let sealed = std::fs::read(t.path("out/d.bin.zst.age")).unwrap();
    assert_eq!(outputs(&report, "write")["sha256"], sha256_hex(&sealed));
    sh(
        &t,
        "age -d -i key.txt out/d.bin.zst.age | zstd -dc > back.bin",
    );
    assert_eq!(std::fs::read(t.path("back.bin")).unwrap(), data);
}

#[test]
fn store_list_marks_incomplete_keys_and_delete_removes_object_and_manifest() {
    let g = single();
    let prefix = unique("delete");
    let t = Test::new().file("key.txt", "").file("d.bin", b"one backup");
    rclone_put(&g, &format!("{prefix}/b/orphan.bin"), b"no manifest");
    let steps = r#"  - { id: put, type: object.put, source: d.bin, dest: "off:b/d.bin" }
  - { id: before, type: object.list, needs: [put], prefix: "off:b/" }
  - { id: delete, type: object.delete, needs: [before], target: "off:b/d.bin" }
  - { id: after, type: object.list, needs: [delete], prefix: "off:b/" }
"#;
    let t = t.file("rb.yaml", book(&g, &prefix, "", steps));
    let (ran, report) = run(&t, &[]);
    expect(&ran, 0);
    let before = outputs(&report, "before");
    assert_eq!(before["latest"], "b/d.bin");
    assert_eq!(before["incomplete"], serde_json::json!(["b/orphan.bin"]));
    assert_eq!(outputs(&report, "delete")["deleted"], true);
    let after = outputs(&report, "after");
    assert_eq!(
        after["latest"],
        Value::Null,
        "the orphan is never the latest backup"
    );
    assert_eq!(after["keys"], serde_json::json!([]));
    assert_eq!(rclone_ls(&g, &prefix), ["b/orphan.bin"]);
}
