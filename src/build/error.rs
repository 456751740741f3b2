//! Errors of the rebuild engine. Every message names the image being rebuilt and, when a
//! transform is at fault, the step; it ends with what to do about it.

use std::io;

/// Why a rebuild failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A transform step could not be applied to this image.
    #[error("{image}: {step}: {detail}")]
    Step {
        /// The image, as messages name it.
        image: String,
        /// The step (`setTimezone`).
        step: &'static str,
        /// What is wrong and how to fix it.
        detail: String,
    },
    /// A CA certificate from the roster is not a usable PEM certificate.
    #[error(
        "{image}: injectCA: CA certificate `{cert}` is invalid: {reason}; fix the `ca_certs.{cert}` roster entry (it must hold PEM `CERTIFICATE` blocks)"
    )]
    InvalidCertificate {
        /// The image, as messages name it.
        image: String,
        /// The roster entry.
        cert: String,
        /// Why it is not usable.
        reason: String,
    },
    /// A step names a roster entry that the rosters handed to the engine do not hold.
    #[error(
        "{image}: {step}: no `{roster}` roster entry named `{name}`; add it to houba.toml or fix the policy"
    )]
    UnknownRosterEntry {
        /// The image, as messages name it.
        image: String,
        /// The step.
        step: &'static str,
        /// The roster (`ca_certs`, `package_mirrors`).
        roster: &'static str,
        /// The missing entry.
        name: String,
    },
    /// The manifest, index or config is not something the engine can rebuild.
    #[error("{image}: {detail}")]
    Unsupported {
        /// The image, as messages name it.
        image: String,
        /// What the engine cannot do with it.
        detail: String,
    },
    /// A layer could not be read (corrupt archive, unexpected entry).
    #[error("{image}: layer {digest}: {detail}")]
    Layer {
        /// The image, as messages name it.
        image: String,
        /// The layer's digest.
        digest: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A blob could not be opened or read from the blob source.
    #[error(
        "{image}: reading blob {digest}: {error}; check that the source registry still serves it"
    )]
    Blob {
        /// The image, as messages name it.
        image: String,
        /// The blob's digest.
        digest: String,
        /// The cause; its text is part of the message, so it is not also a `source()` (a
        /// report would print it twice).
        error: io::Error,
    },
    /// Writing the new layer or another local file failed.
    #[error("{image}: {context}: {error}; check that the work directory is writable and has space")]
    Io {
        /// The image, as messages name it.
        image: String,
        /// What was being written or read.
        context: String,
        /// The cause; its text is part of the message, so it is not also a `source()` (a
        /// report would print it twice).
        error: io::Error,
    },
    /// An external image builder (buildah, buildctl) failed or could not be started.
    #[error("{image}: {tool}: {detail}")]
    Builder {
        /// The image, as messages name it.
        image: String,
        /// `buildah` or `buildctl`.
        tool: &'static str,
        /// What it said.
        detail: String,
    },
}
