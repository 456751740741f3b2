//! Building a backend from a roster entry.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::auth::EnvLookup;
use super::http::HttpRegistry;
use super::layout::LayoutRegistry;
use super::{Registry, Result};
use crate::config::{RegistryEndpoint, RegistryEntry};

/// How clients are built: where credentials come from and how hard to try.
#[derive(Clone)]
pub struct ConnectOptions {
    /// Looks up the environment variable named by `Credentials::PasswordEnv`.
    pub env: EnvLookup,
    /// Docker `config.json` consulted for `Credentials::Ambient` (auths, credHelpers,
    /// credsStore). `None`: anonymous.
    pub docker_config: Option<PathBuf>,
    /// Longest wait for any single read from a registry (a stalled response fails after it).
    pub read_timeout: Duration,
    /// How long to wait for a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Retries of one request after a connection error, a time-out or a 5xx/429 answer.
    pub max_retries: u32,
    /// First back-off delay; doubled per retry, plus jitter.
    pub backoff_base: Duration,
    /// Cap on any single wait (including a server's `Retry-After`).
    pub max_backoff: Duration,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("docker_config", &self.docker_config)
            .field("read_timeout", &self.read_timeout)
            .field("max_retries", &self.max_retries)
            .finish_non_exhaustive()
    }
}

impl Default for ConnectOptions {
    /// Looks up password variables in the process environment at client build time and reads
    /// no docker config: the `config` module passes its own values for both.
    fn default() -> Self {
        ConnectOptions {
            env: Arc::new(|name| std::env::var(name).ok()),
            docker_config: None,
            read_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(15),
            max_retries: 4,
            backoff_base: Duration::from_millis(250),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// A backend for a roster entry: an HTTP registry client or an OCI image layout directory.
pub fn connect(entry: &RegistryEntry, options: &ConnectOptions) -> Result<Arc<dyn Registry>> {
    Ok(match &entry.endpoint {
        RegistryEndpoint::Http { .. } => Arc::new(HttpRegistry::new(entry, options)?),
        RegistryEndpoint::Layout { path } => Arc::new(LayoutRegistry::new(path.clone())),
    })
}
