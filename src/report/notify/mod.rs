//! Notifications: which events a run raises for a sink, given what that sink was told before,
//! and their delivery.
//!
//! Never spam: a drift finding is notified once, again only when it changes (another kind or
//! other content) or resolves; an apply failure once per distinct set of failing addresses,
//! then once when apply recovers; rate limiting once until a run is throttle-free again. What
//! each sink was told lives in the cache directory ([`super::state`]); state advances only for
//! what was delivered, so a sink that is down hears about it on the next run. A sink that
//! fails never fails the run: it is logged and counted (`houba_notifications_total`).

pub mod alertmanager;
pub mod ntfy;
pub mod webhook;

use std::collections::BTreeSet;
use std::time::Duration;

use crate::config::operations::{EventKind, NotifySink, Severity, SinkKind};

use super::run_report::{Command, Finding, RunSummary, SinkUsage};
use super::state::{SinkState, StateDir};

/// An action that failed, as a notification lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Failure {
    /// The action's address.
    pub address: String,
    /// The action kind (`copy`, `prune`, …).
    pub action: String,
    /// The run report's `error_kind` (`registry`, `stale`, …).
    pub error_kind: String,
    /// The error message.
    pub error: String,
}

/// One notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// For resolutions, the severity of what they resolve: a resolution goes wherever the
    /// problem went.
    pub severity: Severity,
    /// Findings this event is about (found or resolved).
    pub findings: Vec<Finding>,
    /// Actions that failed (apply failures).
    pub failures: Vec<Failure>,
    /// Registries that throttled the run (rate limiting).
    pub registries: Vec<String>,
}

impl Event {
    /// Whether this event says a problem is gone (drift resolved, apply recovered).
    pub fn is_resolution(&self) -> bool {
        matches!(
            self.kind,
            EventKind::DriftResolved | EventKind::ApplyRecovered
        )
    }

    /// The one-line title every sink shows.
    pub fn title(&self) -> String {
        let n = self.findings.len();
        match self.kind {
            EventKind::DriftFound => format!("houba: drift on {n} tag(s)"),
            EventKind::DriftResolved => format!("houba: drift resolved on {n} tag(s)"),
            EventKind::ApplyFailed => {
                format!("houba apply failed ({} action(s))", self.failures.len())
            }
            EventKind::ApplyRecovered => "houba apply recovered".to_string(),
            EventKind::RateLimited => {
                format!("houba is rate-limited by {}", self.registries.join(", "))
            }
        }
    }

    /// Markdown body.
    pub fn markdown(&self, run: &RunSummary) -> String {
        let mut out = String::new();
        match self.kind {
            EventKind::DriftFound => out.push_str(
                "Live state changed outside houba. Run `houba drift` to see it; `houba apply` puts back what the policies say.\n\n",
            ),
            EventKind::DriftResolved => {
                out.push_str("These tags hold again what houba placed.\n\n")
            }
            EventKind::ApplyFailed => out.push_str("Some actions of the last apply failed:\n\n"),
            EventKind::ApplyRecovered => {
                out.push_str("The last apply completed every action.\n")
            }
            EventKind::RateLimited => out.push_str(&format!(
                "{} throttling answer(s) (HTTP 429) during this run.\n",
                run.throttled()
            )),
        }
        for f in &self.findings {
            out.push_str(&format!(
                "- `{}`: {} ({}, `{}`)\n",
                f.address,
                f.kind,
                f.location,
                f.digest.as_deref().map_or("no manifest", short)
            ));
        }
        for f in &self.failures {
            out.push_str(&format!(
                "- `{}`: {} failed ({})\n",
                f.address, f.action, f.error_kind
            ));
        }
        out.push_str(&format!(
            "\n`houba {}` run {} (instance {}).",
            run.command.as_str(),
            run.run_id,
            run.instance
        ));
        out
    }
}

/// The first 12 hex digits of a digest, as notifications show it.
pub fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    &hex[..hex.len().min(12)]
}

fn failures(run: &RunSummary) -> Vec<Failure> {
    let mut out: Vec<Failure> = run
        .results
        .iter()
        .filter(|r| r.outcome == "failed")
        .map(|r| Failure {
            address: r.address.clone(),
            action: r.action.clone(),
            error_kind: r.error_kind.clone().unwrap_or_else(|| "error".into()),
            error: r.error.clone().unwrap_or_default(),
        })
        .collect();
    if let Some(e) = &run.error {
        out.push(Failure {
            address: "(run)".into(),
            action: "apply".into(),
            error_kind: "run".into(),
            error: e.clone(),
        });
    }
    out
}

/// The events a run raises against what a sink was told (`prev`), and the state to keep once
/// they are all delivered. `complete_scope`: the run looked at everything this instance owns
/// (no `--target`), so a finding it does not see is resolved.
pub fn events(prev: &SinkState, run: &RunSummary, complete_scope: bool) -> Vec<Event> {
    let mut out = Vec::new();
    let current: Vec<&Finding> = run.drift.iter().collect();
    let new: Vec<Finding> = current
        .iter()
        .filter(|f| {
            prev.findings
                .get(&f.key())
                .is_none_or(|p| f.changed_from(p))
        })
        .map(|f| (*f).clone())
        .collect();
    if !new.is_empty() {
        out.push(Event {
            kind: EventKind::DriftFound,
            severity: Severity::Warning,
            findings: new,
            failures: vec![],
            registries: vec![],
        });
    }
    if complete_scope {
        let seen: BTreeSet<String> = current.iter().map(|f| f.key()).collect();
        let resolved: Vec<Finding> = prev
            .findings
            .iter()
            .filter(|(k, _)| !seen.contains(*k))
            .map(|(_, f)| f.clone())
            .collect();
        if !resolved.is_empty() {
            out.push(Event {
                kind: EventKind::DriftResolved,
                severity: Severity::Warning,
                findings: resolved,
                failures: vec![],
                registries: vec![],
            });
        }
    }
    if run.command == Command::Apply {
        let failing = failures(run);
        let addresses: BTreeSet<String> = failing.iter().map(|f| f.address.clone()).collect();
        if !failing.is_empty() && addresses != prev.failing {
            out.push(Event {
                kind: EventKind::ApplyFailed,
                severity: Severity::Critical,
                findings: vec![],
                failures: failing,
                registries: vec![],
            });
        } else if failing.is_empty() && run.success && !prev.failing.is_empty() {
            out.push(Event {
                kind: EventKind::ApplyRecovered,
                severity: Severity::Critical,
                findings: vec![],
                failures: vec![],
                registries: vec![],
            });
        }
    }
    let throttling: Vec<String> = run
        .registries
        .iter()
        .filter(|(_, u)| u.throttled > 0)
        .map(|(n, _)| n.clone())
        .collect();
    if !throttling.is_empty() && !prev.rate_limited {
        out.push(Event {
            kind: EventKind::RateLimited,
            severity: Severity::Warning,
            findings: vec![],
            failures: vec![],
            registries: throttling,
        });
    }
    out
}

/// The state after `event` was delivered (or deliberately not sent to this sink).
pub fn advance(state: &mut SinkState, event: &Event, run: &RunSummary) {
    match event.kind {
        EventKind::DriftFound => {
            for f in &event.findings {
                state.findings.insert(f.key(), f.clone());
            }
        }
        EventKind::DriftResolved => {
            for f in &event.findings {
                state.findings.remove(&f.key());
            }
        }
        EventKind::ApplyFailed => {
            state.failing = event.failures.iter().map(|f| f.address.clone()).collect()
        }
        EventKind::ApplyRecovered => state.failing.clear(),
        EventKind::RateLimited => state.rate_limited = true,
    }
    let _ = run;
}

/// Conditions that clear without a notification of their own.
fn settle(state: &mut SinkState, run: &RunSummary) {
    if run.throttled() == 0 {
        state.rate_limited = false;
    }
}

pub(crate) fn client() -> Result<reqwest::Client, String> {
    crate::registry::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}

/// Send what `run` raises to every sink; record per-sink counts in `run.notifications`.
/// Runs `apply` and `drift` only (a `plan` in CI is a review, not the reconcile loop).
pub async fn notify_all(
    sinks: &[NotifySink],
    state: &StateDir,
    run: &mut RunSummary,
    complete_scope: bool,
) {
    if run.command == Command::Plan {
        return;
    }
    for sink in sinks {
        let usage = notify_one(sink, state, run, complete_scope).await;
        run.notifications.insert(sink.name.clone(), usage);
    }
}

async fn notify_one(
    sink: &NotifySink,
    state: &StateDir,
    run: &RunSummary,
    complete_scope: bool,
) -> SinkUsage {
    let mut usage = SinkUsage {
        kind: sink.kind.as_str().to_string(),
        ..SinkUsage::default()
    };
    let mut st = state.sink(&sink.name, &run.instance);
    if let SinkKind::Alertmanager { alert_ttl_seconds } = &sink.kind {
        // Alertmanager deduplicates and groups by itself: it gets the full current set every
        // run (firing alerts need refreshing before they expire), plus the resolutions.
        match alertmanager::post(sink, *alert_ttl_seconds, &st, run, complete_scope).await {
            Ok((next, posted)) => {
                usage.sent += u64::from(posted);
                st = next;
                state.set_sink(&sink.name, &run.instance, &st);
            }
            Err(e) => {
                usage.failed += 1;
                tracing::warn!(sink = %sink.name, error = %e, "notification failed; the run goes on");
            }
        }
        return usage;
    }
    for event in events(&st, run, complete_scope) {
        if !sink.wants(event.kind, event.severity) {
            advance(&mut st, &event, run);
            continue;
        }
        let sent = match &sink.kind {
            SinkKind::Ntfy { .. } => ntfy::send(sink, &event, run).await,
            SinkKind::Webhook { .. } => webhook::send(sink, &event, run).await,
            SinkKind::Alertmanager { .. } => unreachable!("handled above"),
        };
        match sent {
            Ok(()) => {
                usage.sent += 1;
                advance(&mut st, &event, run);
                tracing::info!(sink = %sink.name, event = event.kind.as_str(), "notification sent");
            }
            Err(e) => {
                usage.failed += 1;
                tracing::warn!(sink = %sink.name, event = event.kind.as_str(), error = %e, "notification failed; the run goes on");
            }
        }
    }
    settle(&mut st, run);
    state.set_sink(&sink.name, &run.instance, &st);
    usage
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::run_report::{ActionRecord, RegistryUsage};

    fn finding(address: &str, digest: &str) -> Finding {
        Finding {
            address: address.into(),
            kind: "unstamped".into(),
            location: format!("reg/demo/x:{address}"),
            registry: "reg".into(),
            repository: "demo/x".into(),
            digest: Some(digest.into()),
            detail: String::new(),
        }
    }

    fn run_with(drift: Vec<Finding>) -> RunSummary {
        let mut r = RunSummary::start(Command::Drift, None);
        r.drift = drift;
        r.finish(true);
        r
    }

    fn deliver_all(st: &mut SinkState, run: &RunSummary) -> Vec<EventKind> {
        let evs = events(st, run, true);
        for e in &evs {
            advance(st, e, run);
        }
        settle(st, run);
        evs.iter().map(|e| e.kind).collect()
    }

    #[test]
    fn a_finding_is_notified_once_again_when_it_changes_and_when_it_resolves() {
        let mut st = SinkState::default();
        let one = run_with(vec![finding("a", "sha256:1")]);
        assert_eq!(deliver_all(&mut st, &one), vec![EventKind::DriftFound]);
        assert_eq!(deliver_all(&mut st, &one), vec![]);
        let two = run_with(vec![finding("a", "sha256:1"), finding("b", "sha256:2")]);
        let evs = events(&st, &two, true);
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].findings.len(), 1, "only the new finding");
        deliver_all(&mut st, &two);
        let changed = run_with(vec![finding("a", "sha256:9"), finding("b", "sha256:2")]);
        assert_eq!(deliver_all(&mut st, &changed), vec![EventKind::DriftFound]);
        let clean = run_with(vec![]);
        let evs = events(&st, &clean, true);
        assert_eq!(evs[0].kind, EventKind::DriftResolved);
        assert_eq!(evs[0].findings.len(), 2);
        deliver_all(&mut st, &clean);
        assert_eq!(deliver_all(&mut st, &clean), vec![]);
    }

    #[test]
    fn a_partial_scope_never_resolves() {
        let mut st = SinkState::default();
        deliver_all(&mut st, &run_with(vec![finding("a", "sha256:1")]));
        assert!(events(&st, &run_with(vec![]), false).is_empty());
    }

    #[test]
    fn apply_failure_then_recovery_and_rate_limiting_once() {
        let mut st = SinkState::default();
        let mut failed = RunSummary::start(Command::Apply, None);
        failed.results.push(ActionRecord {
            address: "p/i/v[r/x:1]".into(),
            action: "copy".into(),
            outcome: "failed".into(),
            digest: None,
            error_kind: Some("registry".into()),
            error: Some("boom".into()),
            bytes: 0,
            requests: 1,
            blobs: None,
            seconds: 0.1,
        });
        failed.registries.insert(
            "hub".into(),
            RegistryUsage {
                throttled: 3,
                ..Default::default()
            },
        );
        failed.finish(false);
        assert_eq!(
            deliver_all(&mut st, &failed),
            vec![EventKind::ApplyFailed, EventKind::RateLimited]
        );
        assert_eq!(deliver_all(&mut st, &failed), vec![]);
        let mut ok = RunSummary::start(Command::Apply, None);
        ok.finish(true);
        assert_eq!(deliver_all(&mut st, &ok), vec![EventKind::ApplyRecovered]);
        assert_eq!(deliver_all(&mut st, &ok), vec![]);
        assert!(!st.rate_limited);
    }
}
