//! The provider application's certificate credential at the token endpoint: a `private_key_jwt`
//! client assertion (RFC 7523) as Microsoft's "certificate credentials" page describes it
//! (PS256, `x5t#S256`, `aud` the token endpoint, `iss` = `sub` = the client id, a fresh `jti`).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::RsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::pss::BlindedSigningKey;
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

/// The `client_assertion_type` of a JWT client assertion.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Microsoft asks for a short assertion lifetime: "5-10 minutes after nbf at most".
const ASSERTION_LIFETIME_SECS: i64 = 5 * 60;

/// A certificate registered on the provider's app with its private key, ready to sign.
#[derive(Clone)]
pub struct ClientCertificate {
    key: RsaPrivateKey,
    x5t_s256: String,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("x5t#S256", &self.x5t_s256)
            .finish_non_exhaustive()
    }
}

/// The private key is not a PKCS#8 RSA key.
#[derive(Debug, thiserror::Error)]
#[error("the certificate's private key is not a PKCS#8 RSA key")]
pub struct BadPrivateKey;

impl ClientCertificate {
    /// Pairs the PKCS#8 DER private key with the certificate (DER) it belongs to.
    pub fn new(private_key_der: &[u8], certificate_der: &[u8]) -> Result<Self, BadPrivateKey> {
        Ok(Self {
            key: RsaPrivateKey::from_pkcs8_der(private_key_der).map_err(|_| BadPrivateKey)?,
            x5t_s256: URL_SAFE_NO_PAD.encode(Sha256::digest(certificate_der)),
        })
    }

    /// The certificate's `x5t#S256` thumbprint (Base64url SHA-256 of its DER).
    pub fn x5t_s256(&self) -> &str {
        &self.x5t_s256
    }

    /// A PS256 JWT of `claims` whose header names the certificate by `x5t#S256`.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "PS256", "typ": "JWT", "x5t#S256": self.x5t_s256});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signer = BlindedSigningKey::<Sha256>::new(self.key.clone());
        let signature = signer.sign_with_rng(&mut rand::thread_rng(), input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }

    /// A client assertion for `client_id` at the token endpoint `audience`.
    pub fn assertion(&self, client_id: &str, audience: &str) -> String {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        self.sign(&json!({
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": Uuid::new_v4().to_string(),
            "iat": now,
            "nbf": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
        }))
    }
}
