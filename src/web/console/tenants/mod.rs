//! Tenants: every customer directory that consented, and each one's detail and history.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Redirect;
use axum::routing::{get, post};
use serde::Deserialize;
use uuid::Uuid;

use super::list::{Empty, ListQuery, Pager, is_first_run};
use super::{Chrome, EventRow, Section, When, parse_id};
use crate::audit::{self, Actor};
use crate::tenants::{self, Tenant, TenantStatus};
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::{Error, Result};
use crate::web::paths;
use crate::web::session::{AdminOperator, CurrentOperator};

const PER_PAGE: i64 = 25;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(paths::TENANTS, get(list))
        .route(paths::TENANT, get(detail))
        .route(paths::OFFBOARD_TENANT, post(offboard))
}

/// A tenant status badge: the CSS class is the stored status.
pub(in crate::web::console) struct Badge {
    pub(in crate::web::console) class: &'static str,
    pub(in crate::web::console) label: &'static str,
}

impl Badge {
    pub(super) fn new(status: TenantStatus) -> Self {
        Self {
            class: status.as_str(),
            label: status.label(),
        }
    }
}

/// A tenant as lists show it (here and on its customer's page).
pub(in crate::web::console) struct Row {
    pub(in crate::web::console) url: String,
    pub(in crate::web::console) customer_url: String,
    pub(in crate::web::console) customer: String,
    pub(in crate::web::console) name: String,
    pub(in crate::web::console) entra_id: String,
    pub(in crate::web::console) domains: String,
    pub(in crate::web::console) mode: &'static str,
    pub(in crate::web::console) badge: Badge,
    pub(in crate::web::console) consented_by: String,
    pub(in crate::web::console) consented: When,
}

impl From<&Tenant> for Row {
    fn from(t: &Tenant) -> Self {
        Self {
            url: paths::with_id(paths::TENANT, t.id),
            customer_url: paths::with_id(paths::CUSTOMER, t.customer_id),
            customer: t.customer_name.clone(),
            name: t.display_name.clone(),
            entra_id: t.entra_tenant_id.to_string(),
            domains: t.verified_domains.join(", "),
            mode: t.consent_mode.label(),
            badge: Badge::new(t.status),
            consented_by: t.consented_by_upn.clone().unwrap_or_default(),
            consented: When::new(t.consented_at),
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "console/tenants.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<Row>,
    q: String,
    pager: Pager,
    empty: Option<Empty>,
}

impl ListPage {
    fn first_run(&self) -> bool {
        is_first_run(&self.empty)
    }
}

async fn list(
    State(state): State<AppState>,
    CurrentOperator(operator): CurrentOperator,
    CsrfToken(csrf): CsrfToken,
    query: ListQuery<()>,
) -> Result<ListPage> {
    let (found, total) = tenants::list(
        &state.db,
        query.q.as_deref(),
        PER_PAGE,
        query.offset(PER_PAGE),
    )
    .await?;
    let (pager, empty) = query.outcome(
        paths::TENANTS,
        PER_PAGE,
        found.len(),
        total,
        "tenants",
        Empty::first_run(
            "No tenants yet",
            "Tenants appear here when a customer's admin consents through an invitation.",
            Some(("Go to invitations", paths::INVITATIONS.to_owned())),
        ),
    );
    Ok(ListPage {
        chrome: Chrome::new(&state, &operator, csrf, Section::Tenants),
        rows: found.iter().map(Row::from).collect(),
        q: query.search_text(),
        pager,
        empty,
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "console/tenant.html")]
struct DetailPage {
    chrome: Chrome,
    id: Uuid,
    name: String,
    entra_id: String,
    customer: String,
    customer_url: String,
    domains: Vec<String>,
    mode: &'static str,
    scopes: Vec<String>,
    consented_by_upn: Option<String>,
    consented_by_oid: Option<String>,
    consented: When,
    customer_client_id: Option<String>,
    badge: Badge,
    offboarded: bool,
    notice: Option<&'static str>,
    history: Vec<EventRow>,
}

#[derive(Deserialize, Default)]
struct DetailQuery {
    done: Option<String>,
}

async fn detail(
    State(state): State<AppState>,
    CurrentOperator(operator): CurrentOperator,
    CsrfToken(csrf): CsrfToken,
    Path(id): Path<String>,
    Query(query): Query<DetailQuery>,
) -> Result<DetailPage> {
    let id = parse_id(&id)?;
    // Credentials stay sealed in the database: `Tenant` does not even carry them.
    let tenant = tenants::get(&state.db, id).await?.ok_or(Error::NotFound)?;
    let history = audit::for_tenant(&state.db, id)
        .await?
        .iter()
        .map(EventRow::from)
        .collect();
    Ok(DetailPage {
        chrome: Chrome::new(&state, &operator, csrf, Section::Tenants),
        id,
        name: tenant.display_name,
        entra_id: tenant.entra_tenant_id.to_string(),
        customer_url: paths::with_id(paths::CUSTOMER, tenant.customer_id),
        customer: tenant.customer_name,
        domains: tenant.verified_domains,
        mode: tenant.consent_mode.label(),
        scopes: tenant.granted_scopes,
        consented_by_upn: tenant.consented_by_upn,
        consented_by_oid: tenant.consented_by_oid.map(|o| o.to_string()),
        consented: When::new(tenant.consented_at),
        customer_client_id: tenant.customer_client_id,
        offboarded: tenant.status == TenantStatus::Offboarded,
        badge: Badge::new(tenant.status),
        notice: (query.done.as_deref() == Some("offboarded")).then_some(
            "Tenant offboarded. Its credential is erased; a new invitation can connect it again.",
        ),
        history,
    })
}

async fn offboard(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    Path(id): Path<String>,
) -> Result<Redirect> {
    let id = parse_id(&id)?;
    tenants::offboard(&state.db, id, &Actor::Operator(operator.email)).await?;
    Ok(Redirect::to(&format!(
        "{}?done=offboarded",
        paths::with_id(paths::TENANT, id)
    )))
}
