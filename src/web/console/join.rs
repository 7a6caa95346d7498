//! An invited operator sets their password. The link's `?token=` moves into the session at
//! once (so it is in no later address, history entry or referrer) and the page shows the form
//! without it; the POST creates the account and leads to sign-in.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;
use tower_sessions::Session;

use crate::invitations::InvitationToken;
use crate::operator_invites::{self, InviteError};
use crate::operators::MIN_PASSWORD_LEN;
use crate::types::Secret;
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::Result;
use crate::web::{paths, session};

pub(super) fn router() -> Router<AppState> {
    Router::new().route(paths::OPERATOR_JOIN, get(open).post(set_password))
}

#[derive(Template, WebTemplate)]
#[template(path = "console/join.html")]
struct JoinPage {
    provider: String,
    csrf: String,
    /// Who is invited, and as what; `None`: the link does not work (the message says why).
    invited: Option<(String, &'static str)>,
    error: Option<String>,
    min_len: usize,
}

#[derive(Deserialize, Default)]
struct JoinQuery {
    token: Option<String>,
}

async fn page(state: &AppState, session: &Session, csrf: String) -> Result<JoinPage> {
    let live = state.live().await?;
    let token = session
        .get::<String>(session::OPERATOR_INVITE)
        .await?
        .and_then(|t| InvitationToken::parse(&t));
    let (invited, error) = match token {
        None => (None, Some(InviteError::LinkNotValid.to_string())),
        Some(token) => match operator_invites::find(&state.db, &token).await {
            Ok(pending) => (Some((pending.email, pending.role.as_str())), None),
            Err(InviteError::Db(e)) => return Err(e.into()),
            Err(e) => (None, Some(e.to_string())),
        },
    };
    Ok(JoinPage {
        provider: live.settings.branding.name.clone(),
        csrf,
        invited,
        error,
        min_len: MIN_PASSWORD_LEN,
    })
}

/// With `?token=`: keep it in the session and show the page without it.
async fn open(
    State(state): State<AppState>,
    session: Session,
    CsrfToken(csrf): CsrfToken,
    Query(query): Query<JoinQuery>,
) -> Result<Response> {
    if let Some(token) = query.token {
        session.insert(session::OPERATOR_INVITE, token).await?;
        return Ok(Redirect::to(paths::OPERATOR_JOIN).into_response());
    }
    let page = page(&state, &session, csrf).await?;
    let status = if page.invited.is_some() {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    Ok((status, page).into_response())
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
}

async fn set_password(
    State(state): State<AppState>,
    session: Session,
    CsrfToken(csrf): CsrfToken,
    Form(form): Form<PasswordForm>,
) -> Result<Response> {
    let token = session
        .get::<String>(session::OPERATOR_INVITE)
        .await?
        .and_then(|t| InvitationToken::parse(&t));
    let result = match token {
        None => Err(InviteError::LinkNotValid),
        Some(_) if form.password != form.confirm => Err(InviteError::Invalid(
            "The two passwords differ: type the same password twice.".into(),
        )),
        Some(token) => {
            operator_invites::accept(&state.db, &token, &Secret::new(form.password)).await
        }
    };
    match result {
        Ok(operator) => {
            session.remove::<String>(session::OPERATOR_INVITE).await?;
            let mut next = url::form_urlencoded::Serializer::new(String::new());
            next.append_pair("joined", &operator.email);
            Ok(Redirect::to(&format!("{}?{}", paths::LOGIN, next.finish())).into_response())
        }
        Err(InviteError::Db(e)) => Err(e.into()),
        Err(e) => {
            let mut page = page(&state, &session, csrf).await?;
            page.error = Some(e.to_string());
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}
