//! `private_key_jwt` client authentication (RFC 7523 §2.2 and §3, OpenID Connect Core §9): a
//! web application that registered its public keys (a JWKS) proves itself at the token and
//! revocation endpoints with a JWT it signed (RS256): `iss` and `sub` its client id, `aud` the
//! token endpoint (or the issuer), `exp` within [`MAX_LIFETIME`], a `jti` used once.
//! Registering keys replaces the application's client secret.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::JsonWebKey;
use openidconnect::core::{CoreJsonWebKeySet, CoreJwsSigningAlgorithm};
use serde_json::{Value, json};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::applications::{self, ApplicationError, Field};
use super::{AppKind, Application, SigninError, span};
use crate::audit::{self, Action, Actor};

/// The `client_assertion_type` of a JWT client assertion.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The furthest in the future an assertion may expire: its `jti` is remembered that long.
pub const MAX_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// Clock difference allowed between the application and Gangway.
const SKEW: Duration = Duration::from_secs(60);
/// The most keys an application may register (enough to rotate).
const MAX_KEYS: usize = 10;

/// Registers `jwks` (a JWK Set of RSA signing keys) as web application `id`'s keys: from now
/// on it authenticates with assertions signed by one of them, and its client secret is erased.
pub async fn register_keys(
    db: &PgPool,
    id: Uuid,
    jwks: &Value,
    actor: &Actor,
) -> Result<Application, ApplicationError> {
    let invalid = |m: &str| ApplicationError::invalid(Field::Keys, m);
    let set: CoreJsonWebKeySet = serde_json::from_value(jwks.clone())
        .map_err(|_| invalid("the keys must be a JWK Set: {\"keys\": [...]}"))?;
    if set.keys().is_empty() || set.keys().len() > MAX_KEYS {
        return Err(invalid("give 1 to 10 keys"));
    }
    // Each key must be an RSA public key allowed to check RS256 signatures: checking an empty
    // signature fails in the cryptography for such a key only; any other is refused before.
    let usable = set.keys().iter().all(|k| {
        k.key_id().is_some()
            && k.verify_signature(&CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, b"", b"")
                .is_err_and(|e| {
                    matches!(e, openidconnect::SignatureVerificationError::CryptoError(_))
                })
    });
    if !usable {
        return Err(invalid(
            "each key must be an RSA public key with a kid, for RS256 signatures",
        ));
    }
    let app = applications::by_id(db, id)
        .await?
        .filter(|a| a.kind == AppKind::Web)
        .ok_or_else(|| invalid("only a web application authenticates with private_key_jwt"))?;
    let mut tx = db.begin().await?;
    sqlx::query!(
        "update signin_applications set jwks = $2, client_secret_sha256 = null where id = $1",
        id,
        jwks
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        actor,
        Action::SigninApplicationKeysRegistered,
        None,
        None,
        json!({ "application": app.name, "client_id": app.client_id, "keys": set.keys().len() }),
    )
    .await?;
    tx.commit().await?;
    Ok(app)
}

/// The keys application `id` registered, if it did.
async fn registered_set(db: &PgPool, id: Uuid) -> Result<Option<CoreJsonWebKeySet>, SigninError> {
    let jwks = sqlx::query_scalar!("select jwks from signin_applications where id = $1", id)
        .fetch_optional(db)
        .await?
        .flatten();
    Ok(jwks.and_then(|j| serde_json::from_value(j).ok()))
}

/// The `kid`s of the keys application `id` registered: `None` while it has none (a web
/// application then holds a client secret: the database keeps exactly one of the two).
pub async fn registered_kids(db: &PgPool, id: Uuid) -> Result<Option<Vec<String>>, SigninError> {
    Ok(registered_set(db, id).await?.map(|set| {
        set.keys()
            .iter()
            .filter_map(|k| k.key_id().map(|kid| kid.as_str().to_owned()))
            .collect()
    }))
}

/// The claims an assertion must carry, as read (then checked).
#[derive(serde::Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: Audience,
    exp: i64,
    nbf: Option<i64>,
    jti: String,
}

/// `aud`: one value or several.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn names_any(&self, wanted: &[&str]) -> bool {
        match self {
            Self::One(a) => wanted.contains(&a.as_str()),
            Self::Many(all) => all.iter().any(|a| wanted.contains(&a.as_str())),
        }
    }
}

/// Why an assertion is refused (for the log; the client only hears `invalid_client`).
fn refuse(why: &str) -> Result<Option<Application>, SigninError> {
    tracing::info!(why, "client assertion refused");
    Ok(None)
}

/// Authenticates a client by `assertion` addressed to one of `audiences` (the token endpoint's
/// URL, the issuer). The checks, in order: a compact RS256 JWS whose `kid` (or the only key)
/// names a registered key of the application its `iss` names, `sub` = `iss`, the signature,
/// `aud`, `exp` neither past nor beyond [`MAX_LIFETIME`], `nbf` not to come, the `jti` never
/// seen (then remembered until `exp`). `None` when any fails.
pub async fn authenticate(
    db: &PgPool,
    assertion: &str,
    audiences: &[&str],
) -> Result<Option<Application>, SigninError> {
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, payload, signature] = parts[..] else {
        return refuse("not a compact JWS");
    };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).ok();
    let (Some(header_json), Some(payload_json), Some(signature)) =
        (decode(header), decode(payload), decode(signature))
    else {
        return refuse("not base64url");
    };
    let Ok(header) = serde_json::from_slice::<Value>(&header_json) else {
        return refuse("the header is not JSON");
    };
    if header["alg"] != "RS256" {
        return refuse("only RS256 is accepted");
    }
    let Ok(claims) = serde_json::from_slice::<Claims>(&payload_json) else {
        return refuse("iss, sub, aud, exp or jti is missing");
    };
    if claims.sub != claims.iss || claims.jti.is_empty() || claims.jti.len() > 200 {
        return refuse("sub differs from iss, or the jti is unusable");
    }
    let Some(app) = applications::by_client_id(db, &claims.iss).await? else {
        return refuse("no such client");
    };
    let Some(set) = registered_set(db, app.id).await? else {
        return refuse("the client registered no keys");
    };
    let kid = header["kid"].as_str();
    let key = match kid {
        Some(kid) => set
            .keys()
            .iter()
            .find(|k| k.key_id().is_some_and(|id| id.as_str() == kid)),
        None if set.keys().len() == 1 => set.keys().first(),
        None => None,
    };
    let Some(key) = key else {
        return refuse("no registered key matches");
    };
    let signed = format!("{header}.{payload}", header = parts[0], payload = parts[1]);
    if key
        .verify_signature(
            &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            signed.as_bytes(),
            &signature,
        )
        .is_err()
    {
        return refuse("the signature does not verify");
    }
    if !claims.aud.names_any(audiences) {
        return refuse("aud is not the token endpoint");
    }
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let skew = SKEW.as_secs() as i64;
    if claims.exp + skew <= now || claims.exp > now + (MAX_LIFETIME + SKEW).as_secs() as i64 {
        return refuse("exp is past or too far ahead");
    }
    if claims.nbf.is_some_and(|nbf| nbf > now + skew) {
        return refuse("nbf is still to come");
    }
    let expires = OffsetDateTime::from_unix_timestamp(claims.exp)
        .unwrap_or_else(|_| OffsetDateTime::now_utc() + span(MAX_LIFETIME));
    let mut tx = db.begin().await?;
    sqlx::query!("delete from signin_assertion_jtis where expires_at < now()")
        .execute(&mut *tx)
        .await?;
    let fresh = sqlx::query!(
        "insert into signin_assertion_jtis (application_id, jti, expires_at) values ($1, $2, $3)
         on conflict do nothing",
        app.id,
        claims.jti,
        expires + span(SKEW),
    )
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    tx.commit().await?;
    if !fresh {
        return refuse("the jti was used before");
    }
    Ok(Some(app))
}
