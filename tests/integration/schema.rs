//! The committed schema matches `rb schema`, and a real JSON Schema validator accepts every
//! shipped runbook with it (and rejects broken ones).

use crate::support::{Test, repo};

fn schema() -> serde_json::Value {
    let text = std::fs::read_to_string(repo().join("schemas/runbook.schema.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn committed_schema_has_not_drifted() {
    let ran = Test::new().args(["schema"]).expect(0);
    let committed = std::fs::read_to_string(repo().join("schemas/runbook.schema.json")).unwrap();
    assert!(
        ran.stdout.trim_end() == committed.trim_end(),
        "schemas/runbook.schema.json is out of date: run `cargo run -- schema > schemas/runbook.schema.json`"
    );
}

fn yaml_to_json(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

#[test]
fn shipped_runbooks_validate_against_the_schema() {
    let validator = jsonschema::validator_for(&schema()).expect("a valid JSON Schema");
    let files = crate::plan::walk(&repo().join("runbooks"));
    assert!(!files.is_empty());
    for f in files {
        let doc = yaml_to_json(&f);
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", f.display());
    }
}

#[test]
fn schema_rejects_what_the_loader_rejects() {
    let validator = jsonschema::validator_for(&schema()).unwrap();
    for name in [
        "unknown-step-key",
        "unknown-step-type",
        "several-unknown-keys",
        "unknown-top-key",
        "wrong-value-type",
        "unknown-enum-value",
    ] {
        let doc = yaml_to_json(&repo().join(format!("tests/fixtures/invalid/{name}.yaml")));
        assert!(!validator.is_valid(&doc), "{name} passes the schema");
    }
}

#[test]
fn schema_carries_descriptions_for_editor_hover() {
    let text = serde_json::to_string(&schema()).unwrap();
    for d in [
        "The container's name or id.",
        "Deadline for one attempt",
        "Recovery time objective",
        "Calendar windows",
    ] {
        assert!(text.contains(d), "no description {d:?} in the schema");
    }
}

#[test]
fn plan_json_schema_has_not_drifted_and_validates_a_plan() {
    let ran = Test::new().args(["schema", "plan"]).expect(0);
    let committed = std::fs::read_to_string(repo().join("schemas/plan.schema.json")).unwrap();
    assert!(
        ran.stdout.trim_end() == committed.trim_end(),
        "schemas/plan.schema.json is out of date: run `cargo run -- schema plan > schemas/plan.schema.json`"
    );
    let schema: serde_json::Value = serde_json::from_str(&committed).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");
    let plan = Test::new()
        .cwd(&repo())
        .args(["plan", "runbooks/drills/demo.yaml", "--format", "json"])
        .expect(0);
    let doc: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
}
