//! `GET /authenticate/OAuth2Callback`: both of Microsoft's answer shapes, checked against the
//! session's single-use pending round-trip, verified, then recorded.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;
use tower_sessions::Session;

use super::link;
use super::outcome::{self, Outcome};
use super::{PendingConsent, session_error, session_invitation};
use crate::app::AppState;
use crate::identity::{AadError, TenantId};
use crate::invitations::{self, ConsentMode, Invitation};
use crate::tenants::{self, Consent};
use crate::web::client_addr::ClientAddr;
use crate::web::error::{Error, Result};
use crate::web::session;

/// Everything Microsoft may send back; which fields are present decides the shape.
#[derive(Default, serde::Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    admin_consent: Option<String>,
    tenant: Option<String>,
    scope: Option<String>,
}

/// The shape of a callback.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer<'a> {
    /// `error` (+ `error_description`), from either flow.
    Error(AadError),
    /// Code flow success.
    Code(&'a str),
    /// Admin-consent success: the claimed tenant (not yet trusted) and the granted scopes.
    AdminConsent {
        tenant: &'a str,
        scopes: Vec<String>,
    },
    /// Neither: nothing usable.
    Malformed,
}

impl CallbackQuery {
    /// Classifies the answer. An `error` wins over anything else in the query.
    pub fn answer(&self) -> Answer<'_> {
        if let Some(error) = self.error.as_deref().filter(|e| !e.is_empty()) {
            return Answer::Error(AadError::from_redirect(
                error,
                self.error_description.as_deref(),
            ));
        }
        if let Some(code) = self.code.as_deref().filter(|c| !c.is_empty()) {
            return Answer::Code(code);
        }
        if self
            .admin_consent
            .as_deref()
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            if let Some(tenant) = self.tenant.as_deref() {
                let scopes = self
                    .scope
                    .as_deref()
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect();
                return Answer::AdminConsent { tenant, scopes };
            }
        }
        Answer::Malformed
    }
}

/// Why a verified answer could not be turned into a consent: shown, and recorded as a setback.
type Refused = Outcome;

/// The callback.
#[tracing::instrument(skip_all)]
pub async fn callback(
    State(state): State<AppState>,
    client: ClientAddr,
    session: Session,
    Query(query): Query<CallbackQuery>,
) -> Result<Response> {
    // Before the pending round trip is taken: a limited admin can still come back after the wait.
    state.limits.callbacks.check(client)?;
    let provider = state.cfg.provider_name.clone();
    // Taken out first: whatever happens next, this state can not be presented again.
    let pending: Option<PendingConsent> = session
        .remove(session::PENDING_CONSENT)
        .await
        .map_err(session_error)?;
    let Some(pending) = pending else {
        tracing::info!("callback without a pending round-trip (replay, expiry or another browser)");
        return Ok(
            outcome::state_page(super::StateProblem::NothingPending, &provider)
                .with_status(StatusCode::BAD_REQUEST),
        );
    };
    let bound = session_invitation(&session).await?;
    if let Err(problem) = pending.check(query.state.as_deref(), bound, OffsetDateTime::now_utc()) {
        tracing::info!(?problem, "callback state refused");
        return Ok(outcome::state_page(problem, &provider).with_status(StatusCode::BAD_REQUEST));
    }
    let invitation = invitations::get(&state.db, pending.invitation_id)
        .await
        .map_err(|e| Error::Internal(e.into()))?;
    if let Some(closed) = link::Closed::of(invitation.status) {
        return Ok(
            link::closed_page(closed, Some(&invitation), &provider).with_status(closed.status())
        );
    }

    let result = match (query.answer(), pending.mode) {
        (Answer::Error(e), mode) => {
            tracing::info!(error = %e, "Microsoft returned an error to the callback");
            Err(outcome::for_aad_error(&e, mode, &provider))
        }
        (Answer::Code(code), ConsentMode::Delegated) => {
            delegated(&state, &pending, &invitation, code).await?
        }
        (Answer::AdminConsent { tenant, scopes }, ConsentMode::Application) => {
            application(&state, &invitation, tenant, scopes).await?
        }
        (answer, mode) => {
            tracing::info!(shape = ?std::mem::discriminant(&answer), mode = mode.as_str(), "callback shape does not fit the round-trip");
            return Ok(
                outcome::state_page(super::StateProblem::Mismatch, &provider)
                    .with_status(StatusCode::BAD_REQUEST),
            );
        }
    };
    match result {
        Ok(tenant_name) => {
            session
                .remove::<uuid::Uuid>(session::INVITATION)
                .await
                .map_err(session_error)?;
            tracing::info!(invitation_id = %invitation.id, "consent recorded");
            Ok(link::done_page(&provider, &tenant_name, "Sign in with Microsoft").into_response())
        }
        Err(refused) => {
            refused.record(&state.db, &invitation).await?;
            let status = refused.status;
            Ok(refused.page(&provider).with_status(status))
        }
    }
}

/// Delegated: redeem the code (the ID token is validated there), require a Global
/// Administrator, confirm the organisation through Graph, record.
async fn delegated(
    state: &AppState,
    pending: &PendingConsent,
    invitation: &Invitation,
    code: &str,
) -> Result<std::result::Result<String, Refused>> {
    let provider = state.cfg.provider_name.as_str();
    let (Some(verifier), Some(nonce)) =
        (pending.pkce_verifier.as_deref(), pending.nonce.as_deref())
    else {
        return Err(Error::Internal(anyhow::anyhow!(
            "delegated round-trip without verifier or nonce"
        )));
    };
    let grant = match state.entra.redeem_code(code, verifier, nonce).await {
        Ok(g) => g,
        Err(e) => {
            tracing::info!(error = %e, "code redemption refused");
            return Ok(Err(outcome::for_identity_error(
                &e,
                ConsentMode::Delegated,
                provider,
            )));
        }
    };
    let identity = &grant.identity;
    if !identity.is_global_admin {
        return Ok(Err(outcome::not_global_admin(&identity.username)));
    }
    let org = match state.graph.organization(&grant.access_token).await {
        Ok(o) => o,
        Err(e) => {
            tracing::info!(error = %e, "organization read failed");
            return Ok(Err(outcome::for_graph_error(&e, provider)));
        }
    };
    if org.id != identity.tenant_id {
        return Ok(Err(outcome::organisation_mismatch()));
    }
    let Some(refresh_token) = grant.refresh_token.clone() else {
        return Ok(Err(outcome::no_refresh_token()));
    };
    let consent = Consent {
        granted_scopes: grant.scopes.clone(),
        consented_by_oid: Some(identity.object_id),
        consented_by_upn: Some(identity.username.clone()),
        credential: Some(refresh_token),
        ..consent_for(&org, ConsentMode::Delegated)
    };
    record(state, invitation, &consent).await
}

/// Application: the query's `tenant` only says where to ask. Consent is proven by a
/// client-credentials token for that tenant and its `/organization`.
async fn application(
    state: &AppState,
    invitation: &Invitation,
    claimed_tenant: &str,
    scopes: Vec<String>,
) -> Result<std::result::Result<String, Refused>> {
    let provider = state.cfg.provider_name.as_str();
    let Ok(tenant) = TenantId::parse(claimed_tenant) else {
        return Ok(Err(outcome::bad_tenant_in_answer()));
    };
    let token = match state.entra.app_token(&tenant, None).await {
        Ok(t) => t,
        Err(e) => {
            tracing::info!(error = %e, "consent could not be confirmed with a client-credentials token");
            return Ok(Err(outcome::for_identity_error(
                &e,
                ConsentMode::Application,
                provider,
            )));
        }
    };
    let org = match state.graph.organization(&token).await {
        Ok(o) => o,
        Err(e) => {
            tracing::info!(error = %e, "organization read failed");
            return Ok(Err(outcome::for_graph_error(&e, provider)));
        }
    };
    if org.id != tenant {
        return Ok(Err(outcome::organisation_mismatch()));
    }
    let consent = Consent {
        granted_scopes: scopes,
        ..consent_for(&org, ConsentMode::Application)
    };
    record(state, invitation, &consent).await
}

/// What `/organization` proves about the tenant, as a consent in `mode`; callers add who
/// consented, the scopes and the credential.
pub fn consent_for(org: &crate::graph::Organization, mode: ConsentMode) -> Consent {
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

/// The organisation's name, else its default domain, else its id.
fn display_name(org: &crate::graph::Organization) -> String {
    if !org.display_name.trim().is_empty() {
        return org.display_name.trim().to_owned();
    }
    org.default_domain()
        .map(str::to_owned)
        .unwrap_or_else(|| org.id.to_string())
}

/// Records the consent; the refusals of `record_consent` become outcomes.
pub async fn record(
    state: &AppState,
    invitation: &Invitation,
    consent: &Consent,
) -> Result<std::result::Result<String, Refused>> {
    match tenants::record_consent(&state.db, &state.cfg.keys, invitation.id, consent).await {
        Ok(_) => Ok(Ok(consent.display_name.clone())),
        Err(e) => match outcome::for_consent_error(&e, consent.mode, &state.cfg.provider_name) {
            Some(refused) => {
                tracing::info!(error = %e, "consent refused");
                Ok(Err(refused))
            }
            None => Err(Error::Internal(e.into())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> CallbackQuery {
        let encoded = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        serde_urlencoded_like(&encoded)
    }

    fn serde_urlencoded_like(s: &str) -> CallbackQuery {
        let uri: axum::http::Uri = format!("/cb?{s}").parse().unwrap();
        Query::<CallbackQuery>::try_from_uri(&uri).unwrap().0
    }

    #[test]
    fn both_answer_shapes_are_recognised() {
        assert_eq!(
            query(&[("code", "abc"), ("state", "s")]).answer(),
            Answer::Code("abc")
        );
        let q = query(&[
            ("admin_consent", "True"),
            ("tenant", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
            (
                "scope",
                "https://graph.microsoft.com/User.Read.All https://graph.microsoft.com/Group.Read.All",
            ),
            ("state", "s"),
        ]);
        match q.answer() {
            Answer::AdminConsent { tenant, scopes } => {
                assert_eq!(tenant, "72f988bf-86f1-41af-91ab-2d7cd011db47");
                assert_eq!(scopes.len(), 2);
            }
            other => panic!("{other:?}"),
        }
        let q = query(&[
            ("error", "consent_required"),
            (
                "error_description",
                "AADSTS65004: User declined to consent to access the app.",
            ),
            ("admin_consent", "True"),
            ("state", "s"),
        ]);
        match q.answer() {
            Answer::Error(e) => assert_eq!(e.code(), Some(65004)),
            other => panic!("{other:?}"),
        }
        assert_eq!(query(&[("state", "s")]).answer(), Answer::Malformed);
        assert_eq!(
            query(&[("admin_consent", "False"), ("tenant", "x")]).answer(),
            Answer::Malformed
        );
    }
}
