//! The CNCF distribution registry (Debian's `docker-registry`, 2.8): no referrers API,
//! supports cross-repository mount and deletes. Runs as a child process on a free port with
//! filesystem storage in a temporary directory; killed on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use super::token::TokenServer;
use super::{PASSWORD, TestRegistry, USERNAME, free_port, wait_until_up};

/// How the registry authenticates clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    None,
    /// htpasswd (bcrypt) basic auth.
    Basic,
    /// Bearer tokens from an in-process token server (RS256 JWTs signed with a key made by
    /// the `openssl` CLI).
    Token,
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Running {
    _child: KillOnDrop,
    _token: Option<TokenServer>,
}

/// Start a distribution registry with the given authentication.
pub async fn distribution(auth: Auth) -> TestRegistry {
    distribution_serving(auth, None).await
}

/// Start a distribution registry serving HTTPS with this certificate and key (PEM files).
pub async fn distribution_tls(auth: Auth, certificate: &Path, key: &Path) -> TestRegistry {
    distribution_serving(auth, Some((certificate, key))).await
}

async fn distribution_serving(auth: Auth, tls: Option<(&Path, &Path)>) -> TestRegistry {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let port = free_port();
    let host = format!("127.0.0.1:{port}");
    let storage = dir.path().join("storage");
    let mut token = None;
    let auth_yaml = match auth {
        Auth::None => String::new(),
        Auth::Basic => {
            let output = Command::new("htpasswd")
                .args(["-Bbn", USERNAME, PASSWORD])
                .output()
                .expect("htpasswd runs");
            assert!(output.status.success(), "htpasswd failed");
            let path = dir.path().join("htpasswd");
            std::fs::write(&path, output.stdout).expect("write htpasswd");
            format!(
                "auth:\n  htpasswd:\n    realm: houba-test\n    path: {}\n",
                path.display()
            )
        }
        Auth::Token => {
            let server = TokenServer::start(dir.path()).await;
            let yaml = format!(
                "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                server.realm(),
                super::token::SERVICE,
                super::token::ISSUER,
                server.certificate().display()
            );
            token = Some(server);
            yaml
        }
    };
    let tls_yaml = tls.map_or_else(String::new, |(certificate, key)| {
        format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            certificate.display(),
            key.display()
        )
    });
    let config = format!(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n  secret: houba-test-secret\n{tls_yaml}{auth_yaml}",
        storage.display()
    );
    let config_path = dir.path().join("config.yml");
    std::fs::write(&config_path, config).expect("write config");
    let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("docker-registry runs (apt-get install docker-registry)");
    let guard = KillOnDrop(child);
    wait_until_up(&host).await;
    let credentials = (auth != Auth::None).then(|| (USERNAME.to_owned(), PASSWORD.to_owned()));
    let mut registry = TestRegistry::new(
        host,
        credentials,
        Box::new(Running {
            _child: guard,
            _token: token,
        }),
    );
    registry.dir = Some(dir);
    registry
}
