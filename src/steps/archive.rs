//! `archive` and `extract`: tar, tar.gz, tar.zst.

use super::StepConfig;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An archive format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum ArchiveFormat {
    #[serde(rename = "tar")]
    Tar,
    #[serde(rename = "tar.gz")]
    TarGz,
    #[serde(rename = "tar.zst")]
    TarZst,
}

/// Pack files and directories into one archive, published atomically.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArchiveConfig {
    /// Files and directories to pack (relative to `base_dir`, or absolute under it).
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

impl StepConfig for ArchiveConfig {}
impl StepConfig for ExtractConfig {}
