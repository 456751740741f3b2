//! What `plan`, `apply` and `drift` do once they are over: the run report, the metrics
//! (textfile, Pushgateway) and the notifications. None of it fails a run: a metrics file that
//! cannot be written, a Pushgateway or a sink that is down is a warning (and counted).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::Context;
use crate::apply::{ActionResult, Outcome, RunReport};
use crate::observe::{self, Registries};
use crate::plan::model::Plan;
use crate::plan::render::drift_detail;
use crate::registry::stats::{Method, STATUS_CLASSES};
use crate::report::state::StateDir;
use crate::report::{self, ActionRecord, Finding, RegistryUsage, RunSummary, metrics, notify};

/// Reporting flags shared by `plan`, `apply` and `drift`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ReportArgs {
    /// Write the run's Prometheus metrics to FILE at the end of the run (node-exporter
    /// textfile format, written atomically; name it `*.prom` in the textfile directory).
    /// Overrides `[metrics] file` / HOUBA_METRICS_FILE.
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
    /// Push the run's metrics to this Pushgateway (job="houba", instance=<shard index or
    /// `all`>, grouped by command). A failed push is a warning, never a failed run. Overrides
    /// `[metrics] pushgateway` / HOUBA_PUSHGATEWAY.
    #[arg(long, value_name = "URL")]
    pub pushgateway: Option<String>,
    /// Also write the run report (the JSON of `apply --format json`) to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

impl ReportArgs {
    /// The Pushgateway URL from the flag, checked like the configuration's.
    fn pushgateway(&self, ctx: &Context) -> miette::Result<Option<String>> {
        match &self.pushgateway {
            None => Ok(ctx.settings.operations.metrics.pushgateway.clone()),
            Some(raw) => {
                let ok = reqwest::Url::parse(raw).ok().is_some_and(|u| {
                    matches!(u.scheme(), "http" | "https")
                        && u.host_str().is_some()
                        && u.username().is_empty()
                        && u.password().is_none()
                });
                if !ok {
                    return Err(miette::miette!(
                        code = "houba::report::pushgateway",
                        help = "give the Pushgateway's base URL, e.g. http://pushgateway.monitoring.svc:9091 (no credentials in it)",
                        "--pushgateway `{raw}` is not an http(s) URL with a host"
                    ));
                }
                Ok(Some(raw.trim_end_matches('/').to_string()))
            }
        }
    }

    /// Refuses bad flags before the run starts (rather than after it did its work).
    pub fn check(&self, ctx: &Context) -> miette::Result<()> {
        self.pushgateway(ctx).map(|_| ())
    }
}

/// What the plan says: pending actions, drift findings, what is managed.
pub fn record_plan(summary: &mut RunSummary, plan: &Plan) {
    for a in &plan.actions {
        *summary
            .pending
            .entry(a.kind().as_str().to_string())
            .or_default() += 1;
    }
    summary.drift = plan
        .drift
        .iter()
        .map(|d| Finding {
            address: d.label(),
            kind: d.finding.kind().to_string(),
            location: d.location.to_string(),
            registry: d.location.registry.clone(),
            repository: d.location.repository.clone(),
            digest: d.digest.clone(),
            detail: drift_detail(d),
        })
        .collect();
    summary.managed_repositories = plan.managed_tags.len() as u64;
    summary.managed_images = plan.managed_tags.values().map(|n| *n as u64).sum();
}

fn error_kind(r: &ActionResult) -> Option<String> {
    match r.outcome {
        Outcome::Done => None,
        Outcome::Failed => Some("action_failed".to_string()),
        Outcome::Skipped => Some("dependency_failed".to_string()),
    }
}

/// What apply did, per action.
pub fn record_apply(summary: &mut RunSummary, report: &RunReport) {
    summary.results = report
        .results
        .iter()
        .map(|r| ActionRecord {
            address: r.address.to_string(),
            action: r.action.as_str().to_string(),
            outcome: match r.outcome {
                Outcome::Done => "done",
                Outcome::Failed => "failed",
                Outcome::Skipped => "skipped",
            }
            .to_string(),
            digest: r.digest.clone(),
            error_kind: error_kind(r),
            error: r.error.clone(),
            bytes: r.bytes,
            requests: r.requests,
            blobs: (!r.blobs.is_empty()).then_some(r.blobs),
            seconds: r.seconds,
        })
        .collect();
    summary.blobs_uploaded = report.blobs_uploaded;
    summary.blobs_mounted = report.blobs_mounted;
    summary.blobs_skipped = report.blobs_skipped;
    summary.bytes_uploaded = report.bytes_uploaded;
}

/// What the registries cost: requests by method and status class (`none`: no HTTP answer, a
/// transport error or an OCI layout directory), bytes, throttling.
pub fn record_registries(summary: &mut RunSummary, registries: &Registries) {
    let traffic = registries.traffic_stats();
    for (name, stats) in registries.request_stats() {
        let t = traffic.get(&name).cloned().unwrap_or_default();
        let mut usage = RegistryUsage {
            read_bytes: t.read_bytes,
            written_bytes: t.written_bytes,
            throttled: t.throttled,
            retry_wait_seconds: t.retry_wait_ms as f64 / 1000.0,
            ratelimit_remaining: stats.rate_limit.map(|r| r.remaining),
            ..RegistryUsage::default()
        };
        let totals = [
            stats.head,
            stats.get,
            stats.put,
            stats.post,
            stats.patch,
            stats.delete,
        ];
        for (m, method) in Method::ALL.iter().enumerate() {
            let mut classes = BTreeMap::new();
            let mut answered = 0;
            for (c, class) in STATUS_CLASSES.iter().enumerate() {
                let n = t.answers[m][c];
                if n > 0 {
                    classes.insert(class.to_string(), n);
                    answered += n;
                }
            }
            if totals[m] > answered {
                classes.insert("none".to_string(), totals[m] - answered);
            }
            if !classes.is_empty() {
                usage.requests.insert(method.as_str().to_string(), classes);
            }
        }
        let entry = summary.registries.entry(name).or_default();
        merge_usage(entry, usage);
    }
}

fn merge_usage(into: &mut RegistryUsage, more: RegistryUsage) {
    for (m, classes) in more.requests {
        let row = into.requests.entry(m).or_default();
        for (c, n) in classes {
            *row.entry(c).or_default() += n;
        }
    }
    into.read_bytes += more.read_bytes;
    into.written_bytes += more.written_bytes;
    into.throttled += more.throttled;
    into.retry_wait_seconds += more.retry_wait_seconds;
    into.ratelimit_remaining = more.ratelimit_remaining.or(into.ratelimit_remaining);
}

/// Ends the run: last-success state, notifications, metrics, report file. Warnings only.
pub fn finish(
    ctx: &Context,
    args: &ReportArgs,
    summary: &mut RunSummary,
    success: bool,
    complete_scope: bool,
) {
    summary.finish(success);
    let state = observe::default_cache_dir(&ctx.env).map(|d| StateDir::in_cache(&d));
    if let Some(state) = &state {
        let (command, instance) = (summary.command.as_str(), summary.instance.clone());
        if let Some(at) = summary.last_success_at {
            state.set_last_success(command, &instance, at);
        } else {
            summary.last_success_at = state.last_success(command, &instance);
        }
    }
    let sinks = &ctx.settings.operations.notify;
    let rt = ctx.runtime();
    if !sinks.is_empty() {
        match &state {
            Some(state) => rt.block_on(notify::notify_all(sinks, state, summary, complete_scope)),
            None => tracing::warn!(
                "notifications need a cache directory to remember what was sent (set HOUBA_CACHE_DIR); none were sent"
            ),
        }
    }
    let metrics_file = args
        .metrics_file
        .clone()
        .or_else(|| ctx.settings.operations.metrics.file.clone());
    if let Some(path) = metrics_file
        && let Err(e) = metrics::write_textfile(&path, summary)
    {
        tracing::warn!(file = %path.display(), error = %e, "cannot write the metrics file; the run goes on");
    }
    if let Ok(Some(url)) = args.pushgateway(ctx)
        && let Err(e) = rt.block_on(metrics::push(&url, summary))
    {
        tracing::warn!(error = %e, "metrics push failed; the run goes on");
    }
    if let Some(path) = &args.report
        && let Err(e) = summary.write(path)
    {
        tracing::warn!(file = %path.display(), error = %e, "cannot write the run report");
    }
}

/// The one-line text of a run's error with its causes, each once, for the report and
/// notifications (miette's help stays on stderr).
pub fn error_text(e: &miette::Report) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        text.push_str(": ");
        text.push_str(&cause.to_string());
    }
    text
}

pub use report::Command as RunCommand;
