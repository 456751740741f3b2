//! Unit tests of the diff: every action and drift kind from live state alone.
use bytes::Bytes;

use super::*;
use crate::plan::model::{
    ActionKind, AliasReason, Finding, Operation, PruneMode, PruneReason, ReplaceReason,
};
use crate::policy::resolved::Archive;

const PREFIX: &str = "io.houba";

static NO_ARCHIVES: BTreeMap<(String, String), Archive> = BTreeMap::new();

fn upstream_manifest(layer: &str) -> Bytes {
    Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{c}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:{layer}","size":3}}]}}"#,
        c = "c".repeat(64),
        layer = layer.repeat(64)
    ))
}

fn loc(registry: &str, repo: &str, tag: &str) -> Location {
    Location {
        registry: registry.into(),
        display: registry.into(),
        repository: repo.into(),
        tag: tag.into(),
    }
}

fn addr(tag: &str) -> Address {
    Address::artifact(
        "busybox",
        "stable",
        "default",
        "local",
        "mirror/busybox",
        tag,
    )
}

fn placement(tag: &str) -> DesiredPlacement {
    DesiredPlacement {
        address: addr(tag),
        policy: "busybox".into(),
        import: "stable".into(),
        variant: "default".into(),
        destination: loc("local", "mirror/busybox", tag),
        source: loc("docker.io", "library/busybox", tag),
        pin: None,
        kind: PlacementKind::Copy,
        transform: vec![],
        platforms: vec![],
        recipe: None,
        owners: vec!["group:default/platform".into()],
        vendor: None,
        artifact_type: "image".into(),
        settle: Duration::ZERO,
    }
}

fn repo() -> ManagedRepository {
    ManagedRepository {
        registry: "local".into(),
        display: "local".into(),
        repository: "mirror/busybox".into(),
        policy: "busybox".into(),
        deletion_mode: DeletionMode::Purge,
    }
}

fn observe_source(live: &mut LiveState, tag: &str, layer: &str) -> SourceObservation {
    let manifest = upstream_manifest(layer);
    let obs = SourceObservation {
        digest: stamp::sha256_digest(&manifest),
        media_type: stamp::OCI_MANIFEST.into(),
        manifest,
        age: Some(Duration::from_secs(3600)),
    };
    live.sources.insert(
        ("docker.io".into(), "library/busybox".into(), tag.into()),
        obs.clone(),
    );
    obs
}

/// Place `p` as houba would, from the given source observation.
fn place(live: &mut LiveState, p: &DesiredPlacement, src: &SourceObservation) -> LiveTag {
    let a = desired_stamp(p, src).to_annotations(PREFIX);
    let m = stamp::stamp_manifest(&src.manifest, &src.media_type, &a, PREFIX).unwrap();
    let t = LiveTag {
        digest: m.digest,
        media_type: m.media_type,
        manifest: Bytes::from(m.bytes),
    };
    put(live, &p.destination.tag, t.clone());
    t
}

fn put(live: &mut LiveState, tag: &str, t: LiveTag) {
    live.destinations
        .entry(("local".into(), "mirror/busybox".into()))
        .or_default()
        .insert(tag.into(), t);
}

static NO_EVIDENCE: EvidencePlan = EvidencePlan {
    sbom: Vec::new(),
    signature: false,
    upstream: 0,
};

fn input<'a>(
    ps: &'a [DesiredPlacement],
    aliases: &'a [DesiredAlias],
    live: &'a LiveState,
    repositories: &'a [ManagedRepository],
    modes: &'a BTreeMap<String, DeletionMode>,
) -> DiffInput<'a> {
    DiffInput {
        placements: ps,
        aliases,
        repositories,
        unclaimed: &[],
        deletion_modes: modes,
        archives: &NO_ARCHIVES,
        now: 0,
        live,
        label_prefix: PREFIX,
        evidence: &NO_EVIDENCE,
    }
}

fn run(
    ps: &[DesiredPlacement],
    aliases: &[DesiredAlias],
    live: &LiveState,
) -> (Vec<Drift>, Vec<Action>, Vec<Note>) {
    let modes = BTreeMap::new();
    let out = diff(&input(ps, aliases, live, &[repo()], &modes));
    (out.drift, out.actions, out.notes)
}

fn kinds(actions: &[Action]) -> Vec<(ActionKind, String)> {
    actions
        .iter()
        .map(|a| (a.kind(), a.header.destination.tag.clone()))
        .collect()
}

#[test]
fn absent_tag_is_copied_and_placed_tag_costs_nothing() {
    let mut live = LiveState::default();
    live.destinations
        .insert(("local".into(), "mirror/busybox".into()), BTreeMap::new());
    let src = observe_source(&mut live, "1.37.0", "a");
    let p = placement("1.37.0");
    let (_, actions, _) = run(std::slice::from_ref(&p), &[], &live);
    assert_eq!(kinds(&actions), vec![(ActionKind::Copy, "1.37.0".into())]);
    let placed = place(&mut live, &p, &src);
    assert_eq!(actions[0].header.after.as_ref(), Some(&placed.digest));
    let (drift, actions, notes) = run(&[p], &[], &live);
    assert!(drift.is_empty() && actions.is_empty() && notes.is_empty());
}

#[test]
fn upstream_move_replaces_and_settle_withholds() {
    let mut live = LiveState::default();
    let old = observe_source(&mut live, "1.37.0", "a");
    let mut p = placement("1.37.0");
    place(&mut live, &p, &old);
    observe_source(&mut live, "1.37.0", "b");
    let (_, actions, _) = run(std::slice::from_ref(&p), &[], &live);
    assert_eq!(
        kinds(&actions),
        vec![(ActionKind::Replace, "1.37.0".into())]
    );
    assert!(matches!(
        actions[0].operation,
        Operation::Replace {
            reason: ReplaceReason::UpstreamMoved,
            ..
        }
    ));
    p.settle = Duration::from_secs(2 * 3600);
    let (_, actions, notes) = run(&[p], &[], &live);
    assert!(actions.is_empty());
    assert!(
        notes[0].message.contains("must be stable for 2h"),
        "{notes:?}"
    );
}

#[test]
fn owner_edit_is_a_restamp_and_prefix_change_too() {
    let mut live = LiveState::default();
    let src = observe_source(&mut live, "1.37.0", "a");
    let mut p = placement("1.37.0");
    place(&mut live, &p, &src);
    p.owners.push("group:default/security".into());
    let (drift, actions, _) = run(std::slice::from_ref(&p), &[], &live);
    assert!(drift.is_empty());
    assert_eq!(
        kinds(&actions),
        vec![(ActionKind::Restamp, "1.37.0".into())]
    );
    let Operation::Restamp { changed, .. } = &actions[0].operation else {
        panic!("{actions:?}")
    };
    assert_eq!(changed[0].key, "owners");

    let modes = BTreeMap::new();
    let ps = [placement("1.37.0")];
    let mut other_prefix = input(&ps, &[], &live, &[], &modes);
    let repos = [repo()];
    other_prefix.repositories = &repos;
    other_prefix.label_prefix = "com.example";
    let actions = diff(&other_prefix).actions;
    assert_eq!(
        kinds(&actions),
        vec![(ActionKind::Restamp, "1.37.0".into())]
    );
    let Operation::Restamp { changed, .. } = &actions[0].operation else {
        panic!("{actions:?}")
    };
    assert!(changed.iter().any(|c| c.key == "label.prefix"));
}

#[test]
fn foreign_unstamped_and_tampered_content_is_drift() {
    let mut live = LiveState::default();
    let src = observe_source(&mut live, "1.37.0", "a");
    let p = placement("1.37.0");
    // Unstamped content pushed over the managed tag.
    let foreign = upstream_manifest("f");
    put(
        &mut live,
        "1.37.0",
        LiveTag {
            digest: stamp::sha256_digest(&foreign),
            media_type: stamp::OCI_MANIFEST.into(),
            manifest: foreign,
        },
    );
    let (drift, actions, _) = run(std::slice::from_ref(&p), &[], &live);
    assert_eq!(drift[0].finding, Finding::Unstamped);
    assert_eq!(actions[0].kind(), ActionKind::Replace);
    // Stamped content whose layers were swapped: the stamp no longer matches.
    let other = observe_source(&mut live, "other", "e");
    let a = desired_stamp(&p, &src).to_annotations(PREFIX);
    let forged = stamp::stamp_manifest(&other.manifest, stamp::OCI_MANIFEST, &a, PREFIX).unwrap();
    put(
        &mut live,
        "1.37.0",
        LiveTag {
            digest: forged.digest,
            media_type: forged.media_type,
            manifest: Bytes::from(forged.bytes),
        },
    );
    let (drift, actions, _) = run(&[p], &[], &live);
    assert!(matches!(drift[0].finding, Finding::Tampered { .. }));
    assert_eq!(actions[0].kind(), ActionKind::Replace);
}

#[test]
fn pins_withhold_other_digests() {
    let mut live = LiveState::default();
    observe_source(&mut live, "1.37.0", "a");
    let mut p = placement("1.37.0");
    p.pin = Some(format!("sha256:{}", "0".repeat(64)));
    let (_, actions, notes) = run(&[p], &[], &live);
    assert!(actions.is_empty());
    assert!(notes[0].message.starts_with("withheld:"));
}

#[test]
fn aliases_move_only_when_needed_and_hand_moves_are_drift() {
    let mut live = LiveState::default();
    let s1 = observe_source(&mut live, "1.36.0", "a");
    let s2 = observe_source(&mut live, "1.37.0", "b");
    let p1 = placement("1.36.0");
    let p2 = placement("1.37.0");
    let t1 = place(&mut live, &p1, &s1);
    let alias = DesiredAlias {
        address: addr("latest"),
        destination: loc("local", "mirror/busybox", "latest"),
        target: p2.address.clone(),
    };
    let ps = [p1.clone(), p2.clone()];
    // A new highest member: the alias moves with it, not drift.
    put(&mut live, "latest", t1.clone());
    let (drift, actions, _) = run(&ps, std::slice::from_ref(&alias), &live);
    assert!(drift.is_empty(), "{drift:?}");
    assert_eq!(
        kinds(&actions),
        vec![
            (ActionKind::Copy, "1.37.0".into()),
            (ActionKind::Alias, "latest".into())
        ]
    );
    assert!(matches!(
        &actions[1].operation,
        Operation::Alias { reason: AliasReason::NewHighest, current_tag: Some(t), .. } if t == "1.36.0"
    ));
    assert_eq!(actions[1].header.depends_on, vec![p2.address.clone()]);
    let t2 = place(&mut live, &p2, &s2);
    live.destinations
        .get_mut(&("local".into(), "mirror/busybox".into()))
        .unwrap()
        .remove("latest");
    // Absent alias: created.
    let (_, actions, _) = run(&ps, std::slice::from_ref(&alias), &live);
    assert_eq!(kinds(&actions), vec![(ActionKind::Alias, "latest".into())]);
    assert!(matches!(
        actions[0].operation,
        Operation::Alias {
            reason: AliasReason::Absent,
            ..
        }
    ));
    // Right alias: free.
    put(&mut live, "latest", t2.clone());
    let (drift, actions, _) = run(&ps, std::slice::from_ref(&alias), &live);
    assert!(actions.is_empty() && drift.is_empty());
    // Moved by hand to another placed member: drift, and houba points it back.
    put(&mut live, "latest", t1);
    let (drift, actions, _) = run(&ps, std::slice::from_ref(&alias), &live);
    assert_eq!(
        drift[0].finding,
        Finding::AliasMoved {
            expected_tag: "1.37.0".into(),
            found_tag: Some("1.36.0".into())
        }
    );
    assert_eq!(
        crate::plan::render::drift_detail(&drift[0]),
        "alias latest was moved outside houba from 1.37.0 to 1.36.0; houba will point it back"
    );
    assert_eq!(kinds(&actions), vec![(ActionKind::Alias, "latest".into())]);
    // Pointing at something houba never placed: drift.
    let foreign = upstream_manifest("f");
    put(
        &mut live,
        "latest",
        LiveTag {
            digest: stamp::sha256_digest(&foreign),
            media_type: stamp::OCI_MANIFEST.into(),
            manifest: foreign,
        },
    );
    let (drift, actions, _) = run(&ps, &[alias], &live);
    assert!(matches!(
        drift[0].finding,
        Finding::AliasMoved {
            found_tag: None,
            ..
        }
    ));
    assert_eq!(actions.len(), 1);
}

#[test]
fn prune_touches_only_own_stamped_tags() {
    let mut live = LiveState::default();
    let s1 = observe_source(&mut live, "1.36.0", "a");
    let p1 = placement("1.36.0");
    place(&mut live, &p1, &s1);
    let foreign = upstream_manifest("f");
    put(
        &mut live,
        "hotfix",
        LiveTag {
            digest: stamp::sha256_digest(&foreign),
            media_type: stamp::OCI_MANIFEST.into(),
            manifest: foreign,
        },
    );
    put(
        &mut live,
        &format!("sha256-{}", "1".repeat(64)),
        LiveTag {
            digest: "sha256:x".into(),
            media_type: stamp::OCI_INDEX.into(),
            manifest: Bytes::from_static(b"{}"),
        },
    );
    // 1.36.0 is no longer desired.
    let (drift, actions, _) = run(&[], &[], &live);
    assert_eq!(kinds(&actions), vec![(ActionKind::Prune, "1.36.0".into())]);
    assert_eq!(
        actions[0].operation,
        Operation::Prune {
            mode: PruneMode::Delete,
            reason: PruneReason::NoLongerSelected
        }
    );
    assert_eq!(drift.len(), 1);
    assert_eq!(drift[0].finding, Finding::Bypass);
    assert_eq!(drift[0].location.tag, "hotfix");
}

#[test]
fn orphans_of_unclaimed_repositories_are_pruned_and_unstamped_tags_never() {
    let mut live = LiveState::default();
    let s1 = observe_source(&mut live, "1.36.0", "a");
    let p1 = placement("1.36.0");
    place(&mut live, &p1, &s1);
    let foreign = upstream_manifest("f");
    put(
        &mut live,
        "hand-pushed",
        LiveTag {
            digest: stamp::sha256_digest(&foreign),
            media_type: stamp::OCI_MANIFEST.into(),
            manifest: foreign,
        },
    );
    let unclaimed = [UnclaimedRepository {
        registry: "local".into(),
        display: "local".into(),
        repository: "mirror/busybox".into(),
    }];
    let mut modes = BTreeMap::new();
    let mut i = input(&[], &[], &live, &[], &modes);
    i.unclaimed = &unclaimed;
    let out = diff(&i);
    assert!(out.drift.is_empty(), "{:?}", out.drift);
    assert_eq!(
        kinds(&out.actions),
        vec![(ActionKind::Prune, "1.36.0".into())]
    );
    assert_eq!(
        out.actions[0].operation,
        Operation::Prune {
            mode: PruneMode::Mark,
            reason: PruneReason::Orphaned
        },
        "a policy that is gone: its tags are marked, never deleted"
    );
    modes.insert("busybox".to_string(), DeletionMode::Purge);
    let mut i = input(&[], &[], &live, &[], &modes);
    i.unclaimed = &unclaimed;
    assert_eq!(
        diff(&i).actions[0].operation,
        Operation::Prune {
            mode: PruneMode::Delete,
            reason: PruneReason::Orphaned
        },
        "a policy that moved its destination prunes in its own deletion mode"
    );
}

/// Place `tag` as houba would, from an upstream manifest created at `created`.
fn place_created(live: &mut LiveState, tag: &str, created: &str) {
    let manifest = Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{c}","size":2}},"layers":[],"annotations":{{"org.opencontainers.image.created":"{created}"}}}}"#,
        c = "c".repeat(64)
    ));
    let src = SourceObservation {
        digest: stamp::sha256_digest(&manifest),
        media_type: stamp::OCI_MANIFEST.into(),
        manifest,
        age: None,
    };
    place(live, &placement(tag), &src);
}

#[test]
fn archive_keeps_the_most_recent_and_the_young_dropped_tags() {
    let mut live = LiveState::default();
    place_created(&mut live, "1.34.0", "2024-01-01T00:00:00Z");
    place_created(&mut live, "1.35.0", "2024-02-01T00:00:00Z");
    place_created(&mut live, "1.36.0", "2024-03-01T00:00:00Z");
    place_created(&mut live, "1.37.0", "2024-04-01T00:00:00Z");
    let now = crate::oci::rfc3339_seconds("2024-04-11T00:00:00Z").unwrap();
    let modes = BTreeMap::new();
    let repos = [repo()];
    // Nothing is desired any more: without archive, everything is pruned.
    let out = diff(&input(&[], &[], &live, &repos, &modes));
    assert_eq!(out.actions.len(), 4);
    let archives = BTreeMap::from([(
        ("busybox".to_string(), "stable".to_string()),
        Archive {
            keep: Some(1),
            older_than_days: Some(45),
        },
    )]);
    let mut i = input(&[], &[], &live, &repos, &modes);
    i.archives = &archives;
    i.now = now;
    let out = diff(&i);
    // 1.37.0 is the most recent (keep 1); 1.36.0 is 41 days old (< 45); the rest go.
    assert_eq!(
        kinds(&out.actions),
        vec![
            (ActionKind::Prune, "1.34.0".into()),
            (ActionKind::Prune, "1.35.0".into())
        ]
    );
    let kept: Vec<String> = out.notes.iter().map(|n| n.message.clone()).collect();
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(kept.iter().any(|m| m.contains("archive.keep")), "{kept:?}");
    assert!(
        kept.iter()
            .any(|m| m.contains("archive.olderThanDays (45)")),
        "{kept:?}"
    );
}
