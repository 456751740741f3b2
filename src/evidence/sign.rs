//! Signing evidence and placed digests, cosign-compatible.
//!
//! A signature is cosign's "simple signing" payload (the image identity and the manifest
//! digest) signed with ECDSA P-256 over SHA-256, stored as the base64 of the DER signature.
//! [`Signer`] is a trait so KMS-held and keyless signers can be added beside the key-based one.
//! Signatures are deterministic (RFC 6979 nonces): signing the same payload twice gives the
//! same bytes, so re-attaching is a no-op.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey, LineEnding};
use serde::{Deserialize, Serialize};

/// cosign's value of `critical.type`.
pub const SIMPLE_SIGNING_TYPE: &str = "cosign container image signature";

#[derive(Debug, thiserror::Error)]
/// Why a signature could not be made or checked.
pub enum SignError {
    /// Never carries key material: only where the key came from and what is wrong with it.
    #[error(
        "signing key from {origin}: {detail}; give an unencrypted PKCS#8 PEM P-256 key (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`, or convert one with `openssl pkcs8 -topk8 -nocrypt`)"
    )]
    Key {
        /// Where the key came from (`file <path>`, `environment variable <NAME>`).
        origin: String,
        /// What is wrong with it.
        detail: String,
    },
    #[error("public key: {0}")]
    /// The public key is not usable.
    PublicKey(String),
    #[error("signature does not verify: {0}")]
    /// The signature does not verify.
    Invalid(String),
    #[error("signing payload: {0}")]
    /// The payload could not be written or read.
    Payload(String),
}

/// Something that signs payloads with a key houba never shows.
pub trait Signer: Send + Sync {
    /// The DER-encoded ECDSA signature of `payload`.
    fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, SignError>;
    /// The public key (SPKI PEM), for users to verify with.
    fn public_key_pem(&self) -> Result<String, SignError>;
}

/// A P-256 private key held in memory. `Debug` prints no key material.
pub struct KeySigner {
    key: SigningKey,
}

impl fmt::Debug for KeySigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeySigner(<private key>)")
    }
}

impl KeySigner {
    /// From a PKCS#8 PEM document; `origin` names where it came from (a file path or an
    /// environment variable's name) for error messages.
    pub fn from_pkcs8_pem(pem: &str, origin: &str) -> Result<KeySigner, SignError> {
        let err = |detail: &str| SignError::Key {
            origin: origin.to_owned(),
            detail: detail.to_owned(),
        };
        if pem.contains("ENCRYPTED") {
            return Err(err("the key is encrypted"));
        }
        if pem.contains("BEGIN EC PRIVATE KEY") {
            return Err(err("the key is in SEC1 form, not PKCS#8"));
        }
        if !pem.contains("BEGIN PRIVATE KEY") {
            return Err(err("no `BEGIN PRIVATE KEY` PEM block"));
        }
        // The decoder's own message could quote input; say only what kind of problem it is.
        let key = SigningKey::from_pkcs8_pem(pem.trim())
            .map_err(|_| err("not a PKCS#8 ECDSA P-256 private key"))?;
        Ok(KeySigner { key })
    }
}

impl Signer for KeySigner {
    fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, SignError> {
        let signature: Signature = self.key.sign(payload);
        Ok(signature.to_der().as_bytes().to_vec())
    }

    fn public_key_pem(&self) -> Result<String, SignError> {
        self.key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| SignError::PublicKey(e.to_string()))
    }
}

/// cosign's simple signing payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimpleSigning {
    /// What the signature vouches for.
    pub critical: Critical,
    /// Free-form; other signers (cosign) put any JSON here.
    #[serde(default)]
    pub optional: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
/// The signed part of the payload.
pub struct Critical {
    /// Which repository the image was signed for.
    pub identity: Identity,
    /// Which manifest digest.
    pub image: Image,
    #[serde(rename = "type")]
    /// `cosign container image signature`.
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
/// The reference an image was signed for.
pub struct Identity {
    #[serde(rename = "docker-reference")]
    /// `host/repository`.
    pub docker_reference: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
/// The digest an image was signed as.
pub struct Image {
    #[serde(rename = "docker-manifest-digest")]
    /// `sha256:` of the manifest.
    pub docker_manifest_digest: String,
}

impl SimpleSigning {
    /// The payload for `<registry>/<repository>` at `digest`; `optional` carries houba's
    /// annotations (for example which policy placed the image).
    pub fn new(
        docker_reference: &str,
        digest: &str,
        optional: BTreeMap<String, String>,
    ) -> SimpleSigning {
        SimpleSigning {
            critical: Critical {
                identity: Identity {
                    docker_reference: docker_reference.to_owned(),
                },
                image: Image {
                    docker_manifest_digest: digest.to_owned(),
                },
                kind: SIMPLE_SIGNING_TYPE.to_owned(),
            },
            optional: optional
                .into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect(),
        }
    }

    /// The payload as signed: compact JSON.
    pub fn to_bytes(&self) -> Result<Vec<u8>, SignError> {
        serde_json::to_vec(self).map_err(|e| SignError::Payload(e.to_string()))
    }

    /// Reads a payload (cosign's or houba's).
    pub fn parse(bytes: &[u8]) -> Result<SimpleSigning, SignError> {
        let payload: SimpleSigning =
            serde_json::from_slice(bytes).map_err(|e| SignError::Payload(e.to_string()))?;
        if payload.critical.kind != SIMPLE_SIGNING_TYPE {
            return Err(SignError::Payload(format!(
                "critical.type is `{}`, not `{SIMPLE_SIGNING_TYPE}`",
                payload.critical.kind
            )));
        }
        Ok(payload)
    }
}

/// A signed payload ready to attach: the payload bytes and the base64 DER signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedPayload {
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// The base64 DER ECDSA signature over them.
    pub signature_b64: String,
}

/// Signs `payload` with `signer`.
pub fn sign_payload(
    signer: &dyn Signer,
    payload: &SimpleSigning,
) -> Result<SignedPayload, SignError> {
    let bytes = payload.to_bytes()?;
    let signature = signer.sign(&bytes)?;
    Ok(SignedPayload {
        payload: bytes,
        signature_b64: STANDARD.encode(signature),
    })
}

/// Checks a base64 DER signature over `payload` against a SPKI PEM public key.
pub fn verify(public_key_pem: &str, payload: &[u8], signature_b64: &str) -> Result<(), SignError> {
    let key = VerifyingKey::from_public_key_pem(public_key_pem.trim())
        .map_err(|e| SignError::PublicKey(e.to_string()))?;
    let der = STANDARD
        .decode(signature_b64.trim())
        .map_err(|e| SignError::Invalid(format!("signature is not base64: {e}")))?;
    let signature =
        Signature::from_der(&der).map_err(|e| SignError::Invalid(format!("not DER: {e}")))?;
    key.verify(payload, &signature).map_err(|_| {
        SignError::Invalid("the signature was not made by this key over this payload".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed test key (generated once with openssl; used nowhere else).
    pub(crate) const TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgfa20JSM7OhqnKskH
LWuGGSLjE5GnLsmyKaCZ5xyxPcuhRANCAASVWW+INIEuGYUmokJbSaxZtUln3kTW
7fk7jLemIaGyeugRmMxrUHIwO2FvjELX6gtTF/PNOS4kS6c685BSZJto
-----END PRIVATE KEY-----
";

    #[test]
    fn signatures_verify_are_deterministic_and_bind_the_payload() {
        let signer = KeySigner::from_pkcs8_pem(TEST_KEY, "test").unwrap();
        let payload = SimpleSigning::new("r.test/demo/app", "sha256:ab", BTreeMap::new());
        let signed = sign_payload(&signer, &payload).unwrap();
        assert_eq!(signed, sign_payload(&signer, &payload).unwrap());
        let public = signer.public_key_pem().unwrap();
        verify(&public, &signed.payload, &signed.signature_b64).unwrap();
        let mut tampered = signed.payload.clone();
        tampered[10] ^= 1;
        assert!(verify(&public, &tampered, &signed.signature_b64).is_err());
        assert_eq!(SimpleSigning::parse(&signed.payload).unwrap(), payload);
        assert!(
            String::from_utf8(signed.payload)
                .unwrap()
                .starts_with(r#"{"critical":{"identity":{"docker-reference":"r.test/demo/app"},"image":{"docker-manifest-digest":"sha256:ab"},"type":"cosign container image signature"},"optional":{}"#)
        );
    }

    #[test]
    fn key_errors_never_quote_the_key() {
        let broken = TEST_KEY.replace("MIGH", "MIGX");
        let e = KeySigner::from_pkcs8_pem(&broken, "HOUBA_SIGNING_KEY")
            .unwrap_err()
            .to_string();
        assert!(e.contains("HOUBA_SIGNING_KEY"));
        assert!(!e.contains("MIG"), "{e}");
        let sec1 = "-----BEGIN EC PRIVATE KEY-----\nabc\n-----END EC PRIVATE KEY-----\n";
        assert!(
            KeySigner::from_pkcs8_pem(sec1, "f")
                .unwrap_err()
                .to_string()
                .contains("SEC1")
        );
        assert!(
            !format!("{:?}", KeySigner::from_pkcs8_pem(TEST_KEY, "t").unwrap()).contains("MIG")
        );
    }
}
