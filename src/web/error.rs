//! The web layer's one error type: client errors render a page, internal ones are logged with
//! a reference and never shown.

use askama::Template;
use askama_web::WebTemplate;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::paths;
use crate::customers::CustomerError;
use crate::directory::control::ControlError;
use crate::invitations::InvitationError;
use crate::operators::OperatorError;
use crate::tenants::OffboardError;

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Nothing at this address (404).
    #[error("not found")]
    NotFound,
    /// The request cannot be served as sent (400); the message says why.
    #[error("{0}")]
    BadRequest(String),
    /// Not allowed for this operator (403).
    #[error("{0}")]
    Forbidden(String),
    /// Not signed in: sent to sign in, then back to `next` (a console path) if given.
    #[error("sign in required")]
    SignInRequired {
        /// The page to return to.
        next: Option<String>,
    },
    #[error("too many requests")]
    /// A rate limit was hit (429).
    TooManyRequests {
        /// Seconds until the next request is allowed.
        retry_after_secs: u64,
    },
    /// Our fault (500): logged with a reference, never shown.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<crate::settings::SettingsError> for Error {
    fn from(e: crate::settings::SettingsError) -> Self {
        Self::Internal(e.into())
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

impl From<InvitationError> for Error {
    fn from(e: InvitationError) -> Self {
        match e {
            InvitationError::NotFound => Self::NotFound,
            InvitationError::WrongState { status, action } => Self::BadRequest(format!(
                "This invitation is {}, so {action} it is not possible. Open it again to see where it stands.",
                status.as_str()
            )),
            InvitationError::Invalid(message) => Self::BadRequest(message),
            InvitationError::Db(e) => e.into(),
        }
    }
}

impl From<CustomerError> for Error {
    fn from(e: CustomerError) -> Self {
        match e {
            CustomerError::NotFound => Self::NotFound,
            CustomerError::Db(e) => e.into(),
            refused => Self::BadRequest(refused.to_string()),
        }
    }
}

impl From<OffboardError> for Error {
    fn from(e: OffboardError) -> Self {
        match e {
            OffboardError::NotFound => Self::NotFound,
            OffboardError::Db(e) => e.into(),
            refused => Self::BadRequest(refused.to_string()),
        }
    }
}

impl From<ControlError> for Error {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::NotFound => Self::NotFound,
            ControlError::Db(e) => e.into(),
            ControlError::Job(e) => Self::Internal(e.into()),
            refused @ ControlError::NotSyncable(_) => Self::BadRequest(refused.to_string()),
        }
    }
}

impl From<tower_sessions::session::Error> for Error {
    fn from(e: tower_sessions::session::Error) -> Self {
        Self::Internal(anyhow::anyhow!("session store: {e}"))
    }
}

impl From<OperatorError> for Error {
    fn from(e: OperatorError) -> Self {
        match e {
            OperatorError::NotFound => Self::NotFound,
            OperatorError::Db(e) => e.into(),
            refused => Self::BadRequest(refused.to_string()),
        }
    }
}

/// The page shown for errors.
#[derive(Template, WebTemplate)]
#[template(path = "error.html")]
pub struct ErrorPage {
    /// The heading.
    pub title: String,
    /// What happened and what to do.
    pub message: String,
    /// A reference to quote to support, for internal errors.
    pub reference: Option<String>,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        if let Error::SignInRequired { next } = self {
            let to = match next {
                Some(next) => format!(
                    "{}?{}",
                    paths::LOGIN,
                    url::form_urlencoded::Serializer::new(String::new())
                        .append_pair("next", &next)
                        .finish()
                ),
                None => paths::LOGIN.to_owned(),
            };
            return Redirect::to(&to).into_response();
        }
        page_for(self)
    }
}

fn page_for(error: Error) -> Response {
    let (status, title, message, reference) = match error {
        Error::SignInRequired { .. } => unreachable!("redirected above"),
        Error::NotFound => (
            StatusCode::NOT_FOUND,
            "Not found",
            "There is nothing at this address.".to_owned(),
            None,
        ),
        Error::BadRequest(m) => (StatusCode::BAD_REQUEST, "That did not work", m, None),
        Error::Forbidden(m) => (StatusCode::FORBIDDEN, "Not allowed", m, None),
        Error::TooManyRequests { retry_after_secs } => {
            let page = ErrorPage {
                title: "Too many attempts".into(),
                message: format!("Please wait {retry_after_secs} seconds and try again."),
                reference: None,
            };
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, retry_after_secs.to_string())],
                page,
            )
                .into_response();
        }
        Error::Internal(e) => {
            let reference = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
            tracing::error!(reference, error = ?e, "request failed");
            let message =
                "Something went wrong on our side. Please try again; if it keeps happening, \
                           give this reference to your contact."
                    .to_owned();
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                message,
                Some(reference),
            )
        }
    };
    (
        status,
        ErrorPage {
            title: title.into(),
            message,
            reference,
        },
    )
        .into_response()
}

/// Handler result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
