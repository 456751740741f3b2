//! Purging tags a `deletionMode: mark` prune retired (`<prefix>.pruned=true` in their stamp),
//! once they are past the grace period and the usage oracle says nobody runs them.
//!
//! The oracle contract: an executable called with one argument, `registry/repository@digest`;
//! exit 0 = in use (keep), exit 1 = unused (may be deleted), anything else (another code, a
//! signal, a time-out, failing to start) = unknown (keep). Its first line of output is shown
//! as the reason.
//!
//! The grace period counts from the image's creation time: the stamp's
//! `org.opencontainers.image.created`, else the image config's `created`. A mark carries no
//! time of its own (houba writes no wall-clock values), so an image whose age is unknown is
//! kept.

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::{Image, Inventory, InventoryError};
use crate::registry::Registry;

/// What the oracle said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Usage {
    /// The image is running somewhere.
    InUse,
    /// Nothing runs it.
    Unused,
    /// The oracle could not tell.
    Unknown,
}

/// Decision for one marked tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// To delete: marked longer than the grace period, and unused.
    Delete,
    /// Kept: marked more recently than the grace period.
    KeepInGrace,
    /// Kept: when it was marked is not known.
    KeepAgeUnknown,
    /// Kept: the oracle says it runs.
    KeepInUse,
    /// Kept: the oracle could not tell.
    KeepUnknownUsage,
}

#[derive(Debug, Clone, Serialize)]
/// One marked-pruned tag and what purge decided.
pub struct Candidate {
    /// Roster entry name.
    pub registry: String,
    /// Host (and path prefix) the registry is shown as.
    pub host: String,
    /// Repository path in the registry.
    pub repository: String,
    /// The marked tag.
    pub tag: String,
    /// The digest it holds.
    pub digest: String,
    /// The policy that marked it.
    pub policy: String,
    /// Age in seconds, when known.
    pub age_seconds: Option<u64>,
    /// What the usage oracle said, when it was asked.
    pub usage: Option<Usage>,
    /// The decision.
    pub verdict: Verdict,
    /// Why, in one sentence.
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Default)]
/// What `houba purge` deletes, and what it keeps.
pub struct PurgePlan {
    /// `--grace`, seconds.
    pub grace_seconds: u64,
    /// Every marked tag, with its decision.
    pub candidates: Vec<Candidate>,
    /// Stamped tags per `host/repository`, for the mass-delete guard.
    #[serde(skip)]
    pub stamped_tags: std::collections::BTreeMap<String, usize>,
}

impl PurgePlan {
    /// The candidates to delete.
    pub fn deletions(&self) -> impl Iterator<Item = &Candidate> {
        self.candidates
            .iter()
            .filter(|c| c.verdict == Verdict::Delete)
    }
}

/// Ask the oracle about `reference`.
pub async fn ask_oracle(oracle: &Path, reference: &str, timeout: Duration) -> (Usage, String) {
    let child = tokio::process::Command::new(oracle)
        .arg(reference)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(e) => return (Usage::Unknown, format!("the oracle did not start: {e}")),
    };
    let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return (Usage::Unknown, format!("the oracle failed: {e}")),
        Err(_) => {
            return (
                Usage::Unknown,
                format!("the oracle gave no answer within {}s", timeout.as_secs()),
            );
        }
    };
    let said = String::from_utf8_lossy(&out.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&out.stderr).lines())
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| l.chars().take(200).collect::<String>())
        .unwrap_or_default();
    let usage = match out.status.code() {
        Some(0) => Usage::InUse,
        Some(1) => Usage::Unused,
        _ => Usage::Unknown,
    };
    let code = out
        .status
        .code()
        .map_or("a signal".to_string(), |c| format!("exit {c}"));
    let reason = if said.is_empty() {
        format!("oracle: {code}")
    } else {
        format!("oracle: {code}: {said}")
    };
    (usage, reason)
}

/// The age of a marked image: its stamp's `created`, else its config's (first platform).
async fn image_age(
    registry: &dyn Registry,
    cache: &crate::observe::ManifestCache,
    image: &Image,
    now: SystemTime,
) -> Result<Option<Duration>, InventoryError> {
    if let Some(age) = image
        .stamp
        .as_ref()
        .and_then(|s| s.created.as_deref())
        .and_then(|c| crate::observe::age_of(c, now))
    {
        return Ok(Some(age));
    }
    let what = image.reference();
    let mut value: serde_json::Value = serde_json::from_slice(&image.manifest).unwrap_or_default();
    if let Some(first) = value
        .pointer("/manifests/0/digest")
        .and_then(|d| d.as_str())
        .map(str::to_string)
    {
        let child = super::manifest_by_digest(registry, cache, &image.repository, &first)
            .await
            .map_err(|e| InventoryError::read(what.clone(), e))?;
        value = child
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
    }
    let Some(config) = value.pointer("/config/digest").and_then(|d| d.as_str()) else {
        return Ok(None);
    };
    let bytes = super::read_small_blob(registry, &image.repository, config, 4 << 20)
        .await
        .map_err(|e| InventoryError::read(format!("the image config of {what}"), e))?;
    Ok(serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|c| {
            c.get("created")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        })
        .and_then(|c| crate::observe::age_of(&c, now)))
}

/// Inputs of a purge plan.
pub struct PurgeRequest<'a> {
    /// The destination registries.
    pub endpoints: &'a [super::Endpoint],
    /// A scan of the managed repositories.
    pub inventory: &'a Inventory,
    /// The content-addressed manifest cache.
    pub cache: &'a crate::observe::ManifestCache,
    /// How long a tag stays marked before it may be deleted.
    pub grace: Duration,
    /// The usage oracle (`--usage-oracle`).
    pub oracle: &'a Path,
    /// How long the oracle may take per question.
    pub oracle_timeout: Duration,
    /// Now (given, so that tests can fix it).
    pub now: SystemTime,
}

/// Decide for every marked tag. Reads, and calls the oracle (which must not write).
pub async fn plan(req: &PurgeRequest<'_>) -> Result<PurgePlan, InventoryError> {
    let mut out = PurgePlan {
        grace_seconds: req.grace.as_secs(),
        ..PurgePlan::default()
    };
    for image in req.inventory.images.iter().filter(|i| i.managed) {
        *out.stamped_tags
            .entry(format!("{}/{}", image.host, image.repository))
            .or_default() += if image.stamp.is_some() {
            image.tags.len()
        } else {
            0
        };
        let Some(stamp) = image.stamp.as_ref().filter(|s| s.pruned) else {
            continue;
        };
        let Some(ep) = req.endpoints.iter().find(|e| e.name == image.registry) else {
            continue;
        };
        let age = image_age(ep.registry.as_ref(), req.cache, image, req.now).await?;
        let (usage, verdict, reason) = match age {
            None => (
                None,
                Verdict::KeepAgeUnknown,
                "no creation time in the stamp or the image config; kept".to_string(),
            ),
            Some(a) if a < req.grace => (
                None,
                Verdict::KeepInGrace,
                format!(
                    "created {} ago, within the grace period",
                    humantime::format_duration(Duration::from_secs(a.as_secs()))
                ),
            ),
            Some(_) => {
                let (usage, reason) =
                    ask_oracle(req.oracle, &image.reference(), req.oracle_timeout).await;
                let verdict = match usage {
                    Usage::InUse => Verdict::KeepInUse,
                    Usage::Unused => Verdict::Delete,
                    Usage::Unknown => Verdict::KeepUnknownUsage,
                };
                (Some(usage), verdict, reason)
            }
        };
        for tag in &image.tags {
            out.candidates.push(Candidate {
                registry: image.registry.clone(),
                host: image.host.clone(),
                repository: image.repository.clone(),
                tag: tag.clone(),
                digest: image.digest.clone(),
                policy: stamp.policy.clone(),
                age_seconds: age.map(|a| a.as_secs()),
                usage,
                verdict,
                reason: reason.clone(),
            });
        }
    }
    Ok(out)
}

/// Repositories where purge would delete more than `fraction` of the stamped tags.
pub fn mass_delete(plan: &PurgePlan, fraction: f64) -> Vec<String> {
    let mut per: std::collections::BTreeMap<String, usize> = Default::default();
    for c in plan.deletions() {
        *per.entry(format!("{}/{}", c.host, c.repository))
            .or_default() += 1;
    }
    per.into_iter()
        .filter_map(|(repo, n)| {
            let stamped = plan.stamped_tags.get(&repo).copied().unwrap_or(n).max(n);
            ((n as f64) > fraction * stamped as f64)
                .then(|| format!("{repo}: {n} of {stamped} stamped tags"))
        })
        .collect()
}

/// Delete the tags the plan marks `delete`, each only if it still points at the digest the
/// plan saw. Returns the tags deleted and the failures (named).
pub async fn execute(plan: &PurgePlan, endpoints: &[super::Endpoint]) -> (usize, Vec<String>) {
    let mut deleted = 0;
    let mut failed = Vec::new();
    for c in plan.deletions() {
        let Some(ep) = endpoints.iter().find(|e| e.name == c.registry) else {
            continue;
        };
        let shown = format!("{}/{}:{}", c.host, c.repository, c.tag);
        let r = ep.registry.as_ref();
        match r.head_manifest(&c.repository, &c.tag).await {
            Ok(Some(d)) if d.digest == c.digest => {}
            Ok(now) => {
                failed.push(format!(
                    "{shown}: the tag moved since planning ({} -> {}); not deleted",
                    c.digest,
                    now.map(|d| d.digest).unwrap_or_else(|| "absent".into())
                ));
                continue;
            }
            Err(e) => {
                failed.push(format!("{shown}: {e}"));
                continue;
            }
        }
        match r.remove_tag(&c.repository, &c.tag).await {
            Ok(()) => deleted += 1,
            Err(e) => failed.push(format!("{shown}: {e}")),
        }
    }
    (deleted, failed)
}

/// The purge plan as text: each marked tag, its decision and why.
pub fn text(plan: &PurgePlan) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for c in &plan.candidates {
        let mark = if c.verdict == Verdict::Delete {
            "-"
        } else {
            "="
        };
        let _ = writeln!(
            out,
            "  {mark} {}/{}:{} ({})  {}",
            c.host,
            c.repository,
            c.tag,
            &c.digest[..c.digest.len().min(19)],
            match c.verdict {
                Verdict::Delete => format!("will be deleted: {}", c.reason),
                _ => format!("kept: {}", c.reason),
            }
        );
    }
    let n = plan.deletions().count();
    let _ = writeln!(
        out,
        "\nPurge: {n} marked tag(s) to delete, {} kept.",
        plan.candidates.len() - n
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn oracle_exit_codes_map_to_usage() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("oracle");
        std::fs::write(
            &script,
            "#!/bin/sh\ncase \"$1\" in *used) echo busy; exit 0;; *idle) exit 1;; *slow) sleep 5;; esac\nexit 42\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let t = Duration::from_secs(20);
        // Another test thread forking while the script was being written can hold it open
        // for an instant (ETXTBSY); that is "failed to start", retried here only.
        let mut first = ask_oracle(&script, "r/x@used", t).await;
        for _ in 0..20 {
            if !first.1.contains("Text file busy") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            first = ask_oracle(&script, "r/x@used", t).await;
        }
        assert_eq!(first, (Usage::InUse, "oracle: exit 0: busy".into()));
        assert_eq!(ask_oracle(&script, "r/x@idle", t).await.0, Usage::Unused);
        assert_eq!(ask_oracle(&script, "r/x@what", t).await.0, Usage::Unknown);
        let (usage, why) = ask_oracle(&script, "r/x@slow", Duration::from_millis(300)).await;
        assert_eq!(usage, Usage::Unknown);
        assert!(why.contains("no answer"), "{why}");
        let (usage, _) = ask_oracle(&dir.path().join("absent"), "r/x@used", t).await;
        assert_eq!(usage, Usage::Unknown);
    }
}
