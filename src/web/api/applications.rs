//! `/api/v1/applications`: the provider's applications that sign customers' users in through
//! Gangway (OpenID Connect clients). A web application's client secret is answered once, at
//! creation; only its hash is kept.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::{Reader, Writer};
use super::problem::{
    ApiError, ApiJson, ApiQuery, CommonProblems, ForbiddenProblem, NotFoundProblem, Problem,
};
use super::tenants::Paging;
use super::{Page, limit};
use crate::signin::applications::{self, ApplicationError};
use crate::signin::{AppKind, Application, GroupsClaim, NewApplication, SigninError};
use crate::web::AppState;

impl From<SigninError> for ApiError {
    fn from(e: SigninError) -> Self {
        Self::Internal(e.into())
    }
}

/// An application to register.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApplicationIn {
    /// Its name (unique whatever the case).
    #[schema(example = "Agent workspace")]
    pub name: String,
    /// `web` (confidential: a client secret), `spa` or `native` (public: PKCE S256).
    #[schema(example = "web")]
    pub kind: String,
    /// Where codes may be sent (exact match; native apps: loopback on any port, private-use schemes).
    #[schema(example = json!(["https://workspace.provider.example/callback"]))]
    pub redirect_uris: Vec<String>,
    /// Where users may be sent after logging out.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// Where back-channel logout tokens go.
    #[serde(default)]
    pub backchannel_logout_uri: Option<String>,
    /// The customers whose users may sign in; absent: every connected customer.
    #[serde(default)]
    pub customers: Option<Vec<Uuid>>,
    /// A `sub` of its own for this application.
    #[serde(default)]
    pub pairwise_subject: bool,
    /// `none`, `all`, or `filter` (with `groups_filter`, a name prefix).
    #[serde(default = "none")]
    #[schema(example = "all")]
    pub groups: String,
    /// With `groups: filter`: the prefix group names must start with.
    #[serde(default)]
    pub groups_filter: Option<String>,
    /// Group name → role value, for the `roles` claim.
    #[serde(default)]
    pub role_mapping: BTreeMap<String, String>,
}

fn none() -> String {
    "none".into()
}

/// A registered application.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApplicationOut {
    /// Gangway's id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// `web`, `spa` or `native`.
    pub kind: String,
    /// The `client_id` it presents.
    pub client_id: String,
    /// Its redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Its post-logout redirect URIs.
    pub post_logout_redirect_uris: Vec<String>,
    /// Its back-channel logout URI.
    pub backchannel_logout_uri: Option<String>,
    /// The admitted customers; null: every connected customer.
    pub customers: Option<Vec<Uuid>>,
    /// Whether `sub` is its own.
    pub pairwise_subject: bool,
    /// `none`, `all` or `filter`.
    pub groups: String,
    /// The prefix, with `filter`.
    pub groups_filter: Option<String>,
    /// Group name → role value.
    pub role_mapping: BTreeMap<String, String>,
}

impl From<Application> for ApplicationOut {
    fn from(a: Application) -> Self {
        let (groups, groups_filter) = match a.groups {
            GroupsClaim::None => ("none", None),
            GroupsClaim::All => ("all", None),
            GroupsClaim::Filter(prefix) => ("filter", Some(prefix)),
        };
        Self {
            id: a.id,
            name: a.name,
            kind: a.kind.as_str().to_owned(),
            client_id: a.client_id,
            redirect_uris: a.redirect_uris,
            post_logout_redirect_uris: a.post_logout_redirect_uris,
            backchannel_logout_uri: a.backchannel_logout_uri,
            customers: (!a.all_customers).then_some(a.customers),
            pairwise_subject: a.pairwise_subject,
            groups: groups.to_owned(),
            groups_filter,
            role_mapping: a.role_mapping,
        }
    }
}

/// A just-registered application with its client secret, answered this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegisteredOut {
    /// The application.
    pub application: ApplicationOut,
    /// The client secret of a web application (null for public clients); only its hash is kept.
    pub client_secret: Option<String>,
}

/// Registers an application; a web application's client secret is in this answer only.
#[utoipa::path(post, path = "/api/v1/applications", tag = "applications",
    request_body = NewApplicationIn,
    security(("api_token" = [])),
    responses((status = 201, body = RegisteredOut), CommonProblems, ForbiddenProblem,
               (status = 409, body = Problem, content_type = "application/problem+json", description = "the name is taken"),
               (status = 422, body = Problem, content_type = "application/problem+json", description = "invalid field")))]
pub async fn create(
    State(state): State<AppState>,
    writer: Writer,
    ApiJson(body): ApiJson<NewApplicationIn>,
) -> Result<(StatusCode, Json<RegisteredOut>), ApiError> {
    let kind = AppKind::parse(&body.kind)
        .ok_or_else(|| ApiError::Unprocessable("kind must be web, spa or native".into()))?;
    let groups = match (body.groups.as_str(), body.groups_filter) {
        ("none", None) => GroupsClaim::None,
        ("all", None) => GroupsClaim::All,
        ("filter", Some(prefix)) => GroupsClaim::Filter(prefix),
        _ => {
            return Err(ApiError::Unprocessable(
                "groups must be none, all, or filter with groups_filter".into(),
            ));
        }
    };
    let new = NewApplication {
        name: body.name,
        kind,
        redirect_uris: body.redirect_uris,
        post_logout_redirect_uris: body.post_logout_redirect_uris,
        backchannel_logout_uri: body.backchannel_logout_uri,
        customers: body.customers,
        pairwise_subject: body.pairwise_subject,
        groups,
        role_mapping: body.role_mapping,
    };
    match applications::register(&state.db, &new, &writer.actor()).await {
        Ok(registered) => Ok((
            StatusCode::CREATED,
            Json(RegisteredOut {
                application: registered.application.into(),
                client_secret: registered.client_secret.map(|s| s.expose().to_owned()),
            }),
        )),
        Err(ApplicationError::Invalid(why)) => Err(ApiError::Unprocessable(why)),
        Err(e @ ApplicationError::NameTaken(_)) => Err(ApiError::Conflict(e.to_string())),
        Err(ApplicationError::Internal(e)) => Err(e.into()),
    }
}

/// Lists applications by name.
#[utoipa::path(get, path = "/api/v1/applications", tag = "applications", params(Paging),
    security(("api_token" = [])),
    responses((status = 200, body = Page<ApplicationOut>), CommonProblems))]
pub async fn list(
    State(state): State<AppState>,
    _: Reader,
    ApiQuery(q): ApiQuery<Paging>,
) -> Result<Json<Page<ApplicationOut>>, ApiError> {
    let limit = limit(q.limit)?;
    let rows = applications::page_after(&state.db, q.cursor.as_deref(), limit).await?;
    Ok(Json(Page::new(rows, limit, |a: &Application| {
        a.name.clone()
    })))
}

/// One application.
#[utoipa::path(get, path = "/api/v1/applications/{id}", tag = "applications",
    params(("id" = Uuid, Path, description = "the application's id")),
    security(("api_token" = [])),
    responses((status = 200, body = ApplicationOut), CommonProblems, NotFoundProblem))]
pub async fn get(
    State(state): State<AppState>,
    _: Reader,
    Path(id): Path<String>,
) -> Result<Json<ApplicationOut>, ApiError> {
    let not_found = || ApiError::NotFound("no such application".into());
    let id = Uuid::parse_str(&id).map_err(|_| not_found())?;
    let app = applications::by_id(&state.db, id)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(app.into()))
}
