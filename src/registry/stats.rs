//! Per-registry request counters, so a run can say how many requests it cost, and what the
//! registry answered: status classes, bytes, throttling (for the run report and metrics).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

/// Requests made to one registry, by HTTP method, and by method and endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RequestStats {
    /// HEAD requests.
    pub head: u64,
    /// GET requests.
    pub get: u64,
    /// PUT requests.
    pub put: u64,
    /// POST requests.
    pub post: u64,
    /// PATCH requests.
    pub patch: u64,
    /// DELETE requests.
    pub delete: u64,
    /// `[method][endpoint]` requests, indexed like [`Method::ALL`] and [`Endpoint::ALL`].
    pub endpoints: [[u64; Endpoint::COUNT]; 6],
    /// The request budget the registry last announced (Docker Hub's `ratelimit-*` headers).
    pub rate_limit: Option<RateLimit>,
}

/// The distribution API endpoint a request went to, named as the OCI distribution spec names
/// it (`/v2/<name>/tags/list`): what a registry operator reads in the access log. An OCI
/// layout directory counts its operations under the endpoint they stand for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v2/`: the API version check.
    Base,
    /// `/v2/_catalog`.
    Catalog,
    /// `/v2/<repo>/tags/list`.
    Tags,
    /// `/v2/<repo>/manifests/<ref>`.
    Manifest,
    /// `/v2/<repo>/blobs/<digest>`.
    Blob,
    /// `/v2/<repo>/blobs/uploads/`: starting (or mounting) an upload, and its later chunks.
    Upload,
    /// `/v2/<repo>/referrers/<digest>`.
    Referrers,
    /// Anything else.
    Other,
}

impl Endpoint {
    /// How many endpoints are told apart.
    pub const COUNT: usize = 8;

    /// Every endpoint, in the order of [`RequestStats::endpoints`].
    pub const ALL: [Endpoint; Endpoint::COUNT] = [
        Endpoint::Base,
        Endpoint::Catalog,
        Endpoint::Tags,
        Endpoint::Manifest,
        Endpoint::Blob,
        Endpoint::Upload,
        Endpoint::Referrers,
        Endpoint::Other,
    ];

    /// The endpoint's path template.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Base => "/v2/",
            Endpoint::Catalog => "/v2/_catalog",
            Endpoint::Tags => "/v2/<repo>/tags/list",
            Endpoint::Manifest => "/v2/<repo>/manifests/<ref>",
            Endpoint::Blob => "/v2/<repo>/blobs/<digest>",
            Endpoint::Upload => "/v2/<repo>/blobs/uploads/",
            Endpoint::Referrers => "/v2/<repo>/referrers/<digest>",
            Endpoint::Other => "(other)",
        }
    }

    /// The endpoint of a request path (`/v2/library/busybox/tags/list`; no query).
    pub fn of_path(path: &str) -> Endpoint {
        let Some(rest) = path.strip_prefix("/v2/") else {
            return Endpoint::Other;
        };
        if rest.is_empty() {
            Endpoint::Base
        } else if rest == "_catalog" {
            Endpoint::Catalog
        } else if rest.ends_with("/tags/list") {
            Endpoint::Tags
        } else if rest.contains("/manifests/") {
            Endpoint::Manifest
        } else if rest.contains("/blobs/uploads/") || rest.ends_with("/blobs/uploads") {
            Endpoint::Upload
        } else if rest.contains("/blobs/") {
            Endpoint::Blob
        } else if rest.contains("/referrers/") {
            Endpoint::Referrers
        } else {
            Endpoint::Other
        }
    }

    fn index(self) -> usize {
        Endpoint::ALL.iter().position(|e| *e == self).unwrap_or(7)
    }
}

/// A registry's announced request budget: `ratelimit-limit` / `ratelimit-remaining`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RateLimit {
    /// The requests allowed per window (`ratelimit-limit`).
    pub limit: u64,
    /// The requests left in the window (`ratelimit-remaining`).
    pub remaining: u64,
}

impl RateLimit {
    /// Reads `ratelimit-limit: 100;w=21600` and `ratelimit-remaining: 76;w=21600` (the window
    /// parameter is ignored). `None` unless both are there and numeric.
    pub fn from_headers(limit: Option<&str>, remaining: Option<&str>) -> Option<RateLimit> {
        let count = |v: &str| v.split(';').next()?.trim().parse::<u64>().ok();
        Some(RateLimit {
            limit: count(limit?)?,
            remaining: count(remaining?)?,
        })
    }
}

impl RequestStats {
    /// All requests.
    pub fn total(&self) -> u64 {
        self.head + self.get + self.put + self.post + self.patch + self.delete
    }

    /// Difference since an earlier snapshot of the same counters.
    pub fn since(&self, earlier: &RequestStats) -> RequestStats {
        RequestStats {
            head: self.head.saturating_sub(earlier.head),
            get: self.get.saturating_sub(earlier.get),
            put: self.put.saturating_sub(earlier.put),
            post: self.post.saturating_sub(earlier.post),
            patch: self.patch.saturating_sub(earlier.patch),
            delete: self.delete.saturating_sub(earlier.delete),
            endpoints: std::array::from_fn(|m| {
                std::array::from_fn(|e| {
                    self.endpoints[m][e].saturating_sub(earlier.endpoints[m][e])
                })
            }),
            rate_limit: self.rate_limit,
        }
    }

    /// Both counts added; the rate limit of either (the later one when both have one).
    pub fn plus(&self, other: &RequestStats) -> RequestStats {
        RequestStats {
            head: self.head + other.head,
            get: self.get + other.get,
            put: self.put + other.put,
            post: self.post + other.post,
            patch: self.patch + other.patch,
            delete: self.delete + other.delete,
            endpoints: std::array::from_fn(|m| {
                std::array::from_fn(|e| self.endpoints[m][e] + other.endpoints[m][e])
            }),
            rate_limit: other.rate_limit.or(self.rate_limit),
        }
    }

    /// Requests per `METHOD /v2/<repo>/endpoint`, in the order of [`Method::ALL`] and
    /// [`Endpoint::ALL`], without the endpoints never asked.
    pub fn by_endpoint(&self) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        for (m, method) in Method::ALL.iter().enumerate() {
            for (e, endpoint) in Endpoint::ALL.iter().enumerate() {
                let n = self.endpoints[m][e];
                if n > 0 {
                    out.push((format!("{} {}", method.as_str(), endpoint.path()), n));
                }
            }
        }
        out
    }
}

impl fmt::Display for RequestStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests (HEAD {}, GET {}, PUT {}, POST {}, PATCH {}, DELETE {})",
            self.total(),
            self.head,
            self.get,
            self.put,
            self.post,
            self.patch,
            self.delete
        )
    }
}

/// Lock-free counters behind `RequestStats`.
#[derive(Debug, Default)]
pub struct RequestCounter {
    head: AtomicU64,
    get: AtomicU64,
    put: AtomicU64,
    post: AtomicU64,
    patch: AtomicU64,
    delete: AtomicU64,
    endpoints: [[AtomicU64; Endpoint::COUNT]; 6],
    traffic: TrafficCounter,
    rate_limit: std::sync::Mutex<Option<RateLimit>>,
}

/// Answers received, per method and status class (`2xx` … `5xx`), indexed like
/// [`Method::ALL`] and [`STATUS_CLASSES`].
pub const STATUS_CLASSES: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];

/// What a registry answered, beyond how many requests were made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TrafficStats {
    /// `[method][class]` answers, indexed like [`Method::ALL`] and [`STATUS_CLASSES`].
    pub answers: [[u64; 4]; 6],
    /// Bytes received in answer bodies.
    pub read_bytes: u64,
    /// Bytes sent in request bodies.
    pub written_bytes: u64,
    /// 429 Too Many Requests answers.
    pub throttled: u64,
    /// Time spent waiting because the registry asked (Retry-After, 429, 5xx), milliseconds.
    pub retry_wait_ms: u64,
}

impl TrafficStats {
    /// Sum of two registries' traffic (a host read as a source and written as a destination).
    pub fn add(&mut self, other: &TrafficStats) {
        for (m, row) in other.answers.iter().enumerate() {
            for (c, n) in row.iter().enumerate() {
                self.answers[m][c] += n;
            }
        }
        self.read_bytes += other.read_bytes;
        self.written_bytes += other.written_bytes;
        self.throttled += other.throttled;
        self.retry_wait_ms += other.retry_wait_ms;
    }
}

#[derive(Debug, Default)]
struct TrafficCounter {
    answers: [[AtomicU64; 4]; 6],
    read_bytes: AtomicU64,
    written_bytes: AtomicU64,
    throttled: AtomicU64,
    retry_wait_ms: AtomicU64,
}

/// Requests, bytes and blobs of the action running in the current task (see
/// [`ActionTally::scope`]).
#[derive(Debug, Default)]
pub struct ActionTally {
    /// Registry requests made.
    pub requests: AtomicU64,
    /// Bytes sent in request bodies.
    pub written_bytes: AtomicU64,
    /// Blobs streamed to a destination.
    pub blobs_uploaded: AtomicU64,
    /// Blobs placed by cross-repository mount.
    pub blobs_mounted: AtomicU64,
    /// Blobs the destination already had.
    pub blobs_present: AtomicU64,
}

/// How one blob an action needed came to be at its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobPlaced {
    /// Streamed from the source.
    Uploaded,
    /// Mounted from another repository of the same registry.
    Mounted,
    /// Already there.
    Present,
}

tokio::task_local! {
    static ACTION: Arc<ActionTally>;
}

impl ActionTally {
    /// Runs `fut` with every request it makes (in this task) also counted in `tally`.
    pub async fn scope<F: std::future::Future>(tally: Arc<ActionTally>, fut: F) -> F::Output {
        ACTION.scope(tally, fut).await
    }

    /// The tally of the current task, to carry into a task it spawns.
    pub fn current() -> Option<Arc<ActionTally>> {
        ACTION.try_with(Arc::clone).ok()
    }

    fn with(f: impl FnOnce(&ActionTally)) {
        let _ = ACTION.try_with(|t| f(t));
    }

    /// Counts, in the current task's action, one blob it needed.
    pub fn blob(placed: BlobPlaced) {
        ActionTally::with(|t| {
            let counter = match placed {
                BlobPlaced::Uploaded => &t.blobs_uploaded,
                BlobPlaced::Mounted => &t.blobs_mounted,
                BlobPlaced::Present => &t.blobs_present,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        });
    }

    /// `(uploaded, mounted, present)` blobs so far.
    pub fn blobs(&self) -> (u64, u64, u64) {
        (
            self.blobs_uploaded.load(Ordering::Relaxed),
            self.blobs_mounted.load(Ordering::Relaxed),
            self.blobs_present.load(Ordering::Relaxed),
        )
    }

    /// Forgets the blobs counted so far (a placement tried again from scratch counts the
    /// blobs of its last attempt: each blob it needed, once).
    pub fn reset_blobs(&self) {
        for c in [
            &self.blobs_uploaded,
            &self.blobs_mounted,
            &self.blobs_present,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

/// The operations a counter distinguishes (HTTP methods, or their layout equivalents).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `HEAD`.
    Head,
    /// `GET`.
    Get,
    /// `PUT`.
    Put,
    /// `POST`.
    Post,
    /// `PATCH`.
    Patch,
    /// `DELETE`.
    Delete,
}

impl Method {
    /// Every method, in the order of the counters' arrays.
    pub const ALL: [Method; 6] = [
        Method::Head,
        Method::Get,
        Method::Put,
        Method::Post,
        Method::Patch,
        Method::Delete,
    ];

    /// The HTTP method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Head => "HEAD",
            Method::Get => "GET",
            Method::Put => "PUT",
            Method::Post => "POST",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

impl RequestCounter {
    /// An answer with HTTP `status` to a request made with `method`.
    pub fn record_answer(&self, method: Method, status: u16) {
        let class = match status {
            200..=299 => 0,
            300..=399 => 1,
            400..=499 => 2,
            500..=599 => 3,
            _ => return,
        };
        let m = Method::ALL.iter().position(|x| *x == method).unwrap_or(1);
        self.traffic.answers[m][class].fetch_add(1, Ordering::Relaxed);
        if status == 429 {
            self.traffic.throttled.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Bytes received in an answer body.
    pub fn record_read(&self, bytes: u64) {
        self.traffic.read_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Bytes sent in a request body (also counted in the current action's tally).
    pub fn record_written(&self, bytes: u64) {
        self.traffic
            .written_bytes
            .fetch_add(bytes, Ordering::Relaxed);
        ActionTally::with(|t| {
            t.written_bytes.fetch_add(bytes, Ordering::Relaxed);
        });
    }

    /// Time waited because the registry asked (`Retry-After`, 429, 5xx).
    pub fn record_retry_wait(&self, wait: Duration) {
        self.traffic
            .retry_wait_ms
            .fetch_add(wait.as_millis() as u64, Ordering::Relaxed);
    }

    /// What the registry answered so far.
    pub fn traffic(&self) -> TrafficStats {
        let t = &self.traffic;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut answers = [[0u64; 4]; 6];
        for (m, row) in t.answers.iter().enumerate() {
            for (c, a) in row.iter().enumerate() {
                answers[m][c] = load(a);
            }
        }
        TrafficStats {
            answers,
            read_bytes: load(&t.read_bytes),
            written_bytes: load(&t.written_bytes),
            throttled: load(&t.throttled),
            retry_wait_ms: load(&t.retry_wait_ms),
        }
    }

    /// A request made with `method` to `endpoint`.
    pub fn record(&self, method: Method, endpoint: Endpoint) {
        let m = Method::ALL.iter().position(|x| *x == method).unwrap_or(1);
        self.endpoints[m][endpoint.index()].fetch_add(1, Ordering::Relaxed);
        ActionTally::with(|t| {
            t.requests.fetch_add(1, Ordering::Relaxed);
        });
        let counter = match method {
            Method::Head => &self.head,
            Method::Get => &self.get,
            Method::Put => &self.put,
            Method::Post => &self.post,
            Method::Patch => &self.patch,
            Method::Delete => &self.delete,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The budget the registry last announced.
    pub fn record_rate_limit(&self, rate_limit: RateLimit) {
        if let Ok(mut last) = self.rate_limit.lock() {
            *last = Some(rate_limit);
        }
    }

    /// The requests made so far.
    pub fn snapshot(&self) -> RequestStats {
        RequestStats {
            head: self.head.load(Ordering::Relaxed),
            get: self.get.load(Ordering::Relaxed),
            put: self.put.load(Ordering::Relaxed),
            post: self.post.load(Ordering::Relaxed),
            patch: self.patch.load(Ordering::Relaxed),
            delete: self.delete.load(Ordering::Relaxed),
            endpoints: std::array::from_fn(|m| {
                std::array::from_fn(|e| self.endpoints[m][e].load(Ordering::Relaxed))
            }),
            rate_limit: self.rate_limit.lock().ok().and_then(|r| *r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_counts_classes_bytes_throttling_and_the_action_tally() {
        let counter = RequestCounter::default();
        let tally = Arc::new(ActionTally::default());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(ActionTally::scope(tally.clone(), async {
            counter.record(Method::Put, Endpoint::Upload);
            counter.record_answer(Method::Put, 201);
            counter.record_written(100);
        }));
        counter.record(Method::Get, Endpoint::Blob);
        counter.record_answer(Method::Get, 429);
        counter.record_retry_wait(Duration::from_millis(1500));
        counter.record_read(30);
        let t = counter.traffic();
        assert_eq!(t.answers[2][0], 1, "PUT 2xx");
        assert_eq!(t.answers[1][2], 1, "GET 4xx");
        assert_eq!((t.throttled, t.retry_wait_ms), (1, 1500));
        assert_eq!((t.read_bytes, t.written_bytes), (30, 100));
        // Only what ran inside the scope is the action's.
        assert_eq!(tally.requests.load(Ordering::Relaxed), 1);
        assert_eq!(tally.written_bytes.load(Ordering::Relaxed), 100);
        let mut sum = t.clone();
        sum.add(&t);
        assert_eq!(sum.throttled, 2);
    }

    #[test]
    fn counts_by_method_and_diffs_snapshots() {
        let counter = RequestCounter::default();
        counter.record(Method::Head, Endpoint::Manifest);
        let before = counter.snapshot();
        counter.record(Method::Head, Endpoint::Manifest);
        counter.record(Method::Put, Endpoint::Upload);
        let after = counter.snapshot();
        assert_eq!(after.head, 2);
        assert_eq!(after.total(), 3);
        let delta = after.since(&before);
        assert_eq!((delta.head, delta.put, delta.total()), (1, 1, 2));
        assert_eq!(
            delta.by_endpoint(),
            vec![
                ("HEAD /v2/<repo>/manifests/<ref>".to_string(), 1),
                ("PUT /v2/<repo>/blobs/uploads/".to_string(), 1)
            ]
        );
    }

    #[test]
    fn request_paths_name_their_endpoint() {
        for (path, endpoint) in [
            ("/v2/", Endpoint::Base),
            ("/v2/_catalog", Endpoint::Catalog),
            ("/v2/library/busybox/tags/list", Endpoint::Tags),
            ("/v2/a/b/c/manifests/1.37.0", Endpoint::Manifest),
            ("/v2/busybox/manifests/sha256:abc", Endpoint::Manifest),
            ("/v2/busybox/blobs/sha256:abc", Endpoint::Blob),
            ("/v2/busybox/blobs/uploads/", Endpoint::Upload),
            ("/v2/busybox/blobs/uploads/0f3a-uuid", Endpoint::Upload),
            ("/v2/busybox/referrers/sha256:abc", Endpoint::Referrers),
            ("/token", Endpoint::Other),
        ] {
            assert_eq!(Endpoint::of_path(path), endpoint, "{path}");
        }
    }

    #[test]
    fn rate_limit_headers() {
        assert_eq!(
            RateLimit::from_headers(Some("100;w=21600"), Some(" 76;w=21600")),
            Some(RateLimit {
                limit: 100,
                remaining: 76
            })
        );
        assert_eq!(RateLimit::from_headers(Some("100"), None), None);
        assert_eq!(RateLimit::from_headers(Some("x"), Some("1")), None);
    }
}
