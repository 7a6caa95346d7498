//! Invitations: the list (the console's home), creating one, its detail, resend and revoke.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use uuid::Uuid;

use super::{Chrome, EventRow, Pager, Section, When, page_number, parse_id, search_term};
use crate::audit::{self, Actor};
use crate::invitations::{
    self, ConsentMode, Filter, Invitation, InvitationError, Issued, NewInvitation, Status, mail,
};
use crate::types::{DomainName, EmailAddress};
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::Result;
use crate::web::paths;
use crate::web::session::{AdminOperator, CurrentOperator};

const PER_PAGE: i64 = 25;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(paths::INVITATIONS, get(list))
        .route(paths::NEW_INVITATION, get(new_form).post(create))
        .route(paths::INVITATION, get(detail))
        .route(paths::RESEND_INVITATION, post(resend))
        .route(paths::REVOKE_INVITATION, post(revoke))
}

/// How a status reads on a badge.
fn status_label(status: Status) -> &'static str {
    match status {
        Status::Pending => "Pending",
        Status::Opened => "Opened",
        Status::Consented => "Consented",
        Status::Declined => "Declined",
        Status::Failed => "Failed",
        Status::Expired => "Expired",
        Status::Revoked => "Revoked",
    }
}

/// A status badge: CSS class and text.
struct Badge {
    class: &'static str,
    label: &'static str,
}

impl From<Status> for Badge {
    fn from(status: Status) -> Self {
        Self {
            class: status.as_str(),
            label: status_label(status),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The list

#[derive(Deserialize, Default)]
struct ListQuery {
    status: Option<String>,
    q: Option<String>,
    page: Option<String>,
}

struct Row {
    url: String,
    customer: String,
    email: String,
    domain: Option<String>,
    mode: &'static str,
    badge: Badge,
    created: When,
    /// Only while the link can still be used.
    expires: Option<When>,
    activity: When,
}

impl From<&Invitation> for Row {
    fn from(i: &Invitation) -> Self {
        Self {
            url: paths::with_id(paths::INVITATION, i.id),
            customer: i.customer_name.clone(),
            email: i.admin_email.clone(),
            domain: i.tenant_domain.clone(),
            mode: i.consent_mode.label(),
            badge: i.status.into(),
            created: When::new(i.created_at),
            expires: (!matches!(i.status, Status::Consented | Status::Revoked))
                .then(|| When::new(i.expires_at)),
            activity: When::new(i.last_activity_at),
        }
    }
}

struct Choice {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/invitations.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<Row>,
    statuses: Vec<Choice>,
    q: String,
    filtered: bool,
    pager: Pager,
}

async fn list(
    State(state): State<AppState>,
    CurrentOperator(operator): CurrentOperator,
    CsrfToken(csrf): CsrfToken,
    Query(query): Query<ListQuery>,
) -> Result<ListPage> {
    let status = query
        .status
        .as_deref()
        .filter(|s| !s.is_empty())
        .and_then(|s| Status::parse(s).ok());
    let search = search_term(query.q.as_deref());
    let page = page_number(query.page.as_deref());
    let filter = Filter {
        status,
        search: search.clone(),
        limit: PER_PAGE,
        offset: (page - 1) * PER_PAGE,
    };
    let (invitations, total) = invitations::list(&state.db, &filter).await?;
    let q = search.unwrap_or_default();
    let status_value = status.map(Status::as_str).unwrap_or("");
    let pager = Pager::new(
        paths::INVITATIONS,
        &[("status", status_value), ("q", &q)],
        page,
        PER_PAGE,
        invitations.len(),
        total,
    );
    let statuses = Status::ALL
        .into_iter()
        .map(|s| Choice {
            value: s.as_str(),
            label: status_label(s),
            selected: Some(s) == status,
        })
        .collect();
    Ok(ListPage {
        chrome: Chrome::new(&state, &operator, csrf, Section::Invitations),
        rows: invitations.iter().map(Row::from).collect(),
        statuses,
        filtered: status.is_some() || !q.is_empty(),
        q,
        pager,
    })
}

// ---------------------------------------------------------------------------------------------
// Creating one

/// The form as typed, kept whole when it has to be shown again.
#[derive(Deserialize, Default, Clone)]
#[serde(default)]
struct NewForm {
    customer_name: String,
    admin_email: String,
    mode: String,
    tenant_domain: String,
    valid_for: String,
}

/// One message per field, shown next to it.
#[derive(Default)]
struct FieldErrors {
    customer_name: Option<String>,
    admin_email: Option<String>,
    mode: Option<String>,
    tenant_domain: Option<String>,
    valid_for: Option<String>,
}

impl FieldErrors {
    fn any(&self) -> bool {
        self.customer_name.is_some()
            || self.admin_email.is_some()
            || self.mode.is_some()
            || self.tenant_domain.is_some()
            || self.valid_for.is_some()
    }
}

struct ModeChoice {
    value: &'static str,
    label: &'static str,
    explain: &'static str,
    checked: bool,
}

fn mode_explanation(mode: ConsentMode) -> &'static str {
    match mode {
        ConsentMode::Delegated => {
            "The admin signs in with Microsoft and consents; Gangway keeps a refresh token to sync the directory."
        }
        ConsentMode::Application => {
            "The admin grants your app read access for the whole tenant (admin consent); no user token is kept."
        }
        ConsentMode::CustomerApp => {
            "The admin registers an app in their own tenant and enters its tenant id, client id and secret."
        }
    }
}

const VALIDITIES: [(&str, &str); 5] = [
    ("24h", "24 hours"),
    ("3d", "3 days"),
    ("7d", "7 days"),
    ("14d", "14 days"),
    ("30d", "30 days"),
];

#[derive(Template, WebTemplate)]
#[template(path = "console/invitation_new.html")]
struct NewPage {
    chrome: Chrome,
    form: NewForm,
    errors: FieldErrors,
    modes: Vec<ModeChoice>,
    validities: Vec<Choice>,
}

impl NewPage {
    fn new(chrome: Chrome, form: NewForm, errors: FieldErrors) -> Self {
        let chosen_mode = ConsentMode::parse(&form.mode).ok();
        let modes = ConsentMode::ALL
            .into_iter()
            .map(|m| ModeChoice {
                value: m.as_str(),
                label: m.label(),
                explain: mode_explanation(m),
                checked: Some(m) == chosen_mode,
            })
            .collect();
        let validity = if form.valid_for.is_empty() {
            "7d"
        } else {
            form.valid_for.as_str()
        };
        let validities = VALIDITIES
            .into_iter()
            .map(|(value, label)| Choice {
                value,
                label,
                selected: value == validity,
            })
            .collect();
        Self {
            chrome,
            form,
            errors,
            modes,
            validities,
        }
    }
}

async fn new_form(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    CsrfToken(csrf): CsrfToken,
) -> NewPage {
    let form = NewForm {
        mode: ConsentMode::Delegated.as_str().into(),
        valid_for: "7d".into(),
        ..NewForm::default()
    };
    NewPage::new(
        Chrome::new(&state, &operator, csrf, Section::Invitations),
        form,
        FieldErrors::default(),
    )
}

/// Checks each field on its own so every problem shows next to its field at once.
fn validate(form: &NewForm) -> Result<NewInvitation, FieldErrors> {
    let message = |e: InvitationError| Some(capitalise(&e.to_string()));
    let domain = form.tenant_domain.trim();
    let mut errors = FieldErrors {
        customer_name: None,
        admin_email: EmailAddress::parse(&form.admin_email)
            .err()
            .map(|e| capitalise(&e.0)),
        mode: if form.mode.trim().is_empty() {
            Some("Choose how the customer grants access.".into())
        } else {
            ConsentMode::parse(&form.mode).err().and_then(message)
        },
        tenant_domain: if domain.is_empty() {
            None
        } else {
            DomainName::parse(domain).err().map(|e| capitalise(&e.0))
        },
        valid_for: if form.valid_for.trim().is_empty() {
            None
        } else {
            invitations::parse_validity(&form.valid_for)
                .err()
                .and_then(message)
        },
    };
    if form.customer_name.trim().is_empty() {
        errors.customer_name = Some("Enter the customer's name.".into());
    }
    let parsed = NewInvitation::parse(
        &form.customer_name,
        &form.admin_email,
        &form.mode,
        Some(&form.tenant_domain),
        Some(&form.valid_for),
    );
    match parsed {
        Ok(new) if !errors.any() => Ok(new),
        Ok(_) => Err(errors),
        Err(e) => {
            // Every other field passed on its own: the name is what the domain refused.
            if !errors.any() {
                errors.customer_name = message(e);
            }
            Err(errors)
        }
    }
}

/// A domain message as a sentence on the page: capitalised, with a full stop, and with quotes
/// instead of the backticks the CLI shows.
fn capitalise(text: &str) -> String {
    let text = text.replace('`', "\"");
    let mut chars = text.chars();
    let mut out: String = chars
        .next()
        .map(|c| c.to_uppercase().collect())
        .unwrap_or_default();
    out.push_str(chars.as_str());
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

async fn create(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    CsrfToken(csrf): CsrfToken,
    Form(form): Form<NewForm>,
) -> Result<Response> {
    let chrome = Chrome::new(&state, &operator, csrf, Section::Invitations);
    let new = match validate(&form) {
        Ok(new) => new,
        Err(errors) => {
            return Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                NewPage::new(chrome, form, errors),
            )
                .into_response());
        }
    };
    let actor = Actor::Operator(operator.email.clone());
    let issued = invitations::create(
        &state.db,
        state.invitation_context(),
        &new,
        &actor,
        Some(operator.id),
    )
    .await?;
    Ok(link_page(&state, chrome, issued, false))
}

// ---------------------------------------------------------------------------------------------
// The link, shown once

#[derive(Template, WebTemplate)]
#[template(path = "console/invitation_link.html")]
struct LinkPage {
    chrome: Chrome,
    link: String,
    customer: String,
    email: String,
    expires: When,
    mail_configured: bool,
    resent: bool,
    detail_url: String,
}

/// The page with a freshly minted link. Rendered directly (never a redirect carrying the link)
/// and never cached: after this response only the link's hash exists.
fn link_page(state: &AppState, chrome: Chrome, issued: Issued, resent: bool) -> Response {
    let Issued { invitation, link } = issued;
    let page = LinkPage {
        chrome,
        link: link.to_string(),
        customer: invitation.customer_name,
        email: invitation.admin_email,
        expires: When::new(invitation.expires_at),
        mail_configured: state.cfg.smtp_url.is_some(),
        resent,
        detail_url: paths::with_id(paths::INVITATION, invitation.id),
    };
    page.into_response()
}

// ---------------------------------------------------------------------------------------------
// Detail, resend, revoke

#[derive(Deserialize, Default)]
struct DetailQuery {
    done: Option<String>,
}

struct Delivery {
    sent: Option<String>,
    attempts: i32,
    last_error: Option<String>,
    next_try: When,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/invitation.html")]
struct DetailPage {
    chrome: Chrome,
    id: Uuid,
    customer: String,
    email: String,
    mode: &'static str,
    domain: Option<String>,
    badge: Badge,
    created: When,
    expires: When,
    activity: When,
    attempts: i32,
    last_error: Option<String>,
    tenant_url: Option<String>,
    delivery: Option<Delivery>,
    mail_configured: bool,
    timeline: Vec<EventRow>,
    notice: Option<&'static str>,
    can_resend: bool,
    can_revoke: bool,
    resend_url: String,
    revoke_url: String,
}

async fn detail(
    State(state): State<AppState>,
    CurrentOperator(operator): CurrentOperator,
    CsrfToken(csrf): CsrfToken,
    Path(id): Path<String>,
    Query(query): Query<DetailQuery>,
) -> Result<DetailPage> {
    let id = parse_id(&id)?;
    let invitation = invitations::get(&state.db, id).await?;
    let delivery = mail::delivery_state(&state.db, id)
        .await?
        .map(|d| Delivery {
            sent: d.sent_at.map(crate::format::datetime),
            attempts: d.attempts,
            last_error: d.last_error,
            next_try: When::new(d.next_attempt_at),
        });
    let timeline = audit::for_invitation(&state.db, id)
        .await?
        .iter()
        .map(EventRow::from)
        .collect();
    let notice = match query.done.as_deref() {
        Some("revoked") => Some("Invitation revoked. Its link no longer works."),
        _ => None,
    };
    // The same rules `invitations::resend` and `revoke` enforce; here they only decide which
    // buttons to offer.
    let status = invitation.status;
    let can_resend = status.is_open() || status == Status::Expired;
    let can_revoke = !matches!(status, Status::Consented | Status::Revoked);
    Ok(DetailPage {
        chrome: Chrome::new(&state, &operator, csrf, Section::Invitations),
        id,
        customer: invitation.customer_name,
        email: invitation.admin_email,
        mode: invitation.consent_mode.label(),
        domain: invitation.tenant_domain,
        badge: status.into(),
        created: When::new(invitation.created_at),
        expires: When::new(invitation.expires_at),
        activity: When::new(invitation.last_activity_at),
        attempts: invitation.attempts,
        last_error: invitation.last_error,
        tenant_url: invitation
            .tenant_id
            .map(|t| paths::with_id(paths::TENANT, t)),
        delivery,
        mail_configured: state.cfg.smtp_url.is_some(),
        timeline,
        notice,
        can_resend,
        can_revoke,
        resend_url: paths::with_id(paths::RESEND_INVITATION, id),
        revoke_url: paths::with_id(paths::REVOKE_INVITATION, id),
    })
}

async fn resend(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    CsrfToken(csrf): CsrfToken,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = parse_id(&id)?;
    let actor = Actor::Operator(operator.email.clone());
    let issued = invitations::resend(&state.db, state.invitation_context(), id, &actor).await?;
    let chrome = Chrome::new(&state, &operator, csrf, Section::Invitations);
    Ok(link_page(&state, chrome, issued, true))
}

async fn revoke(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    Path(id): Path<String>,
) -> Result<Redirect> {
    let id = parse_id(&id)?;
    invitations::revoke(&state.db, id, &Actor::Operator(operator.email)).await?;
    Ok(Redirect::to(&format!(
        "{}?done=revoked",
        paths::with_id(paths::INVITATION, id)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(name: &str, email: &str, mode: &str, domain: &str, validity: &str) -> NewForm {
        NewForm {
            customer_name: name.into(),
            admin_email: email.into(),
            mode: mode.into(),
            tenant_domain: domain.into(),
            valid_for: validity.into(),
        }
    }

    #[test]
    fn each_problem_lands_on_its_field() {
        assert!(validate(&form("Contoso", "admin@contoso.com", "delegated", "", "7d")).is_ok());
        let e = validate(&form("Contoso", "nope", "sideways", "bad domain", "7d")).unwrap_err();
        assert!(e.admin_email.is_some() && e.mode.is_some() && e.tenant_domain.is_some());
        assert!(e.customer_name.is_none() && e.valid_for.is_none());
        let e = validate(&form("", "admin@contoso.com", "delegated", "", "7d")).unwrap_err();
        assert!(e.customer_name.is_some() && e.admin_email.is_none());
        let e = validate(&form(
            &"x".repeat(201),
            "admin@contoso.com",
            "delegated",
            "",
            "7d",
        ))
        .unwrap_err();
        assert!(e.customer_name.is_some());
        let e = validate(&form("C", "admin@contoso.com", "", "", "90d")).unwrap_err();
        assert!(e.mode.is_some() && e.valid_for.is_some());
    }
}
