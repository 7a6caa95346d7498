//! Key rotation: re-seal every stored secret under the current key, so earlier keys can be
//! retired.

use sqlx::{PgConnection, PgPool};

use crate::crypto::{CryptoError, Keyring};

/// How many sealed values were moved to the current key.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Resealed {
    /// Tenant credentials re-sealed.
    pub tenant_credentials: u64,
    /// Queued mails re-sealed.
    pub queued_mail: u64,
    /// Sessions re-sealed.
    pub sessions: u64,
    /// Secret settings (the provider app's client secret) re-sealed.
    pub settings: u64,
    /// Webhook endpoint secrets (current and, during a rotation's overlap, previous) re-sealed.
    pub webhook_secrets: u64,
    /// Private keys re-sealed: the ID-token signing keys and the provider app's certificates.
    pub private_keys: u64,
    /// SCIM connections' bearer tokens re-sealed.
    pub scim_tokens: u64,
    /// Device codes of setup sign-ins still waiting re-sealed.
    pub setup_codes: u64,
    /// JSON API answers kept for Idempotency-Key replays re-sealed.
    pub api_responses: u64,
}

/// Why re-sealing stopped; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum RekeyError {
    #[error("{table} row {id}: {source} (add that key to GANGWAY_PREVIOUS_ENCRYPTION_KEYS)")]
    /// A value no configured key opens: the rekey stops and names it.
    Unreadable {
        /// The table holding it.
        table: &'static str,
        /// The row's id.
        id: String,
        /// Why it did not open.
        source: CryptoError,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Re-seals every sealed value — tenant credentials, queued mail, live sessions, secret
/// settings, webhook secrets, private keys, SCIM tokens, waiting setup sign-ins' device codes,
/// kept API answers —
/// sealed under any other key than the current one, in one transaction: all move, or none does.
/// A sealed column added to the schema belongs here (`every_sealed_column_is_resealed` checks).
pub async fn reseal_all(db: &PgPool, keys: &Keyring) -> Result<Resealed, RekeyError> {
    let mut tx = db.begin().await?;
    let tenant_credentials = reseal(
        &mut tx,
        keys,
        "tenants",
        "select id::text, credential_key_id, credential_ciphertext from tenants
         where credential_key_id <> $1 for update",
        "update tenants set credential_ciphertext = $2, credential_key_id = $3 where id::text = $1",
    )
    .await?;
    let queued_mail = reseal(
        &mut tx,
        keys,
        "outbox",
        "select id::text, payload_key_id, payload_ciphertext from outbox
         where payload_key_id <> $1 for update",
        "update outbox set payload_ciphertext = $2, payload_key_id = $3 where id::text = $1",
    )
    .await?;
    // Expired sessions are left to the sweeper; live ones move, so nobody is signed out.
    let sessions = reseal(
        &mut tx,
        keys,
        "sessions",
        "select encode(id_sha256, 'hex'), payload_key_id, payload_ciphertext from sessions
         where payload_key_id <> $1 and expires_at > now() for update",
        "update sessions set payload_ciphertext = $2, payload_key_id = $3
         where id_sha256 = decode($1, 'hex')",
    )
    .await?;
    let settings = reseal(
        &mut tx,
        keys,
        "settings",
        "select key, key_id, ciphertext from settings where key_id <> $1 for update",
        "update settings set ciphertext = $2, key_id = $3 where key = $1",
    )
    .await?;
    let webhook_secrets = reseal(
        &mut tx,
        keys,
        "webhook_endpoints",
        "select id::text, secret_key_id, secret_ciphertext from webhook_endpoints
         where secret_key_id <> $1 for update",
        "update webhook_endpoints set secret_ciphertext = $2, secret_key_id = $3 where id::text = $1",
    )
    .await?
        + reseal(
            &mut tx,
            keys,
            "webhook_endpoints",
            "select id::text, previous_secret_key_id, previous_secret_ciphertext from webhook_endpoints
             where previous_secret_key_id <> $1 for update",
            "update webhook_endpoints set previous_secret_ciphertext = $2, previous_secret_key_id = $3
             where id::text = $1",
        )
        .await?;
    let private_keys = reseal(
        &mut tx,
        keys,
        "signin_keys",
        "select id::text, private_key_key_id, private_key_ciphertext from signin_keys
         where private_key_key_id <> $1 for update",
        "update signin_keys set private_key_ciphertext = $2, private_key_key_id = $3 where id::text = $1",
    )
    .await?
        + reseal(
            &mut tx,
            keys,
            "provider_certificates",
            "select id::text, key_id, key_ciphertext from provider_certificates
             where key_id <> $1 for update",
            "update provider_certificates set key_ciphertext = $2, key_id = $3 where id::text = $1",
        )
        .await?;
    let scim_tokens = reseal(
        &mut tx,
        keys,
        "scim_connections",
        "select id::text, token_key_id, token_ciphertext from scim_connections
         where token_key_id <> $1 for update",
        "update scim_connections set token_ciphertext = $2, token_key_id = $3 where id::text = $1",
    )
    .await?;
    let setup_codes = reseal(
        &mut tx,
        keys,
        "setup_sign_ins",
        "select id::text, key_id, device_code from setup_sign_ins
         where device_code is not null and key_id <> $1 for update",
        "update setup_sign_ins set device_code = $2, key_id = $3 where id::text = $1",
    )
    .await?;
    // Keyed by (caller, key): the row's id is `{caller uuid}/{key}`, the key from character 38.
    let api_responses = reseal(
        &mut tx,
        keys,
        "api_idempotency",
        "select caller_id::text || '/' || key, response_key_id, response_ciphertext
         from api_idempotency where response_key_id <> $1 for update",
        "update api_idempotency set response_ciphertext = $2, response_key_id = $3
         where caller_id = left($1, 36)::uuid and key = substr($1, 38)",
    )
    .await?;
    tx.commit().await?;
    Ok(Resealed {
        tenant_credentials,
        queued_mail,
        sessions,
        settings,
        webhook_secrets,
        private_keys,
        scim_tokens,
        setup_codes,
        api_responses,
    })
}

async fn reseal(
    tx: &mut PgConnection,
    keys: &Keyring,
    table: &'static str,
    select: &str,
    update: &str,
) -> Result<u64, RekeyError> {
    // The table's statements come from the caller, so one loop reseals every table: checked
    // queries need literal text, which a statement passed in is not.
    let rows: Vec<(String, String, Vec<u8>)> = sqlx::query_as(select)
        .bind(keys.id())
        .fetch_all(&mut *tx)
        .await?;
    for (id, key_id, sealed) in &rows {
        let plain = keys
            .open(key_id, sealed)
            .map_err(|source| RekeyError::Unreadable {
                table,
                id: id.clone(),
                source,
            })?;
        sqlx::query(update)
            .bind(id)
            .bind(keys.seal(&plain))
            .bind(keys.id())
            .execute(&mut *tx)
            .await?;
    }
    Ok(rows.len() as u64)
}
