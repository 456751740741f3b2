//! Generic webhook: `POST <url>` with a versioned JSON payload (documented in
//! `docs/notifications.md`), signed with HMAC-SHA256 when a key is configured.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::config::operations::{NotifySink, SinkKind};
use crate::report::metrics::without_url;
use crate::report::run_report::RunSummary;

use super::Event;

/// The payload's `version`; bumped on any incompatible change.
pub const PAYLOAD_VERSION: &str = "houba.io/notification/v1";
/// Header carrying `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "X-Houba-Signature-256";

/// The versioned JSON payload of an event.
pub fn payload(sink: &NotifySink, event: &Event, run: &RunSummary) -> Value {
    json!({
        "version": PAYLOAD_VERSION,
        "event": event.kind.as_str(),
        "severity": event.severity.as_str(),
        "resolved": event.is_resolution(),
        "title": event.title(),
        "run": {
            "id": run.run_id,
            "command": run.command.as_str(),
            "instance": run.instance,
            "started_at": run.started_at,
            "seconds": run.seconds,
            "success": run.success,
            "houba_version": run.houba_version,
        },
        "counts": {
            "findings": event.findings.len(),
            "drift_total": run.drift.len(),
            "failed_actions": event.failures.len(),
            "throttled": run.throttled(),
        },
        "findings": event.findings,
        "failures": event.failures,
        "registries": event.registries,
        "link": sink.link,
    })
}

/// `sha256=<hex>` of the body under `key`.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Posts the payload, signed when the sink has an HMAC key.
pub async fn send(sink: &NotifySink, event: &Event, run: &RunSummary) -> Result<(), String> {
    let SinkKind::Webhook { hmac_key } = &sink.kind else {
        return Err("not a webhook sink".into());
    };
    let body = serde_json::to_vec(&payload(sink, event, run)).expect("payload serialises");
    let mut request = super::client()?
        .post(&sink.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Houba-Event", event.kind.as_str());
    if let Some(key) = hmac_key {
        request = request.header(SIGNATURE_HEADER, signature(key.expose().as_bytes(), &body));
    }
    let response = request.body(body).send().await.map_err(|e| {
        format!(
            "cannot reach the webhook at {}: {}",
            sink.url,
            without_url(&e)
        )
    })?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the webhook at {} answered {status}", sink.url))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn signature_matches_the_rfc_4231_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            super::signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
