//! Checking a cosign simple-signing signature with an ECDSA P-256 public key (PEM SPKI, as
//! `cosign.pub`): the signature is over the payload bytes, and the payload must name the very
//! image digest and repository it is attached to.

use base64::Engine;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;

/// A public key signatures are checked against.
#[derive(Debug, Clone)]
pub struct CosignPublicKey(VerifyingKey);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
/// Why a signature does not verify.
pub enum SignatureError {
    #[error("not an ECDSA P-256 public key in PEM (SubjectPublicKeyInfo) form: {0}")]
    /// The key is not an ECDSA P-256 public key.
    Key(String),
    #[error("the signature annotation is not base64 DER: {0}")]
    /// The signature is not base64 DER.
    Encoding(String),
    #[error("the signature does not verify with this key")]
    /// The signature does not match.
    Mismatch,
    #[error("the signed payload is not cosign simple signing JSON: {0}")]
    /// The payload is not cosign's simple signing JSON.
    Payload(String),
    #[error("the signed payload names {found}, not {expected}")]
    /// The payload signs another image.
    WrongSubject {
        /// The image being verified.
        expected: String,
        /// The image the payload names.
        found: String,
    },
}

impl CosignPublicKey {
    /// A key from its PEM (SubjectPublicKeyInfo).
    pub fn from_pem(pem: &str) -> Result<Self, SignatureError> {
        VerifyingKey::from_public_key_pem(pem)
            .map(CosignPublicKey)
            .map_err(|e| SignatureError::Key(e.to_string()))
    }

    /// Check `signature_b64` over `payload`, then that the payload is about `digest` in
    /// `reference` (`<registry>/<repository>`).
    pub fn verify_simple_signing(
        &self,
        payload: &[u8],
        signature_b64: &str,
        reference: &str,
        digest: &str,
    ) -> Result<(), SignatureError> {
        let der = base64::engine::general_purpose::STANDARD
            .decode(signature_b64.trim())
            .map_err(|e| SignatureError::Encoding(e.to_string()))?;
        let signature =
            Signature::from_der(&der).map_err(|e| SignatureError::Encoding(e.to_string()))?;
        self.0
            .verify(payload, &signature)
            .map_err(|_| SignatureError::Mismatch)?;
        // One definition of the payload format: the one houba signs with.
        let signed = crate::evidence::sign::SimpleSigning::parse(payload)
            .map_err(|e| SignatureError::Payload(e.to_string()))?;
        let signed_digest = &signed.critical.image.docker_manifest_digest;
        if signed_digest != digest {
            return Err(SignatureError::WrongSubject {
                expected: digest.to_string(),
                found: format!("digest {signed_digest:?}"),
            });
        }
        let signed_reference = &signed.critical.identity.docker_reference;
        if signed_reference != reference {
            return Err(SignatureError::WrongSubject {
                expected: reference.to_string(),
                found: format!("repository {signed_reference:?}"),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer;
    use p256::pkcs8::EncodePublicKey;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32].into()).unwrap()
    }

    #[test]
    fn verifies_the_right_key_and_subject_only() {
        let signer = key(7);
        let pem = signer
            .verifying_key()
            .to_public_key_pem(Default::default())
            .unwrap();
        let payload = br#"{"critical":{"identity":{"docker-reference":"r.example/app"},"image":{"docker-manifest-digest":"sha256:ab"},"type":"cosign container image signature"},"optional":{}}"#;
        let sig: Signature = signer.sign(payload);
        let b64 = base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes());
        let k = CosignPublicKey::from_pem(&pem).unwrap();
        assert_eq!(
            k.verify_simple_signing(payload, &b64, "r.example/app", "sha256:ab"),
            Ok(())
        );
        assert!(matches!(
            k.verify_simple_signing(payload, &b64, "r.example/app", "sha256:cd"),
            Err(SignatureError::WrongSubject { .. })
        ));
        let other = key(9)
            .verifying_key()
            .to_public_key_pem(Default::default())
            .unwrap();
        assert_eq!(
            CosignPublicKey::from_pem(&other)
                .unwrap()
                .verify_simple_signing(payload, &b64, "r.example/app", "sha256:ab"),
            Err(SignatureError::Mismatch)
        );
        assert!(CosignPublicKey::from_pem("not a key").is_err());
    }
}
