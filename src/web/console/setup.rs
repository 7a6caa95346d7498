//! The Setup page (admins only): an administrator of the provider's tenant signs in once —
//! a code to enter at Microsoft's page — and Gangway creates or repairs its app registration,
//! then shows the checklist and the doctor's verdict. The **Setup sign-in** background task
//! follows the sign-in (`runtime::follow_setup`); the page only shows where it stands and
//! reloads itself while it waits.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::{Chrome, Section, When};
use crate::audit::Actor;
use crate::doctor::{self, CheckStatus};
use crate::operators::Operator;
use crate::setup::SETUP_SCOPES;
use crate::setup::pending::{self, Done, PendingError, SignIn, State as SignInState};
use crate::setup::sign_in::SignInError;
use crate::types::TenantId;
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::Result;
use crate::web::paths;
use crate::web::session::AdminOperator;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(paths::SETUP, get(show))
        .route(paths::SETUP_SIGN_IN, post(start))
}

/// A failing or warning doctor check, for the verdict under the checklist.
struct Problem {
    title: String,
    status: &'static str,
    detail: String,
}

/// The doctor's verdict after a setup.
struct Verdict {
    passed: bool,
    summary: String,
    problems: Vec<Problem>,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/setup.html")]
struct Page {
    chrome: Chrome,
    /// The tenant id field's value.
    tenant: String,
    /// Why the form was not accepted.
    error: Option<String>,
    /// The sign-in in progress, if any.
    waiting: Option<Waiting>,
    /// Why the last sign-in ended without a setup.
    failed: Option<String>,
    /// The last setup's checklist.
    steps: Vec<Done>,
    verdict: Option<Verdict>,
    scopes: String,
}

/// What the administrator needs while the sign-in waits.
struct Waiting {
    user_code: String,
    verification_uri: String,
    tenant: String,
    expires: When,
    reload_after: i32,
}

#[derive(Deserialize)]
struct StartForm {
    #[serde(default)]
    tenant: String,
}

async fn show(
    State(state): State<AppState>,
    AdminOperator(admin): AdminOperator,
    CsrfToken(csrf): CsrfToken,
) -> Result<Page> {
    let mut page = page(&state, &admin, csrf, None).await?;
    if !page.steps.is_empty() {
        page.verdict = Some(verdict(&state).await?);
    }
    Ok(page)
}

fn internal(e: PendingError) -> crate::web::error::Error {
    crate::web::error::Error::Internal(e.into())
}

/// The page for the newest sign-in; `form` is a refused form (its value and why).
async fn page(
    state: &AppState,
    admin: &Operator,
    csrf: String,
    form: Option<(String, String)>,
) -> Result<Page> {
    let latest: Option<SignIn> = pending::latest(&state.db).await?;
    let live = state.live().await?;
    let configured = live.settings.provider_tenant_id.map(|t| t.to_string());
    let mut page = Page {
        chrome: Chrome::new(state, admin, csrf, Section::Doctor),
        tenant: configured.unwrap_or_default(),
        error: None,
        waiting: None,
        failed: None,
        steps: Vec::new(),
        verdict: None,
        scopes: SETUP_SCOPES.join(", "),
    };
    if let Some(sign_in) = latest {
        page.tenant = sign_in.tenant_id.to_string();
        match sign_in.state {
            SignInState::Waiting => {
                page.waiting = Some(Waiting {
                    user_code: sign_in.user_code,
                    verification_uri: sign_in.verification_uri,
                    tenant: sign_in.tenant_id.to_string(),
                    expires: When::new(sign_in.expires_at),
                    reload_after: sign_in.interval_secs,
                });
            }
            SignInState::Failed(why) => page.failed = Some(why),
            SignInState::Done(steps) => page.steps = steps,
        }
    }
    if let Some((tenant, error)) = form {
        page.tenant = tenant;
        page.error = Some(error);
    }
    Ok(page)
}

/// The doctor's checks now, as the setup left the registration.
async fn verdict(state: &AppState) -> Result<Verdict> {
    let live = state.live().await?;
    let report = doctor::run(
        &state.db,
        &state.cfg.keys,
        &live,
        &state.graph,
        &state.cfg.public_url,
        &state.cfg.authority,
    )
    .await;
    Ok(Verdict {
        passed: report.passed(),
        summary: report.summary(),
        problems: report
            .checks
            .iter()
            .filter(|c| matches!(c.status, CheckStatus::Fail | CheckStatus::Warn))
            .map(|c| Problem {
                title: c.title.clone(),
                status: c.status.label(),
                detail: c.detail.clone(),
            })
            .collect(),
    })
}

/// "Sign in with Microsoft": asks Entra ID for a code for the tenant given, then shows it.
async fn start(
    State(state): State<AppState>,
    AdminOperator(admin): AdminOperator,
    CsrfToken(csrf): CsrfToken,
    Form(form): Form<StartForm>,
) -> Result<Response> {
    let raw = form.tenant.trim().to_owned();
    let refuse = async |message: String| -> Result<Response> {
        let page = page(&state, &admin, csrf.clone(), Some((raw.clone(), message))).await?;
        Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
    };
    let Ok(tenant) = TenantId::parse(&raw) else {
        return refuse(
            "Enter your tenant's ID, a GUID (Entra admin center → Overview → Tenant ID).".into(),
        )
        .await;
    };
    let actor = Actor::Operator(admin.email.clone());
    match pending::begin(
        &state.db,
        &state.cfg.keys,
        &state.http,
        &state.cfg.setup_login(tenant),
        admin.id,
        &actor,
    )
    .await
    {
        Ok(_) => Ok(Redirect::to(paths::SETUP).into_response()),
        Err(PendingError::SignIn(e @ (SignInError::Refused(_) | SignInError::Unreachable(_)))) => {
            refuse(format!("{e}. Check the tenant ID and try again.")).await
        }
        Err(e) => Err(internal(e)),
    }
}
