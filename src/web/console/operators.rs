//! Operators (admins only): who may use the console, their role and last sign-in; change a
//! role, remove an operator, or sign one out everywhere; restore a removed one.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::response::Redirect;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use tower_sessions::Session;

use super::{Chrome, Section, When, parse_id};
use crate::audit::Actor;
use crate::operators::{self, OperatorSummary, RemovedOperator, Role};
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::Result;
use crate::web::paths;
use crate::web::session::AdminOperator;
use crate::web::session_store::id_sha256;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(paths::OPERATORS, get(list))
        .route(paths::OPERATOR_ROLE, post(set_role))
        .route(paths::OPERATOR_SIGN_OUT, post(sign_out_everywhere))
        .route(paths::REMOVE_OPERATOR, post(remove))
        .route(paths::RESTORE_OPERATOR, post(restore))
}

struct Row {
    email: String,
    is_admin: bool,
    is_you: bool,
    last_sign_in: Option<When>,
    sessions: i64,
    role_url: String,
    sign_out_url: String,
    remove_url: String,
}

impl Row {
    fn new(o: &OperatorSummary, you: uuid::Uuid) -> Self {
        Self {
            email: o.email.clone(),
            is_admin: o.role == Role::Admin,
            is_you: o.id == you,
            last_sign_in: o.last_login_at.map(When::new),
            sessions: o.sessions,
            role_url: paths::with_id(paths::OPERATOR_ROLE, o.id),
            sign_out_url: paths::with_id(paths::OPERATOR_SIGN_OUT, o.id),
            remove_url: paths::with_id(paths::REMOVE_OPERATOR, o.id),
        }
    }
}

/// A removed operator, blocked until restored.
struct Removed {
    email: String,
    role: &'static str,
    at: When,
    by: String,
}

impl From<RemovedOperator> for Removed {
    fn from(r: RemovedOperator) -> Self {
        Self {
            email: r.email,
            role: r.role.as_str(),
            at: When::new(r.blocked_at),
            by: r.blocked_by,
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "console/operators.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<Row>,
    removed: Vec<Removed>,
    notice: Option<&'static str>,
}

#[derive(Deserialize, Default)]
struct ListQuery {
    done: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    AdminOperator(admin): AdminOperator,
    CsrfToken(csrf): CsrfToken,
    Query(query): Query<ListQuery>,
) -> Result<ListPage> {
    let rows = operators::list(&state.db)
        .await?
        .iter()
        .map(|o| Row::new(o, admin.id))
        .collect();
    let notice = match query.done.as_deref() {
        Some("role") => Some("Role changed. A demoted operator was signed out everywhere."),
        Some("signed-out") => Some("Signed out everywhere (your own session here stays)."),
        Some("removed") => Some(
            "Operator removed and signed out; they cannot sign in again, even with Microsoft, until restored.",
        ),
        Some("restored") => Some("Operator restored: they may sign in again."),
        _ => None,
    };
    Ok(ListPage {
        chrome: Chrome::new(&state, &admin, csrf, Section::Operators),
        rows,
        removed: operators::removed(&state.db)
            .await?
            .into_iter()
            .map(Removed::from)
            .collect(),
        notice,
    })
}

#[derive(Deserialize)]
struct RoleForm {
    #[serde(default)]
    role: String,
}

async fn set_role(
    State(state): State<AppState>,
    AdminOperator(admin): AdminOperator,
    Path(id): Path<String>,
    Form(form): Form<RoleForm>,
) -> Result<Redirect> {
    let role = Role::parse(&form.role)?;
    operators::set_role(
        &state.db,
        parse_id(&id)?,
        role,
        &Actor::Operator(admin.email),
    )
    .await?;
    // A demotion revoked write tokens: no cached check may outlive it.
    state.api_tokens.forget_all();
    Ok(done("role"))
}

async fn sign_out_everywhere(
    State(state): State<AppState>,
    AdminOperator(admin): AdminOperator,
    session: Session,
    Path(id): Path<String>,
) -> Result<Redirect> {
    // The admin's own session survives when they sign themselves out elsewhere.
    let keep = session.id().map(|id| id_sha256(&id));
    operators::end_sessions(
        &state.db,
        parse_id(&id)?,
        keep.as_deref(),
        &Actor::Operator(admin.email),
    )
    .await?;
    Ok(done("signed-out"))
}

async fn remove(
    State(state): State<AppState>,
    AdminOperator(admin): AdminOperator,
    Path(id): Path<String>,
) -> Result<Redirect> {
    operators::remove(&state.db, parse_id(&id)?, &Actor::Operator(admin.email)).await?;
    // Their tokens were revoked: no cached check may outlive them.
    state.api_tokens.forget_all();
    Ok(done("removed"))
}

#[derive(Deserialize)]
struct RestoreForm {
    #[serde(default)]
    email: String,
}

async fn restore(
    State(state): State<AppState>,
    AdminOperator(admin): AdminOperator,
    Form(form): Form<RestoreForm>,
) -> Result<Redirect> {
    operators::restore(&state.db, &form.email, &Actor::Operator(admin.email)).await?;
    Ok(done("restored"))
}

fn done(what: &str) -> Redirect {
    Redirect::to(&format!("{}?done={what}", paths::OPERATORS))
}
