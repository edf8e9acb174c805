//! The one way the tests run the real `rb` binary, shared by every test binary
//! (`#[path = "../support/mod.rs"] mod support;`).
//!
//! A just-style `Test` builder: files in a temporary directory, arguments, variables and the
//! working directory; [`Test::run`] / [`Test::expect`] run `rb` to its end and give a [`Ran`],
//! whose `#[track_caller]` expectations chain and fail at the test's own line with the whole
//! output shown:
//!
//! ```ignore
//! Test::new().file("rb.yaml", BOOK).args(["run", "rb.yaml"])
//!     .expect(0)
//!     .stdout_has("done")
//!     .stderr_lacks("s3cr3t");
//! ```
//!
//! [`Test::spawn`] starts `rb` in the background instead: a [`Spawned`] handle that is killed
//! and reaped when dropped (also when the test fails first), and [`Spawned::wait`] collects
//! its output within a deadline. [`Test::via`] runs `rb` through a wrapper (`setpriv`),
//! [`Test::pty`] on a pseudo-terminal; [`Test::command`] is the same command, for a test that
//! needs other stdio.
//!
//! Every test that runs `rb` goes through here; only the tmux screen test
//! (`integration/terminal.rs`) names the binary in a shell line of its own.

#![allow(dead_code, reason = "each test binary uses a different part")]

mod ran;
mod spawned;

pub use spawned::Spawned;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const RB: &str = env!("CARGO_BIN_EXE_rb");

/// The repository root (for shipped runbooks and fixtures).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub struct Test {
    pub dir: tempfile::TempDir,
    args: Vec<String>,
    env: Vec<(String, OsString)>,
    env_remove: Vec<String>,
    cwd: Option<PathBuf>,
    via: Vec<String>,
    pty: bool,
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
        let state = dir.path().join(".rb-state").into_os_string();
        let locks = dir.path().join(".rb-locks").into_os_string();
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
            env_remove: Vec::new(),
            cwd: None,
            via: Vec::new(),
            pty: false,
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

    pub fn env(self, k: &str, v: &str) -> Self {
        self.env_path(k, v)
    }

    /// Set a variable to a path.
    pub fn env_path(mut self, k: &str, v: impl AsRef<Path>) -> Self {
        self.env_remove.retain(|name| name != k);
        self.env.push((k.into(), v.as_ref().as_os_str().to_owned()));
        self
    }

    /// Run in this directory instead of the test directory.
    pub fn cwd(mut self, dir: &Path) -> Self {
        self.cwd = Some(dir.to_owned());
        self
    }

    /// Unset a variable for `rb` (one of the defaults above, or one of the test's own).
    pub fn env_remove(mut self, k: &str) -> Self {
        self.env.retain(|(name, _)| name != k);
        self.env_remove.push(k.into());
        self
    }

    /// Start `rb` through `program ARGS… rb …` (`setpriv --reuid=…`, say).
    pub fn via(mut self, program: &str, args: &[&str]) -> Self {
        self.via = std::iter::once(program)
            .chain(args.iter().copied())
            .map(str::to_owned)
            .collect();
        self
    }

    /// Start `rb` on a pseudo-terminal (util-linux `script`): what it draws comes on stdout,
    /// stdin goes to the terminal.
    pub fn pty(mut self) -> Self {
        self.pty = true;
        self
    }

    /// The command [`run`](Self::run) and [`spawn`](Self::spawn) start: `rb ARGS` with the
    /// variables and in the directory set; stdin is empty (not a terminal).
    pub fn command(&self) -> Command {
        let argv: Vec<&str> = (self.via.iter().map(String::as_str))
            .chain([RB])
            .chain(self.args.iter().map(String::as_str))
            .collect();
        let mut cmd = if self.pty {
            let mut cmd = Command::new("script");
            cmd.args(["-qec", &shell_line(&argv), "/dev/null"]);
            cmd
        } else {
            let mut cmd = Command::new(argv[0]);
            cmd.args(&argv[1..]);
            cmd
        };
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(self.cwd.as_deref().unwrap_or(self.dir.path()))
            .stdin(Stdio::null());
        for k in &self.env_remove {
            cmd.env_remove(k);
        }
        cmd
    }

    /// Run `rb` to its end.
    pub fn run(&self) -> Ran {
        Ran::from(self.output())
    }

    /// Run `rb` to its end; its output as bytes (for tests that read binary output).
    pub fn output(&self) -> Output {
        self.command().output().expect("rb runs")
    }

    /// Run and assert the exit code.
    #[track_caller]
    pub fn expect(&self, code: i32) -> Ran {
        let ran = self.run();
        ran.exits(code);
        ran
    }

    /// Start `rb` in the background, stdout and stderr captured; killed and reaped when the
    /// handle is dropped.
    pub fn spawn(&self) -> Spawned {
        let mut cmd = self.command();
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        Spawned::from(cmd.spawn().expect("rb starts"))
    }
}

/// `argv` as one line for `sh -c`, every word quoted.
fn shell_line(argv: &[&str]) -> String {
    let quoted: Vec<String> = argv
        .iter()
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect();
    quoted.join(" ")
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
    assert_eq!(ran.code, code, "exit code\n{}", ran.show());
}

/// Call `f` until it returns something, failing the test after `within`.
#[track_caller]
pub fn poll<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `rb run rb.yaml ARGS` in the test directory, with its state dir and a JSON report there,
/// and these variables set: the command of [`run_book`], to run or spawn.
pub fn book(t: &Test, args: &[&str], env: &[(&str, &str)]) -> Test {
    let mut rb = Test::new().cwd(t.dir.path()).args([
        "run",
        "rb.yaml",
        "--state-dir",
        "state",
        "--report",
        "report.json",
    ]);
    rb = rb.args(args);
    for (k, v) in env {
        rb = rb.env(k, v);
    }
    rb
}

/// [`book`] run to its end; the report parsed (`Null` when none was written).
pub fn run_book(t: &Test, args: &[&str], env: &[(&str, &str)]) -> (Ran, serde_json::Value) {
    let ran = book(t, args, env).run();
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
