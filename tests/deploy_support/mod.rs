//! Shared by the deployment tests: the repository's paths, external tools (found on PATH or
//! in the suite's virtualenv, never skipped when missing), and rendering with kustomize.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

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

/// Components that need another one under them (listed first).
pub const COMPONENT_NEEDS: &[(&str, &[&str])] = &[("keda-buildkitd", &["buildkitd"])];

/// The repository URL the Argo CD Applications use for this repository.
pub const THIS_REPO: &str = "git://policy-repo.houba.svc.cluster.local/houba.git";
pub struct Rendered {
    /// A short name for messages and file names: `base`, `base+buildkitd`, …
    pub name: String,
    pub yaml: String,
}

/// Every entry point, rendered once: base, each component on base (with what it needs),
/// overlays/local, deploy/argocd/root.yaml and every path an Application of this repository
/// points at.
pub fn rendered() -> &'static [Rendered] {
    static ALL: OnceLock<Vec<Rendered>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut all = vec![Rendered {
            name: "base".into(),
            yaml: render(&deploy().join("base")),
        }];
        for component in component_names() {
            let needs = COMPONENT_NEEDS
                .iter()
                .find(|(c, _)| *c == component)
                .map(|(_, n)| n.to_vec())
                .unwrap_or_default();
            let mut stack: Vec<&str> = needs;
            stack.push(&component);
            all.push(Rendered {
                name: format!("base+{}", stack.join("+")),
                yaml: compose(&stack),
            });
        }
        all.push(Rendered {
            name: "overlays-local".into(),
            yaml: render(&deploy().join("overlays/local")),
        });
        let root = std::fs::read_to_string(deploy().join("argocd/root.yaml")).unwrap();
        let mut pending = application_paths(&documents(&root));
        all.push(Rendered {
            name: "argocd-root".into(),
            yaml: root,
        });
        let mut seen = BTreeSet::new();
        while let Some(path) = pending.pop() {
            if !seen.insert(path.clone()) {
                continue;
            }
            assert!(
                path.starts_with("deploy/")
                    && repo().join(&path).join("kustomization.yaml").is_file(),
                "an Application points at {path}, which is not a kustomization under deploy/"
            );
            let yaml = render(&repo().join(&path));
            pending.extend(application_paths(&documents(&yaml)));
            all.push(Rendered {
                name: path.replace('/', "-"),
                yaml,
            });
        }
        assert!(
            seen.contains("deploy/argocd/apps") && seen.contains("deploy/argocd/houba"),
            "the App-of-Apps must reach apps/ and houba/: {seen:?}"
        );
        all
    })
}

pub fn component_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(deploy().join("components"))
        .expect("deploy/components")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("kustomization.yaml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// base + `components` in a throw-away overlay under target/, as an adopter writes it
/// (`namespace: houba`: base's namespace does not reach a component's own resources; kustomize
/// wants relative paths, and references to kustomization directories are not load-restricted).
fn compose(components: &[&str]) -> String {
    let scratch = repo().join("target");
    std::fs::create_dir_all(&scratch).unwrap();
    let dir = tempfile::Builder::new()
        .prefix("deploy-compose-")
        .tempdir_in(&scratch)
        .unwrap();
    let list: Vec<String> = components
        .iter()
        .map(|c| format!("  - ../../deploy/components/{c}\n"))
        .collect();
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: houba\nresources:\n  - ../../deploy/base\ncomponents:\n{}",
            list.concat()
        ),
    )
    .unwrap();
    render(dir.path())
}

/// The `spec.source.path` of every Application that reads this repository.
pub fn application_paths(docs: &[Value]) -> Vec<String> {
    docs.iter()
        .filter(|d| d["kind"] == "Application")
        .filter(|d| d["spec"]["source"]["repoURL"] == THIS_REPO)
        .map(|d| {
            d["spec"]["source"]["path"]
                .as_str()
                .unwrap_or_else(|| panic!("Application without a path: {d}"))
                .to_string()
        })
        .collect()
}

/// Replaces Kubernetes' `$(VAR)` references in `s`.
pub fn expand(s: &str, vars: &[(&str, &str)]) -> String {
    let mut out = s.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("$({k})"), v);
    }
    assert!(!out.contains("$("), "unexpanded variable in {s}");
    out
}

/// A CronJob container's arguments and environment, `$(VAR)` references expanded, values from
/// ConfigMaps or the downward API taken from `vars`.
pub fn command_of(
    container: &Value,
    vars: &[(&str, &str)],
) -> (Vec<String>, Vec<(String, String)>) {
    let args = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| expand(a.as_str().unwrap(), vars))
        .collect();
    let mut env = vec![];
    for e in container["env"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap();
        let value = match e["value"].as_str() {
            Some(v) => expand(v, vars),
            None => vars
                .iter()
                .find(|(k, _)| *k == name)
                .unwrap_or_else(|| panic!("no test value for {name}"))
                .1
                .to_string(),
        };
        env.push((name.to_string(), value));
    }
    (args, env)
}
