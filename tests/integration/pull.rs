//! `container.run` pulls its image (issue 15, item 1), from the real CNCF distribution
//! registry that tests/env/up runs on 127.0.0.1 (open, and with htpasswd auth), into engine 2.
//! Each test pushes the tools image under a tag of its own and removes it from engine 2
//! first, so the pull is real.

use crate::containers::{docker, docker_ok, engine1, name, tools_image, var};
use crate::support::{self, Ran, Test};
use serde_json::Value;

fn engine2() -> String {
    var("RB_TEST_DOCKER2_HOST", "unix:///var/run/docker-rb2.sock")
}
fn registry() -> String {
    var("RB_TEST_REGISTRY", "127.0.0.1:5501")
}
fn registry_auth() -> String {
    var("RB_TEST_REGISTRY_AUTH", "127.0.0.1:5502")
}
fn registry_user() -> String {
    var("RB_TEST_REGISTRY_USER", "rbtest")
}
fn registry_password() -> String {
    var("RB_TEST_REGISTRY_PASSWORD", "rb-registry-test-pw")
}

/// A repository and tag of this test's own in the registry, holding the tools image, and
/// absent from engine 2; removed from both engines (and its containers) when dropped.
struct Pushed {
    /// `repo:tag` without the registry.
    path: String,
    /// The registry digest the push produced (`sha256:…`).
    digest: String,
    containers: Vec<String>,
}

impl Pushed {
    fn new(tag: &str) -> Self {
        let path = format!("{}/tools:{tag}", name("pull"));
        let reference = format!("{}/{path}", registry());
        // The tools image plus a layer of its own (1 MiB of random bytes): engine 2 has the
        // tools image's layers, this one it must download.
        let builder = name("layer");
        docker_ok(
            &engine1(),
            &[
                "run",
                "--name",
                &builder,
                &tools_image(),
                "sh",
                "-c",
                "head -c 1048576 /dev/urandom > /own-layer",
            ],
        );
        docker_ok(&engine1(), &["commit", &builder, &reference]);
        docker_ok(&engine1(), &["rm", &builder]);
        docker_ok(&engine1(), &["push", "-q", &reference]);
        let digests = docker_ok(
            &engine1(),
            &[
                "image",
                "inspect",
                "-f",
                "{{json .RepoDigests}}",
                &reference,
            ],
        );
        let repo = reference.rsplit_once(':').unwrap().0;
        let digests: Vec<String> = serde_json::from_str(digests.trim()).unwrap();
        let digest = digests
            .iter()
            .find_map(|d| d.strip_prefix(&format!("{repo}@")))
            .unwrap_or_else(|| panic!("no digest of {repo} in {digests:?}"))
            .to_owned();
        let _ = docker(&engine2(), &["rmi", &reference]);
        assert!(!on_engine2(&reference), "{reference} is still on engine 2");
        Self {
            path,
            digest,
            containers: Vec::new(),
        }
    }

    /// The reference through `registry`.
    fn at(&self, registry: &str) -> String {
        format!("{registry}/{}", self.path)
    }

    /// The reference pinned to its digest.
    fn pinned(&self) -> String {
        let repo = self.at(&registry());
        format!("{}@{}", repo.rsplit_once(':').unwrap().0, self.digest)
    }

    fn container(&mut self) -> String {
        let c = name("pulled");
        self.containers.push(c.clone());
        c
    }
}

impl Drop for Pushed {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = docker(&engine2(), &["rm", "-f", c]);
        }
        for r in [
            self.at(&registry()),
            self.at(&registry_auth()),
            self.pinned(),
        ] {
            let _ = docker(&engine1(), &["rmi", &r]);
            let _ = docker(&engine2(), &["rmi", &r]);
        }
    }
}

fn on_engine2(reference: &str) -> bool {
    docker(&engine2(), &["image", "inspect", reference])
        .status
        .success()
}

/// A runbook of one `container.run` on engine 2 with these extra keys, run; the report.
fn run_on_engine2(t: &Test, container: &str, image: &str, extra: &str) -> (Ran, Value) {
    let yaml = format!(
        r#"version: 1
name: pull
hosts:
  two: {{ docker: "{}" }}
secrets:
  registry_password: {{ env: RB_TEST_PULL_PASSWORD }}
  wrong_password: {{ env: RB_TEST_WRONG_PASSWORD }}
steps:
  - {{ id: run, type: container.run, host: two, name: {container}, image: "{image}", command: [sleep, "600"]{extra} }}
"#,
        engine2()
    );
    std::fs::write(t.path("rb.yaml"), yaml).unwrap();
    std::fs::remove_file(t.path("report.json")).ok();
    support::run_book(
        t,
        &[],
        &[
            ("RB_TEST_PULL_PASSWORD", registry_password().as_str()),
            ("RB_TEST_WRONG_PASSWORD", "not-the-password"),
        ],
    )
}

#[test]
fn a_missing_image_is_pulled_and_its_digest_is_an_output_and_in_the_report() {
    let mut p = Pushed::new("missing");
    let image = p.at(&registry());
    let t = Test::new();
    let c = p.container();
    let (ran, report) = run_on_engine2(&t, &c, &image, "");
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(on_engine2(&image), "pulled onto engine 2");
    let out = &support::report_step(&report, "run")["outputs"];
    assert_eq!(out["pulled"], true, "{out}");
    assert_eq!(out["image_digest"], p.digest.as_str(), "{out}");
    assert_eq!(report["images"][0]["digest"], p.digest.as_str());
    // The download was shown as it went (bytes, on a terminal): its own layer at least.
    let progressed = crate::hostile_state::journals(&t)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "step_progressed")
        .filter_map(|e| e["bytes"].as_u64())
        .max();
    assert!(progressed.is_some_and(|b| b >= 1_000_000), "{progressed:?}");
    assert_eq!(report["images"][0]["image"], image.as_str());
    let text = Test::new()
        .cwd(t.dir.path())
        .args(["report", "latest", "--state-dir", "state"])
        .env("RB_STATE_DIR", t.path("state").to_str().unwrap())
        .run();
    assert!(
        text.stdout
            .contains(&format!("image {image} (run): {}, pulled", p.digest)),
        "{}{}",
        text.stdout,
        text.stderr
    );
    // Present now: `missing` (the default) does not pull again; `always` does.
    let c = p.container();
    let (ran, report) = run_on_engine2(&t, &c, &image, "");
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        support::report_step(&report, "run")["outputs"]["pulled"],
        false
    );
    let c = p.container();
    let (ran, report) = run_on_engine2(&t, &c, &image, ", pull: always");
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let out = &support::report_step(&report, "run")["outputs"];
    assert_eq!(out["pulled"], true, "{out}");
    assert_eq!(out["image_digest"], p.digest.as_str(), "{out}");
}

#[test]
fn a_pinned_digest_is_pulled_by_digest_and_the_container_runs_exactly_it() {
    let mut p = Pushed::new("pinned");
    let pinned = p.pinned();
    let t = Test::new();
    let c = p.container();
    let (ran, report) = run_on_engine2(&t, &c, &pinned, "");
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let out = &support::report_step(&report, "run")["outputs"];
    assert_eq!(out["pulled"], true, "{out}");
    assert_eq!(out["image_digest"], p.digest.as_str(), "{out}");
    // The container runs the image of that digest.
    let runs = docker_ok(&engine2(), &["inspect", "-f", "{{.Image}}", &c]);
    let id = docker_ok(&engine2(), &["image", "inspect", "-f", "{{.Id}}", &pinned]);
    assert_eq!(runs.trim(), id.trim());
    // A digest the registry does not have is a clear error, not another image.
    let wrong = format!(
        "{}@sha256:{}",
        pinned.split_once('@').unwrap().0,
        "0".repeat(64)
    );
    let c = p.container();
    let (ran, _) = run_on_engine2(&t, &c, &wrong, "");
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(
        ran.stderr.contains(&format!("cannot pull image `{wrong}`"))
            && ran.stderr.contains("the registry has no such image"),
        "{}",
        ran.stderr
    );
}

#[test]
fn pull_failures_are_clear_errors_and_credentials_come_from_secrets() {
    let mut p = Pushed::new("errors");
    let t = Test::new();
    let fails = |c: &str, image: &str, extra: &str, want: &[&str]| {
        let (ran, _) = run_on_engine2(&t, c, image, extra);
        assert_eq!(ran.code, 1, "{image}: {}", ran.stderr);
        for w in want {
            assert!(
                ran.stderr.contains(w),
                "{image}: no `{w}` in {}",
                ran.stderr
            );
        }
        assert!(!ran.stderr.contains(&registry_password()), "{}", ran.stderr);
        assert!(
            !crate::hostile_state::journals(&t).contains(&registry_password()),
            "the password reached the journal"
        );
    };
    let c = p.container();
    let never = p.at(&registry());
    fails(
        &c,
        &never,
        ", pull: never",
        &["not found on engine", "`pull: never`"],
    );
    assert!(!on_engine2(&never), "`pull: never` pulled");
    let unknown = format!("{}/{}/none:1", registry(), name("unknown"));
    fails(
        &c,
        &unknown,
        "",
        &[
            &format!(
                "cannot pull image `{unknown}` from registry `{}`",
                registry()
            ),
            "the registry has no such image",
        ],
    );
    let down = "127.0.0.1:5599/rb-test/tools:1";
    fails(
        &c,
        down,
        "",
        &[
            "from registry `127.0.0.1:5599`",
            "the registry does not answer",
        ],
    );
    let guarded = p.at(&registry_auth());
    fails(&c, &guarded, "", &["the registry wants credentials"]);
    let user = registry_user();
    fails(
        &c,
        &guarded,
        &format!(
            ", registry_auth: {{ username: {user}, password: \"{{{{ secrets.wrong_password }}}}\" }}"
        ),
        &["the registry refused the credentials"],
    );
    let good = format!(
        ", registry_auth: {{ username: {user}, password: \"{{{{ secrets.registry_password }}}}\" }}"
    );
    let (ran, report) = run_on_engine2(&t, &c, &guarded, &good);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let out = &support::report_step(&report, "run")["outputs"];
    assert_eq!(out["pulled"], true, "{out}");
    assert_eq!(out["image_digest"], p.digest.as_str(), "{out}");
    assert!(!crate::hostile_state::journals(&t).contains(&registry_password()));
    assert!(!report.to_string().contains(&registry_password()));
}

#[test]
fn plan_check_says_which_images_would_be_pulled() {
    let p = Pushed::new("check");
    let image = p.at(&registry());
    let t = Test::new();
    let book = |extra: &str| {
        format!(
            r#"version: 1
name: pullcheck
hosts:
  two: {{ docker: "{}" }}
steps:
  - {{ id: run, type: container.run, host: two, name: never-created, image: "{image}"{extra} }}
"#,
            engine2()
        )
    };
    std::fs::write(t.path("rb.yaml"), book("")).unwrap();
    let ran = Test::new()
        .cwd(t.dir.path())
        .args(["plan", "rb.yaml", "--check"])
        .expect(0);
    assert!(
        ran.stdout
            .contains(&format!("{image} on two: missing: would be pulled")),
        "{}",
        ran.stdout
    );
    std::fs::write(t.path("rb.yaml"), book(", pull: never")).unwrap();
    let ran = Test::new()
        .cwd(t.dir.path())
        .args(["plan", "rb.yaml", "--check"])
        .run();
    assert_ne!(ran.code, 0);
    ran.stdout_has("`pull: never`");
    assert!(!on_engine2(&image), "a plan pulled");
}

#[test]
fn a_registry_password_written_in_the_runbook_is_refused() {
    let ran = Test::new()
        .file(
            "rb.yaml",
            r#"version: 1
name: literal
steps:
  - { id: run, type: container.run, name: x, image: "127.0.0.1:5501/a:1", registry_auth: { username: u, password: hunter2 } }
"#,
        )
        .args(["validate", "rb.yaml"])
        .expect(2);
    assert!(
        ran.stderr
            .contains("the registry password must come from a secret"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("password: hunter2"),
        "the place is shown"
    );
}
