//! The reference deployment in deploy/: every entry point renders with plain `kubectl
//! kustomize`; the output is schema-valid (core kinds with `kubernetes-validate --strict` for
//! Kubernetes 1.30 and the newest schema it ships, custom resources against their CRDs'
//! published schemas). Security lint and the Makefile: tests/deploy_checkov.rs.

mod deploy_support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use deploy_support::{documents, find, render, rendered, repo, run_ok, tool};
use serde_json::{Value, json};

/// API groups whose kinds are custom resources, validated against the published CRD schemas
/// that these npm packages carry (pinned: the schemas are part of what is tested).
const CRD_PACKAGES: &[(&str, &str)] = &[
    ("argoproj.io", "@kubernetes-models/argo-cd@4.0.0"),
    (
        "external-secrets.io",
        "@kubernetes-models/external-secrets@2.0.0",
    ),
    ("keda.sh", "@kubernetes-models/keda@2.0.0"),
    (
        "monitoring.coreos.com",
        "@kubernetes-models/prometheus-operator@6.0.0",
    ),
];

fn is_custom(doc: &Value) -> bool {
    let api = doc["apiVersion"].as_str().unwrap_or("");
    api.split_once('/')
        .is_some_and(|(group, _)| CRD_PACKAGES.iter().any(|(g, _)| *g == group))
}

#[test]
fn every_entry_point_renders_what_it_promises() {
    let all = rendered();
    let names: Vec<&str> = all.iter().map(|r| r.name.as_str()).collect();
    for expected in [
        "base",
        "base+buildkitd",
        "base+buildkitd+keda-buildkitd",
        "base+monitoring",
        "overlays-local",
        "argocd-root",
        "deploy-argocd-apps",
        "deploy-argocd-houba",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let by_name = |n: &str| documents(&all.iter().find(|r| r.name == n).unwrap().yaml);

    // base: the apply CronJob is an Indexed Job whose completions and parallelism are the
    // ConfigMap's SHARD_COUNT, with the cache on the PVC, one directory per shard index.
    let base = by_name("base");
    let settings = find(&base, "ConfigMap", "houba-settings");
    let shards: u64 = settings["data"]["SHARD_COUNT"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let apply = find(&base, "CronJob", "houba-apply");
    assert_eq!(apply["spec"]["concurrencyPolicy"], "Forbid");
    let job = &apply["spec"]["jobTemplate"]["spec"];
    assert_eq!(job["completionMode"], "Indexed");
    assert_eq!(job["completions"], json!(shards));
    assert_eq!(job["parallelism"], json!(shards));
    let pod = &job["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["initContainers"][0]["name"], "git-sync");
    assert!(
        pod["initContainers"][0]["args"]
            .as_array()
            .unwrap()
            .contains(&json!("--one-time"))
    );
    let houba = &pod["containers"][0];
    let args: Vec<&str> = houba["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(&args[..2], ["apply", "--auto"], "{args:?}");
    assert!(args.contains(&"--shard-count=$(SHARD_COUNT)"), "{args:?}");
    let env = |name: &str| {
        houba["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no env {name}"))
            .clone()
    };
    assert_eq!(
        env("HOUBA_CACHE_DIR")["value"],
        "/var/cache/houba/apply-$(JOB_COMPLETION_INDEX)"
    );
    let cache = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "cache")
        .unwrap();
    assert_eq!(cache["persistentVolumeClaim"]["claimName"], "houba-cache");
    find(&base, "PersistentVolumeClaim", "houba-cache");
    find(&base, "CronJob", "houba-drift");
    // The roster is never committed: base references the Secret but does not contain it.
    assert!(!base.iter().any(|d| d["kind"] == "Secret"));
    assert_eq!(houba["envFrom"][0]["secretRef"]["name"], "houba-registries");

    // An overlay's SHARD_COUNT reaches completions and parallelism when it lists
    // components/shard-count last, as docs/deploy.md says.
    let overlay = tempfile::Builder::new()
        .prefix("deploy-shards-")
        .tempdir_in(repo().join("target"))
        .unwrap();
    std::fs::write(
        overlay.path().join("kustomization.yaml"),
        "resources: [../../deploy/base]\ncomponents: [../../deploy/components/shard-count]\nconfigMapGenerator:\n  - name: houba-settings\n    behavior: merge\n    options: { disableNameSuffixHash: true }\n    literals: [SHARD_COUNT=3]\n",
    )
    .unwrap();
    let sharded = documents(&render(overlay.path()));
    let job = &find(&sharded, "CronJob", "houba-apply")["spec"]["jobTemplate"]["spec"];
    assert_eq!(job["completions"], 3);
    assert_eq!(job["parallelism"], 3);

    // In every entry point that has the apply CronJob, the pod count is the shard count.
    for r in all {
        let docs = documents(&r.yaml);
        let Some(apply) = docs
            .iter()
            .find(|d| d["kind"] == "CronJob" && d["metadata"]["name"] == "houba-apply")
        else {
            continue;
        };
        let count: u64 = find(&docs, "ConfigMap", "houba-settings")["data"]["SHARD_COUNT"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let job = &apply["spec"]["jobTemplate"]["spec"];
        assert_eq!(job["completions"], json!(count), "{}", r.name);
        assert_eq!(job["parallelism"], json!(count), "{}", r.name);
    }

    // buildkitd: BUILDKIT_HOST on both CronJobs, the buildctl image variant.
    let bk = by_name("base+buildkitd");
    for cronjob in ["houba-apply", "houba-drift"] {
        let c = &find(&bk, "CronJob", cronjob)["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
            [0];
        assert!(
            c["env"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["name"] == "BUILDKIT_HOST"
                    && e["value"] == "tcp://buildkitd.houba.svc.cluster.local:1234")
        );
        assert_eq!(c["image"], "houba:0.1.0-buildctl");
    }
    let keda = by_name("base+buildkitd+keda-buildkitd");
    let scaled = find(&keda, "ScaledObject", "buildkitd");
    assert_eq!(scaled["spec"]["minReplicaCount"], 1);
    assert!(
        scaled["spec"]["triggers"][0]["metadata"]["query"]
            .as_str()
            .unwrap()
            .contains(r#"rpc_method=~".+/Solve""#)
    );
    assert!(
        find(&keda, "Deployment", "buildkitd")["spec"]
            .get("replicas")
            .is_none()
    );

    // overlays/local: CronJobs suspended, a plain roster Secret without credentials.
    let local = by_name("overlays-local");
    for cronjob in ["houba-apply", "houba-drift"] {
        assert_eq!(find(&local, "CronJob", cronjob)["spec"]["suspend"], true);
    }
    let roster = find(&local, "Secret", "houba-registries");
    let roster = roster["stringData"]["HOUBA_REGISTRIES"]
        .as_str()
        .map(str::to_string)
        .or_else(|| roster["data"]["HOUBA_REGISTRIES"].as_str().map(decode))
        .expect("HOUBA_REGISTRIES in the local Secret");
    let roster: Value = serde_json::from_str(&roster).unwrap();
    assert_eq!(
        roster["local"]["host"],
        "registry.houba.svc.cluster.local:5000"
    );
    find(&local, "Service", "registry");

    // Argo CD: sync waves 0 (operators) then 1 (houba), server-side apply everywhere.
    let apps = by_name("deploy-argocd-apps");
    for (name, wave) in [("external-secrets", "0"), ("openbao", "0"), ("houba", "1")] {
        let app = find(&apps, "Application", name);
        assert_eq!(
            app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"],
            wave
        );
        assert!(
            app["spec"]["syncPolicy"]["syncOptions"]
                .as_array()
                .unwrap()
                .contains(&json!("ServerSideApply=true"))
        );
    }
    let argo_houba = by_name("deploy-argocd-houba");
    find(&argo_houba, "ClusterSecretStore", "openbao");
    let external = find(&argo_houba, "ExternalSecret", "houba-registries");
    assert_eq!(external["spec"]["target"]["name"], "houba-registries");
}

fn decode(b64: &str) -> String {
    use base64::Engine;
    let b64: String = b64.split_whitespace().collect();
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
    )
    .unwrap()
}

/// The newest Kubernetes version whose schemas kubernetes-validate ships (its default).
fn newest_schema(validate: &Path) -> String {
    let out = run_ok(Command::new(validate).arg("--help"));
    let help = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let after = help
        .split("Defaults to ")
        .nth(1)
        .unwrap_or_else(|| panic!("kubernetes-validate --help names no default version:\n{help}"));
    after
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .split(' ')
        .next()
        .unwrap()
        .trim_end_matches('.')
        .to_string()
}

#[test]
fn core_kinds_are_schema_valid_for_1_30_and_the_newest_schema() {
    let validate = tool("kubernetes-validate", "pip install kubernetes-validate");
    let newest = newest_schema(&validate);
    assert!(newest.starts_with("1."), "{newest}");
    let dir = tempfile::tempdir().unwrap();
    for r in rendered() {
        let file = dir.path().join(format!("{}.yaml", r.name));
        std::fs::write(&file, &r.yaml).unwrap();
        let docs = documents(&r.yaml);
        for version in ["1.30.0", newest.as_str()] {
            let out = Command::new(&validate)
                .args(["--strict", "-k", version])
                .arg(&file)
                .output()
                .expect("kubernetes-validate runs");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{} is not valid for Kubernetes {version}:\n{stdout}{}",
                r.name,
                String::from_utf8_lossy(&out.stderr)
            );
            // Only custom resources may lack a schema here (they are checked against their
            // CRDs below); a core kind without one would be a typo passing unchecked.
            let mut unchecked = 0;
            for line in stdout
                .lines()
                .filter(|l| l.contains("Couldn't find schema"))
            {
                let custom = docs.iter().any(|d| {
                    is_custom(d)
                        && line.contains(&format!("kind {} ", d["kind"].as_str().unwrap()))
                        && line.contains(d["apiVersion"].as_str().unwrap())
                });
                assert!(custom, "{}: a core kind was not validated: {line}", r.name);
                unchecked += 1;
            }
            let valid_lines = stdout
                .lines()
                .filter(|l| l.contains(" passed for resource "))
                .count();
            assert_eq!(
                valid_lines + unchecked,
                docs.len(),
                "{} ({version}): every document is either valid or a custom resource:\n{stdout}",
                r.name
            );
        }
    }
}

/// node_modules holding the CRD schema packages, installed with npm on first use.
fn crd_schemas() -> PathBuf {
    let prefix = repo().join("target/deploy-npm");
    let modules = prefix.join("node_modules");
    let installed = CRD_PACKAGES.iter().all(|(_, spec)| {
        let (name, version) = spec.rsplit_once('@').unwrap();
        std::fs::read_to_string(modules.join(name).join("package.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .is_some_and(|p| p["version"] == version)
    });
    if !installed {
        let npm = tool("npm", "apt-get install npm");
        std::fs::create_dir_all(&prefix).unwrap();
        run_ok(
            Command::new(npm)
                .args([
                    "install",
                    "--no-audit",
                    "--no-fund",
                    "--no-save",
                    "--prefix",
                ])
                .arg(&prefix)
                .args(CRD_PACKAGES.iter().map(|(_, spec)| *spec)),
        );
    }
    modules
}

/// Runs the CRD validator on `items` (`{source, document}`); (success, output).
fn validate_custom(modules: &Path, items: &[Value]) -> (bool, String) {
    let node = tool("node", "apt-get install nodejs");
    let mut child = Command::new(node)
        .arg(repo().join("tests/deploy/validate-crds.mjs"))
        .arg(modules)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(serde_json::to_string(items).unwrap().as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn custom_resources_match_their_published_crd_schemas() {
    let modules = crd_schemas();
    let mut items = vec![];
    let mut kinds = BTreeSet::new();
    for r in rendered() {
        for d in documents(&r.yaml).into_iter().filter(is_custom) {
            kinds.insert(d["kind"].as_str().unwrap().to_string());
            items.push(json!({"source": r.name, "document": d}));
        }
    }
    for kind in [
        "Application",
        "ExternalSecret",
        "ClusterSecretStore",
        "ScaledObject",
        "ServiceMonitor",
    ] {
        assert!(kinds.contains(kind), "no {kind} rendered: {kinds:?}");
    }
    let (ok, output) = validate_custom(&modules, &items);
    assert!(
        ok,
        "custom resources do not match their CRD schemas:\n{output}"
    );
    assert!(
        output.contains(&format!("{} checked, 0 problems", items.len())),
        "{output}"
    );

    // The validator rejects what the CRDs reject (it is not vacuous): a wrong type in each
    // kind fails.
    let mut broken = items.clone();
    for item in &mut broken {
        item["document"]["spec"] = json!("not an object");
    }
    let (ok, output) = validate_custom(&modules, &broken);
    assert!(!ok, "broken documents passed:\n{output}");
    assert!(
        output.contains(&format!("0 checked, {} problems", broken.len())),
        "{output}"
    );
}
