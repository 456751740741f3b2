//! The command line's contract: usage errors exit 1 (never clap's 2, which CI reads as
//! "changes present"), flags that need each other are refused alone, an empty policy set is
//! said out loud, and `graph --explain` tells why each upstream tag was selected or dropped.

use std::path::Path;
use std::process::{Command, Output};

const CONFIG: &str = r#"
policies = ["policies"]

[registries.local]
host = "127.0.0.1:9"
tls_verify = false
"#;

const POLICY: &str = r#"
apiVersion: houba.io/v1alpha1
kind: MirrorPolicy
metadata: {name: busybox}
spec:
  source: {registry: docker.io, repository: library/busybox}
  defaults:
    destinations: [{registry: local, repository: busybox}]
  imports:
    - name: stable
      tags:
        includeRegex: '^1\.'
        excludeRegex: ['-rc']
        semver: ">=1.36, <2"
        latest: 2
    - name: pinned
      tags: {names: ["1.36.0"]}
"#;

const TAGS: &str = r#"{"docker.io/library/busybox":
  ["1.35.0", "1.36.0", "1.37.0", "1.38.0", "1.38.1-rc1", "2.0.0", "2.1.0-beta.1", "musl"]}"#;

fn workspace(with_policy: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("houba.toml"), CONFIG).unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    if with_policy {
        std::fs::write(dir.path().join("policies/busybox.yaml"), POLICY).unwrap();
    }
    std::fs::write(dir.path().join("tags.json"), TAGS).unwrap();
    dir
}

fn houba(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_houba"))
        .current_dir(dir)
        .args(args)
        .env_clear()
        .env("NO_COLOR", "1")
        .env("HOME", dir)
        .output()
        .expect("houba runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn every_usage_error_exits_one_with_clap_message() {
    let dir = workspace(true);
    let cases: &[&[&str]] = &[
        &["plan", "--detailed-exitcode", "--formt", "json"],
        &["validate", "--formt", "json"],
        &["graph", "--formt", "json"],
        &["graph", "--format", "svg"],
        &["apply", "--nope"],
        &["drift", "--formt", "json"],
        &["show"],
        &["show", "plan.json", "--formt", "json"],
        &["frobnicate"],
        &[],
        &["plan", "--shard-index", "1"],
        &["apply", "--auto", "--shard-index", "0"],
        &["drift", "--shard-index", "x", "--shard-count", "2"],
    ];
    for args in cases {
        let output = houba(dir.path(), args);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "houba {args:?}\n{stderr}");
        assert!(
            stderr.contains("Usage:") || stderr.starts_with("error:"),
            "houba {args:?} prints clap's message:\n{stderr}"
        );
    }
    let shard = text(&houba(dir.path(), &["plan", "--shard-index", "1"]).stderr);
    assert!(shard.contains("--shard-count"), "{shard}");
    for args in [&["--help"][..], &["plan", "--help"], &["--version"]] {
        let output = houba(dir.path(), args);
        assert_eq!(output.status.code(), Some(0), "houba {args:?}");
        assert!(!output.stdout.is_empty());
    }
}

#[test]
fn graph_explain_gives_the_reason_for_every_upstream_tag() {
    let dir = workspace(true);
    let output = houba(dir.path(), &["graph", "--explain", "--tags", "tags.json"]);
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let lines: Vec<String> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    for expected in [
        "busybox/stable (docker.io/library/busybox)",
        "2.1.0-beta.1 dropped: does not match includeRegex ^1\\.",
        "1.38.1-rc1 dropped: excludeRegex -rc",
        "1.38.0 selected: includeRegex, semver >=1.36, <2, latest 2",
        "1.37.0 selected: includeRegex, semver >=1.36, <2, latest 2",
        "1.36.0 dropped: not in latest 2",
        "1.35.0 dropped: outside semver >=1.36, <2",
        "musl dropped: does not match includeRegex ^1\\.",
        "busybox/pinned (docker.io/library/busybox)",
        "1.36.0 selected: names",
        "1.37.0 dropped: not in names (names given alone)",
    ] {
        assert!(
            lines.iter().any(|l| l == expected),
            "missing `{expected}` in:\n{stdout}"
        );
    }
    let json = houba(
        dir.path(),
        &[
            "graph",
            "--explain",
            "--format",
            "json",
            "--tags",
            "tags.json",
        ],
    );
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let pinned = &doc["imports"][1];
    assert_eq!(pinned["import"], "pinned");
    let selected: Vec<&str> = pinned["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["selected"] == true)
        .map(|t| t["tag"].as_str().unwrap())
        .collect();
    assert_eq!(selected, ["1.36.0"]);
}

#[test]
fn an_empty_policy_directory_warns_and_fails_an_unattended_apply() {
    let dir = workspace(false);
    for args in [&["validate"][..], &["graph", "--tags", "tags.json"]] {
        let output = houba(dir.path(), args);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "houba {args:?}\n{stderr}");
        assert!(
            stderr.contains("warning: no policies found in policies: is the volume mounted?"),
            "houba {args:?}\n{stderr}"
        );
    }
    let output = houba(dir.path(), &["apply", "--auto"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no policies found in policies: is the volume mounted?"),
        "{stderr}"
    );
    assert!(stderr.contains("Nothing was applied"), "{stderr}");
}

#[test]
fn validate_refuses_unknown_zones_and_conflicting_steps_with_their_place() {
    let dir = workspace(false);
    std::fs::write(
        dir.path().join("houba.toml"),
        format!("{CONFIG}\n[package_mirrors.internal]\napt = \"http://127.0.0.1:9/debian\"\n"),
    )
    .unwrap();
    for case in ["unknown-timezone", "run-with-rewrite-package-sources"] {
        std::fs::copy(
            Path::new("testdata/policies/invalid").join(format!("{case}.yaml")),
            dir.path().join("policies").join(format!("{case}.yaml")),
        )
        .unwrap();
    }
    let output = houba(dir.path(), &["validate"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    for expected in [
        "houba::policy::unknown-timezone",
        "policies/unknown-timezone.yaml:15:31",
        "`Mars/Olympus` is not a zone of the IANA time zone database",
        "did you mean `Europe/Paris`?",
        "houba::policy::step-conflict",
        "policies/run-with-rewrite-package-sources.yaml:24:15",
        "combines `run` with `rewritePackageSources`",
    ] {
        assert!(
            stderr.contains(expected),
            "missing `{expected}` in:\n{stderr}"
        );
    }
}
