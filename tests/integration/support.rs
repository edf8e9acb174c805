//! A just-style `Test` builder: files in a temporary directory, the real `rb` binary, and
//! assertions on exit code, stdout and stderr.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const RB: &str = env!("CARGO_BIN_EXE_rb");

/// The repository root (for shipped runbooks and fixtures).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub struct Test {
    pub dir: tempfile::TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
    cwd: Option<PathBuf>,
}

/// What a run of `rb` produced.
#[derive(Debug)]
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Test {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        // Runs, plan history and target locks never come from (or go to) the machine's own
        // state and lock dirs.
        let state = dir.path().join(".rb-state").display().to_string();
        let locks = dir.path().join(".rb-locks").display().to_string();
        Self {
            dir,
            args: Vec::new(),
            env: vec![
                ("NO_COLOR".into(), "1".into()),
                // Reports show local times too: the same on every machine.
                ("TZ".into(), "UTC".into()),
                ("RB_STATE_DIR".into(), state),
                ("RB_LOCK_DIR".into(), locks),
            ],
            cwd: None,
        }
    }

    /// Write a file under the test directory.
    pub fn file(self, name: &str, content: impl AsRef<[u8]>) -> Self {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, content).unwrap();
        self
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, args: I) -> Self {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Run in this directory instead of the test directory.
    pub fn cwd(mut self, dir: &Path) -> Self {
        self.cwd = Some(dir.to_owned());
        self
    }

    pub fn run(&self) -> Ran {
        let out: Output = Command::new(RB)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.cwd.as_deref().unwrap_or(self.dir.path()))
            .output()
            .expect("rb runs");
        Ran::from(out)
    }

    /// Run and assert the exit code.
    pub fn expect(&self, code: i32) -> Ran {
        let ran = self.run();
        assert_eq!(
            ran.code, code,
            "exit code of rb {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.args, ran.stdout, ran.stderr
        );
        ran
    }
}

impl From<Output> for Ran {
    fn from(out: Output) -> Self {
        Ran {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Assert the exit code of a run, showing its output when it differs.
#[track_caller]
pub fn expect(ran: &Ran, code: i32) {
    assert_eq!(
        ran.code, code,
        "exit code\n--- stdout\n{}\n--- stderr\n{}",
        ran.stdout, ran.stderr
    );
}

/// Call `f` until it returns something, failing the test after `within`.
pub fn poll<T>(what: &str, within: std::time::Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `rb run rb.yaml ARGS` in the test directory, with its state dir and a JSON report there,
/// and these variables set; the report parsed (`Null` when none was written).
pub fn run_book(t: &Test, args: &[&str], env: &[(&str, &str)]) -> (Ran, serde_json::Value) {
    let mut all = vec![
        "run",
        "rb.yaml",
        "--state-dir",
        "state",
        "--report",
        "report.json",
    ];
    all.extend(args);
    let mut run = Test::new().cwd(t.dir.path()).args(all);
    for (k, v) in env {
        run = run.env(k, v);
    }
    let ran = run.run();
    let report = std::fs::read_to_string(t.path("report.json"))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(serde_json::Value::Null);
    (ran, report)
}

/// A step of a JSON report, by id.
pub fn report_step<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|x| x["id"] == id))
        .unwrap_or_else(|| panic!("step {id} in report: {report}"))
}

/// A diagnostic's message as one line: miette wraps it at 100 columns (after a hyphen too).
pub fn one_line(stderr: &str) -> String {
    stderr.replace("-\n  | ", "-").replace("\n  | ", " ")
}
