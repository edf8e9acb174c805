//! `compress` and `decompress`: gzip or zstd, streaming, published atomically.

use super::exec::Compression;
use super::{ConfigProblem, StepConfig};
use crate::exec::cx::{Outputs, StepCx, StepError, StepResult};
use crate::io::compress::Format;
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

fn digest_outputs(d: &crate::io::digest::FileDigest) -> Outputs {
    let mut out = Outputs::new();
    out.insert("file".into(), d.path.display().to_string().into());
    out.insert("bytes".into(), d.bytes.into());
    out.insert("sha256".into(), d.sha256.clone().into());
    out
}

/// Compress (`decompress: false`) or decompress one file on a blocking thread.
pub async fn run(cfg: &CompressConfig, cx: &StepCx, decompress: bool) -> StepResult {
    let source = cx.path(&cfg.source);
    let dest = cfg.dest.as_ref().map(|d| cx.path(d));
    let format = cfg.format;
    let (level, remove) = (cfg.level, cfg.remove_source);
    let task = tokio::task::spawn_blocking(move || {
        if decompress {
            crate::io::compress::decompress_file(&source, dest.as_deref(), format, remove)
        } else {
            let format = format
                .or_else(|| dest.as_deref().and_then(Format::from_extension))
                .unwrap_or(Format::Gzip);
            crate::io::compress::compress_file(&source, dest.as_deref(), format, level, remove)
        }
    });
    let digest = task.await.map_err(|e| StepError::failed(e.to_string()))??;
    Ok(digest_outputs(&digest))
}
