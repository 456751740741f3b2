//! Alertmanager (`POST <url>/api/v2/alerts`): every current drift finding is an alert with
//! stable labels (`alertname`, `severity`, `houba_instance`, `kind`, `registry`,
//! `repository`, `address`), so Alertmanager groups, routes, silences and deduplicates them.
//! Firing alerts carry `endsAt` = now + `alert_ttl_seconds` and are refreshed by every run;
//! a finding that is gone is sent once more with `endsAt` = now, which resolves it.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::config::operations::NotifySink;
use crate::report::metrics::without_url;
use crate::report::run_report::{Command, Finding, RunSummary, unix_now};
use crate::report::state::SinkState;

/// `alertname` of the alert per drifted tag.
pub const DRIFT_ALERT: &str = "HoubaDriftFinding";
/// `alertname` of the alert of a failing apply.
pub const APPLY_ALERT: &str = "HoubaApplyFailing";

fn finding_alert(f: &Finding, run: &RunSummary, sink: &NotifySink, ends: f64) -> Value {
    json!({
        "labels": {
            "alertname": DRIFT_ALERT,
            "severity": "warning",
            "houba_instance": run.instance,
            "kind": f.kind,
            "registry": f.registry,
            "repository": f.repository,
            "address": f.address,
        },
        "annotations": {
            "summary": format!("{} drifted ({})", f.location, f.kind),
            "description": match &f.digest {
                Some(digest) => format!(
                    "{} holds {digest} which houba did not place for {}: {}. `houba apply` repairs it; `houba drift` lists every finding.",
                    f.location, f.address, f.detail
                ),
                None => format!(
                    "{} is listed with no manifest behind it ({}): {}. `houba apply` repairs it; `houba drift` lists every finding.",
                    f.location, f.address, f.detail
                ),
            },
        },
        "startsAt": rfc3339(run.started_at),
        "endsAt": rfc3339(ends),
        "generatorURL": sink.link.clone().unwrap_or_default(),
    })
}

fn apply_alert(run: &RunSummary, sink: &NotifySink, failing: usize, ends: f64) -> Value {
    json!({
        "labels": {
            "alertname": APPLY_ALERT,
            "severity": "critical",
            "houba_instance": run.instance,
        },
        "annotations": {
            "summary": "houba apply is failing",
            "description": format!("{failing} action(s) of the last apply failed; see the run report and the CronJob's logs."),
        },
        "startsAt": rfc3339(run.started_at),
        "endsAt": rfc3339(ends),
        "generatorURL": sink.link.clone().unwrap_or_default(),
    })
}

/// The alerts of this run against the state: firing, plus resolutions. Returns the alerts and
/// the state once they are delivered.
pub fn alerts(
    sink: &NotifySink,
    ttl_seconds: u64,
    prev: &SinkState,
    run: &RunSummary,
    complete_scope: bool,
) -> (Vec<Value>, SinkState) {
    let now = unix_now();
    let mut next = prev.clone();
    let mut out = Vec::new();
    let current: BTreeSet<String> = run.drift.iter().map(Finding::key).collect();
    for (key, old) in &prev.findings {
        let changed_kind = run
            .drift
            .iter()
            .any(|f| f.key() == *key && f.kind != old.kind);
        if changed_kind || (complete_scope && !current.contains(key)) {
            out.push(finding_alert(old, run, sink, now));
            next.findings.remove(key);
        }
    }
    for f in &run.drift {
        out.push(finding_alert(f, run, sink, now + ttl_seconds as f64));
        next.findings.insert(f.key(), f.clone());
    }
    if run.command == Command::Apply {
        let failing = run.failed_actions() as usize + usize::from(run.error.is_some());
        if failing > 0 {
            out.push(apply_alert(run, sink, failing, now + ttl_seconds as f64));
            next.failing = ["(apply)".to_string()].into();
        } else if !prev.failing.is_empty() {
            out.push(apply_alert(run, sink, 0, now));
            next.failing.clear();
        }
    }
    (out, next)
}

/// Posts the event's alerts (firing or resolved, `ttl_seconds` to live) to the sink's Alertmanager.
pub async fn post(
    sink: &NotifySink,
    ttl_seconds: u64,
    prev: &SinkState,
    run: &RunSummary,
    complete_scope: bool,
) -> Result<(SinkState, bool), String> {
    let (alerts, next) = alerts(sink, ttl_seconds, prev, run, complete_scope);
    if alerts.is_empty() {
        return Ok((next, false));
    }
    let url = format!("{}/api/v2/alerts", sink.url);
    let response = super::client()?
        .post(&url)
        .json(&alerts)
        .send()
        .await
        .map_err(|e| {
            format!(
                "cannot reach Alertmanager at {}: {}",
                sink.url,
                without_url(&e)
            )
        })?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(format!(
            "Alertmanager at {} answered {status}: {}",
            sink.url,
            body.trim().chars().take(300).collect::<String>()
        ));
    }
    Ok((next, true))
}

/// RFC 3339 in UTC with milliseconds, from Unix seconds.
pub fn rfc3339(unix: f64) -> String {
    let millis = (unix * 1000.0).round() as i64;
    let secs = millis.div_euclid(1000);
    let ms = millis.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_rfc3339() {
        assert_eq!(super::rfc3339(0.0), "1970-01-01T00:00:00.000Z");
        assert_eq!(super::rfc3339(1_709_251_200.5), "2024-03-01T00:00:00.500Z");
        assert_eq!(super::rfc3339(951_782_400.0), "2000-02-29T00:00:00.000Z");
    }
}
