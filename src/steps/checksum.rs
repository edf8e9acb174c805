//! `checksum`: write or verify a `sha256sum`-format file.

use super::{ConfigProblem, Step, StepType, Touches, plain};
use crate::steps::cx::{Outputs, StepCx, StepError, StepResult};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Write the SHA-256 of files into a `sha256sum`-format file, or verify such a file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChecksumConfig {
    /// Files to hash (with `write`), or to check (with `verify`: only these, each must be
    /// listed; default: every regular file listed under the checksum file's directory).
    #[serde(default)]
    pub files: Vec<String>,
    /// Write the digests to this file (coreutils `sha256sum -c` accepts it).
    pub write: Option<String>,
    /// Verify the digests listed in this file; names are relative to its directory.
    pub verify: Option<String>,
}

impl Step for ChecksumConfig {
    const TYPE: StepType = plain(&["sha256", "files"]);

    fn touches(&self) -> Touches {
        Touches {
            writes: self.write.iter().cloned().collect(),
            ..Touches::default()
        }
    }

    async fn run(&self, cx: &StepCx) -> StepResult {
        run(self, cx).await
    }

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

/// Write or verify a checksum file.
pub async fn run(cfg: &ChecksumConfig, cx: &StepCx) -> StepResult {
    let files: Vec<PathBuf> = cfg.files.iter().map(|f| cx.path(f)).collect();
    let write = cfg.write.as_ref().map(|p| cx.path(p));
    let verify = cfg.verify.as_ref().map(|p| cx.path(p));
    let task = tokio::task::spawn_blocking(move || match (write, verify) {
        (Some(list), _) => crate::io::checksum::write_checksum_file(&list, &files),
        (None, Some(list)) => crate::io::checksum::verify_checksum_files(&list, &files),
        (None, None) => Err(crate::io::error::Error::Invalid(
            "needs `write` or `verify`".into(),
        )),
    });
    // Hashing a large file takes a while: a timeout or Ctrl-C does not wait for it.
    let digests = tokio::select! {
        r = task => r.map_err(|e| StepError::failed(e.to_string()))??,
        () = cx.cancel.cancelled() => return Err(StepError::Cancelled),
    };
    let map: serde_json::Map<String, serde_json::Value> = digests
        .iter()
        .map(|d| (d.path.display().to_string(), d.sha256.clone().into()))
        .collect();
    let mut out = Outputs::new();
    out.insert("sha256".into(), map.into());
    out.insert("files".into(), digests.len().into());
    Ok(out)
}
