//! Which upstream tags a run may leave unchecked (`tags.recheck`). Pure: the records of past
//! checks, the live destination tags and "now" come in as inputs.
//!
//! An upstream tag is left unchecked only when every placement made from it agrees:
//!
//! - its import's rule is not `always`, and the last recorded check is not due yet;
//! - its destination tag holds content stamped for that placement (policy, import, variant)
//!   from the digest the last check saw: the tag is placed and was up to date then;
//! - a pin, if any, names that same digest.
//!
//! Anything else (no record, an absent or foreign destination tag, an upstream move seen but
//! not yet applied) makes the tag due, so an empty cache checks everything.

use std::collections::BTreeMap;

use crate::graph::Placement;
use crate::live::{LiveTag, RepositoryKey, TagKey, UpstreamCheck};
use crate::stamp::{self, Stamp};

/// The upstream tags not due for a check, each with the digest recorded at its last check
/// (what the diff plans against in place of a fresh HEAD).
pub fn not_due<'a>(
    placements: impl IntoIterator<Item = &'a Placement>,
    destinations: &BTreeMap<RepositoryKey, BTreeMap<String, LiveTag>>,
    checks: &BTreeMap<TagKey, UpstreamCheck>,
    now: u64,
    label_prefix: &str,
) -> BTreeMap<TagKey, String> {
    // Per upstream tag: whether every placement made from it may skip the check.
    let mut verdicts: BTreeMap<TagKey, bool> = BTreeMap::new();
    for p in placements {
        let key = (
            p.source.registry.clone(),
            p.source.repository.clone(),
            p.source.tag.clone(),
        );
        let skip = checks
            .get(&key)
            .is_some_and(|check| may_skip(p, check, destinations, now, label_prefix));
        verdicts
            .entry(key)
            .and_modify(|all| *all &= skip)
            .or_insert(skip);
    }
    verdicts
        .into_iter()
        .filter(|(_, skip)| *skip)
        .filter_map(|(key, _)| {
            let digest = checks.get(&key)?.digest.clone();
            Some((key, digest))
        })
        .collect()
}

fn may_skip(
    p: &Placement,
    check: &UpstreamCheck,
    destinations: &BTreeMap<RepositoryKey, BTreeMap<String, LiveTag>>,
    now: u64,
    label_prefix: &str,
) -> bool {
    if p.recheck.due(check.checked, now) {
        return false;
    }
    if p.pin.as_ref().is_some_and(|pin| *pin != check.digest) {
        return false;
    }
    let Some(live) = destinations
        .get(&(
            p.destination.registry.clone(),
            p.destination.repository.clone(),
        ))
        .and_then(|tags| tags.get(&p.tag))
    else {
        return false;
    };
    let Some((found, _)) = stamp::manifest_annotations(&live.manifest)
        .ok()
        .and_then(|a| Stamp::detect(&a, label_prefix))
    else {
        return false;
    };
    (
        found.policy.as_str(),
        found.import.as_str(),
        found.variant.as_str(),
    ) == (p.policy.as_str(), p.import.as_str(), p.variant.as_str())
        && found.base_digest == check.digest
}

/// Upstream tags skipped, per upstream registry.
pub fn count_by_registry<'a>(
    skipped: impl IntoIterator<Item = &'a TagKey>,
) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (registry, _, _) in skipped {
        *out.entry(registry.clone()).or_insert(0) += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::address::Address;
    use crate::graph::SourceRef;
    use crate::policy::resolved::{ArtifactType, DeletionMode, Destination, Recheck};

    const DAY: u64 = 86_400;
    const UPSTREAM: &str =
        "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const MOVED: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn placement(tag: &str, import: &str, recheck: Recheck) -> Placement {
        Placement {
            address: Address::artifact("busybox", import, "default", "r", "mirror/busybox", tag),
            policy: "busybox".into(),
            import: import.into(),
            variant: "default".into(),
            destination: Destination {
                registry: "dest".into(),
                repository: "mirror/busybox".into(),
            },
            destination_host: "r".into(),
            tag: tag.into(),
            source: SourceRef {
                registry: "docker.io".into(),
                repository: "library/busybox".into(),
                tag: tag.into(),
            },
            pin: None,
            artifact_type: ArtifactType::Image,
            platforms: vec![],
            transform: vec![],
            owners: vec![],
            vendor: None,
            deletion_mode: DeletionMode::Purge,
            settle: Duration::ZERO,
            recheck,
        }
    }

    /// A destination tag stamped for `import`, placed from upstream `base`.
    fn stamped(import: &str, base: &str) -> LiveTag {
        let s = Stamp {
            source: "docker.io/library/busybox".into(),
            base_name: "docker.io/library/busybox:1.37.0".into(),
            base_digest: base.into(),
            title: "busybox".into(),
            vendor: None,
            revision: None,
            created: None,
            policy: "busybox".into(),
            import: import.into(),
            variant: "default".into(),
            owners: vec![],
            artifact_type: "image".into(),
            transform_steps: vec![],
            recipe: None,
            pruned: false,
        };
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "annotations": s.to_annotations("io.houba"),
        });
        LiveTag {
            digest: MOVED.into(),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            manifest: Bytes::from(serde_json::to_vec(&manifest).unwrap()),
        }
    }

    fn live(tags: &[(&str, LiveTag)]) -> BTreeMap<RepositoryKey, BTreeMap<String, LiveTag>> {
        BTreeMap::from([(
            ("dest".to_string(), "mirror/busybox".to_string()),
            tags.iter()
                .map(|(t, l)| (t.to_string(), l.clone()))
                .collect(),
        )])
    }

    fn key(tag: &str) -> TagKey {
        ("docker.io".into(), "library/busybox".into(), tag.into())
    }

    fn checked(tag: &str, digest: &str, at: u64) -> BTreeMap<TagKey, UpstreamCheck> {
        BTreeMap::from([(
            key(tag),
            UpstreamCheck {
                digest: digest.into(),
                checked: at,
            },
        )])
    }

    #[test]
    fn a_placed_tag_inside_its_window_is_not_due() {
        let p = placement(
            "1.37.0",
            "releases",
            Recheck::Every(Duration::from_secs(DAY)),
        );
        let dest = live(&[("1.37.0", stamped("releases", UPSTREAM))]);
        let now = 10 * DAY;
        let skip = not_due(
            [&p],
            &dest,
            &checked("1.37.0", UPSTREAM, now - 3600),
            now,
            "io.houba",
        );
        assert_eq!(skip.get(&key("1.37.0")).map(String::as_str), Some(UPSTREAM));
        let late = not_due(
            [&p],
            &dest,
            &checked("1.37.0", UPSTREAM, now - DAY),
            now,
            "io.houba",
        );
        assert!(late.is_empty(), "the window has passed");
    }

    #[test]
    fn anything_but_a_placed_up_to_date_tag_is_due() {
        let never = placement("1.37.0", "releases", Recheck::Never);
        let now = 10 * DAY;
        let record = checked("1.37.0", UPSTREAM, 1);
        let placed = live(&[("1.37.0", stamped("releases", UPSTREAM))]);
        assert_eq!(
            not_due([&never], &placed, &record, now, "io.houba").len(),
            1
        );
        assert!(
            not_due([&never], &placed, &BTreeMap::new(), now, "io.houba").is_empty(),
            "no record (an empty cache)"
        );
        assert!(
            not_due([&never], &live(&[]), &record, now, "io.houba").is_empty(),
            "the destination tag is absent"
        );
        let behind = live(&[("1.37.0", stamped("releases", MOVED))]);
        assert!(
            not_due([&never], &behind, &record, now, "io.houba").is_empty(),
            "the last check saw content the destination does not hold (planned, not applied)"
        );
        let foreign = live(&[("1.37.0", stamped("other", UPSTREAM))]);
        assert!(not_due([&never], &foreign, &record, now, "io.houba").is_empty());
        let mut pinned = never.clone();
        pinned.pin = Some(MOVED.into());
        assert!(not_due([&pinned], &placed, &record, now, "io.houba").is_empty());
        let always = placement("1.37.0", "releases", Recheck::Always);
        assert!(not_due([&always], &placed, &record, now, "io.houba").is_empty());
    }

    #[test]
    fn one_placement_due_makes_the_upstream_tag_due() {
        let now = 10 * DAY;
        let record = checked("1.37.0", UPSTREAM, 1);
        let dest = live(&[("1.37.0", stamped("releases", UPSTREAM))]);
        let never = placement("1.37.0", "releases", Recheck::Never);
        let mut elsewhere = never.clone();
        elsewhere.destination.repository = "other/busybox".into();
        assert!(
            not_due([&never, &elsewhere], &dest, &record, now, "io.houba").is_empty(),
            "the second destination is not placed yet"
        );
        assert_eq!(
            count_by_registry(not_due([&never], &dest, &record, now, "io.houba").keys()),
            BTreeMap::from([("docker.io".to_string(), 1)])
        );
    }
}
