//! Sign-ins: every sign-in of a customer's user through Gangway to one of the provider's
//! applications — when (in the viewer's zone), application, customer, user, outcome and the
//! reason of a refusal — filtered by customer, application and outcome, searched, paged. Each
//! tenant's page shows its recent ones with the same rows.

use std::collections::HashMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use uuid::Uuid;

use super::list::{Empty, Filters, ListPage, ListQuery, link};
use super::{Chrome, Section, When};
use crate::customers;
use crate::signin::applications;
use crate::signin::history::{self, Filter, Outcome, SignIn};
use crate::tenants::Tenant;
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::Result;
use crate::web::paths;
use crate::web::session::CurrentOperator;

const PER_PAGE: i64 = 50;
/// The most customers and applications the filters offer.
const CHOICES: i64 = 500;

pub(super) fn router() -> Router<AppState> {
    Router::new().route(paths::SIGN_INS, get(list))
}

/// One sign-in as the tables show it (`templates/console/_sign_ins.html`).
pub(crate) struct SignInRow {
    pub at: When,
    pub application: String,
    pub application_url: Option<String>,
    pub customer: String,
    pub tenant_url: Option<String>,
    pub user: String,
    pub succeeded: bool,
    pub reason: String,
}

impl From<SignIn> for SignInRow {
    fn from(s: SignIn) -> Self {
        Self {
            at: When::new(s.at),
            application_url: s.application_id.map(|id| paths::application(id.into())),
            application: s.application_name,
            customer: s
                .customer_name
                .or(s.tenant_name)
                .unwrap_or_else(|| "—".into()),
            tenant_url: s.tenant_id.map(|id| paths::tenant(id.into())),
            user: s.username.unwrap_or_else(|| "—".into()),
            succeeded: s.outcome == Outcome::Succeeded.as_str(),
            reason: s.reason.unwrap_or_default(),
        }
    }
}

/// A tenant's latest sign-ins and where its customer's others are.
pub(crate) struct Recent {
    pub rows: Vec<SignInRow>,
    pub all_url: String,
}

/// The latest `limit` sign-ins of `tenant`, for its page.
pub(crate) async fn recent(state: &AppState, tenant: &Tenant, limit: i64) -> Result<Recent> {
    let filter = Filter {
        tenant_id: Some(tenant.id.into()),
        ..Filter::default()
    };
    let (rows, _) = history::list(&state.db, &filter, limit, 0).await?;
    Ok(Recent {
        rows: rows.into_iter().map(SignInRow::from).collect(),
        all_url: link(
            paths::SIGN_INS,
            &[("customer", tenant.customer_id.to_string())],
        ),
    })
}

/// `?customer=&application=&outcome=`.
#[derive(Default)]
struct SignInFilters {
    customer: Option<Uuid>,
    application: Option<Uuid>,
    outcome: Option<Outcome>,
}

impl Filters for SignInFilters {
    fn parse(params: &HashMap<String, String>) -> Self {
        let id = |key: &str| params.get(key).and_then(|v| Uuid::parse_str(v.trim()).ok());
        Self {
            customer: id("customer"),
            application: id("application"),
            outcome: params.get("outcome").and_then(|o| Outcome::parse(o)),
        }
    }

    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        if let Some(c) = self.customer {
            pairs.push(("customer", c.to_string()));
        }
        if let Some(a) = self.application {
            pairs.push(("application", a.to_string()));
        }
        if let Some(o) = self.outcome {
            pairs.push(("outcome", o.as_str().to_owned()));
        }
        pairs
    }
}

/// One choice of a filter's `<select>`.
struct Choice {
    value: String,
    label: String,
    selected: bool,
}

/// The longest choice label shown: a select as wide as its longest name would not fit a phone.
const CHOICE_CHARS: usize = 28;

/// `name` cut to [`CHOICE_CHARS`], with an ellipsis when cut.
fn choice_label(name: String) -> String {
    if name.chars().count() <= CHOICE_CHARS {
        return name;
    }
    name.chars().take(CHOICE_CHARS - 1).chain(['…']).collect()
}

#[derive(Template, WebTemplate)]
#[template(path = "console/sign_ins.html")]
struct SignInsPage {
    chrome: Chrome,
    list: ListPage<SignInRow, SignInFilters>,
    customers: Vec<Choice>,
    applications: Vec<Choice>,
    outcomes: Vec<Choice>,
}

async fn list(
    State(state): State<AppState>,
    CurrentOperator(operator): CurrentOperator,
    CsrfToken(csrf): CsrfToken,
    query: ListQuery<SignInFilters>,
) -> Result<SignInsPage> {
    let f = &query.filters;
    let filter = Filter {
        customer_id: f.customer,
        application_id: f.application,
        tenant_id: None,
        outcome: f.outcome,
        search: query.q.clone(),
    };
    let (rows, total) = history::list(&state.db, &filter, PER_PAGE, query.offset(PER_PAGE)).await?;
    let (found, _) = customers::list(&state.db, None, CHOICES, 0).await?;
    let customers = found
        .into_iter()
        .map(|l| Choice {
            selected: f.customer == Some(l.customer.id.into()),
            value: l.customer.id.to_string(),
            label: choice_label(l.customer.name),
        })
        .collect();
    let (apps, _) = applications::list(&state.db, None, CHOICES, 0).await?;
    let applications = apps
        .into_iter()
        .map(|a| Choice {
            selected: f.application == Some(a.id),
            value: a.id.to_string(),
            label: choice_label(a.name),
        })
        .collect();
    let outcomes = Outcome::ALL
        .into_iter()
        .map(|o| Choice {
            selected: f.outcome == Some(o),
            value: o.as_str().to_owned(),
            label: match o {
                Outcome::Succeeded => "Signed in".into(),
                Outcome::Refused => "Refused".into(),
            },
        })
        .collect();
    let first = Empty::first_run(
        "No sign-ins yet",
        "Each sign-in of a customer's user to one of your applications shows here, refusals with their reason.",
        Some(("Applications", paths::APPLICATIONS.to_owned())),
    );
    let rows = rows.into_iter().map(SignInRow::from).collect();
    Ok(SignInsPage {
        chrome: Chrome::new(&state, &operator, csrf, Section::SignIns),
        list: ListPage::new(
            query,
            paths::SIGN_INS,
            PER_PAGE,
            rows,
            total,
            "sign-ins",
            first,
        ),
        customers,
        applications,
        outcomes,
    })
}
