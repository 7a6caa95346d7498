//! The web layer's one error type: client errors render a page, internal ones are logged with
//! a reference and never shown.

use askama::Template;
use askama_web::WebTemplate;
use axum::http::{HeaderValue, StatusCode, header};
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
    /// The provider's app registration is not set up yet (503): nothing that needs Microsoft
    /// works until an administrator runs the setup.
    #[error("not set up")]
    NotSetUp,
    /// Our fault (500): logged with a reference, never shown.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<crate::settings::SettingsError> for Error {
    fn from(e: crate::settings::SettingsError) -> Self {
        match e {
            crate::settings::SettingsError::NotSetUp => Self::NotSetUp,
            e => Self::Internal(e.into()),
        }
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
#[derive(Clone, Template, WebTemplate)]
#[template(path = "error.html")]
pub struct ErrorPage {
    /// The heading.
    pub title: String,
    /// What happened and what to do.
    pub message: String,
    /// A reference to quote to support, for internal errors.
    pub reference: Option<String>,
    /// How to reach the provider's support, filled in by [`with_contact`] from the settings.
    pub contact: Option<String>,
}

impl ErrorPage {
    /// A page with `title` and `message`.
    pub fn new(title: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            message: message.into(),
            reference: None,
            contact: None,
        }
    }

    /// The response with `status`; the page rides along so [`with_contact`] can add the
    /// provider's support contact, which only the settings know.
    pub fn respond(self, status: StatusCode) -> Response {
        let mut response = (status, self.clone()).into_response();
        response.extensions_mut().insert(self);
        response
    }
}

/// `response` again with the support contact on it, if it is an error page.
pub fn with_contact(response: Response, contact: &str) -> Response {
    let Some(page) = response.extensions().get::<ErrorPage>().cloned() else {
        return response;
    };
    let (mut parts, _) = response.into_parts();
    let page = ErrorPage {
        contact: Some(contact.to_owned()),
        ..page
    };
    let Ok(html) = page.render() else {
        return Response::from_parts(parts, axum::body::Body::empty());
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(html))
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
        Error::NotSetUp => (
            StatusCode::SERVICE_UNAVAILABLE,
            "Not ready yet",
            "This portal is not connected to Microsoft yet: its administrator has to finish the setup first (console → Setup). Nothing was changed; please try again later.".to_owned(),
            None,
        ),
        Error::TooManyRequests { retry_after_secs } => {
            let page = ErrorPage::new(
                "Too many attempts",
                format!("Please wait {retry_after_secs} seconds and try again."),
            );
            let mut response = page.respond(StatusCode::TOO_MANY_REQUESTS);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            return response;
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
    ErrorPage {
        reference,
        ..ErrorPage::new(title, message)
    }
    .respond(status)
}

/// Handler result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
