//! HTTPS registries: a roster `ca_cert` is trusted on top of the platform roots, a certificate
//! from any other CA is refused, and clients built one after the other (they share one
//! certificate verifier per set of extra roots) each verify on their own terms. Certificates
//! are made by the `openssl` CLI; the registry is distribution serving TLS.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use houba::config::{CaCert, Credentials, RegistryEndpoint, RegistryEntry};
use houba::registry::{RegistryError, connect};
use support::{Auth, distribution_tls, quick_options};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA `<name>-ca.pem` and, when `server`, a certificate for 127.0.0.1 it signed.
fn make_ca(dir: &Path, name: &str, server: bool) -> PathBuf {
    let ca_key = format!("{name}-ca.key");
    let ca = format!("{name}-ca.pem");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &ca_key,
            "-out",
            &ca,
            "-days",
            "2",
            "-subj",
            &format!("/CN={name} CA"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    if server {
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                &ca,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        );
    }
    dir.join(ca)
}

fn entry(host: &str, ca: Option<&Path>) -> RegistryEntry {
    RegistryEntry {
        name: "tls".into(),
        endpoint: RegistryEndpoint::Http {
            host: host.into(),
            prefix: None,
            tls_verify: true,
            ca_cert: ca.map(|path| CaCert {
                path: path.to_path_buf(),
                pem: std::fs::read(path).unwrap(),
            }),
            credentials: Credentials::Ambient,
        },
        mirror_of: None,
        concurrency: 4,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_roster_ca_is_trusted_and_no_other() {
    let certs = tempfile::tempdir().unwrap();
    let trusted = make_ca(certs.path(), "trusted", true);
    let other = make_ca(certs.path(), "other", false);
    let registry = distribution_tls(
        Auth::None,
        &certs.path().join("server.pem"),
        &certs.path().join("server.key"),
    )
    .await;
    let host = registry.host();

    let client = connect(&entry(host, Some(&trusted)), &quick_options()).unwrap();
    let image = support::images::oci_image("tls", "amd64", vec![]);
    support::images::push_image(client.as_ref(), "demo/app", "1.0", &image)
        .await
        .expect("push over HTTPS, blobs included");
    assert_eq!(client.list_tags("demo/app").await.unwrap(), ["1.0"]);
    assert_eq!(
        client
            .head_manifest("demo/app", "1.0")
            .await
            .unwrap()
            .map(|d| d.digest),
        Some(image.digest())
    );

    for (what, ca) in [("another CA", Some(other.as_path())), ("no ca_cert", None)] {
        let refused = connect(&entry(host, ca), &quick_options()).unwrap();
        match refused.list_tags("demo/app").await {
            Err(e @ RegistryError::Transport { .. }) => {
                let text = format!("{e:?}");
                assert!(
                    text.to_lowercase().contains("certificate"),
                    "{what}: the error names the certificate: {text}"
                );
            }
            other => panic!("{what}: the registry's certificate must be refused: {other:?}"),
        }
    }
    // The trusted client still verifies after the others were built.
    let again = connect(&entry(host, Some(&trusted)), &quick_options()).unwrap();
    assert_eq!(again.list_tags("demo/app").await.unwrap(), ["1.0"]);
}
