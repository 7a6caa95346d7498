//! The provider app's active certificate: registered on the app (its thumbprint among the
//! registration's `keyCredentials`), not expired or about to, and accepted by Entra ID.

use serde_json::Value;
use time::OffsetDateTime;

use super::{Check, CheckStatus};
use crate::credentials::Certificate;
use crate::credentials::rotation::registered_key_id;
use crate::identity::IdentityError;

const TITLE: &str = "The app certificate Gangway signs with";

/// The check of `active` against the registration as read (`None`: it could not be read) and
/// the outcome of the token request signed with it; `window_days` is the rotation window.
pub fn check<T>(
    active: &Certificate,
    registration: Option<&Value>,
    token: &Result<T, IdentityError>,
    window_days: i64,
    now: OffsetDateTime,
) -> Check {
    let check = Check::new("certificate", TITLE, CheckStatus::Fail);
    let upload = format!(
        "Download it from Console → App certificates and upload it on the app registration (Certificates & secrets → Certificates), or create and activate another there. Thumbprint: {}",
        active.thumbprint
    );
    if let Err(e) = token {
        return check
            .detail(format!(
                "Entra ID refused the token request signed with certificate {}: {e}",
                active.thumbprint
            ))
            .fix(upload)
            .values([active.thumbprint.clone()]);
    }
    if let Some(reg) = registration {
        if registered_key_id(reg, &active.thumbprint).is_none() {
            return check
                .detail(format!(
                    "Certificate {} is not among the app's certificates (keyCredentials).",
                    active.thumbprint
                ))
                .fix(upload)
                .values([active.thumbprint.clone()]);
        }
    }
    let days = (active.not_after - now).whole_days();
    if active.expires_within(window_days, now) {
        return Check {
            status: CheckStatus::Warn,
            ..check
        }
        .detail(format!(
            "Certificate {} expires in {days} days, within the rotation window ({window_days} days), and has not been replaced yet.",
            active.thumbprint
        ))
        .fix("Run the certificate rotation from Console → Background (it needs your tenant ID and Application.Read.All in your tenant), or create, upload and activate a new certificate.");
    }
    Check {
        status: CheckStatus::Pass,
        ..check
    }
    .detail(format!(
        "Token requests are signed with certificate {}, registered on the app, valid for {days} more days.",
        active.thumbprint
    ))
}
