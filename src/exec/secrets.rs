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
            (None, Some(file)) => std::fs::read_to_string(base.join(file))
                .map(|s| s.trim_end_matches(['\n', '\r']).to_owned())
                .map_err(|e| format!("secret `{name}`: cannot read `{file}`: {}", e.kind())),
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
