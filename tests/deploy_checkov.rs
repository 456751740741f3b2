//! The rendered reference deployment passes `checkov --framework kubernetes --skip-download`
//! except for the findings listed, each with its reason, in deploy/checkov-skips.yaml (and that
//! list holds no stale entry); the Makefile's `render` and `help` work.

mod deploy_support;

use std::collections::BTreeMap;
use std::process::Command;

use deploy_support::{deploy, documents, rendered, repo, run_ok, tool};
use serde_json::Value;

#[derive(Debug)]
struct Skip {
    check: String,
    resources: Vec<String>,
}

#[test]
fn checkov_finds_nothing_beyond_the_committed_skips() {
    let checkov = tool("checkov", "pip install checkov");
    let text = std::fs::read_to_string(deploy().join("checkov-skips.yaml")).unwrap();
    let file: Value = serde_saphyr::from_str(&text).unwrap();
    let skips: Vec<Skip> = file["skips"]
        .as_array()
        .expect("skips: a list")
        .iter()
        .map(|s| {
            let reason = s["reason"].as_str().unwrap_or("").trim();
            assert!(reason.len() > 20, "skip {s} has no real reason");
            Skip {
                check: s["check"].as_str().unwrap().to_string(),
                resources: s["resources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_str().unwrap().to_string())
                    .collect(),
            }
        })
        .collect();

    // Not a dot-directory: checkov does not look into hidden directories.
    let dir = tempfile::Builder::new()
        .prefix("deploy-checkov-")
        .tempdir()
        .unwrap();
    for r in rendered() {
        std::fs::write(dir.path().join(format!("{}.yaml", r.name)), &r.yaml).unwrap();
    }
    let out = Command::new(checkov)
        .args([
            "--framework",
            "kubernetes",
            "--skip-download",
            "--quiet",
            "-o",
            "json",
            "-d",
        ])
        .arg(dir.path())
        .env("BC_SKIP_MAPPING", "TRUE")
        .output()
        .expect("checkov runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "checkov printed no JSON report ({e}):\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let reports = match report {
        Value::Array(r) => r,
        one => vec![one],
    };
    let mut passed = 0;
    let mut used: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut unexpected = vec![];
    for r in &reports {
        passed += r["summary"]["passed"].as_u64().unwrap_or(0);
        for f in r["results"]["failed_checks"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let check = f["check_id"].as_str().unwrap().to_string();
            let resource = f["resource"].as_str().unwrap().to_string();
            if skips
                .iter()
                .any(|s| s.check == check && s.resources.contains(&resource))
            {
                *used.entry((check, resource)).or_default() += 1;
            } else {
                unexpected.push(format!(
                    "{check} {} on {resource} in {}",
                    f["check_name"].as_str().unwrap_or(""),
                    f["file_path"].as_str().unwrap_or("")
                ));
            }
        }
    }
    assert!(
        passed > 100,
        "checkov ran too few checks ({passed}):\n{stdout}"
    );
    assert!(
        unexpected.is_empty(),
        "checkov findings not in deploy/checkov-skips.yaml:\n{}",
        unexpected.join("\n")
    );
    for s in &skips {
        for resource in &s.resources {
            assert!(
                used.contains_key(&(s.check.clone(), resource.clone())),
                "stale skip: {} no longer fails on {resource}; remove it from deploy/checkov-skips.yaml",
                s.check
            );
        }
    }
}

#[test]
fn make_render_and_help_work() {
    let make = tool("make", "apt-get install make");
    let out = run_ok(
        Command::new(&make)
            .args(["-s", "-C"])
            .arg(repo())
            .arg("render"),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for r in rendered() {
        let first = documents(&r.yaml).into_iter().next().unwrap();
        assert!(
            text.contains(&format!(
                "name: {}",
                first["metadata"]["name"].as_str().unwrap()
            )),
            "make render lacks {}",
            r.name
        );
    }
    assert!(text.contains("kind: CronJob") && text.contains("kind: ScaledObject"));
    let out = run_ok(
        Command::new(&make)
            .args(["-s", "-C"])
            .arg(repo())
            .arg("help"),
    );
    let help = String::from_utf8_lossy(&out.stdout);
    for target in [
        "demo",
        "demo-run",
        "local",
        "local-run",
        "blast-radius",
        "blast-radius-local",
        "scan",
        "registry-ui",
        "argocd-ui",
        "logs",
        "down",
        "openbao-seed",
        "image",
        "render",
    ] {
        let line = help
            .lines()
            .find(|l| l.split_whitespace().next() == Some(target))
            .unwrap_or_else(|| panic!("make help does not list {target}:\n{help}"));
        assert!(
            line.split_whitespace().count() > 3,
            "{target} has no description: {line}"
        );
    }
}
