//! The TLS client configuration of the registry clients.
//!
//! Building a certificate verifier reads and parses the whole platform root store (every file
//! of `/etc/ssl/certs` on Linux). reqwest builds one per client, and every HTTPS registry has two
//! clients (multiplexed and blob), so a run against two registries read the store four times:
//! the largest cost of a warm run outside the requests (see [`provider`] for the other). One
//! verifier is built per distinct `ca_cert` (usually one per process) and shared.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Verifiers already built, keyed by the PEM of the extra roots (empty: platform roots only).
type Verifiers = Mutex<BTreeMap<Vec<u8>, Arc<dyn ServerCertVerifier>>>;
static VERIFIERS: OnceLock<Verifiers> = OnceLock::new();

/// The process's crypto provider: *ring*, installed as the process default on first use so
/// every HTTP client (registries, notifications, the Pushgateway) uses the same one. *ring*
/// seeds from the operating system's generator; aws-lc's start-up CPU-jitter entropy cost
/// ≈ 40 ms of CPU on every run's first handshake, an eighth of a warm run.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    if let Some(installed) = CryptoProvider::get_default() {
        return installed.clone();
    }
    // Losing a race to install is fine: then the winner's provider is the default.
    let _ = rustls::crypto::ring::default_provider().install_default();
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

/// The certificates of a PEM bundle; an error when it holds none.
pub(crate) fn pem_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no PEM certificate".into());
    }
    Ok(certs)
}

/// The platform verifier trusting the platform roots plus `extra_pem` (may be empty), built once
/// per distinct `extra_pem`.
fn verifier(extra_pem: &[u8]) -> Result<Arc<dyn ServerCertVerifier>, String> {
    let verifiers = VERIFIERS.get_or_init(Default::default);
    let mut verifiers = verifiers.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(v) = verifiers.get(extra_pem) {
        return Ok(v.clone());
    }
    let built = if extra_pem.is_empty() {
        rustls_platform_verifier::Verifier::new(provider())
    } else {
        rustls_platform_verifier::Verifier::new_with_extra_roots(
            pem_certificates(extra_pem)?,
            provider(),
        )
    }
    .map_err(|e| e.to_string())?;
    let built: Arc<dyn ServerCertVerifier> = Arc::new(built);
    verifiers.insert(extra_pem.to_vec(), built.clone());
    Ok(built)
}

/// A client configuration as reqwest builds it by default (TLS 1.2 and 1.3, platform
/// verification, SNI on), with the shared verifier and the ALPN protocols of the client: `h2`
/// then `http/1.1`, or `http/1.1` alone.
pub(crate) fn client_config(
    extra_pem: &[u8],
    http1_only: bool,
) -> Result<rustls::ClientConfig, String> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier(extra_pem)?)
        .with_no_client_auth();
    config.alpn_protocols = if http1_only {
        vec![b"http/1.1".to_vec()]
    } else {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    };
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_verifier_per_set_of_extra_roots() {
        let a = verifier(b"").unwrap();
        let b = verifier(b"").unwrap();
        assert!(Arc::ptr_eq(&a, &b), "the platform roots are read once");
        assert!(pem_certificates(b"not a certificate").is_err());
        let h2 = client_config(b"", false).unwrap();
        assert_eq!(h2.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
        assert_eq!(
            client_config(b"", true).unwrap().alpn_protocols,
            [b"http/1.1".to_vec()]
        );
    }
}
