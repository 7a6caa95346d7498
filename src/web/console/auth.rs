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
use crate::types::Secret;
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
struct LoginPage {
    provider: String,
    csrf: String,
    email: String,
    error: Option<&'static str>,
    /// Who is signed in already, if anyone.
    current: Option<String>,
    /// The console page to return to after signing in.
    next: String,
}

/// Where to go after signing in: `next` when it is a console path on this site, else the
/// invitations list. Anything else (another host, `//evil`, a scheme) is ignored, so the
/// sign-in page cannot be made to redirect elsewhere.
fn return_to(next: Option<&str>) -> String {
    next.filter(|n| {
        (*n == paths::CONSOLE || n.starts_with("/console/"))
            && !n.contains("//")
            && !n.contains('\\')
            && !n.starts_with(paths::LOGIN)
    })
    .unwrap_or(paths::INVITATIONS)
    .to_owned()
}

#[derive(Deserialize, Default)]
struct LoginQuery {
    next: Option<String>,
}

// Shown even to a signed-in operator (with a way back to the console): signing in as someone
// else must stay possible.
async fn form(
    State(state): State<AppState>,
    session: Session,
    CsrfToken(csrf): CsrfToken,
    Query(query): Query<LoginQuery>,
) -> Result<LoginPage> {
    let current = signed_in(&state, &session).await?.map(|o| o.email);
    Ok(LoginPage {
        provider: state.cfg.provider_name.clone(),
        csrf,
        email: String::new(),
        error: None,
        current,
        next: return_to(query.next.as_deref()),
    })
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
    let password = Secret::new(form.password);
    let next = return_to(form.next.as_deref());
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
        let page = LoginPage {
            provider: state.cfg.provider_name.clone(),
            csrf,
            email: form.email.trim().to_owned(),
            error: Some("Email or password is incorrect."),
            current: None,
            next,
        };
        return Ok((StatusCode::UNAUTHORIZED, page).into_response());
    };
    // A new session id and CSRF token at sign-in, so an id planted before it (session
    // fixation) or a token seen before it is worthless.
    session.cycle_id().await?;
    session.insert(session::OPERATOR, operator.id).await?;
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

async fn sign_out(State(state): State<AppState>, session: Session) -> Result<Redirect> {
    if let Some(operator) = signed_in(&state, &session).await? {
        audit::record(
            &state.db,
            &Actor::Operator(operator.email),
            Action::OperatorSignedOut,
            None,
            None,
            json!({}),
        )
        .await?;
    }
    session.flush().await?;
    Ok(Redirect::to(paths::LOGIN))
}

async fn signed_in(state: &AppState, session: &Session) -> Result<Option<Operator>> {
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
        ] {
            assert_eq!(return_to(bad), "/console/invitations", "{bad:?}");
        }
    }
}
