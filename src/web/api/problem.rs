//! The API's one error type, answered as RFC 9457 problem details (`application/problem+json`).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api_tokens::TokenError;
use crate::directory::control::ControlError;
use crate::directory::guard::GuardError;
use crate::directory::scope::ScopeError;
use crate::tenants::OffboardError;
use crate::types::ScheduleError;

/// What went wrong, as the API tells it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No usable token (401, with `WWW-Authenticate: Bearer`).
    #[error("{0}")]
    Unauthorized(String),
    /// The token may not do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// Nothing here (404).
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed (400), e.g. a bad cursor or parameter.
    #[error("{0}")]
    BadRequest(String),
    /// The request does not fit where the resource stands (409).
    #[error("{0}")]
    Conflict(String),
    /// What the request points at is gone for good (410), e.g. an expired event cursor.
    #[error("{0}")]
    Gone(String),
    /// A body that reads but cannot be accepted (422).
    #[error("{0}")]
    Unprocessable(String),
    /// The token's rate limit was hit (429); retry after this many seconds.
    #[error("too many requests")]
    TooManyRequests(u64),
    /// Our fault (500): logged with a reference, never detailed.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// An RFC 9457 problem.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`about:blank`: the status says it).
    #[serde(rename = "type")]
    pub kind: String,
    /// The status's phrase.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What happened and what to do, in words.
    pub detail: String,
}

/// The problems every route of the JSON API may answer with, for its OpenAPI `responses`.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only its OpenAPI description is used: routes answer with an ApiError.
pub enum CommonProblems {
    /// A malformed path, query or body.
    #[response(
        status = 400,
        content_type = "application/problem+json",
        description = "malformed request"
    )]
    BadRequest(Problem),
    /// No valid bearer token.
    #[response(
        status = 401,
        content_type = "application/problem+json",
        description = ""
    )]
    Unauthorized(Problem),
    /// Too many requests from this client.
    #[response(
        status = 429,
        content_type = "application/problem+json",
        description = "rate limit: wait for Retry-After"
    )]
    RateLimited(Problem),
}

/// A write route's answer to a read-only token, for its OpenAPI `responses`.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 403,
    content_type = "application/problem+json",
    description = ""
)]
pub struct ForbiddenProblem(#[allow(dead_code)] Problem);

/// The answer of a route about one record when there is no such record, for its OpenAPI
/// `responses`.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 404,
    content_type = "application/problem+json",
    description = ""
)]
pub struct NotFoundProblem(#[allow(dead_code)] Problem);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, detail) = match &self {
            Self::Unauthorized(m) => (StatusCode::UNAUTHORIZED, m.clone()),
            Self::Forbidden(m) => (StatusCode::FORBIDDEN, m.clone()),
            Self::NotFound(m) => (StatusCode::NOT_FOUND, m.clone()),
            Self::BadRequest(m) => (StatusCode::BAD_REQUEST, m.clone()),
            Self::Conflict(m) => (StatusCode::CONFLICT, m.clone()),
            Self::Gone(m) => (StatusCode::GONE, m.clone()),
            Self::Unprocessable(m) => (StatusCode::UNPROCESSABLE_ENTITY, m.clone()),
            Self::TooManyRequests(secs) => (
                StatusCode::TOO_MANY_REQUESTS,
                format!("This token made too many requests: wait {secs} s and try again."),
            ),
            Self::Internal(e) => {
                let reference = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
                tracing::error!(reference, error = ?e, "API request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("Something went wrong on our side (reference {reference})."),
                )
            }
        };
        let problem = Problem {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail,
        };
        let mut response = (status, Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Self::TooManyRequests(secs) = self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Db(e) => e.into(),
            TokenError::NotFound => Self::NotFound(e.to_string()),
            TokenError::Refused => Self::Unauthorized(e.to_string()),
            TokenError::Invalid(m) => Self::Unprocessable(m),
        }
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::NotFound => Self::NotFound("no such tenant".into()),
            ControlError::NotSyncable(_) => Self::Conflict(e.to_string()),
            ControlError::Db(e) => e.into(),
            other => Self::Internal(anyhow::anyhow!("{other}")),
        }
    }
}

impl From<OffboardError> for ApiError {
    fn from(e: OffboardError) -> Self {
        match e {
            OffboardError::NotFound => Self::NotFound("no such tenant".into()),
            OffboardError::AlreadyOffboarded => Self::Conflict(e.to_string()),
            OffboardError::Db(e) => e.into(),
        }
    }
}

impl From<GuardError> for ApiError {
    fn from(e: GuardError) -> Self {
        match e {
            GuardError::NothingHeld => Self::Conflict(e.to_string()),
            GuardError::Invalid(why) => Self::Unprocessable(why),
            GuardError::NotFound => Self::NotFound(e.to_string()),
            GuardError::Db(e) => e.into(),
        }
    }
}

impl From<ScopeError> for ApiError {
    fn from(e: ScopeError) -> Self {
        match e {
            ScopeError::NoTenant => Self::NotFound(e.to_string()),
            ScopeError::NoGroups | ScopeError::UnknownGroup(_) => {
                Self::Unprocessable(e.to_string())
            }
            ScopeError::Db(e) => e.into(),
        }
    }
}

impl From<ScheduleError> for ApiError {
    fn from(e: ScheduleError) -> Self {
        Self::Unprocessable(e.to_string())
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(e: axum::extract::rejection::JsonRejection) -> Self {
        use axum::extract::rejection::JsonRejection as J;
        match e {
            J::JsonDataError(e) => {
                Self::Unprocessable(format!("The body does not fit: {}", e.body_text()))
            }
            other => Self::BadRequest(format!(
                "The body must be JSON, sent with Content-Type: application/json ({})",
                other.body_text()
            )),
        }
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(e: axum::extract::rejection::QueryRejection) -> Self {
        Self::BadRequest(format!("A query parameter is malformed: {}", e.body_text()))
    }
}

/// `axum::Json` whose refusals are problems.
pub struct ApiJson<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for ApiJson<T>
where
    axum::Json<T>:
        axum::extract::FromRequest<S, Rejection = axum::extract::rejection::JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        Ok(Self(axum::Json::<T>::from_request(req, state).await?.0))
    }
}

/// `axum::extract::Query` whose refusals are problems.
pub struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    axum::extract::Query<T>:
        axum::extract::FromRequestParts<S, Rejection = axum::extract::rejection::QueryRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        Ok(Self(
            axum::extract::Query::<T>::from_request_parts(parts, state)
                .await?
                .0,
        ))
    }
}
