//! API tokens (admins only): create one (shown once, owned by its creator), see whose each is
//! and when and from where it was last used, revoke.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use time::OffsetDateTime;
use tower_sessions::Session;

use super::reveal::{self, Reveal};
use super::{Chrome, Section, When, parse_id};
use crate::api_tokens::{self, Scope, TokenError};
use crate::audit::Actor;
use crate::types::ApiTokenId;
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::{Error, Result};
use crate::web::paths;
use crate::web::session::AdminOperator;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(paths::API_TOKENS, get(list).post(create))
        .route(paths::API_TOKEN_REVOKE, post(revoke))
        .route(paths::API_TOKEN_RATE, post(set_rate))
}

struct Row {
    name: String,
    scope: &'static str,
    created: When,
    owner: String,
    expires: Option<When>,
    last_used: Option<When>,
    last_used_addr: Option<String>,
    state: &'static str,
    revoke_url: Option<String>,
    /// Its own rate, as typed in its rate field (empty: the default).
    rate: String,
    rate_url: Option<String>,
    /// Why the rate typed into this row could not be saved.
    rate_error: Option<String>,
    id: ApiTokenId,
}

#[derive(Default, Deserialize)]
struct NewToken {
    #[serde(default)]
    name: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    valid_days: String,
    #[serde(default)]
    calls_per_second: String,
}

/// A rate as typed: empty for the default, else calls per second.
fn parse_rate(typed: &str) -> std::result::Result<Option<u32>, TokenError> {
    match typed.trim() {
        "" | "default" => Ok(None),
        n => n.parse().map(Some).map_err(|_| {
            TokenError::Invalid(
                "A rate is a whole number of calls per second, or empty for the default.".into(),
            )
        }),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "console/api_tokens.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<Row>,
    notice: Option<&'static str>,
    /// The token just created: shown this once.
    created: Option<String>,
    form: NewToken,
    error: Option<String>,
    openapi: &'static str,
    /// The System Settings default rate, calls per second.
    default_rate: u32,
}

#[derive(Deserialize, Default)]
struct ListQuery {
    done: Option<String>,
}

#[derive(Deserialize, Default)]
struct RateForm {
    #[serde(default)]
    calls_per_second: String,
}

async fn page(state: &AppState, chrome: Chrome) -> Result<ListPage> {
    let now = OffsetDateTime::now_utc();
    let rows = api_tokens::list(&state.db)
        .await?
        .into_iter()
        .map(|t| Row {
            state: if t.revoked_at.is_some() {
                "revoked"
            } else if !t.is_live(now) {
                "expired"
            } else {
                "active"
            },
            owner: t.owner_label(),
            revoke_url: t.is_live(now).then(|| paths::api_token_revoke(t.id)),
            rate_url: t.is_live(now).then(|| paths::api_token_rate(t.id)),
            rate: t
                .calls_per_second
                .map(|n| n.to_string())
                .unwrap_or_default(),
            rate_error: None,
            id: t.id,
            name: t.name,
            scope: t.scope.as_str(),
            created: When::new(t.created_at),
            expires: t.expires_at.map(When::new),
            last_used: t.last_used_at.map(When::new),
            last_used_addr: t.last_used_addr,
        })
        .collect();
    Ok(ListPage {
        chrome,
        rows,
        notice: None,
        created: None,
        form: NewToken::default(),
        error: None,
        openapi: paths::API_OPENAPI,
        default_rate: state.live().await?.settings.api_calls_per_second,
    })
}

async fn list(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    CsrfToken(csrf): CsrfToken,
    session: Session,
    Query(query): Query<ListQuery>,
) -> Result<ListPage> {
    let mut page = page(&state, Chrome::new(&state, &operator, csrf, Section::Api)).await?;
    page.notice = match query.done.as_deref() {
        Some("revoked") => Some("Token revoked: it stopped working at once."),
        Some("rate") => Some("Rate saved: it applies within seconds."),
        _ => None,
    };
    page.created = reveal::take(&session, |r| match r {
        Reveal::ApiToken { token } => Some(token),
        _ => None,
    })
    .await?;
    Ok(page)
}

async fn create(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    CsrfToken(csrf): CsrfToken,
    session: Session,
    Form(form): Form<NewToken>,
) -> Result<Response> {
    let scope = Scope::parse(&form.scope);
    let days = match form.valid_days.trim() {
        "" | "never" => Ok(None),
        d => d.parse::<u32>().map(Some).map_err(|_| ()),
    };
    let result = match (scope, days, parse_rate(&form.calls_per_second)) {
        (_, _, Err(e)) => Err(e),
        (Some(scope), Ok(valid_days), Ok(calls_per_second)) => {
            let actor = Actor::Operator(operator.email.clone());
            let new = api_tokens::NewToken {
                name: &form.name,
                scope,
                valid_days,
                calls_per_second,
                owner: Some(operator.id),
            };
            api_tokens::create(&state.db, &new, &actor).await
        }
        _ => Err(TokenError::Invalid(
            "Choose read or write, and how long the token works.".into(),
        )),
    };
    match result {
        Ok((token, _)) => {
            let token = token.expose().to_owned();
            reveal::keep(&session, Reveal::ApiToken { token }).await?;
            Ok(Redirect::to(&format!("{}?done=created", paths::API_TOKENS)).into_response())
        }
        Err(TokenError::Invalid(message)) => {
            let chrome = Chrome::new(&state, &operator, csrf, Section::Api);
            let mut page = page(&state, chrome).await?;
            page.error = Some(message);
            page.form = form;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(Error::Internal(e.into())),
    }
}

async fn revoke(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    Path(id): Path<String>,
) -> Result<Redirect> {
    let id = parse_id(&id)?;
    match api_tokens::revoke(&state.db, id, &Actor::Operator(operator.email)).await {
        Ok(()) => {
            state.api_tokens.forget(id.into());
            Ok(Redirect::to(&format!("{}?done=revoked", paths::API_TOKENS)))
        }
        Err(TokenError::NotFound) => Err(Error::NotFound),
        Err(e) => Err(Error::Internal(e.into())),
    }
}

async fn set_rate(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    CsrfToken(csrf): CsrfToken,
    Path(id): Path<String>,
    Form(form): Form<RateForm>,
) -> Result<Response> {
    let id = parse_id(&id)?;
    let actor = Actor::Operator(operator.email.clone());
    let saved = match parse_rate(&form.calls_per_second) {
        Ok(rate) => api_tokens::set_rate(&state.db, id, rate, &actor).await,
        Err(e) => Err(e),
    };
    match saved {
        Ok(()) => {
            state.api_tokens.forget(id.into());
            Ok(Redirect::to(&format!("{}?done=rate", paths::API_TOKENS)).into_response())
        }
        Err(TokenError::Invalid(message)) => {
            let chrome = Chrome::new(&state, &operator, csrf, Section::Api);
            let mut page = page(&state, chrome).await?;
            if let Some(row) = page.rows.iter_mut().find(|r| r.id == id) {
                row.rate = form.calls_per_second;
                row.rate_error = Some(message);
            }
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(TokenError::NotFound) => Err(Error::NotFound),
        Err(e) => Err(Error::Internal(e.into())),
    }
}
