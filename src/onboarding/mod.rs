//! Verifying a consent before anything is recorded. Each way in — a delegated sign-in, an
//! admin consent bound to a signed-in administrator of the same tenant, a customer's own app —
//! ends in a [`Consent`]
//! ready for [`crate::tenants::record_consent`], or a typed [`Refusal`] the web layer turns
//! into a page.

mod customer_app;

pub use customer_app::{AppCredentials, AppRefusal, GraphRead, verify_customer_app};

use crate::graph::{GraphClient, GraphError, Organization};
use crate::identity::{EntraClient, IdentityError, SignedInAdmin};
use crate::invitations::ConsentMode;
use crate::tenants::Consent;
use crate::types::{Secret, TenantId};

/// Why a consent was not verified. Nothing has been recorded.
#[derive(Debug)]
pub enum Refusal {
    /// Entra ID refused a token request (code redemption, client credentials), or the ID token
    /// failed validation.
    Identity(IdentityError),
    /// Graph refused or failed the organisation read.
    Graph(GraphError),
    /// The person who signed in is not a Global Administrator.
    NotGlobalAdmin {
        /// Who signed in.
        username: String,
    },
    /// Admin consent came from one tenant, but the administrator signed in to another.
    SignedInElsewhere {
        /// The tenant the admin-consent answer named.
        consented: TenantId,
        /// The tenant of the ID token.
        signed_in: TenantId,
    },
    /// Graph describes another organisation than the one that signed in or consented.
    OrganisationMismatch,
    /// Delegated: Microsoft granted no refresh token (`offline_access` declined).
    NoRefreshToken,
}

impl From<IdentityError> for Refusal {
    fn from(e: IdentityError) -> Self {
        Self::Identity(e)
    }
}

impl From<GraphError> for Refusal {
    fn from(e: GraphError) -> Self {
        Self::Graph(e)
    }
}

/// A refusal, with who had signed in when it happened (if anyone got that far).
#[derive(Debug)]
pub struct Refused {
    /// Why.
    pub refusal: Refusal,
    /// The verified identity of the person who signed in, when the ID token was valid.
    pub by: Option<Box<SignedInAdmin>>,
}

impl<E: Into<Refusal>> From<E> for Refused {
    fn from(e: E) -> Self {
        Self {
            refusal: e.into(),
            by: None,
        }
    }
}

impl Refusal {
    /// This refusal, after `admin` signed in.
    fn after(self, admin: &SignedInAdmin) -> Refused {
        Refused {
            refusal: self,
            by: Some(Box::new(admin.clone())),
        }
    }
}

/// What an authorization code is redeemed with: the single-use values of this sign-in.
pub struct CodeRedemption<'a> {
    /// The authorization code from the callback.
    pub code: &'a str,
    /// The PKCE verifier matching the challenge sent.
    pub pkce_verifier: &'a str,
    /// The nonce the ID token must carry.
    pub nonce: &'a str,
}

/// Delegated consent: redeem the code (the ID token is validated there), require a Global
/// Administrator, confirm the organisation through Graph with the admin's own token, and keep
/// the refresh token.
#[tracing::instrument(skip_all)]
pub async fn verify_delegated(
    entra: &EntraClient,
    graph: &GraphClient,
    redemption: &CodeRedemption<'_>,
) -> Result<Consent, Refused> {
    let grant = entra
        .redeem_code(redemption.code, redemption.pkce_verifier, redemption.nonce)
        .await
        .inspect_err(|e| tracing::info!(error = ?e, "code redemption refused"))?;
    let identity = require_global_admin(grant.identity)?;
    let org = organization(graph, &grant.access_token, &identity.tenant_id)
        .await
        .map_err(|r| r.after(&identity))?;
    let refresh_token = grant
        .refresh_token
        .ok_or_else(|| Refusal::NoRefreshToken.after(&identity))?;
    Ok(Consent {
        granted_scopes: grant.scopes,
        credential: Some(refresh_token),
        ..consent_for(&org, ConsentMode::Delegated).signed_by(&identity)
    })
}

/// Application (admin) consent. Microsoft's `admin_consent=True&tenant=…` answer is unsigned and
/// proves nothing about who is in the browser, so it counts only together with a sign-in: the
/// code redeemed here must carry an ID token of a Global Administrator of exactly the
/// `consented` tenant. Then a client-credentials token for that tenant and its
/// `/organization` confirm the provider's app really has access there.
#[tracing::instrument(skip_all, fields(tenant_id = %consented))]
pub async fn verify_admin_consent(
    entra: &EntraClient,
    graph: &GraphClient,
    consented: &TenantId,
    granted_scopes: Vec<String>,
    redemption: &CodeRedemption<'_>,
) -> Result<Consent, Refused> {
    let grant = entra
        .redeem_code(redemption.code, redemption.pkce_verifier, redemption.nonce)
        .await
        .inspect_err(|e| tracing::info!(error = ?e, "admin sign-in code redemption refused"))?;
    if grant.identity.tenant_id != *consented {
        let refusal = Refusal::SignedInElsewhere {
            consented: *consented,
            signed_in: grant.identity.tenant_id,
        };
        return Err(refusal.after(&grant.identity));
    }
    let identity = require_global_admin(grant.identity)?;
    let confirmed = async {
        let token = entra.app_token(consented, None).await.inspect_err(|e| {
            tracing::info!(error = ?e, "consent could not be confirmed with a client-credentials token")
        })?;
        let org = organization(graph, &token, consented).await?;
        Ok::<_, Refusal>((token, org))
    };
    let (token, org) = confirmed.await.map_err(|r| r.after(&identity))?;
    Ok(Consent {
        granted_scopes: granted_or(&token, granted_scopes),
        ..consent_for(&org, ConsentMode::Application).signed_by(&identity)
    })
}

fn require_global_admin(identity: SignedInAdmin) -> Result<SignedInAdmin, Refused> {
    if identity.is_global_admin {
        Ok(identity)
    } else {
        let refusal = Refusal::NotGlobalAdmin {
            username: identity.username.clone(),
        };
        Err(refusal.after(&identity))
    }
}

/// Reads `/organization` with `token` and requires it to be `expected`.
pub async fn organization(
    graph: &GraphClient,
    token: &Secret,
    expected: &TenantId,
) -> Result<Organization, Refusal> {
    let org = graph
        .organization(token)
        .await
        .inspect_err(|e| tracing::info!(error = ?e, "organization read failed"))?;
    if org.id != *expected {
        tracing::info!(found = %org.id, "organization read names another tenant");
        return Err(Refusal::OrganisationMismatch);
    }
    Ok(org)
}

/// The application permissions an app-only token carries (its `roles`), else `fallback`. For
/// showing what was granted only: nothing is decided on it.
fn granted_or(token: &Secret, fallback: Vec<String>) -> Vec<String> {
    let roles = crate::identity::app_token_roles(token);
    if roles.is_empty() { fallback } else { roles }
}

/// What `/organization` proves about the tenant, as a consent in `mode`; callers add who
/// consented, the scopes and the credential.
pub fn consent_for(org: &Organization, mode: ConsentMode) -> Consent {
    Consent {
        entra_tenant_id: org.id.as_uuid(),
        display_name: display_name(org),
        verified_domains: org
            .verified_domains
            .iter()
            .map(|d| d.name.clone())
            .collect(),
        mode,
        granted_scopes: Vec::new(),
        consented_by_oid: None,
        consented_by_upn: None,
        customer_client_id: None,
        credential: None,
    }
}

impl Consent {
    /// This consent, given by the verified `admin`.
    fn signed_by(self, admin: &SignedInAdmin) -> Self {
        Self {
            consented_by_oid: Some(admin.object_id),
            consented_by_upn: Some(admin.username.clone()),
            ..self
        }
    }
}

/// The organisation's name, else its default domain, else its id.
fn display_name(org: &Organization) -> String {
    if !org.display_name.trim().is_empty() {
        return org.display_name.trim().to_owned();
    }
    org.default_domain()
        .map(str::to_owned)
        .unwrap_or_else(|| org.id.to_string())
}
