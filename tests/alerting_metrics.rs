//! Prometheus metrics of real runs: the textfile and the push pass `promtool check metrics`,
//! and a real Pushgateway shows the right values after an apply, a drift run and a failed
//! apply (with throttling). The registry password never reaches metrics, reports or logs.

mod support;

use support::fault::{Fault, FaultProxy, Rule};
use support::houba::{Policy, Run, Workspace, push_upstream};
use support::prometheus::{Receiver, promtool_check_metrics, pushgateway, samples, value};
use support::{Auth, PASSWORD, USERNAME, distribution, ferro, images};

fn config(upstream: &str, destination: &str, hook: &str) -> String {
    format!(
        "policies = [\"policies\"]\n\n[[notify]]\nkind = \"webhook\"\nurl = \"{hook}/hook\"\n\n[registries.upstream]\nhost = \"{upstream}\"\ntls_verify = false\nmirror_of = \"docker.io\"\n\n[registries.dest]\nhost = \"{destination}\"\ntls_verify = false\nusername = \"{USERNAME}\"\npassword_env = \"DEST_PASSWORD\"\n"
    )
}

async fn run(ws: &Workspace, args: &[&str]) -> Run {
    let out = ws
        .command(args)
        .env("DEST_PASSWORD", PASSWORD)
        .env("HOUBA_LOG", "houba=debug")
        .env("HOUBA_LOG_FORMAT", "json")
        .output()
        .await
        .expect("houba runs");
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !r.stdout.contains(PASSWORD) && !r.stderr.contains(PASSWORD),
        "the registry password leaked into the output of {args:?}"
    );
    r
}

async fn gateway_metrics(url: &str) -> String {
    support::http_client()
        .get(format!("{url}/metrics"))
        .send()
        .await
        .expect("pushgateway answers")
        .text()
        .await
        .expect("metrics text")
}

/// Only houba's series (the Pushgateway's own metrics are its business).
fn houba_series(text: &str) -> String {
    text.lines()
        .filter(|l| l.contains("houba_"))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_drift_and_failed_apply_reach_the_pushgateway() {
    let (upstream, destination) = (ferro().await, distribution(Auth::Basic).await);
    let proxy = FaultProxy::start(destination.host()).await;
    for tag in ["1.36.0", "1.37.0"] {
        push_upstream(upstream.client().as_ref(), "busybox", tag, 1).await;
    }
    let gateway = pushgateway().await;
    let ws = Workspace::new(upstream.host(), &[]);
    let receiver = Receiver::start("unused").await;
    std::fs::write(
        ws.config(),
        config(upstream.host(), proxy.host(), &receiver.url),
    )
    .unwrap();
    let policy = Policy::new("busybox", "busybox", r"^1\.3[67]\.\d+$", "dest");
    ws.policy("busybox", &policy.yaml());
    let textfile = ws.path("textfile/houba.prom");
    let report = ws.path("report.json");
    let (textfile_s, report_s) = (
        textfile.to_str().unwrap().to_string(),
        report.to_str().unwrap().to_string(),
    );
    let report_args = [
        "--pushgateway",
        gateway.url.as_str(),
        "--metrics-file",
        textfile_s.as_str(),
        "--report",
        report_s.as_str(),
    ];

    // 1. A successful apply, throttled once by the destination (429, Retry-After: 1).
    proxy.add(Rule::new(
        Some("HEAD"),
        "/v2/mirror/busybox/",
        Fault::TooManyRequests {
            retry_after_secs: 1,
        },
        1,
    ));
    let mut args = vec!["apply", "--auto", "--format", "json"];
    args.extend_from_slice(&report_args);
    let applied = run(&ws, &args).await;
    applied.expect_code(0);
    let json = applied.json();
    assert_eq!(json["command"], "apply");
    assert_eq!(json["success"], true);
    assert_eq!(json["pending"]["copy"], 2, "{json:#}");
    let results = json["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for r in results {
        assert_eq!(r["outcome"], "done", "{json:#}");
        assert!(r["requests"].as_u64().unwrap() > 0, "{r:#}");
        assert!(r["bytes"].as_u64().unwrap() > 0, "{r:#}");
    }
    assert_eq!(json["registries"]["dest"]["throttled"], 1, "{json:#}");
    assert!(
        json["registries"]["dest"]["retry_wait_seconds"]
            .as_f64()
            .unwrap()
            >= 1.0
    );
    // stdout is only the JSON report; stderr only log events (JSON lines), no human plan.
    assert!(
        !applied.stderr.contains("will be copied"),
        "{}",
        applied.stderr
    );
    for line in applied.stderr.lines().filter(|l| !l.trim().is_empty()) {
        let event: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("stderr line is not a JSON log event ({e}): {line}"));
        assert!(event["level"].is_string(), "{line}");
    }
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(
        saved["run_id"], json["run_id"],
        "--report writes the same report"
    );

    let text = std::fs::read_to_string(&textfile).unwrap();
    promtool_check_metrics(&text).unwrap_or_else(|e| panic!("textfile: {e}\n{text}"));
    let pushed = gateway_metrics(&gateway.url).await;
    promtool_check_metrics(&houba_series(&pushed)).unwrap_or_else(|e| panic!("push: {e}"));
    let apply = [("job", "houba"), ("instance", "all"), ("command", "apply")];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        apply.iter().chain(extra).copied().collect()
    };
    assert_eq!(value(&pushed, "houba_run_success", &apply), 1.0);
    assert_eq!(
        value(
            &pushed,
            "houba_actions_total",
            &with(&[("kind", "copy"), ("outcome", "done")])
        ),
        2.0
    );
    assert_eq!(
        value(&pushed, "houba_pending_actions", &with(&[("kind", "copy")])),
        2.0
    );
    assert_eq!(
        value(
            &pushed,
            "houba_registry_throttled_total",
            &with(&[("registry", "dest")])
        ),
        1.0
    );
    assert!(
        value(
            &pushed,
            "houba_registry_requests_total",
            &with(&[
                ("registry", "dest"),
                ("method", "PUT"),
                ("status_class", "2xx")
            ])
        ) >= 2.0
    );
    assert!(
        value(
            &pushed,
            "houba_registry_written_bytes_total",
            &with(&[("registry", "dest")])
        ) > 0.0
    );
    let success_at = value(&pushed, "houba_last_success_timestamp_seconds", &apply);
    assert!(success_at > 1.7e9, "{success_at}");
    // The textfile carries command and shard itself.
    assert_eq!(
        value(
            &text,
            "houba_actions_total",
            &[
                ("command", "apply"),
                ("shard", "all"),
                ("kind", "copy"),
                ("outcome", "done")
            ]
        ),
        2.0
    );
    // Bounded labels: no tag or digest anywhere in a label.
    for (labels, _) in samples(&pushed, "houba_")
        .into_iter()
        .chain(samples(&text, "houba_"))
    {
        for v in labels.values() {
            assert!(
                !v.contains("sha256") && !v.contains("1.36.0") && !v.contains(':'),
                "label value {v:?} is unbounded"
            );
        }
    }

    // 2. Drift: someone pushes over a managed tag; `drift` exits 2 and reports it.
    let foreign = images::oci_image(
        "hand-built",
        "amd64",
        vec![images::tar_layer(
            images::OCI_LAYER_GZIP,
            &[("x", b"y".as_slice())],
        )],
    );
    images::push_image(
        destination.client().as_ref(),
        "mirror/busybox",
        "1.36.0",
        &foreign,
    )
    .await
    .unwrap();
    let mut args = vec!["drift"];
    args.extend_from_slice(&report_args);
    run(&ws, &args).await.expect_code(2);
    let pushed = gateway_metrics(&gateway.url).await;
    let drift = [("job", "houba"), ("instance", "all"), ("command", "drift")];
    let drift_kind = |k: &'static str| -> Vec<(&'static str, &'static str)> {
        drift.iter().copied().chain([("kind", k)]).collect()
    };
    assert_eq!(
        value(&pushed, "houba_drift_findings", &drift_kind("unstamped")),
        1.0
    );
    assert_eq!(
        value(&pushed, "houba_drift_findings", &drift_kind("bypass")),
        0.0
    );
    assert_eq!(value(&pushed, "houba_run_success", &drift), 1.0);
    // The apply group is still there, untouched by the drift push.
    assert_eq!(
        value(&pushed, "houba_last_success_timestamp_seconds", &apply),
        success_at
    );

    // 3. A failed apply: the destination refuses manifest writes.
    proxy.add(Rule::new(
        Some("PUT"),
        "/manifests/",
        Fault::Status(500),
        100,
    ));
    let mut args = vec!["apply", "--auto", "--format", "json"];
    args.extend_from_slice(&report_args);
    let failed = run(&ws, &args).await;
    failed.expect_code(1);
    let json = failed.json();
    assert_eq!(json["success"], false);
    let failure = &json["results"][0];
    assert_eq!(failure["outcome"], "failed", "{json:#}");
    assert_eq!(failure["action"], "replace");
    assert!(failure["error_kind"].is_string(), "{failure:#}");
    let pushed = gateway_metrics(&gateway.url).await;
    promtool_check_metrics(&houba_series(&pushed)).unwrap_or_else(|e| panic!("push: {e}"));
    assert_eq!(value(&pushed, "houba_run_success", &apply), 0.0);
    assert_eq!(
        value(
            &pushed,
            "houba_actions_total",
            &with(&[("kind", "replace"), ("outcome", "failed")])
        ),
        1.0
    );
    assert_eq!(
        value(
            &pushed,
            "houba_drift_findings",
            &with(&[("kind", "unstamped")])
        ),
        1.0
    );
    // The last success is remembered across the failure.
    assert_eq!(
        value(&pushed, "houba_last_success_timestamp_seconds", &apply),
        success_at
    );
    assert!(
        value(
            &pushed,
            "houba_registry_requests_total",
            &with(&[
                ("registry", "dest"),
                ("method", "PUT"),
                ("status_class", "5xx")
            ])
        ) >= 1.0
    );

    // The webhook heard about the throttling, the drift, then the failure with its address;
    // never the registry password.
    let events: Vec<serde_json::Value> = receiver
        .webhook()
        .iter()
        .map(|r| {
            assert!(!r.body.contains(PASSWORD), "password in a notification");
            serde_json::from_str(&r.body).unwrap()
        })
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["rate_limited", "drift_found", "apply_failed"],
        "{events:#?}"
    );
    assert_eq!(
        events[2]["failures"][0]["address"],
        policy.address(proxy.host(), "1.36.0")
    );
    for file in [&textfile, &report] {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(!text.contains(PASSWORD), "password in {}", file.display());
    }
    assert!(!pushed.contains(PASSWORD));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushgateway_that_is_down_is_a_warning() {
    let upstream = ferro().await;
    push_upstream(upstream.client().as_ref(), "busybox", "1.36.0", 1).await;
    let destination = ferro().await;
    let ws = Workspace::new(upstream.host(), &[("dest", destination.host())]);
    ws.policy(
        "busybox",
        &Policy::new("busybox", "busybox", r"^1\.36\.\d+$", "dest").yaml(),
    );
    let down = format!("http://127.0.0.1:{}", support::free_port());
    let r = ws.run(&["plan", "--pushgateway", &down]).await;
    r.expect_code(0);
    assert!(r.stderr.contains("metrics push failed"), "{}", r.stderr);
    let bad = ws.run(&["plan", "--pushgateway", "ftp://x"]).await;
    bad.expect_code(1);
    assert!(
        bad.stderr_flat().contains("is not an http(s) URL"),
        "{}",
        bad.stderr
    );
}
