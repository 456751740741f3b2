//! `houba validate` end to end: exit codes, text and JSON output.

use std::path::Path;
use std::process::{Command, Output};

const CONFIG: &str = r#"
policies = ["policies"]

[registries.local]
host = "127.0.0.1:5000"
tls_verify = false

[ca_certs.corporate-root]
pem = "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"

[package_mirrors.internal]
apt = "http://127.0.0.1:8080/debian"
"#;

/// A directory with a houba.toml and a copy of the example policies.
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("houba.toml"), CONFIG).unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    for name in ["busybox.yaml", "debian-tz.yaml"] {
        std::fs::copy(
            Path::new("policies").join(name),
            dir.path().join("policies").join(name),
        )
        .unwrap();
    }
    dir
}

fn houba(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_houba"))
        .current_dir(dir)
        .args(["--config", "houba.toml"])
        .args(args)
        .env_remove("HOUBA_CONFIG")
        .env("NO_COLOR", "1")
        .output()
        .expect("houba runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn valid_policies_print_a_one_line_summary_and_exit_zero() {
    let dir = workspace();
    let output = houba(dir.path(), &["validate"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(text(&output.stdout), "2 policies, 2 imports: OK\n");
}

#[test]
fn every_problem_is_printed_with_place_and_help_and_the_exit_code_is_one() {
    let dir = workspace();
    std::fs::write(
        dir.path().join("policies/broken.yaml"),
        "apiVersion: houba.io/v1alpha1\nkind: MirrorPolicy\nmetadata: {name: broken}\nspec:\n  source: {registry: docker.io, repository: library/broken}\n  imports:\n    - name: a\n      tags: {semver: '>>1', latst: 3}\n      destinations: [{registry: lcoal, repository: broken}]\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("policies/syntax.yml"), "kind: [\n").unwrap();
    let output = houba(dir.path(), &["validate", "policies"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    for expected in [
        "houba::policy::unknown-field",
        "policies/broken.yaml:8:29",
        "did you mean `latest`?",
        "houba::policy::unknown-registry",
        "did you mean `local`?",
        "houba::policy::yaml",
        "policies/syntax.yml",
        "houba::policy::invalid-semver-range",
        "4 problems in 2 files",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    assert!(text(&output.stdout).is_empty());
}

#[test]
fn json_output_lists_every_diagnostic_with_its_place() {
    let dir = workspace();
    std::fs::write(
        dir.path().join("policies/owner.yaml"),
        "apiVersion: houba.io/v1alpha1\nkind: MirrorPolicy\nmetadata: {name: owner}\nspec:\n  source: {registry: docker.io, repository: library/owner}\n  imports:\n    - name: a\n      owners: [\"group:\"]\n      destinations: [{registry: local, repository: owner}]\n",
    )
    .unwrap();
    let output = houba(dir.path(), &["validate", "--format", "json"]);
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(report["ok"], false);
    assert_eq!(report["policies"], 2);
    assert_eq!(report["imports"], 2);
    let diagnostics = report["diagnostics"].as_array().unwrap();
    assert_eq!(diagnostics.len(), 1);
    let diagnostic = &diagnostics[0];
    assert_eq!(diagnostic["code"], "houba::policy::invalid-owner");
    assert_eq!(diagnostic["severity"], "error");
    assert_eq!(diagnostic["file"], "policies/owner.yaml");
    assert_eq!(
        (diagnostic["line"].as_u64(), diagnostic["column"].as_u64()),
        (Some(8), Some(16))
    );
    assert!(diagnostic["help"].as_str().unwrap().contains("entity ref"));
    assert!(diagnostic["message"].as_str().unwrap().contains("group:"));
}

#[test]
fn json_output_on_success_says_ok() {
    let dir = workspace();
    let output = houba(
        dir.path(),
        &["validate", "--format=json", "policies/busybox.yaml"],
    );
    assert!(output.status.success());
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        report,
        serde_json::json!({"ok": true, "policies": 1, "imports": 1, "diagnostics": []})
    );
}

#[test]
fn a_missing_path_is_reported_not_a_crash() {
    let dir = workspace();
    let output = houba(dir.path(), &["validate", "nowhere"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("houba::policy::unreadable-path"),
        "{stderr}"
    );
    assert!(stderr.contains("nowhere"), "{stderr}");
}

#[test]
fn help_teaches_with_examples() {
    let dir = workspace();
    let output = houba(dir.path(), &["validate", "--help"]);
    assert!(output.status.success());
    let help = text(&output.stdout);
    for expected in [
        "Examples:",
        "houba validate policies/busybox.yaml",
        "--format",
        "Exit status",
    ] {
        assert!(help.contains(expected), "missing {expected:?} in:\n{help}");
    }
}

#[test]
fn json_output_shows_both_places_of_a_duplicate_policy_name() {
    let dir = workspace();
    let copy = std::fs::read_to_string(dir.path().join("policies/busybox.yaml"))
        .unwrap()
        .replace("repository: busybox", "repository: busybox-copy");
    std::fs::write(dir.path().join("policies/zz-copy.yaml"), copy).unwrap();
    let output = houba(dir.path(), &["validate", "--format", "json"]);
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let diagnostic = &report["diagnostics"][0];
    assert_eq!(diagnostic["code"], "houba::policy::duplicate-policy");
    assert_eq!(diagnostic["file"], "policies/zz-copy.yaml");
    assert_eq!(diagnostic["related"][0]["file"], "policies/busybox.yaml");
    assert_eq!(diagnostic["related"][0]["line"], 5);
}

/// `houba validate | head -1`: the reader goes away before houba writes; houba ends quietly,
/// and its exit status still says whether the policies are valid.
#[test]
fn a_closed_stdout_ends_quietly() {
    let dir = workspace();
    for args in [&["validate"][..], &["validate", "--format", "json"]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let output = Command::new(env!("CARGO_BIN_EXE_houba"))
            .current_dir(dir.path())
            .args(["--config", "houba.toml"])
            .args(args)
            .env_remove("HOUBA_CONFIG")
            .stdout(writer)
            .output()
            .expect("houba runs");
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}
