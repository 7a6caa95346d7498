//! `GET /authenticate/OAuth2Callback`: both of Microsoft's answer shapes, checked against the
//! session's single-use pending round-trip, verified, then recorded.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use time::OffsetDateTime;
use tower_sessions::Session;

use super::confirming::{self, Confirming, Step};
use super::outcome::{self, SetbackReport};
use super::{AdminConsented, PendingConsent, session_invitation};
use super::{link, result};
use crate::audit::Actor;
use crate::identity::AadError;
use crate::invitations::{self, Invitation};
use crate::onboarding;
use crate::tenants::{self, Consent};
use crate::types::Branding;
use crate::types::ConsentMode;
use crate::types::TenantId;
use crate::types::Untrusted;
use crate::web::AppState;
use crate::web::client_addr::ClientAddr;
use crate::web::error::{Error, Result};
use crate::web::{paths, session};

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
    let live = state.live().await?;
    let provider = live.settings.branding.clone();
    // Taken out first: whatever happens next, this state can not be presented again.
    let pending: Option<PendingConsent> = session.remove(session::PENDING_CONSENT).await?;
    let Some(pending) = pending else {
        if result::has_result(&session).await? {
            // The back button (or a refresh) after the outcome was shown: show it again.
            return Ok(Redirect::to(paths::WIZARD_RESULT).into_response());
        }
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
    let invitation = invitations::get(&state.db, pending.invitation_id).await?;
    if let Some(closed) = link::Closed::of(invitation.status) {
        return Ok(
            link::closed_page(closed, Some(&invitation), &provider).with_status(closed.status())
        );
    }

    let verified = match (query.answer(), pending.mode, &pending.admin_consent) {
        (Answer::Error(e), ConsentMode::Application, Some(leg))
            if leg.silent && e.needs_interaction() =>
        {
            // The silent sign-in after consent found no usable Microsoft session: ask once.
            tracing::info!(error = ?Untrusted(&e.error), "silent admin sign-in needs interaction");
            let leg = AdminConsented {
                silent: false,
                ..leg.clone()
            };
            return sign_in_admin(&state, &session, &invitation, leg).await;
        }
        (Answer::Error(e), mode, _) => {
            tracing::info!(
                error = ?Untrusted(&e.error),
                description = ?Untrusted(e.summary()),
                "Microsoft returned an error to the callback"
            );
            Err((
                outcome::for_aad_error(&e, mode, &provider),
                link_holder(client),
            ))
        }
        (Answer::Code(code), ConsentMode::Delegated, None) => {
            let redemption = pending.redemption(code)?;
            onboarding::verify_delegated(live.entra()?, &state.graph, &redemption)
                .await
                .map_err(|r| refused(&r, ConsentMode::Delegated, &provider, client))
        }
        (Answer::AdminConsent { tenant, scopes }, ConsentMode::Application, None) => {
            // Not trusted yet: it only says which tenant the admin must now prove to run.
            let Ok(tenant) = TenantId::parse(tenant) else {
                let refused = (outcome::bad_tenant_in_answer(), link_holder(client));
                return refuse(&state, &session, &invitation, refused).await;
            };
            let leg = AdminConsented {
                tenant,
                scopes,
                silent: true,
            };
            return sign_in_admin(&state, &session, &invitation, leg).await;
        }
        (Answer::Code(code), ConsentMode::Application, Some(leg)) => {
            let redemption = pending.redemption(code)?;
            match onboarding::verify_admin_sign_in(live.entra()?, &leg.tenant, &redemption).await {
                Ok(admin) => {
                    let confirming = Confirming::new(invitation.id, admin, leg.scopes.clone());
                    return Ok(
                        match confirming::attempt(&state, &session, &invitation, confirming, client)
                            .await?
                        {
                            Step::Finished(response) => response,
                            Step::Waiting(_) => Redirect::to(paths::WIZARD_RESULT).into_response(),
                        },
                    );
                }
                Err(r) => Err(refused(&r, ConsentMode::Application, &provider, client)),
            }
        }
        (answer, mode, _) => {
            tracing::info!(shape = ?std::mem::discriminant(&answer), mode = mode.as_str(), "callback shape does not fit the round-trip");
            return Ok(
                outcome::state_page(super::StateProblem::Mismatch, &provider)
                    .with_status(StatusCode::BAD_REQUEST),
            );
        }
    };
    let recorded = match verified {
        Ok(consent) => {
            let actor = consented_by(&consent, client);
            match record(&state, &invitation, &consent, &actor).await? {
                Recorded::Connected(tenant_name) => Ok(tenant_name),
                Recorded::Refused(refused) => Err((refused, actor)),
            }
        }
        Err(refused) => Err(refused),
    };
    match recorded {
        Ok(tenant_name) => {
            session.remove::<uuid::Uuid>(session::INVITATION).await?;
            tracing::info!(invitation_id = %invitation.id, "consent recorded");
            let done = link::done_page(&provider, &tenant_name, "Sign in with Microsoft");
            result::show_after_redirect(&session, done, StatusCode::OK).await
        }
        Err(refused) => refuse(&state, &session, &invitation, refused).await,
    }
}

/// A verification that failed, as the page to show and who to credit it to: the person who
/// signed in when Microsoft verified one, otherwise whoever holds the link.
pub(super) fn refused(
    refused: &onboarding::Refused,
    mode: ConsentMode,
    provider: &Branding,
    client: ClientAddr,
) -> (SetbackReport, Actor) {
    let actor = refused
        .by
        .as_ref()
        .map(|admin| super::verified_actor(admin))
        .unwrap_or_else(|| link_holder(client));
    (
        outcome::for_refusal(&refused.refusal, mode, provider),
        actor,
    )
}

/// Who gave `consent`: its verified signer, else (customer app) whoever holds the link.
pub(super) fn consented_by(consent: &Consent, client: ClientAddr) -> Actor {
    match (&consent.consented_by_upn, consent.consented_by_oid) {
        (Some(upn), Some(oid)) => Actor::Customer {
            upn: upn.clone(),
            oid,
        },
        _ => link_holder(client),
    }
}

fn link_holder(client: ClientAddr) -> Actor {
    Actor::LinkHolder(client.ip())
}

/// Records a refusal on the invitation, credited to its actor, and shows it on the result page.
pub(super) async fn refuse(
    state: &AppState,
    session: &Session,
    invitation: &Invitation,
    (refused, actor): (SetbackReport, Actor),
) -> Result<Response> {
    refused.record(&state.db, invitation, &actor).await?;
    let status = refused.status;
    let provider = state.live().await?.settings.branding.clone();
    result::show_after_redirect(session, refused.page(&provider), status).await
}

/// Sends the admin to sign in to the tenant that answered the admin consent, with a fresh
/// single-use state, nonce and PKCE verifier; the consent counts only once that sign-in proves
/// a Global Administrator of the same tenant.
async fn sign_in_admin(
    state: &AppState,
    session: &Session,
    invitation: &Invitation,
    leg: AdminConsented,
) -> Result<Response> {
    let request = state
        .live()
        .await?
        .entra()?
        .admin_sign_in_request(&leg.tenant, None, leg.silent);
    let pending = PendingConsent {
        mode: ConsentMode::Application,
        state: request.state,
        nonce: Some(request.nonce),
        pkce_verifier: Some(request.pkce_verifier),
        authority: Some(request.authority),
        invitation_id: invitation.id,
        created_at: OffsetDateTime::now_utc().unix_timestamp(),
        admin_consent: Some(leg),
    };
    session.insert(session::PENDING_CONSENT, &pending).await?;
    tracing::info!(invitation_id = %invitation.id, "admin consent answered; confirming who signed in");
    Ok(Redirect::to(request.url.as_str()).into_response())
}

/// What became of a verified consent.
pub enum Recorded {
    /// The tenant is connected; its name, for the done page.
    Connected(String),
    /// `record_consent` refused it: the setback to record and show.
    Refused(SetbackReport),
}

/// Records the consent, credited to `actor`; the refusals of `record_consent` become setbacks.
pub async fn record(
    state: &AppState,
    invitation: &Invitation,
    consent: &Consent,
    actor: &Actor,
) -> Result<Recorded> {
    match tenants::record_consent(&state.db, &state.cfg.keys, invitation.id, consent, actor).await {
        Ok(_) => Ok(Recorded::Connected(consent.display_name.clone())),
        Err(e) => match outcome::for_consent_error(
            &e,
            consent.mode,
            &state.live().await?.settings.branding,
        ) {
            Some(refused) => {
                tracing::info!(error = ?e, "consent refused");
                Ok(Recorded::Refused(refused))
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
