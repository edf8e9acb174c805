//! The error type shared by the `io` modules.

use std::io;
use std::path::{Path, PathBuf};

/// Result alias for the `io` modules.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failure of a file operation, naming the path involved.
///
/// Messages are lowercase fragments with paths in backticks, meant to be shown after a step
/// name: "cannot open `/backups/x.dump`: No such file or directory (os error 2)".
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system error on `path`; `action` says what was being done.
    ///
    /// The OS error is part of the message (most callers print only `to_string()`) and is
    /// also reachable through [`std::error::Error::source`].
    #[error("cannot {action} `{}`: {source}", path.display())]
    Io {
        /// What was being attempted, as a verb phrase: "open", "write", "rename to".
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The final file exists and overwriting was not allowed.
    #[error("`{}` already exists", path.display())]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// The compression format or archive format cannot be told from a file name.
    #[error("cannot tell the {what} format of `{}` from its extension", path.display())]
    UnknownFormat {
        /// "compression" or "archive".
        what: &'static str,
        /// The file name looked at.
        path: PathBuf,
    },
    /// An argument is out of range (a compression level, a source outside `base_dir`…).
    #[error("{0}")]
    Invalid(String),
    /// A line of a checksum file could not be parsed.
    #[error("`{}` line {line}: {reason}", path.display())]
    MalformedChecksumLine {
        /// The checksum file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// One or more files listed in a checksum file are missing or do not match.
    #[error("{} of {total} files listed in `{}` failed verification: {}",
        failures.len(), list.display(), join_failures(failures))]
    Verification {
        /// The checksum file.
        list: PathBuf,
        /// How many files it lists.
        total: usize,
        /// Each file that failed, in the order listed.
        failures: Vec<VerifyFailure>,
    },
    /// An archive entry would write outside the destination or through a link.
    #[error("refusing archive entry `{entry}` in `{}`: {reason}", archive.display())]
    UnsafeEntry {
        /// The archive being extracted.
        archive: PathBuf,
        /// The entry's path as stored in the archive.
        entry: String,
        /// Why it was refused.
        reason: String,
    },
}

/// Why one file listed in a checksum file failed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyFailure {
    /// The file's digest differs from the listed one.
    Mismatch {
        /// The file as resolved on disk.
        path: PathBuf,
        /// The digest listed in the checksum file (lowercase hex).
        expected: String,
        /// The digest of the file now (lowercase hex).
        actual: String,
    },
    /// The file does not exist or cannot be read.
    Unreadable {
        /// The file as resolved on disk.
        path: PathBuf,
        /// The operating-system error.
        reason: String,
    },
}

impl std::fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Mismatch {
                path,
                expected,
                actual,
            } => write!(
                f,
                "`{}` does not match: expected {expected}, actual {actual}",
                path.display()
            ),
            Self::Unreadable { path, reason } => {
                write!(f, "`{}` cannot be read: {reason}", path.display())
            }
        }
    }
}

fn join_failures(failures: &[VerifyFailure]) -> String {
    failures
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// Wraps an OS error with the action and path it concerns.
    pub fn io(action: &'static str, path: impl AsRef<Path>, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.as_ref().to_path_buf(),
            source,
        }
    }
}

/// Adds path context to `std::io` results, so every `?` says which file failed.
pub(crate) trait IoContext<T> {
    /// Maps an `io::Error` to [`Error::Io`] with `action` and `path`.
    fn ctx(self, action: &'static str, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, action: &'static str, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(action, path, e))
    }
}
