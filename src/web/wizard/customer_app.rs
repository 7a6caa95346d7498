//! `POST /invitation/customer-app`: the customer's own single-tenant app (the iPECS way).
//! The credentials are proven at once — a client-credentials token, a users read, the
//! organisation — and what is wrong is named before anything is saved.

use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use time::{Date, OffsetDateTime};
use tower_sessions::Session;
use uuid::Uuid;

use super::callback::{Recorded, record};
use super::pages::CustomerAppForm;
use super::review::{CUSTOMER_APP_STEP, SessionInvitation, current_invitation, review_page};
use super::{link, result};
use crate::audit::Actor;
use crate::graph::GraphError;
use crate::identity::{AadErrorKind, IdentityError};
use crate::invitations::{self, Setback};
use crate::onboarding::{self, AppCredentials, AppRefusal, GraphRead};
use crate::tenants;
use crate::types::ConsentMode;
use crate::types::{ClientId, Secret, TenantId};
use crate::web::AppState;
use crate::web::client_addr::ClientAddr;
use crate::web::csrf::CsrfToken;
use crate::web::error::{Error, Result};
use crate::web::session;

/// The form as posted (the CSRF field is checked by the middleware).
#[derive(serde::Deserialize)]
pub struct RawForm {
    #[serde(default)]
    tenant_id: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: String,
    /// When the secret expires (YYYY-MM-DD), optional.
    #[serde(default)]
    secret_expires: String,
}

impl std::fmt::Debug for RawForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawForm")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .finish()
    }
}

/// A secret may live at most this long, as Microsoft allows.
const MAX_SECRET_DAYS: i64 = 731;

/// The secret's expiry as typed: empty is unknown; else a date from today to 24 months ahead.
fn parse_expiry(raw: &str, today: Date) -> std::result::Result<Option<Date>, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = Date::parse(raw, &format).map_err(|_| {
        "Enter the date the secret expires as shown in the Entra admin center, such as 2027-06-30, or leave it empty.".to_owned()
    })?;
    if date < today {
        return Err(
            "This secret has already expired: create a new one and enter its Value.".into(),
        );
    }
    if date > today + time::Duration::days(MAX_SECRET_DAYS) {
        return Err("A client secret lives at most 24 months: check the expiry date.".into());
    }
    Ok(Some(date))
}

/// Checks the shape of each field, naming every problem; the form keeps tenant and client id
/// (and the secret's expiry, when given).
pub fn parse(
    raw: &RawForm,
) -> std::result::Result<(AppCredentials, Option<Date>), Box<CustomerAppForm>> {
    let mut form = CustomerAppForm {
        tenant_id: raw.tenant_id.trim().to_owned(),
        client_id: raw.client_id.trim().to_owned(),
        secret_expires: raw.secret_expires.trim().to_owned(),
        ..Default::default()
    };
    let expires = parse_expiry(&raw.secret_expires, OffsetDateTime::now_utc().date())
        .map_err(|e| form.expires_error = Some(e))
        .ok()
        .flatten();
    let tenant = if form.tenant_id.is_empty() {
        form.tenant_id_error =
            Some("Enter the Directory (tenant) ID from the app's Overview page.".into());
        None
    } else if form.tenant_id.contains('.') {
        form.tenant_id_error = Some(
            "Enter the tenant ID (a GUID such as 72f988bf-86f1-41af-91ab-2d7cd011db47), not a domain name: \
             it is shown as Directory (tenant) ID on the app's Overview page."
                .into(),
        );
        None
    } else {
        match TenantId::parse(&form.tenant_id) {
            Ok(t) => Some(t),
            Err(_) => {
                form.tenant_id_error = Some(
                    "This is not a tenant ID: it is a GUID such as 72f988bf-86f1-41af-91ab-2d7cd011db47, shown as \
                     Directory (tenant) ID on the app's Overview page."
                        .into(),
                );
                None
            }
        }
    };
    let client_id = if form.client_id.is_empty() {
        form.client_id_error =
            Some("Enter the Application (client) ID from the app's Overview page.".into());
        None
    } else {
        match ClientId::parse(&form.client_id) {
            Ok(id) => Some(id),
            Err(_) => {
                form.client_id_error = Some(
                    "This is not a client ID: it is a GUID, shown as Application (client) ID on the app's Overview page."
                        .into(),
                );
                None
            }
        }
    };
    let secret = raw.client_secret.trim();
    if secret.is_empty() {
        form.secret_error = Some("Enter the client secret's Value (not its Secret ID).".into());
    } else if secret.len() > 1024 {
        form.secret_error =
            Some("This is too long for a client secret: paste the secret's Value only.".into());
    }
    let valid = form.secret_error.is_none() && form.expires_error.is_none();
    match (tenant, client_id, valid) {
        (Some(tenant), Some(client_id), true) => Ok((
            AppCredentials {
                tenant,
                client_id,
                secret: Secret::new(secret),
            },
            expires,
        )),
        _ => Err(Box::new(form)),
    }
}

/// Which field is wrong, and what to tell the admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    TenantId(String),
    ClientId(String),
    Secret(String),
    /// Not tied to one field (a missing permission, Microsoft unreachable…).
    General(String),
}

impl Finding {
    fn message(&self) -> &str {
        match self {
            Self::TenantId(m) | Self::ClientId(m) | Self::Secret(m) | Self::General(m) => m,
        }
    }
}

/// What a refused client-credentials request means for the admin.
pub fn explain_token_error(e: &IdentityError) -> Finding {
    let IdentityError::Aad(aad) = e else {
        return Finding::General(
            "Microsoft could not be reached to check these values. Wait a minute and try again."
                .into(),
        );
    };
    let code = aad
        .code()
        .map(|c| format!("AADSTS{c}"))
        .unwrap_or_else(|| aad.error.clone());
    match aad.kind() {
        AadErrorKind::UnknownTenant => Finding::TenantId(format!(
            "Microsoft knows no tenant with this ID ({code}). Copy the Directory (tenant) ID from the app's Overview page."
        )),
        AadErrorKind::AppNotFoundInTenant => Finding::ClientId(format!(
            "There is no application with this client ID in that tenant ({code}). Copy the Application (client) ID \
             from the app's Overview page, and check the tenant ID belongs to the same tenant."
        )),
        AadErrorKind::BadSecret => Finding::Secret(format!(
            "Microsoft did not accept this secret ({code}). Copy the secret's Value, not its Secret ID; if the value \
             is no longer shown, create a new secret."
        )),
        AadErrorKind::ExpiredSecret => Finding::Secret(format!(
            "This secret has expired ({code}). Create a new secret under Certificates & secrets (expiry at most 24 \
             months) and paste its Value."
        )),
        AadErrorKind::ConsentMissing => Finding::General(format!(
            "The app's permissions have not been granted ({code}). On its API permissions page, click \"Grant admin \
             consent\" and confirm, then try again."
        )),
        _ => Finding::General(format!(
            "Microsoft refused these values ({code}: {}). Check the three values and try again.",
            aad.summary().chars().take(200).collect::<String>()
        )),
    }
}

/// What a refused Graph read means; `what` names the read (`users` or `organization`).
pub fn explain_graph_error(e: &GraphError, what: &str) -> Finding {
    if e.is_permission_denied() {
        let permission = if what == "users" {
            "User.Read.All"
        } else {
            "Organization.Read.All"
        };
        return Finding::General(format!(
            "The app may not read your {what} (Microsoft Graph said Authorization_RequestDenied). Add the Microsoft \
             Graph permission {permission} of type Application (not Delegated) and click \"Grant admin consent\", \
             then try again."
        ));
    }
    match e {
        GraphError::Throttled { .. } | GraphError::Transport(_) => Finding::General(
            "Microsoft Graph could not be reached to check these values. Wait a minute and try again.".into(),
        ),
        GraphError::Api { code, .. } => Finding::General(format!(
            "Microsoft Graph refused to read your {what} ({code}). Check the app's permissions and admin consent."
        )),
        _ => Finding::General("Microsoft Graph answered in an unexpected way. Try again in a minute.".into()),
    }
}

/// Puts a finding beside its field, or above the form when it is about no single field.
fn apply(finding: &Finding, form: &mut CustomerAppForm) {
    let message = Some(finding.message().to_owned());
    match finding {
        Finding::TenantId(_) => form.tenant_id_error = message,
        Finding::ClientId(_) => form.client_id_error = message,
        Finding::Secret(_) => form.secret_error = message,
        Finding::General(_) => form.problem = message,
    }
}

/// What a refused customer app means for the admin, beside the field at fault.
fn explain(refusal: &AppRefusal) -> Finding {
    match refusal {
        AppRefusal::Token(e) => explain_token_error(e),
        AppRefusal::Graph { read, error } => explain_graph_error(
            error,
            match read {
                GraphRead::Users => "users",
                GraphRead::Organization => "organization",
            },
        ),
        AppRefusal::OtherTenant => Finding::TenantId(
            "Microsoft reported a different tenant for these credentials. Check the tenant ID."
                .into(),
        ),
    }
}

/// The form's target.
#[tracing::instrument(skip_all)]
pub async fn submit(
    State(state): State<AppState>,
    client: ClientAddr,
    session: Session,
    CsrfToken(csrf): CsrfToken,
    Form(raw): Form<RawForm>,
) -> Result<Response> {
    let invitation = match current_invitation(&state, &session).await? {
        SessionInvitation::Usable(i) => i,
        SessionInvitation::Unusable(page) => return Ok(page),
    };
    if invitation.consent_mode != ConsentMode::CustomerApp {
        return Err(Error::BadRequest(
            "This invitation is completed by signing in with Microsoft, not with an app's details."
                .into(),
        ));
    }
    // The admin is now at the app-details step: the indicator says so above the errors.
    let brand = state.live().await?.settings.branding.clone();
    let profile = super::review::invitation_profile(&state, &invitation).await?;
    let why_again = invitations::reconsent::why_asked_again(&state.db, &invitation).await?;
    let rerender = |invitation: &invitations::Invitation, form: CustomerAppForm| {
        let mut page = review_page(
            &brand,
            &profile,
            invitation,
            why_again,
            csrf.clone(),
            Some(form),
        );
        page.chrome.step = 2;
        (StatusCode::UNPROCESSABLE_ENTITY, page).into_response()
    };
    let (creds, expires) = match parse(&raw) {
        Ok(c) => c,
        Err(form) => return Ok(rerender(&invitation, *form)),
    };
    // Every check calls Microsoft: a small budget per client address.
    state.limits.app_checks.check(client)?;
    // Nobody signs in here: the credentials prove control of an app, not who is at the keyboard.
    let who = Actor::LinkHolder(client.ip());
    let (tenant_id, client_id) = (creds.tenant.to_string(), creds.client_id.to_string());
    let live = state.live().await?;
    let consent = match onboarding::verify_customer_app(live.entra()?, &state.graph, creds).await {
        Ok(consent) => consent,
        Err(refusal) => {
            let finding = explain(&refusal);
            tracing::info!(?finding, "customer app credentials refused");
            let reason = format!("customer app check failed: {}", finding.message());
            invitations::record_setback(
                &state.db,
                invitation.id,
                Setback::Failed,
                &reason,
                finding.message(),
                &who,
            )
            .await?;
            let mut form = CustomerAppForm {
                tenant_id,
                client_id,
                secret_expires: raw.secret_expires.trim().to_owned(),
                ..Default::default()
            };
            apply(&finding, &mut form);
            // Shown above the form; the stale "last attempt" notice would repeat it.
            let mut invitation = invitation;
            invitation.customer_notice = None;
            return Ok(rerender(&invitation, form));
        }
    };
    let provider = live.settings.branding.clone();
    match record(&state, &invitation, &consent, &who).await? {
        Recorded::Connected(name) => {
            tenants::set_credential_expiry(&state.db, consent.entra_tenant_id, expires).await?;
            session.remove::<Uuid>(session::INVITATION).await?;
            tracing::info!(invitation_id = %invitation.id, "customer app consent recorded");
            let done = link::done_page(&provider, &name, CUSTOMER_APP_STEP);
            result::show_after_redirect(&session, done, StatusCode::OK).await
        }
        Recorded::Refused(refused) => {
            refused.record(&state.db, &invitation, &who).await?;
            let status = refused.status;
            let mut page = refused.page(&provider);
            page.chrome.middle_step = CUSTOMER_APP_STEP;
            result::show_after_redirect(&session, page, status).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::AadError;

    fn raw(t: &str, c: &str, s: &str) -> RawForm {
        RawForm {
            tenant_id: t.into(),
            client_id: c.into(),
            client_secret: s.into(),
            secret_expires: String::new(),
        }
    }

    const T: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    const C: &str = "c12be4c0-7943-4450-9b11-b35a00000001";

    #[test]
    fn fields_are_checked_and_the_secret_never_echoed() {
        let (ok, expires) = parse(&raw(&format!(" {T} "), C, " s3cret~value ")).unwrap();
        assert_eq!(expires, None);
        assert_eq!(ok.tenant.to_string(), T);
        assert_eq!(ok.secret.expose(), "s3cret~value");

        let form = parse(&raw("contoso.onmicrosoft.com", C, "x")).unwrap_err();
        assert!(form.tenant_id_error.unwrap().contains("not a domain name"));
        assert_eq!(form.tenant_id, "contoso.onmicrosoft.com");
        assert_eq!(form.client_id, C);

        let form = parse(&raw(T, "not-a-guid", "")).unwrap_err();
        assert!(form.tenant_id_error.is_none());
        assert!(form.client_id_error.is_some());
        assert!(form.secret_error.is_some());

        let form = parse(&raw("", "", "hunter2")).unwrap_err();
        assert!(form.tenant_id_error.is_some() && form.client_id_error.is_some());
        assert!(!format!("{form:?}").contains("hunter2"));
        assert!(!format!("{:?}", raw(T, C, "hunter2")).contains("hunter2"));
    }

    #[test]
    fn a_secret_expiry_is_optional_and_at_most_24_months_ahead() {
        let today = Date::from_calendar_date(2026, time::Month::December, 1).unwrap();
        assert_eq!(parse_expiry("", today), Ok(None));
        assert_eq!(
            parse_expiry(" 2028-11-30 ", today),
            Ok(Some(
                Date::from_calendar_date(2028, time::Month::November, 30).unwrap()
            ))
        );
        assert!(
            parse_expiry("2029-01-01", today)
                .unwrap_err()
                .contains("24 months")
        );
        assert!(
            parse_expiry("2026-11-30", today)
                .unwrap_err()
                .contains("already expired")
        );
        assert!(
            parse_expiry("30/11/2028", today)
                .unwrap_err()
                .contains("2027-06-30")
        );
    }

    fn aad(body: &str) -> IdentityError {
        IdentityError::Aad(Box::new(serde_json::from_str::<AadError>(body).unwrap()))
    }

    #[test]
    fn microsoft_refusals_name_the_field_and_the_fix() {
        let bad = explain_token_error(&aad(
            r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}"#,
        ));
        assert!(
            matches!(&bad, Finding::Secret(m) if m.contains("Value, not its Secret ID")),
            "{bad:?}"
        );
        let expired = explain_token_error(&aad(
            r#"{"error":"invalid_client","error_description":"AADSTS7000222: The provided client secret keys are expired."}"#,
        ));
        assert!(
            matches!(&expired, Finding::Secret(m) if m.contains("new secret")),
            "{expired:?}"
        );
        let tenant = explain_token_error(&aad(
            r#"{"error":"invalid_request","error_description":"AADSTS90002: Tenant not found."}"#,
        ));
        assert!(matches!(tenant, Finding::TenantId(_)));
        let app = explain_token_error(&aad(
            r#"{"error":"unauthorized_client","error_description":"AADSTS700016: Application not found."}"#,
        ));
        assert!(matches!(app, Finding::ClientId(_)));
        let consent = explain_token_error(&aad(
            r#"{"error":"invalid_grant","error_description":"AADSTS65001: not consented."}"#,
        ));
        assert!(matches!(&consent, Finding::General(m) if m.contains("Grant admin consent")));
        let denied = GraphError::Api {
            status: 403,
            code: "Authorization_RequestDenied".into(),
            message: "x".into(),
        };
        assert!(
            matches!(explain_graph_error(&denied, "users"), Finding::General(m) if m.contains("User.Read.All") && m.contains("Application"))
        );
        assert!(
            matches!(explain_graph_error(&denied, "organization"), Finding::General(m) if m.contains("Organization.Read.All"))
        );
    }
}
