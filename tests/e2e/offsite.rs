//! The shipped backup and restore runbooks with an off-site store (Garage): the verified
//! backup goes to the store with its manifest; with the local backups gone, the restore takes
//! the newest complete backup from the store.

use super::{
    DB, Env, expect_code, fingerprint, output_text, password, psql_ok, rb_with, report_of, seed,
    start_pg,
};

const GARAGE_KEY: &str = "/var/lib/rb-testenv/garage/key";

/// The store params and the credentials (from `tests/env/up`'s exports, else Garage's state).
struct Store {
    params: Vec<String>,
    vars: Vec<(&'static str, String)>,
}

impl Store {
    fn garage(prefix: &str) -> Self {
        let var = |n: &str, d: &str| std::env::var(n).unwrap_or_else(|_| d.to_owned());
        let (id, secret) = match (
            std::env::var("RB_TEST_S3_KEY_ID"),
            std::env::var("RB_TEST_S3_SECRET"),
        ) {
            (Ok(id), Ok(secret)) => (id, secret),
            _ => {
                let text = std::fs::read_to_string(GARAGE_KEY).expect("garage key (tests/env/up)");
                let mut it = text.split_whitespace();
                (
                    it.next().expect("key id").to_owned(),
                    it.next().expect("secret").to_owned(),
                )
            }
        };
        let bucket = var("RB_TEST_S3_BUCKET", "rb-single");
        Self {
            params: vec![
                format!("store=s3://{bucket}/{prefix}"),
                format!(
                    "store_endpoint={}",
                    var("RB_TEST_S3_ENDPOINT", "http://127.0.0.1:3900")
                ),
                format!("store_region={}", var("RB_TEST_S3_REGION", "garage")),
            ],
            vars: vec![("AWS_ACCESS_KEY_ID", id), ("AWS_SECRET_ACCESS_KEY", secret)],
        }
    }

    fn run(
        &self,
        env: &Env,
        pw: &str,
        file: &str,
        params: &[String],
        extra: &[&str],
    ) -> super::Output {
        let mut args = vec!["run", file];
        for p in params.iter().chain(&self.params) {
            args.extend(["-p", p.as_str()]);
        }
        args.extend(extra);
        let vars: Vec<(&str, &str)> = self.vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        rb_with(env, pw, &args, &vars)
    }
}

fn step_status(report: &serde_json::Value, id: &str) -> String {
    report["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["id"] == id))
        .map_or_else(
            || panic!("no step {id} in the report"),
            |s| s["status"].as_str().unwrap_or_default().to_owned(),
        )
}

#[test]
fn backups_go_off_site_and_come_back_when_the_local_ones_are_gone() {
    let mut env = Env::new("off");
    let pw = password("off");
    let pg = env.name("pg");
    start_pg(&pg, &pw);
    seed(&pg, &pw);
    let before = fingerprint(&pg, &pw, DB);
    let prefix = env.name("store");
    let store = Store::garage(&prefix);
    let root = env.path("backups");
    let common = [
        format!("container={pg}"),
        format!("backup_root={}", root.display()),
    ];

    // A backup with a store: verified locally, then copied off-site with its manifest.
    let out = store.run(&env, &pw, "runbooks/backup/database.yaml", &common, &[]);
    expect_code(&out, 0);
    let report = report_of(&env, &out);
    for id in ["offsite_dump", "offsite_globals", "offsite_retention"] {
        assert_eq!(step_status(&report, id), "succeeded", "{id}");
    }

    // Local-only (the default) still works and skips every off-site step.
    let args = super::run_args("runbooks/backup/database.yaml", &common, &[]);
    let out = rb_with(&env, &pw, &args, &[]);
    expect_code(&out, 0);
    assert_eq!(
        step_status(&report_of(&env, &out), "offsite_dump"),
        "skipped"
    );

    // The site's backups are lost and the data damaged: the restore takes the store's newest
    // complete backup, checks it against its manifest, and brings the data back.
    std::fs::remove_dir_all(&root).expect("local backups removed");
    psql_ok(
        &pg,
        &pw,
        DB,
        "delete from agent_execution_history where id % 3 = 0",
    );
    assert_ne!(fingerprint(&pg, &pw, DB), before);
    let ps = [
        common[0].clone(),
        common[1].clone(),
        "manage_app=false".to_owned(),
    ];
    let out = store.run(
        &env,
        &pw,
        "runbooks/restore/database.yaml",
        &ps,
        &["--approve", "approve_drop"],
    );
    expect_code(&out, 0);
    let report = report_of(&env, &out);
    assert_eq!(step_status(&report, "offsite_dump"), "succeeded");
    assert_eq!(
        fingerprint(&pg, &pw, DB),
        before,
        "the data came back from the store"
    );
    let achieved = report["rpo"]["achieved_seconds"]
        .as_f64()
        .unwrap_or_else(|| panic!("an achieved RPO: {}", output_text(&out)));
    assert!(
        (0.0..3600.0).contains(&achieved),
        "the age of the restored backup: {achieved}"
    );
    eprintln!("offsite: restored from the store, achieved RPO {achieved:.0}s");
}

/// `backup/wal-ship.yaml`: the archived segments go to the store in one batch with a
/// manifest; a second run with nothing new ships nothing; a new segment goes in the next batch.
#[test]
fn wal_shipping_sends_each_archived_segment_once_and_base_backups_go_off_site() {
    let mut env = Env::new("walship");
    let pw = password("walship");
    let pg = env.name("pg");
    let archive = env.name("archive");
    super::start_archiving_pg(&pg, &pw, &archive);
    super::switch_and_archive(&pg, &pw);
    let store = Store::garage(&env.name("store"));
    let ps = [format!("container={pg}"), "cluster=walship".to_owned()];
    let ship = |env: &Env| {
        let out = store.run(env, &pw, "runbooks/backup/wal-ship.yaml", &ps, &[]);
        expect_code(&out, 0);
        report_of(env, &out)
    };
    let first = ship(&env);
    assert_eq!(step_status(&first, "ship"), "succeeded");
    let shipped = super::docker_ok(&["exec", &pg, "cat", "/archive/.shipped"]);
    assert!(
        shipped.lines().any(|l| l.len() == 24),
        "a WAL segment is recorded as shipped: {shipped}"
    );
    let again = ship(&env);
    assert_eq!(
        step_status(&again, "ship"),
        "skipped",
        "nothing new to ship"
    );
    // A switch with nothing written since the last one closes no segment.
    let segments = || {
        super::docker_ok(&["exec", &pg, "ls", "/archive"])
            .lines()
            .filter(|l| l.len() == 24)
            .count()
    };
    psql_ok(&pg, &pw, DB, "create table after_ship as select 1 as id");
    psql_ok(&pg, &pw, DB, "select pg_switch_wal()");
    super::poll(
        "a second archived segment",
        super::Duration::from_mins(1),
        || segments() >= 2,
    );
    let third = ship(&env);
    assert_eq!(
        step_status(&third, "ship"),
        "succeeded",
        "the new segment is shipped"
    );
    // The base backup that WAL rolls forward goes off-site too.
    let base = [
        format!("container={pg}"),
        format!("backup_root={}", env.path("base").display()),
        "cluster=walship".to_owned(),
    ];
    let out = store.run(&env, &pw, "runbooks/backup/wal-archive.yaml", &base, &[]);
    expect_code(&out, 0);
    assert_eq!(step_status(&report_of(&env, &out), "offsite"), "succeeded");
}

/// Removes what the recovery made on engine 2 (the `Env` guard cleans engine 1 only), and the
/// registry references the test tagged (on both engines).
struct Engine2 {
    host: String,
    containers: Vec<String>,
    network: String,
    volume: String,
    images: Vec<String>,
}

impl Engine2 {
    /// Engine 2 (`RB_TEST_DOCKER2_HOST`) and what the recovery of `stack` makes there.
    fn for_stack(stack: &super::Stack) -> Self {
        Self {
            host: std::env::var("RB_TEST_DOCKER2_HOST")
                .unwrap_or_else(|_| "unix:///var/run/docker-rb2.sock".into()),
            containers: vec![
                stack.pg.clone(),
                stack.redis.clone(),
                stack.be.clone(),
                stack.fe.clone(),
            ],
            network: stack.net.clone(),
            volume: stack.vol.clone(),
            images: Vec::new(),
        }
    }

    /// The row count of `table` in the database of container `pg` on engine 2.
    fn rows(&self, pg: &str, pw: &str, table: &str) -> String {
        let out = self.docker(&[
            "exec",
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
            "-Atc",
            &format!("select count(*) from {table}"),
        ]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn docker(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("docker")
            .arg("-H")
            .arg(&self.host)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("docker runs")
    }
}

impl Drop for Engine2 {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = self.docker(&["rm", "-f", "-v", c]);
        }
        let _ = self.docker(&["network", "rm", &self.network]);
        let _ = self.docker(&["volume", "rm", "-f", &self.volume]);
        for i in &self.images {
            let _ = self.docker(&["image", "rm", i]);
            let _ = super::docker(&["image", "rm", i]);
        }
    }
}

/// Every image of the application in the test registry, under repositories of this test (so
/// removing them touches no image other tests use): the registry param of the drill and each
/// image's name and pushed digest. Engine 2 also holds stale copies under the same references:
/// the drill must remove them, so that what runs comes from the registry (`pull: missing`
/// would use a present image).
fn registry_images(e2: &mut Engine2, prefix: &str) -> (String, Vec<(&'static str, String)>) {
    let registry = format!(
        "{}/{prefix}",
        std::env::var("RB_TEST_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5501".into()),
    );
    let (pg, tools) = (super::pg_image(), super::tools_image());
    let pushed = [
        ("postgres:15", &pg),
        ("tools:1", &tools),
        ("backend:site", &tools),
    ]
    .into_iter()
    .map(|(name, local)| (name, push_to_registry(e2, prefix, local, name)))
    .collect();
    for (name, local) in [("postgres:15", &pg), ("tools:1", &tools)] {
        let out = e2.docker(&["tag", local, &format!("{registry}/{name}")]);
        assert!(out.status.success(), "tag on engine 2: {out:?}");
    }
    (registry, pushed)
}

/// The application's images in the test registry, under repositories of this test: `image` of
/// engine 1 tagged `REGISTRY/PREFIX/NAME` and pushed; the digest the registry gave it.
fn push_to_registry(e2: &mut Engine2, prefix: &str, image: &str, name: &str) -> String {
    let registry = std::env::var("RB_TEST_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5501".into());
    let r = format!("{registry}/{prefix}/{name}");
    super::docker_ok(&["tag", image, &r]);
    e2.images.push(r.clone());
    super::docker_ok(&["push", "-q", &r]);
    let digests = super::docker_ok(&["image", "inspect", "-f", "{{json .RepoDigests}}", &r]);
    let repo = r.rsplit_once(':').map_or(r.as_str(), |(repo, _)| repo);
    let digests: Vec<String> = serde_json::from_str(digests.trim()).expect("RepoDigests");
    digests
        .iter()
        .find_map(|d| d.strip_prefix(&format!("{repo}@")).map(str::to_owned))
        .unwrap_or_else(|| panic!("{r} pushed: no digest in {digests:?}"))
}

/// `drills/site-loss.yaml`: the application on engine 1 (containers, volume, its image and the
/// local backups) is destroyed, and everything comes back on engine 2 from the store alone.
#[test]
fn site_loss_drill_recovers_everything_on_the_second_engine_from_the_store() {
    let started = std::time::Instant::now();
    let mut env = Env::new("site");
    let pw = password("site");
    let stack = super::Stack::new(&mut env);
    let engine1 =
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    let mut e2 = Engine2::for_stack(&stack);
    let (registry, pushed) = registry_images(&mut e2, &env.prefix);
    let app_image = format!("{registry}/backend:site");
    let vol = format!("{}:/var/lib/postgresql/data", stack.vol);
    super::start_pg_with(&stack.pg, &pw, &["-v", &vol], &[]);
    super::docker_ok(&[
        "run", "-d", "--name", &stack.be, &app_image, "sleep", "3600",
    ]);
    seed(&stack.pg, &pw);
    let before = fingerprint(&stack.pg, &pw, DB);

    // The nightly backup on the lost site, copied off-site.
    let store = Store::garage(&env.name("store"));
    let lost_backups = env.path("backups");
    let common = [
        format!("container={}", stack.pg),
        format!("backup_root={}", lost_backups.display()),
    ];
    let out = store.run(&env, &pw, "runbooks/backup/database.yaml", &common, &[]);
    expect_code(&out, 0);

    let mut ps: Vec<String> = stack
        .params(&env)
        .into_iter()
        .filter(|p| !p.starts_with("backup_root=") && !p.contains("_image="))
        .collect();
    ps.extend([
        format!("registry={registry}"),
        "db_image=postgres:15".to_owned(),
        "redis_image=tools:1".to_owned(),
        "backend_image=backend:site".to_owned(),
        "frontend_image=tools:1".to_owned(),
        format!("backup_root={}", env.path("new-site").display()),
        format!("lost_engine={engine1}"),
        format!("lost_images={app_image}"),
        format!("lost_backup_root={}", lost_backups.display()),
    ]);
    ps.extend(store.params.iter().cloned());
    let report_path = env.path("site-loss.json");
    let report_s = report_path.display().to_string();
    let args = super::run_args(
        "runbooks/drills/site-loss.yaml",
        &ps,
        &[
            "--approve",
            "destroy",
            "--approve",
            "recover/restore/approve_drop",
            "--report",
            &report_s,
        ],
    );
    let mut vars: Vec<(&str, &str)> = store.vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    vars.push(("DOCKER_HOST", &e2.host));
    let t = std::time::Instant::now();
    let out = rb_with(&env, &pw, &args, &vars);
    let drill_secs = t.elapsed().as_secs_f64();
    expect_code(&out, 0);

    assert_site_gone(&stack, &app_image, &lost_backups);
    // Engine 2 runs it, with the same data.
    let rows = e2.rows(&stack.pg, &pw, "agent_execution_history");
    assert_eq!(
        rows,
        before["agent_execution_history"]
            .split(' ')
            .next()
            .unwrap_or_default(),
        "the rows are on engine 2"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).expect("report"))
            .expect("JSON");
    for id in [
        "same_data",
        "backend_up",
        "frontend_up",
        "images_gone",
        "backups_gone",
        "bare_engine",
    ] {
        assert_eq!(step_status(&report, id), "succeeded", "{id}");
    }
    assert_pulled_from_registry(&report, &registry, &pushed);
    assert_eq!(report["rto_met"], true, "{:#}", report["milestones"]);
    let achieved = report["rpo"]["achieved_seconds"]
        .as_f64()
        .expect("an achieved RPO");
    eprintln!(
        "site-loss drill: {drill_secs:.1}s (RTO met), achieved RPO {achieved:.0}s, test {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

/// Engine 2 pulled every image of the application from the registry (it had none of them: the
/// drill removed them), with the digests the registry gave them, and the report lists them.
fn assert_pulled_from_registry(
    report: &serde_json::Value,
    registry: &str,
    pushed: &[(&str, String)],
) {
    let images = report["images"].as_array().expect("the report's images");
    for (name, digest) in pushed {
        let r = format!("{registry}/{name}");
        let used: Vec<&serde_json::Value> = images.iter().filter(|i| i["image"] == *r).collect();
        assert!(!used.is_empty(), "{r} used by the recovery: {images:#?}");
        assert!(
            used.iter().any(|i| i["pulled"] == true),
            "{r} pulled on engine 2: {used:#?}"
        );
        for i in used {
            assert_eq!(i["digest"], *digest, "{r}: the registry's digest");
        }
    }
}

/// Engine 1 has nothing of the application left, nor the local backups.
fn assert_site_gone(stack: &super::Stack, app_image: &str, lost_backups: &std::path::Path) {
    for c in [&stack.pg, &stack.be] {
        assert!(
            !super::docker(&["inspect", c]).status.success(),
            "{c} is gone from engine 1"
        );
    }
    assert!(
        !super::docker(&["volume", "inspect", &stack.vol])
            .status
            .success()
    );
    assert!(
        !super::docker(&["image", "inspect", app_image])
            .status
            .success(),
        "the image is gone"
    );
    assert!(!lost_backups.exists(), "the local backups are gone");
}

/// `backup/config.yaml`, `backup/source.yaml` and `backup/userdata.yaml` copy each verified
/// archive off-site when given a store, and skip it without one.
#[test]
fn file_backups_go_off_site_and_restore_from_the_store() {
    let mut env = Env::new("offfiles");
    let pw = password("offfiles");
    let app = env.path("app");
    std::fs::create_dir_all(app.join("src")).expect("app dir");
    std::fs::write(app.join(".env"), "A=1\n").expect(".env");
    std::fs::write(app.join("src/main.py"), "print(1)\n").expect("source");
    let uploads = env.path("uploads");
    std::fs::create_dir_all(&uploads).expect("uploads");
    std::fs::write(uploads.join("a.pdf"), "pdf").expect("upload");
    let store = Store::garage(&env.name("store"));
    let cases = [
        (
            "config",
            vec![format!("app_dir={}", app.display())],
            vec!["offsite"],
        ),
        (
            "source",
            vec![format!("app_dir={}", app.display())],
            vec!["offsite"],
        ),
        (
            "userdata",
            vec![
                format!("uploads_dir={}", uploads.display()),
                format!("rag_dir={}", env.path("no-rag").display()),
            ],
            vec!["offsite_uploads"],
        ),
    ];
    for (name, mut ps, ids) in cases {
        ps.push(format!("backup_root={}", env.path(name).display()));
        let file = format!("runbooks/backup/{name}.yaml");
        let out = store.run(&env, &pw, &file, &ps, &[]);
        expect_code(&out, 0);
        let report = report_of(&env, &out);
        for id in &ids {
            assert_eq!(step_status(&report, id), "succeeded", "{name}: {id}");
        }
        // Local-only, the default: the same backup, nothing sent.
        let local = rb_with(&env, &pw, &super::run_args(&file, &ps, &[]), &[]);
        expect_code(&local, 0);
        assert_eq!(
            step_status(&report_of(&env, &local), ids[0]),
            "skipped",
            "{name}"
        );
    }
    // With no archive given, the restores take the newest complete one from the store.
    for (name, file, content) in [
        ("config", ".env", "A=1\n"),
        ("source", "src/main.py", "print(1)\n"),
    ] {
        let dest = env.path(&format!("restored-{name}"));
        let ps = [
            format!("dest={}", dest.display()),
            format!("download_dir={}", env.path("download").display()),
        ];
        let out = store.run(
            &env,
            &pw,
            &format!("runbooks/restore/{name}.yaml"),
            &ps,
            &[],
        );
        expect_code(&out, 0);
        assert_eq!(
            step_status(&report_of(&env, &out), "offsite_get"),
            "succeeded"
        );
        let restored = std::fs::read_to_string(dest.join(file)).expect("restored file");
        assert_eq!(restored, content, "{name}: {file} came back from the store");
    }
}

/// `restore/pitr.yaml` from the store alone: the base backup (backup/wal-archive.yaml) and the
/// WAL (backup/wal-ship.yaml) shipped to Garage, the primary, its archive and the local base
/// backups gone; the recovery to a target time brings back exactly the rows before it.
#[test]
fn pitr_from_the_store_restores_exactly_the_rows_before_the_target() {
    let mut env = Env::new("pitrstore");
    let pw = password("pitrstore");
    let pg = env.name("pg");
    let restored = env.name("restored");
    env.name("restored-prep");
    let archive = format!("{}-archive", env.prefix);
    let data = format!("{}-pgdata", env.prefix);
    env.volumes.push(archive.clone());
    env.volumes.push(data.clone());
    super::start_archiving_pg(&pg, &pw, &archive);
    psql_ok(
        &pg,
        &pw,
        DB,
        "create table events(id int primary key, batch text not null)",
    );
    let store = Store::garage(&env.name("store"));
    let cluster = format!("cluster={}", env.prefix);
    let lost_base = env.path("base");
    let base = [
        format!("container={pg}"),
        format!("backup_root={}", lost_base.display()),
        cluster.clone(),
    ];
    let out = store.run(&env, &pw, "runbooks/backup/wal-archive.yaml", &base, &[]);
    expect_code(&out, 0);

    // Batch A, the target from the server's clock, batch B; the WAL shipped.
    psql_ok(
        &pg,
        &pw,
        DB,
        "insert into events select g, 'A' from generate_series(1, 500) g",
    );
    let target = psql_ok(&pg, &pw, DB, super::SERVER_NOW);
    psql_ok(
        &pg,
        &pw,
        DB,
        "insert into events select g, 'B' from generate_series(501, 800) g",
    );
    super::switch_and_archive(&pg, &pw);
    let ship = [format!("container={pg}"), cluster.clone()];
    let out = store.run(&env, &pw, "runbooks/backup/wal-ship.yaml", &ship, &[]);
    expect_code(&out, 0);

    // The site is lost: the primary, its data, its WAL archive and the local base backups.
    super::docker_ok(&["rm", "-f", "-v", &pg]);
    super::docker_ok(&["volume", "rm", &archive]);
    std::fs::remove_dir_all(&lost_base).expect("local base backups removed");

    let new_site = env.path("new-site");
    let ps = [
        format!("target_time={target}"),
        format!("backup_root={}", new_site.display()),
        format!("archive_volume={archive}"),
        format!("data_volume={data}"),
        format!("container={restored}"),
        format!("image={}", super::pg_image()),
        cluster,
    ];
    let out = store.run(&env, &pw, "runbooks/restore/pitr.yaml", &ps, &[]);
    expect_code(&out, 0);
    let report = report_of(&env, &out);
    for id in [
        "offsite_base",
        "offsite_wal",
        "offsite_unpack",
        "promoted",
        "verify",
    ] {
        assert_eq!(step_status(&report, id), "succeeded", "{id}");
    }
    super::assert_recovered_to_batch_a(&restored, &pw);
    assert!(
        !super::docker(&["volume", "inspect", &archive])
            .status
            .success(),
        "the WAL came from the store, not from the lost archive volume"
    );
}
