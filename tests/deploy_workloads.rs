//! The workloads beyond the hourly apply: the on-demand `houba-blast-radius` CronJob (suspended
//! in every entry point, the same checkout, roster and pod posture as houba-apply, a command
//! line houba accepts as the kubelet expands it, and the Makefile's per-run override), and the
//! monitoring component's Pushgateway wiring (HOUBA_PUSHGATEWAY on apply and drift only, a URL
//! houba accepts, a NetworkPolicy that lets the push out). The blast-radius container also runs
//! in the real image against what apply placed: tests/deploy_image.rs.

mod deploy_support;

use std::process::{Command, Output};

use deploy_support::{command_of, documents, find, render, rendered, repo, run_ok, tool};
use serde_json::{Value, json};

const BLAST: &str = "houba-blast-radius";

fn pod(cronjob: &Value) -> &Value {
    &cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
}

fn houba_container(cronjob: &Value) -> &Value {
    let c = &pod(cronjob)["containers"][0];
    assert_eq!(c["name"], "houba", "{cronjob}");
    c
}

fn env_names(container: &Value) -> Vec<&str> {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect()
}

fn houba_cronjobs(docs: &[Value]) -> Vec<&Value> {
    docs.iter()
        .filter(|d| {
            d["kind"] == "CronJob" && d["metadata"]["labels"]["app.kubernetes.io/name"] == "houba"
        })
        .collect()
}

/// Every `configMapKeyRef` of every container, resolved from the rendered ConfigMaps: a
/// missing map or key would keep the pod from starting. Returns (name, value) pairs.
fn config_map_refs(docs: &[Value], cronjob: &Value) -> Vec<(String, String)> {
    let spec = pod(cronjob);
    let mut out = vec![];
    for c in ["initContainers", "containers"]
        .iter()
        .flat_map(|k| spec[k].as_array().into_iter().flatten())
    {
        for e in c["env"].as_array().into_iter().flatten() {
            let r = &e["valueFrom"]["configMapKeyRef"];
            if r.is_null() {
                continue;
            }
            let map = find(docs, "ConfigMap", r["name"].as_str().unwrap());
            let value = map["data"][r["key"].as_str().unwrap()]
                .as_str()
                .unwrap_or_else(|| panic!("ConfigMap {} has no key {}", r["name"], r["key"]));
            out.push((e["name"].as_str().unwrap().to_string(), value.to_string()));
        }
    }
    out
}

#[test]
fn blast_radius_is_on_demand_with_the_runs_checkout_roster_and_posture() {
    let mut seen = vec![];
    for r in rendered() {
        let docs = documents(&r.yaml);
        let Some(blast) = docs
            .iter()
            .find(|d| d["kind"] == "CronJob" && d["metadata"]["name"] == BLAST)
        else {
            continue;
        };
        seen.push(r.name.clone());
        // Applying or syncing the manifests never runs it: only `kubectl create job --from`.
        assert_eq!(blast["spec"]["suspend"], true, "{}", r.name);
        assert_eq!(blast["spec"]["concurrencyPolicy"], "Forbid", "{}", r.name);
        let job = &blast["spec"]["jobTemplate"]["spec"];
        assert_eq!(job["backoffLimit"], 0, "{}", r.name);
        assert!(job["completionMode"].is_null(), "{}: not sharded", r.name);
        assert!(job["ttlSecondsAfterFinished"].as_u64().unwrap() >= 86400);

        let apply = find(&docs, "CronJob", "houba-apply");
        let (bp, ap) = (pod(blast), pod(apply));
        for key in [
            "securityContext",
            "serviceAccountName",
            "automountServiceAccountToken",
            "initContainers",
            "restartPolicy",
        ] {
            assert_eq!(
                bp[key], ap[key],
                "{}: {key} differs from houba-apply",
                r.name
            );
        }
        assert_eq!(bp["automountServiceAccountToken"], false);
        let (b, a) = (houba_container(blast), houba_container(apply));
        for key in ["securityContext", "envFrom", "image", "imagePullPolicy"] {
            assert_eq!(
                b[key], a[key],
                "{}: houba's {key} differs from houba-apply",
                r.name
            );
        }
        assert!(b["resources"]["limits"].is_object() && b["resources"]["requests"].is_object());
        assert_eq!(b["envFrom"][0]["secretRef"]["name"], "houba-registries");
        assert_eq!(b["args"][0], "blast-radius");
        // The policy checkout and the configuration, mounted as houba-apply mounts them.
        for volume in ["git", "config", "tmp"] {
            let v = |p: &Value| {
                p["volumes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|v| v["name"] == volume)
                    .cloned()
            };
            assert_eq!(v(bp), v(ap), "{}: volume {volume}", r.name);
        }
        assert_eq!(b["volumeMounts"], a["volumeMounts"], "{}", r.name);
        // Every ConfigMap value it reads exists (apply's too: the same check for all).
        for cronjob in houba_cronjobs(&docs) {
            config_map_refs(&docs, cronjob);
        }
        let keys: Vec<String> = config_map_refs(&docs, blast)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        for k in ["BLAST_RADIUS_QUERY", "BLAST_RADIUS_FORMAT", "POLICY_PATH"] {
            assert!(
                keys.iter().any(|n| n == k),
                "{}: {k} not from a ConfigMap",
                r.name
            );
        }
        // It builds nothing and pushes no metrics.
        let env = env_names(b);
        assert!(
            !env.contains(&"BUILDKIT_HOST") && !env.contains(&"HOUBA_PUSHGATEWAY"),
            "{env:?}"
        );
        // The namespace's NetworkPolicy applies to it.
        let policy = find(&docs, "NetworkPolicy", "houba");
        let labels = &blast["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"];
        for (k, v) in policy["spec"]["podSelector"]["matchLabels"]
            .as_object()
            .unwrap()
        {
            assert_eq!(
                &labels[k], v,
                "{}: the NetworkPolicy misses the pod",
                r.name
            );
        }
    }
    for expected in [
        "base",
        "overlays-local",
        "deploy-argocd-houba",
        "base+buildkitd",
    ] {
        assert!(
            seen.iter().any(|s| s == expected),
            "no {BLAST} in {expected}: {seen:?}"
        );
    }
}

/// Runs a houba container's expanded command line (`command_of`) as its pod would: the volumes
/// mapped to directories (`/git/current` → this repository, so its `policies/`; `/etc/houba` →
/// the files of the houba.toml ConfigMap `config`; the cache → a temporary directory), and a
/// roster of one empty OCI layout directory standing in for the houba-registries Secret.
fn run_like_the_pod(args: &[String], env: &[(String, String)], config: &Value) -> Output {
    let root = tempfile::Builder::new()
        .prefix("deploy-pod-")
        .tempdir_in(repo().join("target"))
        .unwrap();
    let host = |p: &str| -> String {
        let mapped = [
            ("/git/current/", format!("{}/", repo().display())),
            (
                "/etc/houba/",
                format!("{}/etc-houba/", root.path().display()),
            ),
            (
                "/var/cache/houba",
                format!("{}/cache", root.path().display()),
            ),
        ];
        let mut s = p.to_string();
        for (from, to) in mapped {
            s = s.replace(from, &to);
        }
        s
    };
    std::fs::create_dir_all(root.path().join("etc-houba")).unwrap();
    for (file, text) in config["data"].as_object().unwrap() {
        std::fs::write(
            root.path().join("etc-houba").join(file),
            text.as_str().unwrap(),
        )
        .unwrap();
    }
    std::fs::create_dir_all(root.path().join("layout")).unwrap();
    let roster = json!({"local": {"layout": root.path().join("layout")}});
    let mut c = Command::new(env!("CARGO_BIN_EXE_houba"));
    c.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", root.path())
        .env("HOUBA_REGISTRIES", roster.to_string())
        .args(args.iter().map(|a| host(a)));
    for (k, v) in env {
        c.env(k, host(v));
    }
    c.output().expect("houba runs")
}

fn vars_of(settings: &[(String, String)]) -> Vec<(&str, &str)> {
    settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[test]
fn blast_radius_command_line_runs_as_the_kubelet_expands_it_and_make_overrides_it() {
    let base = documents(&render(&repo().join("deploy/base")));
    let blast = find(&base, "CronJob", BLAST);
    let container = houba_container(blast);
    let config = base
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["data"]["houba.toml"].is_string())
        .expect("the houba.toml ConfigMap");
    let settings = config_map_refs(&base, blast);
    let query = &settings
        .iter()
        .find(|(k, _)| k == "BLAST_RADIUS_QUERY")
        .unwrap()
        .1;
    let (flag, wanted) = query
        .split_once('=')
        .unwrap_or_else(|| panic!("BLAST_RADIUS_QUERY {query} is not one `--flag=value` argument"));
    assert_eq!(flag, "--base-name", "the documented default query");

    // The ConfigMap's query, as the CronJob runs it.
    let (args, env) = command_of(container, &vars_of(&settings));
    let out = run_like_the_pod(&args, &env, config);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{args:?}:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("Scanned 1 registry"), "{stdout}");
    assert!(
        stdout.contains(&format!("match base name {wanted}")),
        "{stdout}"
    );

    // A query houba refuses fails the run (exit 1): the check above could fail.
    let mut bad = settings.clone();
    bad.iter_mut()
        .find(|(k, _)| k == "BLAST_RADIUS_QUERY")
        .unwrap()
        .1 = "--cve=not-a-cve".into();
    let (args, env) = command_of(container, &vars_of(&bad));
    let out = run_like_the_pod(&args, &env, config);
    assert_eq!(out.status.code(), Some(1), "{args:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a CVE identifier"));

    // `make blast-radius BLAST_ARGS=…`: the Makefile's JSON patch, applied by kubectl to the
    // Job that `kubectl create job --from=cronjob/houba-blast-radius` would create.
    let make = tool("make", "apt-get install make");
    let out = run_ok(
        Command::new(make)
            .args(["-s", "--no-print-directory", "-C"])
            .arg(repo())
            .arg("--eval=print-blast-patch: ; @echo '$(BLAST_PATCH)'")
            .arg("print-blast-patch")
            .arg("BLAST_ARGS=--cve CVE-2024-3094 --format json"),
    );
    let patch = String::from_utf8(out.stdout).unwrap();
    let job_file = tempfile::NamedTempFile::new_in(repo().join("target")).unwrap();
    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "houba-blast-radius-1", "namespace": "houba"},
        "spec": blast["spec"]["jobTemplate"]["spec"],
    });
    std::fs::write(job_file.path(), job.to_string()).unwrap();
    let kubectl = tool("kubectl", "install kubectl");
    let out = run_ok(
        Command::new(kubectl)
            .args(["patch", "--local", "--type=json", "-o", "json", "-f"])
            .arg(job_file.path())
            .args(["-p", patch.trim()]),
    );
    let patched: Value = serde_json::from_slice(&out.stdout).unwrap();
    let patched = &patched["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        patched["env"], container["env"],
        "the patch changes the arguments only"
    );
    let (args, env) = command_of(patched, &vars_of(&settings));
    let out = run_like_the_pod(&args, &env, config);
    assert!(
        out.status.success(),
        "{args:?}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    assert_eq!(report["query"]["cve"], "CVE-2024-3094", "{report:#}");
    assert_eq!(
        report["query"]["base_name"],
        Value::Null,
        "BLAST_ARGS replaces the query"
    );
}

/// base + `overlay` (a kustomization's `components:` and `patches:`, listing monitoring).
fn monitoring_overlay(overlay: &str) -> Vec<Value> {
    let dir = tempfile::Builder::new()
        .prefix("deploy-monitoring-")
        .tempdir_in(repo().join("target"))
        .unwrap();
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        format!("namespace: houba\nresources: [../../deploy/base]\n{overlay}"),
    )
    .unwrap();
    documents(&render(dir.path()))
}

fn houba_help(command: &str) -> String {
    let out = run_ok(Command::new(env!("CARGO_BIN_EXE_houba")).args([command, "--help"]));
    String::from_utf8(out.stdout).unwrap()
}

/// `houba validate` of this repository's policies with HOUBA_PUSHGATEWAY=`url`.
fn validate_with_pushgateway(url: &str) -> Output {
    let layout = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_houba"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOUBA_PUSHGATEWAY", url)
        .env(
            "HOUBA_REGISTRIES",
            json!({"local": {"layout": layout.path()}}).to_string(),
        )
        .arg("validate")
        .arg("--policies")
        .arg(repo().join("policies"))
        .output()
        .unwrap()
}

#[test]
fn monitoring_component_makes_apply_and_drift_push_their_metrics() {
    let all = rendered();
    let monitored = documents(
        &all.iter()
            .find(|r| r.name == "base+monitoring")
            .unwrap()
            .yaml,
    );
    let mut pushing = vec![];
    for cronjob in houba_cronjobs(&monitored) {
        let name = cronjob["metadata"]["name"].as_str().unwrap();
        let c = houba_container(cronjob);
        let command = c["args"][0].as_str().unwrap();
        let has = c["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "HOUBA_PUSHGATEWAY")
            .cloned();
        // Exactly the commands that push metrics carry it (their --help names the variable).
        let pushes = houba_help(command).contains("HOUBA_PUSHGATEWAY");
        assert_eq!(has.is_some(), pushes, "{name} ({command})");
        if let Some(e) = has {
            let r = &e["valueFrom"]["configMapKeyRef"];
            assert_eq!(r["name"], "houba-monitoring");
            assert_eq!(r["key"], "PUSHGATEWAY_URL");
            pushing.push(name.to_string());
        }
    }
    pushing.sort();
    assert_eq!(pushing, ["houba-apply", "houba-drift"]);

    // Not in base, nor in any entry point without the component.
    for r in all.iter().filter(|r| !r.name.contains("monitoring")) {
        for cronjob in houba_cronjobs(&documents(&r.yaml)) {
            assert!(
                !env_names(houba_container(cronjob)).contains(&"HOUBA_PUSHGATEWAY"),
                "{}: HOUBA_PUSHGATEWAY outside components/monitoring",
                r.name
            );
        }
    }

    // The URL is one houba accepts (and houba does refuse a bad one).
    let url = find(&monitored, "ConfigMap", "houba-monitoring")["data"]["PUSHGATEWAY_URL"]
        .as_str()
        .unwrap()
        .to_string();
    let ok = validate_with_pushgateway(&url);
    assert!(
        ok.status.success(),
        "{url}: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let bad = validate_with_pushgateway("pushgateway:9091");
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("HOUBA_PUSHGATEWAY"));

    // The push may leave: a NetworkPolicy for the URL's namespace and port, on apply and drift.
    let (host, port) = url
        .strip_prefix("http://")
        .and_then(|r| r.split_once(':'))
        .expect("http://<service>.<namespace>.svc:<port>");
    let namespace = host.split('.').nth(1).unwrap();
    let policy = find(&monitored, "NetworkPolicy", "houba-pushgateway");
    let egress = &policy["spec"]["egress"][0];
    assert_eq!(
        egress["to"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        namespace
    );
    assert_eq!(
        egress["ports"][0]["port"],
        json!(port.parse::<u16>().unwrap())
    );
    let selector = &policy["spec"]["podSelector"]["matchExpressions"];
    let components = selector
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "app.kubernetes.io/component")
        .unwrap();
    assert_eq!(components["values"], json!(["apply", "drift"]));

    // The overlay docs/deploy.md shows moves the URL, and the NetworkPolicy with it.
    let docs_text = std::fs::read_to_string(repo().join("docs/deploy.md")).unwrap();
    let snippet = docs_text
        .split("```yaml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .find(|b| b.contains("components/monitoring") && b.contains("PUSHGATEWAY_URL"))
        .expect("docs/deploy.md shows an overlay that moves PUSHGATEWAY_URL")
        .replace("../../components/", "../../deploy/components/");
    let moved = monitoring_overlay(&snippet);
    let url = find(&moved, "ConfigMap", "houba-monitoring")["data"]["PUSHGATEWAY_URL"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(
        url, "http://pushgateway.monitoring.svc:9091",
        "the patch moved nothing"
    );
    assert!(validate_with_pushgateway(&url).status.success(), "{url}");
    let namespace = url.split('.').nth(1).unwrap();
    assert_eq!(
        find(&moved, "NetworkPolicy", "houba-pushgateway")["spec"]["egress"][0]["to"][0]["namespaceSelector"]
            ["matchLabels"]["kubernetes.io/metadata.name"],
        namespace,
        "the documented overlay leaves the NetworkPolicy on another namespace than {url}"
    );
}
