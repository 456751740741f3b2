//! Throughput of tag selection and graph compilation on synthetic, registry-sized inputs.
//!
//! `cargo bench --bench select_graph` prints timings. Under `cargo test` (no `--bench`
//! argument) it runs each workload once on a small input, as a smoke test.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use houba::config::{Credentials, RegistryEndpoint, RegistryEntry, Settings};
use houba::graph::{UpstreamTags, compile};
use houba::policy::resolved::{
    ArtifactType, DeletionMode, Destination, Origin, ResolvedImport, ResolvedPolicy, Source,
    TagRules, TransformStep, Variant,
};
use houba::select::select_tags;

/// `n` tags shaped like a busy Docker Hub repository: versions, distro flavours, prereleases,
/// words and referrers fallback tags.
fn upstream_tags(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| match i % 8 {
            0 => format!("{}.{}.{}", i % 5, i % 40, i % 13),
            1 => format!("v{}.{}.{}", i % 5, i % 40, i % 13),
            2 => format!("{}.{}-alpine", i % 5, i % 40),
            3 => format!("{}.{}.{}-debian", i % 5, i % 40, i % 7),
            4 => format!("{}.{}.0-rc{}", i % 5, i % 40, i % 4),
            5 => format!("sha256-{:064x}", i),
            6 => format!("nightly-{i}"),
            _ => format!("{}.{}", i % 5, i % 40),
        })
        .collect()
}

fn rules() -> TagRules {
    TagRules {
        include_regex: Some(
            r"^v?(?P<ver>\d+\.\d+)(?:\.\d+)?(?:-(?P<distro>alpine|debian))?$".into(),
        ),
        exclude_regex: vec!["-rc".into()],
        semver_only: true,
        semver: Some(">=1, <4".into()),
        prerelease: false,
        latest: Some(50),
        names: vec!["nightly-6".into()],
        aliases: vec![
            "{major}.{minor}".into(),
            "{major}".into(),
            "latest".into(),
            "{distro}".into(),
        ],
        pins: BTreeMap::new(),
    }
}

fn settings() -> Settings {
    let mut s = Settings::default();
    for name in ["local", "backup"] {
        s.registries.insert(
            name.into(),
            RegistryEntry {
                name: name.into(),
                endpoint: RegistryEndpoint::Http {
                    host: format!("{name}.example:5000"),
                    prefix: None,
                    tls_verify: true,
                    ca_cert: None,
                    credentials: Credentials::Ambient,
                },
                mirror_of: None,
                concurrency: 8,
            },
        );
    }
    s
}

fn policies(count: usize) -> Vec<ResolvedPolicy> {
    (0..count)
        .map(|p| ResolvedPolicy {
            name: format!("policy-{p:04}"),
            labels: BTreeMap::new(),
            origin: Origin {
                file: PathBuf::from(format!("policies/{p}.yaml")),
                line: 1,
                column: 1,
            },
            artifact_type: ArtifactType::Image,
            source: Source {
                registry: "docker.io".into(),
                repository: format!("library/image-{p}"),
            },
            deletion_mode: DeletionMode::Purge,
            imports: vec![ResolvedImport {
                name: "main".into(),
                tags: rules(),
                platforms: vec![],
                variants: vec![
                    Variant {
                        name: "default".into(),
                        suffix: String::new(),
                        transform: vec![],
                    },
                    Variant {
                        name: "eu".into(),
                        suffix: "-eu".into(),
                        transform: vec![TransformStep::SetTimezone {
                            zone: "Europe/Paris".into(),
                        }],
                    },
                ],
                destinations: ["local", "backup"]
                    .iter()
                    .map(|r| Destination {
                        registry: r.to_string(),
                        repository: format!("mirror/image-{p}"),
                    })
                    .collect(),
                transform: vec![],
                owners: vec!["group:default/platform".into()],
                vendor: None,
                archive: None,
                settle: Duration::ZERO,
                recheck: Default::default(),
            }],
        })
        .collect()
}

fn time<T>(label: &str, runs: u32, mut f: impl FnMut() -> T) -> T {
    let mut out = f();
    let start = Instant::now();
    for _ in 0..runs {
        out = f();
    }
    let per = start.elapsed() / runs.max(1);
    println!("{label}: {per:?} per run ({runs} runs)");
    out
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (tag_count, policy_count, runs) = if bench {
        (10_000, 200, 10)
    } else {
        (200, 3, 1)
    };

    let tags = upstream_tags(tag_count);
    let sel = time(
        &format!("select_tags over {tag_count} upstream tags"),
        runs,
        || select_tags(&rules(), &tags),
    );
    println!(
        "  selected {} tags, {} aliases",
        sel.tags.len(),
        sel.aliases.len()
    );
    assert!(!sel.tags.is_empty());

    let policies = policies(policy_count);
    let mut upstream = UpstreamTags::new();
    let per_repo = upstream_tags(tag_count / 10);
    for p in &policies {
        upstream.insert(&p.source.registry, &p.source.repository, per_repo.clone());
    }
    let settings = settings();
    let graph = time(
        &format!(
            "compile {policy_count} policies × {} tags × 2 variants × 2 destinations",
            per_repo.len()
        ),
        runs,
        || compile(&policies, &upstream, &settings),
    );
    println!("  {} nodes", graph.len());
    time("topological_order", runs, || {
        graph.topological_order().len()
    });
    let json = time("to_json", runs, || graph.to_json());
    let dot = time("to_dot", runs, || graph.to_dot());
    println!("  json {} bytes, dot {} bytes", json.len(), dot.len());
}
