//! The systemd units of `contrib/systemd` (docs/scheduling.md): each passes `systemd-analyze
//! verify` as the instances the docs enable (their `man:` pages those `rb man` writes), each timer starts a shipped service, the runbooks
//! the docs schedule exist, the services' command lines are ones rb runs, and the Prometheus
//! rules of `contrib/prometheus` are the documented ones and pass `promtool check rules`.

use crate::support::{RB, Test, repo};
use std::path::{Path, PathBuf};
use std::process::Command;

const UNITS: &str = "contrib/systemd";
/// Where the units expect rb (rewritten to the binary under test: verify checks it exists).
const INSTALLED: &str = "/usr/local/bin/rb";

fn unit_text(name: &str) -> String {
    std::fs::read_to_string(repo().join(UNITS).join(name))
        .unwrap_or_else(|e| panic!("{UNITS}/{name}: {e}"))
}

fn shipped() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo().join(UNITS))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| {
            let ext = Path::new(n).extension().and_then(|e| e.to_str());
            matches!(ext, Some("service" | "timer"))
        })
        .collect();
    names.sort();
    names
}

/// The values of `key=` in a unit.
fn values(text: &str, key: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_owned)
        .collect()
}

/// The timer instances docs/scheduling.md enables: `rb-daily@backup-database.timer`, … (the
/// escaped form, as `systemctl` takes it).
fn documented_timers() -> Vec<String> {
    let doc = std::fs::read_to_string(repo().join("docs/scheduling.md")).unwrap();
    let re = regex::Regex::new(r"(rb-[a-z0-9-]+@[A-Za-z0-9\\_-]+\.timer)").unwrap();
    let mut out: Vec<String> = re
        .captures_iter(&doc)
        .map(|c| c[1].to_owned())
        .filter(|t| !t.contains("@.timer"))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `systemd-unescape`'s `%I` of an instance: `-` is `/`, `\x2d` is `-`.
fn unescape(instance: &str) -> String {
    instance.replace('-', "/").replace("\\x2d", "-")
}

fn instance_of(unit: &str) -> &str {
    let at = unit.find('@').unwrap();
    &unit[at + 1..unit.rfind('.').unwrap()]
}

/// Every shipped unit, as the instances the docs enable (and the alarm raised by each
/// service), in a directory with rb's path pointing at the binary under test.
fn instantiate(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut write = |name: &str, template: &str| {
        let text = unit_text(template).replace(INSTALLED, RB);
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        files.push(path);
    };
    let timers = documented_timers();
    assert!(
        timers.len() >= 3,
        "daily, every-5min and weekly timers in the docs: {timers:?}"
    );
    let mut services = vec!["rb-status.service".to_owned()];
    for timer in &timers {
        let template = timer.replace(&format!("@{}.", instance_of(timer)), "@.");
        write(timer, &template);
        services.push(format!("rb@{}.service", instance_of(timer)));
    }
    for service in &services {
        if service.starts_with("rb@") {
            write(service, "rb@.service");
        }
        write(&format!("rb-alarm@{service}.service"), "rb-alarm@.service");
    }
    write("rb-status.service", "rb-status.service");
    write("rb-status.timer", "rb-status.timer");
    files
}

#[test]
fn the_shipped_units_pass_systemd_analyze_verify_as_the_docs_enable_them() {
    let t = Test::new();
    let files = instantiate(t.dir.path());
    // `Documentation=man:rb(1)`: verify asks man(1) for each page, here the ones `rb man`
    // writes.
    Test::new()
        .args(["man", "--dir", t.path("man/man1").to_str().unwrap()])
        .expect(0);
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&files)
        .env("MANPATH", t.path("man"))
        .output()
        .unwrap_or_else(|e| {
            panic!("systemd-analyze is needed (Debian: apt-get install -y systemd): {e}")
        });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // An unknown key or a bad value is only a warning to systemd: none is allowed here.
    assert!(
        stderr.trim().is_empty(),
        "systemd-analyze verify warns:\n{stderr}"
    );
    // The check is real: a unit whose command does not exist fails it.
    let broken = t.path("rb-status.service");
    let text = std::fs::read_to_string(&broken).unwrap();
    std::fs::write(&broken, text.replace(RB, "/nonexistent/rb")).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&broken)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn each_timer_starts_a_shipped_service_and_each_scheduled_runbook_exists() {
    let units = shipped();
    for name in units
        .iter()
        .filter(|n| Path::new(n).extension().is_some_and(|e| e == "timer"))
    {
        let text = unit_text(name);
        let unit = values(&text, "Unit")
            .pop()
            .unwrap_or_else(|| name.replace(".timer", ".service"));
        let template = unit.replace("%i", "");
        assert!(
            units.contains(&template),
            "{name} starts `{unit}`, not shipped"
        );
        assert_eq!(values(&text, "WantedBy"), ["timers.target"], "{name}");
    }
    for timer in documented_timers() {
        let runbook = unescape(instance_of(&timer));
        let path = repo().join("runbooks").join(format!("{runbook}.yaml"));
        assert!(
            path.is_file(),
            "{timer} runs {}, which does not exist",
            path.display()
        );
    }
    // What the timers run and when: a daily backup, WAL shipping every 5 minutes, a weekly
    // drill, the hourly RPO check.
    let when = |name: &str| values(&unit_text(name), "OnCalendar");
    assert_eq!(when("rb-daily@.timer"), ["*-*-* 02:00:00"]);
    assert_eq!(when("rb-every-5min@.timer"), ["*:0/5"]);
    assert_eq!(when("rb-weekly@.timer"), ["Sun *-*-* 04:30:00"]);
    assert_eq!(when("rb-status.timer"), ["hourly"]);
    for service in ["rb@.service", "rb-status.service"] {
        assert_eq!(
            values(&unit_text(service), "OnFailure"),
            ["rb-alarm@%n.service"],
            "{service} raises the alarm when it fails"
        );
    }
}

/// The `ExecStart=` of a shipped service with the machine's paths replaced by the test's.
fn exec_start(service: &str, t: &Test) -> Vec<String> {
    let line = values(&unit_text(service), "ExecStart").pop().unwrap();
    line.replace(INSTALLED, RB)
        .replace(
            "/etc/rb/runbooks/%I.yaml",
            &t.path("rb.yaml").display().to_string(),
        )
        .replace("/var/lib/rb", &t.path("state").display().to_string())
        .replace(
            "/var/lib/prometheus/node-exporter/rb-%i.prom",
            &t.path("rb.prom").display().to_string(),
        )
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Run a unit's command line (`rb …`, from [`exec_start`]) in the test directory.
fn run_unit(argv: &[String], t: &Test) -> (i32, String) {
    assert_eq!(argv[0], RB, "the unit runs rb: {argv:?}");
    let ran = Test::new().cwd(t.dir.path()).args(&argv[1..]).run();
    (ran.code, ran.stdout + &ran.stderr)
}

#[test]
fn the_services_command_lines_run_a_backup_write_its_metrics_and_judge_the_rpo() {
    let t = Test::new().file(
        "rb.yaml",
        "version: 1\nname: nightly\nobjectives: { rpo: 1h }\nsteps:\n  - { id: dump, type: exec, shell: 'true' }\n",
    );
    let status = exec_start("rb-status.service", &t);
    // Before any run: nothing to judge is an alarm too (exit 5, a failure to systemd).
    let (code, text) = run_unit(&status, &t);
    assert_eq!(code, 5, "{text}");
    let run = exec_start("rb@.service", &t);
    assert!(
        !run.iter().any(|a| a.contains('%')),
        "unreplaced specifier: {run:?}"
    );
    let (code, text) = run_unit(&run, &t);
    assert_eq!(code, 0, "{text}");
    let metrics = std::fs::read_to_string(t.path("rb.prom")).unwrap();
    assert!(
        metrics.contains("rb_run_success{runbook=\"nightly\"} 1"),
        "{metrics}"
    );
    let (code, text) = run_unit(&status, &t);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("nightly"), "{text}");
    // A gate stops the run with exit 3, which the service counts as success (the run waits
    // for `--approve`; `notify:` has said so), not as an alarm.
    assert_eq!(
        values(&unit_text("rb@.service"), "SuccessExitStatus"),
        ["3"]
    );
    let t = t.file(
        "rb.yaml",
        "version: 1\nname: gated\nsteps:\n  - { id: ok, type: gate, message: go? }\n",
    );
    let (code, text) = run_unit(&exec_start("rb@.service", &t), &t);
    assert_eq!(code, 3, "{text}");
}

/// The YAML code blocks of `docs/metrics.md`'s `## Alert rules` section, in order.
fn documented_rule_blocks() -> String {
    let doc = std::fs::read_to_string(repo().join("docs/metrics.md")).unwrap();
    let mut rest = &doc[doc.find("## Alert rules").expect("an Alert rules section")..];
    let mut out = String::new();
    while let Some(start) = rest.find("```yaml\n") {
        let body = &rest[start + "```yaml\n".len()..];
        let end = body.find("```").unwrap();
        out.push_str(&body[..end]);
        rest = &body[end..];
    }
    out
}

#[test]
fn the_shipped_alert_rules_are_the_documented_ones_and_promtool_accepts_them() {
    let path = repo().join("contrib/prometheus/rb-alerts.yml");
    let shipped = std::fs::read_to_string(&path).unwrap();
    let mut body = String::new();
    for l in shipped.lines().filter(|l| !l.starts_with('#')) {
        body.push_str(l);
        body.push('\n');
    }
    assert_eq!(
        body,
        documented_rule_blocks(),
        "rules file and docs/metrics.md differ"
    );
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .unwrap_or_else(|e| {
            panic!("promtool is needed for this test (Debian: apt-get install -y prometheus): {e}")
        });
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("SUCCESS: 4 rules found"), "{text}");
}
