//! A loopback HTTP proxy that forwards to a registry and injects failures on chosen
//! requests: error statuses, 429 with `Retry-After` (seconds or an HTTP date), a connection
//! cut in the middle of a response body or of a request body, a stalled answer, or Docker
//! Hub's rate-limit headers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use super::AbortOnDrop;

/// One kind of failure.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer this status without forwarding.
    Status(u16),
    /// Answer 429 with `Retry-After: <secs>`.
    TooManyRequests { retry_after_secs: u64 },
    /// Forward, then cut the connection after this many bytes of the response body.
    ResetAfter(usize),
    /// Wait this long before forwarding.
    Stall(Duration),
    /// Answer 429 with `Retry-After` as an HTTP date this many seconds from now.
    TooManyRequestsUntil { secs_from_now: u64 },
    /// Answer 200 with Docker Hub's rate-limit headers (`ratelimit-limit`,
    /// `ratelimit-remaining`) added to the forwarded answer.
    RateLimitHeaders { limit: u64, remaining: u64 },
    /// Read this many bytes of the request body, then drop the connection without answering
    /// (a reset in the middle of an upload, or a registry going away).
    DropAfterRequestBytes(usize),
}

/// Which requests a fault applies to, and how many times.
#[derive(Debug, Clone)]
pub struct Rule {
    pub method: Option<&'static str>,
    pub path_contains: String,
    pub fault: Fault,
    pub times: usize,
}

impl Rule {
    pub fn new(
        method: Option<&'static str>,
        path_contains: &str,
        fault: Fault,
        times: usize,
    ) -> Self {
        Rule {
            method,
            path_contains: path_contains.to_owned(),
            fault,
            times,
        }
    }
}

struct ProxyState {
    upstream: String,
    own_host: String,
    client: reqwest::Client,
    rules: Mutex<Vec<Rule>>,
    injected: AtomicU64,
    /// Every request seen, `(method, path and query)`, in arrival order.
    seen: Mutex<Vec<(String, String)>>,
}

impl ProxyState {
    fn take_fault(&self, method: &str, path: &str) -> Option<Fault> {
        let mut rules = self.rules.lock().expect("rules");
        let rule = rules.iter_mut().find(|r| {
            r.times > 0 && r.method.is_none_or(|m| m == method) && path.contains(&r.path_contains)
        })?;
        rule.times -= 1;
        self.injected.fetch_add(1, Ordering::Relaxed);
        Some(rule.fault.clone())
    }
}

/// A running proxy; stops on drop.
pub struct FaultProxy {
    host: String,
    state: Arc<ProxyState>,
    _task: AbortOnDrop,
}

impl FaultProxy {
    /// Proxy 127.0.0.1:<new port> to `upstream_host`.
    pub async fn start(upstream_host: &str) -> FaultProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let host = listener.local_addr().expect("addr").to_string();
        let state = Arc::new(ProxyState {
            upstream: upstream_host.to_owned(),
            own_host: host.clone(),
            client: {
                ::houba::registry::install_crypto_provider();
                reqwest::Client::builder()
            }
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
            rules: Mutex::new(Vec::new()),
            injected: AtomicU64::new(0),
            seen: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FaultProxy {
            host,
            state,
            _task: AbortOnDrop(task),
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn add(&self, rule: Rule) {
        self.state.rules.lock().expect("rules").push(rule);
    }

    pub fn clear(&self) {
        self.state.rules.lock().expect("rules").clear();
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u64 {
        self.state.injected.load(Ordering::Relaxed)
    }

    /// Every request seen since the start (or the last `forget_requests`), as `(method, path
    /// and query)`: the registry's side of the request count.
    pub fn requests(&self) -> Vec<(String, String)> {
        self.state.seen.lock().expect("request log").clone()
    }

    /// Start the request log afresh.
    pub fn forget_requests(&self) {
        self.state.seen.lock().expect("request log").clear();
    }
}

async fn forward(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_else(|| "/".into());
    state
        .seen
        .lock()
        .expect("request log")
        .push((method.as_str().to_owned(), path.clone()));
    let mut cut_after = None;
    let mut rate_limit = None;
    match state.take_fault(method.as_str(), &path) {
        Some(Fault::Status(code)) => {
            return (
                StatusCode::from_u16(code).expect("status"),
                "injected failure",
            )
                .into_response();
        }
        Some(Fault::TooManyRequests { retry_after_secs }) => {
            let mut response = (StatusCode::TOO_MANY_REQUESTS, "slow down").into_response();
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(retry_after_secs));
            return response;
        }
        Some(Fault::TooManyRequestsUntil { secs_from_now }) => {
            let at = std::time::SystemTime::now() + Duration::from_secs(secs_from_now);
            let mut response = (StatusCode::TOO_MANY_REQUESTS, "slow down").into_response();
            response.headers_mut().insert(
                "retry-after",
                HeaderValue::from_str(&httpdate::fmt_http_date(at)).expect("date header"),
            );
            return response;
        }
        Some(Fault::RateLimitHeaders { limit, remaining }) => {
            rate_limit = Some((limit, remaining));
        }
        Some(Fault::DropAfterRequestBytes(limit)) => {
            let mut body = request.into_body().into_data_stream();
            let mut read = 0usize;
            while read < limit {
                match body.next().await {
                    Some(Ok(chunk)) => read += chunk.len(),
                    _ => break,
                }
            }
            // Unwinding out of the connection task drops the socket without an answer;
            // `resume_unwind` skips the panic hook, so nothing is printed.
            std::panic::resume_unwind(Box::new("injected connection drop"));
        }
        Some(Fault::Stall(duration)) => tokio::time::sleep(duration).await,
        Some(Fault::ResetAfter(bytes)) => cut_after = Some(bytes),
        None => {}
    }
    let (parts, body) = request.into_parts();
    let mut upstream = state.client.request(
        parts.method.clone(),
        format!("http://{}{path}", state.upstream),
    );
    for (name, value) in &parts.headers {
        if name != "host" {
            upstream = upstream.header(name, value);
        }
    }
    let upstream = upstream.body(reqwest::Body::wrap_stream(body.into_data_stream()));
    let answer = match upstream.send().await {
        Ok(answer) => answer,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let mut builder = Response::builder().status(answer.status().as_u16());
    for (name, value) in answer.headers() {
        if name == "location"
            && let Ok(text) = value.to_str()
        {
            let rewritten = text.replace(&state.upstream, &state.own_host);
            builder = builder.header(name, rewritten);
        } else if name != "transfer-encoding" && name != "connection" {
            builder = builder.header(name, value);
        }
    }
    if let Some((limit, remaining)) = rate_limit {
        builder = builder
            .header("ratelimit-limit", format!("{limit};w=21600"))
            .header("ratelimit-remaining", format!("{remaining};w=21600"));
    }
    let mut sent = 0usize;
    let stream = answer.bytes_stream().map(move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        if let Some(limit) = cut_after {
            if sent >= limit {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "injected reset",
                ));
            }
            let keep = (limit - sent).min(chunk.len());
            sent += keep;
            if keep < chunk.len() {
                return Ok(chunk.slice(..keep));
            }
        }
        Ok(chunk)
    });
    // After the cut, end the body with an error so the connection is torn down.
    let stream = stream.chain(futures::stream::iter(cut_after.map(|_| {
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected reset",
        ))
    })));
    builder
        .body(Body::from_stream(stream))
        .unwrap_or_else(|e| (StatusCode::BAD_GATEWAY, e.to_string()).into_response())
}
