//! Notifications from real runs: an ntfy stand-in and a webhook receive exactly one
//! notification per new finding across runs, one "resolved" after repair and none when
//! nothing changed; a real Alertmanager lists the drift alerts with stable labels and
//! resolves them after repair; a sink with a wrong token never fails the run and is counted.
//! Canary secrets (ntfy token, HMAC key) never appear in output, metrics, reports or bodies.

mod support;

use serde_json::Value;
use support::houba::{Policy, Run, Workspace, push_upstream, tag_digests};
use support::prometheus::{Received, Receiver, alertmanager, value};
use support::{Auth, distribution, ferro, images};

const TOKEN: &str = "tk_canary-ntfy-token-7c1d";
const WRONG: &str = "tk_wrong-token-0000";
const HMAC_KEY: &str = "hmac-canary-key-4f2e";

async fn run(ws: &Workspace, args: &[&str]) -> Run {
    let out = ws
        .command(args)
        .env("NTFY_TOKEN", TOKEN)
        .env("NTFY_WRONG", WRONG)
        .env("HOOK_KEY", HMAC_KEY)
        .env("HOUBA_LOG", "houba=debug")
        .output()
        .await
        .expect("houba runs");
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    for secret in [TOKEN, WRONG, HMAC_KEY] {
        assert!(
            !r.stdout.contains(secret) && !r.stderr.contains(secret),
            "a secret leaked into the output of {args:?}:\n{}\n{}",
            r.stdout,
            r.stderr
        );
    }
    r
}

fn body_json(r: &Received) -> Value {
    serde_json::from_str(&r.body).expect("webhook body is JSON")
}

async fn alerts(url: &str) -> Vec<Value> {
    let v: Value = support::http_client()
        .get(format!("{url}/api/v2/alerts"))
        .send()
        .await
        .expect("alertmanager answers")
        .json()
        .await
        .expect("alerts JSON");
    v.as_array()
        .unwrap()
        .iter()
        .filter(|a| a["labels"]["alertname"] == "HoubaDriftFinding")
        .cloned()
        .collect()
}

fn check_secrets_absent(what: &str, text: &str) {
    for secret in [TOKEN, WRONG, HMAC_KEY] {
        assert!(!text.contains(secret), "a secret leaked into {what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_notified_once_then_resolved() {
    let (upstream, destination) = (ferro().await, distribution(Auth::None).await);
    for tag in ["1.36.0", "1.37.0"] {
        push_upstream(upstream.client().as_ref(), "busybox", tag, 1).await;
    }
    let receiver = Receiver::start(TOKEN).await;
    let am = alertmanager().await;
    let ws = Workspace::new(upstream.host(), &[("dest", destination.host())]);
    ws.write_config(&format!(
        r#"
[[notify]]
name = "phone"
kind = "ntfy"
url = "{url}"
topics = {{ critical = "hl-crit", warning = "hl-warn", info = "hl-info" }}
tags = ["registry"]
token_env = "NTFY_TOKEN"
link = "https://dashboards.example/houba"

[[notify]]
name = "wrong-token"
kind = "ntfy"
url = "{url}"
topic = "hl-warn"
token_env = "NTFY_WRONG"

[[notify]]
name = "hook"
kind = "webhook"
url = "{url}/hook"
hmac_key_env = "HOOK_KEY"

[[notify]]
name = "am"
kind = "alertmanager"
url = "{am}"
"#,
        url = receiver.url,
        am = am.url
    ));
    let mut policy = Policy::new("busybox", "busybox", r"^1\.3[67]\.\d+$", "dest");
    policy.aliases = vec!["latest".into()];
    ws.policy("busybox", &policy.yaml());
    let metrics = ws.path("houba.prom");
    let metrics_s = metrics.to_str().unwrap().to_string();
    let report = ws.path("report.json");
    let report_s = report.to_str().unwrap().to_string();
    let drift = ["drift", "--metrics-file", &metrics_s, "--report", &report_s];

    run(&ws, &["apply", "--auto"]).await.expect_code(0);
    run(&ws, &drift).await.expect_code(0);
    assert!(receiver.ntfy().is_empty() && receiver.webhook().is_empty());

    // Run 1: a hand-pushed image over 1.36.0.
    let dst = destination.client();
    let placed = tag_digests(dst.as_ref(), "mirror/busybox").await;
    let foreign = images::oci_image(
        "hand-built",
        "amd64",
        vec![images::tar_layer(
            images::OCI_LAYER_GZIP,
            &[("x", b"y".as_slice())],
        )],
    );
    images::push_image(dst.as_ref(), "mirror/busybox", "1.36.0", &foreign)
        .await
        .unwrap();
    let r1 = run(&ws, &drift).await;
    r1.expect_code(2);
    let ntfy = receiver.ntfy();
    assert_eq!(ntfy.len(), 1, "{ntfy:#?}");
    let n = &ntfy[0];
    assert_eq!(n.path, "/hl-warn");
    assert_eq!(n.header("priority"), Some("4"));
    assert_eq!(n.header("markdown"), Some("yes"));
    assert_eq!(n.header("click"), Some("https://dashboards.example/houba"));
    assert!(n.header("tags").unwrap().contains("drift_found"));
    assert!(n.header("tags").unwrap().contains("registry"));
    assert!(n.header("title").unwrap().contains("drift on 1 tag"));
    let host = destination.host();
    assert!(
        n.body.contains(&policy.address(host, "1.36.0")) && n.body.contains("unstamped"),
        "{}",
        n.body
    );
    let hooks = receiver.webhook();
    assert_eq!(hooks.len(), 1);
    let payload = body_json(&hooks[0]);
    assert_eq!(payload["version"], "houba.io/notification/v1");
    assert_eq!(payload["event"], "drift_found");
    assert_eq!(payload["severity"], "warning");
    assert_eq!(payload["counts"]["findings"], 1);
    assert_eq!(
        payload["findings"][0]["address"],
        policy.address(host, "1.36.0")
    );
    // The signature is HMAC-SHA256 of the exact body, checked with openssl.
    let signature = hooks[0].header("x-houba-signature-256").unwrap();
    let out = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", HMAC_KEY, "-r"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(hooks[0].body.as_bytes())?;
            c.wait_with_output()
        })
        .expect("openssl runs");
    let hex = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(signature, format!("sha256={hex}"));
    let firing = alerts(&am.url).await;
    assert_eq!(firing.len(), 1, "{firing:#?}");
    let labels = &firing[0]["labels"];
    assert_eq!(labels["address"], policy.address(host, "1.36.0"));
    assert_eq!(labels["kind"], "unstamped");
    assert_eq!(labels["registry"], "dest");
    assert_eq!(labels["repository"], "mirror/busybox");
    assert_eq!(labels["houba_instance"], "all");
    assert_eq!(labels["severity"], "warning");
    assert_eq!(firing[0]["status"]["state"], "active");
    // The wrong-token sink failed, the run did not, and the failure is counted.
    assert!(receiver.rejected().iter().any(|r| r.contains("bad token")));
    let text = std::fs::read_to_string(&metrics).unwrap();
    let sink = |name: &'static str, outcome: &'static str| {
        value(
            &text,
            "houba_notifications_total",
            &[("sink", name), ("outcome", outcome)],
        )
    };
    assert_eq!(sink("wrong-token", "failed"), 1.0);
    assert_eq!(sink("wrong-token", "sent"), 0.0);
    assert_eq!(sink("phone", "sent"), 1.0);
    assert!(r1.stderr.contains("notification failed"), "{}", r1.stderr);

    // Run 2: a second finding (`latest` moved by hand): one notification, only for it.
    let (_, first) = dst
        .get_manifest("mirror/busybox", &placed["1.36.0"])
        .await
        .unwrap()
        .unwrap();
    dst.put_manifest("mirror/busybox", "latest", images::OCI_MANIFEST, first)
        .await
        .unwrap();
    run(&ws, &drift).await.expect_code(2);
    let ntfy = receiver.ntfy();
    assert_eq!(ntfy.len(), 2, "{ntfy:#?}");
    assert!(ntfy[1].body.contains(&policy.address(host, "latest")));
    assert!(!ntfy[1].body.contains(&policy.address(host, "1.36.0")));
    let hooks = receiver.webhook();
    assert_eq!(hooks.len(), 2);
    assert_eq!(body_json(&hooks[1])["counts"]["findings"], 1);
    assert_eq!(alerts(&am.url).await.len(), 2);

    // Run 3: nothing changed: nothing sent.
    run(&ws, &drift).await.expect_code(2);
    assert_eq!(receiver.ntfy().len(), 2);
    assert_eq!(receiver.webhook().len(), 2);

    // Repair, then one "resolved" for both findings; Alertmanager resolves them.
    run(&ws, &["apply", "--auto"]).await.expect_code(0);
    assert_eq!(
        receiver.ntfy().len(),
        2,
        "apply saw the same drift: nothing new"
    );
    run(&ws, &drift).await.expect_code(0);
    let ntfy = receiver.ntfy();
    assert_eq!(ntfy.len(), 3, "{ntfy:#?}");
    assert!(
        ntfy[2]
            .header("title")
            .unwrap()
            .contains("resolved on 2 tag")
    );
    assert!(ntfy[2].header("tags").unwrap().contains("drift_resolved"));
    let hooks = receiver.webhook();
    assert_eq!(hooks.len(), 3);
    let resolved = body_json(&hooks[2]);
    assert_eq!(resolved["event"], "drift_resolved");
    assert_eq!(resolved["resolved"], true);
    assert_eq!(resolved["findings"].as_array().unwrap().len(), 2);
    assert!(
        alerts(&am.url).await.is_empty(),
        "resolved alerts are no longer listed"
    );
    run(&ws, &drift).await.expect_code(0);
    assert_eq!(receiver.ntfy().len(), 3);
    assert_eq!(receiver.webhook().len(), 3);

    // Canaries: never in what was sent (the token only in ntfy's Authorization header),
    // the metrics, the report or the state.
    for r in receiver.ntfy().iter().chain(receiver.webhook().iter()) {
        check_secrets_absent("a notification body", &r.body);
        for (k, v) in &r.headers {
            if !k.eq_ignore_ascii_case("authorization") {
                check_secrets_absent("a notification header", v);
            }
        }
    }
    check_secrets_absent("the metrics", &std::fs::read_to_string(&metrics).unwrap());
    check_secrets_absent("the report", &std::fs::read_to_string(&report).unwrap());
    for entry in std::fs::read_dir(ws.path("cache/report")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        check_secrets_absent("the state", &text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_never_inline_and_unknown_keys_are_refused() {
    let ws = Workspace::new("127.0.0.1:1", &[]);
    ws.write_config(
        "[[notify]]\nkind = \"ntfy\"\nurl = \"http://ntfy.ntfy.svc\"\ntopic = \"hl-warn\"\ntoken = \"tk_inline\"\n",
    );
    let r = ws.run(&["validate"]).await;
    r.expect_code(1);
    let flat = r.stderr_flat();
    assert!(flat.contains("never written inline"), "{flat}");
    assert!(flat.contains("houba.toml:6:1"), "{flat}");
    assert!(
        !r.stderr.contains("tk_inline"),
        "the inline secret is not shown back"
    );
    ws.write_config("[metrics]\npushgatway = \"http://pg:9091\"\n");
    let r = ws.run(&["validate"]).await;
    r.expect_code(1);
    let flat = r.stderr_flat();
    assert!(
        flat.contains("unknown key") && flat.contains("houba.toml:3:1"),
        "{flat}"
    );
    ws.write_config(
        "[[notify]]\nkind = \"webhook\"\nurl = \"http://hook.example\"\nhmac_key_env = \"UNSET_VAR\"\n",
    );
    let r = ws.run(&["validate"]).await;
    r.expect_code(1);
    assert!(
        r.stderr_flat().contains("`UNSET_VAR` is not set"),
        "{}",
        r.stderr
    );
}
