//! Unit tests of the diff: every action and drift kind from live state alone.
use super::*;

const PREFIX: &str = "io.houba";

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

fn placement(tag: &str) -> DesiredPlacement {
    DesiredPlacement {
        address: format!("busybox/stable/default[local/mirror/busybox:{tag}]"),
        policy: "busybox".into(),
        import: "stable".into(),
        variant: "default".into(),
        destination: loc("local", "mirror/busybox", tag),
        source: loc("docker.io", "library/busybox", tag),
        pin: None,
        kind: PlacementKind::Copy,
        steps: vec![],
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

fn run(
    ps: &[DesiredPlacement],
    aliases: &[DesiredAlias],
    live: &LiveState,
) -> (Vec<Drift>, Vec<Action>, Vec<Note>) {
    diff(&DiffInput {
        placements: ps,
        aliases,
        repositories: &[repo()],
        live,
        label_prefix: PREFIX,
    })
}

fn kinds(actions: &[Action]) -> Vec<(ActionKind, String)> {
    actions
        .iter()
        .map(|a| (a.action, a.destination.tag.clone()))
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
    assert_eq!(actions[0].after.as_ref(), Some(&placed.digest));
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
    assert_eq!(actions[0].reasons, vec!["the upstream digest moved"]);
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
    assert_eq!(actions[0].changes[0].attribute, "owners");

    let (_, actions, _) = diff(&DiffInput {
        placements: &[placement("1.37.0")],
        aliases: &[],
        repositories: &[repo()],
        live: &live,
        label_prefix: "com.example",
    });
    assert_eq!(
        kinds(&actions),
        vec![(ActionKind::Restamp, "1.37.0".into())]
    );
    assert!(
        actions[0]
            .changes
            .iter()
            .any(|c| c.attribute == "label.prefix")
    );
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
    assert_eq!(drift[0].kind, DriftKind::Unstamped);
    assert_eq!(actions[0].action, ActionKind::Replace);
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
    assert_eq!(drift[0].kind, DriftKind::Tampered);
    assert_eq!(actions[0].action, ActionKind::Replace);
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
    let t2 = place(&mut live, &p2, &s2);
    let alias = DesiredAlias {
        address: "busybox/stable/default[local/mirror/busybox:latest]".into(),
        destination: loc("local", "mirror/busybox", "latest"),
        target: p2.address.clone(),
    };
    let ps = [p1.clone(), p2.clone()];
    // Absent alias: planned.
    let (_, actions, _) = run(&ps, std::slice::from_ref(&alias), &live);
    assert_eq!(kinds(&actions), vec![(ActionKind::Alias, "latest".into())]);
    // Right alias: free.
    put(&mut live, "latest", t2.clone());
    let (drift, actions, _) = run(&ps, std::slice::from_ref(&alias), &live);
    assert!(actions.is_empty() && drift.is_empty());
    // Pointing at an older member: moves, not drift.
    put(&mut live, "latest", t1);
    let (drift, actions, _) = run(&ps, std::slice::from_ref(&alias), &live);
    assert!(drift.is_empty());
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
    assert_eq!(drift[0].kind, DriftKind::AliasMoved);
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
    assert_eq!(actions[0].prune_mode, Some(PruneMode::Delete));
    assert_eq!(drift.len(), 1);
    assert_eq!(drift[0].kind, DriftKind::Bypass);
    assert_eq!(drift[0].location.tag, "hotfix");
}
