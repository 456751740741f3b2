//! The desired graph: every artifact the policies ask for, as a DAG of depends-on edges.
//!
//! Pure: compiled from resolved policies, upstream tag lists and the registry roster. A
//! placement puts one upstream tag at one destination tag (copied or rebuilt); an alias is a
//! moving tag that must point at a placement and depends on it.

mod render;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use serde::{Deserialize, Serialize};

pub use crate::address::Address;
use crate::config::Settings;
use crate::policy::resolved::{
    ArtifactType, DeletionMode, Destination, Platform, Recheck, ResolvedImport, ResolvedPolicy,
    TransformStep,
};
use crate::select::select_tags;

/// Upstream tag lists, keyed by the literal upstream host and repository a policy names
/// (`docker.io`, `library/busybox`), whatever mirror the roster reads them through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamTags {
    repos: BTreeMap<(String, String), Vec<String>>,
}

impl UpstreamTags {
    /// No tag list yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The tags of `registry`/`repository`.
    pub fn insert(
        &mut self,
        registry: impl Into<String>,
        repository: impl Into<String>,
        tags: Vec<String>,
    ) {
        self.repos
            .insert((registry.into(), repository.into()), tags);
    }

    /// The tags of `registry`/`repository`, when read.
    pub fn get(&self, registry: &str, repository: &str) -> Option<&[String]> {
        self.repos
            .get(&(registry.to_string(), repository.to_string()))
            .map(Vec::as_slice)
    }
}

/// Where a placement's content comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRef {
    /// Literal upstream host as the policy writes it (`docker.io`).
    pub registry: String,
    /// Upstream repository path.
    pub repository: String,
    /// Upstream tag.
    pub tag: String,
}

/// How a placement is produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlacementKind {
    /// Bytes copied as they are: digests preserved.
    Copy,
    /// Rebuilt: transform steps or a platform filter change the content, hence the digest.
    Build,
}

/// One upstream tag placed at one destination tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    /// `<policy>/<import>/<variant>[<display host>/<dest-repo>:<dest tag>]`
    pub address: Address,
    /// The policy.
    pub policy: String,
    /// The import.
    pub import: String,
    /// The variant.
    pub variant: String,
    /// Roster entry and repository of the destination.
    pub destination: Destination,
    /// The destination registry as shown in addresses (`host[/prefix]`, or a layout entry's
    /// name).
    pub destination_host: String,
    /// Destination tag: the upstream tag plus the variant's suffix.
    pub tag: String,
    /// The upstream tag placed.
    pub source: SourceRef,
    /// Digest the upstream tag is pinned to, if any.
    pub pin: Option<String>,
    /// What kind of artifact (`image`, `helm-chart`, …).
    pub artifact_type: ArtifactType,
    /// Empty: every platform upstream has.
    pub platforms: Vec<Platform>,
    /// Import steps, then the variant's.
    pub transform: Vec<TransformStep>,
    /// Owners (Backstage entity refs).
    pub owners: Vec<String>,
    /// Vendor stamped on the image, when the import names one.
    pub vendor: Option<String>,
    /// How tags the policy no longer selects are pruned.
    pub deletion_mode: DeletionMode,
    #[serde(with = "seconds")]
    /// How long a moved upstream digest must stay before it is followed.
    pub settle: Duration,
    /// How often the upstream tag is checked again once placed.
    #[serde(default, skip_serializing_if = "Recheck::is_always")]
    pub recheck: Recheck,
}

impl Placement {
    /// Copied as it is, or rebuilt (steps or a platform filter).
    pub fn kind(&self) -> PlacementKind {
        if self.transform.is_empty() && self.platforms.is_empty() {
            PlacementKind::Copy
        } else {
            PlacementKind::Build
        }
    }
}

/// A moving tag pointing at the digest of one placement of the same policy, import, variant
/// and destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alias {
    /// `<policy>/<import>/<variant>[<display host>/<dest-repo>:<alias tag>]`
    pub address: Address,
    /// The policy.
    pub policy: String,
    /// The import.
    pub import: String,
    /// The variant.
    pub variant: String,
    /// Roster entry and repository of the destination.
    pub destination: Destination,
    /// The destination registry as shown in addresses.
    pub destination_host: String,
    /// The alias tag, variant suffix included.
    pub tag: String,
    /// Address of the placement the alias points at.
    pub target: Address,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "node", rename_all = "snake_case")]
/// A node of the desired graph.
pub enum Node {
    /// An upstream tag placed at a destination tag.
    Placement(Placement),
    /// A moving tag pointing at a placement.
    Alias(Alias),
}

impl Node {
    /// The node's address.
    pub fn address(&self) -> &Address {
        match self {
            Node::Placement(p) => &p.address,
            Node::Alias(a) => &a.address,
        }
    }

    fn destination_key(&self) -> (&str, &str, &str) {
        match self {
            Node::Placement(p) => (&p.destination.registry, &p.destination.repository, &p.tag),
            Node::Alias(a) => (&a.destination.registry, &a.destination.repository, &a.tag),
        }
    }
}

/// A selection or compile warning about a policy, an import or one artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    /// What it concerns.
    pub address: Address,
    /// One sentence.
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.address, self.message)
    }
}

/// Two desired artifacts that would write the same destination tag. The first in compile
/// order is kept; the other is left out of the graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Collision {
    /// `<display host>/<repository>:<tag>`
    pub destination: String,
    /// The artifact listed first, kept.
    pub kept: Address,
    /// The other one, left out.
    pub dropped: Address,
}

/// The compiled desired state. Edges point from a node to what it depends on.
#[derive(Debug, Clone)]
pub struct DesiredGraph {
    graph: DiGraph<Node, ()>,
    by_address: BTreeMap<Address, NodeIndex>,
    warnings: Vec<Warning>,
    collisions: Vec<Collision>,
    repositories: Vec<ManagedRepository>,
}

/// A destination repository and the policy that owns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedRepository {
    /// Roster entry name.
    pub registry: String,
    /// `host[/prefix]`, or a layout entry's name.
    pub display: String,
    /// Repository path in the registry.
    pub repository: String,
    /// The policy that claims it.
    pub policy: String,
    /// How the policy prunes.
    pub deletion_mode: DeletionMode,
}

/// Compiles resolved policies and upstream tag lists into the desired graph.
///
/// Deterministic: policies are visited by name, then imports, variants, destinations and
/// selected tags in their own order.
pub fn compile(
    policies: &[ResolvedPolicy],
    upstream: &UpstreamTags,
    settings: &Settings,
) -> DesiredGraph {
    let mut out = DesiredGraph {
        graph: DiGraph::new(),
        by_address: BTreeMap::new(),
        warnings: Vec::new(),
        collisions: Vec::new(),
        repositories: Vec::new(),
    };
    // Destination tag → address of the node writing it, to detect collisions.
    let mut writers: BTreeMap<(String, String, String), Address> = BTreeMap::new();
    let mut ordered: Vec<&ResolvedPolicy> = policies.iter().collect();
    ordered.sort_by(|a, b| a.name.cmp(&b.name));

    for policy in ordered {
        let source = &policy.source;
        let Some(tags) = upstream.get(&source.registry, &source.repository) else {
            out.warnings.push(Warning {
                address: Address::policy(&policy.name),
                message: format!(
                    "no upstream tag list for {}/{}; nothing placed",
                    source.registry, source.repository
                ),
            });
            continue;
        };
        for import in &policy.imports {
            for destination in &import.destinations {
                let taken = out.repositories.iter().any(|r| {
                    r.registry == destination.registry && r.repository == destination.repository
                });
                if !taken {
                    out.repositories.push(ManagedRepository {
                        registry: destination.registry.clone(),
                        display: destination_host(settings, destination),
                        repository: destination.repository.clone(),
                        policy: policy.name.clone(),
                        deletion_mode: policy.deletion_mode,
                    });
                }
            }
            let selection = select_tags(&import.tags, tags);
            out.warnings
                .extend(selection.warnings.iter().map(|w| Warning {
                    address: Address::import(&policy.name, &import.name),
                    message: w.clone(),
                }));
            for variant in &import.variants {
                for destination in &import.destinations {
                    let host = destination_host(settings, destination);
                    let at = Site {
                        policy,
                        import,
                        variant_name: &variant.name,
                        destination,
                        host: &host,
                    };
                    // Upstream tag → placement index, for this variant and destination.
                    let mut placed: BTreeMap<&str, NodeIndex> = BTreeMap::new();
                    for selected in &selection.tags {
                        let mut transform = import.transform.clone();
                        transform.extend(variant.transform.iter().cloned());
                        let tag = format!("{}{}", selected.tag, variant.suffix);
                        let node = Node::Placement(Placement {
                            address: at.address(&tag),
                            policy: policy.name.clone(),
                            import: import.name.clone(),
                            variant: variant.name.clone(),
                            destination: destination.clone(),
                            destination_host: host.clone(),
                            tag,
                            source: SourceRef {
                                registry: source.registry.clone(),
                                repository: source.repository.clone(),
                                tag: selected.tag.clone(),
                            },
                            pin: selected.pin.clone(),
                            artifact_type: policy.artifact_type,
                            platforms: import.platforms.clone(),
                            transform,
                            owners: import.owners.clone(),
                            vendor: import.vendor.clone(),
                            deletion_mode: policy.deletion_mode,
                            settle: import.settle,
                            recheck: import.recheck,
                        });
                        if let Some(idx) = out.add(node, &mut writers) {
                            placed.insert(&selected.tag, idx);
                        }
                    }
                    for alias in &selection.aliases {
                        let tag = format!("{}{}", alias.alias, variant.suffix);
                        let address = at.address(&tag);
                        let Some(&target) = placed.get(alias.target.as_str()) else {
                            out.warnings.push(Warning {
                                address,
                                message: format!(
                                    "its target `{}` was not placed (collision); alias left out",
                                    alias.target
                                ),
                            });
                            continue;
                        };
                        let node = Node::Alias(Alias {
                            address,
                            policy: policy.name.clone(),
                            import: import.name.clone(),
                            variant: variant.name.clone(),
                            destination: destination.clone(),
                            destination_host: host.clone(),
                            tag,
                            target: out.graph[target].address().clone(),
                        });
                        if let Some(idx) = out.add(node, &mut writers) {
                            out.graph.add_edge(idx, target, ());
                        }
                    }
                }
            }
        }
    }
    out
}

/// The coordinates shared by every node of one (policy, import, variant, destination).
struct Site<'a> {
    policy: &'a ResolvedPolicy,
    import: &'a ResolvedImport,
    variant_name: &'a str,
    destination: &'a Destination,
    host: &'a str,
}

impl Site<'_> {
    fn address(&self, tag: &str) -> Address {
        Address::artifact(
            &self.policy.name,
            &self.import.name,
            self.variant_name,
            self.host,
            &self.destination.repository,
            tag,
        )
    }
}

/// `host[/prefix]` of the destination's roster entry; the entry name itself when the roster
/// does not know it (validation prevents that; the address stays readable regardless).
fn destination_host(settings: &Settings, destination: &Destination) -> String {
    settings.registries.get(&destination.registry).map_or_else(
        || destination.registry.clone(),
        |e| settings.display_host(e),
    )
}

impl DesiredGraph {
    /// Adds a node unless its destination tag or address is already taken.
    fn add(
        &mut self,
        node: Node,
        writers: &mut BTreeMap<(String, String, String), Address>,
    ) -> Option<NodeIndex> {
        let (registry, repository, tag) = node.destination_key();
        let key = (
            registry.to_string(),
            repository.to_string(),
            tag.to_string(),
        );
        let existing = writers.get(&key).cloned().or_else(|| {
            self.by_address
                .contains_key(node.address())
                .then(|| node.address().clone())
        });
        if let Some(kept) = existing {
            let host = match &node {
                Node::Placement(p) => &p.destination_host,
                Node::Alias(a) => &a.destination_host,
            };
            self.collisions.push(Collision {
                destination: format!("{host}/{}:{}", key.1, key.2),
                kept,
                dropped: node.address().clone(),
            });
            return None;
        }
        let address = node.address().clone();
        writers.insert(key, address.clone());
        let idx = self.graph.add_node(node);
        self.by_address.insert(address, idx);
        Some(idx)
    }

    /// The underlying petgraph graph (edges: node → what it depends on).
    pub fn graph(&self) -> &DiGraph<Node, ()> {
        &self.graph
    }

    /// Every node in compile order.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.graph.node_weights()
    }

    /// The placements, in compile order.
    pub fn placements(&self) -> impl Iterator<Item = &Placement> {
        self.nodes().filter_map(|n| match n {
            Node::Placement(p) => Some(p),
            Node::Alias(_) => None,
        })
    }

    /// The aliases, in compile order.
    pub fn aliases(&self) -> impl Iterator<Item = &Alias> {
        self.nodes().filter_map(|n| match n {
            Node::Alias(a) => Some(a),
            Node::Placement(_) => None,
        })
    }

    /// The node at an address.
    pub fn get(&self, address: &Address) -> Option<&Node> {
        self.by_address.get(address).map(|&i| &self.graph[i])
    }

    /// Nodes a `--target` selects, in compile order: the full address, or a prefix ending at
    /// a path segment (`busybox`, `busybox/stable`, `busybox/stable/eu`).
    pub fn matching(&self, target: &Address) -> Vec<&Node> {
        self.nodes()
            .filter(|n| n.address().is_within(target))
            .collect()
    }

    /// Every destination repository a compiled policy manages, in compile order, including
    /// those where nothing is selected now (their tags are candidates for pruning). Policies
    /// whose upstream tag list was missing are left out: nothing is known about them.
    pub fn repositories(&self) -> &[ManagedRepository] {
        &self.repositories
    }

    /// What the node at `address` depends on.
    pub fn dependencies(&self, address: &Address) -> Vec<&Node> {
        let Some(&idx) = self.by_address.get(address) else {
            return Vec::new();
        };
        let mut deps: Vec<NodeIndex> = self
            .graph
            .neighbors_directed(idx, Direction::Outgoing)
            .collect();
        deps.sort();
        deps.into_iter().map(|i| &self.graph[i]).collect()
    }

    /// Every node after the nodes it depends on. Among nodes ready at the same time, compile
    /// order wins, so an alias follows its placement closely and the order is stable.
    pub fn topological_order(&self) -> Vec<&Node> {
        let mut pending: Vec<usize> = self
            .graph
            .node_indices()
            .map(|i| {
                self.graph
                    .neighbors_directed(i, Direction::Outgoing)
                    .count()
            })
            .collect();
        let mut ready: BTreeSet<NodeIndex> = self
            .graph
            .node_indices()
            .filter(|i| pending[i.index()] == 0)
            .collect();
        let mut order = Vec::with_capacity(self.graph.node_count());
        while let Some(idx) = ready.pop_first() {
            order.push(&self.graph[idx]);
            for dependent in self.graph.neighbors_directed(idx, Direction::Incoming) {
                pending[dependent.index()] -= 1;
                if pending[dependent.index()] == 0 {
                    ready.insert(dependent);
                }
            }
        }
        order
    }

    /// Selection and compile warnings, in compile order.
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// Destination tags two desired artifacts would both write.
    pub fn collisions(&self) -> &[Collision] {
        &self.collisions
    }

    /// How many nodes.
    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    /// Whether the graph has no node.
    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }
}

mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}
