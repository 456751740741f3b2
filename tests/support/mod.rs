//! Shared integration-test harness: real registries on 127.0.0.1 and test images.
//!
//! - `ferro().await`: an in-process OCI registry (native referrers API).
//! - `distribution(Auth::None | Auth::Basic | Auth::Token).await`: the CNCF distribution
//!   server (`docker-registry`) as a child process, killed on drop.
//! - `fault::FaultProxy`: a loopback proxy that injects failures in front of either.
//! - `images`: deterministic images and `push_image`.
//!
//! Tests using these need a multi-threaded runtime (`#[tokio::test(flavor = "multi_thread")]`):
//! in-process servers run on the test's runtime.

#![allow(dead_code)]

pub mod distribution;
pub mod fault;
pub mod ferro;
pub mod houba;
pub mod images;
pub mod prometheus;
pub mod token;

use std::path::PathBuf;
use std::sync::Arc;

use ::houba::config::{Credentials, RegistryEndpoint, RegistryEntry};
use ::houba::registry::{ConnectOptions, Registry, connect};

// Every test binary compiles this module; not each one starts every kind of registry.
#[allow(unused_imports)]
pub use distribution::{Auth, distribution, distribution_tls};
#[allow(unused_imports)]
pub use ferro::ferro;

/// Test credentials; the password is distinctive so tests can grep output for leaks.
pub const USERNAME: &str = "houba-tester";
pub const PASSWORD: &str = "pw-Zq7-very-secret-9x";

/// A registry running for one test. Dropping it stops the server.
pub struct TestRegistry {
    host: String,
    credentials: Option<(String, String)>,
    _guard: Box<dyn Send + Sync>,
    /// Scratch directory kept alive with the registry (storage, config, keys).
    pub dir: Option<Arc<tempfile::TempDir>>,
}

impl TestRegistry {
    pub(crate) fn new(
        host: String,
        credentials: Option<(String, String)>,
        guard: Box<dyn Send + Sync>,
    ) -> Self {
        TestRegistry {
            host,
            credentials,
            _guard: guard,
            dir: None,
        }
    }

    /// `127.0.0.1:PORT`
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Username and password, when the registry requires them.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// A roster entry for this registry (plain HTTP). Credentials, when required, come from a
    /// password file written next to the registry's data.
    pub fn entry(&self) -> RegistryEntry {
        let credentials = match (&self.credentials, &self.dir) {
            (Some((user, password)), Some(dir)) => {
                let path = dir.path().join("houba-password");
                std::fs::write(&path, password).expect("write password file");
                Credentials::PasswordFile {
                    username: user.clone(),
                    path,
                }
            }
            _ => Credentials::Ambient,
        };
        entry_for(&self.host, credentials)
    }

    /// A client for this registry with default options.
    pub fn client(&self) -> Arc<dyn Registry> {
        connect(&self.entry(), &quick_options()).expect("client")
    }

    /// `--creds` arguments for skopeo, if any.
    pub fn skopeo_creds(&self) -> Vec<String> {
        match &self.credentials {
            Some((u, p)) => vec![format!("--creds={u}:{p}")],
            None => Vec::new(),
        }
    }
}

/// A roster entry for a plain-HTTP registry at `host`.
pub fn entry_for(host: &str, credentials: Credentials) -> RegistryEntry {
    RegistryEntry {
        name: format!("test-{host}"),
        endpoint: RegistryEndpoint::Http {
            host: host.to_owned(),
            prefix: None,
            tls_verify: false,
            ca_cert: None,
            credentials,
        },
        mirror_of: None,
        concurrency: 8,
    }
}

/// A roster entry for an OCI layout directory.
pub fn layout_entry(path: PathBuf) -> RegistryEntry {
    RegistryEntry {
        name: "layout".into(),
        endpoint: RegistryEndpoint::Layout { path },
        mirror_of: None,
        concurrency: 4,
    }
}

/// Options with short back-offs so failure tests stay quick.
pub fn quick_options() -> ConnectOptions {
    ConnectOptions {
        backoff_base: std::time::Duration::from_millis(20),
        max_backoff: std::time::Duration::from_secs(3),
        env: Arc::new(|_| None),
        ..ConnectOptions::default()
    }
}

/// A free loopback port (bound then released; good enough for tests).
/// A plain HTTP client for tests (the TLS provider installed first, as houba does).
pub fn http_client() -> reqwest::Client {
    ::houba::registry::install_crypto_provider();
    reqwest::Client::new()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// `skopeo inspect --raw` of `docker://host/repo:ref` (plain HTTP), as bytes.
pub async fn skopeo_raw(registry: &TestRegistry, reference: &str) -> Vec<u8> {
    let mut command = tokio::process::Command::new("skopeo");
    command
        .args(["inspect", "--raw", "--tls-verify=false"])
        .args(registry.skopeo_creds());
    command.arg(format!("docker://{}/{reference}", registry.host()));
    run_skopeo(command).await
}

/// `skopeo inspect --raw` of an arbitrary transport reference (`oci:dir/repo:tag`).
pub async fn skopeo_raw_ref(reference: &str) -> Vec<u8> {
    let mut command = tokio::process::Command::new("skopeo");
    command.args(["inspect", "--raw", reference]);
    run_skopeo(command).await
}

async fn run_skopeo(mut command: tokio::process::Command) -> Vec<u8> {
    let output = command.output().await.expect("skopeo runs");
    assert!(
        output.status.success(),
        "skopeo failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Wait until `http://host/v2/` answers at all (any status).
pub async fn wait_until_up(host: &str) {
    let client = http_client();
    for _ in 0..200 {
        if client
            .get(format!("http://{host}/v2/"))
            .send()
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("registry at {host} did not come up");
}

/// Aborts a server task when dropped.
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
