//! Native SBOMs: the OS packages an image's layers hold, as SPDX 2.3 and CycloneDX 1.6 JSON.
//!
//! Documents are byte-deterministic: the creation time is the image config's `created` (or the
//! Unix epoch), packages are sorted, identifiers and the SPDX namespace derive from the
//! described digest, never from a clock or a random source.

pub mod collector;
mod cyclonedx;
pub mod packages;
mod rpm;
mod spdx;

use serde::{Deserialize, Serialize};

pub use collector::{LayerFindings, MergedFiles, ScanError, merge, scan_layer};
pub use packages::{DatabaseError, Distro, Ecosystem, Inventory, Package, inventory};

/// The fixed creation time of documents about images that do not say when they were built.
pub const EPOCH: &str = "1970-01-01T00:00:00Z";

/// The SBOM formats houba writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SbomFormat {
    /// SPDX 2.3 JSON.
    Spdx,
    /// CycloneDX 1.5 JSON.
    Cyclonedx,
}

impl SbomFormat {
    /// Every format, in the order they are attached.
    pub const ALL: [SbomFormat; 2] = [SbomFormat::Spdx, SbomFormat::Cyclonedx];

    /// The name in `houba.toml` and in plans (`spdx`, `cyclonedx`).
    pub fn name(self) -> &'static str {
        match self {
            SbomFormat::Spdx => "spdx",
            SbomFormat::Cyclonedx => "cyclonedx",
        }
    }

    /// The referrer's `artifactType` and its layer's media type.
    pub fn media_type(self) -> &'static str {
        match self {
            SbomFormat::Spdx => super::SPDX_MEDIA_TYPE,
            SbomFormat::Cyclonedx => super::CYCLONEDX_MEDIA_TYPE,
        }
    }

    /// The format named `name`, if houba writes it.
    pub fn parse(name: &str) -> Option<SbomFormat> {
        SbomFormat::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// What an SBOM describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// `<registry>/<repository>` the image is placed at (the document's name).
    pub name: String,
    /// The described manifest digest.
    pub digest: String,
    /// RFC 3339 creation time: the image config's `created`, else [`EPOCH`].
    pub created: String,
}

impl Subject {
    /// `created` taken from an image config (raw JSON), normalised to whole seconds in UTC so
    /// both formats' date-time rules accept it; [`EPOCH`] when absent or unreadable.
    pub fn created_from_config(config: &[u8]) -> String {
        serde_json::from_slice::<serde_json::Value>(config)
            .ok()
            .and_then(|v| v.get("created")?.as_str().map(str::to_owned))
            .and_then(|c| chrono::DateTime::parse_from_rfc3339(&c).ok())
            .map(|t| {
                t.with_timezone(&chrono::Utc)
                    .format("%Y-%m-%dT%H:%M:%SZ")
                    .to_string()
            })
            .unwrap_or_else(|| EPOCH.to_owned())
    }
}

#[derive(Debug, thiserror::Error)]
/// An SBOM could not be written.
pub enum SbomError {
    /// The document could not be serialised.
    #[error("SBOM for {digest}: {detail}")]
    Serialise {
        /// The manifest the SBOM describes.
        digest: String,
        /// What went wrong.
        detail: String,
    },
}

/// The document bytes of one format.
pub fn render(
    format: SbomFormat,
    subject: &Subject,
    inventory: &Inventory,
) -> Result<Vec<u8>, SbomError> {
    let err = |detail: String| SbomError::Serialise {
        digest: subject.digest.clone(),
        detail,
    };
    match format {
        SbomFormat::Spdx => spdx::render(subject, inventory).map_err(err),
        SbomFormat::Cyclonedx => cyclonedx::render(subject, inventory).map_err(err),
    }
}

/// The package URL of a package, in the shape syft and the purl spec use:
/// `pkg:deb/debian/libc6@2.36-9?arch=amd64&distro=debian-12`.
pub fn purl(package: &Package, distro: Option<&Distro>) -> Option<String> {
    let namespace = match (package.ecosystem, distro) {
        (Ecosystem::Rpm, Some(d)) if d.id == "rhel" => "redhat".to_owned(),
        (_, Some(d)) => d.id.clone(),
        (Ecosystem::Deb, None) => "debian".to_owned(),
        (Ecosystem::Apk, None) => "alpine".to_owned(),
        (Ecosystem::Rpm, None) => "redhat".to_owned(),
    };
    let version = match (package.ecosystem, package.epoch) {
        // rpm's epoch is a qualifier in purls, not part of the version.
        (Ecosystem::Rpm, Some(e)) => package
            .version
            .strip_prefix(&format!("{e}:"))
            .unwrap_or(&package.version)
            .to_owned(),
        _ => package.version.clone(),
    };
    let mut purl =
        packageurl::PackageUrl::new(package.ecosystem.purl_type(), &*package.name).ok()?;
    purl.with_namespace(namespace).ok()?;
    purl.with_version(version).ok()?;
    if let Some(arch) = &package.arch {
        purl.add_qualifier("arch", arch.clone()).ok()?;
    }
    if let Some(epoch) = package.epoch {
        purl.add_qualifier("epoch", epoch.to_string()).ok()?;
    }
    if let Some(d) = distro {
        purl.add_qualifier("distro", d.qualifier()).ok()?;
    }
    Some(purl.to_string())
}

/// A stable identifier fragment for a package inside one document: the hash of its identity,
/// so identifiers do not shift when another package is added.
pub(crate) fn package_key(package: &Package) -> String {
    let identity = format!(
        "{}\0{}\0{}\0{}",
        package.ecosystem.purl_type(),
        package.name,
        package.version,
        package.arch.as_deref().unwrap_or_default()
    );
    let digest = crate::registry::digest::sha256_digest(identity.as_bytes());
    digest.trim_start_matches("sha256:")[..16].to_owned()
}

#[cfg(test)]
mod tests;
