//! Shared by the deployment tests: the repository's paths, external tools (found on PATH or
//! in the suite's virtualenv, never skipped when missing), and rendering with kustomize.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn deploy() -> PathBuf {
    repo().join("deploy")
}

/// `name` from PATH, `/usr/sbin`, or the suite's virtualenv (`scripts/test` installs it
/// there); a missing tool fails the test and says how to get it.
pub fn tool(name: &str, install: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.push("/usr/sbin".into());
    dirs.push(repo().join("target/test-venv/bin"));
    for dir in dirs {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("`{name}` is not installed: {install} (scripts/test installs every prerequisite)");
}

/// Runs `command`, failing the test with both streams when it does not exit 0.
#[track_caller]
pub fn run_ok(command: &mut Command) -> Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({})\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `kubectl kustomize DIR`, plain (no load-restrictor flag), as YAML text.
pub fn render(dir: &Path) -> String {
    let kubectl = tool("kubectl", "install kubectl");
    let out = run_ok(Command::new(kubectl).arg("kustomize").arg(dir));
    String::from_utf8(out.stdout).expect("kustomize prints UTF-8")
}

/// The documents of a multi-document YAML stream.
pub fn documents(yaml: &str) -> Vec<Value> {
    let docs: Vec<Value> = serde_saphyr::from_str_multiple(yaml)
        .unwrap_or_else(|e| panic!("rendered YAML does not parse: {e}\n{yaml}"));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

/// The first document of `kind` named `name`.
#[track_caller]
pub fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered output"))
}
