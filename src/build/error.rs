//! Errors of the rebuild engine. Every message names the image being rebuilt and, when a
//! transform is at fault, the step; it ends with what to do about it.

use std::io;

/// Why a rebuild failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A transform step could not be applied to this image.
    #[error("{image}: {step}: {detail}")]
    Step {
        image: String,
        step: &'static str,
        detail: String,
    },
    /// A CA certificate from the roster is not a usable PEM certificate.
    #[error(
        "{image}: injectCA: CA certificate `{cert}` is invalid: {reason}; fix the `ca_certs.{cert}` roster entry (it must hold PEM `CERTIFICATE` blocks)"
    )]
    InvalidCertificate {
        image: String,
        cert: String,
        reason: String,
    },
    /// A step names a roster entry that the rosters handed to the engine do not hold.
    #[error(
        "{image}: {step}: no `{roster}` roster entry named `{name}`; add it to houba.toml or fix the policy"
    )]
    UnknownRosterEntry {
        image: String,
        step: &'static str,
        roster: &'static str,
        name: String,
    },
    /// The manifest, index or config is not something the engine can rebuild.
    #[error("{image}: {detail}")]
    Unsupported { image: String, detail: String },
    /// A layer could not be read (corrupt archive, unexpected entry).
    #[error("{image}: layer {digest}: {detail}")]
    Layer {
        image: String,
        digest: String,
        detail: String,
    },
    /// A blob could not be opened or read from the blob source.
    #[error(
        "{image}: reading blob {digest}: {error}; check that the source registry still serves it"
    )]
    Blob {
        image: String,
        digest: String,
        /// The cause; its text is part of the message, so it is not also a `source()` (a
        /// report would print it twice).
        error: io::Error,
    },
    /// Writing the new layer or another local file failed.
    #[error("{image}: {context}: {error}; check that the work directory is writable and has space")]
    Io {
        image: String,
        context: String,
        /// The cause; its text is part of the message, so it is not also a `source()` (a
        /// report would print it twice).
        error: io::Error,
    },
    /// An external image builder (buildah, buildctl) failed or could not be started.
    #[error("{image}: {tool}: {detail}")]
    Builder {
        image: String,
        tool: &'static str,
        detail: String,
    },
}
