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
use crate::signin::assertions;
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
    /// Users need an account link (`/applications/{id}/links`) to sign in.
    #[serde(default)]
    pub require_account_link: bool,
}

fn none() -> String {
    "none".into()
}

/// Changes to an application: what is absent stays as it is; `null` clears a nullable field.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplicationPatch {
    /// Its name (unique whatever the case).
    #[schema(example = "Agent workspace")]
    pub name: Option<String>,
    /// Where codes may be sent.
    #[schema(example = json!(["https://workspace.provider.example/callback"]))]
    pub redirect_uris: Option<Vec<String>>,
    /// Where users may be sent after logging out.
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// Where back-channel logout tokens go; `null`: nowhere.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub backchannel_logout_uri: Option<Option<String>>,
    /// The customers whose users may sign in; `null`: every connected customer.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<Uuid>>)]
    pub customers: Option<Option<Vec<Uuid>>>,
    /// A `sub` of its own for this application.
    pub pairwise_subject: Option<bool>,
    /// `none`, `all`, or `filter` (with `groups_filter`).
    #[schema(example = "all")]
    pub groups: Option<String>,
    /// With `groups: filter`: the prefix group names must start with.
    pub groups_filter: Option<String>,
    /// Group name → role value (replaces the whole mapping).
    pub role_mapping: Option<BTreeMap<String, String>>,
    /// Users need an account link to sign in.
    pub require_account_link: Option<bool>,
}

/// A field that is present, `null` included, as `Some(…)`; absence is left to `default`.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// The `groups` claim from its wire form (`groups` and `groups_filter`).
fn groups_claim(groups: &str, filter: Option<String>) -> Result<GroupsClaim, ApiError> {
    match (groups, filter) {
        ("none", None) => Ok(GroupsClaim::None),
        ("all", None) => Ok(GroupsClaim::All),
        ("filter", Some(prefix)) => Ok(GroupsClaim::Filter(prefix)),
        _ => Err(ApiError::Unprocessable(
            "groups must be none, all, or filter with groups_filter".into(),
        )),
    }
}

impl From<ApplicationError> for ApiError {
    fn from(e: ApplicationError) -> Self {
        match e {
            e @ ApplicationError::Invalid { .. } => Self::Unprocessable(e.to_string()),
            e @ ApplicationError::NameTaken(_) => Self::Conflict(e.to_string()),
            ApplicationError::NotFound => Self::NotFound("no such application".into()),
            ApplicationError::Internal(e) => e.into(),
        }
    }
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
    /// Whether users need an account link to sign in.
    pub require_account_link: bool,
}

impl From<Application> for ApplicationOut {
    fn from(a: Application) -> Self {
        let (groups, groups_filter) = a.groups.stored();
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
            require_account_link: a.require_account_link,
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
    let groups = groups_claim(&body.groups, body.groups_filter)?;
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
        require_account_link: body.require_account_link,
    };
    let registered = applications::register(&state.db, &new, &writer.actor()).await?;
    Ok((
        StatusCode::CREATED,
        Json(RegisteredOut {
            application: registered.application.into(),
            client_secret: registered.client_secret.map(|s| s.expose().to_owned()),
        }),
    ))
}

/// Lists applications by name.
#[utoipa::path(get, path = "/api/v1/applications", tag = "applications", params(Paging),
    security(("api_token" = [])),
    responses((status = 200, body = Page<ApplicationOut>), CommonProblems))]
pub async fn list(
    State(state): State<AppState>,
    _: Reader,
    ApiQuery(q): ApiQuery<Paging>,
) -> Result<Page<ApplicationOut>, ApiError> {
    let limit = limit(q.limit)?;
    let rows = applications::page_after(&state.db, q.cursor.as_deref(), limit).await?;
    Ok(Page::new(rows, limit, |a: &Application| a.name.clone()))
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
    Ok(Json(application(&state, &id).await?.into()))
}

/// The application `id` names, or 404.
pub(super) async fn application(state: &AppState, id: &str) -> Result<Application, ApiError> {
    let id = Uuid::parse_str(id.trim()).map_err(|_| ApplicationError::NotFound)?;
    Ok(applications::by_id(&state.db, id)
        .await?
        .ok_or(ApplicationError::NotFound)?)
}

/// Changes an application's settings (its kind and client id stay).
#[utoipa::path(patch, path = "/api/v1/applications/{id}", tag = "applications",
    params(("id" = Uuid, Path, description = "the application's id")),
    request_body = ApplicationPatch,
    security(("api_token" = [])),
    responses((status = 200, body = ApplicationOut), CommonProblems, ForbiddenProblem, NotFoundProblem,
               (status = 409, body = Problem, content_type = "application/problem+json", description = "the name is taken"),
               (status = 422, body = Problem, content_type = "application/problem+json", description = "invalid field")))]
pub async fn update(
    State(state): State<AppState>,
    writer: Writer,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<ApplicationPatch>,
) -> Result<Json<ApplicationOut>, ApiError> {
    let app = application(&state, &id).await?;
    let mut changed = NewApplication::from(&app);
    if let Some(name) = patch.name {
        changed.name = name;
    }
    if let Some(uris) = patch.redirect_uris {
        changed.redirect_uris = uris;
    }
    if let Some(uris) = patch.post_logout_redirect_uris {
        changed.post_logout_redirect_uris = uris;
    }
    if let Some(uri) = patch.backchannel_logout_uri {
        changed.backchannel_logout_uri = uri;
    }
    if let Some(customers) = patch.customers {
        changed.customers = customers;
    }
    if let Some(pairwise) = patch.pairwise_subject {
        changed.pairwise_subject = pairwise;
    }
    if let Some(groups) = patch.groups {
        changed.groups = groups_claim(&groups, patch.groups_filter)?;
    } else if patch.groups_filter.is_some() {
        return Err(ApiError::Unprocessable(
            "groups_filter goes with groups: filter".into(),
        ));
    }
    if let Some(mapping) = patch.role_mapping {
        changed.role_mapping = mapping;
    }
    if let Some(required) = patch.require_account_link {
        changed.require_account_link = required;
    }
    let app = applications::update(&state.db, app.id, &changed, &writer.actor()).await?;
    Ok(Json(app.into()))
}

/// Deletes an application: its client id, codes, tokens and account links stop working at once.
#[utoipa::path(delete, path = "/api/v1/applications/{id}", tag = "applications",
    params(("id" = Uuid, Path, description = "the application's id")),
    security(("api_token" = [])),
    responses((status = 204, description = "deleted"), CommonProblems, ForbiddenProblem, NotFoundProblem))]
pub async fn delete(
    State(state): State<AppState>,
    writer: Writer,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let app = application(&state, &id).await?;
    applications::delete(&state.db, app.id, &writer.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A JWK Set of RSA public keys, each with a `kid`, for RS256 client assertions.
#[derive(Debug, Deserialize, ToSchema)]
pub struct JwksIn {
    /// The keys (1 to 10), as JWKs.
    #[schema(value_type = Vec<Object>, example = json!([{
        "kty": "RSA",
        "kid": "workspace-2026-01",
        "use": "sig",
        "alg": "RS256",
        "n": "56014AzZYINC0q6P-PtFJVUy5kxnN5Mjm2L5JwpcxEsCWCjYbP3ypBs2um_HhHVZSQQYMzlmFvT4aHAMwxGjUy2g6UiRZdd7F_fqEjAOi3ugAB6OpGmiUaCwC7Hw1aBmzPgmJK0FTgAnXkTulL_c3pr4SNruT5TAZlBmUTV7e2VkVcl7vt1xUa22dSr5EH8p2yJIjl9Z__Yops_mESFZHJIy3SO6RdgH8rztKFhsLEbMIFFFwO_2gCGiAz8CuooVtISLu5iD713B2RHFrV_40EGbIahagrhoYq9LW28RryPhWu2XDvYUTQ26bKa-yiaJm3mnx2JAFWyVJchJ0bEtlQ",
        "e": "AQAB"
    }]))]
    pub keys: Vec<serde_json::Value>,
}

/// How a web application now authenticates at the token endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeysOut {
    /// Always `private_key_jwt` once keys are registered.
    #[schema(example = "private_key_jwt")]
    pub token_endpoint_auth_method: &'static str,
    /// The `kid`s of the registered keys.
    #[schema(example = json!(["workspace-2026-01"]))]
    pub key_ids: Vec<String>,
}

/// Registers a web application's public keys: from now on it authenticates with JWTs it signs
/// (`private_key_jwt`, RS256) and its client secret stops working. Replaces any keys it had.
#[utoipa::path(put, path = "/api/v1/applications/{id}/keys", tag = "applications",
    params(("id" = Uuid, Path, description = "the application's id")),
    request_body = JwksIn,
    security(("api_token" = [])),
    responses((status = 200, body = KeysOut), CommonProblems, ForbiddenProblem, NotFoundProblem,
               (status = 422, body = Problem, content_type = "application/problem+json", description = "not a JWK Set of RSA keys with a kid, or not a web application")))]
pub async fn put_keys(
    State(state): State<AppState>,
    writer: Writer,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<JwksIn>,
) -> Result<Json<KeysOut>, ApiError> {
    let app = application(&state, &id).await?;
    let jwks = serde_json::json!({ "keys": body.keys });
    assertions::register_keys(&state.db, app.id, &jwks, &writer.actor()).await?;
    let key_ids = assertions::registered_kids(&state.db, app.id)
        .await?
        .unwrap_or_default();
    Ok(Json(KeysOut {
        token_endpoint_auth_method: "private_key_jwt",
        key_ids,
    }))
}
