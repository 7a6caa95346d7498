//! The RSA keys that sign ID tokens, sealed at rest. There is always a current key (the
//! latest one whose activation has come) and a next one, published in the JWKS from its
//! creation but signing only from its activation, [`KEY_LIFETIME`] later: relying parties
//! that cache the JWKS know a key before any token names it. A key replaced as current stays
//! published for [`RETIRED_AFTER`], longer than any token it signed lives, then is retired.

use std::time::Duration;

use openidconnect::JsonWebKeyId;
use openidconnect::PrivateSigningKey;
use openidconnect::core::{CoreJsonWebKey, CoreJsonWebKeySet, CoreRsaPrivateSigningKey};
use rsa::RsaPrivateKey;
use rsa::pkcs1::{EncodeRsaPrivateKey, LineEnding};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{SigninError, span};
use crate::crypto::{Keyring, random_token};

/// How long a key signs before the next one takes over (the next is published this long).
pub const KEY_LIFETIME: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// How long a replaced key stays published: longer than any ID token lives.
pub const RETIRED_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// The keys as they stand: the one that signs and every one published.
pub struct SigningKeys {
    /// The key that signs now.
    pub current: CoreRsaPrivateSigningKey,
    /// Every published key (current, next and recently replaced), public parts only.
    pub published: Vec<CoreJsonWebKey>,
}

impl SigningKeys {
    /// The JWKS document's value.
    pub fn jwks(&self) -> CoreJsonWebKeySet {
        CoreJsonWebKeySet::new(self.published.clone())
    }
}

/// A stored key, still sealed.
struct Stored {
    kid: String,
    private_key_ciphertext: Vec<u8>,
    private_key_key_id: String,
    activates_at: OffsetDateTime,
}

fn generate() -> Result<(String, String), SigninError> {
    let key = RsaPrivateKey::new(&mut rand::thread_rng(), 2048)
        .map_err(|e| SigninError::Key(format!("generating an RSA key: {e}")))?;
    let pem = key
        .to_pkcs1_pem(LineEnding::LF)
        .map_err(|e| SigninError::Key(format!("encoding an RSA key: {e}")))?;
    Ok((random_token()[..16].to_owned(), pem.to_string()))
}

/// Stores a new key that signs from `activates_at`.
async fn create(
    db: &PgPool,
    keys: &Keyring,
    activates_at: OffsetDateTime,
) -> Result<(), SigninError> {
    // RSA key generation takes a while: off the async threads.
    let (kid, pem) = tokio::task::spawn_blocking(generate)
        .await
        .map_err(|e| SigninError::Key(e.to_string()))??;
    sqlx::query!(
        "insert into signin_keys (kid, private_key_ciphertext, private_key_key_id, activates_at)
         values ($1, $2, $3, $4)",
        kid,
        keys.seal(pem.as_bytes()),
        keys.id(),
        activates_at,
    )
    .execute(db)
    .await?;
    tracing::info!(kid = %kid, activates_at = %activates_at, "sign-in signing key created");
    Ok(())
}

/// Makes sure there is a current and a next key, and retires keys replaced long enough ago.
/// Idempotent; concurrent callers are serialised by an advisory lock.
pub async fn maintain(db: &PgPool, keys: &Keyring) -> Result<(), SigninError> {
    // One process at a time (the lock is released with the transaction).
    let mut tx = db.begin().await?;
    sqlx::query!("select pg_advisory_xact_lock(hashtext('gangway.signin_keys'))")
        .execute(&mut *tx)
        .await?;
    let now = OffsetDateTime::now_utc();
    let live = sqlx::query!(
        "select id, activates_at from signin_keys where retired_at is null order by activates_at"
    )
    .fetch_all(&mut *tx)
    .await?;
    let active: Vec<_> = live.iter().filter(|k| k.activates_at <= now).collect();
    let pending = live.iter().any(|k| k.activates_at > now);
    if active.is_empty() {
        // The very first key signs at once: there was nothing to publish it before.
        create(db, keys, now).await?;
    }
    if !pending {
        create(db, keys, now + span(KEY_LIFETIME)).await?;
    }
    // Replaced keys: every active one but the latest, once the latest has signed long enough.
    if let Some(latest) = active.last()
        && latest.activates_at + span(RETIRED_AFTER) <= now
    {
        let replaced: Vec<Uuid> = active[..active.len() - 1].iter().map(|k| k.id).collect();
        sqlx::query!(
            "update signin_keys set retired_at = now() where id = any($1)",
            &replaced
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Rotates now: the next key (published since its creation) starts signing, and a new next
/// key is made. The key it replaces stays published for [`RETIRED_AFTER`].
pub async fn rotate(db: &PgPool, keys: &Keyring) -> Result<(), SigninError> {
    maintain(db, keys).await?;
    sqlx::query!(
        "update signin_keys set activates_at = now()
         where id = (select id from signin_keys where retired_at is null and activates_at > now()
                     order by activates_at limit 1)"
    )
    .execute(db)
    .await?;
    maintain(db, keys).await
}

/// The keys now: the current one opened, every published one's public part.
pub async fn load(db: &PgPool, keys: &Keyring) -> Result<SigningKeys, SigninError> {
    let mut stored = fetch(db).await?;
    if !stored
        .iter()
        .any(|k| k.activates_at <= OffsetDateTime::now_utc())
    {
        maintain(db, keys).await?;
        stored = fetch(db).await?;
    }
    let now = OffsetDateTime::now_utc();
    let mut current = None;
    let mut published = Vec::with_capacity(stored.len());
    for k in &stored {
        let pem = keys.open(&k.private_key_key_id, &k.private_key_ciphertext)?;
        let pem = String::from_utf8(pem).map_err(|_| SigninError::Key("not PEM".into()))?;
        let signing =
            CoreRsaPrivateSigningKey::from_pem(&pem, Some(JsonWebKeyId::new(k.kid.clone())))
                .map_err(SigninError::Key)?;
        published.push(signing.as_verification_key());
        if k.activates_at <= now {
            // Ordered by activation: the last active one wins.
            current = Some(signing);
        }
    }
    let current = current.ok_or_else(|| SigninError::Key("no signing key is active".into()))?;
    Ok(SigningKeys { current, published })
}

async fn fetch(db: &PgPool) -> Result<Vec<Stored>, SigninError> {
    Ok(sqlx::query_as!(
        Stored,
        "select kid, private_key_ciphertext, private_key_key_id, activates_at
         from signin_keys where retired_at is null order by activates_at"
    )
    .fetch_all(db)
    .await?)
}
