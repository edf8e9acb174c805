//! `rb::docker` against the real Docker engines of `tests/env/up`: no mocks.
//!
//! Environment (with defaults): `DOCKER_HOST`, `RB_TEST_PG_IMAGE` (`rb-test/postgres:15`),
//! `RB_TEST_TOOLS_IMAGE` (`rb-test/tools:1`), `RB_TEST_DOCKER2_HOST`
//! (`unix:///var/run/docker-rb2.sock`), `RB_TEST_DOCKER2_TCP` (`tcp://127.0.0.1:2376`),
//! `RB_TEST_TLS_DIR` (`/var/lib/rb-testenv/tls`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rb::docker::{
    CancellationToken, DockerError, Engine, ExecSpec, HealthProbe, RunSpec, TailBuffer, TlsFiles,
};
use rb::io::digest::HashingWriter;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

fn pg_image() -> String {
    env_or("RB_TEST_PG_IMAGE", "rb-test/postgres:15")
}

fn tools_image() -> String {
    env_or("RB_TEST_TOOLS_IMAGE", "rb-test/tools:1")
}

fn tls_files() -> TlsFiles {
    TlsFiles::in_dir(env_or("RB_TEST_TLS_DIR", "/var/lib/rb-testenv/tls"))
}

/// The default engine, checked to answer: a test fails with a clear message otherwise.
async fn engine() -> Engine {
    let engine = Engine::connect(None, None).expect("connect to the docker engine");
    if let Err(e) = engine.ping().await {
        panic!("the docker engine is not usable ({e}); run `eval \"$(tests/env/up)\"` first");
    }
    engine
}

fn unique(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "rbtest-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes the containers and networks it names when dropped, even when the test panicked.
struct Cleanup {
    endpoint: String,
    tls: Option<TlsFiles>,
    containers: Vec<String>,
    networks: Vec<String>,
}

impl Cleanup {
    fn new(engine: &Engine, tls: Option<TlsFiles>) -> Self {
        Self {
            endpoint: engine.endpoint().to_owned(),
            tls,
            containers: Vec::new(),
            networks: Vec::new(),
        }
    }

    fn container(&mut self, tag: &str) -> String {
        let name = unique(tag);
        self.containers.push(name.clone());
        name
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (endpoint, tls) = (self.endpoint.clone(), self.tls.clone());
        let containers = std::mem::take(&mut self.containers);
        let networks = std::mem::take(&mut self.networks);
        // A fresh runtime on its own thread: the test's runtime may be unwinding.
        let cleaner = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("runtime for cleanup");
            rt.block_on(async {
                let engine = Engine::connect(Some(&endpoint), tls.as_ref()).expect("reconnect");
                let names: Vec<&str> = containers.iter().map(String::as_str).collect();
                if let Err(e) = engine.remove(&names, true, false).await {
                    eprintln!("cleanup: {e}");
                }
                for n in &networks {
                    if let Err(e) = engine.network_remove(n).await {
                        eprintln!("cleanup: {e}");
                    }
                }
            });
        });
        let _ = cleaner.join();
    }
}

fn sleeper(name: &str, image: String) -> RunSpec {
    RunSpec {
        name: name.to_owned(),
        image,
        entrypoint: Some(vec!["sleep".into()]),
        command: Some(vec!["3600".into()]),
        ..RunSpec::default()
    }
}

/// Runs a postgres container and waits until it accepts TCP connections.
async fn postgres(engine: &Engine, name: &str) {
    let spec = RunSpec {
        name: name.to_owned(),
        image: pg_image(),
        env: vec![
            ("POSTGRES_USER".into(), "rb".into()),
            ("POSTGRES_PASSWORD".into(), "rb-secret".into()),
            ("POSTGRES_DB".into(), "rbdb".into()),
        ],
        ..RunSpec::default()
    };
    engine.run(&spec).await.expect("run postgres");
    let probe = HealthProbe {
        container: name.to_owned(),
        // `-h 127.0.0.1`: during init the entrypoint's temporary server listens on the socket only.
        command: Some(vec![
            "pg_isready".into(),
            "-h".into(),
            "127.0.0.1".into(),
            "-U".into(),
            "rb".into(),
        ]),
        user: Some("postgres".into()),
        interval: Duration::from_millis(250),
        timeout: Duration::from_mins(1),
    };
    engine
        .container_health_check(&probe)
        .await
        .expect("postgres becomes ready");
}

/// A postgres client command, with the password in its environment.
fn pg<const N: usize>(container: &str, argv: [&str; N]) -> ExecSpec {
    ExecSpec {
        env: vec![("PGPASSWORD".into(), "rb-secret".into())],
        ..ExecSpec::new(container, argv)
    }
}

fn psql(container: &str, sql: &str) -> ExecSpec {
    pg(
        container,
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            "rb",
            "-d",
            "rbdb",
            "-v",
            "ON_ERROR_STOP=1",
            "-Atc",
            sql,
        ],
    )
}

async fn query(engine: &Engine, container: &str, sql: &str) -> String {
    let spec = psql(container, sql);
    let out = engine
        .exec_capture(&spec)
        .await
        .expect("psql runs")
        .success(&spec)
        .expect("psql succeeds");
    out.stdout.trim().to_owned()
}

const TABLE_MD5: &str =
    "select md5(string_agg(id::text || ':' || payload, ',' order by id)) from items";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_dump_streams_out_byte_exact_and_restores_through_stdin() {
    let engine = engine().await;
    let mut cleanup = Cleanup::new(&engine, None);
    let (src, dst) = (cleanup.container("pg-src"), cleanup.container("pg-dst"));
    tokio::join!(postgres(&engine, &src), postgres(&engine, &dst));

    let ready = engine
        .exec_capture(&ExecSpec::new(&src, ["pg_isready", "-h", "127.0.0.1"]))
        .await
        .unwrap();
    assert_eq!(ready.exit_code, 0, "pg_isready: {}", ready.stdout);
    // Binary-looking data with CR and LF bytes: a TTY would corrupt it.
    query(
        &engine,
        &src,
        "create table items(id int primary key, payload text); \
         insert into items select g, md5(g::text) || E'\\r\\n' || repeat('x', g % 50) \
         from generate_series(1, 20000) g",
    )
    .await;
    let src_count = query(&engine, &src, "select count(*) from items").await;
    let src_md5 = query(&engine, &src, TABLE_MD5).await;
    assert_eq!(src_count, "20000");

    let tmp = tempfile::tempdir().unwrap();
    dump_inside_streams_out_byte_exact(&engine, &src, tmp.path()).await;

    // `pg_dump -Fc` streamed straight to a host file, then through stdin into pg_restore.
    let direct = tmp.path().join("direct.dump");
    let mut hashing = HashingWriter::new(tokio::fs::File::create(&direct).await.unwrap());
    let dump = pg(
        &src,
        ["pg_dump", "-h", "127.0.0.1", "-U", "rb", "-Fc", "rbdb"],
    );
    let r = engine
        .exec(
            &dump,
            None::<tokio::io::Empty>,
            &mut hashing,
            TailBuffer::new(4096),
        )
        .await
        .unwrap();
    assert_eq!(r.exit_code, 0);
    let (_, digest) = hashing.finish();
    let (direct_bytes, direct_sha) = (digest.bytes, digest.sha256);
    assert!(direct_bytes > 100_000, "dump of {direct_bytes} bytes");
    assert_eq!(direct_sha, sha256_file(&direct));

    let restore = pg(
        &dst,
        [
            "pg_restore",
            "-h",
            "127.0.0.1",
            "-U",
            "rb",
            "-d",
            "rbdb",
            "--exit-on-error",
            "--no-owner",
        ],
    );
    let stdin = tokio::fs::File::open(&direct).await.unwrap();
    let mut err = TailBuffer::new(8192);
    let r = engine
        .exec(&restore, Some(stdin), tokio::io::sink(), &mut err)
        .await
        .unwrap();
    assert_eq!(r.exit_code, 0, "pg_restore: {}", err.text());
    assert_eq!(
        query(&engine, &dst, "select count(*) from items").await,
        src_count
    );
    assert_eq!(query(&engine, &dst, TABLE_MD5).await, src_md5);
}

/// A dump written inside the container, streamed out through exec stdout, is byte-identical
/// to the file (sha256 inside vs. sha256 computed while streaming); so is `copy_out_to`.
async fn dump_inside_streams_out_byte_exact(engine: &Engine, src: &str, tmp: &Path) {
    let dump_in = pg(
        src,
        [
            "pg_dump",
            "-h",
            "127.0.0.1",
            "-U",
            "rb",
            "-Fc",
            "-f",
            "/tmp/in.dump",
            "rbdb",
        ],
    );
    engine
        .exec_capture(&dump_in)
        .await
        .unwrap()
        .success(&dump_in)
        .unwrap();
    let inside = engine
        .exec_capture(&ExecSpec::new(src, ["sha256sum", "/tmp/in.dump"]))
        .await
        .unwrap();
    let inside_sha = inside.stdout.split_whitespace().next().unwrap().to_owned();
    let streamed = tmp.join("cat.dump");
    let file = tokio::fs::File::create(&streamed).await.unwrap();
    let mut hashing = HashingWriter::new(file);
    let mut err = TailBuffer::new(4096);
    let r = engine
        .exec(
            &ExecSpec::new(src, ["cat", "/tmp/in.dump"]),
            None::<tokio::io::Empty>,
            &mut hashing,
            &mut err,
        )
        .await
        .unwrap();
    assert_eq!(r.exit_code, 0, "{}", err.text());
    let (_, digest) = hashing.finish();
    let (bytes, sha) = (digest.bytes, digest.sha256);
    assert_eq!(sha, inside_sha, "exec stdout is byte-exact");
    assert_eq!(sha, sha256_file(&streamed));
    // The archive API gives the same bytes.
    let copied = engine
        .copy_out_to(src, "/tmp/in.dump", &tmp.join("copied.dump"))
        .await
        .unwrap();
    assert_eq!(
        (copied.bytes, copied.sha256.as_str()),
        (bytes, inside_sha.as_str())
    );
}

fn sha256_file(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_is_closed_and_no_tty_mangles_bytes() {
    let engine = engine().await;
    let mut cleanup = Cleanup::new(&engine, None);
    let name = cleanup.container("stdin");
    engine.run(&sleeper(&name, tools_image())).await.unwrap();

    // 3 MB through `cat`: every byte value, CR and LF included, comes back unchanged.
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut out = Vec::new();
    let r = engine
        .exec(
            &ExecSpec::new(&name, ["cat"]),
            Some(&data[..]),
            &mut out,
            tokio::io::sink(),
        )
        .await
        .unwrap();
    assert_eq!(r.exit_code, 0);
    assert!(
        out == data,
        "cat returned {} bytes, different from the input",
        out.len()
    );

    // `wc -c` only prints after end of file: stdin really is closed.
    let mut out = Vec::new();
    engine
        .exec(
            &ExecSpec::new(&name, ["wc", "-c"]),
            Some(&data[..1000]),
            &mut out,
            tokio::io::sink(),
        )
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out).trim(), "1000");

    // env, user and workdir.
    let spec = ExecSpec {
        user: Some("nobody".into()),
        workdir: Some("/tmp".into()),
        env: vec![("RB_GREETING".into(), "hello; $(rm -rf /)".into())],
        ..ExecSpec::new(&name, ["sh", "-c", "echo \"$RB_GREETING\"; id -un; pwd"])
    };
    let out = engine.exec_capture(&spec).await.unwrap();
    assert_eq!(out.stdout, "hello; $(rm -rf /)\nnobody\n/tmp\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_copies_out_and_back_byte_for_byte() {
    let engine = engine().await;
    let mut cleanup = Cleanup::new(&engine, None);
    let name = cleanup.container("copy");
    engine.run(&sleeper(&name, tools_image())).await.unwrap();
    let make = ExecSpec::new(
        &name,
        [
            "sh",
            "-c",
            "set -e; mkdir -p /data/tree/sub/deeper /data/tree/empty; cd /data/tree; \
             printf 'line1\\r\\nline2\\n' > crlf.txt; head -c 300000 /dev/urandom > sub/random.bin; \
             echo deep > sub/deeper/f.txt; : > zero; ln -s sub/deeper/f.txt link; chmod 0600 sub/random.bin",
        ],
    );
    engine
        .exec_capture(&make)
        .await
        .unwrap()
        .success(&make)
        .unwrap();

    let tmp = tempfile::tempdir().unwrap();
    // Into an existing directory: lands under the source's name, as `docker cp` does.
    let out = engine
        .copy_out_to(&name, "/data/tree", tmp.path())
        .await
        .unwrap();
    assert_eq!(out.path, tmp.path().join("tree"));
    assert!(out.is_dir);
    assert_eq!(out.bytes, 13 + 300_000 + 5);
    let first = tree(&out.path);
    assert_eq!(first["link"], b"-> sub/deeper/f.txt".to_vec());
    assert_eq!(first["crlf.txt"], b"line1\r\nline2\n".to_vec());
    assert!(first.contains_key("empty/"));

    // Back in under a new name, then out again: the same tree.
    let back = engine
        .copy_in(&out.path, &name, "/data/back")
        .await
        .unwrap();
    assert_eq!(back.path, PathBuf::from("/data/back"));
    assert_eq!(back.bytes, out.bytes);
    let again = engine
        .copy_out_to(&name, "/data/back", &tmp.path().join("again"))
        .await
        .unwrap();
    assert_eq!(tree(&again.path), first);
    let diff = engine
        .exec_capture(&ExecSpec::new(
            &name,
            ["diff", "-r", "/data/tree", "/data/back"],
        ))
        .await
        .unwrap();
    assert_eq!(diff.exit_code, 0, "{}{}", diff.stdout, diff.stderr);

    // A single file: sha256 of its content, both ways.
    let file_out = engine
        .copy_out_to(
            &name,
            "/data/tree/sub/random.bin",
            &tmp.path().join("r.bin"),
        )
        .await
        .unwrap();
    assert!(!file_out.is_dir);
    assert_eq!(file_out.sha256, sha256_file(&tmp.path().join("r.bin")));
    let inside = engine
        .exec_capture(&ExecSpec::new(
            &name,
            ["sha256sum", "/data/tree/sub/random.bin"],
        ))
        .await
        .unwrap();
    assert!(inside.stdout.starts_with(&file_out.sha256));
    let file_in = engine
        .copy_in(&tmp.path().join("r.bin"), &name, "/tmp")
        .await
        .unwrap();
    assert_eq!(file_in.path, PathBuf::from("/tmp/r.bin"));
    assert_eq!(file_in.sha256, file_out.sha256);
    let inside = engine
        .exec_capture(&ExecSpec::new(&name, ["sha256sum", "/tmp/r.bin"]))
        .await
        .unwrap();
    assert!(inside.stdout.starts_with(&file_in.sha256));

    // Missing paths are named.
    let missing = engine
        .copy_out_to(&name, "/nope", tmp.path())
        .await
        .unwrap_err();
    assert!(
        matches!(missing, DockerError::PathNotFound { .. }),
        "{missing}"
    );
    assert!(
        missing
            .to_string()
            .contains("path `/nope` not found in container"),
        "{missing}"
    );
}

/// Relative path → content (files), `-> target` (symlinks) or empty (directories, with `/`).
fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.insert(rel, format!("-> {}", target.display()).into_bytes());
            } else if meta.is_dir() {
                out.insert(format!("{rel}/"), Vec::new());
                stack.push(path);
            } else {
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_is_idempotent_and_reports_changes() {
    let engine = engine().await;
    let mut cleanup = Cleanup::new(&engine, None);
    let name = cleanup.container("life");
    let spec = RunSpec {
        ports: vec![rb::docker::PortMapping::parse("6379").unwrap()],
        ..sleeper(&name, tools_image())
    };
    let id = engine.run(&spec).await.unwrap();
    assert!(engine.inspect_state(&name).await.unwrap().running);

    let conflict = engine.run(&spec).await.unwrap_err();
    assert!(
        matches!(conflict, DockerError::NameConflict { .. }),
        "{conflict}"
    );
    assert!(
        conflict
            .to_string()
            .contains(&format!("container name `{name}` is already in use"))
    );
    let replaced = engine
        .run(&RunSpec {
            replace: true,
            ..spec.clone()
        })
        .await
        .unwrap();
    assert_ne!(replaced, id);

    let t = Duration::from_secs(2);
    assert!(
        engine.stop(&[&name], t).await.unwrap(),
        "first stop changes"
    );
    assert!(
        !engine.stop(&[&name], t).await.unwrap(),
        "second stop is a no-op"
    );
    let state = engine.inspect_state(&name).await.unwrap();
    assert!(!state.running && state.status == "exited", "{state:?}");
    assert!(engine.start(&[&name], t).await.unwrap());
    assert!(!engine.start(&[&name], t).await.unwrap());
    assert!(engine.inspect_state(&name).await.unwrap().running);
    assert!(engine.remove(&[&name], true, false).await.unwrap());
    assert!(!engine.remove(&[&name], true, false).await.unwrap());
    let gone = engine.inspect_state(&name).await.unwrap_err();
    assert!(
        matches!(gone, DockerError::ContainerNotFound { .. }),
        "{gone}"
    );

    // A container that exits at once fails `run` with its logs.
    let dying = cleanup.container("dying");
    let err = engine
        .run(&RunSpec {
            entrypoint: Some(vec![
                "sh".into(),
                "-c".into(),
                "echo about to fail >&2; exit 4".into(),
            ]),
            command: None,
            ..sleeper(&dying, tools_image())
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, DockerError::ContainerExited { exit_code: 4, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("about to fail"), "{err}");
    let probe = HealthProbe {
        container: dying.clone(),
        command: Some(vec!["true".into()]),
        user: None,
        interval: Duration::from_millis(100),
        timeout: Duration::from_secs(30),
    };
    let started = Instant::now();
    let err = engine.container_health_check(&probe).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "fails fast");
    assert!(err.to_string().contains("about to fail"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_create_is_idempotent() {
    let engine = engine().await;
    let mut cleanup = Cleanup::new(&engine, None);
    let net = unique("net");
    cleanup.networks.push(net.clone());
    let first = engine.network_create(&net, Some("bridge")).await.unwrap();
    assert!(first.changed);
    let second = engine.network_create(&net, Some("bridge")).await.unwrap();
    assert!(!second.changed);
    assert_eq!(first.id, second.id);
    let name = cleanup.container("onnet");
    engine
        .run(&RunSpec {
            network: Some(net.clone()),
            ..sleeper(&name, tools_image())
        })
        .await
        .unwrap();
    // Containers on a user network resolve each other by name.
    let out = engine
        .exec_capture(&ExecSpec::new(&name, ["getent", "hosts", name.as_str()]))
        .await
        .unwrap();
    assert_eq!(out.exit_code, 0, "{}", out.stderr);
    engine.remove(&[&name], true, false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_what_failed() {
    let unreachable = Engine::connect(Some("unix:///nonexistent.sock"), None).unwrap_err();
    assert!(
        matches!(unreachable, DockerError::Unreachable { .. }),
        "{unreachable}"
    );
    assert!(
        unreachable
            .to_string()
            .contains("docker engine `unix:///nonexistent.sock` is unreachable"),
        "{unreachable}"
    );
    let refused = Engine::connect(Some("tcp://127.0.0.1:1"), None).unwrap();
    let err = refused.ping().await.unwrap_err();
    assert!(matches!(err, DockerError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains("`tcp://127.0.0.1:1`"), "{err}");
    // ssh:// goes through the `ssh` client; nothing listens on port 22 here.
    let with_port = Engine::connect(Some("ssh://nobody@127.0.0.1:2222"), None).unwrap_err();
    assert!(
        with_port.to_string().contains("cannot take a port"),
        "{with_port}"
    );
    let ssh = Engine::connect(Some("ssh://nobody@127.0.0.1"), None).unwrap();
    let err = ssh.ping().await.unwrap_err();
    assert!(matches!(err, DockerError::Unreachable { .. }), "{err}");
    assert!(
        err.to_string().contains("`ssh://nobody@127.0.0.1`"),
        "{err}"
    );
    let bad = Engine::connect(Some("ftp://x"), None).unwrap_err();
    assert!(bad.to_string().contains("unknown scheme `ftp`"), "{bad}");

    let engine = engine().await;
    let endpoint = engine.endpoint().to_owned();
    let missing = unique("missing");
    let err = engine
        .exec_capture(&ExecSpec::new(&missing, ["true"]))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("container `{missing}` not found on engine `{endpoint}`")
    );
    let err = engine
        .stop(&[&missing], Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, DockerError::ContainerNotFound { .. }),
        "{err}"
    );

    let mut cleanup = Cleanup::new(&engine, None);
    let name = cleanup.container("noimage");
    let err = engine
        .run(&sleeper(&name, "rb-test/no-such-image:0".into()))
        .await
        .unwrap_err();
    assert!(matches!(err, DockerError::ImageMissing { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("image `rb-test/no-such-image:0` not found on engine"),
        "{err}"
    );

    let name = cleanup.container("exit");
    engine.run(&sleeper(&name, tools_image())).await.unwrap();
    let spec = ExecSpec::new(
        &name,
        [
            "sh",
            "-c",
            "yes noise | head -c 100000 >&2; echo 'fatal: the real cause' >&2; exit 3",
        ],
    );
    let out = engine.exec_capture(&spec).await.unwrap();
    assert_eq!(out.exit_code, 3);
    let err = out.success(&spec).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("`sh` in container `{name}` exited with code 3")),
        "{text}"
    );
    assert!(text.ends_with("fatal: the real cause"), "{text}");
    assert!(text.len() < 5000, "only the tail is kept");
    let err = engine
        .exec_capture(&ExecSpec::new(&name, ["no-such-program"]))
        .await
        .unwrap();
    // The engine reports a program that cannot be found as 126 or 127.
    assert!(matches!(err.exit_code, 126 | 127), "{}", err.exit_code);
}

async fn wait_until_gone(engine: &Engine, name: &str, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let procs = engine.processes(name).await.unwrap();
        if !procs.iter().any(|p| p.contains(needle)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "`{needle}` still runs: {procs:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_exec_leaves_no_process_behind() {
    let engine = engine().await;
    let mut cleanup = Cleanup::new(&engine, None);
    let name = cleanup.container("cancel");
    engine.run(&sleeper(&name, tools_image())).await.unwrap();

    // Dropped future (an outer timeout): stopped in the background.
    let spec = ExecSpec::new(&name, ["sleep", "300"]);
    let dropped = tokio::time::timeout(Duration::from_secs(1), engine.exec_capture(&spec)).await;
    assert!(dropped.is_err(), "the exec was still running");
    wait_until_gone(&engine, &name, "sleep 300").await;

    // Cancel token: the processes (a child of a shell, too) are gone when `exec` returns.
    let token = CancellationToken::new();
    let spec = ExecSpec {
        cancel: Some(token.clone()),
        user: Some("nobody".into()),
        ..ExecSpec::new(&name, ["sh", "-c", "sleep 301; echo never"])
    };
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        token.cancel();
    });
    let err = engine.exec_capture(&spec).await.unwrap_err();
    canceller.await.unwrap();
    assert!(matches!(err, DockerError::Cancelled { .. }), "{err}");
    let procs = engine.processes(&name).await.unwrap();
    assert!(!procs.iter().any(|p| p.contains("sleep 301")), "{procs:?}");

    // Timeout: the same, reported as a timeout.
    let spec = ExecSpec {
        timeout: Some(Duration::from_millis(500)),
        ..ExecSpec::new(&name, ["sleep", "302"])
    };
    let err = engine.exec_capture(&spec).await.unwrap_err();
    assert!(matches!(err, DockerError::Timeout { .. }), "{err}");
    assert!(
        err.to_string().contains("running `sleep` in container"),
        "{err}"
    );
    let procs = engine.processes(&name).await.unwrap();
    assert!(!procs.iter().any(|p| p.contains("sleep 302")), "{procs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_engine_over_tls_and_its_socket() {
    let sock = env_or("RB_TEST_DOCKER2_HOST", "unix:///var/run/docker-rb2.sock");
    let by_socket = Engine::connect(Some(&sock), None).unwrap();
    by_socket
        .ping()
        .await
        .unwrap_or_else(|e| panic!("second engine: {e}"));

    let tcp = env_or("RB_TEST_DOCKER2_TCP", "tcp://127.0.0.1:2376");
    let tls = tls_files();
    let engine = Engine::connect(Some(&tcp), Some(&tls)).unwrap();
    engine
        .ping()
        .await
        .unwrap_or_else(|e| panic!("second engine over tls: {e}"));
    let version = engine.version().await.unwrap();
    assert_eq!(version.os, "linux");

    // Without the client certificate the engine refuses the connection.
    let plain = Engine::connect(Some(&tcp), None).unwrap();
    assert!(plain.ping().await.is_err());

    let mut cleanup = Cleanup::new(&engine, Some(tls));
    let name = cleanup.container("tls");
    engine.run(&sleeper(&name, tools_image())).await.unwrap();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let mut out = Vec::new();
    let r = engine
        .exec(
            &ExecSpec::new(&name, ["cat"]),
            Some(&data[..]),
            &mut out,
            tokio::io::sink(),
        )
        .await
        .unwrap();
    assert_eq!(r.exit_code, 0);
    assert!(out == data, "cat over tls returned {} bytes", out.len());
    // The first engine does not see the second's container.
    let first = self::engine().await;
    assert!(matches!(
        first.inspect_state(&name).await,
        Err(DockerError::ContainerNotFound { .. })
    ));
}
