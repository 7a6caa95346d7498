//! The JSON API under `/api/v1`: its own router and error type (RFC 9457 problem details), no
//! cookies and no CSRF — callers present an API token (`Authorization: Bearer gw_…`), scoped
//! read or write and rate-limited per token. The OpenAPI 3.1 document is generated from these
//! handlers and served at `/api/v1/openapi.json`.

mod applications;
mod auth;
mod consent;
mod customers;
mod directory;
mod events;
mod idempotency;
mod invitations;
mod links;
mod problem;
mod scim;
mod settings;
mod tenants;
mod webhook_doc;
mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::response::IntoResponse;
use axum::routing::{any, get};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub use problem::{ApiError, Problem};

use crate::web::AppState;
use crate::web::paths;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gangway API",
        version = "1",
        description = "Tenants connected through Gangway, their directory copies and syncs. \
                       Authenticate with an API token (`Authorization: Bearer gw_…`) that an \
                       admin creates in the console; read tokens list, write tokens also act. \
                       Errors are RFC 9457 problem details. Lists page by cursor: pass a page's \
                       `next_cursor` as `cursor` until it is null."
    ),
    modifiers(&TokenAuth),
    components(schemas(Problem)),
    tags(
        (name = "customers", description = "Customer records"),
        (name = "invitations", description = "Invitations and their links"),
        (name = "tenants", description = "Connected tenants and their syncs"),
        (name = "directory", description = "The directory copy of a tenant"),
        (name = "applications", description = "The provider's applications that sign customers' users in through Gangway (OpenID Connect clients)"),
        (name = "events", description = "The event stream: every event Gangway emits, in a stable order, by cursor"),
        (name = "webhook endpoints", description = "The endpoints events are POSTed to, their secrets and delivery logs"),
        (name = "settings", description = "System Settings, as the console's Settings page edits them (write tokens only)"),
        (name = "webhooks", description = "Events POSTed to the endpoints set up in the console (Webhooks), signed per Standard Webhooks"),
        (name = "scim", description = "SCIM 2.0 push: the directory copy written into the provider's product through its SCIM endpoint")
    )
)]
struct ApiDoc;

/// The bearer scheme every route uses.
struct TokenAuth;

impl Modify for TokenAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("gw_ API token, or an Entra ID access token (JWT)")
                    .description(Some(
                        "Either an API token (`gw_…`) an admin creates in the console, read or \
                         write; or an access token Entra ID issues for the API exposed on the \
                         provider's app registration (`aud` its client id or `api://{client \
                         id}`, issued by the provider's tenant): a user's with the scope \
                         `Gangway.Manage`, their groups and app roles mapped as for operator \
                         sign-in (admin writes, viewer reads); a daemon's with the app role \
                         `Gangway.Write` (writes) or `Gangway.Read` (reads).",
                    ))
                    .build(),
            ),
        );
    }
}

/// One page of a list and where the next one starts (`null`: this was the last).
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page of `rows` asked with `limit`; a full page names its last row's `key` as the next
    /// cursor.
    fn new<U: Into<T>>(rows: Vec<U>, limit: i64, key: impl Fn(&U) -> String) -> Self {
        let next_cursor = (rows.len() as i64 == limit)
            .then(|| rows.last().map(&key))
            .flatten();
        Self {
            items: rows.into_iter().map(Into::into).collect(),
            next_cursor,
        }
    }
}

/// Bytes a page's JSON is sized for per item: about a directory user's, so that a page is
/// written into one buffer, not copied into a larger one each time it fills up.
const ITEM_BYTES: usize = 512;

impl<T: Serialize> IntoResponse for Page<T> {
    fn into_response(self) -> axum::response::Response {
        let mut body = Vec::with_capacity(64 + ITEM_BYTES * self.items.len());
        match serde_json::to_writer(&mut body, &self) {
            Ok(()) => (
                [(
                    axum::http::header::CONTENT_TYPE,
                    axum::http::HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response(),
            Err(e) => ApiError::Internal(e.into()).into_response(),
        }
    }
}

/// Items per page: 1 to 500, 100 unless asked.
fn limit(asked: Option<i64>) -> Result<i64, ApiError> {
    match asked {
        None => Ok(100),
        Some(n @ 1..=500) => Ok(n),
        Some(_) => Err(ApiError::BadRequest("limit must be from 1 to 500".into())),
    }
}

/// A cursor this API gave: an id.
fn cursor_uuid(cursor: Option<&str>) -> Result<Option<Uuid>, ApiError> {
    cursor
        .map(|c| {
            Uuid::parse_str(c.trim())
                .map_err(|_| ApiError::BadRequest("cursor is not one this API gave".into()))
        })
        .transpose()
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The API's routes and its OpenAPI document.
pub fn router() -> Router<AppState> {
    let (router, doc) = routes();
    let doc = Arc::new(served(doc));
    router
        .route(
            paths::API_OPENAPI,
            get(move || {
                let doc = Arc::clone(&doc);
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .route(paths::API_ANY, any(unknown))
}

/// The OpenAPI document as generated from the routes (the console's API page reads it).
pub fn document() -> utoipa::openapi::OpenApi {
    routes().1
}

/// The document as served: OpenAPI 3.1's `webhooks`, which utoipa does not model, added.
fn served(doc: utoipa::openapi::OpenApi) -> serde_json::Value {
    let mut doc = serde_json::to_value(&doc).expect("the OpenAPI document serialises");
    doc["webhooks"] = webhook_doc::section();
    doc
}

/// Every route with the document generated from them.
fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(customers::list))
        .routes(routes!(customers::get))
        .routes(routes!(invitations::create, invitations::list))
        .routes(routes!(invitations::get))
        .routes(routes!(invitations::resend))
        .routes(routes!(invitations::revoke))
        .routes(routes!(tenants::list))
        .routes(routes!(tenants::get))
        .routes(routes!(tenants::sync_now))
        .routes(routes!(tenants::set_schedule))
        .routes(routes!(tenants::offboard))
        .routes(routes!(tenants::runs))
        .routes(routes!(tenants::deletions))
        .routes(routes!(tenants::approve_deletions))
        .routes(routes!(tenants::reject_deletions))
        .routes(routes!(tenants::set_deletion_guard))
        .routes(routes!(tenants::get_scope, tenants::set_scope))
        .routes(routes!(consent::last, consent::check))
        .routes(routes!(directory::users))
        .routes(routes!(directory::groups))
        .routes(routes!(directory::members))
        .routes(routes!(directory::transitive_members))
        .routes(routes!(directory::user_groups))
        .routes(routes!(applications::create, applications::list))
        .routes(routes!(
            applications::get,
            applications::update,
            applications::delete
        ))
        .routes(routes!(applications::put_keys))
        .routes(routes!(links::list))
        .routes(routes!(links::get, links::put, links::delete))
        .routes(routes!(events::list))
        .routes(routes!(webhooks::list, webhooks::create))
        .routes(routes!(webhooks::get, webhooks::update, webhooks::delete))
        .routes(routes!(webhooks::rotate_secret))
        .routes(routes!(webhooks::send_test))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(webhooks::send_again))
        .routes(routes!(settings::get, settings::patch))
        .routes(routes!(scim::create, scim::list))
        .routes(routes!(scim::get, scim::update, scim::delete))
        .routes(routes!(scim::push))
        .routes(routes!(scim::log))
        .split_for_parts()
}

/// An address under `/api/v1` that is not a route.
async fn unknown() -> impl IntoResponse {
    ApiError::NotFound("There is no such API route; see /api/v1/openapi.json.".into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_documents_the_common_problems_as_problem_details() {
        let doc = serde_json::to_value(super::document()).unwrap();
        let mut operations = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for status in ["400", "401", "429"] {
                    let content = &op["responses"][status]["content"]["application/problem+json"];
                    assert_eq!(
                        content["schema"]["$ref"], "#/components/schemas/Problem",
                        "{method} {path} {status}"
                    );
                }
                operations += 1;
            }
        }
        assert!(operations >= 16, "{operations}");
    }
}
