//! When houba last checked each upstream tag, remembered in the cache directory for
//! `tags.recheck`.
//!
//! One file per upstream repository: `<cache>/upstream-checks/<sha256 of "host/repository">.json`,
//! `{"registry": "docker.io", "repository": "library/busybox", "tags": {"1.37.0": {"digest":
//! "sha256:…", "checked": <seconds since the epoch>}}}`. Only tags under a rule other than
//! `always` are recorded. A lost, deleted or unreadable record makes its tags due: it costs
//! upstream requests, never correctness. Several runs sharing a cache each rewrite whole files
//! (write, then rename): the last one wins, and a check it lost is only made again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::live::{TagKey, UpstreamCheck};
use crate::oci::sha256_digest;

#[derive(Debug, Default, Serialize, Deserialize)]
struct RecordFile {
    registry: String,
    repository: String,
    tags: BTreeMap<String, Record>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    digest: String,
    checked: u64,
}

/// The record of upstream checks in a cache directory (none: nothing is remembered, every tag
/// is checked on every run).
#[derive(Debug, Clone)]
pub struct UpstreamChecks {
    dir: Option<PathBuf>,
}

impl UpstreamChecks {
    /// The records kept under `cache_dir`.
    pub fn new(cache_dir: Option<&Path>) -> Self {
        UpstreamChecks {
            dir: cache_dir.map(|d| d.join("upstream-checks")),
        }
    }

    fn file(&self, registry: &str, repository: &str) -> Option<PathBuf> {
        let name = sha256_digest(format!("{registry}/{repository}").as_bytes());
        let hex = name.strip_prefix("sha256:").unwrap_or(&name);
        Some(self.dir.as_ref()?.join(format!("{hex}.json")))
    }

    fn read(&self, registry: &str, repository: &str) -> BTreeMap<String, Record> {
        self.file(registry, repository)
            .and_then(|path| std::fs::read(path).ok())
            .and_then(|bytes| serde_json::from_slice::<RecordFile>(&bytes).ok())
            .filter(|f| f.registry == registry && f.repository == repository)
            .map(|f| f.tags)
            .unwrap_or_default()
    }

    /// The last check of every recorded tag of these upstream repositories.
    pub fn load(
        &self,
        repositories: &BTreeSet<(String, String)>,
    ) -> BTreeMap<TagKey, UpstreamCheck> {
        let mut out = BTreeMap::new();
        for (registry, repository) in repositories {
            for (tag, r) in self.read(registry, repository) {
                out.insert(
                    (registry.clone(), repository.clone(), tag),
                    UpstreamCheck {
                        digest: r.digest,
                        checked: r.checked,
                    },
                );
            }
        }
        out
    }

    /// Record this run's checks. `recorded` are the tags to keep records of (those under a
    /// rule other than `always`); `checked` maps each tag looked at upstream this run to the
    /// digest it held (`None`: it was gone). Records of tags not checked this run are kept as
    /// they were (their window runs on); records of tags no longer in `recorded` are dropped.
    /// Best effort: a record that cannot be written only costs checks on a later run.
    pub fn save(
        &self,
        recorded: &BTreeSet<TagKey>,
        checked: &BTreeMap<TagKey, Option<String>>,
        now: u64,
    ) {
        let Some(dir) = &self.dir else {
            return;
        };
        let mut by_repository: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
        for (registry, repository, tag) in recorded {
            by_repository
                .entry((registry, repository))
                .or_default()
                .push(tag);
        }
        for ((registry, repository), tags) in by_repository {
            let before = self.read(registry, repository);
            let mut after = BTreeMap::new();
            for tag in tags {
                let key = (
                    registry.to_string(),
                    repository.to_string(),
                    tag.to_string(),
                );
                let record = match checked.get(&key) {
                    Some(Some(digest)) => Some(Record {
                        digest: digest.clone(),
                        checked: now,
                    }),
                    Some(None) => None,
                    None => before.get(tag).cloned(),
                };
                if let Some(record) = record {
                    after.insert(tag.to_string(), record);
                }
            }
            if after == before {
                continue;
            }
            let Some(path) = self.file(registry, repository) else {
                continue;
            };
            let file = RecordFile {
                registry: registry.to_string(),
                repository: repository.to_string(),
                tags: after,
            };
            let bytes = serde_json::to_vec_pretty(&file).unwrap_or_default();
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            let written = std::fs::create_dir_all(dir)
                .and_then(|()| std::fs::write(&tmp, bytes))
                .and_then(|()| std::fs::rename(&tmp, &path));
            if let Err(e) = written {
                tracing::warn!(registry, repository, path = %path.display(), error = %e, "cannot record the upstream checks of this run; the next run checks these tags again");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(tag: &str) -> TagKey {
        ("docker.io".into(), "library/busybox".into(), tag.into())
    }

    #[test]
    fn checks_are_remembered_refreshed_and_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let checks = UpstreamChecks::new(Some(dir.path()));
        let repos = BTreeSet::from([("docker.io".to_string(), "library/busybox".to_string())]);
        assert!(
            checks.load(&repos).is_empty(),
            "an empty cache knows nothing"
        );

        let recorded = BTreeSet::from([key("1.36.0"), key("1.37.0")]);
        let checked = BTreeMap::from([
            (key("1.36.0"), Some("sha256:a".to_string())),
            (key("1.37.0"), Some("sha256:b".to_string())),
        ]);
        checks.save(&recorded, &checked, 1_000);
        let loaded = UpstreamChecks::new(Some(dir.path())).load(&repos);
        assert_eq!(loaded[&key("1.36.0")].digest, "sha256:a");
        assert_eq!(loaded[&key("1.37.0")].checked, 1_000);

        // 1.36.0 skipped this run (record kept as it was), 1.37.0 gone upstream, 1.38.0 new.
        let recorded = BTreeSet::from([key("1.36.0"), key("1.37.0"), key("1.38.0")]);
        let checked = BTreeMap::from([
            (key("1.37.0"), None),
            (key("1.38.0"), Some("sha256:c".to_string())),
        ]);
        checks.save(&recorded, &checked, 2_000);
        let loaded = checks.load(&repos);
        assert_eq!(
            loaded[&key("1.36.0")].checked,
            1_000,
            "a skipped tag keeps its time"
        );
        assert!(!loaded.contains_key(&key("1.37.0")));
        assert_eq!(loaded[&key("1.38.0")].checked, 2_000);

        // A tag no longer under a recheck rule is dropped.
        checks.save(&BTreeSet::from([key("1.38.0")]), &BTreeMap::new(), 3_000);
        assert_eq!(checks.load(&repos).len(), 1);
    }

    #[test]
    fn an_unreadable_record_is_no_record() {
        let dir = tempfile::tempdir().unwrap();
        let checks = UpstreamChecks::new(Some(dir.path()));
        let path = checks.file("docker.io", "library/busybox").unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"{not json").unwrap();
        let repos = BTreeSet::from([("docker.io".to_string(), "library/busybox".to_string())]);
        assert!(checks.load(&repos).is_empty());
        assert!(UpstreamChecks::new(None).load(&repos).is_empty());
    }
}
