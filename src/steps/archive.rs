//! `archive` and `extract`: tar, tar.gz, tar.zst.

use super::{Step, StepType, Touches, plain};
use crate::steps::cx::{Outputs, StepCx, StepError, StepResult};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

pub use crate::io::archive::ArchiveFormat;

/// Pack files and directories into one archive, published atomically.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArchiveConfig {
    /// Files and directories to pack: under `base_dir` they are named relative to it; a
    /// source outside it (absolute, or `..` leading out) is archived under its own name, as
    /// `tar -C PARENT NAME` does. Paths are normalised lexically.
    pub sources: Vec<String>,
    /// The archive to write.
    pub dest: String,
    /// Entry names are relative to this directory (default: the runbook's directory).
    pub base_dir: Option<String>,
    /// Glob patterns of paths to leave out (as `tar --exclude`).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Format (default: from `dest`'s extension).
    pub format: Option<ArchiveFormat>,
}

/// Unpack an archive; refuses absolute paths, `..` and links that leave `dest`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtractConfig {
    /// The archive to read.
    pub source: String,
    /// The directory to unpack into.
    pub dest: String,
    /// Format (default: from `source`'s extension).
    pub format: Option<ArchiveFormat>,
}

impl Step for ArchiveConfig {
    const TYPE: StepType = plain(&["file", "bytes", "sha256", "entries"]);

    fn touches(&self) -> Touches {
        Touches {
            writes: vec![self.dest.clone()],
            ..Touches::default()
        }
    }

    async fn run(&self, cx: &StepCx) -> StepResult {
        run_archive(self, cx).await
    }
}
impl Step for ExtractConfig {
    const TYPE: StepType = plain(&["path", "entries", "bytes", "sha256"]);

    fn touches(&self) -> Touches {
        Touches {
            writes: vec![self.dest.clone()],
            ..Touches::default()
        }
    }

    async fn run(&self, cx: &StepCx) -> StepResult {
        run_extract(self, cx).await
    }
}

/// Pack the sources into one archive.
pub async fn run_archive(cfg: &ArchiveConfig, cx: &StepCx) -> StepResult {
    let base = cfg
        .base_dir
        .as_ref()
        .map_or_else(|| cx.base_dir.clone(), |b| cx.path(b));
    let sources: Vec<PathBuf> = cfg.sources.iter().map(PathBuf::from).collect();
    let dest = cx.path(&cfg.dest);
    let exclude = cfg.exclude.clone();
    let format = cfg.format;
    let info = tokio::task::spawn_blocking(move || {
        let format = match format {
            Some(f) => f,
            None => ArchiveFormat::for_path(&dest)?,
        };
        crate::io::archive::create_archive(&sources, &base, &dest, &exclude, format)
    })
    .await
    .map_err(|e| StepError::failed(e.to_string()))??;
    let mut out = Outputs::new();
    out.insert("file".into(), info.file.display().to_string().into());
    out.insert("bytes".into(), info.bytes.into());
    out.insert("sha256".into(), info.sha256.into());
    out.insert("entries".into(), info.entries.into());
    Ok(out)
}

/// Unpack an archive.
pub async fn run_extract(cfg: &ExtractConfig, cx: &StepCx) -> StepResult {
    let source = cx.path(&cfg.source);
    let dest = cx.path(&cfg.dest);
    let format = cfg.format;
    let info = tokio::task::spawn_blocking(move || {
        let format = match format {
            Some(f) => f,
            None => ArchiveFormat::for_path(&source)?,
        };
        crate::io::archive::extract_archive(&source, &dest, format)
    })
    .await
    .map_err(|e| StepError::failed(e.to_string()))??;
    let mut out = Outputs::new();
    out.insert(
        "path".into(),
        cx.path(&cfg.dest).display().to_string().into(),
    );
    out.insert("entries".into(), info.entries.into());
    out.insert("bytes".into(), info.bytes.into());
    out.insert("sha256".into(), info.archive_sha256.into());
    Ok(out)
}
