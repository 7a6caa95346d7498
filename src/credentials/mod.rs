//! The provider application's certificate credentials: Gangway generates the RSA key pair and a
//! self-signed certificate, keeps the private key sealed, offers the public certificate to
//! register on the app (the portal's "Upload certificate", or `setup`), signs its token
//! requests with the active one, and rotates it before it expires: a new certificate is
//! registered with `addKey` (proven by the current one), signs once registered, and the old one
//! is removed with `removeKey` once every process has switched.

pub mod rotation;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rsa::RsaPrivateKey;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::{PgExecutor, PgPool};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::audit::{self, Action, Actor};
use crate::crypto::{CryptoError, Keyring};
use crate::identity::ClientCertificate;
use crate::webhooks::{self, EventType};

/// How long a certificate Gangway generates is valid: Microsoft's portal accepts any, and a
/// year keeps a leaked key short-lived while rotation does the renewing.
pub const VALIDITY_DAYS: i64 = 365;
/// The subject of the certificates Gangway generates.
const SUBJECT: &str = "Gangway provider app";

/// Why a certificate could not be made, read or used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// A sealed private key does not open with the configured keys.
    #[error("the certificate's private key does not open: {0}")]
    Sealed(#[from] CryptoError),
    /// Key or certificate generation failed.
    #[error("generating the certificate failed: {0}")]
    Generate(String),
    /// No certificate with that id, or not in the state the step needs.
    #[error("no such certificate in a state that allows this")]
    NotFound,
}

/// Where a certificate is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CertificateState {
    /// Generated; not signing yet (waiting to be registered on the app).
    Pending,
    /// Signs every token request as the provider app.
    Active,
    /// Replaced by a newer one; removed from the app after the overlap.
    Retiring,
}

impl CertificateState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Retiring => "retiring",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "active" => Self::Active,
            "retiring" => Self::Retiring,
            _ => Self::Pending,
        }
    }
}

/// A certificate of the provider's app, without its private key.
#[derive(Debug, Clone)]
pub struct Certificate {
    /// Gangway's id.
    pub id: Uuid,
    /// The certificate (DER).
    pub der: Vec<u8>,
    /// SHA-1 thumbprint in upper-case hex, as the portal shows it.
    pub thumbprint: String,
    /// `x5t#S256`: Base64url of its SHA-256 thumbprint.
    pub x5t_s256: String,
    /// Valid from.
    pub not_before: OffsetDateTime,
    /// Valid until.
    pub not_after: OffsetDateTime,
    /// Where it is in its life.
    pub state: CertificateState,
    /// Its `keyId` on the application, once Gangway registered it with `addKey`.
    pub graph_key_id: Option<Uuid>,
    /// When it replaced the one before it (it is retiring since then).
    pub retiring_since: Option<OffsetDateTime>,
}

impl Certificate {
    /// The public certificate as PEM, to upload in the portal.
    pub fn pem(&self) -> String {
        let b64 = STANDARD.encode(&self.der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).expect("Base64 is ASCII"))
            .collect();
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            lines.join("\n")
        )
    }

    /// Whether it expires within `days` of `now`.
    pub fn expires_within(&self, days: i64, now: OffsetDateTime) -> bool {
        self.not_after - now <= Duration::days(days)
    }
}

/// A key pair and the self-signed certificate of its public key, not stored yet.
pub struct Generated {
    /// PKCS#8 DER.
    private_key: Vec<u8>,
    /// The certificate (DER).
    pub certificate: Vec<u8>,
    /// Valid from.
    pub not_before: OffsetDateTime,
    /// Valid until.
    pub not_after: OffsetDateTime,
}

impl std::fmt::Debug for Generated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generated")
            .field("thumbprint", &thumbprint(&self.certificate))
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl Generated {
    /// A fresh key pair and certificate valid for `days` (RSA key generation takes a while:
    /// off the async workers).
    pub async fn new(days: i64) -> Result<Self, CredentialsError> {
        tokio::task::spawn_blocking(move || generate(days))
            .await
            .map_err(|e| CredentialsError::Generate(e.to_string()))?
    }

    /// The public certificate as Graph's `keyCredential` of a certificate that verifies client
    /// assertions, named by its subject (Graph sets `customKeyIdentifier` to its thumbprint).
    pub fn key_credential(&self) -> serde_json::Value {
        let rfc = |t: OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        };
        json!({
            "type": "AsymmetricX509Cert",
            "usage": "Verify",
            "key": STANDARD.encode(&self.certificate),
            "displayName": format!("CN={SUBJECT}"),
            "startDateTime": rfc(self.not_before),
            "endDateTime": rfc(self.not_after),
        })
    }
}

/// A fresh RSA-2048 key pair and self-signed certificate valid for `days`.
fn generate(days: i64) -> Result<Generated, CredentialsError> {
    let fail = |e: &dyn std::fmt::Display| CredentialsError::Generate(e.to_string());
    let key = RsaPrivateKey::new(&mut rand::thread_rng(), 2048).map_err(|e| fail(&e))?;
    let pem = key.to_pkcs8_pem(LineEnding::LF).map_err(|e| fail(&e))?;
    let pair = rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256)
        .map_err(|e| fail(&e))?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, SUBJECT);
    // Whole seconds, as X.509 keeps them; a little back-dated, so a clock slightly behind
    // Microsoft's does not matter.
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("zero nanoseconds");
    let (not_before, not_after) = (now - Duration::minutes(10), now + Duration::days(days));
    params.not_before = not_before;
    params.not_after = not_after;
    let cert = params.self_signed(&pair).map_err(|e| fail(&e))?;
    let der = key.to_pkcs8_der().map_err(|e| fail(&e))?;
    Ok(Generated {
        private_key: der.as_bytes().to_vec(),
        certificate: cert.der().to_vec(),
        not_before,
        not_after,
    })
}

/// Generates a certificate valid for `days` and stores it as pending (private key sealed);
/// audited as done by `actor`. Registering it on the app is the next step: uploaded in the
/// portal, sent by `setup` with the application, or [`rotation::register`].
pub async fn create(
    db: &PgPool,
    keys: &Keyring,
    actor: &Actor,
    days: i64,
) -> Result<Certificate, CredentialsError> {
    let made = Generated::new(days).await?;
    let mut tx = db.begin().await?;
    let id = insert(&mut tx, keys, actor, &made, days).await?;
    tx.commit().await?;
    get(db, id).await?.ok_or(CredentialsError::NotFound)
}

/// Stores `made` (valid for `days`) as a pending certificate, its private key sealed; audited
/// as done by `actor`. Its id.
pub async fn insert(
    tx: &mut sqlx::PgConnection,
    keys: &Keyring,
    actor: &Actor,
    made: &Generated,
    days: i64,
) -> Result<Uuid, CredentialsError> {
    let thumbprint = thumbprint(&made.certificate);
    let x5t_s256 = URL_SAFE_NO_PAD.encode(Sha256::digest(&made.certificate));
    let id = sqlx::query_scalar!(
        "insert into provider_certificates
             (certificate, thumbprint, x5t_s256, key_ciphertext, key_id, not_before, not_after)
         values ($1, $2, $3, $4, $5, $6, $7) returning id",
        made.certificate,
        thumbprint,
        x5t_s256,
        keys.seal(&made.private_key),
        keys.id(),
        made.not_before,
        made.not_after,
    )
    .fetch_one(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        actor,
        Action::CertificateCreated,
        None,
        None,
        json!({"thumbprint": thumbprint, "days": days}),
    )
    .await?;
    Ok(id)
}

/// Which credential of the provider's app rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotated {
    /// A certificate (`addKey`).
    Certificate,
    /// A client secret (`addPassword`).
    Secret,
}

impl Rotated {
    /// The name in the event and the metric's label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Certificate => "certificate",
            Self::Secret => "secret",
        }
    }
}

/// Tells of a rotation whose new credential is in use: the `credential.rotated` event in the
/// caller's transaction — the new credential's `key_id` on the app, a certificate's
/// `thumbprint`, its expiry; never the secret — and the metric.
pub async fn announce_rotation(
    conn: &mut sqlx::PgConnection,
    kind: Rotated,
    key_id: Option<Uuid>,
    thumbprint: Option<&str>,
    expires_at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    let data = json!({
        "kind": kind.as_str(),
        "key_id": key_id,
        "thumbprint": thumbprint,
        "expires_at": expires_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    });
    webhooks::emit(
        conn,
        &webhooks::Event::new(EventType::CredentialRotated, data),
    )
    .await?;
    crate::metrics::record_credential_rotation(kind.as_str());
    Ok(())
}

/// SHA-1 thumbprint of `der` in upper-case hex (what the portal and Graph's
/// `customKeyIdentifier` show).
pub fn thumbprint(der: &[u8]) -> String {
    use sha1::Sha1;
    Sha1::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

struct Row {
    id: Uuid,
    certificate: Vec<u8>,
    thumbprint: String,
    x5t_s256: String,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    state: String,
    graph_key_id: Option<Uuid>,
    retiring_since: Option<OffsetDateTime>,
}

impl From<Row> for Certificate {
    fn from(r: Row) -> Self {
        Self {
            id: r.id,
            der: r.certificate,
            thumbprint: r.thumbprint,
            x5t_s256: r.x5t_s256,
            not_before: r.not_before,
            not_after: r.not_after,
            state: CertificateState::parse(&r.state),
            graph_key_id: r.graph_key_id,
            retiring_since: r.retiring_since,
        }
    }
}

/// Every certificate, the active one first, then the newest.
pub async fn list(db: impl PgExecutor<'_>) -> Result<Vec<Certificate>, sqlx::Error> {
    let rows = sqlx::query_as!(
        Row,
        "select id, certificate, thumbprint, x5t_s256, not_before, not_after, state,
                graph_key_id, retiring_since
         from provider_certificates
         order by state = 'active' desc, created_at desc"
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(Certificate::from).collect())
}

/// One certificate.
pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<Certificate>, sqlx::Error> {
    let row = sqlx::query_as!(
        Row,
        "select id, certificate, thumbprint, x5t_s256, not_before, not_after, state,
                graph_key_id, retiring_since
         from provider_certificates where id = $1",
        id
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(Certificate::from))
}

/// The certificate `id` with its private key opened, ready to sign.
pub async fn signer(
    db: &PgPool,
    keys: &Keyring,
    id: Uuid,
) -> Result<ClientCertificate, CredentialsError> {
    let row = sqlx::query!(
        "select certificate, key_ciphertext, key_id from provider_certificates where id = $1",
        id
    )
    .fetch_optional(db)
    .await?
    .ok_or(CredentialsError::NotFound)?;
    let key = keys.open(&row.key_id, &row.key_ciphertext)?;
    ClientCertificate::new(&key, &row.certificate)
        .map_err(|e| CredentialsError::Generate(e.to_string()))
}

/// The active certificate, ready to sign; `None` when there is none (Gangway then uses the
/// client secret).
pub async fn active(
    db: &PgPool,
    keys: &Keyring,
) -> Result<Option<ClientCertificate>, CredentialsError> {
    match active_id(db).await? {
        Some((id, _)) => Ok(Some(signer(db, keys, id).await?)),
        None => Ok(None),
    }
}

/// The active certificate's id and `x5t#S256`, if there is one: cheap to ask often, so the
/// private key is opened only when it changed.
pub async fn active_id(db: impl PgExecutor<'_>) -> Result<Option<(Uuid, String)>, sqlx::Error> {
    let row = sqlx::query!("select id, x5t_s256 from provider_certificates where state = 'active'")
        .fetch_optional(db)
        .await?;
    Ok(row.map(|r| (r.id, r.x5t_s256)))
}

/// Makes the pending certificate `id` the active one; the active one before it starts
/// retiring. Every process signs with it from its next settings read.
pub async fn activate(db: &PgPool, actor: &Actor, id: Uuid) -> Result<(), CredentialsError> {
    let mut tx = db.begin().await?;
    activate_in(&mut tx, actor, id).await?;
    tx.commit().await?;
    Ok(())
}

/// [`activate`] within the caller's transaction.
pub async fn activate_in(
    tx: &mut sqlx::PgConnection,
    actor: &Actor,
    id: Uuid,
) -> Result<(), CredentialsError> {
    sqlx::query!(
        "update provider_certificates set state = 'retiring', retiring_since = now()
         where state = 'active'"
    )
    .execute(&mut *tx)
    .await?;
    let thumbprint = sqlx::query_scalar!(
        "update provider_certificates set state = 'active', activated_at = now()
         where id = $1 and state = 'pending' returning thumbprint",
        id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(CredentialsError::NotFound)?;
    audit::record(
        &mut *tx,
        actor,
        Action::CertificateActivated,
        None,
        None,
        json!({"thumbprint": thumbprint}),
    )
    .await?;
    Ok(())
}

/// Forgets a certificate that is not active (a pending one never registered, or a retired one
/// already removed from the app).
pub async fn delete(db: &PgPool, actor: &Actor, id: Uuid) -> Result<(), CredentialsError> {
    let mut tx = db.begin().await?;
    let thumbprint = sqlx::query_scalar!(
        "delete from provider_certificates where id = $1 and state <> 'active'
         returning thumbprint",
        id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(CredentialsError::NotFound)?;
    audit::record(
        &mut *tx,
        actor,
        Action::CertificateRemoved,
        None,
        None,
        json!({"thumbprint": thumbprint}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
