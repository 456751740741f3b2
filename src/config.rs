//! Settings: `houba.toml` + `HOUBA_*` environment variables, read in one place.
//!
//! This is the only module that reads the process environment. Everything downstream receives
//! a `Settings` value.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One roster entry: how to reach a registry (or an embedded OCI image layout directory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RegistryEndpoint {
    /// An HTTP(S) registry speaking the distribution API.
    Http {
        /// `host[:port]`, without scheme.
        host: String,
        /// Optional path prefix prepended to every repository (`ghcr.io/acme` → `acme`).
        prefix: Option<String>,
        /// false means plain HTTP (as in the reference deployment's roster).
        tls_verify: bool,
        /// Extra CA certificate (PEM file) trusted for this registry.
        ca_cert: Option<PathBuf>,
        credentials: Credentials,
    },
    /// An OCI image layout directory (`index.json` + `blobs/`); one sub-directory per
    /// repository.
    Layout { path: PathBuf },
}

/// Where a registry's credentials come from. Secrets are never stored inline in a committed
/// file; the value is read when a client is built and never printed (`Debug` redacts).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Credentials {
    /// Nothing configured: docker `config.json` and credential helpers apply.
    #[default]
    Ambient,
    /// Username plus a password read from an environment variable.
    PasswordEnv { username: String, env: String },
    /// Username plus a password read from a file.
    PasswordFile { username: String, path: PathBuf },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Ambient => write!(f, "Ambient"),
            Credentials::PasswordEnv { username, env } => {
                write!(f, "PasswordEnv {{ username: {username:?}, env: {env:?} }}")
            }
            Credentials::PasswordFile { username, path } => {
                write!(
                    f,
                    "PasswordFile {{ username: {username:?}, path: {path:?} }}"
                )
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryEntry {
    /// Roster key (`local`).
    pub name: String,
    pub endpoint: RegistryEndpoint,
    /// When set, this entry stands in for the given upstream host (`docker.io`): policies whose
    /// `source.registry` is that host are read through this entry (a pull-through cache or a
    /// layout directory) without touching the policies.
    pub mirror_of: Option<String>,
    /// Maximum concurrent requests to this registry.
    pub concurrency: usize,
}

/// A CA certificate in the transform roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CaSource {
    Path(PathBuf),
    Pem(String),
}

/// A package mirror in the transform roster: base URLs per package manager.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PackageMirror {
    pub apt: Option<String>,
    pub apk: Option<String>,
    pub yum: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// The config file that was read, if any.
    pub config_file: Option<PathBuf>,
    /// Policy directories (default `./policies`, relative to the config file's directory when
    /// they come from it).
    pub policies: Vec<PathBuf>,
    /// Roster, keyed by entry name.
    pub registries: BTreeMap<String, RegistryEntry>,
    pub ca_certs: BTreeMap<String, CaSource>,
    pub package_mirrors: BTreeMap<String, PackageMirror>,
    pub log_format: LogFormat,
    /// Annotation prefix for houba's own stamp keys (default `io.houba`).
    pub label_prefix: String,
    /// Global bound on concurrent work (apply `-j` overrides).
    pub concurrency: usize,
    /// Share of a repository's managed tags a prune under `--auto` may remove (default 0.5).
    pub max_prune_fraction: f64,
}
