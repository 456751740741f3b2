//! Narrowing a run: shards (which policies a job covers) and `--target` addresses.

use std::collections::BTreeSet;

use super::model::{Action, Address, Drift, Note};

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

/// Whether an address is selected by any of `targets` (no targets: everything).
pub fn selected(address: &Address, targets: &[Address]) -> bool {
    targets.is_empty() || targets.iter().any(|t| address.is_within(t))
}

/// Keep the actions selected by `targets` and everything they depend on; keep the drift and
/// notes whose address is selected. No targets: everything.
pub fn select_targets(
    actions: Vec<Action>,
    drift: Vec<Drift>,
    notes: Vec<Note>,
    targets: &[Address],
) -> (Vec<Action>, Vec<Drift>, Vec<Note>) {
    if targets.is_empty() {
        return (actions, drift, notes);
    }
    let mut keep: BTreeSet<Address> = actions
        .iter()
        .filter(|a| selected(&a.header.address, targets))
        .map(|a| a.header.address.clone())
        .collect();
    // Dependencies of kept actions, transitively.
    loop {
        let before = keep.len();
        for a in &actions {
            if keep.contains(&a.header.address) {
                keep.extend(a.header.depends_on.iter().cloned());
            }
        }
        if keep.len() == before {
            break;
        }
    }
    let actions = actions
        .into_iter()
        .filter(|a| keep.contains(&a.header.address))
        .collect();
    let drift = drift
        .into_iter()
        .filter(|d| d.address.as_ref().is_some_and(|a| selected(a, targets)))
        .collect();
    let notes = notes
        .into_iter()
        .filter(|n| selected(&n.address, targets))
        .collect();
    (actions, drift, notes)
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
}
