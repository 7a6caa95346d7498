//! RP-initiated logout. With a valid `id_token_hint` the session ends at once and the browser
//! goes back to the application's registered post-logout redirect URI; without one, the user
//! confirms with a button (a plain link cannot sign anyone out). Never a redirect to an address
//! the application did not register.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use tower_sessions::Session;
use url::Url;
use uuid::Uuid;

use super::{ConfirmForm, Link, MessagePage, SSO};
use crate::settings::Live;
use crate::signin::sessions::{self, Ended};
use crate::signin::{Application, applications, keys, provider};
use crate::types::TenantId;
use crate::web::client_addr::ClientAddr;
use crate::web::csrf::CsrfToken;
use crate::web::error::Result;
use crate::web::{AppState, paths};

/// A logout request.
#[derive(Deserialize, Default)]
pub(super) struct LogoutQuery {
    id_token_hint: Option<String>,
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
}

/// The registered post-logout redirect URI asked for, with `state`, if `app` registered it.
fn back_to_app(app: Option<&Application>, uri: Option<&str>, state: Option<&str>) -> Option<Url> {
    let (app, uri) = (app?, uri?);
    if !app.accepts_post_logout_redirect(uri) {
        tracing::info!(application = %app.client_id, "post-logout redirect URI not registered; not redirecting");
        return None;
    }
    let mut url = Url::parse(uri).ok()?;
    if let Some(state) = state.filter(|s| !s.is_empty() && s.len() <= 512) {
        url.query_pairs_mut().append_pair("state", state);
    }
    Some(url)
}

/// Ends the browser's Gangway session (and the one `sid` names), if any.
async fn end_sessions(
    state: &AppState,
    session: &Session,
    sid: Option<&str>,
) -> Result<Option<Ended>> {
    let mut ended = None;
    if let Some(id) = session.remove::<Uuid>(SSO).await? {
        ended = sessions::end(&state.db, id, "logged out").await?;
    }
    if let Some(sid) = sid
        && let Some(id) = sessions::by_sid(&state.db, sid).await?
    {
        ended = sessions::end(&state.db, id, "logged out").await?.or(ended);
    }
    Ok(ended)
}

/// The signed-out page: a way back to the application when it registered one, and Entra ID's
/// own sign-out (the user may still be signed in to Microsoft in this browser).
fn signed_out(state: &AppState, live: &Live, ended: Option<&Ended>, back: Option<Url>) -> Response {
    let mut page = MessagePage::new(&live.settings.branding, "ok", "You are signed out")
        .says("You signed out of the applications you used through this sign-in.");
    if let Some(back) = back {
        page.links.push(Link {
            id: "back-to-app",
            href: back.to_string(),
            label: "Back to the application".into(),
        });
    }
    if let Some(ended) = ended {
        let authority = state.cfg.authority.as_str().trim_end_matches('/');
        page = page.says("You may still be signed in to Microsoft in this browser.");
        page.links.push(Link {
            id: "microsoft-logout",
            href: format!("{authority}/{}/oauth2/v2.0/logout", ended.entra_tenant_id),
            label: "Sign out of Microsoft too".into(),
        });
    }
    page.respond(StatusCode::OK)
}

/// `GET /oidc/logout`.
pub(super) async fn logout(
    State(state): State<AppState>,
    client: ClientAddr,
    session: Session,
    CsrfToken(csrf): CsrfToken,
    Query(q): Query<LogoutQuery>,
) -> Result<Response> {
    state.limits.callbacks.check(client)?;
    let live = state.live().await?;
    let hint = match q
        .id_token_hint
        .as_deref()
        .filter(|h| !h.is_empty() && h.len() <= 8_000)
    {
        Some(raw) => {
            let keys = keys::load(&state.db, &state.cfg.keys).await?;
            provider::verify_hint(&keys, &super::issuer(&state.cfg), raw)
        }
        None => None,
    };
    // A client_id that contradicts the hint names no application.
    let client_id = match (&hint, q.client_id.as_deref()) {
        (Some(h), Some(c)) if h.client_id != c => None,
        (Some(h), _) => Some(h.client_id.clone()),
        (None, c) => c.map(str::to_owned),
    };
    let app = match &client_id {
        Some(id) => applications::by_client_id(&state.db, id).await?,
        None => None,
    };
    let Some(hint) = hint else {
        if let Some(done) = session.remove::<SignedOut>(SIGNED_OUT).await? {
            let ended = done.entra_tenant_id.map(|t| Ended {
                entra_tenant_id: t,
                applications: Vec::new(),
            });
            return Ok(signed_out(&state, &live, ended.as_ref(), done.back));
        }
        if session.get::<Uuid>(SSO).await?.is_none() {
            let back = back_to_app(
                app.as_ref(),
                q.post_logout_redirect_uri.as_deref(),
                q.state.as_deref(),
            );
            return Ok(signed_out(&state, &live, None, back));
        }
        let mut page = MessagePage::new(&live.settings.branding, "warn", "Sign out?")
            .says("An application asks to sign you out of everything you signed in to through this sign-in.");
        page.confirm = Some(ConfirmForm {
            csrf,
            client_id: app.as_ref().map(|a| a.client_id.clone()),
            post_logout_redirect_uri: q.post_logout_redirect_uri,
            state: q.state,
        });
        return Ok(page.respond(StatusCode::OK));
    };
    let ended = end_sessions(&state, &session, hint.sid.as_deref()).await?;
    match back_to_app(
        app.as_ref(),
        q.post_logout_redirect_uri.as_deref(),
        q.state.as_deref(),
    ) {
        Some(back) => Ok(Redirect::to(back.as_str()).into_response()),
        None => Ok(signed_out(&state, &live, ended.as_ref(), None)),
    }
}

/// The session key of what the signed-out page shows after a confirmed logout.
const SIGNED_OUT: &str = "signin_signed_out";

/// What the signed-out page shows after a confirmed logout (post/redirect/get).
#[derive(Serialize, Deserialize)]
struct SignedOut {
    entra_tenant_id: Option<TenantId>,
    back: Option<Url>,
}

/// `POST /oidc/logout`: the user confirmed; then the signed-out page (by GET).
pub(super) async fn confirmed(
    State(state): State<AppState>,
    session: Session,
    Form(form): Form<LogoutQuery>,
) -> Result<Response> {
    let ended = end_sessions(&state, &session, None).await?;
    let app = match form.client_id.as_deref() {
        Some(id) => applications::by_client_id(&state.db, id).await?,
        None => None,
    };
    // A link on the page, not a redirect: the form may only lead to Gangway's own pages.
    let back = back_to_app(
        app.as_ref(),
        form.post_logout_redirect_uri.as_deref(),
        form.state.as_deref(),
    );
    session
        .insert(
            SIGNED_OUT,
            SignedOut {
                entra_tenant_id: ended.map(|e| e.entra_tenant_id),
                back,
            },
        )
        .await?;
    Ok(Redirect::to(paths::SIGNIN_LOGOUT).into_response())
}
