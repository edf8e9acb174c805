//! `notify:` webhooks, posted to a real HTTP server on 127.0.0.1 that the test runs and that
//! records each request: the Slack-compatible JSON of a start, a success, a failure, a gate
//! (with the exact command that approves it) and an RTO overrun; a webhook that refuses, does
//! not answer or answers an error is a warning and a journal event, never a failed run; the
//! URL (a secret) appears nowhere.

use crate::support::{Test, expect, poll, run_book};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the webhook server does with a request.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Answer `200 ok`, as Slack does.
    Ok,
    /// Answer this status.
    Status(u16),
    /// Read the request and never answer.
    Hang,
}

/// One request the server received.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    content_type: String,
    body: Value,
}

/// A webhook server on 127.0.0.1 in a thread of the test.
struct Hook {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Hook {
    fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let seen = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let seen = seen.clone();
                std::thread::spawn(move || serve(stream, behaviour, &seen));
            }
        });
        Self { port, received }
    }

    /// The webhook URL; its last part stands for the token a real one holds.
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks/{TOKEN}", self.port)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Wait until `n` requests arrived (they are posted while the run goes on).
    fn wait_for(&self, n: usize) -> Vec<Received> {
        poll("webhook requests", Duration::from_secs(10), || {
            let r = self.received();
            (r.len() >= n).then_some(r)
        })
    }
}

const TOKEN: &str = "T0KEN-s3cr3t-webhook-path";

fn serve(stream: TcpStream, behaviour: Behaviour, seen: &Mutex<Vec<Received>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    let (mut length, mut content_type) = (0usize, String::new());
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().unwrap(),
            "content-type" => value.trim().clone_into(&mut content_type),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    seen.lock().unwrap().push(Received {
        path,
        content_type,
        body: serde_json::from_slice(&body).unwrap(),
    });
    let (status, text) = match behaviour {
        Behaviour::Ok => (200, "ok"),
        Behaviour::Status(s) => (s, "invalid_token"),
        Behaviour::Hang => {
            std::thread::sleep(Duration::from_secs(30));
            return;
        }
    };
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
}

/// A runbook whose webhook is the secret `ops_hook` (from `$HOOK_URL`), told about `on`.
fn book(on: &str, extra: &str, steps: &str) -> String {
    format!(
        "version: 1\nname: nightly\n{extra}secrets:\n  ops_hook: {{ env: HOOK_URL }}\nnotify:\n  - webhook: ops_hook\n    on: {on}\n    timeout: 1s\nsteps:\n{steps}"
    )
}

/// The mrkdwn texts of a message's blocks, one string.
fn block_texts(m: &Value) -> String {
    let mut out = Vec::new();
    for b in m["blocks"].as_array().unwrap() {
        if let Some(t) = b["text"]["text"].as_str() {
            out.push(t.to_owned());
        }
        for f in b["fields"].as_array().into_iter().flatten() {
            out.push(f["text"].as_str().unwrap().to_owned());
        }
    }
    out.join("\n")
}

/// The run's journal, whole.
fn journal(t: &Test) -> String {
    let runs = t.path("state/runs");
    let dir = std::fs::read_dir(&runs).unwrap().next().unwrap().unwrap();
    std::fs::read_to_string(dir.path().join("journal.jsonl")).unwrap()
}

/// Nothing the run printed or kept holds the URL's secret part.
fn assert_url_hidden(t: &Test, printed: &str) {
    assert!(
        !printed.contains(TOKEN),
        "the webhook URL printed:\n{printed}"
    );
    let j = journal(t);
    assert!(!j.contains(TOKEN), "the webhook URL in the journal:\n{j}");
    let report = std::fs::read_to_string(t.path("report.json")).unwrap();
    assert!(!report.contains(TOKEN), "the webhook URL in the report");
}

#[test]
fn a_run_posts_its_start_and_success_in_slack_shape() {
    let hook = Hook::start(Behaviour::Ok);
    let t = Test::new().file(
        "rb.yaml",
        book(
            "[start, success]",
            "objectives: { rto: 1h }\n",
            "  - { id: dump, type: exec, shell: 'true' }\n",
        ),
    );
    let (ran, report) = run_book(&t, &[], &[("HOOK_URL", &hook.url())]);
    expect(&ran, 0);
    // Both were posted before rb exited: nothing to wait for.
    let got = hook.received();
    assert_eq!(got.len(), 2, "{got:#?}");
    let run_id = report["run_id"].as_str().unwrap();
    for r in &got {
        assert_eq!(r.path, format!("/hooks/{TOKEN}"));
        assert_eq!(r.content_type, "application/json");
        let texts = block_texts(&r.body);
        for want in [
            "*Runbook*\nnightly",
            &format!("*Run*\n{run_id}"),
            "*RTO*\n1h",
        ] {
            assert!(texts.contains(want), "{want} in {texts}");
        }
        assert_eq!(r.body["blocks"][1]["type"], "section");
    }
    // Posted concurrently: told apart by their event field.
    let event = |name: &str| {
        got.iter()
            .find(|r| block_texts(&r.body).contains(&format!("*Event*\n{name}")))
            .unwrap_or_else(|| panic!("a {name} message in {got:#?}"))
    };
    assert_eq!(event("start").body["text"], "▶️ rb: `nightly` started");
    let done = event("success").body["text"].as_str().unwrap();
    assert!(
        done.starts_with("✅ rb: `nightly` succeeded in ")
            && done.ends_with("within its RTO of 1h"),
        "{done}"
    );
    assert_url_hidden(&t, &format!("{}{}", ran.stdout, ran.stderr));
    // The plan shows the webhook as a secret.
    let plan = Test::new()
        .cwd(t.dir.path())
        .args(["plan", "rb.yaml"])
        .env("HOOK_URL", &hook.url())
        .expect(0);
    assert!(
        plan.stdout
            .contains("  notify *** (ops_hook) on start, success"),
        "{}",
        plan.stdout
    );
    assert!(!plan.stdout.contains(TOKEN));
}

#[test]
fn a_failure_names_the_step_its_error_and_the_command_that_continues() {
    let hook = Hook::start(Behaviour::Ok);
    let t = Test::new().file(
        "rb.yaml",
        book(
            "[failure]",
            "",
            "  - { id: ok, type: exec, shell: 'true' }\n  - { id: dump, type: exec, shell: \"echo 'disk <full>' >&2; exit 3\" }\n",
        ),
    );
    let (ran, report) = run_book(&t, &[], &[("HOOK_URL", &hook.url())]);
    expect(&ran, 1);
    let got = hook.received();
    assert_eq!(got.len(), 1, "only the failure: {got:#?}");
    let run_id = report["run_id"].as_str().unwrap();
    let text = got[0].body["text"].as_str().unwrap();
    assert!(
        text.starts_with("❌ rb: `nightly` failed after ") && text.contains(" at step `dump`: "),
        "{text}"
    );
    // Slack markup is escaped: `<full>` cannot become a link or a mention.
    assert!(text.contains("disk &lt;full&gt;"), "{text}");
    let command = format!("rb run rb.yaml --state-dir state --resume {run_id}");
    assert!(
        text.ends_with(&format!("Fix the cause, then continue with: {command}")),
        "{text}"
    );
    assert!(ran.stderr.contains(&command), "{}", ran.stderr);
    assert_eq!(
        got[0].body["blocks"][2]["text"]["text"],
        format!("Fix the cause, then continue with:\n```{command}```")
    );
}

#[test]
fn a_run_stopped_at_a_gate_posts_the_exact_command_that_approves_it() {
    let hook = Hook::start(Behaviour::Ok);
    let t = Test::new().file(
        "rb.yaml",
        book(
            "[gate, success]",
            "",
            "  - { id: backup, type: exec, shell: 'true' }\n  - { id: approve_drop, type: gate, message: \"drop the production database?\" }\n  - { id: drop, type: exec, shell: 'true' }\n",
        ),
    );
    let (ran, report) = run_book(&t, &[], &[("HOOK_URL", &hook.url())]);
    expect(&ran, 3);
    let got = hook.received();
    assert_eq!(got.len(), 1, "{got:#?}");
    let run_id = report["run_id"].as_str().unwrap();
    let command =
        format!("rb run rb.yaml --state-dir state --resume {run_id} --approve approve_drop");
    let m = &got[0].body;
    assert_eq!(
        m["text"],
        format!(
            "⏸️ rb: `nightly` is waiting for approval at gate `approve_drop`\ndrop the production database?\nApprove and continue with: {command}"
        )
    );
    assert_eq!(
        m["blocks"][2]["text"]["text"],
        format!("Approve and continue with:\n```{command}```")
    );
    assert!(block_texts(m).contains("*Event*\ngate"));
    // The same command rb printed, and it works: the run resumes, approved, and succeeds.
    assert!(ran.stderr.contains(&command), "{}", ran.stderr);
    let args: Vec<&str> = command.split(' ').skip(1).collect();
    Test::new()
        .cwd(t.dir.path())
        .args(args)
        .env("HOOK_URL", &hook.url())
        .expect(0);
    let got = hook.received();
    assert_eq!(got.len(), 2, "{got:#?}");
    assert!(
        got[1].body["text"]
            .as_str()
            .unwrap()
            .starts_with("✅ rb: `nightly` succeeded"),
        "{:?}",
        got[1].body
    );
}

#[test]
fn a_run_still_going_past_its_rto_says_so_while_it_runs() {
    let hook = Hook::start(Behaviour::Ok);
    let t = Test::new().file(
        "rb.yaml",
        book(
            "[over_rto]",
            "objectives: { rto: 1s }\n",
            "  - { id: slow, type: exec, shell: 'while test ! -f go; do sleep 0.05; done' }\n",
        ),
    );
    let mut rb = Test::new()
        .cwd(t.dir.path())
        .args(["run", "rb.yaml", "--state-dir", "state"])
        .env("HOOK_URL", &hook.url())
        .spawn();
    // Posted while the step still runs: it ends only when the test says so.
    let got = hook.wait_for(1);
    std::fs::write(t.path("go"), "").unwrap();
    rb.wait(Duration::from_mins(1)).exits(0);
    let text = got[0].body["text"].as_str().unwrap();
    assert!(
        text.starts_with("⚠️ rb: `nightly` is over its RTO of 1s: still running after "),
        "{text}"
    );
    assert_eq!(hook.received().len(), 1, "over_rto only, once");
}

/// A webhook that refuses, does not answer, or answers an error: the run succeeds, a warning
/// names the webhook by its secret and what went wrong, the journal records it, and the
/// URL is nowhere.
#[test]
fn a_dead_webhook_never_fails_or_holds_up_the_run() {
    let refused = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!(
            "http://127.0.0.1:{}/hooks/{TOKEN}",
            l.local_addr().unwrap().port()
        )
    };
    let hanging = Hook::start(Behaviour::Hang);
    let rejecting = Hook::start(Behaviour::Status(403));
    // A name that does not resolve (`.invalid` never does): where DNS answers at once the
    // lookup fails, where it does not answer the post times out.
    let unresolved = format!("http://rb-notify.invalid/hooks/{TOKEN}");
    let cases = [
        (refused, "cannot connect: "),
        (unresolved, "cannot connect: |no answer in time"),
        (hanging.url(), "no answer in time (timed out)"),
        (
            rejecting.url(),
            "the webhook answered 403 Forbidden: invalid_token",
        ),
    ];
    for (url, why) in cases {
        let t = Test::new().file(
            "rb.yaml",
            book(
                "[start, success]",
                "",
                "  - { id: dump, type: exec, shell: 'true' }\n",
            ),
        );
        let began = Instant::now();
        let (ran, report) = run_book(&t, &[], &[("HOOK_URL", &url)]);
        let took = began.elapsed();
        expect(&ran, 0);
        assert_eq!(report["outcome"], "succeeded");
        // Two posts of at most `timeout: 1s` each, at the same time as the run.
        assert!(took < Duration::from_secs(4), "{why}: took {took:?}");
        for event in ["start", "success"] {
            let found = why.split('|').any(|why| {
                ran.stderr.contains(&format!(
                    "warning: the `{event}` notification to webhook `ops_hook` failed: {why}"
                ))
            });
            assert!(found, "{event}: {why}\n{}", ran.stderr);
        }
        let failed: Vec<Value> = journal(&t)
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|e| e["event"] == "notification_failed")
            .collect();
        assert_eq!(failed.len(), 2, "{failed:?}");
        assert_eq!(failed[0]["webhook"], "ops_hook");
        let error = failed[0]["error"].as_str().unwrap();
        assert!(
            why.split('|')
                .any(|w| error.contains(w.trim_end_matches(": "))),
            "{error}"
        );
        assert_url_hidden(&t, &format!("{}{}", ran.stdout, ran.stderr));
    }
}

/// Without `on`: what needs someone's attention, not a message every night that all is well.
#[test]
fn by_default_only_failures_rto_overruns_and_gates_are_posted() {
    let hook = Hook::start(Behaviour::Ok);
    let t = Test::new().file(
        "rb.yaml",
        "version: 1\nname: nightly\nsecrets:\n  ops_hook: { env: HOOK_URL }\nnotify:\n  - webhook: ops_hook\nsteps:\n  - { id: dump, type: exec, shell: 'true' }\n",
    );
    let (ran, _) = run_book(&t, &[], &[("HOOK_URL", &hook.url())]);
    expect(&ran, 0);
    assert!(hook.received().is_empty(), "{:#?}", hook.received());
    let plan = Test::new()
        .cwd(t.dir.path())
        .args(["plan", "rb.yaml"])
        .expect(0);
    assert!(
        plan.stdout
            .contains("  notify *** (ops_hook) on failure, over_rto, gate"),
        "{}",
        plan.stdout
    );
}

/// A gate inside a sub-runbook is approved by its full id, and the message says so; the
/// sub-runbook's own `notify:` is not used (only the top-level runbook notifies).
#[test]
fn a_gate_in_a_sub_runbook_is_posted_with_its_full_id() {
    let hook = Hook::start(Behaviour::Ok);
    let child_hook = Hook::start(Behaviour::Ok);
    let t = Test::new()
        .file(
            "rb.yaml",
            book(
                "[gate]",
                "",
                "  - { id: recover, type: runbook, file: child.yaml }\n",
            ),
        )
        .file(
            "child.yaml",
            "version: 1\nname: child\nsecrets:\n  child_hook: { env: CHILD_HOOK_URL }\nnotify:\n  - { webhook: child_hook, on: [start, gate, failure, success] }\nsteps:\n  - { id: approve_drop, type: gate, message: drop it? }\n",
        );
    let (ran, report) = run_book(
        &t,
        &[],
        &[
            ("HOOK_URL", &hook.url()),
            ("CHILD_HOOK_URL", &child_hook.url()),
        ],
    );
    expect(&ran, 3);
    let run_id = report["run_id"].as_str().unwrap();
    let got = hook.received();
    assert_eq!(got.len(), 1, "{got:#?}");
    let text = got[0].body["text"].as_str().unwrap();
    assert!(
        text.starts_with(
            "⏸️ rb: `nightly` is waiting for approval at gate `recover/approve_drop`\ndrop it?\n"
        ),
        "{text}"
    );
    assert!(
        text.ends_with(&format!(
            "rb run rb.yaml --state-dir state --resume {run_id} --approve recover/approve_drop"
        )),
        "{text}"
    );
    assert!(
        child_hook.received().is_empty(),
        "{:#?}",
        child_hook.received()
    );
}
