//! Narrowing a run: shards (which policies a job covers) and `--target` addresses.

use std::collections::BTreeSet;

use super::model::{Action, Drift};

/// FNV-1a 64: stable across platforms, releases and runs (std's hasher is not), so a policy
/// stays in the same shard for as long as its name does.
pub fn stable_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Whether a policy belongs to shard `index` of `count`.
pub fn in_shard(policy: &str, index: u64, count: u64) -> bool {
    count <= 1 || stable_hash(policy) % count == index
}

/// Whether an address is selected by a `--target`: the full address, or a prefix ending at a
/// path segment (`busybox`, `busybox/stable`, `busybox/stable/eu`).
pub fn matches_target(address: &str, target: &str) -> bool {
    if address == target {
        return true;
    }
    address
        .strip_prefix(target)
        .is_some_and(|rest| rest.starts_with('/') || rest.starts_with('['))
}

/// Keep the actions selected by `targets` and everything they depend on; keep the drift whose
/// address is selected. No targets: everything.
pub fn select_targets(
    actions: Vec<Action>,
    drift: Vec<Drift>,
    targets: &[String],
) -> (Vec<Action>, Vec<Drift>) {
    if targets.is_empty() {
        return (actions, drift);
    }
    let hit = |a: &str| targets.iter().any(|t| matches_target(a, t));
    let mut keep: BTreeSet<String> = actions
        .iter()
        .filter(|a| hit(&a.address))
        .map(|a| a.address.clone())
        .collect();
    // Dependencies of kept actions, transitively.
    loop {
        let before = keep.len();
        for a in &actions {
            if keep.contains(&a.address) {
                keep.extend(a.depends_on.iter().cloned());
            }
        }
        if keep.len() == before {
            break;
        }
    }
    let actions = actions
        .into_iter()
        .filter(|a| keep.contains(&a.address))
        .collect();
    let drift = drift.into_iter().filter(|d| hit(&d.address)).collect();
    (actions, drift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable_and_shards_partition() {
        assert_eq!(stable_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
        let names: Vec<String> = (0..100).map(|i| format!("policy-{i}")).collect();
        for n in &names {
            assert_eq!((0..4).filter(|i| in_shard(n, *i, 4)).count(), 1);
        }
    }

    #[test]
    fn targets_match_on_segment_boundaries() {
        let a = "busybox/stable/default[local/mirror/busybox:1.37.0]";
        assert!(matches_target(a, "busybox"));
        assert!(matches_target(a, "busybox/stable"));
        assert!(matches_target(a, "busybox/stable/default"));
        assert!(matches_target(a, a));
        assert!(!matches_target(a, "busy"));
        assert!(!matches_target(a, "busybox/stab"));
    }
}
