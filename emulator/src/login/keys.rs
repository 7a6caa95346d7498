//! RSA signing keys for ID tokens: the JWKS they publish and rotation on demand.

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::RsaPrivateKey;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Keys still published after rotation, so tokens signed by recent keys keep validating.
const PUBLISHED_KEYS: usize = 3;

/// One RS256 key.
pub struct SigningKey {
    /// Key id (also used as `x5t`).
    pub kid: String,
    encoding: EncodingKey,
    n: String,
    e: String,
}

impl SigningKey {
    /// Generates a 2048-bit key; slow-ish, so call it off the async threads.
    pub fn generate() -> anyhow::Result<Self> {
        let key =
            RsaPrivateKey::new(&mut rand::thread_rng(), 2048).context("generating RSA key")?;
        let der = key.to_pkcs1_der().context("encoding RSA key")?;
        let n = key.n().to_bytes_be();
        let kid = URL_SAFE_NO_PAD.encode(&Sha256::digest(&n)[..20]);
        Ok(Self {
            kid,
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            n: URL_SAFE_NO_PAD.encode(&n),
            e: URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
        })
    }
}

/// The published keys; the last one signs new tokens.
pub struct Keys {
    keys: Vec<SigningKey>,
}

impl Keys {
    /// Starts with one key.
    pub fn new(first: SigningKey) -> Self {
        Self { keys: vec![first] }
    }

    /// Adds a key that signs from now on; the oldest drop out past [`PUBLISHED_KEYS`].
    pub fn push(&mut self, key: SigningKey) {
        self.keys.push(key);
        if self.keys.len() > PUBLISHED_KEYS {
            self.keys.remove(0);
        }
    }

    /// Id of the key that signs new tokens.
    pub fn current_kid(&self) -> &str {
        &self.keys.last().expect("at least one key").kid
    }

    /// Signs `claims` as an RS256 JWT with `kid` and `x5t` headers.
    pub fn sign(&self, claims: &Value) -> anyhow::Result<String> {
        self.sign_with(self.keys.last().expect("at least one key"), claims)
    }

    /// Signs with `signer` but names the current key in the header (a forged signature).
    pub fn sign_with(&self, signer: &SigningKey, claims: &Value) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.current_kid().to_string());
        header.x5t = header.kid.clone();
        Ok(jsonwebtoken::encode(&header, claims, &signer.encoding)?)
    }

    /// The JWKS document; `issuer` is per key, templated like Microsoft's.
    pub fn jwks(&self, issuer: &str) -> Value {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .rev()
            .map(|k| {
                json!({
                    "kty": "RSA",
                    "use": "sig",
                    "alg": "RS256",
                    "kid": k.kid,
                    "x5t": k.kid,
                    "n": k.n,
                    "e": k.e,
                    "issuer": issuer,
                })
            })
            .collect();
        json!({ "keys": keys })
    }
}
