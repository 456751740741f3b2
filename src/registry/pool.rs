//! The registry pool: the registries one run talks to, connected lazily from the roster.

#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::{ConnectOptions, Registry, RegistryError, RequestStats, connect};
use crate::config::{Builders, RegistryEndpoint, RegistryEntry, Settings};

/// Docker Hub's registry API is not served on the name users write (`docker.io`).
pub fn api_host(upstream_host: &str) -> &str {
    if upstream_host == "docker.io" {
        "registry-1.docker.io"
    } else {
        upstream_host
    }
}

/// The registries one run talks to, keyed by the name plans use: the roster entry name for
/// destinations, the upstream host for sources.
pub struct Registries {
    settings: Settings,
    options: ConnectOptions,
    connected: Mutex<BTreeMap<String, Arc<dyn Registry>>>,
}

impl Registries {
    /// A pool over the roster of `settings`; nothing is connected yet.
    pub fn new(settings: &Settings, options: ConnectOptions) -> Self {
        Registries {
            settings: settings.clone(),
            options,
            connected: Default::default(),
        }
    }

    /// The roster entry an upstream host is read through: a mirror standing in for it, an entry
    /// with that host (for its TLS and credentials), or else an anonymous HTTPS entry.
    pub fn source_entry(&self, upstream_host: &str) -> RegistryEntry {
        if let Some(e) = self.settings.source_entry(upstream_host) {
            return e.clone();
        }
        let host = api_host(upstream_host).to_string();
        RegistryEntry {
            name: upstream_host.to_string(),
            endpoint: RegistryEndpoint::Http {
                host,
                prefix: None,
                tls_verify: true,
                ca_cert: None,
                credentials: Default::default(),
            },
            mirror_of: None,
            concurrency: self.settings.concurrency,
        }
    }

    /// The destination roster entry of that name.
    pub fn destination_entry(&self, name: &str) -> Option<&RegistryEntry> {
        self.settings.registries.get(name)
    }

    /// The image builders found in the environment.
    pub fn builders(&self) -> &Builders {
        &self.settings.builders
    }

    /// Human name of a destination roster entry.
    pub fn destination_display(&self, name: &str) -> String {
        match self.settings.registries.get(name) {
            Some(e) => self.settings.display_host(e),
            None => name.to_string(),
        }
    }

    fn connect_key(
        &self,
        key: &str,
        entry: &RegistryEntry,
    ) -> Result<Arc<dyn Registry>, RegistryError> {
        let mut map = self.connected.lock().expect("registry map lock");
        if let Some(r) = map.get(key) {
            return Ok(r.clone());
        }
        let r = connect(entry, &self.options)?;
        map.insert(key.to_string(), r.clone());
        Ok(r)
    }

    /// The backend for an upstream host (key: `source:<host>`).
    pub fn source(&self, upstream_host: &str) -> Result<Arc<dyn Registry>, RegistryError> {
        let entry = self.source_entry(upstream_host);
        self.connect_key(&format!("source:{upstream_host}"), &entry)
    }

    /// The backend for a destination roster entry.
    pub fn destination(&self, name: &str) -> Result<Arc<dyn Registry>, RegistryError> {
        let entry = self.settings.registries.get(name).cloned().ok_or_else(|| {
            RegistryError::Transport {
                registry: name.to_string(),
                message: "not in the registry roster; add it to HOUBA_REGISTRIES or houba.toml"
                    .into(),
            }
        })?;
        self.connect_key(name, &entry)
    }

    /// Answers, bytes and throttling so far, per registry display name (keyed as
    /// [`Registries::request_stats`]).
    pub fn traffic_stats(&self) -> BTreeMap<String, crate::registry::stats::TrafficStats> {
        let map = self.connected.lock().expect("registry map lock");
        let mut out: BTreeMap<String, crate::registry::stats::TrafficStats> = BTreeMap::new();
        for (key, r) in map.iter() {
            let name = key.strip_prefix("source:").unwrap_or(key).to_string();
            out.entry(name).or_default().add(&r.traffic_stats());
        }
        out
    }

    /// Requests made so far, per registry display name.
    pub fn request_stats(&self) -> BTreeMap<String, RequestStats> {
        let map = self.connected.lock().expect("registry map lock");
        let mut out: BTreeMap<String, RequestStats> = BTreeMap::new();
        for (key, r) in map.iter() {
            let name = key.strip_prefix("source:").unwrap_or(key).to_string();
            let s = r.request_stats();
            let e = out.entry(name).or_default();
            // A host read as a source and written as a destination counts once, in total.
            *e = e.plus(&s);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_is_read_through_its_api_host() {
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("quay.io"), "quay.io");
        let pool = Registries::new(&Settings::default(), ConnectOptions::default());
        match pool.source_entry("docker.io").endpoint {
            RegistryEndpoint::Http {
                host, tls_verify, ..
            } => {
                assert_eq!(host, "registry-1.docker.io");
                assert!(tls_verify);
            }
            other => panic!("{other:?}"),
        }
        let err = pool.destination("nope").err().unwrap().to_string();
        assert!(err.contains("not in the registry roster"), "{err}");
    }
}
