//! HTTP backend: the distribution API over reqwest.
//!
//! Everything goes through one request path (`HttpRegistry::send`) that applies the
//! per-registry concurrency bound, authentication (basic or bearer tokens with several scopes
//! in one token, so cross-repository mounts work), retries with exponential back-off and
//! jitter on connection errors and 5xx, `Retry-After` on 429, and request counting. Manifests
//! are moved as raw bytes; no typed manifest struct is involved.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use tokio::sync::Semaphore;

use super::auth::{self, Authenticator, Challenge, Scheme};
use super::stats::{self, RequestCounter};
use super::wire::retry_after;
pub(crate) use super::wire::{next_link, request_name, request_path, snippet};
pub use super::wire::{next_link_of, parse_listing};
use super::{ByteStream, ConnectOptions, RegistryError, Result};
use crate::config::{RegistryEndpoint, RegistryEntry};

pub(crate) const USER_AGENT: &str = concat!("houba/", env!("CARGO_PKG_VERSION"));

/// A registry reached over HTTP(S).
pub struct HttpRegistry {
    pub(crate) name: String,
    base_url: String,
    prefix: Option<String>,
    pub(crate) client: reqwest::Client,
    /// HTTP/1.1 only, for blob bodies (see `new`).
    blob_client: reqwest::Client,
    pub(crate) auth: Authenticator,
    permits: Arc<Semaphore>,
    pub(crate) counter: RequestCounter,
    retry: RetryPolicy,
    /// Whether the registry serves the referrers API (probed once).
    pub(crate) referrers_api: tokio::sync::OnceCell<bool>,
    /// Held by the listing that probes for the referrers API while it is unknown.
    pub(crate) referrers_probe: tokio::sync::Mutex<()>,
    /// Serialise fallback-index updates per subject so concurrent attaches do not lose entries.
    pub(crate) fallback_locks: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Blobs this client uploaded or found, by (repository, digest).
    pub(crate) known_blobs: std::sync::Mutex<std::collections::HashSet<(String, String)>>,
    /// Keeps manifest deletes apart from tag writes in the same repository.
    pub(crate) repository_locks: super::untag::RepositoryLocks,
    /// Set once a request has been answered: a connection (h2: the connection) exists.
    connected: std::sync::atomic::AtomicBool,
    /// Until then requests go one at a time, so a burst at start-up opens one connection
    /// and pays one TLS handshake, not one per request in flight.
    opening: tokio::sync::Mutex<()>,
}

#[derive(Debug, Clone, Copy)]
struct RetryPolicy {
    max_retries: u32,
    base: Duration,
    cap: Duration,
}

impl RetryPolicy {
    fn backoff(&self, attempt: u32) -> Duration {
        let exponential = self.base.saturating_mul(1 << attempt.min(16)).min(self.cap);
        let jitter_ms = rand::random_range(0..=exponential.as_millis() as u64 / 2);
        (exponential + Duration::from_millis(jitter_ms)).min(self.cap)
    }
}

/// A request body. Byte bodies are replayed on retry; a stream is sent once.
pub(crate) enum Body {
    Empty,
    Bytes(Bytes),
    Stream(ByteStream, u64),
}

/// One request; its errors name it by method and path (`GET /v2/<repo>/tags/list`).
pub(crate) struct Call {
    pub method: Method,
    pub url: String,
    pub scopes: Vec<String>,
    pub headers: HeaderMap,
    pub body: Body,
    /// Carries a blob body (download or upload): sent over HTTP/1.1.
    pub bulk: bool,
}

impl Call {
    pub fn new(method: Method, url: String) -> Self {
        Call {
            method,
            url,
            scopes: Vec::new(),
            headers: HeaderMap::new(),
            body: Body::Empty,
            bulk: false,
        }
    }

    pub fn bulk(mut self) -> Self {
        self.bulk = true;
        self
    }

    pub fn scopes(mut self, scopes: Vec<String>) -> Self {
        self.scopes = scopes;
        self
    }

    pub fn header(mut self, name: header::HeaderName, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.insert(name, value);
        }
        self
    }

    pub fn body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }
}

impl HttpRegistry {
    /// A client for the roster entry `entry`: TLS, CA certificate and credentials resolved (nothing is sent yet).
    pub fn new(entry: &RegistryEntry, options: &ConnectOptions) -> Result<Self> {
        let RegistryEndpoint::Http {
            host,
            prefix,
            tls_verify,
            ca_cert,
            credentials,
        } = &entry.endpoint
        else {
            return Err(RegistryError::Transport {
                registry: entry.name.clone(),
                message: "roster entry is not an HTTP registry".into(),
            });
        };
        let prefix = prefix
            .as_deref()
            .map(|p| p.trim_matches('/').to_owned())
            .filter(|p| !p.is_empty());
        let name = match &prefix {
            Some(prefix) => format!("{host}/{prefix}"),
            None => host.clone(),
        };
        let transport = |message: String| RegistryError::Transport {
            registry: name.clone(),
            message,
        };
        // Over TLS, ALPN offers h2 and the small requests (HEADs, manifests, tag lists) share
        // one multiplexed connection per registry (one handshake); a plain-HTTP registry is
        // spoken to in HTTP/1.1. Blob bodies always travel over HTTP/1.1 connections of their
        // own (`blob_client`): a blob copy pipes a download into an upload, and with both on
        // multiplexed connections one stalled upload holds the download connection's shared
        // flow-control window and starves every other copy (a deadlock, seen as time-outs).
        // The per-registry semaphore (`concurrency`) bounds requests in flight either way.
        let build = |http1_only: bool| -> Result<reqwest::Client> {
            let mut builder = reqwest::Client::builder()
                .user_agent(USER_AGENT)
                .read_timeout(options.read_timeout)
                .connect_timeout(options.connect_timeout)
                .pool_max_idle_per_host(entry.concurrency.max(1))
                .tcp_nodelay(true);
            builder = if http1_only {
                builder.http1_only()
            } else {
                builder.http2_adaptive_window(true)
            };
            // One shared verifier per process (see `tls`), even for plain HTTP: reqwest
            // would otherwise read the platform root store for every client it builds.
            if let Some(ca) = ca_cert {
                super::tls::pem_certificates(&ca.pem).map_err(|_| {
                    transport(format!(
                        "ca_cert {} holds no PEM certificate; point it at the CA's PEM file",
                        ca.path.display()
                    ))
                })?;
            }
            let pem = ca_cert.as_ref().map_or(&[][..], |ca| ca.pem.as_slice());
            let tls = super::tls::client_config(pem, http1_only)
                .map_err(|e| transport(format!("cannot build the TLS configuration: {e}")))?;
            builder = builder.use_preconfigured_tls(tls);
            builder.build().map_err(|e| {
                transport(format!(
                    "cannot build HTTP client: {}",
                    auth::without_url(e)
                ))
            })
        };
        let client = build(false)?;
        let blob_client = build(true)?;
        let secret = auth::resolve(
            host,
            credentials,
            &options.env,
            options.docker_config.as_deref(),
        )?;
        Ok(HttpRegistry {
            auth: Authenticator::new(name.clone(), secret),
            name,
            base_url: format!("{}://{host}", if *tls_verify { "https" } else { "http" }),
            prefix,
            client,
            blob_client,
            permits: Arc::new(Semaphore::new(entry.concurrency.max(1))),
            counter: RequestCounter::default(),
            retry: RetryPolicy {
                max_retries: options.max_retries,
                base: options.backoff_base,
                cap: options.max_backoff,
            },
            referrers_api: tokio::sync::OnceCell::new(),
            referrers_probe: tokio::sync::Mutex::new(()),
            fallback_locks: Default::default(),
            known_blobs: Default::default(),
            repository_locks: Default::default(),
            connected: Default::default(),
            opening: tokio::sync::Mutex::new(()),
        })
    }

    /// Repository path on the server (with the roster prefix).
    pub(crate) fn full_repository(&self, repository: &str) -> String {
        match &self.prefix {
            Some(prefix) => format!("{prefix}/{repository}"),
            None => repository.to_owned(),
        }
    }

    /// Repository path relative to the roster prefix; `None` when outside it.
    pub(crate) fn relative_repository<'r>(&self, full: &'r str) -> Option<&'r str> {
        match &self.prefix {
            Some(prefix) => full.strip_prefix(prefix.as_str())?.strip_prefix('/'),
            None => Some(full),
        }
    }

    pub(crate) fn url(&self, repository: &str, tail: &str) -> String {
        format!(
            "{}/v2/{}/{tail}",
            self.base_url,
            self.full_repository(repository)
        )
    }

    pub(crate) fn root_url(&self, tail: &str) -> String {
        format!("{}/v2/{tail}", self.base_url)
    }

    /// Resolve a `Location` or `Link` target against the registry base URL.
    pub(crate) fn resolve(&self, target: &str) -> String {
        if target.starts_with("http://") || target.starts_with("https://") {
            target.to_owned()
        } else {
            format!("{}/{}", self.base_url, target.trim_start_matches('/'))
        }
    }

    pub(crate) fn scope(&self, repository: &str, actions: &str) -> String {
        format!("repository:{}:{actions}", self.full_repository(repository))
    }

    /// Remove any credential text from a message before it leaves this client.
    pub(crate) fn scrub(&self, message: String) -> String {
        match self.auth.secret().map(|s| s.secret_text()) {
            Some(secret) if !secret.is_empty() => message.replace(secret, "<redacted>"),
            _ => message,
        }
    }

    pub(crate) fn protocol(
        &self,
        repository: &str,
        reference: &str,
        message: String,
    ) -> RegistryError {
        RegistryError::Protocol {
            registry: self.name.clone(),
            repository: repository.to_owned(),
            reference: reference.to_owned(),
            message: self.scrub(message),
        }
    }

    pub(crate) fn not_found(&self, repository: &str, reference: &str) -> RegistryError {
        RegistryError::NotFound {
            registry: self.name.clone(),
            repository: repository.to_owned(),
            reference: reference.to_owned(),
        }
    }

    fn transport(&self, call: &Call, message: String) -> RegistryError {
        RegistryError::Transport {
            registry: self.name.clone(),
            message: self.scrub(format!(
                "{} {}: {message}",
                call.method,
                request_name(&call.url)
            )),
        }
    }

    fn auth_error(&self, call: &Call, detail: String) -> RegistryError {
        RegistryError::Auth {
            registry: self.name.clone(),
            repository: format!("{} {}", call.method, request_name(&call.url)),
            detail: self.scrub(detail),
        }
    }

    /// Send a request. Answers other than 401/403/429/5xx are returned for the caller to
    /// interpret; those four are handled here (authenticate, fail, wait, retry).
    pub(crate) async fn send(&self, mut call: Call) -> Result<reqwest::Response> {
        let mut attempt = 0u32;
        let mut reauthenticated = false;
        let mut stream = match std::mem::replace(&mut call.body, Body::Empty) {
            Body::Stream(stream, size) => Some((stream, size)),
            other => {
                call.body = other;
                None
            }
        };
        let replayable = stream.is_none();
        let stream_size = stream.as_ref().map(|(_, size)| *size).unwrap_or(0);
        let client = if call.bulk {
            &self.blob_client
        } else {
            &self.client
        };
        loop {
            let mut request = client
                .request(call.method.clone(), &call.url)
                .headers(call.headers.clone());
            match &call.body {
                Body::Bytes(bytes) => request = request.body(bytes.clone()),
                Body::Empty if call.method == Method::PUT || call.method == Method::POST => {
                    request = request.header(header::CONTENT_LENGTH, "0")
                }
                _ => {}
            }
            if let Some((body, size)) = stream.take() {
                request = request
                    .header(header::CONTENT_LENGTH, size)
                    .body(reqwest::Body::wrap_stream(body));
            }
            if let Some(value) = self.auth.header(&self.client, &call.scopes).await? {
                request = request.header(header::AUTHORIZATION, value);
            }
            let permit = self
                .permits
                .acquire()
                .await
                .map_err(|_| self.transport(&call, "client closed".into()))?;
            self.counter.record(
                counter_method(&call.method),
                stats::Endpoint::of_path(request_path(&call.url)),
            );
            let sent_bytes = match &call.body {
                Body::Bytes(bytes) => bytes.len() as u64,
                _ if !replayable => stream_size,
                _ => 0,
            };
            let opening = if self.connected.load(std::sync::atomic::Ordering::Acquire) {
                None
            } else {
                Some(self.opening.lock().await)
            };
            let outcome = request.send().await;
            if outcome.is_ok() {
                self.connected
                    .store(true, std::sync::atomic::Ordering::Release);
            }
            drop(opening);
            drop(permit);
            let response = match outcome {
                Ok(response) => {
                    self.counter.record_written(sent_bytes);
                    self.counter
                        .record_answer(counter_method(&call.method), response.status().as_u16());
                    if call.method != Method::HEAD {
                        self.counter
                            .record_read(response.content_length().unwrap_or(0));
                    }
                    response
                }
                Err(error) => {
                    let message = auth::without_url(error);
                    if replayable && attempt < self.retry.max_retries {
                        tracing::debug!(registry = %self.name, %message, attempt, "retrying after transport error");
                        tokio::time::sleep(self.retry.backoff(attempt)).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(self.transport(&call, message));
                }
            };
            self.note_rate_limit(response.headers());
            let status = response.status();
            match status {
                StatusCode::UNAUTHORIZED => {
                    let challenge = response
                        .headers()
                        .get(header::WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(auth::parse_challenge);
                    if reauthenticated || !replayable {
                        return Err(self.auth_error(&call, self.rejection(&challenge)));
                    }
                    reauthenticated = true;
                    match challenge {
                        Some(Challenge::Basic) if self.auth.secret().is_some() => {
                            self.auth.learn(Scheme::Basic)
                        }
                        Some(Challenge::Bearer {
                            realm,
                            service,
                            scope,
                        }) => {
                            if call.scopes.is_empty() {
                                call.scopes.extend(scope);
                            }
                            self.auth.forget(&call.scopes);
                            self.auth.learn(Scheme::Bearer { realm, service });
                        }
                        other => return Err(self.auth_error(&call, self.rejection(&other))),
                    }
                }
                StatusCode::FORBIDDEN => {
                    let body = response.text().await.unwrap_or_default();
                    return Err(
                        self.auth_error(&call, format!("access denied (403): {}", snippet(&body)))
                    );
                }
                StatusCode::TOO_MANY_REQUESTS
                | StatusCode::INTERNAL_SERVER_ERROR
                | StatusCode::BAD_GATEWAY
                | StatusCode::SERVICE_UNAVAILABLE
                | StatusCode::GATEWAY_TIMEOUT => {
                    let wait = retry_after(response.headers()).map(|w| w.min(self.retry.cap));
                    if !replayable || attempt >= self.retry.max_retries {
                        let body = response.text().await.unwrap_or_default();
                        return Err(self.transport(
                            &call,
                            format!(
                                "server answered {status} after {} attempts: {}",
                                attempt + 1,
                                snippet(&body)
                            ),
                        ));
                    }
                    let wait = wait.unwrap_or_else(|| self.retry.backoff(attempt));
                    self.counter.record_retry_wait(wait);
                    tracing::info!(registry = %self.name, %status, wait_ms = wait.as_millis() as u64, "registry asked to back off; retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                _ => {
                    if self.auth.scheme() == Scheme::Unknown {
                        self.auth.learn(Scheme::Anonymous);
                    }
                    return Ok(response);
                }
            }
        }
    }

    fn rejection(&self, challenge: &Option<Challenge>) -> String {
        match (challenge, self.auth.secret()) {
            (_, None) => "the registry requires credentials and none are configured".into(),
            (Some(Challenge::Basic), Some(_)) => {
                "the registry rejected the configured username/password".into()
            }
            (Some(Challenge::Bearer { .. }), Some(_)) => {
                "the registry rejected the token obtained with the configured credentials".into()
            }
            (None, Some(_)) => "the registry answered 401 without a usable challenge".into(),
        }
    }

    /// Docker Hub reports its pull budget in `ratelimit-limit` / `ratelimit-remaining:
    /// <n>;w=<window>`: kept for the plan's request line, and warned about when nearly spent.
    fn note_rate_limit(&self, headers: &HeaderMap) {
        let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let Some(budget) =
            stats::RateLimit::from_headers(value("ratelimit-limit"), value("ratelimit-remaining"))
        else {
            return;
        };
        self.counter.record_rate_limit(budget);
        if budget.remaining < 10 {
            tracing::warn!(registry = %self.name, remaining = budget.remaining, limit = budget.limit, "registry rate limit nearly exhausted");
        }
    }
}

fn counter_method(method: &Method) -> stats::Method {
    match *method {
        Method::HEAD => stats::Method::Head,
        Method::PUT => stats::Method::Put,
        Method::POST => stats::Method::Post,
        Method::PATCH => stats::Method::Patch,
        Method::DELETE => stats::Method::Delete,
        _ => stats::Method::Get,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = RetryPolicy {
            max_retries: 5,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
        };
        assert!(policy.backoff(0) >= Duration::from_millis(100));
        assert!(policy.backoff(0) <= Duration::from_millis(150));
        assert!(policy.backoff(3) >= Duration::from_millis(800));
        assert_eq!(policy.backoff(10), Duration::from_secs(1));
    }
}
