//! Operators (admins only): who may use the console, their role and last sign-in; change a
//! role, remove an operator, or sign one out everywhere; restore a removed one.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use tower_sessions::Session;

use super::reveal::{self, Reveal};
use super::{Chrome, Section, When, parse_id};
use crate::audit::Actor;
use crate::operator_invites::{self, InviteError};
use crate::operators::{self, Operator, OperatorSummary, RemovedOperator, Role};
use crate::types::OperatorId;
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::Result;
use crate::web::paths;
use crate::web::session::AdminOperator;
use crate::web::session_store::id_sha256;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(paths::OPERATORS, get(list))
        .route(paths::OPERATOR_INVITE, post(invite))
        .route(paths::OPERATOR_ROLE, post(set_role))
        .route(paths::OPERATOR_SIGN_OUT, post(sign_out_everywhere))
        .route(paths::REMOVE_OPERATOR, post(remove))
        .route(paths::RESTORE_OPERATOR, post(restore))
}

struct Row {
    email: String,
    is_admin: bool,
    is_you: bool,
    /// The only admin: neither removed nor demoted (the console would have nobody to run it).
    last_admin: bool,
    last_sign_in: Option<When>,
    sessions: i64,
    role_url: String,
    sign_out_url: String,
    remove_url: String,
}

impl Row {
    fn new(o: &OperatorSummary, you: OperatorId, admins: usize) -> Self {
        Self {
            email: o.email.clone(),
            is_admin: o.role == Role::Admin,
            is_you: o.id == you,
            last_admin: o.role == Role::Admin && admins == 1,
            last_sign_in: o.last_login_at.map(When::new),
            sessions: o.sessions,
            role_url: paths::operator_role(o.id),
            sign_out_url: paths::operator_sign_out(o.id),
            remove_url: paths::remove_operator(o.id),
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
    /// Invitations not used yet.
    pending: Vec<PendingRow>,
    /// The link of the operator just invited: shown this once.
    link: Option<(String, String)>,
    /// The invite form as sent, and why it was refused.
    invite_email: String,
    invite_admin: bool,
    invite_error: Option<String>,
    /// Local passwords are on (else operators sign in with Entra ID and need no invitation).
    passwords: bool,
    mail_configured: bool,
}

struct PendingRow {
    email: String,
    role: &'static str,
    expires: When,
    expired: bool,
    invited_by: String,
}

#[derive(Deserialize, Default)]
struct ListQuery {
    done: Option<String>,
}

async fn list_page(state: &AppState, admin: &Operator, csrf: String) -> Result<ListPage> {
    let operators = operators::list(&state.db).await?;
    let admins = operators.iter().filter(|o| o.role == Role::Admin).count();
    let rows = operators
        .iter()
        .map(|o| Row::new(o, admin.id.into(), admins))
        .collect();
    let now = time::OffsetDateTime::now_utc();
    let pending = operator_invites::pending(&state.db)
        .await?
        .into_iter()
        .map(|p| PendingRow {
            expired: p.expires_at <= now,
            expires: When::new(p.expires_at),
            role: p.role.as_str(),
            email: p.email,
            invited_by: p.created_by,
        })
        .collect();
    let live = state.live().await?;
    Ok(ListPage {
        chrome: Chrome::new(state, admin, csrf, Section::Operators),
        rows,
        removed: operators::removed(&state.db)
            .await?
            .into_iter()
            .map(Removed::from)
            .collect(),
        notice: None,
        pending,
        link: None,
        invite_email: String::new(),
        invite_admin: false,
        invite_error: None,
        passwords: live.settings.local_passwords,
        mail_configured: state.cfg.smtp_url.is_some(),
    })
}

async fn list(
    State(state): State<AppState>,
    AdminOperator(admin): AdminOperator,
    CsrfToken(csrf): CsrfToken,
    session: Session,
    Query(query): Query<ListQuery>,
) -> Result<ListPage> {
    let mut page = list_page(&state, &admin, csrf).await?;
    page.notice = match query.done.as_deref() {
        Some("role") => Some("Role changed. A demoted operator was signed out everywhere."),
        Some("signed-out") => Some("Signed out everywhere (your own session here stays)."),
        Some("removed") => Some(
            "Operator removed and signed out; they cannot sign in again, even with Microsoft, until restored.",
        ),
        Some("restored") => Some("Operator restored: they may sign in again."),
        Some("invited") => Some("Operator invited."),
        _ => None,
    };
    page.link = reveal::take(&session, |r| match r {
        Reveal::OperatorLink { email, link } => Some((email, link)),
        _ => None,
    })
    .await?;
    Ok(page)
}

#[derive(Deserialize)]
struct InviteForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

/// Invites an operator: the link is mailed and shown once on the page the POST redirects to.
async fn invite(
    State(state): State<AppState>,
    AdminOperator(admin): AdminOperator,
    CsrfToken(csrf): CsrfToken,
    session: Session,
    Form(form): Form<InviteForm>,
) -> Result<Response> {
    let live = state.live().await?;
    let result = match Role::parse(&form.role) {
        Err(_) => Err(InviteError::Invalid("Choose admin or viewer.".into())),
        Ok(_) if !live.settings.local_passwords => Err(InviteError::Invalid(
            "Local passwords are off: operators sign in with Microsoft, and their role comes from the group mapping in System Settings.".into(),
        )),
        Ok(role) => {
            operator_invites::invite(
                &state.db,
                &state.cfg.keys,
                &state.cfg.public_url,
                &live.settings.branding.name,
                &form.email,
                role,
                &Actor::Operator(admin.email.clone()),
            )
            .await
        }
    };
    match result {
        Ok(issued) => {
            let (email, link) = (issued.email, issued.link.to_string());
            reveal::keep(&session, Reveal::OperatorLink { email, link }).await?;
            Ok(done("invited").into_response())
        }
        Err(InviteError::Db(e)) => Err(e.into()),
        Err(e) => {
            let mut page = list_page(&state, &admin, csrf).await?;
            page.invite_error = Some(e.to_string());
            page.invite_admin = form.role == "admin";
            page.invite_email = form.email;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
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
