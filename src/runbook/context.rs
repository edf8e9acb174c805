//! A runbook's template context: [`Context::new`] collects what its templates may read,
//! [`Context::render_vars`] renders its `vars`; a failure is a diagnostic with a span.

use super::diagnostic::Diagnostic;
use super::model::Runbook;
use crate::template::{self, Context, Masker, Mode};
use chrono::{DateTime, Utc};
use minijinja::{Environment, Value};
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet};

impl Context {
    /// The base context (no vars yet).
    pub fn new(
        runbook: &Runbook,
        params: BTreeMap<String, Json>,
        secrets: BTreeMap<String, String>,
        now: DateTime<Utc>,
        run_id: String,
        mode: Mode,
    ) -> Self {
        Self {
            params,
            secrets,
            vars: Vec::new(),
            now,
            run_id,
            run_name: runbook.name.clone(),
            mode,
            env_names: env_names(runbook),
            secret_env: runbook
                .secrets
                .iter()
                .filter_map(|(_, s)| s.env.clone())
                .collect(),
        }
    }

    /// Render the vars in order, each seeing the earlier ones.
    pub fn render_vars(
        &mut self,
        runbook: &Runbook,
        env: &Environment<'static>,
    ) -> Result<(), Diagnostic> {
        self.vars.clear();
        for (name, text) in &runbook.vars {
            let span = runbook
                .root
                .get("vars")
                .and_then(|v| v.get(name))
                .map_or(runbook.root.span, |n| n.span);
            let ctx = self.value(Value::UNDEFINED);
            let out = template::render(env, text, ctx)
                .map_err(|e| render_error(&e, span, &format!("var `{name}`"), &self.masker()))?;
            self.vars.push((name.clone(), out));
        }
        Ok(())
    }
}

/// The `NAME`s of every `env.NAME` the runbook's templates and expressions read.
fn env_names(runbook: &Runbook) -> BTreeSet<String> {
    let env = template::environment();
    let mut names = BTreeSet::new();
    runbook.root.for_each_string(&mut |_, text| {
        let refs = template::references(&env, text)
            .unwrap_or_default()
            .into_iter()
            .chain(template::expression_references(&env, text).unwrap_or_default());
        for r in refs {
            if let Some(name) = r.strip_prefix("env.") {
                names.insert(name.split('.').next().unwrap_or(name).to_owned());
            }
        }
    });
    names
}

/// A rendering failure as a diagnostic, secrets masked.
pub fn render_error(
    e: &minijinja::Error,
    span: miette::SourceSpan,
    what: &str,
    masker: &Masker,
) -> Diagnostic {
    let detail = e
        .detail()
        .map_or_else(|| e.kind().to_string(), str::to_owned);
    // A template stopped by a limit (time, size, fuel) fails whatever the params are:
    // `rb validate` reports these (it renders as a plan does, keeping only them).
    let code = if crate::template::is_limit(e) {
        RENDER_LIMIT
    } else {
        "rb::render"
    };
    Diagnostic::new(
        code,
        masker.mask(&format!("cannot render {what}: {detail}")),
    )
    .label(span, "here")
}

/// The code of a render stopped by one of rb's limits.
pub const RENDER_LIMIT: &str = "rb::render-limit";
