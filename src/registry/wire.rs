//! What the distribution API's wire says, read and named without a client: request paths as
//! the registry's access log shows them, `Retry-After`, `Link` pagination, listing pages and
//! answer snippets for messages. Pure; the fuzz targets read registry answers through it.

use std::time::Duration;

use reqwest::header::{self, HeaderMap};

/// The path of a request URL, as the registry's access log shows it: no scheme, host or query
/// (`/v2/library/busybox/tags/list`). Requests are named this way in errors: in registry
/// terms, not houba's.
pub(crate) fn request_path(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = after_scheme
        .find('/')
        .map_or("/", |start| &after_scheme[start..]);
    path.split(['?', '#']).next().unwrap_or(path)
}

/// A request as errors name it: its path, and the `digest` an upload completes, which is
/// the blob it is about (`/v2/app/blobs/uploads/5f0c…?digest=sha256:…`). Other query
/// parameters (paging, a registry's upload state) are left out.
pub(crate) fn request_name(url: &str) -> String {
    let path = request_path(url);
    let digest = url
        .split_once('?')
        .and_then(|(_, query)| query.split('&').find(|p| p.starts_with("digest=")));
    match digest {
        Some(d) => format!("{path}?{}", d.replace("%3A", ":").replace("%3a", ":")),
        None => path.to_string(),
    }
}

/// `Retry-After` as delay-seconds or as an HTTP date (RFC 9110 §10.2.3); a date in the past
/// means "now". Anything else is ignored and the back-off schedule applies.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    retry_after_at(headers, std::time::SystemTime::now())
}

pub(crate) fn retry_after_at(headers: &HeaderMap, now: std::time::SystemTime) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The start of a server answer, for an error message.
pub(crate) fn snippet(body: &str) -> String {
    let mut out = String::new();
    for (i, c) in body.trim().chars().enumerate() {
        if i == 300 {
            out.push('…');
            break;
        }
        // A body (or a damaged archive's header bytes) may hold control characters: shown
        // escaped, they cannot garble the terminal or split a log line.
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// One page of a tag list (`{"tags": [...]}`) or catalog (`{"repositories": [...]}`); a
/// `null` list is an empty page.
pub fn parse_listing(body: &[u8]) -> std::result::Result<Vec<String>, String> {
    #[derive(serde::Deserialize)]
    struct Page {
        tags: Option<Vec<String>>,
        repositories: Option<Vec<String>>,
    }
    let page: Page = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    Ok(page.tags.or(page.repositories).unwrap_or_default())
}

/// The `rel="next"` target of a `Link` header.
pub(crate) fn next_link(headers: &HeaderMap) -> Option<String> {
    next_link_of(headers.get(header::LINK)?.to_str().ok()?)
}

/// The `rel="next"` target of a `Link` header's value.
pub fn next_link_of(value: &str) -> Option<String> {
    value.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        params.contains("rel=\"next\"").then(|| {
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn requests_are_named_by_path_and_the_digest_they_complete() {
        assert_eq!(
            request_name("http://127.0.0.1:5000/v2/library/busybox/tags/list?n=1000&last=1.36"),
            "/v2/library/busybox/tags/list"
        );
        assert_eq!(
            request_name(
                "https://r.example/v2/app/blobs/uploads/5f0c?_state=abc&digest=sha256%3Aab12"
            ),
            "/v2/app/blobs/uploads/5f0c?digest=sha256:ab12"
        );
        assert_eq!(request_name("http://h/v2/"), "/v2/");
    }

    #[test]
    fn link_header_next_target() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::LINK,
            HeaderValue::from_static("</v2/a/tags/list?last=b&n=2>; rel=\"next\""),
        );
        assert_eq!(
            next_link(&headers).as_deref(),
            Some("/v2/a/tags/list?last=b&n=2")
        );
        assert_eq!(next_link(&HeaderMap::new()), None);
    }

    #[test]
    fn retry_after_seconds() {
        let mut headers = HeaderMap::new();
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
    }

    #[test]
    fn retry_after_http_date() {
        let now = httpdate::parse_http_date("Tue, 01 Dec 2026 10:00:00 GMT").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static("Tue, 01 Dec 2026 10:00:07 GMT"),
        );
        assert_eq!(retry_after_at(&headers, now), Some(Duration::from_secs(7)));
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static("Tue, 01 Dec 2026 09:59:00 GMT"),
        );
        assert_eq!(retry_after_at(&headers, now), Some(Duration::ZERO));
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after_at(&headers, now), None);
    }
}
