//! Referrer garbage collection: evidence (SBOMs, signatures, scan reports) whose subject is no
//! longer tagged in any repository houba manages.
//!
//! A registry cannot list its untagged manifests, so the subjects considered are those
//! evidence points at: the `sha256-<hex>` referrers-fallback tags and cosign's
//! `sha256-<hex>.sig|.att|.sbom` tags in each managed repository, and the stamped manifests
//! the manifest cache has seen whose stamp names a policy placing into that repository.
//!
//! Only referrers of images houba placed are touched: the subject manifest (read by digest
//! from the repository, else from the cache) must carry a houba stamp. A subject whose
//! manifest cannot be read anywhere is kept and reported.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{Endpoint, Inventory, InventoryError, manifest_by_digest};
use crate::observe::ManifestCache;
use crate::registry::{Referrer, referrers};
use crate::stamp::{self, Stamp};

/// One thing gc deletes: a referrer manifest, or an evidence tag's manifest.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Deletion {
    /// `sbom`, `signature`, `scan`, `referrer`, `fallback-index` or `cosign-tag`.
    pub kind: String,
    /// The manifest's digest.
    pub digest: String,
    /// The tag it is under (evidence tags only).
    pub tag: Option<String>,
}

/// An untagged subject whose evidence gc collects.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Orphan {
    /// Roster entry name.
    pub registry: String,
    /// Host (and path prefix) the registry is shown as.
    pub host: String,
    /// Repository path in the registry.
    pub repository: String,
    /// The untagged subject's digest.
    pub subject: String,
    /// The policy that stamped it.
    pub policy: String,
    /// What gc deletes for it.
    pub deletions: Vec<Deletion>,
}

/// A subject left alone, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Kept {
    /// `host/repository`.
    pub repository: String,
    /// The subject's digest.
    pub subject: String,
    /// Why it is kept.
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Default)]
/// What `houba gc` deletes, and what it keeps.
pub struct GcPlan {
    /// Subjects whose evidence is deleted.
    pub orphans: Vec<Orphan>,
    /// Subjects left alone.
    pub kept: Vec<Kept>,
    /// Tagged images per `host/repository`, for the mass-delete guard.
    #[serde(skip)]
    pub tagged: BTreeMap<String, usize>,
}

impl GcPlan {
    /// How many manifests are deleted.
    pub fn deletions(&self) -> usize {
        self.orphans.iter().map(|o| o.deletions.len()).sum()
    }
}

fn kind_of(r: &Referrer) -> &'static str {
    match r.artifact_type.as_deref() {
        Some(super::evidence::SPDX) | Some(super::evidence::CYCLONEDX) => "sbom",
        Some(super::evidence::COSIGN_SIGNATURE) => "signature",
        Some(super::evidence::SARIF) => "scan",
        _ => "referrer",
    }
}

/// Candidate subjects per managed repository from the manifest cache: stamped manifests whose
/// policy places into the repository. `policies_of` maps `(registry, repository)` → policies.
pub fn cached_subjects(
    cache_dir: Option<&std::path::Path>,
    cache: &ManifestCache,
    prefix: &str,
) -> BTreeMap<String, BTreeSet<String>> {
    // policy name → digests of stamped manifests it placed
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let Some(dir) = cache_dir.map(|d| d.join("manifests")) else {
        return out;
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let digest = format!("sha256:{}", e.file_name().to_string_lossy());
        let Some(bytes) = cache.get(&digest) else {
            continue;
        };
        let Ok(a) = stamp::manifest_annotations(&bytes) else {
            continue;
        };
        if let Some((s, _)) = Stamp::detect(&a, prefix) {
            out.entry(s.policy).or_default().insert(digest);
        }
    }
    out
}

/// Inputs of a gc plan.
pub struct GcRequest<'a> {
    /// The destination registries.
    pub endpoints: &'a [Endpoint],
    /// A scan of the managed repositories.
    pub inventory: &'a Inventory,
    /// `(roster name, repository)` → policies placing there.
    pub policies: &'a BTreeMap<(String, String), BTreeSet<String>>,
    /// policy → digests of stamped manifests the cache holds.
    pub cached: &'a BTreeMap<String, BTreeSet<String>>,
    /// The content-addressed manifest cache.
    pub cache: &'a ManifestCache,
    /// Key prefix of houba's own stamp keys.
    pub label_prefix: &'a str,
}

/// Work out what gc would delete. Reads only.
pub async fn plan(req: &GcRequest<'_>) -> Result<GcPlan, InventoryError> {
    let tagged: BTreeSet<&str> = req
        .inventory
        .images
        .iter()
        .filter(|i| i.managed)
        .map(|i| i.digest.as_str())
        .collect();
    let mut out = GcPlan::default();
    for repo in req.inventory.repositories.iter().filter(|r| r.managed) {
        let Some(ep) = req.endpoints.iter().find(|e| e.name == repo.registry) else {
            continue;
        };
        let shown = format!("{}/{}", repo.host, repo.repository);
        out.tagged.insert(
            shown.clone(),
            req.inventory
                .images
                .iter()
                .filter(|i| i.registry == repo.registry && i.repository == repo.repository)
                .count(),
        );
        // subject → evidence tags naming it
        let mut subjects: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for t in &repo.evidence_tags {
            if let Some(s) = super::evidence_tag_subject(t) {
                subjects.entry(s).or_default().push(t.clone());
            }
        }
        let key = (repo.registry.clone(), repo.repository.clone());
        for policy in req.policies.get(&key).into_iter().flatten() {
            for d in req.cached.get(policy).into_iter().flatten() {
                subjects.entry(d.clone()).or_default();
            }
        }
        for (subject, tags) in subjects {
            if tagged.contains(subject.as_str()) {
                continue;
            }
            let r = ep.registry.as_ref();
            let what = format!("{shown}@{subject}");
            let manifest = manifest_by_digest(r, req.cache, &repo.repository, &subject)
                .await
                .map_err(|e| InventoryError::read(what.clone(), e))?;
            let stamp = manifest
                .as_deref()
                .and_then(|m| stamp::manifest_annotations(m).ok())
                .and_then(|a| Stamp::detect(&a, req.label_prefix));
            let Some((stamp, _)) = stamp else {
                out.kept.push(Kept {
                    repository: shown.clone(),
                    subject: subject.clone(),
                    reason: if manifest.is_some() {
                        "the subject is not stamped: houba did not place it".into()
                    } else {
                        "the subject manifest cannot be read: houba cannot tell who placed it"
                            .into()
                    },
                });
                continue;
            };
            let listed = r
                .referrer_details(&repo.repository, &subject)
                .await
                .map_err(|e| InventoryError::read(format!("the referrers of {what}"), e))?;
            let mut deletions: Vec<Deletion> = listed
                .iter()
                .map(|x| Deletion {
                    kind: kind_of(x).to_string(),
                    digest: x.descriptor.digest.clone(),
                    tag: None,
                })
                .collect();
            for t in tags {
                let Some(d) = r
                    .head_manifest(&repo.repository, &t)
                    .await
                    .map_err(|e| InventoryError::read(format!("{shown}:{t}"), e))?
                else {
                    continue;
                };
                if deletions.iter().any(|x| x.digest == d.digest) {
                    continue;
                }
                let kind = if referrers::is_fallback_tag(&t) {
                    "fallback-index"
                } else {
                    "cosign-tag"
                };
                deletions.push(Deletion {
                    kind: kind.into(),
                    digest: d.digest,
                    tag: Some(t),
                });
            }
            if deletions.is_empty() {
                continue;
            }
            out.orphans.push(Orphan {
                registry: repo.registry.clone(),
                host: repo.host.clone(),
                repository: repo.repository.clone(),
                subject,
                policy: stamp.policy,
                deletions,
            });
        }
    }
    Ok(out)
}

/// Repositories where gc would collect more than `fraction` of the subjects it sees (orphaned
/// subjects against orphaned + tagged images).
pub fn mass_delete(plan: &GcPlan, fraction: f64) -> Vec<String> {
    let mut per: BTreeMap<String, usize> = BTreeMap::new();
    for o in &plan.orphans {
        *per.entry(format!("{}/{}", o.host, o.repository))
            .or_default() += 1;
    }
    per.into_iter()
        .filter_map(|(repo, n)| {
            let seen = n + plan.tagged.get(&repo).copied().unwrap_or(0);
            ((n as f64) > fraction * seen as f64)
                .then(|| format!("{repo}: evidence of {n} of {seen} images"))
        })
        .collect()
}

/// Delete what the plan lists: referrers first, then the evidence tags (a fallback index is
/// the last thing pointing at them). Returns the deletions made.
pub async fn execute(plan: &GcPlan, endpoints: &[Endpoint]) -> Result<usize, InventoryError> {
    let mut done = 0;
    for o in &plan.orphans {
        let Some(ep) = endpoints.iter().find(|e| e.name == o.registry) else {
            continue;
        };
        let mut ordered: Vec<&Deletion> = o.deletions.iter().filter(|d| d.tag.is_none()).collect();
        ordered.extend(o.deletions.iter().filter(|d| d.tag.is_some()));
        for d in ordered {
            match ep.registry.delete_manifest(&o.repository, &d.digest).await {
                Ok(()) => done += 1,
                // Deleted meanwhile (a fallback index listing a referrer already gone).
                Err(crate::registry::RegistryError::NotFound { .. }) => {}
                Err(e) => {
                    return Err(InventoryError::Delete {
                        what: format!("{}/{}@{} ({})", o.host, o.repository, d.digest, d.kind),
                        error: Box::new(e),
                    });
                }
            }
        }
    }
    Ok(done)
}

/// The gc plan as text.
pub fn text(plan: &GcPlan) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for o in &plan.orphans {
        let _ = writeln!(
            out,
            "  - {}/{}@{}  (untagged; placed by policy {})",
            o.host, o.repository, o.subject, o.policy
        );
        for d in &o.deletions {
            let tag = d
                .tag
                .as_deref()
                .map(|t| format!(" tag {t}"))
                .unwrap_or_default();
            let _ = writeln!(out, "      - {:<14} {}{tag}", d.kind, d.digest);
        }
    }
    for k in &plan.kept {
        let _ = writeln!(
            out,
            "  = {}@{}  kept: {}",
            k.repository, k.subject, k.reason
        );
    }
    let _ = writeln!(
        out,
        "\nGC: {} evidence manifest(s) of {} untagged image(s) to delete; {} subject(s) kept.",
        plan.deletions(),
        plan.orphans.len(),
        plan.kept.len()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orphan(repo: &str) -> Orphan {
        Orphan {
            registry: "r".into(),
            host: "h".into(),
            repository: repo.into(),
            subject: "sha256:1".into(),
            policy: "p".into(),
            deletions: vec![],
        }
    }

    #[test]
    fn mass_delete_counts_orphans_against_everything_seen() {
        let mut plan = GcPlan {
            orphans: vec![orphan("a"), orphan("a"), orphan("b")],
            ..GcPlan::default()
        };
        plan.tagged.insert("h/a".into(), 1);
        plan.tagged.insert("h/b".into(), 3);
        assert_eq!(
            mass_delete(&plan, 0.5),
            vec!["h/a: evidence of 2 of 3 images"]
        );
        assert!(mass_delete(&plan, 0.7).is_empty());
    }
}
