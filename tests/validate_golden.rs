//! Golden test of the invalid-policy corpus: every case under `testdata/policies/invalid/`
//! (a file, or a directory of files) produces exactly the diagnostics listed in its
//! `.expected` sidecar, one `code file:line:col` per line.
//!
//! After an intended change, regenerate with `UPDATE_GOLDEN=1 cargo test --test validate_golden`
//! and review the diff.

mod validate_support;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use houba::policy::{Code, load_policies};
use validate_support::{golden_line, test_settings};

const INVALID: &str = "testdata/policies/invalid";
const VALID: &str = "testdata/policies/valid";

fn cases() -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = fs::read_dir(INVALID)
        .expect("the invalid corpus exists")
        .map(|entry| entry.expect("readable corpus").path())
        .filter(|path| path.extension().is_none_or(|ext| ext != "expected"))
        .collect();
    cases.sort();
    cases
}

fn sidecar(case: &Path) -> PathBuf {
    let name = case.file_stem().expect("case name").to_string_lossy();
    case.with_file_name(format!("{name}.expected"))
}

#[test]
fn every_invalid_case_reports_exactly_its_expected_diagnostics() {
    let settings = test_settings();
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    let cases = cases();
    for case in &cases {
        let outcome = load_policies(std::slice::from_ref(case), &settings);
        let actual: Vec<String> = outcome
            .diagnostics
            .iter()
            .map(|d| golden_line(d, Path::new(INVALID)))
            .collect();
        let actual = actual.join("\n") + "\n";
        let expected_path = sidecar(case);
        if update {
            fs::write(&expected_path, &actual).expect("write sidecar");
            continue;
        }
        let expected = fs::read_to_string(&expected_path).unwrap_or_default();
        if outcome.diagnostics.is_empty() {
            failures.push(format!("{}: no diagnostic at all", case.display()));
        } else if actual != expected {
            failures.push(format!(
                "{}:\n--- expected\n{expected}--- actual\n{actual}",
                case.display()
            ));
        }
        if !outcome.policies.is_empty() && !is_cross_policy_case(&expected) {
            failures.push(format!(
                "{}: an invalid policy was returned as valid",
                case.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ (UPDATE_GOLDEN=1 regenerates):\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Conflicts between policies leave the first policy valid.
fn is_cross_policy_case(expected: &str) -> bool {
    expected.contains("duplicate-policy") || expected.contains("destination-conflict")
}

#[test]
fn the_corpus_is_large_and_covers_every_code() {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        return; // the sidecars are being rewritten by the other test
    }
    let cases = cases();
    assert!(cases.len() >= 40, "only {} invalid cases", cases.len());
    let mut seen = BTreeSet::new();
    for case in &cases {
        let expected = fs::read_to_string(sidecar(case)).expect("every case has a sidecar");
        for line in expected.lines() {
            seen.insert(line.split(' ').next().unwrap_or_default().to_string());
        }
    }
    // A nonexistent path cannot live in a corpus directory; it is covered by validate_cli.
    let missing: Vec<&str> = Code::ALL
        .iter()
        .filter(|code| **code != Code::UnreadablePath && **code != Code::AmbiguousRegistry)
        .map(|code| code.as_str())
        .filter(|code| !seen.contains(*code))
        .collect();
    assert!(
        missing.is_empty(),
        "codes without an invalid case: {missing:?}"
    );
}

#[test]
fn every_valid_case_loads_without_diagnostics() {
    let settings = test_settings();
    let mut files: Vec<PathBuf> = fs::read_dir(VALID)
        .expect("the valid corpus exists")
        .map(|entry| entry.expect("readable").path())
        .collect();
    files.sort();
    assert!(files.len() >= 5, "only {} valid cases", files.len());
    for file in &files {
        let outcome = load_policies(std::slice::from_ref(file), &settings);
        let lines: Vec<String> = outcome
            .diagnostics
            .iter()
            .map(|d| format!("{} {}: {}", d.code(), d.location(), d.message))
            .collect();
        assert!(
            lines.is_empty(),
            "{}:\n{}",
            file.display(),
            lines.join("\n")
        );
        assert!(
            !outcome.policies.is_empty(),
            "{}: no policy",
            file.display()
        );
    }
    let together = load_policies(&[PathBuf::from(VALID)], &settings);
    assert!(together.is_ok(), "the valid cases conflict with each other");
}
