//! The `notify:` section: webhooks told about a run (started, failed, succeeded, over its RTO,
//! waiting at a gate). Decoding and the pure checks; posting is `report::notify`'s.

use super::diagnostic::{Diagnostic, suggest};
use super::load::decode_all;
use super::model::Runbook;
use crate::duration::Dur;
use crate::yaml::node::{Node, NodeKind};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One webhook and the events it is told about.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifySpec {
    /// The secret (a name under `secrets:`) whose value is the webhook URL; the URL itself
    /// never appears in the runbook, a plan, a journal or a report.
    pub webhook: String,
    /// The events posted: `start`, `success`, `failure` (a failed, rejected or interrupted
    /// run), `over_rto` (the run is still going when its RTO has passed), `gate` (the run
    /// stopped at a gate; the message holds the command that approves it). Default:
    /// `[failure, over_rto, gate]`.
    #[serde(default = "default_on")]
    pub on: Vec<NotifyOn>,
    /// How long one post may take before it is given up (default `5s`, at most `60s`).
    #[serde(default)]
    pub timeout: Option<Dur>,
}

/// An event a webhook can be told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotifyOn {
    Start,
    Success,
    Failure,
    OverRto,
    Gate,
}

impl NotifyOn {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Success => "success",
            Self::Failure => "failure",
            Self::OverRto => "over_rto",
            Self::Gate => "gate",
        }
    }
}

/// What needs attention: a failure, a run over its RTO, a gate waiting for someone.
pub fn default_on() -> Vec<NotifyOn> {
    vec![NotifyOn::Failure, NotifyOn::OverRto, NotifyOn::Gate]
}

/// The default time one post may take.
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// The longest `timeout` accepted: a notification never holds a run up for long.
pub const MAX_TIMEOUT: std::time::Duration = std::time::Duration::from_mins(1);

/// A decoded `notify:` entry with the YAML it came from (for diagnostics).
#[derive(Debug, Clone)]
pub struct Notify {
    pub spec: NotifySpec,
    pub node: Node,
}

impl Notify {
    /// As a plan shows it: `*** (ops_webhook) on failure, over_rto, gate` (the URL is a
    /// secret).
    pub fn planned(&self) -> String {
        let on: Vec<&str> = self.spec.on.iter().map(|e| e.as_str()).collect();
        format!("*** ({}) on {}", self.spec.webhook, on.join(", "))
    }
}

impl NotifySpec {
    pub fn timeout(&self) -> std::time::Duration {
        self.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0)
    }
}

/// `notify:` a list of webhooks (absent or null: none).
pub fn decode(node: Option<&Node>, diags: &mut Vec<Diagnostic>) -> Vec<Notify> {
    let Some(node) = node.filter(|n| n.kind != NodeKind::Null) else {
        return Vec::new();
    };
    let Some(items) = node.as_seq() else {
        diags.push(
            Diagnostic::new("rb::invalid-value", "`notify` must be a list of webhooks")
                .label(node.span, format!("found {}", node.type_name()))
                .help("write `notify: [{ webhook: SECRET, on: [failure, gate] }]`"),
        );
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            decode_all::<NotifySpec>(item, &[], diags).map(|spec| Notify {
                spec,
                node: item.clone(),
            })
        })
        .collect()
}

/// Each webhook names a declared secret, listens to something, and gives up soon enough.
pub fn check(runbook: &Runbook, diags: &mut Vec<Diagnostic>) {
    let secrets: Vec<&str> = runbook.secrets.iter().map(|(n, _)| n.as_str()).collect();
    for Notify { spec, node } in &runbook.notify {
        let at = |key: &str| node.get(key).map_or(node.span, |n| n.span);
        if !secrets.contains(&spec.webhook.as_str()) {
            let (message, help) = if spec.webhook.contains("://") {
                (
                    "`webhook` holds a URL; it names the secret that holds one".to_owned(),
                    "the URL is a secret: declare it under `secrets:` (e.g. `ops_webhook: { env: \
                     OPS_WEBHOOK_URL }`) and name it here"
                        .to_owned(),
                )
            } else {
                (
                    format!(
                        "`webhook` names `{}`, which is not a secret of this runbook",
                        spec.webhook
                    ),
                    suggest(&spec.webhook, &secrets, "secrets"),
                )
            };
            diags.push(
                Diagnostic::new("rb::notify", message)
                    .label(at("webhook"), "the secret holding the webhook URL")
                    .help(help),
            );
        }
        if spec.on.is_empty() {
            diags.push(
                Diagnostic::new("rb::notify", "`on` lists no event: this webhook is never told anything")
                    .label(at("on"), "here")
                    .help("list some of `start`, `success`, `failure`, `over_rto`, `gate`, or leave `on` out for `[failure, over_rto, gate]`"),
            );
        }
        if spec
            .timeout
            .is_some_and(|t| t.0.is_zero() || t.0 > MAX_TIMEOUT)
        {
            diags.push(
                Diagnostic::new(
                    "rb::notify",
                    "a notification `timeout` is more than nothing and at most `60s`",
                )
                .label(at("timeout"), "here")
                .help(
                    "a webhook that does not answer must not hold the run up; the default is `5s`",
                ),
            );
        }
    }
}
