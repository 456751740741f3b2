//! Prometheus components on loopback for the metrics and notification tests: a real
//! Pushgateway and Alertmanager (Debian packages, child processes killed on drop, data in a
//! temporary directory), `promtool`, and a stand-in receiver for ntfy and webhooks that checks
//! requests the way ntfy's publish API documents them (<https://docs.ntfy.sh/publish/>).

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::{AbortOnDrop, free_port};

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running Prometheus component.
pub struct Component {
    pub url: String,
    _daemon: Daemon,
    _dir: tempfile::TempDir,
}

async fn wait_ready(url: &str) {
    let client = super::http_client();
    for _ in 0..200 {
        if let Ok(r) = client.get(format!("{url}/-/ready")).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{url} did not become ready");
}

/// `prometheus-pushgateway` on 127.0.0.1.
pub async fn pushgateway() -> Component {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let child = Command::new("prometheus-pushgateway")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!(
            "--persistence.file={}",
            dir.path().join("pushgateway.data").display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus-pushgateway starts (apt-get install prometheus-pushgateway)");
    let url = format!("http://127.0.0.1:{port}");
    let c = Component {
        url,
        _daemon: Daemon(child),
        _dir: dir,
    };
    wait_ready(&c.url).await;
    c
}

/// `prometheus-alertmanager` on 127.0.0.1, clustering off, one no-op receiver.
pub async fn alertmanager() -> Component {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: none\n  group_by: [alertname]\nreceivers:\n  - name: none\n",
    )
    .expect("write alertmanager.yml");
    let child = Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus-alertmanager starts (apt-get install prometheus-alertmanager)");
    let url = format!("http://127.0.0.1:{port}");
    let c = Component {
        url,
        _daemon: Daemon(child),
        _dir: dir,
    };
    wait_ready(&c.url).await;
    c
}

/// `promtool check metrics` on `text`: Ok, or promtool's complaints.
pub fn promtool_check_metrics(text: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (apt-get install prometheus)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool ends");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Samples of `name` in a Prometheus text exposition: (labels, value).
pub fn samples(text: &str, name: &str) -> Vec<(std::collections::BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (labels, value) = match rest.strip_prefix('{') {
            Some(r) => {
                let (l, v) = r.split_once("} ").expect("labels end");
                (l, v)
            }
            None if rest.starts_with(' ') => ("", rest.trim_start()),
            None => continue,
        };
        let mut map = std::collections::BTreeMap::new();
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once("=\"").expect("label pair");
            map.insert(k.to_string(), v.trim_end_matches('"').to_string());
        }
        let value: f64 = value
            .split_whitespace()
            .next()
            .expect("value")
            .parse()
            .expect("number");
        out.push((map, value));
    }
    out
}

/// The value of the one sample of `name` whose labels include all of `labels`.
#[track_caller]
pub fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<f64> = samples(text, name)
        .into_iter()
        .filter(|(l, _)| {
            labels
                .iter()
                .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, v)| v)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one sample of {name}{labels:?}, found {found:?} in:\n{text}"
    );
    found[0]
}

/// One request the stand-in received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Inbox {
    token: String,
    ntfy: Mutex<Vec<Received>>,
    webhook: Mutex<Vec<Received>>,
    rejected: Mutex<Vec<String>>,
}

/// A stand-in for an ntfy server (`POST /<topic>`) and a webhook endpoint (`POST /hook`).
pub struct Receiver {
    pub url: String,
    inbox: Arc<Inbox>,
    _task: AbortOnDrop,
}

impl Receiver {
    /// ntfy accepts only `Authorization: Bearer <token>` (a deny-all server).
    pub async fn start(token: &str) -> Receiver {
        let inbox = Arc::new(Inbox {
            token: token.to_string(),
            ntfy: Mutex::new(vec![]),
            webhook: Mutex::new(vec![]),
            rejected: Mutex::new(vec![]),
        });
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(webhook))
            .route("/{topic}", axum::routing::post(ntfy).put(ntfy))
            .with_state(inbox.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url,
            inbox,
            _task: AbortOnDrop(task),
        }
    }

    pub fn ntfy(&self) -> Vec<Received> {
        self.inbox.ntfy.lock().unwrap().clone()
    }

    pub fn webhook(&self) -> Vec<Received> {
        self.inbox.webhook.lock().unwrap().clone()
    }

    /// Why requests were refused (wrong token, malformed headers).
    pub fn rejected(&self) -> Vec<String> {
        self.inbox.rejected.lock().unwrap().clone()
    }
}

fn received(path: String, headers: &HeaderMap, body: &Bytes) -> Received {
    Received {
        path,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: String::from_utf8_lossy(body).into_owned(),
    }
}

/// What ntfy documents for publishing: the topic in the path, the message as the body,
/// `Title`, `Priority` 1–5 (or min/low/default/high/max), `Tags` comma-separated, `Markdown`
/// yes/true/1, `Authorization: Bearer <token>`; 401 on a bad token.
async fn ntfy(
    State(inbox): State<Arc<Inbox>>,
    Path(topic): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let r = received(format!("/{topic}"), &headers, &body);
    let reject = |why: String| {
        inbox.rejected.lock().unwrap().push(why);
    };
    if r.header("authorization") != Some(format!("Bearer {}", inbox.token).as_str()) {
        reject(format!("bad token for /{topic}"));
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"code": 40101, "http": 401, "error": "unauthorized"})),
        );
    }
    let valid_topic = !topic.is_empty()
        && topic.len() <= 64
        && topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let priority_ok = r.header("priority").is_some_and(|p| {
        matches!(
            p,
            "1" | "2" | "3" | "4" | "5" | "min" | "low" | "default" | "high" | "max"
        )
    });
    let markdown_ok = r
        .header("markdown")
        .is_some_and(|m| matches!(m, "yes" | "true" | "1"));
    let title_ok = r.header("title").is_some_and(|t| !t.is_empty());
    let tags_ok = r
        .header("tags")
        .is_some_and(|t| t.split(',').all(|x| !x.trim().is_empty()));
    if !(valid_topic && priority_ok && markdown_ok && title_ok && tags_ok && !r.body.is_empty()) {
        reject(format!("malformed publish: {r:?}"));
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"code": 40001, "http": 400, "error": "invalid request"})),
        );
    }
    let answer = json!({
        "id": format!("m{}", inbox.ntfy.lock().unwrap().len()),
        "time": 0,
        "event": "message",
        "topic": topic,
        "title": r.header("title"),
        "message": r.body,
    });
    inbox.ntfy.lock().unwrap().push(r);
    (StatusCode::OK, axum::Json(answer))
}

async fn webhook(
    State(inbox): State<Arc<Inbox>>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let r = received("/hook".into(), &headers, &body);
    if serde_json::from_str::<Value>(&r.body).is_err() {
        inbox
            .rejected
            .lock()
            .unwrap()
            .push("webhook body is not JSON".into());
        return StatusCode::BAD_REQUEST;
    }
    inbox.webhook.lock().unwrap().push(r);
    StatusCode::NO_CONTENT
}
