//! Access tokens for a tenant's Graph reads, per consent mode: the provider's client
//! credentials (application), the stored refresh token (delegated; the rotated one is sealed
//! and stored before the access token is used), or the customer's own app (customer app).
//! Tokens are cached per tenant until shortly before they expire.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use uuid::Uuid;

use crate::crypto::Keyring;
use crate::identity::{AadErrorKind, IdentityError};
use crate::invitations::reconsent;
use crate::settings::SettingsCache;
use crate::types::ConsentMode;
use crate::types::{Secret, TenantId};

/// A token is dropped from the cache this long before it expires, so no request carries one
/// that dies in flight.
const EXPIRY_MARGIN: Duration = Duration::from_secs(300);
/// Assumed when Entra ID does not say (its tokens live 60–90 minutes).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// What the sync needs to know about a tenant to get a token for it.
#[derive(Debug, Clone)]
pub struct TenantAccess {
    /// Gangway's id.
    pub id: Uuid,
    /// Microsoft's id of the directory.
    pub entra_tenant_id: Uuid,
    /// How access was granted.
    pub consent_mode: ConsentMode,
    /// Customer-app mode: the customer's client id.
    pub customer_client_id: Option<String>,
    /// Refresh token or customer secret, sealed.
    pub credential_ciphertext: Option<Vec<u8>>,
    /// The key that sealed it.
    pub credential_key_id: Option<String>,
    /// Delegated mode: the Graph scopes of the tenant's permission profile, asked for again at
    /// each refresh (none: everything consented).
    pub profile_scopes: Vec<String>,
}

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The tenant's grant no longer works (revoked consent, expired refresh token, expired or
    /// replaced customer secret, app removed from the tenant): only a new consent helps.
    #[error("{0}")]
    ReconsentRequired(String),
    /// Entra ID knows no such tenant (AADSTS90002): it was deleted, or its id is wrong. Neither
    /// a retry nor a consent brings it back.
    #[error("{0}")]
    TenantNotFound(String),
    /// Anything else (Entra ID unreachable, the provider's own secret refused, a key missing);
    /// worth retrying later.
    #[error("{0}")]
    Failed(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Hands out Graph access tokens for tenants. Cheap to clone; the cache is shared.
#[derive(Clone)]
pub struct TokenSource {
    db: PgPool,
    keys: Keyring,
    settings: SettingsCache,
    cache: Arc<Mutex<HashMap<Uuid, (Secret, Instant)>>>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource").finish_non_exhaustive()
    }
}

impl TokenSource {
    /// Tokens for tenants stored in `db`, unsealed with `keys`, from Entra ID as the provider
    /// app the `settings` name.
    pub fn new(db: PgPool, keys: Keyring, settings: SettingsCache) -> Self {
        Self {
            db,
            keys,
            settings,
            cache: Arc::default(),
        }
    }

    /// A Graph access token for `tenant`, cached or new.
    pub async fn token(&self, tenant: &TenantAccess) -> Result<Secret, CredentialError> {
        if let Some(token) = self.cached(tenant.id) {
            return Ok(token);
        }
        let (token, lifetime, _) = self.fetch(tenant).await?;
        let lifetime = lifetime.unwrap_or(DEFAULT_LIFETIME);
        // Short-lived tokens (seen in tests) keep at least half their life.
        let keep_until = Instant::now() + lifetime - EXPIRY_MARGIN.min(lifetime / 2);
        self.cache
            .lock()
            .expect("token cache")
            .insert(tenant.id, (token.clone(), keep_until));
        Ok(token)
    }

    /// A fresh token for `tenant`, never a cached one, and for a delegated grant the scopes
    /// Entra ID's token response says it carries (its `scope`): what the tenant grants now.
    pub async fn fresh(
        &self,
        tenant: &TenantAccess,
    ) -> Result<(Secret, Option<Vec<String>>), CredentialError> {
        let (token, _, scopes) = self.fetch(tenant).await?;
        Ok((token, scopes))
    }

    /// The client id of the app whose tokens read `tenant`: the customer's own app in
    /// customer-app mode, else the provider's.
    pub async fn app_id(&self, tenant: &TenantAccess) -> Result<String, CredentialError> {
        if tenant.consent_mode == ConsentMode::CustomerApp {
            return tenant.customer_client_id.clone().ok_or_else(|| {
                CredentialError::ReconsentRequired(
                    "the customer's app registration is not on record".into(),
                )
            });
        }
        let live = self
            .settings
            .current()
            .await
            .map_err(|e| CredentialError::Failed(e.to_string()))?;
        live.client_id()
            .map(ToString::to_string)
            .map_err(|e| CredentialError::Failed(e.to_string()))
    }

    /// Drops `tenant`'s cached token (Graph refused it: 401).
    pub fn forget(&self, tenant: Uuid) {
        self.cache.lock().expect("token cache").remove(&tenant);
    }

    fn cached(&self, tenant: Uuid) -> Option<Secret> {
        let mut cache = self.cache.lock().expect("token cache");
        match cache.get(&tenant) {
            Some((token, until)) if *until > Instant::now() => Some(token.clone()),
            Some(_) => {
                cache.remove(&tenant);
                None
            }
            None => None,
        }
    }

    async fn fetch(
        &self,
        tenant: &TenantAccess,
    ) -> Result<(Secret, Option<Duration>, Option<Vec<String>>), CredentialError> {
        let tid = TenantId::from_uuid(tenant.entra_tenant_id);
        let live = self
            .settings
            .current()
            .await
            .map_err(|e| CredentialError::Failed(e.to_string()))?;
        let entra = live
            .entra()
            .map_err(|e| CredentialError::Failed(e.to_string()))?;
        match tenant.consent_mode {
            ConsentMode::Application => {
                let t = entra
                    .app_access_token(&tid, None)
                    .await
                    .map_err(|e| classify(e, false))?;
                Ok((t.token, t.expires_in, None))
            }
            ConsentMode::CustomerApp => {
                let secret = self.unseal(tenant)?;
                let client_id = tenant.customer_client_id.as_deref().ok_or_else(|| {
                    CredentialError::ReconsentRequired(
                        "the customer's app registration is not on record".into(),
                    )
                })?;
                let t = entra
                    .app_access_token(&tid, Some((client_id, &secret)))
                    .await
                    .map_err(|e| classify(e, true))?;
                Ok((t.token, t.expires_in, None))
            }
            ConsentMode::Delegated => {
                let refresh_token = self.unseal(tenant)?;
                let scopes: Vec<&str> = tenant.profile_scopes.iter().map(String::as_str).collect();
                let grant = entra
                    .refresh(&tid, &refresh_token, &scopes)
                    .await
                    .map_err(|e| classify(e, false))?;
                // The old refresh token may already be dead: the new one is stored before the
                // access token is used, or a crash here would lose the tenant's only grant.
                if let Some(rotated) = &grant.refresh_token {
                    sqlx::query!(
                        "update tenants set credential_ciphertext = $2, credential_key_id = $3
                         where id = $1 and status <> 'offboarded'",
                        tenant.id,
                        self.keys.seal(rotated.expose().as_bytes()),
                        self.keys.id(),
                    )
                    .execute(&self.db)
                    .await?;
                }
                Ok((grant.access_token, grant.expires_in, Some(grant.scopes)))
            }
        }
    }

    fn unseal(&self, tenant: &TenantAccess) -> Result<Secret, CredentialError> {
        let (Some(sealed), Some(key_id)) =
            (&tenant.credential_ciphertext, &tenant.credential_key_id)
        else {
            return Err(CredentialError::ReconsentRequired(
                reconsent::NO_CREDENTIAL.operator.into(),
            ));
        };
        let plain = self.keys.open(key_id, sealed).map_err(|_| {
            CredentialError::Failed(format!(
                "the tenant's credential is sealed with key {key_id}, which is not configured (GANGWAY_PREVIOUS_ENCRYPTION_KEYS)"
            ))
        })?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| CredentialError::Failed("the stored credential is not text".into()))
    }
}

/// Sorts Entra ID's refusals into "only a new consent helps" and "try again later".
/// `customer_secret`: the secret is the customer's (customer-app mode), so a refused secret is
/// theirs to replace, not the provider's.
fn classify(e: IdentityError, customer_secret: bool) -> CredentialError {
    let IdentityError::Aad(aad) = &e else {
        return CredentialError::Failed(e.to_string());
    };
    let reason = match aad.kind() {
        AadErrorKind::UnknownTenant => {
            return CredentialError::TenantNotFound(format!(
                "Microsoft Entra ID does not know this tenant any more (deleted, or its id changed): {}",
                aad.summary()
            ));
        }
        AadErrorKind::ConsentMissing => reconsent::CONSENT_REVOKED,
        AadErrorKind::AppNotFoundInTenant => reconsent::APP_REMOVED,
        AadErrorKind::AppDisabled => reconsent::APP_DISABLED,
        AadErrorKind::ExpiredSecret if customer_secret => reconsent::SECRET_EXPIRED,
        AadErrorKind::BadSecret if customer_secret => reconsent::SECRET_REFUSED,
        _ if aad.is_invalid_grant() => reconsent::GRANT_ENDED,
        _ => return CredentialError::Failed(e.to_string()),
    };
    CredentialError::ReconsentRequired(format!("{}: {}", reason.operator, aad.summary()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::AadError;

    fn aad(error: &str, code: u32) -> IdentityError {
        IdentityError::Aad(Box::new(AadError {
            error: error.into(),
            error_description: Some(format!("AADSTS{code}: words")),
            error_codes: vec![code],
            ..AadError::default()
        }))
    }

    #[test]
    fn only_a_dead_grant_asks_for_a_new_consent() {
        let reconsent =
            |e, customer| matches!(classify(e, customer), CredentialError::ReconsentRequired(_));
        assert!(reconsent(aad("invalid_grant", 65001), false));
        assert!(reconsent(aad("invalid_grant", 700082), false));
        assert!(reconsent(aad("unauthorized_client", 700016), false));
        assert!(reconsent(aad("invalid_client", 7000222), true));
        assert!(reconsent(aad("invalid_client", 7000215), true));
        // The provider's own secret is the provider's problem: every tenant would need consent.
        assert!(!reconsent(aad("invalid_client", 7000222), false));
        assert!(!reconsent(aad("invalid_client", 7000215), false));
        assert!(!reconsent(aad("temporarily_unavailable", 50001), false));
        assert!(matches!(
            classify(aad("invalid_request", 90002), false),
            CredentialError::TenantNotFound(_)
        ));
        assert!(!reconsent(
            IdentityError::Transport("refused".into()),
            false
        ));
    }
}
