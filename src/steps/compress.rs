//! `compress` and `decompress`: gzip or zstd, streaming, published atomically.

use super::exec::Compression;
use super::{ConfigProblem, Step, StepType, Touches, plain};
use crate::io::compress::Format;
use crate::steps::cx::{Outputs, StepCx, StepError, StepResult};
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

impl Step for CompressConfig {
    const TYPE: StepType = plain(&["file", "bytes", "sha256"]);

    fn touches(&self) -> Touches {
        Touches {
            writes: self.dest.iter().cloned().collect(),
            ..Touches::default()
        }
    }

    async fn run(&self, cx: &StepCx) -> StepResult {
        run(self, cx, false).await
    }

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

/// Decompress one file: the same keys as `compress` (the same schema too).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(transparent)]
pub struct DecompressConfig(pub CompressConfig);

impl JsonSchema for DecompressConfig {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        CompressConfig::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        CompressConfig::json_schema(generator)
    }
}

impl Step for DecompressConfig {
    const TYPE: StepType = CompressConfig::TYPE;

    fn touches(&self) -> Touches {
        self.0.touches()
    }

    fn problems(&self) -> Vec<ConfigProblem> {
        self.0.problems()
    }

    async fn run(&self, cx: &StepCx) -> StepResult {
        run(&self.0, cx, true).await
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
