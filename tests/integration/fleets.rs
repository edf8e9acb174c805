//! `for_each` (docs/runbook-format.md, "Fleets"): one step over many items, expanded at plan
//! time into `ID[KEY]` steps that run, fail, resume and report one by one.

use crate::containers::{docker, engine1, pg_image, var};
use crate::support::{Ran, Test, repo, report_step, run_book};
use std::fmt::Write as _;

/// `rb ARGS` in the test's directory, with this exit code.
fn rb_in(t: &Test, args: &[&str], code: i32) -> Ran {
    Test::new().cwd(t.dir.path()).args(args).expect(code)
}

/// Three databases; an item fails while `broken-KEY` exists.
const FLEET: &str = r#"version: 1
name: fleet
params:
  databases: { type: list, default: [billing, shop, crm] }
steps:
  - id: prep
    type: exec
    shell: 'mkdir -p out'
  - id: dump
    for_each: params.databases
    type: exec
    shell: 'test ! -e broken-{{ item }} && echo "{{ item_index }} {{ item }}" > out/{{ item }}.txt'
  - id: check
    for_each: params.databases
    needs: [dump]
    type: exec
    shell: 'test -s out/{{ item }}.txt'
  - id: summary
    needs: [check]
    type: exec
    shell: 'ls out > summary.txt'
"#;

fn status(report: &serde_json::Value, id: &str) -> String {
    report_step(report, id)["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn for_each_runs_every_item_fails_at_the_end_and_resume_runs_only_the_failed_one() {
    let t = Test::new().file("rb.yaml", FLEET).file("broken-shop", "");
    let (ran, report) = run_book(&t, &[], &[]);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    // The other items go on (fail_fast is false by default); shop's chain stops.
    assert_eq!(status(&report, "dump[billing]"), "succeeded");
    assert_eq!(status(&report, "dump[crm]"), "succeeded");
    assert_eq!(status(&report, "dump[shop]"), "failed");
    assert_eq!(status(&report, "check[billing]"), "succeeded");
    assert_eq!(status(&report, "check[shop]"), "skipped");
    assert_eq!(status(&report, "summary"), "skipped");
    // Item to item: check[shop] waits for dump[shop] only; summary waits for every check.
    assert_eq!(
        report_step(&report, "check[shop]")["needs"],
        serde_json::json!(["dump[shop]"])
    );
    assert_eq!(
        report_step(&report, "summary")["needs"],
        serde_json::json!(["check[billing]", "check[shop]", "check[crm]"])
    );
    assert_eq!(
        std::fs::read_to_string(t.path("out/crm.txt")).unwrap(),
        "2 crm\n"
    );
    // The report groups the items, and says which failed (the slowest item depends on the
    // machine's timing here; a fixed journal checks it below).
    let mut dump = report["groups"][0].clone();
    let slowest = dump.as_object_mut().unwrap().remove("slowest_item");
    assert!(["billing", "shop", "crm"].contains(&slowest.unwrap().as_str().unwrap()));
    dump.as_object_mut().unwrap().remove("slowest_item_seconds");
    assert_eq!(
        dump,
        serde_json::json!({"group": "dump", "items": 3, "succeeded": 2, "failed": 1,
            "skipped": 0, "cancelled": 0, "failed_items": ["shop"]})
    );
    assert_eq!(report["groups"][1]["skipped"], 1);
    let text = rb_in(&t, &["report", "latest", "--state-dir", "state"], 0).stdout;
    assert!(
        text.contains("group dump: 3 items, 2 succeeded, 1 failed (shop), 0 skipped"),
        "{text}"
    );
    let metrics = rb_in(
        &t,
        &[
            "report",
            "latest",
            "--state-dir",
            "state",
            "--format",
            "prometheus",
        ],
        0,
    )
    .stdout;
    assert!(
        metrics.contains("rb_group_items{runbook=\"fleet\",group=\"dump\",outcome=\"failed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("step=\"dump[shop]\",group=\"dump\",item=\"shop\"}"),
        "{metrics}"
    );

    std::fs::remove_file(t.path("broken-shop")).unwrap();
    let (ran, report) = run_book(&t, &["--resume"], &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    for done in ["dump[billing]", "dump[crm]", "check[billing]", "check[crm]"] {
        assert_eq!(report_step(&report, done)["reused"], true, "{done}");
    }
    for redone in ["dump[shop]", "check[shop]", "summary"] {
        assert_eq!(report_step(&report, redone)["reused"], false, "{redone}");
        assert_eq!(status(&report, redone), "succeeded", "{redone}");
    }
    assert_eq!(
        std::fs::read_to_string(t.path("summary.txt")).unwrap(),
        "billing.txt\ncrm.txt\nshop.txt\n"
    );
}

#[test]
fn fail_fast_stops_the_other_items() {
    let text = FLEET.replace(
        "    for_each: params.databases\n    type: exec\n",
        "    for_each: params.databases\n    fail_fast: true\n    max_parallel: 1\n    type: exec\n",
    );
    let t = Test::new().file("rb.yaml", text).file("broken-billing", "");
    let (ran, report) = run_book(&t, &[], &[]);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert_eq!(status(&report, "dump[billing]"), "failed");
    assert_eq!(status(&report, "dump[shop]"), "skipped");
    assert_eq!(status(&report, "dump[crm]"), "skipped");
    assert!(!t.path("out/shop.txt").exists());
}

#[test]
fn max_parallel_bounds_a_group_below_jobs() {
    // Each item holds a directory as a lock while it works: two at once would collide.
    let text = r"version: 1
name: bounded
steps:
  - id: work
    for_each: [a, b, c, d]
    max_parallel: 1
    type: exec
    shell: 'mkdir held && sleep 0.2 && rmdir held'
";
    let t = Test::new().file("rb.yaml", text);
    let (ran, report) = run_book(&t, &["--jobs", "4"], &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    for key in ["a", "b", "c", "d"] {
        assert_eq!(status(&report, &format!("work[{key}]")), "succeeded");
    }
    // Without the bound the same runbook collides: the test tells the difference.
    let t = Test::new().file("rb.yaml", text.replace("    max_parallel: 1\n", ""));
    let (ran, _) = run_book(&t, &["--jobs", "4"], &[]);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
}

#[test]
fn max_parallel_from_a_param() {
    let text = r"version: 1
name: bounded
params:
  n: { type: int, default: 1 }
steps:
  - id: work
    for_each: [a, b, c, d]
    max_parallel: params.n
    type: exec
    shell: 'mkdir held && sleep 0.2 && rmdir held'
";
    let t = Test::new().file("rb.yaml", text);
    let (ran, report) = run_book(&t, &["--jobs", "4"], &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(status(&report, "work[d]"), "succeeded");
    // The param decides: four at once collide on the directory.
    let (ran, _) = run_book(&t, &["--jobs", "4", "-p", "n=4"], &[]);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    // `rb validate` already refuses what cannot give a number before any step runs.
    let bad = text.replace(
        "max_parallel: params.n",
        "max_parallel: steps.prep.outputs.n",
    );
    let bad = Test::new().file("rb.yaml", bad);
    let ran = rb_in(&bad, &["validate", "rb.yaml"], 2);
    assert!(
        ran.stderr.contains(
            "`max_parallel` of step `work` reads `steps.prep.outputs.n`: it is evaluated before"
        ),
        "{}",
        ran.stderr
    );
    let ran = rb_in(&t, &["plan", "rb.yaml", "-p", "n=0"], 2);
    assert!(
        ran.stderr
            .contains("`max_parallel: params.n` of step `work` must give a number of 1 or more"),
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("[rb.yaml:8:19]"), "{}", ran.stderr);
}

#[test]
fn plan_shows_the_items_of_mappings_with_their_fields() {
    let text = r"version: 1
name: fleet
steps:
  - id: dump
    for_each:
      - { db: billing, host: one }
      - { db: shop, host: two }
    item_key: db
    type: exec
    shell: 'echo {{ item.db }} on {{ item.host }}'
";
    let t = Test::new().file("rb.yaml", text);
    let ran = rb_in(&t, &["plan", "rb.yaml", "--format", "json"], 0);
    let plan: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    let ids: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["dump[billing]", "dump[shop]"]);
    assert_eq!(plan["steps"][1]["config"]["shell"], "echo shop on two");
    let ran = rb_in(&t, &["plan", "rb.yaml"], 0);
    assert!(ran.stdout.contains("dump[shop] (exec)"), "{}", ran.stdout);
    assert!(
        ran.stdout
            .contains("for_each groups:\n  dump: 2 items (billing, shop)\n"),
        "{}",
        ran.stdout
    );
}

#[test]
fn graph_draws_each_group_as_a_cluster_that_graphviz_and_mermaid_ids_accept() {
    let t = Test::new().file("rb.yaml", FLEET);
    let dot = rb_in(&t, &["graph", "rb.yaml"], 0).stdout;
    assert!(
        dot.contains(
            "subgraph \"cluster_for_each_dump\" {\n    label=\"dump: for_each, 3 items\";"
        ),
        "{dot}"
    );
    let cluster = dot
        .split("subgraph \"cluster_for_each_check\"")
        .next()
        .unwrap();
    let dump = cluster
        .split("subgraph \"cluster_for_each_dump\"")
        .nth(1)
        .unwrap();
    for item in ["billing", "shop", "crm"] {
        assert!(
            dump.contains(&format!("    \"dump[{item}]\" [label=")),
            "{dot}"
        );
    }
    assert!(!dump.contains("\"prep\" ["), "{dot}");
    // Graphviz itself reads it.
    let mut child = std::process::Command::new("dot")
        .arg("-Tsvg")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("graphviz `dot` is installed by tests/env/up");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), dot.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svg = String::from_utf8_lossy(&out.stdout);
    assert!(svg.contains("dump: for_each, 3 items"), "{svg}");

    let mermaid = rb_in(&t, &["graph", "rb.yaml", "--format", "mermaid"], 0).stdout;
    assert!(
        mermaid.contains("  subgraph for_each_dump[\"dump: for_each, 3 items\"]\n    dump_billing_\n    dump_shop_\n    dump_crm_\n  end\n"),
        "{mermaid}"
    );
    // A Mermaid node id is letters, digits and `_`: `dump[shop]` as an id would open a shape.
    for line in mermaid.lines().skip(1) {
        let line = line.trim();
        let Some((id, _)) = line.split_once("[\"") else {
            continue;
        };
        if id.starts_with("subgraph ") {
            continue;
        }
        assert!(
            id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "node id `{id}` in {mermaid}"
        );
    }
    assert!(mermaid.contains("dump_shop_ --> check_shop_"), "{mermaid}");
}

#[test]
fn validate_points_at_bad_items() {
    let text = r"version: 1
name: bad
steps:
  - id: empty
    for_each: []
    type: exec
    shell: 'true'
  - id: dup
    for_each: [a, b, a]
    type: exec
    shell: 'true'
  - id: badkey
    for_each: ['no/slash']
    type: exec
    shell: 'true'
  - id: outside
    type: exec
    shell: 'echo {{ item }}'
  - id: reader
    needs: [dup]
    type: exec
    shell: 'echo {{ steps.dup.outputs.stdout }}'
";
    let t = Test::new().file("rb.yaml", text);
    let ran = rb_in(&t, &["validate", "rb.yaml"], 2);
    let err = &ran.stderr;
    assert!(
        err.contains("`for_each` of step `empty` has no items"),
        "{err}"
    );
    assert!(err.contains("[rb.yaml:5:15]"), "{err}");
    assert!(
        err.contains("step `dup` has two items with key `a`"),
        "{err}"
    );
    assert!(err.contains("[rb.yaml:9:22]"), "{err}");
    assert!(
        err.contains("item key `no/slash` of step `badkey` cannot form a step id"),
        "{err}"
    );
    assert!(err.contains("[rb.yaml:13:16]"), "{err}");
    assert!(
        err.contains("`item` is defined only in a step with `for_each`"),
        "{err}"
    );
    assert!(err.contains("[rb.yaml:18:21]"), "{err}");
    assert!(
        err.contains("`steps.dup.outputs.stdout`: `dup` is a `for_each` group"),
        "{err}"
    );
}

#[test]
fn a_list_param_from_the_command_line_and_only_and_from_an_item() {
    let t = Test::new().file("rb.yaml", FLEET);
    let (ran, _) = run_book(&t, &["-p", "databases=alpha,beta"], &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(t.path("out/alpha.txt").exists() && t.path("out/beta.txt").exists());
    assert!(!t.path("out/billing.txt").exists());
    std::fs::remove_file(t.path("out/beta.txt")).unwrap();
    let (ran, report) = run_book(
        &t,
        &["-p", "databases=alpha,beta", "--only", "dump[beta]"],
        &[],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(status(&report, "dump[beta]"), "succeeded");
    assert_eq!(report_step(&report, "dump[beta]")["reused"], false);
    assert!(t.path("out/beta.txt").exists());
    // --from an item: it and what depends on it run again; the other item is reused.
    let (ran, report) = run_book(
        &t,
        &["-p", "databases=alpha,beta", "--from", "dump[alpha]"],
        &[],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    for again in ["dump[alpha]", "check[alpha]", "summary"] {
        assert_eq!(report_step(&report, again)["reused"], false, "{again}");
    }
    for kept in ["dump[beta]", "check[beta]"] {
        assert_eq!(report_step(&report, kept)["reused"], true, "{kept}");
    }
    // An unknown item is refused before anything runs.
    let (ran, _) = run_book(
        &t,
        &["-p", "databases=alpha,beta", "--only", "dump[gamma]"],
        &[],
    );
    assert_eq!(ran.code, 2, "{}", ran.stderr);
}

/// `PostgreSQL` containers on the two test engines, removed when dropped.
struct Fleet(Vec<(String, String)>);

impl Drop for Fleet {
    fn drop(&mut self) {
        for (host, name) in &self.0 {
            let _ = docker(host, &["rm", "-f", "-v", name]);
        }
    }
}

fn wait_pg(host: &str, name: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let args = [
        "exec",
        "-e",
        "PGPASSWORD=pw",
        "-u",
        "postgres",
        name,
        "psql",
        "-h",
        "127.0.0.1",
        "-tAc",
        "select 1",
    ];
    while !docker(host, &args).status.success() {
        assert!(
            std::time::Instant::now() < deadline,
            "{name} never answered"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// `psql -c SQL` as postgres in a container.
fn psql(host: &str, name: &str, sql: &str) {
    let out = docker(
        host,
        &[
            "exec",
            "-e",
            "PGPASSWORD=pw",
            "-u",
            "postgres",
            name,
            "psql",
            "-h",
            "127.0.0.1",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ],
    );
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Four databases on the two test engines (`billing`, `crm` on the first, `shop`, `hr` on
/// the second), each in its own `PostgreSQL` container; `shop`'s database is not created.
/// Returns the containers and the params file for `runbooks/backup/fleet.yaml`.
fn four_databases(backups: &std::path::Path) -> (Fleet, String) {
    let engines = [
        engine1(),
        var("RB_TEST_DOCKER2_HOST", "unix:///var/run/docker-rb2.sock"),
    ];
    let image = pg_image();
    let pid = std::process::id();
    let mut fleet = Fleet(Vec::new());
    let mut params = format!(
        "primary: \"{}\"\nsecondary: \"{}\"\nbackup_root: \"{}\"\ndatabases:\n",
        engines[0],
        engines[1],
        backups.display()
    );
    for (k, db) in ["billing", "shop", "crm", "hr"].iter().enumerate() {
        let (host, engine) = if k % 2 == 0 {
            ("primary", &engines[0])
        } else {
            ("secondary", &engines[1])
        };
        let name = format!("rbt-{pid}-fleet-{db}");
        fleet.0.push((engine.clone(), name.clone()));
        let out = docker(
            engine,
            &[
                "run",
                "-d",
                "--name",
                &name,
                "-e",
                "POSTGRES_PASSWORD=pw",
                &image,
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        writeln!(
            params,
            "  - {{ name: {db}, host: {host}, container: {name}, database: {db}, user: postgres }}"
        )
        .unwrap();
    }
    for (k, (engine, name)) in fleet.0.iter().enumerate() {
        wait_pg(engine, name);
        let db = ["billing", "shop", "crm", "hr"][k];
        if db != "shop" {
            psql(engine, name, &format!("create database {db}"));
        }
    }
    (fleet, params)
}

/// The one dump file (`*.dump.zst`) under `dir`, at any depth, with its bytes and
/// modification time.
fn dump_of(dir: &std::path::Path) -> (std::path::PathBuf, Vec<u8>, std::time::SystemTime) {
    fn walk(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, found);
            } else if p.to_string_lossy().ends_with(".dump.zst") {
                found.push(p);
            }
        }
    }
    let mut found = Vec::new();
    walk(dir, &mut found);
    assert_eq!(found.len(), 1, "{}: {found:?}", dir.display());
    let path = found.remove(0);
    let bytes = std::fs::read(&path).unwrap();
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    (path, bytes, mtime)
}

/// The first night's items other than shop, each backed up (every step succeeded, the dump
/// compressed beside its `SHA256SUMS`, one catalog line, the same bytes off-site): their
/// dumps' bytes and modification times.
fn backed_up(
    report: &serde_json::Value,
    backups: &std::path::Path,
    offsite: &std::path::Path,
) -> Vec<(&'static str, Vec<u8>, std::time::SystemTime)> {
    let mut before = Vec::new();
    for db in ["billing", "crm", "hr"] {
        for step in [
            "dump",
            "roles",
            "verify",
            "checksums",
            "catalog",
            "retention",
            "offsite_dump",
            "offsite_globals",
            "offsite_retention",
        ] {
            assert_eq!(
                status(report, &format!("{step}[{db}]")),
                "succeeded",
                "{step}[{db}]"
            );
        }
        let catalog = std::fs::read_to_string(backups.join(db).join("catalog.jsonl")).unwrap();
        assert_eq!(catalog.lines().count(), 1, "{catalog}");
        let (path, bytes, mtime) = dump_of(&backups.join(db));
        // A custom-format dump, compressed: zstd's magic number.
        assert_eq!(bytes[..4], [0x28, 0xb5, 0x2f, 0xfd], "{}", path.display());
        assert!(path.with_file_name("SHA256SUMS").exists());
        let (_, copy, _) = dump_of(&offsite.join("db").join(db).join("dumps"));
        assert!(copy == bytes, "{db}: the off-site copy differs");
        before.push((db, bytes, mtime));
    }
    before
}

/// The shipped `runbooks/backup/fleet.yaml` over four `PostgreSQL` containers on the two test
/// engines, one of them broken (its database is missing): the others are backed up (dump
/// verified, `SHA256SUMS`, catalog entry), the run fails naming `dump[shop]`; once the database
/// exists, `--resume` backs up only shop and leaves the other dumps as they were.
#[test]
fn the_shipped_fleet_backup_over_two_engines_with_one_broken_database() {
    let t = Test::new().file(
        "rb.yaml",
        std::fs::read_to_string(repo().join("runbooks/backup/fleet.yaml")).unwrap(),
    );
    let backups = t.path("backups");
    let (fleet, params) = four_databases(&backups);
    // Off-site to a directory store (`file://`): each verified dump is copied there.
    let offsite = t.path("offsite");
    let params = format!("{params}store: \"file://{}\"\n", offsite.display());
    std::fs::write(t.path("fleet.params.yaml"), params).unwrap();
    let args = ["--params-file", "fleet.params.yaml", "--jobs", "4"];
    let env = [("PGPASSWORD", "pw")];
    let (ran, report) = run_book(&t, &args, &env);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(ran.stderr.contains("dump[shop]"), "{}", ran.stderr);
    assert_eq!(status(&report, "dump[shop]"), "failed");
    let dump = report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == "dump")
        .unwrap();
    assert_eq!(dump["failed_items"], serde_json::json!(["shop"]), "{dump}");
    assert_eq!(dump["succeeded"], 3, "{dump}");
    assert_eq!(status(&report, "catalog[shop]"), "skipped");
    let before = backed_up(&report, &backups, &offsite);
    assert!(!backups.join("shop").join("catalog.jsonl").exists());
    assert!(!offsite.join("db").join("shop").exists());
    // `rb status` judges each database: shop was never backed up.
    let ran = rb_in(&t, &["status", "--state-dir", "state"], 1);
    assert!(
        ran.stderr
            .contains("item `shop` of `backup-fleet` was never backed up successfully"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stdout.contains("backup-fleet[billing]"),
        "{}",
        ran.stdout
    );

    let (engine, name) = fleet.0[1].clone();
    psql(&engine, &name, "create database shop");
    let resume = [&args[..], &["--resume"]].concat();
    let (ran, report) = run_book(&t, &resume, &env);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    for (db, bytes, mtime) in before {
        for step in ["dump", "verify", "catalog"] {
            assert_eq!(
                report_step(&report, &format!("{step}[{db}]"))["reused"],
                true,
                "{step}[{db}]"
            );
        }
        let (_, now, modified) = dump_of(&backups.join(db));
        assert!(
            now == bytes && modified == mtime,
            "{db}'s dump was written again"
        );
        let catalog = std::fs::read_to_string(backups.join(db).join("catalog.jsonl")).unwrap();
        assert_eq!(catalog.lines().count(), 1, "{catalog}");
    }
    for step in ["dump", "verify", "checksums", "catalog", "offsite_dump"] {
        let id = format!("{step}[shop]");
        assert_eq!(report_step(&report, &id)["reused"], false, "{id}");
        assert_eq!(status(&report, &id), "succeeded", "{id}");
    }
    let (_, bytes, _) = dump_of(&backups.join("shop"));
    assert_eq!(bytes[..4], [0x28, 0xb5, 0x2f, 0xfd]);
    let (_, copy, _) = dump_of(&offsite.join("db").join("shop").join("dumps"));
    assert!(copy == bytes, "shop: the off-site copy differs");
    rb_in(&t, &["status", "--state-dir", "state"], 0);
    assert!(
        report["groups"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["failed"] == 0)
    );
}

#[test]
fn a_runbook_step_runs_a_whole_procedure_per_item() {
    let child = r"version: 1
name: child
params:
  db: { type: string, required: true }
steps:
  - id: hello
    type: exec
    shell: 'echo {{ params.db }} > {{ params.db }}.out'
";
    let text = r"version: 1
name: parent
steps:
  - id: each
    for_each: [{ name: a, n: 1 }, { name: b, n: 2 }]
    type: runbook
    file: child.yaml
    params: { db: '{{ item.name }}{{ item.n }}' }
";
    let t = Test::new().file("rb.yaml", text).file("child.yaml", child);
    let ran = rb_in(&t, &["plan", "rb.yaml"], 0);
    assert!(
        ran.stdout.contains("each[b]/hello (exec)"),
        "{}",
        ran.stdout
    );
    let (ran, report) = run_book(&t, &[], &[]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(status(&report, "each[a]"), "succeeded");
    assert_eq!(std::fs::read_to_string(t.path("a1.out")).unwrap(), "a1\n");
    assert_eq!(std::fs::read_to_string(t.path("b2.out")).unwrap(), "b2\n");
}

#[test]
fn a_plan_without_the_list_param_says_which_param_to_give() {
    let text = FLEET.replace(
        "{ type: list, default: [billing, shop, crm] }",
        "{ type: list, required: true }",
    );
    let t = Test::new().file("rb.yaml", text);
    let ran = rb_in(&t, &["plan", "rb.yaml"], 2);
    assert!(
        ran.stderr.contains("the param `databases` has no value"),
        "{}",
        ran.stderr
    );
    let ran = rb_in(&t, &["plan", "rb.yaml", "-p", "databases=x,y"], 0);
    assert!(ran.stdout.contains("check[y] (exec)"), "{}", ran.stdout);
}

/// A step of a fixed fleet journal: id, needs, outcome, start (seconds after the run's
/// start), duration in seconds.
type Fixed<'a> = (&'a str, &'a [&'a str], &'a str, u32, u32);

/// A fixed journal of `backup-fleet` (RPO 24h) in `state`: run `id` started at `start`.
fn fleet_journal(state: &std::path::Path, id: &str, start: &str, steps: &[Fixed]) {
    let t0: chrono::DateTime<chrono::Utc> = start.parse().unwrap();
    let at = |s: u32| {
        (t0 + chrono::Duration::seconds(i64::from(s)))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let graph: Vec<_> = steps
        .iter()
        .map(|(id, needs, ..)| serde_json::json!({ "id": id, "needs": needs }))
        .collect();
    let mut lines = vec![serde_json::json!({
        "at": start, "event": "run_started", "version": 1, "run_id": id,
        "runbook": "backup-fleet", "file": "runbooks/backup/fleet.yaml",
        "file_sha256": "0123456789abcdef0123", "now": start, "params": {}, "vars": {},
        "secrets": [], "rto_seconds": 7200.0, "rpo_seconds": 86400.0, "resumed": false,
        "pid": 42, "steps": graph
    })];
    let mut end = 0_u32;
    for &(step, _, outcome, from, secs) in steps {
        if outcome != "skipped" {
            lines.push(serde_json::json!({ "at": at(from), "event": "step_started",
                "step": step, "type": "exec", "attempt": 1, "fingerprint": "fp" }));
        }
        let mut done = serde_json::json!({ "at": at(from + secs), "event": "step_finished",
            "step": step, "outcome": outcome, "attempts": u32::from(outcome != "skipped"),
            "duration_seconds": f64::from(secs), "fingerprint": "fp" });
        match outcome {
            "failed" => done["error"] = "exit status 1: database \"a\" does not exist".into(),
            "skipped" => done["reason"] = "a need failed".into(),
            _ => {}
        }
        lines.push(done);
        end = end.max(from + secs);
    }
    let failed = steps.iter().any(|s| s.2 == "failed");
    lines.push(serde_json::json!({ "at": at(end), "event": "run_finished",
        "outcome": if failed { "failed" } else { "succeeded" }, "duration_seconds": f64::from(end),
        "gate_wait_seconds": 0.0 }));
    let dir = state.join("runs").join(id);
    std::fs::create_dir_all(&dir).unwrap();
    let text: Vec<String> = lines.iter().map(ToString::to_string).collect();
    std::fs::write(dir.join("journal.jsonl"), text.join("\n") + "\n").unwrap();
}

const DAY1: &str = "20261125T020000Z-0001";
const DAY2: &str = "20261126T020000Z-0002";

/// Two nights of a three-database fleet: on the first every item is backed up; on the
/// second `a` fails, and `c` has the slowest dump but `b` the longest chain (5 s dump, 100 s
/// verify).
fn two_nights() -> Test {
    let t = Test::new();
    let state = t.path("state");
    fleet_journal(
        &state,
        DAY1,
        "2026-11-25T02:00:00Z",
        &[
            ("dump[a]", &[], "succeeded", 0, 10),
            ("dump[b]", &[], "succeeded", 0, 10),
            ("dump[c]", &[], "succeeded", 0, 10),
            ("verify[a]", &["dump[a]"], "succeeded", 10, 30),
            ("verify[b]", &["dump[b]"], "succeeded", 10, 20),
            ("verify[c]", &["dump[c]"], "succeeded", 10, 20),
        ],
    );
    fleet_journal(
        &state,
        DAY2,
        "2026-11-26T02:00:00Z",
        &[
            ("dump[a]", &[], "failed", 0, 3),
            ("dump[b]", &[], "succeeded", 0, 5),
            ("dump[c]", &[], "succeeded", 0, 60),
            ("verify[a]", &["dump[a]"], "skipped", 3, 0),
            ("verify[b]", &["dump[b]"], "succeeded", 5, 100),
            ("verify[c]", &["dump[c]"], "succeeded", 60, 10),
        ],
    );
    t
}

fn rb_state(t: &Test, args: &[&str], code: i32) -> Ran {
    let state = t.path("state");
    Test::new()
        .cwd(t.dir.path())
        .args(args)
        .args(["--state-dir", state.to_str().unwrap()])
        .expect(code)
}

#[test]
fn every_report_format_shows_the_groups_and_the_slowest_item_by_its_chain() {
    let t = two_nights();
    let json = rb_state(&t, &["report", DAY2, "--format", "json"], 0).stdout;
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        report["groups"][0],
        serde_json::json!({"group": "dump", "items": 3, "succeeded": 2, "failed": 1,
            "skipped": 0, "cancelled": 0, "failed_items": ["a"],
            "slowest_item": "b", "slowest_item_seconds": 105.0})
    );
    assert_eq!(report["groups"][1]["slowest_item"], "b");
    let text = rb_state(&t, &["report", DAY2, "--format", "text"], 0).stdout;
    assert!(
        text.contains(
            "group dump: 3 items, 2 succeeded, 1 failed (a), 0 skipped; slowest: b (1m 45s)"
        ),
        "{text}"
    );
    let markdown = rb_state(&t, &["report", DAY2, "--format", "markdown"], 0).stdout;
    let table = &markdown[markdown.find("## Groups").expect(&markdown)..];
    insta::assert_snapshot!(
        "fleet-report-groups-markdown",
        &table[..table.find("\n\n#").unwrap_or(table.len())]
    );
    let html = rb_state(&t, &["report", DAY2, "--format", "html"], 0).stdout;
    let table = &html[html.find("<h2>Groups").expect(&html)..];
    insta::assert_snapshot!(
        "fleet-report-groups-html",
        &table[..=table.find("</table>").unwrap() + 7]
    );
}

#[test]
fn status_checks_the_rpo_of_each_item_of_a_fleet() {
    let t = two_nights();
    // a's newest backup is the first night's (02:00:40); b's and c's the second's.
    let ok = rb_state(&t, &["status", "--now", "2026-11-26T02:00:30Z"], 0);
    assert!(ok.stdout.contains("backup-fleet[a]"), "{}", ok.stdout);
    let late = rb_state(&t, &["status", "--now", "2026-11-26T03:00:00Z"], 1);
    insta::assert_snapshot!("fleet-status", late.stdout);
    assert!(
        late.stderr.contains(
            "item `a` of `backup-fleet`: its newest successful backup is 24h 59m 20s old, over the RPO of 24h 00m 00s"
        ),
        "{}",
        late.stderr
    );
    let line = |name: &str| {
        late.stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name}: {}", late.stdout))
            .to_owned()
    };
    assert!(line("backup-fleet[a]").ends_with("RPO VIOLATED"));
    assert!(line("backup-fleet[b]").ends_with("ok"));
    assert!(line("backup-fleet[c]").ends_with("ok"));
    assert!(line("backup-fleet").ends_with("RPO VIOLATED"));
}

#[test]
fn the_shipped_fleet_runbook_validates_and_plans_with_its_example_params() {
    let book = "runbooks/backup/fleet.yaml";
    Test::new().cwd(&repo()).args(["validate", book]).expect(0);
    let ran = Test::new()
        .cwd(&repo())
        .args([
            "plan",
            book,
            "--params-file",
            "runbooks/backup/fleet.params.example.yaml",
            "--format",
            "json",
        ])
        .expect(0);
    let plan: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    let dump = plan["for_each"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == "dump")
        .unwrap();
    assert_eq!(
        dump["items"],
        serde_json::json!(["billing", "shop", "crm", "hr"])
    );
    // Every item's chain has the same estimates: the first is the slowest, and its chain is
    // the critical path.
    assert_eq!(dump["slowest_item"], "billing");
    assert_eq!(dump["slowest_item_seconds"], plan["critical_path_seconds"]);
    let step = |id: &str| report_step(&plan, id).clone();
    assert_eq!(step("dump[shop]")["config"]["host"], "secondary");
    assert_eq!(
        step("dump[hr]")["config"]["command"][4],
        "postgres",
        "`user` defaults to postgres"
    );
    // The second engine's endpoint comes from the params file: not local.
    assert_eq!(
        step("dump[shop]")["config"]["transport"],
        "auto (engine: `tcp://db2.internal:2376` is not local)"
    );
    let ran = Test::new()
        .cwd(&repo())
        .args([
            "plan",
            book,
            "--params-file",
            "runbooks/backup/fleet.params.example.yaml",
            "--format",
            "markdown",
        ])
        .expect(0);
    assert!(
        ran.stdout
            .contains("| `dump` | 4: `billing`, `shop`, `crm`, `hr` | `billing` (30m 14s) |"),
        "{}",
        ran.stdout
    );
    // Without the list, the plan says which param to give.
    let ran = Test::new().cwd(&repo()).args(["plan", book]).expect(2);
    assert!(
        ran.stderr.contains("the param `databases` has no value"),
        "{}",
        ran.stderr
    );
}
