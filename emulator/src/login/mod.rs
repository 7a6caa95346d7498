//! The identity platform (login.microsoftonline.com): discovery and keys, the authorize and
//! admin-consent pages, the device authorization grant, the token endpoint, and the ID tokens
//! they issue.

mod assertion;
mod authorize;
mod device;
pub mod errors;
pub mod forgeries;
mod html;
pub mod keys;
mod oidc;
mod token;

use axum::Router;

use crate::state::AppState;

/// The login routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(oidc::router())
        .merge(authorize::router())
        .merge(token::router())
        .merge(device::router())
}
