//! Operators signing in with Entra ID of the provider's own tenant: leaving for Microsoft,
//! coming back (the role from their groups and app roles), and front-channel logout.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tower_cookies::Cookies;
use tower_sessions::Session;
use url::Url;
use uuid::Uuid;

use super::auth::{LoginPage, LoginQuery, return_to, sso_tenant};
use crate::audit::{self, Action, Actor};
use crate::identity::{AadError, IdentityError, OperatorIdentity, OperatorSignInError};
use crate::operators::{self, EntraSignIn, OperatorError, RoleMapping};
use crate::settings::Live;
use crate::types::TenantId;
use crate::types::Untrusted;
use crate::web::client_addr::ClientAddr;
use crate::web::csrf::{self, CsrfToken};
use crate::web::error::Result;
use crate::web::session::{self, SsoSession};
use crate::web::session_store;
use crate::web::{AppState, FramedByAuthority, paths};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(paths::SSO_START, get(start))
        .route(paths::SSO_CALLBACK, get(callback))
        .route(paths::SSO_LOGOUT, get(front_channel_logout))
}

/// The redirect URI of operator sign-in: `{public}/console/sso/callback`.
pub fn callback_url(public_url: &Url) -> Url {
    public_url
        .join(paths::SSO_CALLBACK.trim_start_matches('/'))
        .expect("a fixed relative path joins")
}

/// A sign-in with Entra ID under way: what the callback must see again, single use.
#[derive(Serialize, Deserialize)]
struct PendingSso {
    state: String,
    nonce: String,
    pkce_verifier: String,
    tenant: TenantId,
    next: String,
}

/// Leaves for Microsoft's sign-in at the provider's tenant.
async fn start(
    State(state): State<AppState>,
    client: ClientAddr,
    session: Session,
    CsrfToken(csrf): CsrfToken,
    Query(query): Query<LoginQuery>,
) -> Result<Response> {
    state.limits.consent_starts.check(client)?;
    let live = state.live().await?;
    let next = return_to(query.next.as_deref());
    let Some(tenant) = sso_tenant(&live.settings) else {
        let page = LoginPage::new(&live, csrf, next)
            .refused("Sign-in with Microsoft is not set up: sign in with your email and password.");
        return Ok((StatusCode::NOT_FOUND, page).into_response());
    };
    let request = live
        .entra()?
        .operator_sign_in_request(&tenant, &callback_url(&state.cfg.public_url));
    session
        .insert(
            session::PENDING_SSO,
            PendingSso {
                state: request.state,
                nonce: request.nonce,
                pkce_verifier: request.pkce_verifier,
                tenant,
                next,
            },
        )
        .await?;
    Ok(Redirect::to(request.url.as_str()).into_response())
}

/// What Microsoft sends back.
#[derive(Deserialize, Default)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// A refused sign-in: what the audit trail records and what the page says.
struct SsoRefusal {
    /// For the audit trail and the log.
    reason: String,
    /// For the person at the browser.
    message: String,
    /// Who Microsoft signed in, when it got that far.
    who: Option<(String, Uuid)>,
    extra: Value,
}

impl SsoRefusal {
    fn new(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            message: message.into(),
            who: None,
            extra: json!({}),
        }
    }

    fn by(mut self, username: &str, oid: Uuid) -> Self {
        self.who = Some((username.to_owned(), oid));
        self
    }
}

/// Back from Microsoft: the state must be this session's, the ID token valid and of the
/// provider's tenant, and the groups or app roles must map to a role.
#[tracing::instrument(skip_all)]
async fn callback(
    State(state): State<AppState>,
    client: ClientAddr,
    session: Session,
    cookies: Cookies,
    CsrfToken(csrf): CsrfToken,
    Query(query): Query<CallbackQuery>,
) -> Result<Response> {
    state.limits.callbacks.check(client)?;
    // Taken out first: whatever happens next, this state cannot be presented again.
    let pending: Option<PendingSso> = session.remove(session::PENDING_SSO).await?;
    let live = state.live().await?;
    let next = pending
        .as_ref()
        .map(|p| p.next.clone())
        .unwrap_or_else(|| return_to(None));
    let verified = verify(&state, &live, pending, &query).await;
    let back = Back {
        state: &state,
        live: &live,
        client,
        csrf,
        next,
    };
    match verified {
        Ok(who) => sign_in(back, &session, &cookies, who).await,
        Err(refusal) => refuse(back, refusal).await,
    }
}

/// Everything short of the database: the round trip, Microsoft's answer, the token, the tenant.
async fn verify(
    state: &AppState,
    live: &Live,
    pending: Option<PendingSso>,
    query: &CallbackQuery,
) -> std::result::Result<OperatorIdentity, SsoRefusal> {
    let start_again = "This sign-in expired or was already used (or was started in another browser). Start again with \u{201c}Sign in with Microsoft\u{201d}.";
    let Some(pending) = pending else {
        return Err(SsoRefusal::new(
            "no sign-in with Microsoft was under way in this browser",
            start_again,
        ));
    };
    let state_ok = query
        .state
        .as_deref()
        .is_some_and(|s| crate::crypto::constant_time_eq(s.as_bytes(), pending.state.as_bytes()));
    if !state_ok {
        return Err(SsoRefusal::new(
            "state missing or does not match this browser's sign-in",
            start_again,
        ));
    }
    if let Some(error) = query.error.as_deref().filter(|e| !e.is_empty()) {
        let aad = AadError::from_redirect(error, query.error_description.as_deref());
        tracing::info!(error = ?Untrusted(&aad.error), description = ?Untrusted(aad.summary()), "Microsoft refused the operator sign-in");
        return Err(SsoRefusal::new(
            format!(
                "Microsoft answered {aad}: {}",
                aad.summary().chars().take(300).collect::<String>()
            ),
            format!(
                "Microsoft did not sign you in ({}). Try again, or sign in with another account.",
                aad.code()
                    .map(|c| format!("AADSTS{c}"))
                    .unwrap_or(aad.error.clone())
            ),
        ));
    }
    let Some(code) = query.code.as_deref().filter(|c| !c.is_empty()) else {
        return Err(SsoRefusal::new(
            "Microsoft's answer carried neither a code nor an error",
            start_again,
        ));
    };
    let Some(tenant) = sso_tenant(&live.settings) else {
        return Err(SsoRefusal::new(
            "sign-in with Entra ID was turned off meanwhile",
            "Sign-in with Microsoft has been turned off.",
        ));
    };
    if tenant != pending.tenant {
        return Err(SsoRefusal::new(
            "the provider's tenant changed in the settings meanwhile",
            start_again,
        ));
    }
    let entra = live
        .entra()
        .map_err(|e| SsoRefusal::new(e.to_string(), start_again))?;
    let redeemed = entra
        .redeem_operator_code(
            &tenant,
            &callback_url(&state.cfg.public_url),
            code,
            &pending.pkce_verifier,
            &pending.nonce,
        )
        .await;
    redeemed.map_err(|e| match e {
        OperatorSignInError::WrongTenant {
            expected,
            actual,
            username,
        } => SsoRefusal {
            reason: format!("signed in to tenant {actual}, not the provider's tenant {expected}"),
            message: format!(
                "You signed in with {username}, an account of another organization (tenant {actual}). Sign in with your account of {}'s own tenant.",
                live.settings.branding.name
            ),
            who: None,
            extra: json!({ "username": username, "tenant": actual.to_string() }),
        },
        OperatorSignInError::GroupsOverage { username, oid } => SsoRefusal::new(
            "groups overage: too many groups for the token's groups claim",
            "You are in too many groups for Microsoft to list them in the sign-in (over 200), so Gangway cannot tell your role from your groups. Ask an admin to use app roles of the Gangway app instead of groups (and to stop the app's groups claim, or limit it to groups assigned to the app).",
        )
        .by(&username, oid),
        OperatorSignInError::Identity(IdentityError::InvalidIdToken(problem)) => SsoRefusal::new(
            format!("the ID token was rejected: {problem}"),
            "Microsoft's answer did not pass Gangway's checks, so it was refused for safety. Start again; if it keeps happening, tell an administrator.",
        ),
        // The code was issued by another tenant than the one redeeming it (Microsoft checks).
        OperatorSignInError::Identity(IdentityError::Aad(aad)) if aad.code() == Some(700005) => {
            SsoRefusal::new(
                "the code was issued by another tenant than the provider's (AADSTS700005)",
                format!(
                    "You signed in with an account of another organization. Sign in with your account of {}'s own tenant.",
                    live.settings.branding.name
                ),
            )
        }
        OperatorSignInError::Identity(IdentityError::Aad(aad)) => SsoRefusal::new(
            format!("the code was not redeemed: {aad}: {}", aad.summary().chars().take(300).collect::<String>()),
            format!(
                "Microsoft did not complete the sign-in ({}). Start again.",
                aad.code().map(|c| format!("AADSTS{c}")).unwrap_or(aad.error.clone())
            ),
        ),
        OperatorSignInError::Identity(e @ IdentityError::NoCredential) => SsoRefusal::new(
            e.to_string(),
            "Gangway's app has no credential yet, so Microsoft's answer cannot be redeemed. An administrator finishes the setup (console → Setup); until then sign in with your email and password.",
        ),
        OperatorSignInError::Identity(IdentityError::Transport(why)) => SsoRefusal::new(
            format!("could not reach Microsoft: {why}"),
            "Gangway could not reach Microsoft to complete the sign-in. Try again in a moment.",
        ),
    })
}

/// Coming back from Microsoft: where to go next, and what a refusal needs.
struct Back<'a> {
    state: &'a AppState,
    live: &'a Live,
    client: ClientAddr,
    csrf: String,
    next: String,
}

/// A verified operator: their role from the mapping, their account, a fresh session.
async fn sign_in(
    back: Back<'_>,
    session: &Session,
    cookies: &Cookies,
    who: OperatorIdentity,
) -> Result<Response> {
    let (state, live) = (back.state, back.live);
    let sso = &live.settings.sso;
    let mapping = RoleMapping {
        admin_groups: &sso.admin_groups,
        viewer_groups: &sso.viewer_groups,
        admin_roles: &sso.admin_roles,
        viewer_roles: &sso.viewer_roles,
    };
    let Some(role) = mapping.role_for(&who.groups, &who.roles) else {
        let mut refusal = SsoRefusal::new(
            "none of the user's groups or app roles is mapped to admin or viewer",
            format!(
                "Microsoft signed you in as {}, but none of your groups or app roles is one Gangway maps to a role (admin or viewer). Ask a Gangway admin to add one of your groups, or an app role you hold, to the sign-in settings.",
                who.username
            ),
        )
        .by(&who.username, who.oid);
        refusal.extra = json!({ "groups": who.groups.len(), "roles": who.roles });
        return refuse(back, refusal).await;
    };
    let signed = operators::sign_in_with_entra(
        &state.db,
        EntraSignIn {
            oid: who.oid,
            username: &who.username,
            role,
        },
        // What the role was decided from.
        json!({ "groups": who.groups.len(), "roles": who.roles }),
    )
    .await;
    let signed = match signed {
        Ok(signed) => signed,
        Err(e @ (OperatorError::Invalid(_) | OperatorError::Blocked(_))) => {
            let why = e.to_string();
            let refusal = SsoRefusal::new(why.clone(), format!("You cannot sign in: {why}."))
                .by(&who.username, who.oid);
            return refuse(back, refusal).await;
        }
        Err(e) => return Err(e.into()),
    };
    // A new session id and CSRF token at sign-in, as with a password.
    session.cycle_id().await?;
    session
        .insert(session::OPERATOR, signed.operator.id)
        .await?;
    session
        .insert(
            session::SSO,
            SsoSession {
                tenant: who.tid,
                oid: who.oid,
                sid: who.sid,
            },
        )
        .await?;
    csrf::rotate(state, session, cookies).await?;
    tracing::info!(operator = %signed.operator.id, role = signed.operator.role.as_str(), created = signed.created, "operator signed in with Entra ID");
    Ok(Redirect::to(&back.next).into_response())
}

/// Audits a refused sign-in with its reason and shows the sign-in page saying why.
async fn refuse(back: Back<'_>, refusal: SsoRefusal) -> Result<Response> {
    let mut detail = json!({ "method": "entra", "reason": refusal.reason });
    if let Some((username, oid)) = &refusal.who {
        detail["username"] = json!(username);
        detail["entra_object_id"] = json!(oid.to_string());
    }
    if let (Some(out), Some(extra)) = (detail.as_object_mut(), refusal.extra.as_object()) {
        out.extend(extra.clone());
    }
    tracing::info!(reason = ?Untrusted(&refusal.reason), "sign-in with Entra ID refused");
    audit::record(
        &back.state.db,
        &Actor::Anonymous(back.client.ip()),
        Action::OperatorSignInFailed,
        None,
        None,
        detail,
    )
    .await?;
    let page = LoginPage::new(back.live, back.csrf, back.next).refused(refusal.message);
    Ok((StatusCode::FORBIDDEN, page).into_response())
}

#[derive(Deserialize, Default)]
struct LogoutQuery {
    sid: Option<String>,
}

/// Front-channel logout: Entra ID loads this in a hidden frame when the operator signs out
/// there. Ends the Gangway sessions of that Entra session (by the `sid` stored at sign-in),
/// or, without a `sid`, those of the operator whose browser this is (by object id). Answers
/// a tiny page that only the authority may frame; it needs no CSRF token (it only ends
/// sessions, and only those the caller names by an unguessable `sid` or holds).
async fn front_channel_logout(
    State(state): State<AppState>,
    client: ClientAddr,
    session: Session,
    Query(query): Query<LogoutQuery>,
) -> Result<Response> {
    // Each call opens the live sessions: a budget per client, as for the Microsoft round trip.
    state.limits.callbacks.check(client)?;
    let own: Option<SsoSession> = session.get(session::SSO).await.ok().flatten();
    let sid = query.sid.filter(|s| !s.is_empty() && s.len() <= 128);
    let stored = |data: &std::collections::HashMap<String, Value>| {
        data.get(session::SSO)
            .and_then(|v| serde_json::from_value::<SsoSession>(v.clone()).ok())
    };
    let ended = match (&sid, &own) {
        (Some(sid), _) => {
            session_store::end_matching(&state.db, &state.cfg.keys, |data| {
                stored(data).is_some_and(|s| s.sid.as_deref() == Some(sid.as_str()))
            })
            .await?
        }
        (None, Some(own)) => {
            session_store::end_matching(&state.db, &state.cfg.keys, |data| {
                stored(data).is_some_and(|s| s.oid == own.oid && s.tenant == own.tenant)
            })
            .await?
        }
        (None, None) => Vec::new(),
    };
    let mine = own.is_some_and(|o| sid.is_none() || o.sid == sid);
    if mine {
        session.flush().await?;
    }
    session_store::audit_ended(
        &state.db,
        &ended,
        Action::OperatorSignedOut,
        json!({ "method": "entra front-channel logout" }),
    )
    .await?;
    tracing::info!(sessions = ended.len(), "front-channel logout");
    let authority = state.cfg.authority.origin().ascii_serialization();
    let csp = HeaderValue::from_str(&format!(
        "default-src 'none'; style-src 'self'; frame-ancestors {authority}; base-uri 'none'; form-action 'none'"
    ))
    .expect("an origin is a valid header value");
    let mut response = (
        [(header::CONTENT_SECURITY_POLICY, csp)],
        Html(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Signed out · Gangway</title></head><body><p>Signed out of Gangway.</p></body></html>",
        ),
    )
        .into_response();
    response.extensions_mut().insert(FramedByAuthority);
    Ok(response)
}
