//! Diff: desired artifacts × live state → plan actions and drift. Pure.
//!
//! The live registries are the only state: every decision here is made from what the
//! destination tags hold and what their stamps say, compared with what the policies want. The
//! work is split by what is decided: [`placement`] (copy, build, replace, restamp), [`alias`]
//! (moving tags) and [`prune`] (tags no longer desired, orphans, bypass tags).

mod alias;
mod evidence;
mod placement;
mod prune;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::Duration;

use super::model::{Action, Address, Drift, EvidencePlan, Location, Note};
use crate::live::{LiveState, LiveTag, SourceObservation};
use crate::policy::resolved::{Archive, DeletionMode, TransformStep};
use crate::stamp::{self, Stamp};

pub use crate::graph::ManagedRepository;

/// How a desired placement is produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlacementKind {
    /// Copied as it is (stamped).
    Copy,
    /// Rebuilt (transform steps or a platform filter).
    Build,
}

/// One desired tag holding content placed from an upstream tag.
#[derive(Debug, Clone)]
pub struct DesiredPlacement {
    /// Its address.
    pub address: Address,
    /// Owning policy.
    pub policy: String,
    /// Import of that policy.
    pub import: String,
    /// Variant of that import.
    pub variant: String,
    /// The destination tag.
    pub destination: Location,
    /// The upstream tag.
    pub source: Location,
    /// Digest the upstream tag is pinned to.
    pub pin: Option<String>,
    /// Copy or build.
    pub kind: PlacementKind,
    /// The transform steps (builds).
    pub transform: Vec<TransformStep>,
    /// Platform filter (`os/arch[/variant]`); empty keeps every platform.
    pub platforms: Vec<String>,
    /// Recipe digest (builds), computed by the caller from the resolved steps and base digest.
    pub recipe: Option<String>,
    /// Owners recorded in the stamp.
    pub owners: Vec<String>,
    /// Vendor recorded in the stamp.
    pub vendor: Option<String>,
    /// `image`, `helmChart` or `generic`.
    pub artifact_type: String,
    /// How long a moved upstream digest must be stable before it is taken.
    pub settle: Duration,
}

impl DesiredPlacement {
    /// Transform step names, as the stamp records them.
    pub fn step_names(&self) -> Vec<String> {
        self.transform
            .iter()
            .map(|s| s.name().to_string())
            .collect()
    }
}

/// One desired moving tag pointing at a placement (same repository).
#[derive(Debug, Clone)]
pub struct DesiredAlias {
    /// Its address.
    pub address: Address,
    /// The alias tag.
    pub destination: Location,
    /// Address of the placement it points at.
    pub target: Address,
}

/// A repository no current policy claims, observed because it holds houba stamps: its tags
/// stamped by a policy are orphans, planned as prunes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnclaimedRepository {
    /// Roster entry name.
    pub registry: String,
    /// `host[/prefix]`, or a layout entry's name.
    pub display: String,
    /// Repository inside the registry.
    pub repository: String,
}

/// Everything the diff reads.
pub struct DiffInput<'a> {
    /// Desired placements.
    pub placements: &'a [DesiredPlacement],
    /// Desired aliases.
    pub aliases: &'a [DesiredAlias],
    /// Repositories the policies manage.
    pub repositories: &'a [ManagedRepository],
    /// Repositories holding houba stamps that no policy claims.
    pub unclaimed: &'a [UnclaimedRepository],
    /// Deletion mode of policies known by name (for orphans of a policy that still exists
    /// elsewhere); orphans of unknown policies are marked, never deleted.
    pub deletion_modes: &'a BTreeMap<String, DeletionMode>,
    /// `archive` settings per `(policy, import)`: tags an import no longer selects that are
    /// kept instead of pruned.
    pub archives: &'a BTreeMap<(String, String), Archive>,
    /// Now, in seconds since the epoch (for `archive.olderThanDays`).
    pub now: u64,
    /// What the registries hold.
    pub live: &'a LiveState,
    /// Stamp key prefix.
    pub label_prefix: &'a str,
    /// The evidence new content gets (from `[sbom]` and `[signing]`).
    pub evidence: &'a EvidencePlan,
}

/// The outcome of a diff: drift, actions (placements, aliases, prunes) and notes.
#[derive(Debug, Clone, Default)]
pub struct DiffOutput {
    /// Changes found outside houba.
    pub drift: Vec<Drift>,
    /// Planned changes, in execution order.
    pub actions: Vec<Action>,
    /// What was withheld, and why.
    pub notes: Vec<Note>,
}

/// The stamp a placement's manifest must carry, given what upstream holds.
pub fn desired_stamp(p: &DesiredPlacement, src: &SourceObservation) -> Stamp {
    let upstream = stamp::manifest_annotations(&src.manifest).unwrap_or_default();
    let title = p
        .source
        .repository
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    Stamp {
        source: format!("{}/{}", p.source.display, p.source.repository),
        base_name: format!(
            "{}/{}:{}",
            p.source.display, p.source.repository, p.source.tag
        ),
        base_digest: src.digest.clone(),
        title,
        vendor: p.vendor.clone(),
        revision: upstream.get(stamp::OCI_REVISION).cloned(),
        created: upstream.get(stamp::OCI_CREATED).cloned(),
        policy: p.policy.clone(),
        import: p.import.clone(),
        variant: p.variant.clone(),
        owners: p.owners.clone(),
        artifact_type: p.artifact_type.clone(),
        transform_steps: p.step_names(),
        recipe: p.recipe.clone(),
        pruned: false,
    }
}

/// `(registry, repository)` of a location.
fn repo_key(l: &Location) -> (String, String) {
    (l.registry.clone(), l.repository.clone())
}

/// `(registry, repository, tag)` of a location.
fn tag_key(l: &Location) -> (String, String, String) {
    (l.registry.clone(), l.repository.clone(), l.tag.clone())
}

/// The tags of the repository holding `l`, empty when none were observed.
fn repo_tags<'l>(live: &'l LiveState, l: &Location) -> Option<&'l BTreeMap<String, LiveTag>> {
    live.destinations.get(&repo_key(l))
}

/// The stamp on live content, with the prefix it was written under.
fn live_stamp(t: &LiveTag, prefix: &str) -> Option<(Stamp, String)> {
    let annotations = stamp::manifest_annotations(&t.manifest).ok()?;
    Stamp::detect(&annotations, prefix)
}

/// Compute the plan's drift, actions and notes. Requests and digests of inputs are filled in by
/// the caller.
pub fn diff(input: &DiffInput<'_>) -> DiffOutput {
    let mut out = DiffOutput::default();
    let outcomes = placement::diff_placements(input, &mut out);
    alias::diff_aliases(input, &outcomes, &mut out);
    evidence::diff_evidence(input, &outcomes, &mut out);
    prune::diff_prunes(input, &mut out);
    out.drift
        .sort_by(|a, b| (a.address.as_ref(), &a.location).cmp(&(b.address.as_ref(), &b.location)));
    out.notes.sort_by(|a, b| a.address.cmp(&b.address));
    out.actions.sort_by(|a, b| {
        (a.kind().phase(), &a.header.address).cmp(&(b.kind().phase(), &b.header.address))
    });
    out
}
