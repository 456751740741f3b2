//! Observing the evidence of placed content for the plan. A digest the evidence cache knows
//! complete costs no request (the warm no-op stays at its floor); otherwise its referrers are
//! listed once and, when complete, the cache learns it. `deep` lists every digest, finding
//! evidence deleted outside houba even when the cache believed it complete.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::collect::{EvidenceCache, EvidenceError};
use super::placement::{Wanted, live_missing, subjects};
use crate::live::{EvidenceGap, TagKey};
use crate::registry::{Descriptor, Registry};

/// One placed digest to check: roster entry, repository, the manifest's descriptor and bytes.
pub struct Placed<'a> {
    /// Roster entry name.
    pub registry_key: &'a str,
    /// The client.
    pub registry: &'a dyn Registry,
    /// Repository path in the registry.
    pub repository: &'a str,
    /// The tagged manifest's descriptor.
    pub top: Descriptor,
    /// Its bytes.
    pub manifest: &'a Bytes,
}

/// The gaps of every placed digest that lacks evidence, keyed by its top digest.
pub async fn observe(
    placed: &[Placed<'_>],
    cache: &EvidenceCache,
    wanted: &Wanted,
    deep: bool,
) -> Result<BTreeMap<TagKey, EvidenceGap>, EvidenceError> {
    let mut gaps = BTreeMap::new();
    let kinds = wanted.kinds();
    if kinds.is_empty() {
        return Ok(gaps);
    }
    for p in placed {
        let all = subjects(&p.top, p.manifest);
        if !deep
            && super::placement::complete_in_cache(
                cache,
                p.registry_key,
                p.repository,
                &all,
                wanted,
            )
        {
            continue;
        }
        let missing = live_missing(p.registry, p.repository, &all, wanted).await?;
        let mut gap = EvidenceGap::default();
        for subject in &all {
            let recorded = cache.attached(p.registry_key, p.repository, &subject.digest);
            let Some(lacks) = missing.get(&subject.digest) else {
                cache.record_attached(p.registry_key, p.repository, &subject.digest, &kinds);
                continue;
            };
            for format in &lacks.sbom {
                let name = format.name().to_owned();
                if recorded.contains(&format!("sbom:{name}")) && !gap.vanished_sbom.contains(&name)
                {
                    gap.vanished_sbom.push(name.clone());
                }
                if !gap.missing_sbom.contains(&name) {
                    gap.missing_sbom.push(name);
                }
            }
            if lacks.signature {
                gap.missing_signature = true;
                gap.vanished_signature |= recorded.iter().any(|k| k == "signature");
            }
            // What the cache said is no longer true; the attach will record it again.
            cache.forget_attached(p.registry_key, p.repository, &subject.digest);
        }
        if gap != EvidenceGap::default() {
            let order = |f: &String| (f != "spdx", f.clone());
            gap.missing_sbom.sort_by_key(order);
            gap.vanished_sbom.sort_by_key(order);
            gaps.insert(
                (
                    p.registry_key.to_owned(),
                    p.repository.to_owned(),
                    p.top.digest.clone(),
                ),
                gap,
            );
        }
    }
    Ok(gaps)
}
