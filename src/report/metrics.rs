//! Prometheus metrics of a run, encoded with `prometheus-client` in the Prometheus text format
//! (0.0.4): written as a node-exporter textfile, or pushed to a Pushgateway.
//!
//! Every metric is documented in `docs/reference/metrics.md`. Labels are bounded: command,
//! action kind, drift kind, outcome, roster registry name, HTTP method, status class, sink
//! name. Never a tag, a digest or an address.

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use super::run_report::{RunSummary, write_atomically};

type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;
type FloatCounter = Counter<f64, AtomicU64>;

/// The Pushgateway job every push uses.
pub const JOB: &str = "houba";

/// Where the series go: the textfile carries `command` and `shard` on every series (several
/// commands may share a node); a push carries them in its grouping key instead
/// (`job`, `instance`, `command`), which the Pushgateway adds to every series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A node-exporter textfile: every label on every series.
    Textfile,
    /// A Pushgateway push: the grouping key carries `job`, `instance` and `command`.
    Push,
}

fn base_labels(s: &RunSummary, target: Target) -> Labels {
    match target {
        Target::Textfile => vec![
            ("command".into(), s.command.as_str().into()),
            ("shard".into(), s.instance.clone()),
        ],
        Target::Push => vec![],
    }
}

fn with(base: &Labels, extra: &[(&str, &str)]) -> Labels {
    let mut l = base.clone();
    l.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    l
}

fn gauge_family(
    registry: &mut Registry,
    name: &str,
    help: &str,
    unit: Option<Unit>,
) -> Family<Labels, FloatGauge> {
    let f = Family::<Labels, FloatGauge>::default();
    match unit {
        Some(u) => registry.register_with_unit(name, help, u, f.clone()),
        None => registry.register(name, help, f.clone()),
    }
    f
}

fn counter_family(
    registry: &mut Registry,
    name: &str,
    help: &str,
    unit: Option<Unit>,
) -> Family<Labels, FloatCounter> {
    let f = Family::<Labels, FloatCounter>::default();
    match unit {
        Some(u) => registry.register_with_unit(name, help, u, f.clone()),
        None => registry.register(name, help, f.clone()),
    }
    f
}

/// The run's metrics in the Prometheus text format.
pub fn encode(s: &RunSummary, target: Target) -> String {
    let mut r = Registry::with_prefix("houba");
    let base = base_labels(s, target);

    let info = gauge_family(
        &mut r,
        "build_info",
        "houba version that made the run",
        None,
    );
    info.get_or_create(&with(&base, &[("version", &s.houba_version)]))
        .set(1.0);

    let last_run = gauge_family(
        &mut r,
        "last_run_timestamp",
        "Unix time the run ended",
        Some(Unit::Seconds),
    );
    last_run.get_or_create(&base).set(s.started_at + s.seconds);
    if let Some(t) = s.last_success_at {
        gauge_family(
            &mut r,
            "last_success_timestamp",
            "Unix time the last successful run of this command ended",
            Some(Unit::Seconds),
        )
        .get_or_create(&base)
        .set(t);
    }
    gauge_family(
        &mut r,
        "run_duration",
        "Duration of the run",
        Some(Unit::Seconds),
    )
    .get_or_create(&base)
    .set(s.seconds);
    gauge_family(
        &mut r,
        "run_success",
        "1 when the run succeeded (apply: every action done), else 0",
        None,
    )
    .get_or_create(&base)
    .set(if s.success { 1.0 } else { 0.0 });

    let pending = gauge_family(
        &mut r,
        "pending_actions",
        "Actions the plan of this run found, by kind (for apply: before applying)",
        None,
    );
    for (kind, n) in &s.pending {
        pending
            .get_or_create(&with(&base, &[("kind", kind)]))
            .set(*n as f64);
    }
    let drift = gauge_family(
        &mut r,
        "drift_findings",
        "Drift findings (live state changed outside houba), by kind",
        None,
    );
    for (kind, n) in s.drift_by_kind() {
        drift
            .get_or_create(&with(&base, &[("kind", kind)]))
            .set(n as f64);
    }
    let actions = counter_family(
        &mut r,
        "actions",
        "Actions applied by this run, by kind and outcome (done, failed, skipped)",
        None,
    );
    for ((kind, outcome), n) in s.results_by_kind() {
        actions
            .get_or_create(&with(&base, &[("kind", kind), ("outcome", outcome)]))
            .inc_by(n as f64);
    }
    let blobs = counter_family(
        &mut r,
        "blobs",
        "Blobs handled by this run: uploaded, mounted from another repository, or already present",
        None,
    );
    for (outcome, n) in [
        ("uploaded", s.blobs_uploaded),
        ("mounted", s.blobs_mounted),
        ("skipped", s.blobs_skipped),
    ] {
        blobs
            .get_or_create(&with(&base, &[("outcome", outcome)]))
            .inc_by(n as f64);
    }

    let requests = counter_family(
        &mut r,
        "registry_requests",
        "Registry requests, by roster registry, HTTP method and status class",
        None,
    );
    let read = counter_family(
        &mut r,
        "registry_read",
        "Bytes read from a registry (response bodies)",
        Some(Unit::Bytes),
    );
    let written = counter_family(
        &mut r,
        "registry_written",
        "Bytes written to a registry (request bodies)",
        Some(Unit::Bytes),
    );
    let throttled = counter_family(
        &mut r,
        "registry_throttled",
        "429 Too Many Requests answers from a registry",
        None,
    );
    let waited = counter_family(
        &mut r,
        "registry_retry_wait",
        "Time spent waiting because a registry asked to back off (Retry-After, 429, 5xx)",
        Some(Unit::Seconds),
    );
    let remaining = gauge_family(
        &mut r,
        "registry_ratelimit_remaining",
        "Pulls left in the registry's rate-limit window (Docker Hub ratelimit-remaining), when sent",
        None,
    );
    for (name, u) in &s.registries {
        for (method, classes) in &u.requests {
            for (class, n) in classes {
                requests
                    .get_or_create(&with(
                        &base,
                        &[
                            ("registry", name),
                            ("method", method),
                            ("status_class", class),
                        ],
                    ))
                    .inc_by(*n as f64);
            }
        }
        let reg = with(&base, &[("registry", name)]);
        read.get_or_create(&reg).inc_by(u.read_bytes as f64);
        written.get_or_create(&reg).inc_by(u.written_bytes as f64);
        throttled.get_or_create(&reg).inc_by(u.throttled as f64);
        waited.get_or_create(&reg).inc_by(u.retry_wait_seconds);
        if let Some(n) = u.ratelimit_remaining {
            remaining.get_or_create(&reg).set(n as f64);
        }
    }

    gauge_family(
        &mut r,
        "managed_images",
        "Destination tags the policies of this run manage (placements)",
        None,
    )
    .get_or_create(&base)
    .set(s.managed_images as f64);
    gauge_family(
        &mut r,
        "managed_repositories",
        "Destination repositories the policies of this run manage",
        None,
    )
    .get_or_create(&base)
    .set(s.managed_repositories as f64);
    gauge_family(
        &mut r,
        "lock_wait",
        "Time this run waited for another apply's lock",
        Some(Unit::Seconds),
    )
    .get_or_create(&base)
    .set(s.lock_wait_seconds);

    let notifications = counter_family(
        &mut r,
        "notifications",
        "Notifications by sink (configured name) and outcome (sent, failed)",
        None,
    );
    for (sink, u) in &s.notifications {
        for (outcome, n) in [("sent", u.sent), ("failed", u.failed)] {
            notifications
                .get_or_create(&with(&base, &[("sink", sink), ("outcome", outcome)]))
                .inc_by(n as f64);
        }
    }

    let mut out = String::new();
    prometheus_text::encode(&mut out, &r).expect("writing to a String cannot fail");
    out
}

/// Writes the textfile atomically (node-exporter never reads half a file).
pub fn write_textfile(path: &Path, s: &RunSummary) -> std::io::Result<()> {
    write_atomically(path, encode(s, Target::Textfile).as_bytes())
}

/// The Pushgateway URL of this run's group: `job="houba"`, `instance`=shard, `command`.
pub fn push_url(base: &str, s: &RunSummary) -> String {
    format!(
        "{}/metrics/job/{JOB}/instance/{}/command/{}",
        base.trim_end_matches('/'),
        s.instance,
        s.command.as_str()
    )
}

/// Replaces this run's group on the Pushgateway (HTTP PUT). The error is a sentence for a
/// warning: a failed push never fails a run.
pub async fn push(base: &str, s: &RunSummary) -> Result<(), String> {
    let url = push_url(base, s);
    crate::registry::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let response = client
        .put(&url)
        .header(reqwest::header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)
        .body(encode(s, Target::Push))
        .send()
        .await
        .map_err(|e| {
            format!(
                "cannot reach the Pushgateway at {base}: {}",
                without_url(&e)
            )
        })?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(format!(
            "the Pushgateway at {base} answered {status}: {}",
            body.trim().chars().take(300).collect::<String>()
        ));
    }
    Ok(())
}

/// reqwest errors name the URL; the base URL is already in the message (and a URL may carry
/// credentials in its user-info part).
pub(crate) fn without_url(e: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut text = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::run_report::{Command, RegistryUsage};

    fn summary() -> RunSummary {
        let mut s = RunSummary::start(Command::Apply, None);
        s.pending.insert("copy".into(), 3);
        let mut u = RegistryUsage::default();
        u.requests
            .entry("GET".into())
            .or_default()
            .insert("2xx".into(), 5);
        u.throttled = 2;
        u.ratelimit_remaining = Some(7);
        s.registries.insert("hub".into(), u);
        s.finish(true);
        s
    }

    #[test]
    fn textfile_series_follow_the_conventions() {
        let text = encode(&summary(), Target::Textfile);
        assert!(
            text.contains("houba_pending_actions{command=\"apply\",shard=\"all\",kind=\"copy\"} 3"),
            "{text}"
        );
        assert!(text.contains(
            "houba_registry_requests_total{command=\"apply\",shard=\"all\",registry=\"hub\",method=\"GET\",status_class=\"2xx\"} 5"
        ), "{text}");
        assert!(
            text.contains("# TYPE houba_registry_read_bytes_total counter"),
            "{text}"
        );
        assert!(text.contains(
            "houba_registry_ratelimit_remaining{command=\"apply\",shard=\"all\",registry=\"hub\"} 7"
        ));
        assert!(text.contains("houba_last_success_timestamp_seconds{"));
        assert!(!text.contains("# EOF"));
    }

    #[test]
    fn pushed_series_leave_the_grouping_labels_to_the_gateway() {
        let s = summary();
        let text = encode(&s, Target::Push);
        assert!(text.contains("houba_run_success 1"), "{text}");
        assert!(
            !text.contains("command=") && !text.contains("instance="),
            "{text}"
        );
        assert_eq!(
            push_url("http://pg:9091/", &s),
            "http://pg:9091/metrics/job/houba/instance/all/command/apply"
        );
    }
}
