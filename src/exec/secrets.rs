//! Reading secret values from the environment or files, before the first step runs.

use crate::runbook::model::Runbook;
use std::collections::BTreeMap;

/// Every secret of a runbook. A missing one is an error naming where it should come from
/// (never its value).
pub fn read(runbook: &Runbook) -> Result<BTreeMap<String, String>, String> {
    let base = runbook.base_dir();
    let mut out = BTreeMap::new();
    let mut missing = Vec::new();
    for (name, spec) in &runbook.secrets {
        let value = match (&spec.env, &spec.file) {
            (Some(var), _) => std::env::var(var)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("secret `{name}`: environment variable `{var}` is not set")),
            (None, Some(file)) => read_file(&base.join(file))
                .map_err(|e| format!("secret `{name}`: cannot read `{file}`: {e}")),
            (None, None) => Err(format!("secret `{name}` has no source")),
        };
        match value {
            Ok(v) => {
                out.insert(name.clone(), v);
            }
            Err(e) => missing.push(e),
        }
    }
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(missing.join("; "))
    }
}

/// The largest secret file read (a key or certificate fits many times over).
pub const MAX_SECRET_BYTES: u64 = 1024 * 1024;

/// A secret file's text, read no further than [`MAX_SECRET_BYTES`] (`/dev/zero` would never
/// end). The error never holds the file's content.
fn read_file(path: &std::path::Path) -> Result<String, String> {
    match crate::io::bounded::read(path, MAX_SECRET_BYTES) {
        Ok(crate::io::bounded::Bounded::Read(bytes)) => decode(bytes),
        Ok(crate::io::bounded::Bounded::TooLarge) => {
            Err(format!("more than {} MiB", MAX_SECRET_BYTES / 1_048_576))
        }
        Err(e) => Err(e.kind().to_string()),
    }
}

/// A secret file's bytes as its value: UTF-8 text, trailing line ends removed. The error
/// never holds the bytes.
pub fn decode(bytes: Vec<u8>) -> Result<String, String> {
    String::from_utf8(bytes)
        .map(|s| s.trim_end_matches(['\n', '\r']).to_owned())
        .map_err(|_| "not UTF-8 text".to_owned())
}
