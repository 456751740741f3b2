//! Why no plan could be made, as a typed error: the CLI alone turns it into a report.

use crate::address::Address;
use crate::{graph, observe};

/// Why no plan could be made. Each names what it concerns (an address, a registry and what was
/// read); the CLI turns them into reports with a code and how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Reading a registry failed.
    #[error(transparent)]
    Observe(#[from] observe::ObserveError),
    /// Two artifacts want the same destination tag.
    #[error(
        "{} is wanted by both {} and {}; nothing was planned",
        .0.destination,
        .0.kept,
        .0.dropped
    )]
    Collision(Box<graph::Collision>),
    /// A `--target` that selects nothing.
    #[error("--target {target} selects nothing: no policy, import or artifact has that address")]
    UnknownTarget {
        /// The address given.
        target: Box<Address>,
        /// The known address closest to it, if any is close.
        closest: Option<Box<Address>>,
    },
    /// A `run` step needs an image builder and the environment has none.
    #[error(
        "{address}: a `run` step needs an image builder and none is available: install buildah (apt-get install buildah) or set BUILDKIT_HOST"
    )]
    NoBuilder {
        /// The artifact with the `run` step.
        address: Box<Address>,
    },
    /// An image with `run` steps lists several platforms.
    #[error(
        "{address}: images with `run` steps are built for one platform, but {platforms} are listed"
    )]
    RunPlatforms {
        /// The artifact.
        address: Box<Address>,
        /// How many platforms it lists.
        platforms: usize,
    },
    /// The recipe cannot be built as written (the message names the image and the step).
    #[error("{0}")]
    Recipe(Box<crate::build::BuildError>),
    /// The recipe names a roster entry that is missing or invalid.
    #[error("{address}: {error}")]
    RecipeDigest {
        /// The artifact.
        address: Box<Address>,
        /// What is wrong (its text is part of this message, so it is not a `source()`).
        error: Box<crate::build::BuildError>,
    },
    /// A registry of the roster cannot be connected to.
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    /// The evidence of placed content could not be read.
    #[error("cannot read the evidence of placed content")]
    Evidence(#[source] Box<crate::evidence::collect::EvidenceError>),
    /// The referrers of an upstream image could not be listed.
    #[error("cannot read the upstream referrers of {location}")]
    UpstreamReferrers {
        /// The upstream tag.
        location: String,
        /// The registry's error.
        #[source]
        error: Box<crate::registry::RegistryError>,
    },
}
