//! The typed runbook model (before templates are rendered).

use crate::docker::HostSpec;
use crate::duration::Dur;
use crate::event::RestorePoint;
use crate::steps::StepKind;
use crate::steps::common::StepCommon;
use crate::yaml::de::DeError;
use crate::yaml::node::Node;
use minijinja::{Environment, Value};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// The runbook format version this build reads.
pub const FORMAT_VERSION: u32 = 1;

/// A loaded runbook. Steps whose configuration did not decode have `kind: None`.
#[derive(Debug, Clone)]
pub struct Runbook {
    pub path: PathBuf,
    pub source: Arc<String>,
    pub root: Node,
    pub name: String,
    pub description: Option<String>,
    pub objectives: Objectives,
    pub params: Vec<(String, ParamSpec)>,
    pub secrets: Vec<(String, SecretSpec)>,
    pub vars: Vec<(String, String)>,
    pub hosts: BTreeMap<String, HostSpec>,
    /// Object stores steps read and write (`STORE:KEY`).
    pub stores: BTreeMap<String, crate::steps::store::StoreSpec>,
    /// Target locks (templates), taken before the first step and held until the run ends:
    /// two runs, of any runbooks, that name the same lock never run at once.
    pub locks: Vec<String>,
    /// Webhooks told about the run (`notify:`).
    pub notify: Vec<super::notify::Notify>,
    pub steps: Vec<Step>,
}

/// One step: the shared keys, the type's configuration and the YAML it came from.
#[derive(Debug, Clone)]
pub struct Step {
    pub common: StepCommon,
    pub kind: Option<StepKind>,
    /// The step's whole mapping.
    pub node: Node,
    /// The mapping without the shared keys: what templates render and the type decodes.
    pub config_node: Node,
    /// For a step expanded from a `for_each` (`dump[billing]`): its item.
    pub item: Option<Arc<Item>>,
}

/// The item of a step expanded from a `for_each` group.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The id of the `for_each` step (the group): `dump`.
    pub group: String,
    /// The item's key, which forms the id: `billing` in `dump[billing]`.
    pub key: String,
    /// The item's position in the list (0-based).
    pub index: usize,
    /// The item itself, as templates see it (`item`).
    pub value: Json,
    /// At most this many items of the group run at once (`max_parallel`).
    pub max_parallel: Option<usize>,
    /// A failure of this item stops the run (`fail_fast: true`); else the other items go on
    /// and the run fails at the end.
    pub fail_fast: bool,
}

impl Runbook {
    /// The directory relative paths in the runbook resolve against (absolute).
    pub fn base_dir(&self) -> PathBuf {
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned())
    }
}

impl Step {
    pub fn id(&self) -> &str {
        &self.common.id
    }

    /// Render the step's configuration with `ctx` and decode it into its type: what a plan
    /// shows and what a run starts (each says what went wrong in its own words).
    /// Where in the step a render failed: "field `command[1]` (`{{ … }}`) of step `use`", the
    /// template cut to 80 characters; minijinja alone would say "<string>:1".
    pub fn field_at(&self, span: miette::SourceSpan) -> String {
        let what = match self.config_node.string_at(span) {
            Some((field, text)) => {
                let text = text.trim();
                let short: String = text.chars().take(80).collect();
                let more = if short.len() < text.len() { "…" } else { "" };
                format!("field `{field}` (`{short}{more}`)")
            }
            None => "a field".to_owned(),
        };
        format!("{what} of step `{}`", self.id())
    }

    pub fn render(&self, env: &Environment<'static>, ctx: &Value) -> Result<StepKind, RenderError> {
        let ctx = &self.scope(ctx.clone());
        let node = crate::template::render_node(&self.config_node, env, ctx)
            .map_err(|(e, span)| RenderError::Template(e, span))?;
        StepKind::decode(&self.common.type_name, &node).map_err(RenderError::Decode)
    }

    /// The template context of this step: `ctx`, plus `item`, `item_index` and `item_key` for
    /// a step expanded from a `for_each`.
    pub fn scope(&self, ctx: Value) -> Value {
        match &self.item {
            None => ctx,
            Some(item) => minijinja::context! {
                item => Value::from(minijinja::value::Serde(item.value.clone())),
                item_index => item.index,
                item_key => item.key.clone(),
                ..ctx
            },
        }
    }

    /// The fingerprint of the step's definition rendered as `config` (masked): resume runs a
    /// step again when it changed.
    pub fn fingerprint(&self, config: &Json) -> String {
        let doc = serde_json::json!({
            "type": self.common.type_name,
            "config": config,
            "when": self.common.when,
            "always": self.common.always,
            "continue_on_error": self.common.continue_on_error,
        });
        let digest = Sha256::digest(doc.to_string().as_bytes());
        hex::encode(&digest[..8])
    }
}

/// Why a step's configuration could not be rendered.
#[derive(Debug)]
pub enum RenderError {
    /// A template failed, at this span of the step.
    Template(minijinja::Error, miette::SourceSpan),
    /// The rendered configuration does not decode into the step's type.
    Decode(DeError),
}

/// Recovery objectives.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Objectives {
    /// Recovery time objective: the whole run must finish within this.
    pub rto: Option<Dur>,
    /// Recovery point objective: the newest good backup may be at most this old.
    pub rpo: Option<Dur>,
    /// Partial objectives: named sets of steps that must be done within their own RTO.
    #[serde(default)]
    pub milestones: Vec<Milestone>,
    /// For recovery runbooks: where the time of the restored data comes from (the restored
    /// backup's timestamp, or the PITR target). The report's achieved RPO is its age at the
    /// start of the run.
    pub restore_point: Option<RestorePoint>,
}

/// A partial objective.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Milestone {
    /// Milestone name.
    pub name: String,
    /// Time from the start of the run by which its steps must have finished.
    pub rto: Dur,
    /// The steps that make up the milestone.
    pub steps: Vec<String>,
}

/// The type of a param.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    String,
    Int,
    Bool,
    Duration,
    Path,
    /// A list (of strings, or of mappings): what `for_each` runs over. `-p name=a,b` gives
    /// a list of strings; a params file may give mappings.
    List,
}

/// A param: a value the operator may override with `-p key=value` or `--params-file`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    /// Value type: string, int, bool, duration, path, list.
    #[serde(rename = "type", default = "string_type")]
    pub param_type: ParamType,
    /// Value when none is given.
    pub default: Option<serde_json::Value>,
    /// A value must be given (instead of a default).
    #[serde(default)]
    pub required: bool,
    /// What the param means.
    pub description: Option<String>,
}

fn string_type() -> ParamType {
    ParamType::String
}

/// Where a secret comes from. Its value is never printed anywhere.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretSpec {
    /// Environment variable holding the secret.
    pub env: Option<String>,
    /// File holding the secret (trailing newline removed).
    pub file: Option<String>,
    /// What the secret is.
    pub description: Option<String>,
}
