//! Secrets audit (issue 7, item 5). Every `rb` call of these end-to-end tests goes through
//! `super::rb`, which runs it with distinctive secret values (the database password and the
//! backend's secret key, given through the runbooks' secret sources), makes `rb run` also
//! write every report format and the metrics, and then searches every byte rb produced —
//! stdout, stderr, and every file under the test's directory (state dir with journals and
//! reports, the report and metrics files, backup and output dirs, any temporary file left
//! there) — for each secret as is, URL-encoded, hex, and base64 (standard and URL-safe, at each
//! of the three byte alignments). One hit fails the test.
//!
//! `secrets_audit_finds_a_printed_control_value` proves the scanner finds a value that is
//! printed, in each of those places and forms.

use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The forms a value could leak in, each with its name.
pub fn forms(value: &str) -> Vec<(String, Vec<u8>)> {
    let bytes = value.as_bytes();
    let mut out = vec![
        ("plain".to_owned(), bytes.to_vec()),
        ("url-encoded".to_owned(), url_encode(bytes).into_bytes()),
        ("hex".to_owned(), hex(bytes).into_bytes()),
    ];
    for align in 0..3 {
        let mut padded = vec![0u8; align];
        padded.extend_from_slice(bytes);
        let encoded = base64(&padded);
        // Only the characters made of the value's bits alone.
        let first = (align * 8).div_ceil(6);
        let last = padded.len() * 8 / 6;
        let core = encoded[first..last].to_owned();
        out.push((format!("base64@{align}"), core.clone().into_bytes()));
        let url_safe = core.replace('+', "-").replace('/', "_");
        out.push((format!("base64url@{align}"), url_safe.into_bytes()));
    }
    out.dedup_by(|a, b| a.1 == b.1);
    out
}

fn url_encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(char::from(ABC[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// Every file under `dir`, with its bytes (and its path as a place, since names leak too).
pub fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let name = e.path().display().to_string();
            let bytes = std::fs::read(e.path()).unwrap_or_default();
            (name, bytes)
        })
        .collect()
}

/// Each (place, form) where a value shows up. File names are searched too.
pub fn scan(places: &[(String, Vec<u8>)], values: &[&str]) -> Vec<(String, String)> {
    let mut hits = Vec::new();
    for value in values {
        for (form, needle) in forms(value) {
            for (place, bytes) in places {
                let in_name = place.as_bytes().windows(needle.len()).any(|w| w == needle);
                if in_name || bytes.windows(needle.len()).any(|w| w == needle.as_slice()) {
                    hits.push((place.clone(), form.clone()));
                }
            }
        }
    }
    hits
}

/// Arguments that make `rb run` write every report format and the metrics under `dir`.
pub fn report_args(dir: &Path) -> Vec<String> {
    static N: AtomicUsize = AtomicUsize::new(0);
    std::fs::create_dir_all(dir).expect("audit dir");
    let n = N.fetch_add(1, Ordering::Relaxed);
    let mut args = Vec::new();
    for ext in ["json", "md", "xml", "html", "txt"] {
        args.push("--report".to_owned());
        args.push(dir.join(format!("report-{n}.{ext}")).display().to_string());
    }
    args.push("--metrics".to_owned());
    args.push(dir.join(format!("metrics-{n}.prom")).display().to_string());
    args
}

/// The audit of one `rb` call: its output and everything under `dir`; panics on a hit.
pub fn assert_clean(args: &[String], out: &Output, dir: &Path, secrets: &[&str]) {
    let mut places = vec![
        ("stdout".to_owned(), out.stdout.clone()),
        ("stderr".to_owned(), out.stderr.clone()),
    ];
    places.extend(files(dir));
    let hits = scan(&places, secrets);
    let bytes: usize = places.iter().map(|(_, b)| b.len()).sum();
    eprintln!(
        "secrets audit: rb {}: {} places, {bytes} bytes, {} hits",
        args.iter().take(2).cloned().collect::<Vec<_>>().join(" "),
        places.len(),
        hits.len()
    );
    assert!(
        hits.is_empty(),
        "a secret leaked: {hits:?}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn encoded_forms_are_the_ones_tools_produce() {
    let value = "pw-audit-1234-s3cr3t";
    let f = forms(value);
    let has = |s: &str| f.iter().any(|(_, n)| n == s.as_bytes());
    // `printf %s pw-audit-1234-s3cr3t | base64` and the same after one and two other bytes.
    assert!(has("cHctYXVkaXQtMTIzNC1zM2NyM3"));
    assert!(has(&base64(b"xpw-audit-1234-s3cr3t")[2..28]));
    assert!(has(&base64(b"xypw-audit-1234-s3cr3t")[3..29]));
    assert!(has(&hex(value.as_bytes())));
    assert_eq!(url_encode(b"a b/c"), "a%20b%2Fc");
}

#[test]
fn secrets_audit_finds_a_printed_control_value() {
    const CONTROL: &str = "ctl-audit-7Hq2-visible";
    const SECRET: &str = "pw-audit-9Zt4-hidden";
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("rb.yaml"),
        r#"
version: 1
name: audit-control
params:
  control: { type: string, required: true }
secrets:
  token: { env: RB_AUDIT_TOKEN }
steps:
  - id: show
    type: exec
    command: [echo, "control={{ params.control }} token={{ secrets.token }}"]
  - id: encoded
    type: exec
    shell: 'printf %s {{ params.control | shell_quote }} | base64; printf %s {{ params.control | shell_quote }} | od -An -tx1 | tr -d " \n"; echo'
  - id: fails
    type: exec
    continue_on_error: true
    shell: 'echo "failing near {{ params.control }} and {{ secrets.token }}" >&2; exit 3'
  - id: missing
    type: exec
    continue_on_error: true
    command: ["/nonexistent/{{ params.control }}/{{ secrets.token }}"]
  - id: file
    type: exec
    command: [echo, "{{ secrets.token }}"]
    stdout: { file: "out/{{ params.control }}.txt" }
"#,
    )
    .expect("write");
    let mut args: Vec<String> = ["run", "rb.yaml", "--state-dir", "state", "-p"]
        .iter()
        .map(ToString::to_string)
        .collect();
    args.push(format!("control={CONTROL}"));
    args.extend(report_args(&dir.path().join("audit")));
    let out = crate::support::Test::new()
        .cwd(dir.path())
        .env("RB_AUDIT_TOKEN", SECRET)
        .args(&args)
        .output();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let mut places = vec![
        ("stdout".to_owned(), out.stdout.clone()),
        ("stderr".to_owned(), out.stderr.clone()),
    ];
    // The one file with the secret in it is the runbook's own output: the operator's data.
    places.extend(
        files(dir.path())
            .into_iter()
            .filter(|(p, _)| !p.contains("/out/")),
    );
    let hits = scan(&places, &[CONTROL]);
    let found = |place: &str, form: &str| hits.iter().any(|(p, f)| p.ends_with(place) && f == form);
    assert!(found("stderr", "plain"), "{hits:?}");
    assert!(found("journal.jsonl", "plain"), "{hits:?}");
    for ext in ["json", "md", "xml", "html", "txt"] {
        assert!(
            hits.iter()
                .any(|(p, f)| p.contains("/audit/report-") && p.ends_with(ext) && f == "plain"),
            "report .{ext}: {hits:?}"
        );
    }
    assert!(found("journal.jsonl", "base64@0"), "{hits:?}");
    assert!(found("journal.jsonl", "hex"), "{hits:?}");
    // The file the runbook wrote is named after the value: the path is a place too.
    let named = files(dir.path());
    assert!(
        scan(&named, &[CONTROL])
            .iter()
            .any(|(p, _)| p.ends_with(&format!("out/{CONTROL}.txt"))),
        "{hits:?}"
    );
    // The secret, in the same run, in all of those places: nowhere.
    assert_eq!(scan(&places, &[SECRET]), vec![]);
}

#[test]
fn demo_drill_leaks_nothing() {
    let mut env = super::Env::new("demo");
    let pw = super::password("demo");
    let container = env.name("pg");
    let workdir = env.path("work");
    let out = super::rb(
        &env,
        &pw,
        &[
            "run",
            "runbooks/drills/demo.yaml",
            "-p",
            &format!("container={container}"),
            "-p",
            &format!("workdir={}", workdir.display()),
            "-p",
            "rows=2000",
            "--approve",
            "destroy",
        ],
    );
    super::expect_code(&out, 0);
}
