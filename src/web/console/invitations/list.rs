//! The invitations list: open ones first, filtered by status (a decline stays findable after
//! the link is opened again), customer and search.

use std::collections::HashMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::State;
use axum::routing::get;

use super::{Badge, Choice, status_label};
use crate::customers;
use crate::invitations::{self, Filter, Invitation, InvitationStatus, Setback};
use crate::types::CustomerId;
use crate::web::AppState;
use crate::web::console::list::{Empty, Filters, ListPage, ListQuery, link};
use crate::web::console::{Chrome, Section, When};
use crate::web::csrf::CsrfToken;
use crate::web::error::Result;
use crate::web::paths;
use crate::web::session::CurrentOperator;

const PER_PAGE: i64 = 25;

/// `?status=` and `?customer=`.
#[derive(Default)]
struct InvitationFilters {
    status: Option<InvitationStatus>,
    customer: Option<CustomerId>,
}

impl Filters for InvitationFilters {
    fn parse(params: &HashMap<String, String>) -> Self {
        Self {
            status: params
                .get("status")
                .and_then(|s| InvitationStatus::parse(s).ok()),
            customer: params.get("customer").and_then(|c| c.trim().parse().ok()),
        }
    }

    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        if let Some(status) = self.status {
            pairs.push(("status", status.as_str().to_owned()));
        }
        if let Some(customer) = self.customer {
            pairs.push(("customer", customer.to_string()));
        }
        pairs
    }
}

/// The last decline or failure of an invitation whose status has moved on (opened again,
/// resent), so it does not disappear from sight.
pub(in crate::web::console) struct Earlier {
    pub(in crate::web::console) label: &'static str,
    pub(in crate::web::console) at: When,
}

impl Earlier {
    fn of(i: &Invitation) -> Option<Self> {
        let (outcome, at) = (i.last_outcome?, i.last_outcome_at?);
        (outcome.status() != i.status).then(|| Self {
            label: match outcome {
                Setback::Declined => "Declined",
                Setback::Failed => "Failed",
            },
            at: When::new(at),
        })
    }
}

/// An invitation as lists show it (here and on its customer's page).
pub(in crate::web::console) struct Row {
    pub(in crate::web::console) url: String,
    pub(in crate::web::console) customer: String,
    pub(in crate::web::console) email: String,
    pub(in crate::web::console) domain: Option<String>,
    pub(in crate::web::console) mode: &'static str,
    pub(in crate::web::console) badge: Badge,
    pub(in crate::web::console) earlier: Option<Earlier>,
    pub(in crate::web::console) created: When,
    /// Only while the link can still be used.
    pub(in crate::web::console) expires: Option<When>,
    pub(in crate::web::console) activity: When,
}

impl From<&Invitation> for Row {
    fn from(i: &Invitation) -> Self {
        Self {
            url: paths::invitation(i.id),
            customer: i.customer_name.clone(),
            email: i.admin_email.clone(),
            domain: i.tenant_domain.clone(),
            mode: i.consent_mode.label(),
            badge: i.status.into(),
            earlier: Earlier::of(i),
            created: When::new(i.created_at),
            expires: i.status.is_open().then(|| When::new(i.expires_at)),
            activity: When::new(i.last_activity_at),
        }
    }
}

pub(super) fn router() -> Router<AppState> {
    Router::new().route(paths::INVITATIONS, get(list))
}

#[derive(Template, WebTemplate)]
#[template(path = "console/invitations.html")]
struct InvitationsPage {
    chrome: Chrome,
    list: ListPage<Row, InvitationFilters>,
    statuses: Vec<Choice>,
    /// The customer the list is narrowed to: name and the address without that filter.
    customer: Option<(String, String)>,
    customer_id: String,
}

async fn list(
    State(state): State<AppState>,
    CurrentOperator(operator): CurrentOperator,
    CsrfToken(csrf): CsrfToken,
    query: ListQuery<InvitationFilters>,
) -> Result<InvitationsPage> {
    let InvitationFilters { status, customer } = query.filters;
    let filter = Filter {
        status,
        search: query.q.clone(),
        customer_id: customer,
        limit: PER_PAGE,
        offset: query.offset(PER_PAGE),
    };
    let (invitations, total) = invitations::list(&state.db, &filter).await?;
    let chrome = Chrome::new(&state, &operator, csrf, Section::Invitations);
    let first = Empty::first_run(
        "No invitations yet — create the first one",
        if chrome.is_admin {
            "An invitation emails a customer's global admin a link to review and grant access."
        } else {
            "An invitation emails a customer's global admin a link to review and grant access. Ask an admin to create one: your role is read-only."
        },
        chrome
            .is_admin
            .then(|| ("New invitation", paths::NEW_INVITATION.to_owned())),
    );
    let customer = match customer {
        Some(id) => {
            let mut rest = InvitationFilters {
                status,
                customer: None,
            }
            .pairs();
            rest.extend(query.q.clone().map(|q| ("q", q)));
            Some((
                customers::get(&state.db, id).await?.name,
                link(paths::INVITATIONS, &rest),
            ))
        }
        None => None,
    };
    let statuses = InvitationStatus::ALL
        .into_iter()
        .map(|s| Choice {
            value: s.as_str(),
            label: status_label(s),
            selected: Some(s) == status,
        })
        .collect();
    let rows = invitations.iter().map(Row::from).collect();
    Ok(InvitationsPage {
        chrome,
        list: ListPage::new(
            query,
            paths::INVITATIONS,
            PER_PAGE,
            rows,
            total,
            "invitations",
            first,
        ),
        statuses,
        customer,
        customer_id: filter
            .customer_id
            .map(|c| c.to_string())
            .unwrap_or_default(),
    })
}
