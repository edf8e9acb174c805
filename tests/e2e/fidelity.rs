//! Fidelity: a feature-rich database (`fidelity.sql`: roles with passwords and memberships,
//! database-level settings and grants, extensions, partitions, RLS, large objects, awkward
//! values…) goes through the shipped runbooks and comes back whole, compared by fingerprints
//! of everything a restore must bring back.

use super::{Env, Stack, backup, expect_code, output_text, rb, report_of, run_args};
use crate::pg::{DB, USER, docker, docker_ok, password, pg_image, psql_ok, psql_with, start_pg};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Instant;

/// The schema and data; `PW` stands for the test's password prefix.
const SCHEMA: &str = include_str!("fidelity.sql");

/// The login roles of `fidelity.sql` and the suffix of their passwords.
const LOGINS: [(&str, &str); 5] = [
    ("Ops Team", "ops"),
    ("alice", "alice"),
    ("bob", "bob"),
    ("mallory", "mallory"),
    ("reporting", "reporting"),
];

/// The tables the restores count (schema-qualified, a materialized view among them).
const TABLES: &str =
    "app.accounts app.awkward app.events_2024 reporting.daily_totals audit.ddl_log";

/// Builds the feature-rich database in `pg`, roles and database settings included (a
/// physical backup carries them with the cluster, a dump does not): the script is copied into the container and run
/// by `\i`, statement by statement (an enum value added is used by a later statement).
pub fn build(pg: &str, pw: &str) {
    let mut copy = Command::new("docker")
        .args(["exec", "-i", pg, "sh", "-c", "cat > /tmp/fidelity.sql"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("docker exec");
    copy.stdin
        .take()
        .expect("stdin")
        .write_all(SCHEMA.replace("PW", pw).as_bytes())
        .expect("script written");
    assert!(copy.wait().expect("copied").success());
    psql_ok(pg, pw, DB, "\\i /tmp/fidelity.sql");
}

/// `sql` as the bootstrap superuser (RLS does not hide rows from it), in UTC.
fn query(pg: &str, pw: &str, sql: &str) -> String {
    let out = psql_with(pg, pw, DB, sql, "-c timezone=UTC");
    assert!(
        out.status.success(),
        "psql `{sql}`: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Each part of what a restore must bring back, by name.
pub type Fingerprint = BTreeMap<&'static str, String>;

/// What is compared, each part a query over the catalogs or the data.
const PARTS: [(&str, &str); 9] = [
    (
        "tables",
        "select string_agg(r, E'\\n' order by r) from (
           select format('%s %s', c.oid::regclass, (xpath('/row/h/text()', query_to_xml(format(
             'select count(*) || '' '' || md5(coalesce(string_agg(x::text, E''\\n'' order by x::text), '''')) as h from %s x',
             c.oid::regclass), false, true, '')))[1]) r
           from pg_class c join pg_namespace n on n.oid = c.relnamespace
           where c.relkind in ('r', 'm') and n.nspname <> 'information_schema' and n.nspname !~ '^pg_') s",
    ),
    (
        "sequences",
        "select string_agg(format('%s.%s last=%s start=%s increment=%s', schemaname, sequencename, last_value, start_value, increment_by), E'\\n' order by schemaname, sequencename) from pg_sequences",
    ),
    (
        "large objects",
        "select string_agg(format('%s owner=%s acl=%s md5=%s', m.oid, pg_get_userbyid(m.lomowner), m.lomacl,
           (select md5(string_agg(data, ''::bytea order by pageno)) from pg_largeobject l where l.loid = m.oid)), E'\\n' order by m.oid)
         from pg_largeobject_metadata m",
    ),
    (
        "roles",
        "select string_agg(format('%s super=%s inherit=%s createrole=%s createdb=%s login=%s replication=%s bypassrls=%s connlimit=%s valid=%s password=%s comment=%s',
           quote_ident(rolname), rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolbypassrls, rolconnlimit, rolvaliduntil,
           case when rolname = current_user then 'connecting user' else coalesce(md5(rolpassword), 'none') end,
           shobj_description(oid, 'pg_authid')), E'\\n' order by rolname)
         from pg_authid where rolname !~ '^pg_'",
    ),
    (
        "memberships",
        "select string_agg(r, E'\\n' order by r) from (
           select format('%s in %s admin=%s by %s', member::regrole, roleid::regrole, admin_option, grantor::regrole) r from pg_auth_members) s",
    ),
    (
        "role settings",
        "select string_agg(r, E'\\n' order by r) from (
           select format('%s/%s %s', coalesce(d.datname, '*'), coalesce(quote_ident(a.rolname), '*'), s.setconfig) r
           from pg_db_role_setting s left join pg_database d on d.oid = s.setdatabase left join pg_roles a on a.oid = s.setrole) s",
    ),
    (
        "database",
        "select format('owner=%s acl=%s comment=%s encoding=%s collate=%s ctype=%s provider=%s icu=%s connlimit=%s allowconn=%s',
           pg_get_userbyid(datdba), (select string_agg(a::text, ',' order by a::text) from unnest(datacl) a),
           shobj_description(oid, 'pg_database'), pg_encoding_to_char(encoding), datcollate, datctype, datlocprovider,
           daticulocale, datconnlimit, datallowconn)
         from pg_database where datname = current_database()",
    ),
    (
        "extensions",
        "select string_agg(format('%s %s %s', extname, extversion, extnamespace::regnamespace), E'\\n' order by extname) from pg_extension",
    ),
    (
        "event triggers",
        "select string_agg(format('%s %s %s %s', evtname, evtevent, evtfoid::regproc, evtenabled), E'\\n' order by evtname) from pg_event_trigger",
    ),
];

/// Everything a restore must bring back, by part: the catalog queries above, the normalised
/// `pg_dump --schema-only --create` (owners, grants, comments, RLS, triggers, partitions,
/// default privileges, the database's settings and per-database role settings), and a real
/// password login of each login role (`mallory` has no CONNECT).
pub fn fingerprint(pg: &str, pw: &str) -> Fingerprint {
    let mut parts: BTreeMap<&str, String> = PARTS
        .iter()
        .map(|(name, sql)| (*name, query(pg, pw, sql)))
        .collect();
    let schema = docker_ok(&[
        "exec",
        "-e",
        &format!("PGPASSWORD={pw}"),
        pg,
        "pg_dump",
        "-h",
        "127.0.0.1",
        "-U",
        USER,
        "-d",
        DB,
        "--schema-only",
        "--create",
    ]);
    let schema: Vec<&str> = schema
        .lines()
        .filter(|l| {
            !(l.is_empty()
                || l.starts_with("--")
                || l.starts_with("\\restrict")
                || l.starts_with("\\unrestrict"))
        })
        .collect();
    parts.insert("schema", schema.join("\n"));
    parts.insert("logins", logins(pg, pw));
    parts
}

/// `role: current_user` or the server's refusal, for each login role with its own password.
fn logins(pg: &str, pw: &str) -> String {
    LOGINS
        .iter()
        .map(|(role, suffix)| {
            let said = login(pg, role, &format!("{pw}-{suffix}"), "select current_user")
                .unwrap_or_else(|e| e.split("FATAL:").nth(1).unwrap_or(&e).trim().to_owned());
            format!("{role}: {said}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `sql` run by `role` logged in with `password` over TCP: its output, or the error.
fn login(pg: &str, role: &str, password: &str, sql: &str) -> Result<String, String> {
    let out = docker(&[
        "exec",
        "-e",
        &format!("PGPASSWORD={password}"),
        pg,
        "psql",
        "-X",
        "-h",
        "127.0.0.1",
        "-U",
        role,
        "-d",
        DB,
        "-Atc",
        sql,
    ]);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Changes to the roles and the database's own properties (for a point-in-time recovery:
/// made after the base backup, they come back only by WAL replay). Returns the fingerprint
/// after them.
pub fn change_the_cluster(pg: &str, pw: &str) -> Fingerprint {
    psql_ok(
        pg,
        pw,
        DB,
        &format!(
            "create role late login password '{pw}-late' in role app_readers;
             alter database codexos_db set work_mem = '3MB';
             alter role bob in database codexos_db set work_mem = '2MB';
             comment on database codexos_db is 'changed after the base backup'"
        ),
    );
    fingerprint(pg, pw)
}

/// After a point-in-time recovery: everything as it was at the target, and the role made by
/// `change_the_cluster` logs in and gets the database's setting.
pub fn assert_the_cluster_came_back(restored: &str, pw: &str, at_target: &Fingerprint) {
    assert_same(
        "point-in-time recovery",
        at_target,
        &fingerprint(restored, pw),
    );
    assert_eq!(
        login(restored, "late", &format!("{pw}-late"), "show work_mem"),
        Ok("3MB".to_owned()),
        "a role made after the base backup logs in, with the database's setting"
    );
}

/// Asserts each part equal, naming the parts that differ and their first differing lines.
pub fn assert_same(what: &str, before: &Fingerprint, after: &Fingerprint) {
    let mut diffs = Vec::new();
    for (part, b) in before {
        let a = &after[part];
        if a != b {
            let first = b.lines().zip(a.lines()).find(|(x, y)| x != y).map_or_else(
                || {
                    format!(
                        "{} lines before, {} after",
                        b.lines().count(),
                        a.lines().count()
                    )
                },
                |(x, y)| format!("before: {x}\n    after:  {y}"),
            );
            diffs.push(format!("  {part}:\n    {first}"));
        }
    }
    assert!(
        diffs.is_empty(),
        "{what}: parts differ:\n{}",
        diffs.join("\n")
    );
}

/// Facts of the freshly built database, so that a fingerprint that compares nothing fails.
fn assert_meaningful(f: &Fingerprint) {
    assert!(f["tables"].lines().count() >= 10, "{}", f["tables"]);
    assert!(f["extensions"].lines().count() >= 8, "{}", f["extensions"]);
    for (part, fact) in [
        ("logins", "alice: alice"),
        ("logins", "Ops Team: Ops Team"),
        ("logins", "mallory: permission denied for database"),
        ("database", "comment=CodexOS"),
        ("role settings", "codexos_db/bob {"),
        ("large objects", "424242 owner=alice"),
        (
            "schema",
            "ALTER DATABASE codexos_db SET \"TimeZone\" TO 'Asia/Kathmandu';",
        ),
    ] {
        assert!(f[part].contains(fact), "{part} has {fact}: {}", f[part]);
    }
}

/// User tables and materialized views not analyzed by hand (autovacuum's own analyze does not
/// count: it may or may not have run).
fn not_analyzed(pg: &str, pw: &str) -> String {
    query(
        pg,
        pw,
        "select coalesce(string_agg(s.relid::regclass::text, ' ' order by 1), '') from pg_stat_user_tables s
         join pg_class c on c.oid = s.relid where c.relkind in ('r', 'm') and s.last_analyze is null",
    )
    .trim()
    .to_owned()
}

/// The captured stderr of step `id` in a JSON report.
fn step_stderr(report: &serde_json::Value, id: &str) -> String {
    let steps = report["steps"].as_array().expect("steps");
    let step = steps
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no step {id} in {steps:#?}"));
    step["outputs"]["stderr"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

/// Every file under `dir` (recursively) is for its owner only.
fn assert_private(dir: &Path) {
    for e in walkdir::WalkDir::new(dir).min_depth(1) {
        let e = e.expect("walk");
        if e.file_type().is_file() {
            assert_eq!(mode(e.path()), 0o600, "{} is 0600", e.path().display());
        }
    }
}

/// The backup files: named after the database, the roles with their password hashes, every
/// file (and the catalog) 0600.
fn assert_backup_files(env: &Env, dump: &Path) {
    let name = dump.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("codexos_db_"),
        "named after the database: {name}"
    );
    assert_private(&env.path("backups"));
    let stamp = name
        .trim_start_matches("codexos_db_")
        .trim_end_matches(".dump.zst");
    let globals = std::fs::read_to_string(dump.with_file_name(format!("globals_{stamp}.sql")))
        .expect("the roles beside the dump");
    assert!(
        globals.contains("ALTER ROLE alice WITH") && globals.contains("PASSWORD 'SCRAM-SHA-256$"),
        "password hashes are kept"
    );
}

/// `rb run FILE` with `params` and `extra`, as the operator runs it.
fn run(env: &Env, pw: &str, file: &str, params: &[String], extra: &[&str]) -> Output {
    rb(env, pw, &run_args(file, params, extra))
}

/// `restore/database.yaml` from the newest backup into `pg`, approved, without the
/// application, checking the row counts of `tables`.
fn restore(env: &Env, pw: &str, pg: &str, tables: &str) -> Output {
    let ps = [
        format!("container={pg}"),
        format!("backup_root={}", env.path("backups").display()),
        "manage_app=false".to_owned(),
        format!("tables={tables}"),
    ];
    let approve = ["--approve", "approve_drop"];
    run(env, pw, "runbooks/restore/database.yaml", &ps, &approve)
}

/// A table missing from the backup fails the restore before anything is touched.
fn a_missing_table_is_refused_first(env: &Env, pw: &str, pg: &str) {
    let out = restore(env, pw, pg, "app.accounts app.nosuch");
    expect_code(&out, 1);
    let text = output_text(&out);
    assert!(
        text.contains("table app.nosuch is not in the backup"),
        "{text}"
    );
    assert!(
        !env.path("backups/pre_recovery").exists(),
        "nothing was dumped or dropped"
    );
}

/// (a) Into the same server, after damage to the data, the database's own properties and the
/// roles: one role dropped (created again), one changed (reported, kept as it is). Returns the
/// restore's duration.
fn restore_into_the_same_server(env: &Env, pw: &str, pg: &str, before: &Fingerprint) -> f64 {
    let damage = "drop materialized view reporting.daily_totals; drop table app.awkward;
         delete from app.accounts where id % 2 = 0; select setval('app.event_ids', 1); select lo_unlink(424243);
         alter database codexos_db reset all; grant connect, temporary on database codexos_db to public;
         comment on database codexos_db is null; alter role bob in database codexos_db reset all;
         drop role \"Ops Team\"; alter role reporting connection limit 9";
    psql_ok(pg, pw, DB, damage);
    assert_ne!(&fingerprint(pg, pw), before);
    let t = Instant::now();
    let out = restore(env, pw, pg, TABLES);
    expect_code(&out, 0);
    let secs = t.elapsed().as_secs_f64();
    let said = step_stderr(&report_of(env, &out), "roles/apply");
    assert!(
        said.contains("role reporting differs from the backup (connection limit): kept as it is"),
        "the changed role is reported: {said}"
    );
    assert!(
        said.contains("roles created: 1 (\"Ops Team\"); memberships granted: 1;"),
        "{said}"
    );
    let limit = "select rolconnlimit from pg_roles where rolname = 'reporting'";
    assert_eq!(
        query(pg, pw, limit).trim(),
        "9",
        "not changed by the restore"
    );
    psql_ok(pg, pw, DB, "alter role reporting connection limit 5");
    assert_same("restore into the same server", before, &fingerprint(pg, pw));
    assert_eq!(
        not_analyzed(pg, pw),
        "",
        "statistics rebuilt by the restore"
    );
    secs
}

/// (b) Disaster recovery onto a fresh container and volume. Returns its duration.
fn disaster_recovery(env: &Env, pw: &str, stack: &Stack, before: &Fingerprint) -> f64 {
    docker_ok(&["rm", "-f", "-v", &stack.pg]);
    let t = Instant::now();
    let mut ps = stack.params(env);
    ps.push(format!("tables={TABLES}"));
    let approve = ["--approve", "restore/approve_drop"];
    let out = run(env, pw, "runbooks/disaster-recovery.yaml", &ps, &approve);
    expect_code(&out, 0);
    let secs = t.elapsed().as_secs_f64();
    assert_same("disaster recovery", before, &fingerprint(&stack.pg, pw));
    assert_eq!(
        not_analyzed(&stack.pg, pw),
        "",
        "statistics rebuilt by the recovery"
    );
    secs
}

#[test]
fn restores_bring_back_the_whole_database() {
    let started = Instant::now();
    let mut env = Env::new("fid");
    let pw = password("fid");
    let stack = Stack::new(&mut env);
    let scratch = env.name("scratch");
    let pg = stack.pg.clone();
    start_pg(&pg, &pw);
    build(&pg, &pw);
    let before = fingerprint(&pg, &pw);
    assert_meaningful(&before);

    let dump = backup(&env, &pw, &pg);
    assert_backup_files(&env, &dump);

    // The backup-verification drill restores it into a scratch server (roles first) and
    // finds the same content as the live database.
    let drill = [
        format!("live={pg}"),
        format!("scratch={scratch}"),
        format!("image={}", pg_image()),
        format!("backup_root={}", env.path("backups").display()),
        format!("tables={TABLES}"),
    ];
    let out = run(
        &env,
        &pw,
        "runbooks/drills/backup-verification.yaml",
        &drill,
        &[],
    );
    expect_code(&out, 0);

    a_missing_table_is_refused_first(&env, &pw, &pg);
    let restore_secs = restore_into_the_same_server(&env, &pw, &pg, &before);
    assert_private(&env.path("backups"));
    let dr_secs = disaster_recovery(&env, &pw, &stack, &before);
    assert_private(&env.path("backups"));

    eprintln!(
        "fidelity: {} parts, {} schema lines, {} tables, {} roles compared; restore {restore_secs:.1}s, \
         disaster recovery {dr_secs:.1}s, test {:.1}s",
        before.len(),
        before["schema"].lines().count(),
        before["tables"].lines().count(),
        before["roles"].lines().count(),
        started.elapsed().as_secs_f64()
    );
}
