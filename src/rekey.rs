//! Key rotation: re-seal every stored secret under the current key, so earlier keys can be
//! retired.

use sqlx::{PgConnection, PgPool};

use crate::crypto::{CryptoError, Keyring};

/// One sealed column: what it holds (as the report names it), its table, the statement reading
/// its rows sealed under another key than `$1` (id as text, key id, ciphertext), and the one
/// writing a row back (`$1` id, `$2` ciphertext, `$3` key id).
struct Sealed {
    holds: &'static str,
    table: &'static str,
    select: &'static str,
    update: &'static str,
}

/// Every sealed column. A sealed column added to the schema belongs here
/// (`every_sealed_column_is_resealed_by_rekey` checks).
const SEALED: [Sealed; 11] = [
    Sealed {
        holds: "tenant credential",
        table: "tenants",
        select: "select id::text, credential_key_id, credential_ciphertext from tenants
                 where credential_key_id <> $1 for update",
        update: "update tenants set credential_ciphertext = $2, credential_key_id = $3 where id::text = $1",
    },
    Sealed {
        holds: "queued email",
        table: "outbox",
        select: "select id::text, payload_key_id, payload_ciphertext from outbox
                 where payload_key_id <> $1 for update",
        update: "update outbox set payload_ciphertext = $2, payload_key_id = $3 where id::text = $1",
    },
    // Expired sessions are left to the sweeper; live ones move, so nobody is signed out.
    Sealed {
        holds: "session",
        table: "sessions",
        select: "select encode(id_sha256, 'hex'), payload_key_id, payload_ciphertext from sessions
                 where payload_key_id <> $1 and expires_at > now() for update",
        update: "update sessions set payload_ciphertext = $2, payload_key_id = $3
                 where id_sha256 = decode($1, 'hex')",
    },
    Sealed {
        holds: "secret setting",
        table: "settings",
        select: "select key, key_id, ciphertext from settings where key_id <> $1 for update",
        update: "update settings set ciphertext = $2, key_id = $3 where key = $1",
    },
    Sealed {
        holds: "webhook secret",
        table: "webhook_endpoints",
        select: "select id::text, secret_key_id, secret_ciphertext from webhook_endpoints
                 where secret_key_id <> $1 for update",
        update: "update webhook_endpoints set secret_ciphertext = $2, secret_key_id = $3 where id::text = $1",
    },
    // During a webhook secret's rotation overlap.
    Sealed {
        holds: "webhook secret",
        table: "webhook_endpoints",
        select: "select id::text, previous_secret_key_id, previous_secret_ciphertext from webhook_endpoints
                 where previous_secret_key_id <> $1 for update",
        update: "update webhook_endpoints set previous_secret_ciphertext = $2, previous_secret_key_id = $3
                 where id::text = $1",
    },
    Sealed {
        holds: "private key",
        table: "signin_keys",
        select: "select id::text, private_key_key_id, private_key_ciphertext from signin_keys
                 where private_key_key_id <> $1 for update",
        update: "update signin_keys set private_key_ciphertext = $2, private_key_key_id = $3 where id::text = $1",
    },
    Sealed {
        holds: "private key",
        table: "provider_certificates",
        select: "select id::text, key_id, key_ciphertext from provider_certificates
                 where key_id <> $1 for update",
        update: "update provider_certificates set key_ciphertext = $2, key_id = $3 where id::text = $1",
    },
    Sealed {
        holds: "SCIM token",
        table: "scim_connections",
        select: "select id::text, token_key_id, token_ciphertext from scim_connections
                 where token_key_id <> $1 for update",
        update: "update scim_connections set token_ciphertext = $2, token_key_id = $3 where id::text = $1",
    },
    Sealed {
        holds: "setup device code",
        table: "setup_sign_ins",
        select: "select id::text, key_id, device_code from setup_sign_ins
                 where device_code is not null and key_id <> $1 for update",
        update: "update setup_sign_ins set device_code = $2, key_id = $3 where id::text = $1",
    },
    // Keyed by (caller, key): the row's id is `{caller uuid}/{key}`, the key from character 38.
    Sealed {
        holds: "kept API answer",
        table: "api_idempotency",
        select: "select caller_id::text || '/' || key, response_key_id, response_ciphertext
                 from api_idempotency where response_key_id <> $1 for update",
        update: "update api_idempotency set response_ciphertext = $2, response_key_id = $3
                 where caller_id = left($1, 36)::uuid and key = substr($1, 38)",
    },
];

/// How many sealed values of each kind moved to the current key, in [`SEALED`]'s order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Resealed(pub Vec<(&'static str, u64)>);

impl std::fmt::Display for Resealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let counts: Vec<String> = self
            .0
            .iter()
            .map(|(holds, n)| format!("{n} {holds}(s)"))
            .collect();
        f.write_str(&counts.join(", "))
    }
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

/// Re-seals every value of [`SEALED`] sealed under any other key than the current one, in one
/// transaction: all move, or none does.
pub async fn reseal_all(db: &PgPool, keys: &Keyring) -> Result<Resealed, RekeyError> {
    let mut tx = db.begin().await?;
    let mut done: Vec<(&'static str, u64)> = Vec::new();
    for sealed in &SEALED {
        let moved = reseal(&mut tx, keys, sealed).await?;
        match done.iter_mut().find(|(holds, _)| *holds == sealed.holds) {
            Some((_, n)) => *n += moved,
            None => done.push((sealed.holds, moved)),
        }
    }
    tx.commit().await?;
    Ok(Resealed(done))
}

async fn reseal(tx: &mut PgConnection, keys: &Keyring, column: &Sealed) -> Result<u64, RekeyError> {
    // The statements come from the table above, so one loop reseals every column: checked
    // queries need literal text, which a statement passed in is not.
    let rows: Vec<(String, String, Vec<u8>)> = sqlx::query_as(column.select)
        .bind(keys.id())
        .fetch_all(&mut *tx)
        .await?;
    for (id, key_id, sealed) in &rows {
        let plain = keys
            .open(key_id, sealed)
            .map_err(|source| RekeyError::Unreadable {
                table: column.table,
                id: id.clone(),
                source,
            })?;
        sqlx::query(column.update)
            .bind(id)
            .bind(keys.seal(&plain))
            .bind(keys.id())
            .execute(&mut *tx)
            .await?;
    }
    Ok(rows.len() as u64)
}
