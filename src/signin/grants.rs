//! Authorization codes, access tokens and refresh tokens. Only SHA-256 hashes are stored.
//!
//! A redeemed code makes a *grant*: its access tokens and its refresh-token family. Revoking
//! the grant ends them all, which is what happens when a code is presented again (replay), a
//! refresh token is used a second time (theft), the user logs out, or the copy learns the user
//! was disabled or deleted.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sqlx::{PgPool, Postgres, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use super::claims::{self, Standing};
use super::{
    ACCESS_TOKEN_LIFETIME, Application, CODE_LIFETIME, REFRESH_TOKEN_LIFETIME, SigninError, span,
};
use crate::crypto::{constant_time_eq, random_token, sha256};

/// Why the token endpoint refuses a grant, as OAuth names it.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// `invalid_grant`: the code or refresh token is unknown, used, expired, revoked or not
    /// this client's, or the PKCE verifier or redirect URI does not match. The text is for
    /// logs and the `error_description`.
    #[error("{0}")]
    InvalidGrant(&'static str),
    /// Something failed that is not the caller's doing.
    #[error(transparent)]
    Internal(#[from] SigninError),
}

impl From<sqlx::Error> for TokenError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

/// An authorize request's answer, ready to be bound to a code.
pub struct CodeRequest<'a> {
    /// The application.
    pub application_id: Uuid,
    /// Gangway's SSO session.
    pub session_id: Uuid,
    /// The redirect URI it was sent to (the token request must repeat it).
    pub redirect_uri: &'a str,
    /// The S256 PKCE challenge, if any (public clients always have one).
    pub code_challenge: Option<&'a str>,
    /// The nonce to put in the ID token.
    pub nonce: Option<&'a str>,
    /// The scopes granted.
    pub scopes: &'a [String],
}

/// Mints a code for `req`, valid once for [`CODE_LIFETIME`].
pub async fn issue_code(db: &PgPool, req: &CodeRequest<'_>) -> Result<String, SigninError> {
    let code = random_token();
    sqlx::query!(
        "insert into signin_codes
           (code_sha256, application_id, session_id, redirect_uri, code_challenge, nonce, scopes, expires_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
        sha256(code.as_bytes()),
        req.application_id,
        req.session_id,
        req.redirect_uri,
        req.code_challenge,
        req.nonce,
        req.scopes,
        OffsetDateTime::now_utc() + span(CODE_LIFETIME),
    )
    .execute(db)
    .await?;
    Ok(code)
}

/// Tokens just issued under a grant.
#[derive(Debug)]
pub struct Issued {
    /// The grant.
    pub grant_id: Uuid,
    /// Gangway's SSO session it was made in.
    pub session_id: Uuid,
    /// The scopes granted.
    pub scopes: Vec<String>,
    /// The nonce of the authorize request (code redemption only).
    pub nonce: Option<String>,
    /// A new access token.
    pub access_token: String,
    /// A new refresh token, when `offline_access` was granted.
    pub refresh_token: Option<String>,
}

/// `BASE64URL(SHA256(verifier))`, the S256 challenge of a PKCE verifier (RFC 7636 §4.2).
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha256(verifier.as_bytes()))
}

/// Whether `verifier` is of the form RFC 7636 §4.1 allows.
fn verifier_well_formed(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// Revokes grant `id` (idempotent) with `reason`.
async fn revoke_grant(
    tx: &mut Transaction<'_, Postgres>,
    id: Uuid,
    reason: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update signin_grants set revoked_at = now(), revoked_reason = $2
         where id = $1 and revoked_at is null",
        id,
        reason
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Mints an access token (and a refresh token with `offline_access`) under `grant_id`.
async fn mint(
    tx: &mut Transaction<'_, Postgres>,
    grant_id: Uuid,
    scopes: &[String],
) -> Result<(String, Option<String>), sqlx::Error> {
    let now = OffsetDateTime::now_utc();
    let access = random_token();
    let refresh = scopes
        .iter()
        .any(|s| s == "offline_access")
        .then(random_token);
    let mut hashes = vec![sha256(access.as_bytes())];
    let mut kinds = vec!["access".to_owned()];
    let mut expiries = vec![now + span(ACCESS_TOKEN_LIFETIME)];
    if let Some(r) = &refresh {
        hashes.push(sha256(r.as_bytes()));
        kinds.push("refresh".to_owned());
        expiries.push(now + span(REFRESH_TOKEN_LIFETIME));
    }
    sqlx::query!(
        "insert into signin_tokens (token_sha256, grant_id, kind, expires_at)
         select h, $1, k, e from unnest($2::bytea[], $3::text[], $4::timestamptz[]) as x(h, k, e)",
        grant_id,
        &hashes,
        &kinds,
        &expiries,
    )
    .execute(&mut **tx)
    .await?;
    Ok((access, refresh))
}

/// Redeems an authorization code for `app`. The checks, in order: the code exists; it was not
/// used before (a second use revokes every token the first gave); it is `app`'s; it has not
/// expired; `redirect_uri` is the one the code was sent to; the PKCE verifier matches the
/// challenge (required when there was one, refused when there was none); Gangway's session is
/// still live. The code is spent whatever the outcome.
pub async fn redeem_code(
    db: &PgPool,
    app: &Application,
    code: &str,
    redirect_uri: Option<&str>,
    verifier: Option<&str>,
) -> Result<Issued, TokenError> {
    let hash = sha256(code.as_bytes());
    let mut tx = db.begin().await?;
    let Some(row) = sqlx::query!(
        r#"select c.application_id, c.session_id, c.redirect_uri, c.code_challenge, c.nonce,
                  c.scopes, c.expires_at, c.used_at,
                  (s.ended_at is null) as "session_live!"
           from signin_codes c join signin_sessions s on s.id = c.session_id
           where c.code_sha256 = $1 for update of c"#,
        hash
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Err(TokenError::InvalidGrant("the code is unknown"));
    };
    if row.used_at.is_some() {
        let grant =
            sqlx::query_scalar!("select id from signin_grants where code_sha256 = $1", hash)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(grant) = grant {
            revoke_grant(&mut tx, grant, "authorization code presented again").await?;
        }
        tx.commit().await?;
        tracing::warn!(application = %app.client_id, "authorization code replayed; its tokens are revoked");
        return Err(TokenError::InvalidGrant("the code was already used"));
    }
    sqlx::query!(
        "update signin_codes set used_at = now() where code_sha256 = $1",
        hash
    )
    .execute(&mut *tx)
    .await?;
    let refusal = if row.application_id != app.id {
        Some("the code was issued to another client")
    } else if row.expires_at <= OffsetDateTime::now_utc() {
        Some("the code has expired")
    } else if redirect_uri != Some(row.redirect_uri.as_str()) {
        Some("redirect_uri differs from the authorization request's")
    } else if let Some(problem) = pkce_problem(row.code_challenge.as_deref(), verifier) {
        Some(problem)
    } else if !row.session_live {
        Some("the user has signed out since")
    } else {
        None
    };
    if let Some(why) = refusal {
        tx.commit().await?;
        return Err(TokenError::InvalidGrant(why));
    }
    let grant_id = sqlx::query_scalar!(
        "insert into signin_grants (application_id, session_id, code_sha256, scopes)
         values ($1, $2, $3, $4) returning id",
        app.id,
        row.session_id,
        hash,
        &row.scopes,
    )
    .fetch_one(&mut *tx)
    .await?;
    let (access_token, refresh_token) = mint(&mut tx, grant_id, &row.scopes).await?;
    tx.commit().await?;
    Ok(Issued {
        grant_id,
        session_id: row.session_id,
        scopes: row.scopes,
        nonce: row.nonce,
        access_token,
        refresh_token,
    })
}

/// What is wrong with the PKCE proof, if anything.
fn pkce_problem(challenge: Option<&str>, verifier: Option<&str>) -> Option<&'static str> {
    match (challenge, verifier) {
        (None, None) => None,
        (None, Some(_)) => Some("a code_verifier was sent for a code issued without a challenge"),
        (Some(_), None) => Some("code_verifier is missing"),
        (Some(c), Some(v))
            if verifier_well_formed(v) && constant_time_eq(c.as_bytes(), s256(v).as_bytes()) =>
        {
            None
        }
        (Some(_), Some(_)) => Some("code_verifier does not match the code_challenge"),
    }
}

/// Uses a refresh token of `app`. The checks, in order: the token exists and is a refresh
/// token; it is `app`'s; it was not used before (a second use revokes the whole family); its
/// grant is not revoked; it has not expired; the session was not logged out; the tenant was
/// not offboarded or turned off, and the user is still in the copy, enabled and not deleted
/// (else the grant is revoked). The token is spent and a new one issued (rotation).
pub async fn refresh(db: &PgPool, app: &Application, token: &str) -> Result<Issued, TokenError> {
    let hash = sha256(token.as_bytes());
    let mut tx = db.begin().await?;
    let Some(row) = sqlx::query!(
        r#"select t.grant_id, t.expires_at, t.used_at, g.application_id, g.session_id, g.scopes,
                  g.revoked_at, s.ended_at, s.tenant_id, s.object_id,
                  tn.status in ('offboarded', 'disabled') as "tenant_gone!"
           from signin_tokens t join signin_grants g on g.id = t.grant_id
             join signin_sessions s on s.id = g.session_id join tenants tn on tn.id = s.tenant_id
           where t.token_sha256 = $1 and t.kind = 'refresh' for update of t"#,
        hash
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Err(TokenError::InvalidGrant("the refresh token is unknown"));
    };
    if row.application_id != app.id {
        return Err(TokenError::InvalidGrant(
            "the refresh token was issued to another client",
        ));
    }
    if row.used_at.is_some() {
        revoke_grant(&mut tx, row.grant_id, "refresh token used again").await?;
        tx.commit().await?;
        tracing::warn!(application = %app.client_id, "refresh token reused; its family is revoked");
        return Err(TokenError::InvalidGrant(
            "the refresh token was already used",
        ));
    }
    if row.revoked_at.is_some() {
        return Err(TokenError::InvalidGrant("the refresh token was revoked"));
    }
    if row.expires_at <= OffsetDateTime::now_utc() {
        return Err(TokenError::InvalidGrant("the refresh token has expired"));
    }
    if row.ended_at.is_some() {
        return Err(TokenError::InvalidGrant("the user has signed out"));
    }
    // An offboarded tenant's copy is erased, so its users would read as not copied yet.
    let standing = if row.tenant_gone {
        Standing::Unknown
    } else {
        claims::standing(db, row.tenant_id, row.object_id).await?
    };
    match standing {
        Standing::Present(_) | Standing::NotYetCopied => {}
        Standing::Disabled | Standing::Deleted | Standing::Unknown | Standing::OutOfScope => {
            revoke_grant(
                &mut tx,
                row.grant_id,
                "the user is disabled, gone or out of scope",
            )
            .await?;
            tx.commit().await?;
            return Err(TokenError::InvalidGrant("the user may no longer sign in"));
        }
    }
    sqlx::query!(
        "update signin_tokens set used_at = now() where token_sha256 = $1",
        hash
    )
    .execute(&mut *tx)
    .await?;
    let (access_token, refresh_token) = mint(&mut tx, row.grant_id, &row.scopes).await?;
    tx.commit().await?;
    Ok(Issued {
        grant_id: row.grant_id,
        session_id: row.session_id,
        scopes: row.scopes,
        nonce: None,
        access_token,
        refresh_token,
    })
}

/// What a live access token grants.
#[derive(Debug, Clone)]
pub struct AccessGrant {
    /// The application it was issued to.
    pub application_id: Uuid,
    /// Gangway's SSO session.
    pub session_id: Uuid,
    /// The scopes granted.
    pub scopes: Vec<String>,
}

/// The grant behind access token `token`, if it is live (not expired, its grant not revoked).
pub async fn access(db: &PgPool, token: &str) -> Result<Option<AccessGrant>, SigninError> {
    Ok(sqlx::query_as!(
        AccessGrant,
        "select g.application_id, g.session_id, g.scopes
         from signin_tokens t join signin_grants g on g.id = t.grant_id
         where t.token_sha256 = $1 and t.kind = 'access' and t.expires_at > now()
           and g.revoked_at is null",
        sha256(token.as_bytes())
    )
    .fetch_optional(db)
    .await?)
}

/// RFC 7009: revokes `token` if it is `app`'s. A refresh token takes its whole grant with it
/// (the access tokens too); an access token only itself. Unknown tokens are no error.
pub async fn revoke(db: &PgPool, app: &Application, token: &str) -> Result<(), SigninError> {
    let hash = sha256(token.as_bytes());
    let mut tx = db.begin().await?;
    let row = sqlx::query!(
        "select t.kind, t.grant_id from signin_tokens t join signin_grants g on g.id = t.grant_id
         where t.token_sha256 = $1 and g.application_id = $2",
        hash,
        app.id
    )
    .fetch_optional(&mut *tx)
    .await?;
    match row {
        Some(r) if r.kind == "refresh" => {
            revoke_grant(&mut tx, r.grant_id, "refresh token revoked by the client").await?;
        }
        Some(_) => {
            sqlx::query!(
                "update signin_tokens set expires_at = least(expires_at, now()) where token_sha256 = $1",
                hash
            )
            .execute(&mut *tx)
            .await?;
        }
        None => {}
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc_7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let challenge = s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(
            pkce_problem(
                Some(&challenge),
                Some("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
            ),
            None
        );
        assert!(pkce_problem(Some(&challenge), None).is_some());
        assert!(pkce_problem(Some(&challenge), Some("x")).is_some());
        assert!(pkce_problem(None, Some("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")).is_some());
    }
}
