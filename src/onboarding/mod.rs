//! Verifying a consent before anything is recorded. Each way in — a delegated sign-in, an
//! admin consent bound to a signed-in administrator of the same tenant, a customer's own app —
//! ends in a [`Consent`]
//! ready for [`crate::tenants::record_consent`], or a typed [`ConsentRefusal`] the web layer turns
//! into a page.

mod customer_app;

pub use customer_app::{AppCredentials, AppRefusal, GraphRead, verify_customer_app};

use crate::directory::budget::PROVIDER_APP;
use crate::graph::{GraphClient, GraphError, Organization};
use crate::identity::{EntraClient, GLOBAL_ADMIN_ROLE, IdentityError, RoleClaim, SignedInAdmin};
use crate::tenants::Consent;
use crate::types::ConsentMode;
use crate::types::{Secret, TenantId};

/// Why a consent was not verified. Nothing has been recorded.
#[derive(Debug)]
pub enum ConsentRefusal {
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
    /// Neither the ID token (no `wids`: the app registration's `groupMembershipClaims` does not
    /// ask for directory roles) nor Graph (the token may not read directory roles) says whether
    /// the person who signed in is a Global Administrator.
    RoleUnproven {
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

impl From<IdentityError> for ConsentRefusal {
    fn from(e: IdentityError) -> Self {
        Self::Identity(e)
    }
}

impl From<GraphError> for ConsentRefusal {
    fn from(e: GraphError) -> Self {
        Self::Graph(e)
    }
}

/// A refusal, with who had signed in when it happened (if anyone got that far).
#[derive(Debug)]
pub struct Refused {
    /// Why.
    pub refusal: ConsentRefusal,
    /// The verified identity of the person who signed in, when the ID token was valid.
    pub by: Option<Box<SignedInAdmin>>,
}

impl<E: Into<ConsentRefusal>> From<E> for Refused {
    fn from(e: E) -> Self {
        Self {
            refusal: e.into(),
            by: None,
        }
    }
}

impl Refused {
    /// Whether Entra ID may only not have finished setting up a consent just given: the app is
    /// not (yet) known in the tenant (AADSTS700016) or its consent not (yet) in effect
    /// (AADSTS65001). A new service principal takes a while to be usable; try again shortly.
    pub fn may_be_propagating(&self) -> bool {
        matches!(
            &self.refusal,
            ConsentRefusal::Identity(IdentityError::Aad(e)) if matches!(e.code(), Some(700016 | 65001))
        )
    }
}

impl ConsentRefusal {
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
    /// The `{tenant}` path the sign-in was requested on, where the code must be redeemed.
    pub authority: &'a str,
    /// The authorization code from the callback.
    pub code: &'a str,
    /// The PKCE verifier matching the challenge sent.
    pub pkce_verifier: &'a str,
    /// The nonce the ID token must carry.
    pub nonce: &'a str,
}

/// Delegated consent: redeem the code (the ID token is validated there), require a Global
/// Administrator (from `wids`, else from Graph with the admin's own token), confirm the
/// organisation through Graph with that token, and keep the refresh token.
#[tracing::instrument(skip_all)]
pub async fn verify_delegated(
    entra: &EntraClient,
    graph: &GraphClient,
    redemption: &CodeRedemption<'_>,
) -> Result<Consent, Refused> {
    let grant = redeem(entra, redemption).await?;
    let identity = grant.identity;
    let graph = &graph.for_tenant(PROVIDER_APP, identity.tenant_id.as_uuid());
    require_global_admin(graph, &identity, &grant.access_token, None)
        .await
        .map_err(|r| r.after(&identity))?;
    let org = organization(graph, &grant.access_token, &identity.tenant_id)
        .await
        .map_err(|r| r.after(&identity))?;
    let refresh_token = grant
        .refresh_token
        .ok_or_else(|| ConsentRefusal::NoRefreshToken.after(&identity))?;
    Ok(Consent {
        granted_scopes: grant.scopes,
        credential: Some(refresh_token),
        ..consent_for(&org, ConsentMode::Delegated).signed_by(&identity)
    })
}

/// Application (admin) consent, first half. Microsoft's `admin_consent=True&tenant=…` answer is
/// unsigned and proves nothing about who is in the browser, so it counts only together with a
/// sign-in: the code redeemed here must carry an ID token of exactly the `consented` tenant,
/// whose `wids` (when there) name a Global Administrator. [`confirm_admin_consent`] finishes.
#[tracing::instrument(skip_all, fields(tenant_id = %consented))]
pub async fn verify_admin_sign_in(
    entra: &EntraClient,
    consented: &TenantId,
    redemption: &CodeRedemption<'_>,
) -> Result<SignedInAdmin, Refused> {
    let identity = redeem(entra, redemption).await?.identity;
    if identity.tenant_id != *consented {
        let refusal = ConsentRefusal::SignedInElsewhere {
            consented: *consented,
            signed_in: identity.tenant_id,
        };
        return Err(refusal.after(&identity));
    }
    if identity.global_admin == RoleClaim::Lacks {
        return Err(not_global_admin(&identity).after(&identity));
    }
    Ok(identity)
}

/// Application consent, second half, one attempt: a client-credentials token for the admin's
/// tenant proves the provider's app has access there; where the ID token had no `wids`, Graph
/// read with that token proves the admin's role; `/organization` names the tenant. Right after
/// the consent Entra ID may not be ready yet ([`Refused::may_be_propagating`]): try again.
#[tracing::instrument(skip_all, fields(tenant_id = %admin.tenant_id))]
pub async fn confirm_admin_consent(
    entra: &EntraClient,
    graph: &GraphClient,
    admin: &SignedInAdmin,
    granted_scopes: Vec<String>,
) -> Result<Consent, Refused> {
    let tenant = &admin.tenant_id;
    let graph = &graph.for_tenant(PROVIDER_APP, tenant.as_uuid());
    let confirmed = async {
        let token = entra.app_token(tenant, None).await.inspect_err(|e| {
            tracing::info!(error = ?e, "consent could not be confirmed with a client-credentials token")
        })?;
        require_global_admin(graph, admin, &token, Some(admin.object_id)).await?;
        let org = organization(graph, &token, tenant).await?;
        Ok::<_, ConsentRefusal>((token, org))
    };
    let (token, org) = confirmed.await.map_err(|r| r.after(admin))?;
    Ok(Consent {
        granted_scopes: granted_or(&token, granted_scopes),
        ..consent_for(&org, ConsentMode::Application).signed_by(admin)
    })
}

async fn redeem(
    entra: &EntraClient,
    redemption: &CodeRedemption<'_>,
) -> Result<crate::identity::DelegatedGrant, Refused> {
    Ok(entra
        .redeem_code(
            redemption.authority,
            redemption.code,
            redemption.pkce_verifier,
            redemption.nonce,
        )
        .await
        .inspect_err(|e| tracing::info!(error = ?e, "code redemption refused"))?)
}

/// Requires `admin` to be a Global Administrator: from `wids` when the ID token carries it,
/// else from Graph with `token` (delegated: the signer's own memberships, `user` `None`;
/// app-only: `user`'s). Graph may list a role without saying which (the token may not read
/// directory roles): no proof, so no consent.
async fn require_global_admin(
    graph: &GraphClient,
    admin: &SignedInAdmin,
    token: &Secret,
    user: Option<uuid::Uuid>,
) -> Result<(), ConsentRefusal> {
    match admin.global_admin {
        RoleClaim::Holds => return Ok(()),
        RoleClaim::Lacks => return Err(not_global_admin(admin)),
        RoleClaim::Unstated => {}
    }
    let roles = match graph.directory_roles(token, user).await {
        Ok(roles) => roles,
        Err(e) if e.is_permission_denied() => {
            tracing::info!(error = ?e, "Graph may not list the signer's directory roles");
            return Err(role_unproven(admin));
        }
        Err(e) => return Err(e.into()),
    };
    let global_admin = |r: &Option<String>| {
        r.as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(GLOBAL_ADMIN_ROLE))
    };
    if roles.iter().any(global_admin) {
        Ok(())
    } else if roles.iter().all(Option::is_some) {
        Err(not_global_admin(admin))
    } else {
        tracing::info!("Graph lists directory roles of the signer without naming them");
        Err(role_unproven(admin))
    }
}

fn not_global_admin(admin: &SignedInAdmin) -> ConsentRefusal {
    ConsentRefusal::NotGlobalAdmin {
        username: admin.username.clone(),
    }
}

fn role_unproven(admin: &SignedInAdmin) -> ConsentRefusal {
    ConsentRefusal::RoleUnproven {
        username: admin.username.clone(),
    }
}

/// Reads `/organization` with `token` and requires it to be `expected`.
pub async fn organization(
    graph: &GraphClient,
    token: &Secret,
    expected: &TenantId,
) -> Result<Organization, ConsentRefusal> {
    let org = graph
        .organization(token)
        .await
        .inspect_err(|e| tracing::info!(error = ?e, "organization read failed"))?;
    if org.id != *expected {
        tracing::info!(found = %org.id, "organization read names another tenant");
        return Err(ConsentRefusal::OrganisationMismatch);
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
