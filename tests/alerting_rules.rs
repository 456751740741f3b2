//! The alert rules and the monitoring component: `promtool check rules` and `promtool test
//! rules` (every rule fires and stays silent in its unit tests), the PrometheusRule carries
//! exactly the plain rules file, the component renders with `kubectl kustomize` on its own and
//! on top of the deployment, and every metric houba emits is documented.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn component() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/components/monitoring")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("tool runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn yaml(path: &Path) -> Value {
    serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn rules_pass_promtool_and_their_unit_tests() {
    let dir = component();
    let checked = run(Command::new("promtool")
        .args(["check", "rules", "houba.rules.yml"])
        .current_dir(&dir));
    assert!(checked.contains("SUCCESS: 5 rules found"), "{checked}");
    let tested = run(Command::new("promtool")
        .args(["test", "rules", "houba.rules.test.yml"])
        .current_dir(&dir));
    assert!(tested.contains("SUCCESS"), "{tested}");
    // Every rule has a firing and a silent case in the unit tests.
    let tests = std::fs::read_to_string(dir.join("houba.rules.test.yml")).unwrap();
    for rule in yaml(&dir.join("houba.rules.yml"))["groups"][0]["rules"]
        .as_array()
        .unwrap()
    {
        let name = rule["alert"].as_str().unwrap();
        let evals: Vec<&str> = tests
            .split("- eval_time:")
            .filter(|block| block.contains(&format!("alertname: {name}\n")))
            .collect();
        assert!(
            evals.iter().any(|b| b.contains("exp_alerts: []")),
            "{name} has no silent case"
        );
        assert!(
            evals.iter().any(|b| b.contains("exp_labels:")),
            "{name} has no firing case"
        );
        for key in ["summary", "description", "runbook_url"] {
            assert!(rule["annotations"][key].is_string(), "{name} lacks {key}");
        }
        let anchor = rule["annotations"]["runbook_url"]
            .as_str()
            .unwrap()
            .rsplit('#')
            .next()
            .unwrap()
            .to_string();
        let runbooks =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/alerts.md"))
                .unwrap();
        assert!(
            runbooks.contains(&format!("## {name}")),
            "docs/alerts.md has no runbook section for {name} (#{anchor})"
        );
    }
}

#[test]
fn the_prometheus_rule_carries_the_plain_rules_file() {
    let dir = component();
    let rule = yaml(&dir.join("prometheusrule.yaml"));
    assert_eq!(rule["kind"], "PrometheusRule");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["spec"], yaml(&dir.join("houba.rules.yml")));
}

/// Copies `from` into `to` recursively (kustomize refuses paths outside its root).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn the_component_renders_alone_and_on_top_of_the_deployment() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = tempfile::tempdir().unwrap();
    copy_dir(&root.join("deploy"), &work.path().join("deploy"));
    copy_dir(&root.join("policies"), &work.path().join("policies"));

    // Alone, over any resources.
    let alone = work.path().join("alone");
    std::fs::create_dir_all(&alone).unwrap();
    std::fs::write(
        alone.join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: monitoring\ncomponents:\n  - ../deploy/components/monitoring\n",
    )
    .unwrap();
    let rendered = run(Command::new("kubectl").args(["kustomize"]).arg(&alone));
    assert!(rendered.contains("kind: PrometheusRule"), "{rendered}");
    assert!(rendered.contains("namespace: monitoring"), "{rendered}");
    assert!(rendered.contains("alert: HoubaDriftDetected"), "{rendered}");

    // On top of the deployment: deploy/base when it exists, else the deploy/ kustomization.
    let base = if root.join("deploy/base/kustomization.yaml").exists() {
        "../deploy/base"
    } else {
        "../deploy"
    };
    let overlay = work.path().join("overlay");
    std::fs::create_dir_all(&overlay).unwrap();
    std::fs::write(
        overlay.join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {base}\ncomponents:\n  - ../deploy/components/monitoring\n"
        ),
    )
    .unwrap();
    let rendered = run(Command::new("kubectl")
        .args(["kustomize", "--load-restrictor", "LoadRestrictionsNone"])
        .arg(&overlay));
    assert!(rendered.contains("kind: PrometheusRule"), "{rendered}");
    assert!(rendered.contains("kind: CronJob"), "{rendered}");
}

#[test]
fn every_metric_is_documented() {
    use houba::report::metrics::{Target, encode};
    use houba::report::{Command, RegistryUsage, RunSummary, SinkUsage};
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/reference/metrics.md")).unwrap();
    // A run with every optional part present, so every family is emitted.
    let mut run = RunSummary::start(Command::Apply, Some((0, 2)));
    run.registries.insert(
        "hub".into(),
        RegistryUsage {
            requests: [("GET".to_string(), [("2xx".to_string(), 1)].into())].into(),
            ratelimit_remaining: Some(3),
            ..RegistryUsage::default()
        },
    );
    run.notifications
        .insert("phone".into(), SinkUsage::default());
    run.finish(true);
    let text = encode(&run, Target::Textfile);
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(names.len(), 19, "{names:?}");
    for name in names {
        assert!(
            doc.contains(&format!("`{name}`")),
            "{name} is not in docs/reference/metrics.md"
        );
    }
}
