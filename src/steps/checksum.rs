//! `checksum`: write or verify a `sha256sum`-format file.

use super::{ConfigProblem, StepConfig};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Write the SHA-256 of files into a `sha256sum`-format file, or verify such a file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChecksumConfig {
    /// Files to hash (with `write`), or to check (with `verify`; default: every file listed).
    #[serde(default)]
    pub files: Vec<String>,
    /// Write the digests to this file (coreutils `sha256sum -c` accepts it).
    pub write: Option<String>,
    /// Verify the digests listed in this file; names are relative to its directory.
    pub verify: Option<String>,
}

impl StepConfig for ChecksumConfig {
    fn problems(&self) -> Vec<ConfigProblem> {
        match (&self.write, &self.verify) {
            (None, None) => vec![ConfigProblem::new(
                "",
                "needs `write: PATH` or `verify: PATH`",
            )],
            (Some(_), Some(_)) => vec![ConfigProblem::new(
                "verify",
                "give `write` or `verify`, not both",
            )],
            (Some(_), None) if self.files.is_empty() => {
                vec![ConfigProblem::new("files", "`write` needs `files` to hash")]
            }
            _ => Vec::new(),
        }
    }
}
