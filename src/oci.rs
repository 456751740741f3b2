//! The OCI vocabulary every layer shares, pure: sha256 digests, canonical JSON, media types,
//! the referrers fallback tag and RFC 3339 timestamps.

#![warn(missing_docs)]

use sha2::{Digest as _, Sha256};

/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker manifest list media type.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image manifest (schema 2) media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The hex part of a well-formed `sha256:<64 lowercase hex>` digest.
pub fn sha256_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some(hex)
}

/// Canonical JSON: object keys sorted recursively, no whitespace.
pub fn canonical_json(value: &serde_json::Value) -> Vec<u8> {
    use serde_json::Value;
    fn sort(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                Value::Object(keys.into_iter().map(|k| (k.clone(), sort(&m[k]))).collect())
            }
            Value::Array(a) => Value::Array(a.iter().map(sort).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_vec(&sort(value)).expect("a JSON value always serialises")
}

/// The referrers fallback tag (OCI distribution 1.1) for a subject digest, `None` for a digest
/// that is not sha256.
pub fn referrers_fallback_tag(subject_digest: &str) -> Option<String> {
    sha256_hex(subject_digest).map(|hex| format!("sha256-{hex}"))
}

/// Whether a tag belongs to the referrers fallback schema (such tags are never selected as
/// images, never pruned).
pub fn is_referrers_fallback_tag(tag: &str) -> bool {
    tag.strip_prefix("sha256-")
        .is_some_and(|hex| sha256_hex(&format!("sha256:{hex}")).is_some())
}

/// Whether a tag holds evidence rather than an image: a referrers fallback index, or cosign's
/// `sha256-<hex>.sig` / `.att` / `.sbom` (never selected, never pruned, never a bypass).
pub fn is_evidence_tag(tag: &str) -> bool {
    let base = tag
        .rsplit_once('.')
        .filter(|(_, suffix)| ["sig", "att", "sbom"].contains(suffix))
        .map_or(tag, |(base, _)| base);
    is_referrers_fallback_tag(base)
}

/// Seconds since the epoch of an RFC 3339 timestamp (`2024-05-01T12:00:00.123+02:00`); `None`
/// when it does not parse or lies before 1970.
pub fn rfc3339_seconds(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &text[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (h, m) = (
                rest.get(1..3)?.parse::<i64>().ok()?,
                rest.get(4..6)?.parse::<i64>().ok()?,
            );
            sign * (h * 3600 + m * 60)
        }
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    u64::try_from(secs).ok()
}

/// Age of an RFC 3339 timestamp relative to `now`; `None` when it does not parse or lies in
/// the future.
pub fn age_of(rfc3339: &str, now: std::time::SystemTime) -> Option<std::time::Duration> {
    let secs = rfc3339_seconds(rfc3339)?;
    let now = now.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    (now >= secs).then(|| std::time::Duration::from_secs(now - secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_and_fallback_tags() {
        let d = sha256_digest(b"");
        assert_eq!(
            d,
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(sha256_hex(&d).map(str::len), Some(64));
        assert_eq!(sha256_hex("sha256:ABC"), None);
        let tag = referrers_fallback_tag(&d).unwrap();
        assert!(is_evidence_tag(&tag) && is_evidence_tag(&format!("{tag}.sig")));
        assert!(!is_evidence_tag("1.0.sig") && !is_evidence_tag(&format!("{tag}.txt")));
        assert!(is_referrers_fallback_tag(&tag));
        assert!(!is_referrers_fallback_tag("sha256-short"));
        assert_eq!(referrers_fallback_tag("md5:abc"), None);
        assert_eq!(
            canonical_json(&serde_json::json!({"b": 1, "a": {"d": 2, "c": 3}})),
            br#"{"a":{"c":3,"d":2},"b":1}"#
        );
    }

    #[test]
    fn rfc3339_timestamps() {
        assert_eq!(rfc3339_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339_seconds("2024-02-29T12:00:00Z"), Some(1_709_208_000));
        assert_eq!(
            rfc3339_seconds("2024-02-29T14:00:00.123456789+02:00"),
            Some(1_709_208_000)
        );
        assert_eq!(rfc3339_seconds("not a date"), None);
        assert_eq!(rfc3339_seconds("1960-01-01T00:00:00Z"), None);
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(951_868_800 + 90);
        assert_eq!(
            age_of("2000-03-01T00:00:00Z", now),
            Some(std::time::Duration::from_secs(90))
        );
        assert_eq!(age_of("2000-03-01T00:02:00Z", now), None, "in the future");
    }
}
