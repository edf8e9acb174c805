//! The expectations on a finished run: exit code, stdout, stderr; each `#[track_caller]`,
//! each showing the whole output when it fails, chained:
//! `t.expect(0).stdout_has("done").stderr_lacks("s3cr3t");` or, on a run kept for more
//! checks, `ran.stderr_has("refused").stdout_lacks("s3cr3t");`.

use super::Ran;

impl Ran {
    pub(super) fn show(&self) -> String {
        format!(
            "--- exit code {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// Assert the exit code.
    #[track_caller]
    pub fn exits(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "exit code of rb\n{}", self.show());
        self
    }

    /// Assert stdout contains `text`.
    #[track_caller]
    pub fn stdout_has(&self, text: &str) -> &Self {
        assert!(
            self.stdout.contains(text),
            "stdout lacks {text:?}\n{}",
            self.show()
        );
        self
    }

    /// Assert stdout does not contain `text`.
    #[track_caller]
    pub fn stdout_lacks(&self, text: &str) -> &Self {
        assert!(
            !self.stdout.contains(text),
            "stdout has {text:?}\n{}",
            self.show()
        );
        self
    }

    /// Assert stderr contains `text`.
    #[track_caller]
    pub fn stderr_has(&self, text: &str) -> &Self {
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}\n{}",
            self.show()
        );
        self
    }

    /// Assert stderr does not contain `text`.
    #[track_caller]
    pub fn stderr_lacks(&self, text: &str) -> &Self {
        assert!(
            !self.stderr.contains(text),
            "stderr has {text:?}\n{}",
            self.show()
        );
        self
    }

    /// Assert neither stdout nor stderr contains `text` (a secret, say).
    #[track_caller]
    pub fn never_shows(&self, text: &str) -> &Self {
        self.stdout_lacks(text).stderr_lacks(text)
    }
}
