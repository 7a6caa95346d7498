//! Tenants: every customer directory that consented, and each one's detail and history.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Redirect;
use axum::routing::{get, post};
use serde::Deserialize;
use uuid::Uuid;

use super::{Chrome, EventRow, Pager, Section, When, page_number, parse_id, search_term};
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
struct Badge {
    class: &'static str,
    label: &'static str,
}

impl Badge {
    fn new(status: TenantStatus) -> Self {
        Self {
            class: status.as_str(),
            label: status.label(),
        }
    }
}

#[derive(Deserialize, Default)]
struct ListQuery {
    q: Option<String>,
    page: Option<String>,
}

struct Row {
    url: String,
    name: String,
    entra_id: String,
    domains: String,
    mode: &'static str,
    badge: Badge,
    consented_by: String,
    consented: When,
}

impl From<&Tenant> for Row {
    fn from(t: &Tenant) -> Self {
        Self {
            url: paths::with_id(paths::TENANT, t.id),
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
}

async fn list(
    State(state): State<AppState>,
    CurrentOperator(operator): CurrentOperator,
    CsrfToken(csrf): CsrfToken,
    Query(query): Query<ListQuery>,
) -> Result<ListPage> {
    let search = search_term(query.q.as_deref());
    let page = page_number(query.page.as_deref());
    let (found, total) = tenants::list(
        &state.db,
        search.as_deref(),
        PER_PAGE,
        (page - 1) * PER_PAGE,
    )
    .await?;
    let q = search.unwrap_or_default();
    let pager = Pager::new(
        paths::TENANTS,
        &[("q", &q)],
        page,
        PER_PAGE,
        found.len(),
        total,
    );
    Ok(ListPage {
        chrome: Chrome::new(&state, &operator, csrf, Section::Tenants),
        rows: found.iter().map(Row::from).collect(),
        q,
        pager,
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "console/tenant.html")]
struct DetailPage {
    chrome: Chrome,
    id: Uuid,
    name: String,
    entra_id: String,
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
    tenants::offboard(&state.db, id, &Actor::Operator(operator.email))
        .await
        .map_err(|e| match e {
            tenants::OffboardError::NotFound => Error::NotFound,
            tenants::OffboardError::AlreadyOffboarded => Error::BadRequest(e.to_string()),
            tenants::OffboardError::Db(e) => e.into(),
        })?;
    Ok(Redirect::to(&format!(
        "{}?done=offboarded",
        paths::with_id(paths::TENANT, id)
    )))
}
