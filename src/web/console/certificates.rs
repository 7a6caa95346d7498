//! The provider app's certificates (admins only): create one, download its public certificate
//! to upload in the portal and copy its thumbprint, see validity and state, make a registered
//! one the active one (after a token request signed with it succeeds), let Gangway register a
//! new one itself (`addKey`), delete one never used.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use uuid::Uuid;

use super::{Chrome, Section, When, parse_id};
use crate::audit::Actor;
use crate::credentials::rotation::{self, Provider, RotationError};
use crate::credentials::{self, CertificateState, CredentialsError};
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::{Error, Result};
use crate::web::paths;
use crate::web::session::AdminOperator;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(paths::CERTIFICATES, get(list).post(create))
        .route(paths::CERTIFICATE_PEM, get(download))
        .route(
            paths::CERTIFICATE_ACTIVATE,
            post(|state, operator, csrf, id| take(Step::Activate, state, operator, csrf, id)),
        )
        .route(
            paths::CERTIFICATE_REGISTER,
            post(|state, operator, csrf, id| take(Step::Register, state, operator, csrf, id)),
        )
        .route(paths::CERTIFICATE_DELETE, post(delete))
}

struct Row {
    id: Uuid,
    thumbprint: String,
    state: &'static str,
    not_before: When,
    not_after: When,
    registered_by_gangway: bool,
    pem_url: String,
    activate_url: Option<String>,
    register_url: Option<String>,
    delete_url: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/certificates.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<Row>,
    notice: Option<&'static str>,
    error: Option<String>,
    /// Whether token requests sign with a certificate now (else the client secret is sent).
    signing: bool,
    rotation_days: i32,
}

#[derive(Deserialize, Default)]
struct ListQuery {
    done: Option<String>,
}

async fn page(state: &AppState, chrome: Chrome) -> Result<ListPage> {
    let live = state.live().await?;
    let certificates = credentials::list(&state.db).await?;
    let has_active = certificates
        .iter()
        .any(|c| c.state == CertificateState::Active);
    let rows = certificates
        .into_iter()
        .map(|c| {
            let pending = c.state == CertificateState::Pending;
            Row {
                id: c.id,
                state: c.state.as_str(),
                not_before: When::new(c.not_before),
                not_after: When::new(c.not_after),
                registered_by_gangway: c.graph_key_id.is_some(),
                pem_url: paths::certificate_pem(c.id),
                activate_url: pending.then(|| paths::certificate_activate(c.id)),
                register_url: (pending && has_active && c.graph_key_id.is_none())
                    .then(|| paths::certificate_register(c.id)),
                delete_url: pending.then(|| paths::certificate_delete(c.id)),
                thumbprint: c.thumbprint,
            }
        })
        .collect();
    Ok(ListPage {
        chrome,
        rows,
        notice: None,
        error: None,
        signing: has_active,
        rotation_days: live.settings.certificate_rotation_days,
    })
}

async fn list(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    CsrfToken(csrf): CsrfToken,
    Query(query): Query<ListQuery>,
) -> Result<ListPage> {
    let mut page = page(
        &state,
        Chrome::new(&state, &operator, csrf, Section::Settings),
    )
    .await?;
    page.notice = match query.done.as_deref() {
        Some("created") => Some(
            "Certificate created. Download it and upload it to the app registration (Certificates & secrets), then activate it here.",
        ),
        Some("activated") => Some(
            "Certificate active: Gangway signs its token requests with it; the one before it is removed after the overlap.",
        ),
        Some("registered") => Some(
            "Certificate registered on the app by Gangway (addKey). Activate it to sign with it.",
        ),
        Some("deleted") => Some("Certificate deleted."),
        _ => None,
    };
    Ok(page)
}

async fn create(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
) -> Result<Redirect> {
    let actor = Actor::Operator(operator.email);
    credentials::create(
        &state.db,
        &state.cfg.keys,
        &actor,
        credentials::VALIDITY_DAYS,
    )
    .await
    .map_err(|e| Error::Internal(e.into()))?;
    Ok(Redirect::to(&format!(
        "{}?done=created",
        paths::CERTIFICATES
    )))
}

/// The public certificate as a PEM file (`.cer` readers take PEM too), for the portal.
async fn download(
    State(state): State<AppState>,
    AdminOperator(_): AdminOperator,
    Path(id): Path<String>,
) -> Result<Response> {
    let cert = credentials::get(&state.db, parse_id(&id)?)
        .await?
        .ok_or(Error::NotFound)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-pem-file".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"gangway-{}.pem\"", cert.thumbprint),
            ),
        ],
        cert.pem(),
    )
        .into_response())
}

/// What an admin asks of a pending certificate that goes through Microsoft.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Make it the active one once a token request signed with it succeeds.
    Activate,
    /// Register it on the app with `addKey`, proven by the active one.
    Register,
}

impl Step {
    /// The word the list page's notice is chosen by.
    fn done(self) -> &'static str {
        match self {
            Self::Activate => "activated",
            Self::Register => "registered",
        }
    }
}

/// Takes `step` for the certificate `id` as the provider app the live settings name; a
/// refusal from Microsoft (or a missing tenant id) is shown on the page, a database failure is
/// internal.
async fn take(
    step: Step,
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    CsrfToken(csrf): CsrfToken,
    Path(id): Path<String>,
) -> Result<Response> {
    let id: Uuid = parse_id(&id)?;
    let actor = Actor::Operator(operator.email.clone());
    let (db, keys) = (&state.db, &state.cfg.keys);
    let live = state.live().await?;
    let outcome = match (live.settings.provider_tenant_id, live.entra(), live.client_id()) {
        (None, _, _) => Err("Set your tenant ID in System Settings first: Gangway proves a certificate with a token request there.".to_owned()),
        (_, Err(e), _) | (_, _, Err(e)) => Err(e.to_string()),
        (Some(tenant), Ok(entra), Ok(client_id)) => {
            let provider = Provider {
                entra,
                graph: &state.graph,
                tenant: &tenant,
                client_id,
            };
            let taken = match step {
                Step::Activate => {
                    rotation::activate_registered(db, keys, provider, &actor, id).await
                }
                Step::Register => rotation::register(db, keys, provider, &actor, id).await,
            };
            match taken {
                Ok(()) => Ok(()),
                Err(RotationError::Credentials(CredentialsError::NotFound)) => {
                    return Err(Error::NotFound);
                }
                Err(RotationError::Credentials(e)) => return Err(Error::Internal(e.into())),
                Err(e) => Err(e.to_string()),
            }
        }
    };
    match outcome {
        Ok(()) => {
            // This process reads the new active certificate at once, the others within seconds.
            state.settings.invalidate();
            let done = step.done();
            Ok(Redirect::to(&format!("{}?done={done}", paths::CERTIFICATES)).into_response())
        }
        Err(message) => {
            let chrome = Chrome::new(&state, &operator, csrf, Section::Settings);
            let mut page = page(&state, chrome).await?;
            page.error = Some(message);
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}

async fn delete(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    Path(id): Path<String>,
) -> Result<Redirect> {
    let id: Uuid = parse_id(&id)?;
    let pending = credentials::get(&state.db, id)
        .await?
        .is_some_and(|c| c.state == CertificateState::Pending);
    if !pending {
        return Err(Error::NotFound);
    }
    credentials::delete(&state.db, &Actor::Operator(operator.email), id)
        .await
        .map_err(|e| Error::Internal(e.into()))?;
    Ok(Redirect::to(&format!(
        "{}?done=deleted",
        paths::CERTIFICATES
    )))
}
