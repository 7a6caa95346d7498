//! Signing operators in and out.

use askama::Template;
use askama_web::WebTemplate;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use serde_json::json;
use tower_cookies::Cookies;
use tower_sessions::Session;
use uuid::Uuid;

use crate::audit::{self, Action, Actor};
use crate::operators::{self, Operator};
use crate::settings::{Live, Settings};
use crate::types::{Secret, TenantId};
use crate::web::AppState;
use crate::web::client_addr::ClientAddr;
use crate::web::csrf::{self, CsrfToken};
use crate::web::error::Result;
use crate::web::{paths, session};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(paths::LOGIN, get(form).post(sign_in))
        .route(paths::LOGOUT, post(sign_out))
}

#[derive(Template, WebTemplate)]
#[template(path = "console/login.html")]
pub(super) struct LoginPage {
    provider: String,
    csrf: String,
    email: String,
    error: Option<String>,
    /// Who is signed in already, if anyone.
    current: Option<String>,
    /// An invited operator just set their password (their address is filled in).
    joined: bool,
    /// The console page to return to after signing in.
    next: String,
    /// "Sign in with Microsoft" is offered (sign-in with Entra ID is on and the provider's
    /// tenant is set).
    sso: bool,
    /// The password form is offered (local passwords are on).
    passwords: bool,
    /// Just signed out of a session that came from Entra ID: Entra's sign-out address, to end
    /// the Microsoft session too.
    microsoft_logout: Option<String>,
}

impl LoginPage {
    /// The sign-in page as the settings `live` have it, returning to `next`.
    pub(super) fn new(live: &Live, csrf: String, next: String) -> Self {
        Self {
            provider: live.settings.branding.name.clone(),
            csrf,
            email: String::new(),
            error: None,
            current: None,
            joined: false,
            next,
            sso: sso_tenant(&live.settings).is_some(),
            passwords: live.settings.local_passwords,
            microsoft_logout: None,
        }
    }

    /// The same page, saying why the sign-in was refused.
    pub(super) fn refused(mut self, error: impl Into<String>) -> Self {
        self.error = Some(error.into());
        self
    }

    fn sso_href(&self) -> String {
        let mut url = url::form_urlencoded::Serializer::new(String::new());
        url.append_pair("next", &self.next);
        format!("{}?{}", paths::SSO_START, url.finish())
    }
}

/// The provider's tenant, when operators may sign in with Entra ID there.
pub(super) fn sso_tenant(settings: &Settings) -> Option<TenantId> {
    settings
        .provider_tenant_id
        .filter(|_| settings.sso.enabled && settings.client_id.is_some())
}

/// Where to go after signing in: `next` when it is a console path on this site, else the
/// invitations list. Anything else (another host, `//evil`, a scheme) is ignored, so the
/// sign-in page cannot be made to redirect elsewhere; so is anything but printable ASCII (a
/// control character cannot go into a `Location` header, and console paths have none).
pub(super) fn return_to(next: Option<&str>) -> String {
    next.filter(|n| {
        (*n == paths::CONSOLE || n.starts_with("/console/"))
            && n.chars().all(|c| c.is_ascii_graphic())
            && !n.contains("//")
            && !n.contains('\\')
            && !n.starts_with(paths::LOGIN)
    })
    .unwrap_or(paths::INVITATIONS)
    .to_owned()
}

#[derive(Deserialize, Default)]
pub(super) struct LoginQuery {
    pub(super) next: Option<String>,
    /// `microsoft` after signing out of a session that came from Entra ID.
    signed_out: Option<String>,
    /// The address of an invited operator who just set their password.
    joined: Option<String>,
}

// Shown even to a signed-in operator (with a way back to the console): signing in as someone
// else must stay possible.
async fn form(
    State(state): State<AppState>,
    session: Session,
    CsrfToken(csrf): CsrfToken,
    Query(query): Query<LoginQuery>,
) -> Result<LoginPage> {
    let live = state.live().await?;
    let mut page = LoginPage::new(&live, csrf, return_to(query.next.as_deref()));
    page.current = signed_in(&state, &session).await?.map(|o| o.email);
    if let Some(email) = query.joined {
        page.joined = true;
        page.email = email;
    }
    if query.signed_out.as_deref() == Some("microsoft") {
        page.microsoft_logout = live
            .settings
            .provider_tenant_id
            .map(|tenant| microsoft_logout_url(&state, &tenant));
    }
    Ok(page)
}

/// Entra ID's end-session endpoint for `tenant`, coming back to the sign-in page (which must
/// be a redirect URI of the app for Microsoft to come back).
fn microsoft_logout_url(state: &AppState, tenant: &TenantId) -> String {
    let authority = state.cfg.authority.as_str().trim_end_matches('/');
    let back = state
        .cfg
        .public_url
        .join(paths::LOGIN.trim_start_matches('/'))
        .expect("a fixed relative path joins");
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("post_logout_redirect_uri", back.as_str());
    format!("{authority}/{tenant}/oauth2/v2.0/logout?{}", query.finish())
}

#[derive(Deserialize)]
struct Credentials {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: Option<String>,
}

async fn sign_in(
    State(state): State<AppState>,
    client: ClientAddr,
    session: Session,
    cookies: Cookies,
    CsrfToken(csrf): CsrfToken,
    Form(form): Form<Credentials>,
) -> Result<Response> {
    // Guessing passwords costs time: a small budget of attempts per client address.
    state.limits.sign_ins.check(client)?;
    let live = state.live().await?;
    let password = Secret::new(form.password);
    let next = return_to(form.next.as_deref());
    if !live.settings.local_passwords {
        audit::record(
            &state.db,
            &Actor::Anonymous(client.ip()),
            Action::OperatorSignInFailed,
            None,
            None,
            json!({ "email": form.email.trim(), "reason": "local passwords are turned off" }),
        )
        .await?;
        let page = LoginPage::new(&live, csrf, next).refused(if sso_tenant(&live.settings).is_some() {
            "Signing in with a password is turned off: sign in with Microsoft."
        } else {
            "Signing in with a password is turned off. Ask an administrator to turn local passwords back on or to set up sign-in with Microsoft."
        });
        return Ok((StatusCode::FORBIDDEN, page).into_response());
    }
    let Some(operator) = operators::authenticate(&state.db, &form.email, &password).await? else {
        audit::record(
            &state.db,
            &Actor::Anonymous(client.ip()),
            Action::OperatorSignInFailed,
            None,
            None,
            json!({ "email": form.email.trim(), "reason": "unknown email or wrong password" }),
        )
        .await?;
        let mut page = LoginPage::new(&live, csrf, next).refused("Email or password is incorrect.");
        page.email = form.email.trim().to_owned();
        return Ok((StatusCode::UNAUTHORIZED, page).into_response());
    };
    // A new session id and CSRF token at sign-in, so an id planted before it (session
    // fixation) or a token seen before it is worthless.
    session.cycle_id().await?;
    session.insert(session::OPERATOR, operator.id).await?;
    // Not signed in with Entra ID (whoever this browser was before).
    session.remove_value(session::SSO).await?;
    csrf::rotate(&state, &session, &cookies).await?;
    audit::record(
        &state.db,
        &Actor::Operator(operator.email.clone()),
        Action::OperatorSignedIn,
        None,
        None,
        json!({}),
    )
    .await?;
    Ok(Redirect::to(&next).into_response())
}

/// Signs out of Gangway. A session that came from Entra ID lands on the sign-in page with an
/// offer to sign out of Microsoft too (which, through front-channel logout, ends every Gangway
/// session of that Microsoft session).
async fn sign_out(State(state): State<AppState>, session: Session) -> Result<Redirect> {
    let sso: Option<session::SsoSession> = session.get(session::SSO).await?;
    if let Some(operator) = signed_in(&state, &session).await? {
        audit::record(
            &state.db,
            &Actor::Operator(operator.email),
            Action::OperatorSignedOut,
            None,
            None,
            if sso.is_some() {
                json!({ "method": "entra" })
            } else {
                json!({})
            },
        )
        .await?;
    }
    session.flush().await?;
    Ok(Redirect::to(&match sso {
        Some(_) => format!("{}?signed_out=microsoft", paths::LOGIN),
        None => paths::LOGIN.to_owned(),
    }))
}

pub(super) async fn signed_in(state: &AppState, session: &Session) -> Result<Option<Operator>> {
    let Some(id) = session.get::<Uuid>(session::OPERATOR).await? else {
        return Ok(None);
    };
    Ok(operators::get(&state.db, id).await?)
}

#[cfg(test)]
mod tests {
    use super::return_to;

    #[test]
    fn only_console_paths_on_this_site_are_returned_to() {
        assert_eq!(
            return_to(Some("/console/tenants?q=x")),
            "/console/tenants?q=x"
        );
        for bad in [
            None,
            Some("https://evil.example/console/"),
            Some("//evil.example/console/"),
            Some("/console//evil.example"),
            Some("/\\evil.example"),
            Some("/invitation"),
            Some("/console/login?next=/console/audit"),
            Some("/console/tenants\r\nSet-Cookie: x=1"),
            Some("/console/tenants\u{1}"),
            Some("/console/tenants?q=Müller"),
        ] {
            assert_eq!(return_to(bad), "/console/invitations", "{bad:?}");
        }
    }
}
