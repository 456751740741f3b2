//! What a run remembers for the next one, in the cache directory (`<cache>/report/`): the last
//! successful run of each command, and what each notification sink was last told.
//!
//! The state only prevents repeats. Losing it (a fresh volume) costs at most one repeated
//! notification per finding, never a storm; a corrupt file is treated as absent.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::run_report::{Finding, write_atomically};

/// What one sink has been told, per instance (shard).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkState {
    /// Drift findings notified and not yet resolved, by [`Finding::key`]; a change of kind or
    /// digest is a new notification.
    #[serde(default)]
    pub findings: BTreeMap<String, Finding>,
    /// Addresses whose apply failed, as last notified (empty: the last apply succeeded).
    #[serde(default)]
    pub failing: BTreeSet<String>,
    /// A rate-limit notification was sent and no run since was throttle-free.
    #[serde(default)]
    pub rate_limited: bool,
}

#[derive(Debug, Clone)]
/// What houba remembers between runs (last successes, what each sink was sent), as small JSON files in the cache directory.
pub struct StateDir {
    dir: PathBuf,
}

#[derive(Debug, Serialize, Deserialize)]
struct LastSuccess {
    /// Unix time in milliseconds (an integer: exact through JSON).
    at_ms: u64,
}

impl StateDir {
    /// The state directory inside a cache directory.
    pub fn in_cache(cache_dir: &Path) -> StateDir {
        StateDir {
            dir: cache_dir.join("report"),
        }
    }

    fn file(&self, kind: &str, parts: &[&str]) -> PathBuf {
        let name: Vec<String> = parts.iter().map(|p| safe_name(p)).collect();
        self.dir.join(format!("{kind}-{}.json", name.join("-")))
    }

    fn read<T: for<'de> Deserialize<'de>>(&self, path: &Path) -> Option<T> {
        let bytes = std::fs::read(path).ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "ignoring an unreadable state file");
                None
            }
        }
    }

    fn write<T: Serialize>(&self, path: &Path, value: &T) {
        let bytes = serde_json::to_vec_pretty(value).expect("state serialises");
        if let Err(e) = write_atomically(path, &bytes) {
            tracing::warn!(file = %path.display(), error = %e, "cannot save run state; the next run may repeat a notification");
        }
    }

    /// Unix time of the last success of `command` for `instance`, if remembered.
    pub fn last_success(&self, command: &str, instance: &str) -> Option<f64> {
        self.read::<LastSuccess>(&self.file("last-success", &[command, instance]))
            .map(|s| s.at_ms as f64 / 1000.0)
    }

    /// Remembers a success of `command` for `instance` at `at`.
    pub fn set_last_success(&self, command: &str, instance: &str, at: f64) {
        self.write(
            &self.file("last-success", &[command, instance]),
            &LastSuccess {
                at_ms: super::run_report::millis(at),
            },
        );
    }

    /// What sink `sink` was sent for `instance` (empty when nothing is remembered).
    pub fn sink(&self, sink: &str, instance: &str) -> SinkState {
        self.read(&self.file("notify", &[sink, instance]))
            .unwrap_or_default()
    }

    /// Remembers what sink `sink` was sent for `instance`.
    pub fn set_sink(&self, sink: &str, instance: &str, state: &SinkState) {
        self.write(&self.file("notify", &[sink, instance]), state);
    }
}

/// A file-name-safe rendering of a configured name.
fn safe_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_tolerates_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateDir::in_cache(dir.path());
        assert_eq!(s.last_success("apply", "all"), None);
        s.set_last_success("apply", "all", 12.5);
        assert_eq!(s.last_success("apply", "all"), Some(12.5));
        let mut st = SinkState::default();
        st.failing.insert("a".into());
        s.set_sink("ops/crit", "0", &st);
        assert_eq!(s.sink("ops/crit", "0"), st);
        std::fs::write(dir.path().join("report/notify-ops_crit-0.json"), b"{oops").unwrap();
        assert_eq!(s.sink("ops/crit", "0"), SinkState::default());
    }
}
