//! Sign-in for the customers' users: Gangway as an OpenID Provider for the provider's own
//! applications. Each sign-in is federated to the user's own Entra tenant (found by the domain
//! of their work email), and the tokens carry what the directory copy knows.
//!
//! The pieces, each a plain module taking a pool or transaction: [`applications`] (the
//! clients and their redirect URIs), [`keys`] (signing keys, sealed, rotated with overlap),
//! [`routing`] (which tenant a user belongs to, and whether it may sign in), [`sessions`]
//! (Gangway's own short SSO session), [`grants`] (codes, access and refresh tokens),
//! [`claims`] (what a token says about the user), [`links`] (users linked to the provider's
//! own account ids), [`history`] (the sign-ins seen), [`assertions`] (`private_key_jwt` client
//! authentication), [`provider`] (discovery, JWKS, signing), [`backchannel`] (logout tokens to
//! the applications when a session ends) and [`ends`] (sessions ended because the copy or the
//! tenant changed).

pub mod applications;
pub mod assertions;
pub mod backchannel;
pub mod claims;
pub mod ends;
pub mod grants;
pub mod history;
pub mod keys;
pub mod links;
pub mod provider;
pub mod redirect;
pub mod routing;
pub mod sessions;

use std::time::Duration;

use sqlx::PgPool;

use crate::crypto::Keyring;

pub use applications::{AppKind, Application, GroupsClaim, NewApplication};

/// How long an authorization code may wait to be redeemed.
pub const CODE_LIFETIME: Duration = Duration::from_secs(120);
/// How long an access token (and an ID token) lives.
pub const ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// How long a refresh token lives unused (each use rotates it).
pub const REFRESH_TOKEN_LIFETIME: Duration = Duration::from_secs(14 * 24 * 60 * 60);
/// Gangway's SSO session ends after this long without a sign-in through it (sliding).
pub const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
/// …and after this long whatever happens.
pub const SESSION_MAX: Duration = Duration::from_secs(12 * 60 * 60);

/// How often the sign-in upkeep task runs ([`upkeep`]).
pub const UPKEEP_PERIOD: Duration = Duration::from_secs(60);

/// How long an ended session (with its grants, tokens and logouts) is kept, for the record.
pub const RETENTION_DAYS: i32 = 30;

/// One round of sign-in upkeep: a current and a next signing key (old ones retired), the
/// sessions that may no longer run ended ([`ends::sweep`]), and what is no longer needed
/// deleted ([`prune`]). Idempotent.
pub async fn upkeep(db: &PgPool, keys: &Keyring) -> Result<String, SigninError> {
    keys::maintain(db, keys).await?;
    let ended = ends::sweep(db).await?;
    let pruned = prune(db).await?;
    Ok(format!(
        "signing keys maintained; {ended} sessions ended; {pruned} old sessions and codes deleted"
    ))
}

/// Deletes codes expired a day ago, tokens expired a day ago (a used refresh token is kept
/// until then, so its reuse still revokes the family), and sessions ended more than
/// [`RETENTION_DAYS`] ago with everything made through them. Returns the sessions and codes
/// deleted.
pub async fn prune(db: &PgPool) -> Result<u64, SigninError> {
    let codes =
        sqlx::query!("delete from signin_codes where expires_at < now() - interval '1 day'")
            .execute(db)
            .await?
            .rows_affected();
    sqlx::query!("delete from signin_tokens where expires_at < now() - interval '1 day'")
        .execute(db)
        .await?;
    let sessions = sqlx::query!(
        "delete from signin_sessions where ended_at < now() - make_interval(days => $1)",
        RETENTION_DAYS
    )
    .execute(db)
    .await?
    .rows_affected();
    Ok(codes + sessions)
}

/// Why a sign-in operation failed for a reason that is not the caller's.
#[derive(Debug, thiserror::Error)]
pub enum SigninError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// A sealed signing key could not be opened.
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
    /// A signing key could not be made, read or used.
    #[error("signing key: {0}")]
    Key(String),
}

/// `time` from a `std` duration (all ours are small).
pub(crate) fn span(d: Duration) -> time::Duration {
    time::Duration::seconds(d.as_secs() as i64)
}
