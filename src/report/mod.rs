//! What a run tells the outside world once it is over: the run report (JSON), Prometheus
//! metrics (a node-exporter textfile, a Pushgateway push) and notifications (ntfy, webhooks,
//! Alertmanager). Also the apply lock, which makes concurrent applies safe.
//!
//! Everything here works from one plain value, [`RunSummary`], which the commands fill in from
//! their plan and apply results. Nothing in this module reads a plan or a registry itself, so
//! the report, the metrics and the notifications always agree.

pub mod lock;
pub mod metrics;
pub mod notify;
pub mod run_report;
pub mod state;

pub use run_report::{
    ACTION_KINDS, ActionRecord, Command, DRIFT_KINDS, Finding, RegistryUsage, RunSummary, SinkUsage,
};
