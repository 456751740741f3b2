//! The blast radius: which stamped images match a query (base digest, base name, owner,
//! policy, CVE), grouped by base digest and by owner; and which images carry no stamp at all
//! (the coverage gap: houba cannot say whether they are affected).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{Image, Inventory, ScanReport};
use crate::registry::RequestStats;

/// Version of the JSON report; bumped when a field changes meaning or disappears.
pub const FORMAT_VERSION: &str = "1";

/// What to look for. Every filter given must match (they combine with AND).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Query {
    /// `--base-digest`: images built on this base digest.
    pub base_digest: Option<String>,
    /// `registry/repository`, or `registry/repository:tag` for one upstream tag.
    pub base_name: Option<String>,
    /// `--owner`: images one of whose owners is this entity ref.
    pub owner: Option<String>,
    /// `--policy`: images placed by this policy.
    pub policy: Option<String>,
    /// `--cve`: images whose attached SBOM or scan names this CVE.
    pub cve: Option<String>,
}

/// One stamped image that matched.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Artifact {
    /// Host (and path prefix) of the registry.
    pub registry: String,
    /// Repository path in the registry.
    pub repository: String,
    /// The image's digest.
    pub digest: String,
    /// Every tag pointing at it.
    pub tags: Vec<String>,
    /// The policy that placed it (from the stamp).
    pub policy: String,
    /// Its import.
    pub import: String,
    /// Its variant.
    pub variant: String,
    /// `<registry>/<repository>` of the upstream.
    pub source: String,
    /// `<registry>/<repository>:<tag>` of the base image.
    pub base_name: String,
    /// Digest of the base image.
    pub base_digest: String,
    /// Owners (Backstage entity refs).
    pub owners: Vec<String>,
    /// SBOM formats attached.
    pub sbom: Vec<String>,
    /// A signature is attached.
    pub signed: bool,
    /// The newest scan report attached, when any.
    pub scan: Option<ScanReport>,
}

/// An image without a stamp.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Unstamped {
    /// Host (and path prefix) of the registry.
    pub registry: String,
    /// Repository path in the registry.
    pub repository: String,
    /// The image's digest.
    pub digest: String,
    /// Every tag pointing at it.
    pub tags: Vec<String>,
    /// The repository is a destination of a policy (content houba did not place, there).
    pub managed_repository: bool,
    /// SBOM formats attached.
    pub sbom: Vec<String>,
    /// A signature is attached.
    pub signed: bool,
    /// The newest scan report attached, when any.
    pub scan: Option<ScanReport>,
}

#[derive(Debug, Clone, Serialize)]
/// The matched images built on one base digest.
pub struct BaseGroup {
    /// The base digest.
    pub base_digest: String,
    /// The base names it was placed from.
    pub base_names: Vec<String>,
    /// The images.
    pub artifacts: Vec<Artifact>,
}

#[derive(Debug, Clone, Serialize)]
/// The matched images of one owner.
pub struct OwnerGroup {
    /// The owner (Backstage entity ref).
    pub owner: String,
    /// The images.
    pub artifacts: Vec<Artifact>,
}

#[derive(Debug, Clone, Default, Serialize)]
/// What the scan walked.
pub struct Scanned {
    /// Registries.
    pub registries: usize,
    /// Repositories.
    pub repositories: usize,
    /// Images (distinct digests per repository).
    pub images: usize,
    /// Tags.
    pub tags: usize,
}

#[derive(Debug, Clone, Serialize)]
/// `houba blast-radius`'s answer (its JSON document).
pub struct BlastRadius {
    /// Version of this document's format.
    pub format_version: String,
    /// The filters asked for.
    pub query: Query,
    /// What the scan walked.
    pub scanned: Scanned,
    /// Stamped images that matched.
    pub matched: usize,
    /// Matched images by base digest.
    pub by_base_digest: Vec<BaseGroup>,
    /// Matched images by owner.
    pub by_owner: Vec<OwnerGroup>,
    /// Images without a stamp (the coverage gap), whatever the filters.
    pub unstamped: Vec<Unstamped>,
    /// Requests made per registry host.
    pub requests: BTreeMap<String, RequestStats>,
}

/// Whether a stamp's `base.name` (`reg/repo:tag`) is the queried name: the whole name, or
/// the repository part when the query has no tag.
fn base_name_matches(stamped: &str, query: &str) -> bool {
    stamped == query
        || stamped
            .strip_prefix(query)
            .is_some_and(|rest| rest.starts_with(':') || rest.starts_with('@'))
}

/// Whether a stamped image matches every filter of `query` (`cve_hits`: digests whose evidence names the CVE).
pub fn matches(image: &Image, query: &Query, cve_hits: &BTreeSet<String>) -> bool {
    let Some(s) = &image.stamp else { return false };
    query
        .base_digest
        .as_ref()
        .is_none_or(|d| &s.base_digest == d)
        && query
            .base_name
            .as_ref()
            .is_none_or(|n| base_name_matches(&s.base_name, n))
        && query.owner.as_ref().is_none_or(|o| s.owners.contains(o))
        && query.policy.as_ref().is_none_or(|p| &s.policy == p)
        && (query.cve.is_none() || cve_hits.contains(&image.reference()))
}

fn artifact(image: &Image) -> Artifact {
    let s = image.stamp.clone().unwrap_or_default();
    Artifact {
        registry: image.host.clone(),
        repository: image.repository.clone(),
        digest: image.digest.clone(),
        tags: image.tags.clone(),
        policy: s.policy,
        import: s.import,
        variant: s.variant,
        source: s.source,
        base_name: s.base_name,
        base_digest: s.base_digest,
        owners: s.owners,
        sbom: image.evidence.sbom.clone(),
        signed: image.evidence.signed(),
        scan: image.evidence.scan.clone(),
    }
}

/// Answer `query` over a scan. `cve_hits` holds the references (`host/repo@digest`) whose
/// newest scan report mentions the queried CVE.
pub fn answer(
    inventory: &Inventory,
    query: &Query,
    cve_hits: &BTreeSet<String>,
    requests: BTreeMap<String, RequestStats>,
) -> BlastRadius {
    let mut by_base: BTreeMap<String, BaseGroup> = BTreeMap::new();
    let mut by_owner: BTreeMap<String, Vec<Artifact>> = BTreeMap::new();
    let mut matched = 0;
    let mut unstamped = Vec::new();
    for image in &inventory.images {
        if image.stamp.is_none() {
            unstamped.push(Unstamped {
                registry: image.host.clone(),
                repository: image.repository.clone(),
                digest: image.digest.clone(),
                tags: image.tags.clone(),
                managed_repository: image.managed,
                sbom: image.evidence.sbom.clone(),
                signed: image.evidence.signed(),
                scan: image.evidence.scan.clone(),
            });
            continue;
        }
        if !matches(image, query, cve_hits) {
            continue;
        }
        matched += 1;
        let a = artifact(image);
        let group = by_base
            .entry(a.base_digest.clone())
            .or_insert_with(|| BaseGroup {
                base_digest: a.base_digest.clone(),
                base_names: Vec::new(),
                artifacts: Vec::new(),
            });
        if !group.base_names.contains(&a.base_name) {
            group.base_names.push(a.base_name.clone());
            group.base_names.sort();
        }
        group.artifacts.push(a.clone());
        let owners = if a.owners.is_empty() {
            vec!["(no owner)".to_string()]
        } else {
            a.owners.clone()
        };
        for o in owners {
            by_owner.entry(o).or_default().push(a.clone());
        }
    }
    // Readers scan by repository and tag, not by digest.
    let order = |a: &Artifact, b: &Artifact| {
        (&a.registry, &a.repository, &a.tags).cmp(&(&b.registry, &b.repository, &b.tags))
    };
    let mut by_base: Vec<BaseGroup> = by_base.into_values().collect();
    for g in &mut by_base {
        g.artifacts.sort_by(order);
    }
    let by_owner: Vec<OwnerGroup> = by_owner
        .into_iter()
        .map(|(owner, mut artifacts)| {
            artifacts.sort_by(order);
            OwnerGroup { owner, artifacts }
        })
        .collect();
    unstamped.sort_by(|a: &Unstamped, b: &Unstamped| {
        (&a.registry, &a.repository, &a.tags).cmp(&(&b.registry, &b.repository, &b.tags))
    });
    let registries: BTreeSet<&str> = inventory
        .repositories
        .iter()
        .map(|r| r.registry.as_str())
        .collect();
    BlastRadius {
        format_version: FORMAT_VERSION.to_string(),
        query: query.clone(),
        scanned: Scanned {
            registries: registries.len(),
            repositories: inventory.repositories.len(),
            images: inventory.images.len(),
            tags: inventory.images.iter().map(|i| i.tags.len()).sum(),
        },
        matched,
        by_base_digest: by_base,
        by_owner,
        unstamped,
        requests,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_name_matches_repository_or_exact_tag() {
        let s = "docker.io/library/debian:12.5";
        assert!(base_name_matches(s, "docker.io/library/debian"));
        assert!(base_name_matches(s, s));
        assert!(!base_name_matches(s, "docker.io/library/deb"));
        assert!(!base_name_matches(s, "docker.io/library/debian:12"));
    }
}
