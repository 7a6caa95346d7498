//! Gangway rolling its own certificates through Graph (`addKey`, `removeKey`), each call proven
//! by a certificate already registered on the app, and the rotation pass that uses them: a new
//! certificate before the active one expires, the old one removed after the overlap.

use std::time::Duration as StdDuration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::{Certificate, CertificateState, CredentialsError, activate, create, list, signer};
use crate::audit::{self, Action, Actor};
use crate::crypto::Keyring;
use crate::graph::{GraphClient, GraphError};
use crate::identity::{ClientCertificate, EntraClient, IdentityError};
use crate::types::{ClientId, TenantId};

/// The audience of a proof of possession (Graph documents the Azure AD Graph's app id).
const PROOF_AUDIENCE: &str = "00000002-0000-0000-c000-000000000000";
/// Graph takes a proof that lives at most ten minutes.
const PROOF_LIFETIME_SECS: i64 = 600;

/// Why a step that talks to Microsoft failed.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    /// Reading or writing Gangway's side failed.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// The token request as the provider app failed.
    #[error("token request failed: {0}")]
    Token(#[from] IdentityError),
    /// Graph refused or failed.
    #[error("Graph: {0}")]
    Graph(#[from] GraphError),
    /// The provider's app registration is not in its tenant.
    #[error("the provider's app registration was not found in its tenant")]
    NoRegistration,
    /// No active certificate can prove possession (the first one is registered by hand).
    #[error("no active certificate to prove possession with; register the first one in the portal")]
    NoActiveCertificate,
}

impl From<sqlx::Error> for RotationError {
    fn from(e: sqlx::Error) -> Self {
        Self::Credentials(e.into())
    }
}

/// Who the provider app is and where to reach it.
#[derive(Clone, Copy)]
pub struct Provider<'a> {
    /// Token requests as the provider app.
    pub entra: &'a EntraClient,
    /// Graph.
    pub graph: &'a GraphClient,
    /// The provider's own tenant, where its registration lives.
    pub tenant: &'a TenantId,
    /// The provider app's client id.
    pub client_id: &'a ClientId,
}

impl Provider<'_> {
    /// An app-only Graph token and the registration (Graph's `application`).
    async fn registration(&self) -> Result<(crate::types::Secret, Value), RotationError> {
        let token = self.entra.app_token(self.tenant, None).await?;
        let app = self
            .graph
            .application(&token, self.client_id)
            .await?
            .ok_or(RotationError::NoRegistration)?;
        Ok((token, app))
    }
}

/// The proof of possession Graph's `addKey`/`removeKey` take: a JWT signed by `by`, `aud`
/// [`PROOF_AUDIENCE`], `iss` the application's object id, valid ten minutes from now.
pub fn proof(by: &ClientCertificate, object_id: &str) -> String {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    by.sign(&json!({
        "aud": PROOF_AUDIENCE,
        "iss": object_id,
        "nbf": now,
        "exp": now + PROOF_LIFETIME_SECS,
    }))
}

/// The `keyId` on the application of the certificate with SHA-1 `thumbprint`, from the
/// registration's `keyCredentials` (`customKeyIdentifier` is the thumbprint).
pub fn registered_key_id(app: &Value, thumbprint: &str) -> Option<Uuid> {
    app["keyCredentials"].as_array()?.iter().find_map(|k| {
        let id = STANDARD.decode(k["customKeyIdentifier"].as_str()?).ok()?;
        let hex: String = id.iter().map(|b| format!("{b:02X}")).collect();
        (hex == thumbprint)
            .then(|| k["keyId"].as_str()?.parse().ok())
            .flatten()
    })
}

/// Registers the pending certificate `id` on the provider's app with `addKey`, proven by the
/// active certificate, and records its `keyId`.
pub async fn register(
    db: &sqlx::PgPool,
    keys: &Keyring,
    provider: Provider<'_>,
    actor: &Actor,
    id: Uuid,
) -> Result<(), RotationError> {
    let cert = super::get(db, id)
        .await?
        .filter(|c| c.state == CertificateState::Pending)
        .ok_or(CredentialsError::NotFound)?;
    let active = super::active(db, keys)
        .await?
        .ok_or(RotationError::NoActiveCertificate)?;
    let (token, app) = provider.registration().await?;
    let object_id = app["id"].as_str().ok_or(RotationError::NoRegistration)?;
    let added = provider
        .graph
        .add_key(
            &token,
            object_id,
            &cert.der,
            &format!("CN={}", super::SUBJECT),
            &proof(&active, object_id),
        )
        .await?;
    let mut tx = db.begin().await?;
    sqlx::query!(
        "update provider_certificates set graph_key_id = $2 where id = $1",
        id,
        added.key_id
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        actor,
        Action::CertificateRegistered,
        None,
        None,
        json!({"thumbprint": cert.thumbprint, "key_id": added.key_id}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Removes the retiring certificate `cert` from the provider's app with `removeKey` (proven
/// by the active certificate), then forgets it.
async fn remove(
    db: &sqlx::PgPool,
    keys: &Keyring,
    provider: Provider<'_>,
    cert: &Certificate,
) -> Result<(), RotationError> {
    let active = super::active(db, keys)
        .await?
        .ok_or(RotationError::NoActiveCertificate)?;
    let (token, app) = provider.registration().await?;
    let object_id = app["id"].as_str().ok_or(RotationError::NoRegistration)?;
    // A certificate uploaded in the portal has no recorded keyId: found by its thumbprint.
    if let Some(key_id) = cert
        .graph_key_id
        .or_else(|| registered_key_id(&app, &cert.thumbprint))
    {
        provider
            .graph
            .remove_key(&token, object_id, key_id, &proof(&active, object_id))
            .await?;
    }
    super::delete(db, &Actor::System, cert.id).await?;
    Ok(())
}

/// Makes the pending certificate `id` the active one once a client-credentials token request
/// in the provider's tenant signed with it succeeds (it is registered on the app and Microsoft
/// honours it); the one before it starts retiring. This process signs with it at once, the
/// others at their next settings read.
pub async fn activate_registered(
    db: &sqlx::PgPool,
    keys: &Keyring,
    provider: Provider<'_>,
    actor: &Actor,
    id: Uuid,
) -> Result<(), RotationError> {
    let certificate = signer(db, keys, id).await?;
    provider
        .entra
        .with_certificate(certificate.clone())
        .app_token(provider.tenant, None)
        .await?;
    activate(db, actor, id).await?;
    provider.entra.set_certificate(Some(certificate));
    Ok(())
}

/// What one rotation pass did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing was due.
    Idle,
    /// No active certificate: Gangway signs with its client secret and rotates nothing.
    NoCertificate,
    /// A new certificate (thumbprint) was registered and now signs; the old one retires.
    Rotated(String),
    /// Retired certificates (thumbprints) were removed from the app.
    Removed(Vec<String>),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Idle => f.write_str("the active certificate is not due"),
            Self::NoCertificate => f.write_str("no active certificate: the client secret is used"),
            Self::Rotated(t) => write!(f, "certificate {t} registered and now signing"),
            Self::Removed(t) => write!(f, "removed retired certificate(s) {}", t.join(", ")),
        }
    }
}

/// One rotation pass: removes certificates retiring for longer than `overlap` (every process
/// reads the active certificate again within it), else, when the active certificate expires
/// within `window_days`, generates a new one valid [`super::VALIDITY_DAYS`], registers it
/// with `addKey` and makes it the active one.
pub async fn rotate(
    db: &sqlx::PgPool,
    keys: &Keyring,
    provider: Provider<'_>,
    window_days: i64,
    overlap: StdDuration,
) -> Result<Outcome, RotationError> {
    let now = OffsetDateTime::now_utc();
    let certs = list(db).await?;
    let overlap = Duration::try_from(overlap).unwrap_or(Duration::MAX);
    let mut removed = Vec::new();
    for cert in certs.iter().filter(|c| {
        c.state == CertificateState::Retiring
            && c.retiring_since.is_some_and(|t| t + overlap <= now)
    }) {
        remove(db, keys, provider, cert).await?;
        removed.push(cert.thumbprint.clone());
    }
    if !removed.is_empty() {
        return Ok(Outcome::Removed(removed));
    }
    let Some(active) = certs.iter().find(|c| c.state == CertificateState::Active) else {
        return Ok(Outcome::NoCertificate);
    };
    if !active.expires_within(window_days, now) {
        return Ok(Outcome::Idle);
    }
    // A pending one left by an interrupted pass is used rather than another made.
    let next = match certs.iter().find(|c| c.state == CertificateState::Pending) {
        Some(pending) => pending.clone(),
        None => create(db, keys, &Actor::System, super::VALIDITY_DAYS).await?,
    };
    if next.graph_key_id.is_none() {
        register(db, keys, provider, &Actor::System, next.id).await?;
    }
    activate_registered(db, keys, provider, &Actor::System, next.id).await?;
    let key_id = super::get(db, next.id).await?.and_then(|c| c.graph_key_id);
    let mut tx = db.begin().await?;
    super::announce_rotation(
        &mut tx,
        super::Rotated::Certificate,
        key_id,
        Some(&next.thumbprint),
        next.not_after,
    )
    .await?;
    tx.commit().await?;
    Ok(Outcome::Rotated(next.thumbprint))
}
