use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::config::{Credentials, RegistryEndpoint, RegistryEntry};
use crate::policy::resolved::{Origin, Source, TagRules, Variant};

fn settings() -> Settings {
    let mut s = Settings::default();
    s.registries.insert(
        "local".into(),
        RegistryEntry {
            name: "local".into(),
            endpoint: RegistryEndpoint::Http {
                host: "registry.local:5000".into(),
                prefix: None,
                tls_verify: false,
                ca_cert: None,
                credentials: Credentials::Ambient,
            },
            mirror_of: None,
            concurrency: 8,
        },
    );
    s.registries.insert(
        "ghcr".into(),
        RegistryEntry {
            name: "ghcr".into(),
            endpoint: RegistryEndpoint::Http {
                host: "ghcr.io".into(),
                prefix: Some("acme".into()),
                tls_verify: true,
                ca_cert: None,
                credentials: Credentials::Ambient,
            },
            mirror_of: None,
            concurrency: 8,
        },
    );
    s.registries.insert(
        "offline".into(),
        RegistryEntry {
            name: "offline".into(),
            endpoint: RegistryEndpoint::Layout {
                path: PathBuf::from("layouts/offline"),
            },
            mirror_of: None,
            concurrency: 8,
        },
    );
    s
}

fn dest(registry: &str, repository: &str) -> Destination {
    Destination {
        registry: registry.into(),
        repository: repository.into(),
    }
}

fn variant(name: &str, suffix: &str, transform: Vec<TransformStep>) -> Variant {
    Variant {
        name: name.into(),
        suffix: suffix.into(),
        transform,
    }
}

fn import(
    name: &str,
    tags: TagRules,
    variants: Vec<Variant>,
    destinations: Vec<Destination>,
) -> ResolvedImport {
    ResolvedImport {
        name: name.into(),
        tags,
        platforms: vec![],
        variants,
        destinations,
        transform: vec![],
        owners: vec!["group:default/platform".into()],
        vendor: Some("Example Platform Team".into()),
        archive: None,
        settle: Duration::from_secs(3600),
        recheck: Default::default(),
    }
}

fn policy(name: &str, repository: &str, imports: Vec<ResolvedImport>) -> ResolvedPolicy {
    ResolvedPolicy {
        name: name.into(),
        labels: BTreeMap::new(),
        origin: Origin {
            file: PathBuf::from(format!("policies/{name}.yaml")),
            line: 1,
            column: 1,
        },
        artifact_type: ArtifactType::Image,
        source: Source {
            registry: "docker.io".into(),
            repository: repository.into(),
        },
        deletion_mode: DeletionMode::Purge,
        imports,
    }
}

fn rules(include: &str, aliases: &[&str]) -> TagRules {
    TagRules {
        include_regex: Some(include.into()),
        semver_only: true,
        aliases: aliases.iter().map(|s| s.to_string()).collect(),
        ..TagRules::default()
    }
}

fn upstream() -> UpstreamTags {
    let mut u = UpstreamTags::new();
    let list = ["1.36.1", "1.37.0", "1.37.0-glibc", "latest", "musl"];
    u.insert(
        "docker.io",
        "library/busybox",
        list.iter().map(|s| s.to_string()).collect(),
    );
    u.insert(
        "docker.io",
        "library/alpine",
        vec!["3.20.1".into(), "3.19.4".into()],
    );
    u
}

fn busybox() -> ResolvedPolicy {
    let tz = TransformStep::SetTimezone {
        zone: "Europe/Paris".into(),
    };
    let mut stable = import(
        "stable",
        rules(r"^1\.3[67]\.\d+$", &["{major}.{minor}", "latest"]),
        vec![
            variant("default", "", vec![]),
            variant("eu", "-eu", vec![tz]),
        ],
        vec![dest("local", "demo/busybox"), dest("offline", "busybox")],
    );
    stable.transform = vec![];
    policy("busybox", "library/busybox", vec![stable])
}

fn addresses<'g>(nodes: impl Iterator<Item = &'g Node>) -> Vec<String> {
    nodes.map(|n| n.address().to_string()).collect()
}

/// An address from its text.
fn at(text: &str) -> Address {
    text.parse().unwrap()
}

#[test]
fn placements_and_aliases_per_variant_and_destination() {
    let g = compile(&[busybox()], &upstream(), &settings());
    let placements: Vec<String> = g.placements().map(|p| p.address.to_string()).collect();
    assert_eq!(
        placements,
        [
            "busybox/stable/default[registry.local:5000/demo/busybox:1.37.0]",
            "busybox/stable/default[registry.local:5000/demo/busybox:1.36.1]",
            "busybox/stable/default[offline/busybox:1.37.0]",
            "busybox/stable/default[offline/busybox:1.36.1]",
            "busybox/stable/eu[registry.local:5000/demo/busybox:1.37.0-eu]",
            "busybox/stable/eu[registry.local:5000/demo/busybox:1.36.1-eu]",
            "busybox/stable/eu[offline/busybox:1.37.0-eu]",
            "busybox/stable/eu[offline/busybox:1.36.1-eu]",
        ]
    );
    let aliases: Vec<(String, String)> = g
        .aliases()
        .map(|a| (a.address.to_string(), a.target.to_string()))
        .collect();
    let aliases: Vec<(&str, &str)> = aliases
        .iter()
        .map(|(a, t)| (a.as_str(), t.as_str()))
        .collect();
    assert_eq!(aliases.len(), 12);
    assert!(aliases.contains(&(
        "busybox/stable/eu[registry.local:5000/demo/busybox:1.36-eu]",
        "busybox/stable/eu[registry.local:5000/demo/busybox:1.36.1-eu]"
    )));
    assert!(aliases.contains(&(
        "busybox/stable/eu[offline/busybox:latest-eu]",
        "busybox/stable/eu[offline/busybox:1.37.0-eu]"
    )));
    assert!(aliases.contains(&(
        "busybox/stable/default[registry.local:5000/demo/busybox:latest]",
        "busybox/stable/default[registry.local:5000/demo/busybox:1.37.0]"
    )));
    // An alias depends on exactly its target.
    for (alias, target) in &aliases {
        assert_eq!(addresses(g.dependencies(&at(alias)).into_iter()), [*target]);
    }
    assert!(g.collisions().is_empty());
    assert!(g.warnings().is_empty(), "{:?}", g.warnings());
    let repos: Vec<(&str, &str, &str)> = g
        .repositories()
        .iter()
        .map(|r| {
            (
                r.registry.as_str(),
                r.display.as_str(),
                r.repository.as_str(),
            )
        })
        .collect();
    assert_eq!(
        repos,
        [
            ("local", "registry.local:5000", "demo/busybox"),
            ("offline", "offline", "busybox")
        ]
    );
}

#[test]
fn placement_fields_and_kind() {
    let g = compile(&[busybox()], &upstream(), &settings());
    let Some(Node::Placement(p)) = g.get(&at(
        "busybox/stable/eu[registry.local:5000/demo/busybox:1.37.0-eu]",
    )) else {
        panic!("placement missing");
    };
    assert_eq!(p.tag, "1.37.0-eu");
    assert_eq!(
        p.source,
        SourceRef {
            registry: "docker.io".into(),
            repository: "library/busybox".into(),
            tag: "1.37.0".into()
        }
    );
    assert_eq!(p.destination_host, "registry.local:5000");
    assert_eq!(p.kind(), PlacementKind::Build);
    assert_eq!(p.transform.len(), 1);
    assert_eq!(p.owners, ["group:default/platform"]);
    assert_eq!(p.settle, Duration::from_secs(3600));
    let Some(Node::Placement(copy)) = g.get(&at("busybox/stable/default[offline/busybox:1.36.1]"))
    else {
        panic!("placement missing");
    };
    assert_eq!(copy.kind(), PlacementKind::Copy);
    assert!(
        g.get(&at("busybox/stable/default[offline/busybox:9.9.9]"))
            .is_none()
    );
}

#[test]
fn transform_order_and_platform_filter() {
    let ca = TransformStep::InjectCa {
        certs: vec!["corp".into()],
    };
    let tz = TransformStep::SetTimezone { zone: "UTC".into() };
    let mut imp = import(
        "base",
        rules(r"^3\.20", &[]),
        vec![variant("default", "", vec![tz.clone()])],
        vec![dest("ghcr", "alpine")],
    );
    imp.transform = vec![ca.clone()];
    let mut platformed = import(
        "multi",
        rules(r"^3\.19", &[]),
        vec![variant("default", "", vec![])],
        vec![dest("ghcr", "alpine")],
    );
    platformed.platforms = vec![Platform {
        os: "linux".into(),
        architecture: "amd64".into(),
        variant: None,
    }];
    let g = compile(
        &[policy("alpine", "library/alpine", vec![imp, platformed])],
        &upstream(),
        &settings(),
    );
    let p: Vec<&Placement> = g.placements().collect();
    assert_eq!(
        p[0].address.to_string(),
        "alpine/base/default[ghcr.io/acme/alpine:3.20.1]"
    );
    assert_eq!(p[0].transform, [ca, tz]);
    assert_eq!(
        p[1].address.to_string(),
        "alpine/multi/default[ghcr.io/acme/alpine:3.19.4]"
    );
    assert_eq!(p[1].kind(), PlacementKind::Build);
}

#[test]
fn deterministic_order_and_topology() {
    let alpine = policy(
        "alpine",
        "library/alpine",
        vec![import(
            "all",
            rules(".", &["latest"]),
            vec![variant("default", "", vec![])],
            vec![dest("local", "alpine")],
        )],
    );
    let a = compile(&[busybox(), alpine.clone()], &upstream(), &settings());
    let b = compile(&[alpine, busybox()], &upstream(), &settings());
    assert_eq!(a.to_json(), b.to_json());
    assert_eq!(a.to_dot(), b.to_dot());
    assert_eq!(a.nodes().next().unwrap().address().policy_name(), "alpine");

    let order = a.topological_order();
    assert_eq!(order.len(), a.len());
    let position: BTreeMap<&Address, usize> = order
        .iter()
        .enumerate()
        .map(|(i, n)| (n.address(), i))
        .collect();
    for alias in a.aliases() {
        assert!(position[&alias.target] < position[&alias.address]);
    }
    // Compile order among ready nodes: alpine's placements, then its alias.
    assert_eq!(
        addresses(order.iter().copied().take(3)),
        [
            "alpine/all/default[registry.local:5000/alpine:3.20.1]",
            "alpine/all/default[registry.local:5000/alpine:3.19.4]",
            "alpine/all/default[registry.local:5000/alpine:latest]",
        ]
    );
    assert_eq!(a.matching(&at("busybox/stable/eu")).len(), 10);
    assert_eq!(a.matching(&at("busybox/stable")).len(), 20);
    assert!(a.matching(&at("busybox/stab")).is_empty());
    let one = "alpine/all/default[registry.local:5000/alpine:latest]";
    assert_eq!(addresses(a.matching(&at(one)).into_iter()), [one]);
}

#[test]
fn missing_upstream_and_selection_warnings() {
    let mut bb = busybox();
    bb.imports[0].tags.names = vec!["nope".into()];
    let nginx = policy("nginx", "library/nginx", vec![]);
    let g = compile(&[bb, nginx], &upstream(), &settings());
    let warnings: Vec<String> = g.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "busybox/stable: names: `nope` is not present upstream; skipped",
            "nginx: no upstream tag list for docker.io/library/nginx; nothing placed",
        ]
    );
    // Selecting nothing still manages the repository; a missing list does not.
    let mut none = busybox();
    none.imports[0].tags.include_regex = Some("^9".into());
    let mut nginx = policy("nginx", "library/nginx", vec![none.imports[0].clone()]);
    nginx.imports[0].destinations = vec![dest("local", "nginx")];
    let g = compile(&[none, nginx], &upstream(), &settings());
    assert!(g.is_empty());
    assert_eq!(g.repositories().len(), 2);
    assert!(g.repositories().iter().all(|r| r.policy == "busybox"));
}

#[test]
fn collisions_keep_the_first_writer() {
    // Two policies placing into the same repository; both select 1.37.0.
    let other = policy(
        "zz-other",
        "library/busybox",
        vec![import(
            "dup",
            rules(r"^1\.37\.0$", &["latest"]),
            vec![variant("default", "", vec![])],
            vec![dest("local", "demo/busybox")],
        )],
    );
    let g = compile(&[other, busybox()], &upstream(), &settings());
    assert_eq!(
        g.collisions(),
        [Collision {
            destination: "registry.local:5000/demo/busybox:1.37.0".into(),
            kept: at("busybox/stable/default[registry.local:5000/demo/busybox:1.37.0]"),
            dropped: at("zz-other/dup/default[registry.local:5000/demo/busybox:1.37.0]"),
        },]
    );
    // The alias of the dropped placement cannot be placed either.
    assert!(
        g.get(&at(
            "zz-other/dup/default[registry.local:5000/demo/busybox:latest]"
        ))
        .is_none()
    );
    assert!(g.warnings().iter().any(
        |w| w.address.to_string().starts_with("zz-other/dup/default")
            && w.message.contains("collision")
    ));
}

#[test]
fn renderers() {
    let g = compile(&[busybox()], &upstream(), &settings());
    let dot = g.to_dot();
    assert!(dot.starts_with("digraph desired {\n"));
    assert!(dot.contains(
        "\"busybox/stable/default[offline/busybox:latest]\" -> \"busybox/stable/default[offline/busybox:1.37.0]\";"
    ));
    assert!(dot.contains("transform: setTimezone"));

    let json: serde_json::Value = serde_json::from_str(&g.to_json()).unwrap();
    assert_eq!(json["format_version"], 1);
    let nodes = json["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), g.len());
    assert_eq!(nodes[0]["node"], "placement");
    assert_eq!(nodes[0]["kind"], "copy");
    assert_eq!(
        nodes[0]["address"],
        "busybox/stable/default[registry.local:5000/demo/busybox:1.37.0]"
    );
    assert_eq!(nodes[0]["settle"], 3600);
    assert_eq!(nodes[0]["source"]["tag"], "1.37.0");
    assert_eq!(json["edges"].as_array().unwrap().len(), g.aliases().count());
}
