//! `compress` and `decompress`: gzip or zstd, streaming, published atomically.

use super::exec::Compression;
use super::{ConfigProblem, StepConfig};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Compress or decompress one file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompressConfig {
    /// The file to read.
    pub source: String,
    /// The file to write (default: `source` with `.gz`/`.zst` added or stripped).
    pub dest: Option<String>,
    /// Format (default: from the file name, else gzip).
    pub format: Option<Compression>,
    /// Compression level (gzip 1–9, default 6; zstd 1–19, default 3).
    pub level: Option<i32>,
    /// Threads for zstd (default: all cores).
    pub threads: Option<u32>,
    /// Remove `source` once `dest` is complete.
    #[serde(default)]
    pub remove_source: bool,
}

impl StepConfig for CompressConfig {
    fn problems(&self) -> Vec<ConfigProblem> {
        match (self.format, self.level) {
            (Some(Compression::Gzip), Some(l)) if !(1..=9).contains(&l) => {
                vec![ConfigProblem::new("level", "gzip levels are 1 to 9")]
            }
            (Some(Compression::Zstd), Some(l)) if !(1..=19).contains(&l) => {
                vec![ConfigProblem::new("level", "zstd levels are 1 to 19")]
            }
            _ => Vec::new(),
        }
    }
}
