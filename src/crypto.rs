//! Encryption of secrets at rest (AES-256-GCM) and hashing of link tokens.

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{Aead, KeyInit, OsRng};
use aes_gcm::{AeadCore, Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

const NONCE_LEN: usize = 12;

/// The key that seals secrets stored in the database, with a short id stored beside each
/// ciphertext so keys can be rotated.
#[derive(Clone)]
pub struct EncryptionKey {
    id: String,
    cipher: Aes256Gcm,
}

/// Why a key or a ciphertext could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error(
        "must be 32 random bytes, base64-encoded (generate one with `openssl rand -base64 32`)"
    )]
    /// The key is not 32 bytes of base64.
    BadKey,
    /// No configured key has this id.
    #[error("the ciphertext was sealed with key {0}, which is not configured")]
    UnknownKey(String),
    /// The ciphertext does not open (tampered or truncated).
    #[error("the ciphertext is damaged or was sealed with another key")]
    Damaged,
}

impl EncryptionKey {
    /// Parses a base64-encoded 32-byte key.
    pub fn from_base64(encoded: &str) -> Result<Self, CryptoError> {
        let bytes = STANDARD
            .decode(encoded.trim())
            .map_err(|_| CryptoError::BadKey)?;
        if bytes.len() != 32 {
            return Err(CryptoError::BadKey);
        }
        let id = hex(&Sha256::digest(&bytes)[..4]);
        let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| CryptoError::BadKey)?;
        Ok(Self { id, cipher })
    }

    /// A fresh random key, base64-encoded (for `demo` and tests).
    pub fn generate_base64() -> String {
        STANDARD.encode(Aes256Gcm::generate_key(OsRng))
    }

    /// The key id stored beside each ciphertext.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Seals `plaintext`; the output is nonce || ciphertext.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let mut out = nonce.to_vec();
        out.extend(
            self.cipher
                .encrypt(&nonce, plaintext)
                .expect("AES-GCM encryption cannot fail for in-memory buffers"),
        );
        out
    }

    /// Opens what [`seal`](Self::seal) produced under the key named `key_id`.
    pub fn open(&self, key_id: &str, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if key_id != self.id {
            return Err(CryptoError::UnknownKey(key_id.to_owned()));
        }
        if sealed.len() < NONCE_LEN {
            return Err(CryptoError::Damaged);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::Damaged)?;
        self.cipher
            .decrypt(&Nonce::from(nonce), ciphertext)
            .map_err(|_| CryptoError::Damaged)
    }
}

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptionKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The current key, which seals, and earlier ones kept only to open what they sealed until
/// `gangway rekey` has re-sealed it.
#[derive(Clone, Debug)]
pub struct Keyring {
    current: EncryptionKey,
    previous: Vec<EncryptionKey>,
}

impl Keyring {
    /// A keyring sealing with `current` and still opening with `previous`.
    pub fn new(current: EncryptionKey, previous: Vec<EncryptionKey>) -> Self {
        Self { current, previous }
    }

    /// The id of the key that seals.
    pub fn id(&self) -> &str {
        self.current.id()
    }

    /// Seals with the current key.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        self.current.seal(plaintext)
    }

    /// Opens with whichever key `key_id` names.
    pub fn open(&self, key_id: &str, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id() == key_id)
            .ok_or_else(|| CryptoError::UnknownKey(key_id.to_owned()))?
            .open(key_id, sealed)
    }
}

impl From<EncryptionKey> for Keyring {
    fn from(current: EncryptionKey) -> Self {
        Self::new(current, Vec::new())
    }
}

/// 32 bytes from the OS's random source, base64url without padding (43 characters): link
/// tokens, CSRF tokens.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

/// Compares secrets in time that does not depend on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key() {
        let key = EncryptionKey::from_base64(&EncryptionKey::generate_base64()).unwrap();
        let sealed = key.seal(b"refresh-token");
        assert!(!sealed.windows(13).any(|w| w == b"refresh-token"));
        assert_eq!(key.open(key.id(), &sealed).unwrap(), b"refresh-token");

        let other = EncryptionKey::from_base64(&EncryptionKey::generate_base64()).unwrap();
        assert!(matches!(
            other.open(key.id(), &sealed),
            Err(CryptoError::UnknownKey(_))
        ));
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(matches!(
            key.open(key.id(), &tampered),
            Err(CryptoError::Damaged)
        ));
    }

    #[test]
    fn a_keyring_seals_with_the_current_key_and_opens_with_any() {
        let old = EncryptionKey::from_base64(&EncryptionKey::generate_base64()).unwrap();
        let new = EncryptionKey::from_base64(&EncryptionKey::generate_base64()).unwrap();
        let sealed_before = old.seal(b"secret");
        let ring = Keyring::new(new.clone(), vec![old.clone()]);
        assert_eq!(ring.open(old.id(), &sealed_before).unwrap(), b"secret");
        assert_eq!(ring.id(), new.id());
        assert_eq!(new.open(new.id(), &ring.seal(b"later")).unwrap(), b"later");
        let without_old = Keyring::from(new);
        assert!(matches!(
            without_old.open(old.id(), &sealed_before),
            Err(CryptoError::UnknownKey(_))
        ));
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert!(EncryptionKey::from_base64("not base64!").is_err());
        assert!(EncryptionKey::from_base64(&STANDARD.encode([0u8; 16])).is_err());
    }
}
