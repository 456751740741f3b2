//! The committed JSON Schema is the one the model generates.
//!
//! After changing the model, regenerate with
//! `UPDATE_SCHEMA=1 cargo test --test validate_schema` and commit the result.

use houba::policy::model::json_schema;

const COMMITTED: &str = "docs/reference/mirrorpolicy.schema.json";

#[test]
fn the_committed_schema_is_up_to_date() {
    let generated = serde_json::to_string_pretty(&json_schema()).expect("schema serialises") + "\n";
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(COMMITTED, &generated).expect("write the schema");
        return;
    }
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    assert!(
        committed == generated,
        "{COMMITTED} is stale: regenerate it with `UPDATE_SCHEMA=1 cargo test --test validate_schema`"
    );
}

#[test]
fn the_schema_rejects_unknown_fields_and_names_the_transform_steps() {
    let schema = json_schema();
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(
        schema["properties"]["apiVersion"]["const"],
        "houba.io/v1alpha1"
    );
    let steps: Vec<&str> = schema["$defs"]["TransformSpec"]["oneOf"]
        .as_array()
        .expect("transform steps are a oneOf")
        .iter()
        .map(|branch| branch["required"][0].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        ["injectCA", "rewritePackageSources", "setTimezone", "run"]
    );
    for (name, definition) in schema["$defs"].as_object().unwrap() {
        if definition["type"] == "object" {
            assert_eq!(
                definition["additionalProperties"], false,
                "{name} accepts unknown fields"
            );
        }
    }
}

#[test]
fn the_diagnostics_reference_lists_every_code() {
    let reference = std::fs::read_to_string("docs/reference/policy-diagnostics.md").unwrap();
    for code in houba::policy::Code::ALL {
        assert!(
            reference.contains(&format!("`{}`", code.as_str())),
            "docs/reference/policy-diagnostics.md does not describe {code}"
        );
    }
}
