//! Evidence attached to placed images as OCI referrers: SBOMs, signatures, scan reports.
//!
//! Every evidence item is an OCI image manifest whose `subject` is the described digest, whose
//! `config` is the empty descriptor and whose single layer holds the document; its
//! `artifactType` says what the document is (see [`referrer`]). Registries without the
//! referrers API get the `sha256-<hex>` fallback tag index (and signatures cosign's
//! `sha256-<hex>.sig` tag as well).

pub mod collect;
pub mod observe;
pub mod placement;
pub mod referrer;
pub mod runtime;
pub mod sarif;
pub mod sbom;
pub mod sign;
pub mod syft;
pub mod upstream;

/// SPDX JSON: the referrer's `artifactType` and its layer's media type.
pub const SPDX_MEDIA_TYPE: &str = "application/spdx+json";
/// CycloneDX JSON.
pub const CYCLONEDX_MEDIA_TYPE: &str = "application/vnd.cyclonedx+json";
/// A cosign signature referrer.
pub const COSIGN_SIGNATURE_ARTIFACT: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// The layer of a cosign signature: the simple signing payload.
pub const COSIGN_SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation carrying the base64 DER signature over the payload.
pub const COSIGN_SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// A SARIF scan report.
pub const SARIF_MEDIA_TYPE: &str = "application/sarif+json";
/// The empty config of artifact manifests: the two bytes `{}`.
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// The bytes of that empty config.
pub const EMPTY_CONFIG: &[u8] = b"{}";
