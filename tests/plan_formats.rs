//! The JSON plan and the saved plan file are documented formats: their committed JSON Schemas
//! are the ones the code generates, and real `houba plan` output validates against them (with
//! `check-jsonschema`, a validator nobody here wrote).
//!
//! After changing a format, regenerate the schemas with
//! `UPDATE_SCHEMA=1 cargo test --test plan_formats` and commit the result.

mod support;

use std::path::Path;
use std::process::Command;

use support::houba::{Policy, Workspace, push_upstream};
use support::{Auth, distribution, ferro};

const JSON_SCHEMA: &str = "docs/reference/plan-json.schema.json";
const FILE_SCHEMA: &str = "docs/reference/plan-file.schema.json";

fn check_committed(path: &str, generated: &serde_json::Value) {
    let text = serde_json::to_string_pretty(generated).expect("schema serialises") + "\n";
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(path, &text).expect("write the schema");
        return;
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == text,
        "{path} is stale: regenerate it with `UPDATE_SCHEMA=1 cargo test --test plan_formats`"
    );
}

#[test]
fn the_committed_schemas_are_up_to_date() {
    check_committed(JSON_SCHEMA, &houba::plan::render::json_schema());
    check_committed(FILE_SCHEMA, &houba::plan::file::json_schema());
}

#[test]
fn the_formats_are_versioned_and_documented() {
    let json = houba::plan::render::json_schema();
    let file = houba::plan::file::json_schema();
    for (schema, doc) in [
        (&json, "docs/reference/plan-json.md"),
        (&file, "docs/reference/plan-file.md"),
    ] {
        assert!(
            schema["required"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == "format_version"),
            "{schema:#}"
        );
        let text = std::fs::read_to_string(doc).expect("the format is documented");
        for field in schema["properties"].as_object().unwrap().keys() {
            assert!(
                text.contains(&format!("`{field}`")),
                "{doc} does not document `{field}`"
            );
        }
    }
}

fn validate(schema: &str, document: &Path) {
    let out = Command::new("check-jsonschema")
        .args(["--schemafile", schema])
        .arg(document)
        .output()
        .expect("check-jsonschema runs (scripts/test.d/plan.sh installs it)");
    assert!(
        out.status.success(),
        "{} does not validate against {schema}:\n{}{}",
        document.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A plan with placements, aliases, a prune and drift, in both formats, validates against the
/// committed schemas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_plans_validate_against_the_committed_schemas() {
    let (upstream, destination) = (ferro().await, distribution(Auth::None).await);
    for tag in ["1.36.0", "1.37.0"] {
        push_upstream(upstream.client().as_ref(), "busybox", tag, 1).await;
    }
    let ws = Workspace::new(upstream.host(), &[("dest", destination.host())]);
    let mut policy = Policy::new("busybox", "busybox", r"^1\.3[67]\.\d+$", "dest");
    policy.aliases = vec!["latest".into()];
    ws.policy("busybox", &policy.yaml());
    ws.apply_and_converge().await;
    push_upstream(upstream.client().as_ref(), "busybox", "1.37.1", 1).await;
    policy.include = r"^1\.37\.\d+$".into();
    ws.policy("busybox", &policy.yaml());

    let json = ws.run(&["plan", "--format", "json"]).await;
    json.expect_code(0);
    let kinds: Vec<String> = json.json()["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap().to_string())
        .collect();
    assert!(
        kinds.contains(&"copy".into())
            && kinds.contains(&"alias".into())
            && kinds.contains(&"prune".into()),
        "{kinds:?}"
    );
    let json_path = ws.path("plan-output.json");
    std::fs::write(&json_path, &json.stdout).unwrap();
    validate(JSON_SCHEMA, &json_path);

    let file = ws.path("saved.plan");
    ws.run(&["plan", "-o", file.to_str().unwrap()])
        .await
        .expect_code(0);
    validate(FILE_SCHEMA, &file);
    // And the saved plan applies.
    ws.run(&["apply", file.to_str().unwrap()])
        .await
        .expect_code(0);
}
