//! The values templates see ([`Context`]: params, secrets, vars, `run`, `now`, `env`; step
//! outputs are given to [`Context::value`]), and the rendering of a YAML node tree with it.
//! A runbook makes its context (`Context::new`, in [`crate::runbook::context`]).

use super::{Field, Masker, OMIT, render, render_field};
use crate::yaml::node::{Node, NodeKind};
use chrono::{DateTime, SecondsFormat, Utc};
use minijinja::{Environment, Value};
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet};

/// What a rendering context is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `rb plan`: secrets are `***`, step outputs are placeholders.
    Plan,
    /// `rb run`: real values.
    Run,
}

/// The values templates see, except step outputs.
#[derive(Debug, Clone)]
pub struct Context {
    pub params: BTreeMap<String, Json>,
    pub secrets: BTreeMap<String, String>,
    pub vars: Vec<(String, String)>,
    pub now: DateTime<Utc>,
    pub run_id: String,
    pub run_name: String,
    pub mode: Mode,
    /// The environment variables templates may read (`env.NAME`): those the runbook names,
    /// nothing else, so `{{ env }}` cannot dump the whole environment.
    pub env_names: BTreeSet<String>,
    /// Environment variables secrets are read from: `***` in a plan.
    pub secret_env: BTreeSet<String>,
}

impl Context {
    /// A masker for every secret value.
    pub fn masker(&self) -> Masker {
        Masker::new(self.secrets.values().cloned())
    }

    fn secrets_value(&self) -> Value {
        match self.mode {
            Mode::Plan => Value::from(minijinja::value::Serde(
                self.secrets
                    .keys()
                    .map(|k| (k.clone(), "***"))
                    .collect::<BTreeMap<_, _>>(),
            )),
            Mode::Run => Value::from(minijinja::value::Serde(&self.secrets)),
        }
    }

    /// The minijinja context, with `steps` as given.
    pub fn value(&self, steps: Value) -> Value {
        let vars: BTreeMap<&str, &str> = self
            .vars
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let env: BTreeMap<&str, String> = self
            .env_names
            .iter()
            .filter_map(|k| {
                let v = std::env::var(k).ok()?;
                let shown = self.mode == Mode::Plan && self.secret_env.contains(k);
                Some((k.as_str(), if shown { "***".to_owned() } else { v }))
            })
            .collect();
        minijinja::context! {
            params => Value::from(minijinja::value::Serde(&self.params)),
            secrets => self.secrets_value(),
            vars => Value::from(minijinja::value::Serde(vars)),
            steps => steps,
            run => minijinja::context! { id => self.run_id.clone(), name => self.run_name.clone() },
            now => self.now.to_rfc3339_opts(SecondsFormat::Secs, true),
            env => Value::from(minijinja::value::Serde(env)),
        }
    }
}

/// Render every string of a node tree. A rendered string stays the exact text (`007` is not
/// `7`); a field that wants a number or boolean reads it as one (`level: "{{ params.level }}"`).
pub fn render_node(
    node: &Node,
    env: &Environment<'static>,
    ctx: &Value,
) -> Result<Node, (minijinja::Error, miette::SourceSpan)> {
    let kind = match &node.kind {
        NodeKind::Str(s) if s.contains("{{") || s.contains("{%") => {
            NodeKind::Rendered(render(env, s, ctx.clone()).map_err(|e| (e, node.span))?)
        }
        NodeKind::Seq(items) => {
            let mut out = Vec::with_capacity(items.len());
            for n in items {
                let r = render_node(n, env, ctx)?;
                // `omit` in a list leaves the item out.
                if !matches!(&r.kind, NodeKind::Rendered(s) if s == OMIT) {
                    out.push(r);
                }
            }
            NodeKind::Seq(out)
        }
        NodeKind::Map(entries) => {
            let mut out = Vec::with_capacity(entries.len());
            for (k, v) in entries {
                match &v.kind {
                    NodeKind::Str(s) if s.contains("{{") || s.contains("{%") => {
                        match render_field(env, s, ctx.clone()).map_err(|e| (e, v.span))? {
                            Field::Omit => {}
                            Field::Text(t) => {
                                out.push((k.clone(), Node::new(NodeKind::Rendered(t), v.span)));
                            }
                            Field::Native(json) => {
                                out.push((k.clone(), Node::from_json(&json, v.span)));
                            }
                        }
                    }
                    _ => out.push((k.clone(), render_node(v, env, ctx)?)),
                }
            }
            NodeKind::Map(out)
        }
        other => other.clone(),
    };
    Ok(Node::new(kind, node.span))
}

/// The hosts with `docker` rendered: it may name `params`, `vars` and `env` (`docker: "{{
/// params.lost_site }}"`, so a drill can be pointed at any engine). A value that does not
/// render stays as written (connecting then says why).
pub fn rendered_hosts(
    hosts: &BTreeMap<String, crate::docker::HostSpec>,
    ctx: &minijinja::Value,
) -> BTreeMap<String, crate::docker::HostSpec> {
    let env = super::environment();
    hosts
        .iter()
        .map(|(name, spec)| {
            let mut spec = spec.clone();
            if spec.docker.contains("{{")
                && let Ok(r) = super::render(&env, &spec.docker, ctx.clone())
            {
                spec.docker = r;
            }
            (name.clone(), spec)
        })
        .collect()
}
