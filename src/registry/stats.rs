//! Per-registry request counters, so a run can say how many requests it cost.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Requests made to one registry, by HTTP method.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RequestStats {
    pub head: u64,
    pub get: u64,
    pub put: u64,
    pub post: u64,
    pub patch: u64,
    pub delete: u64,
    /// The request budget the registry last announced (Docker Hub's `ratelimit-*` headers).
    pub rate_limit: Option<RateLimit>,
}

/// A registry's announced request budget: `ratelimit-limit` / `ratelimit-remaining`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RateLimit {
    pub limit: u64,
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
            rate_limit: other.rate_limit.or(self.rate_limit),
        }
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
    rate_limit: std::sync::Mutex<Option<RateLimit>>,
}

/// The operations a counter distinguishes (HTTP methods, or their layout equivalents).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Head,
    Get,
    Put,
    Post,
    Patch,
    Delete,
}

impl RequestCounter {
    pub fn record(&self, method: Method) {
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

    pub fn record_rate_limit(&self, rate_limit: RateLimit) {
        if let Ok(mut last) = self.rate_limit.lock() {
            *last = Some(rate_limit);
        }
    }

    pub fn snapshot(&self) -> RequestStats {
        RequestStats {
            head: self.head.load(Ordering::Relaxed),
            get: self.get.load(Ordering::Relaxed),
            put: self.put.load(Ordering::Relaxed),
            post: self.post.load(Ordering::Relaxed),
            patch: self.patch.load(Ordering::Relaxed),
            delete: self.delete.load(Ordering::Relaxed),
            rate_limit: self.rate_limit.lock().ok().and_then(|r| *r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_method_and_diffs_snapshots() {
        let counter = RequestCounter::default();
        counter.record(Method::Head);
        let before = counter.snapshot();
        counter.record(Method::Head);
        counter.record(Method::Put);
        let after = counter.snapshot();
        assert_eq!(after.head, 2);
        assert_eq!(after.total(), 3);
        let delta = after.since(&before);
        assert_eq!((delta.head, delta.put, delta.total()), (1, 1, 2));
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
