//! The OpenID Provider's endpoints for the provider's applications: thin handlers over
//! [`crate::signin`]. Browser endpoints (authorize, the email page, Microsoft's callback,
//! logout) run with sessions and CSRF; machine endpoints (discovery, JWKS, token, userinfo,
//! revocation) without, like the JSON API.

mod authorize;
mod cors;
mod discovery;
mod logout;
mod token;

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use url::Url;
use uuid::Uuid;

use super::error::Error;
use super::{AppState, paths};
use crate::audit::{self, Action, Actor};
use crate::config::Config;
use crate::signin::history::{self, NewSignIn};
use crate::signin::provider::Endpoints;
use crate::signin::{Application, SigninError};
use crate::types::Branding;

/// The session key of the authorize request being served ([`authorize::Pending`]).
const REQUEST: &str = "signin_request";
/// The session key of the round trip to Microsoft under way ([`authorize::Upstream`]).
const UPSTREAM: &str = "signin_upstream";
/// The session key of Gangway's SSO session id.
const SSO: &str = "signin_session";

impl From<SigninError> for Error {
    fn from(e: SigninError) -> Self {
        Self::Internal(e.into())
    }
}

/// The browser endpoints (inside sessions and CSRF).
pub fn router() -> Router<AppState> {
    Router::new()
        .route(paths::SIGNIN_AUTHORIZE, get(authorize::authorize))
        .route(
            paths::SIGNIN_EMAIL,
            get(authorize::email_page).post(authorize::email_submit),
        )
        .route(paths::SIGNIN_CALLBACK, get(authorize::callback))
        .route(
            paths::SIGNIN_LOGOUT,
            get(logout::logout).post(logout::confirmed),
        )
}

/// The machine endpoints (no cookies, no CSRF: callers present client credentials or tokens).
pub fn machine_router() -> Router<AppState> {
    Router::new()
        .route(
            paths::OIDC_DISCOVERY,
            get(discovery::discovery).options(cors::open_preflight),
        )
        .route(
            paths::SIGNIN_JWKS,
            get(discovery::jwks).options(cors::open_preflight),
        )
        .route(
            paths::SIGNIN_TOKEN,
            post(token::token).options(cors::spa_preflight),
        )
        .route(
            paths::SIGNIN_USERINFO,
            get(token::userinfo)
                .post(token::userinfo)
                .options(cors::open_preflight),
        )
        .route(
            paths::SIGNIN_REVOKE,
            post(token::revoke).options(cors::spa_preflight),
        )
}

/// The issuer: the public URL without its trailing slash.
pub fn issuer(cfg: &Config) -> String {
    cfg.public_url.as_str().trim_end_matches('/').to_owned()
}

/// Where every endpoint is.
pub fn endpoints(cfg: &Config) -> Endpoints {
    let issuer = issuer(cfg);
    let at = |path: &str| format!("{issuer}{path}");
    Endpoints {
        authorize: at(paths::SIGNIN_AUTHORIZE),
        token: at(paths::SIGNIN_TOKEN),
        userinfo: at(paths::SIGNIN_USERINFO),
        jwks: at(paths::SIGNIN_JWKS),
        revocation: at(paths::SIGNIN_REVOKE),
        end_session: at(paths::SIGNIN_LOGOUT),
        issuer,
    }
}

/// The redirect URI registered on the provider's app for sign-in: `{public}/oidc/callback`.
pub fn callback_url(public_url: &Url) -> Url {
    public_url
        .join(paths::SIGNIN_CALLBACK.trim_start_matches('/'))
        .expect("a fixed relative path joins")
}

/// A link under a message, styled as a button.
struct Link {
    id: &'static str,
    href: String,
    label: String,
}

/// The logout confirmation form's hidden fields.
struct ConfirmForm {
    csrf: String,
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
}

/// One page for every outcome a user sees: refusals, failures, signed out.
#[derive(Template, WebTemplate)]
#[template(path = "signin/message.html")]
struct MessagePage {
    provider: Branding,
    title: String,
    /// `ok`, `warn` or `bad`.
    tone: &'static str,
    heading: String,
    paragraphs: Vec<String>,
    detail: Option<String>,
    confirm: Option<ConfirmForm>,
    links: Vec<Link>,
}

impl MessagePage {
    fn new(provider: &Branding, tone: &'static str, heading: impl Into<String>) -> Self {
        let heading = heading.into();
        Self {
            provider: provider.clone(),
            title: heading.clone(),
            tone,
            heading,
            paragraphs: Vec::new(),
            detail: None,
            confirm: None,
            links: Vec::new(),
        }
    }

    fn says(mut self, paragraph: impl Into<String>) -> Self {
        self.paragraphs.push(paragraph.into());
        self
    }

    fn respond(self, status: StatusCode) -> Response {
        (status, self).into_response()
    }
}

/// What the audit trail and the sign-ins history record of a sign-in.
struct SignInEvent<'a> {
    actor: Actor,
    tenant_id: Option<Uuid>,
    application: &'a Application,
    customer: Option<&'a str>,
    user: Option<&'a str>,
}

impl SignInEvent<'_> {
    /// Records a success (`reason` `None`) or a refusal.
    async fn record(self, db: &sqlx::PgPool, reason: Option<&str>) -> Result<(), Error> {
        let mut detail = json!({ "application": self.application.name });
        let extra = [
            ("customer", self.customer),
            ("user", self.user),
            ("reason", reason),
        ];
        for (key, value) in extra {
            if let Some(value) = value {
                detail[key] = Value::from(value);
            }
        }
        let action = if reason.is_some() {
            Action::SignInRefused
        } else {
            Action::SignInSucceeded
        };
        let mut tx = db.begin().await?;
        audit::record(&mut *tx, &self.actor, action, None, self.tenant_id, detail).await?;
        history::record(
            &mut *tx,
            &NewSignIn {
                application_id: self.application.id,
                application: &self.application.name,
                tenant_id: self.tenant_id,
                customer: self.customer,
                user: self.user,
                reason,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
