//! The JSON Schema of the runbook format, generated from the same types the loader decodes.
//!
//! Each step type's schema is its config struct's schema with the common keys added, chosen by
//! `type` with `if`/`then` (editors then report errors against the right type instead of a
//! `oneOf` that failed everywhere).

use crate::docker::HostSpec;
use crate::runbook::model::{Objectives, ParamSpec, SecretSpec};
use crate::steps::common::StepCommon;
use crate::steps::{STEP_TYPES, StepKind};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

/// The schema as a JSON value.
pub fn value() -> Value {
    let mut g = SchemaGenerator::new(SchemaSettings::draft2020_12());
    let common = StepCommon::json_schema(&mut g).to_value();
    let mut common_props = common["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    common_props.remove("type");
    let branches: Vec<Value> = StepKind::schemas(&mut g)
        .into_iter()
        .map(|(name, schema)| {
            let schema = schema.to_value();
            let mut props: Map<String, Value> = common_props.clone();
            props.insert("type".into(), json!({ "const": name }));
            if let Some(own) = schema["properties"].as_object() {
                props.extend(own.clone());
            }
            let mut required = vec![json!("id"), json!("type")];
            if let Some(r) = schema["required"].as_array() {
                required.extend(r.iter().cloned());
            }
            json!({
                "if": { "properties": { "type": { "const": name } }, "required": ["type"] },
                "then": {
                    "description": schema.get("description").cloned().unwrap_or(Value::Null),
                    "properties": props,
                    "required": required,
                    "additionalProperties": false
                }
            })
        })
        .collect();
    let objectives = g.subschema_for::<Objectives>().to_value();
    let param = g.subschema_for::<ParamSpec>().to_value();
    let secret = g.subschema_for::<SecretSpec>().to_value();
    let host = g.subschema_for::<HostSpec>().to_value();
    let store = g
        .subschema_for::<crate::steps::store::StoreSpec>()
        .to_value();
    let notify = g
        .subschema_for::<crate::runbook::notify::NotifySpec>()
        .to_value();
    let defs: Map<String, Value> = g.take_definitions(true).into_iter().collect();
    let mut schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://rb.invalid/schemas/runbook.schema.json",
        "title": "rb runbook",
        "description": "A declarative runbook for rb: backup, restore, point-in-time recovery and disaster recovery.",
        "type": "object",
        "additionalProperties": false,
        "required": ["version", "name", "steps"],
        "properties": {
            "version": { "const": 1, "description": "Runbook format version." },
            "name": { "type": "string", "pattern": "^[a-z0-9][a-z0-9_-]*$", "description": "Runbook name; names the run history." },
            "description": { "type": "string", "description": "What the runbook does." },
            "objectives": objectives,
            "params": { "type": "object", "description": "Values an operator may override with `-p name=value`.", "additionalProperties": param },
            "secrets": { "type": "object", "description": "Secret values, read from the environment or a file; never printed.", "additionalProperties": secret },
            "vars": { "type": "object", "description": "Values computed once per run, in order (templates).", "additionalProperties": { "type": ["string", "number", "boolean"] } },
            "hosts": { "type": "object", "description": "Docker Engines that steps pick with `host:`.", "additionalProperties": host },
            "stores": { "type": "object", "description": "Object stores (S3 and S3-compatible, GCS, Azure, a local directory) that steps address as `STORE:KEY`.", "additionalProperties": store },
            "locks": {
                "type": "array",
                "items": { "type": "string", "minLength": 1 },
                "description": "Target locks, e.g. `postgres/{{ params.container }}` (templates: params, vars, env, run, now; no secrets, no step outputs). Taken in the state directory before the first step and held until the run ends; a run of any runbook that names the same lock waits (`--lock-wait`) or fails naming the holder."
            },
            "notify": {
                "type": "array",
                "items": notify,
                "description": "Webhooks (Slack-compatible: a JSON `text` with `blocks`) told when the run starts, fails, succeeds, goes over its RTO or stops at a gate; a failed post is a warning in the journal, never a failed run."
            },
            "steps": {
                "type": "array",
                "minItems": 1,
                "description": "The steps; each needs the one before it unless `needs` says otherwise.",
                "items": {
                    "type": "object",
                    "required": ["id", "type"],
                    "properties": {
                        "id": { "type": "string", "pattern": "^[a-z][a-z0-9_-]*$" },
                        "type": { "enum": STEP_TYPES, "description": "The step type." }
                    },
                    "allOf": branches
                }
            }
        },
        "$defs": defs
    });
    allow_templates(&mut schema);
    schema
}

/// Numbers and booleans may also be written as templates (`level: "{{ params.level }}"`), and
/// so may lists of strings (`command: "{{ [...] if x else omit }}"`).
fn allow_templates(v: &mut Value) {
    match v {
        Value::Object(map) => {
            let scalar = |t: &Value| matches!(t.as_str(), Some("integer" | "number" | "boolean"));
            let array = |t: &Value| t.as_str() == Some("array");
            let strings = map
                .get("type")
                .is_some_and(|t| array(t) || t.as_array().is_some_and(|a| a.iter().any(array)))
                && map
                    .get("items")
                    .and_then(|i| i.get("type"))
                    .and_then(Value::as_str)
                    == Some("string");
            let is_scalar = strings
                || map.get("type").is_some_and(|t| {
                    scalar(t) || t.as_array().is_some_and(|a| a.iter().any(scalar))
                });
            if is_scalar {
                let original = Value::Object(std::mem::take(map));
                map.insert(
                    "anyOf".into(),
                    json!([original, { "type": "string", "pattern": "\\{\\{", "description": "A template rendered at run time." }]),
                );
            } else {
                map.values_mut().for_each(allow_templates);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(allow_templates),
        _ => {}
    }
}

/// The schema as pretty JSON text (what `rb schema` prints and the repo commits).
pub fn json() -> String {
    serde_json::to_string_pretty(&value()).expect("a JSON value serializes")
}
