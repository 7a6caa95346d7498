//! The audit log: every operator action and consent outcome, newest first.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use serde::Deserialize;

use super::{Chrome, EventRow, Pager, Section, page_number, search_term};
use crate::audit;
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::Result;
use crate::web::paths;
use crate::web::session::CurrentOperator;

const PER_PAGE: i64 = 50;

pub(super) fn router() -> Router<AppState> {
    Router::new().route(paths::AUDIT, get(log))
}

#[derive(Deserialize, Default)]
struct LogQuery {
    q: Option<String>,
    page: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/audit.html")]
struct LogPage {
    chrome: Chrome,
    events: Vec<EventRow>,
    q: String,
    pager: Pager,
}

async fn log(
    State(state): State<AppState>,
    CurrentOperator(operator): CurrentOperator,
    CsrfToken(csrf): CsrfToken,
    Query(query): Query<LogQuery>,
) -> Result<LogPage> {
    let search = search_term(query.q.as_deref());
    let page = page_number(query.page.as_deref());
    let events = audit::page(
        &state.db,
        search.as_deref(),
        PER_PAGE,
        (page - 1) * PER_PAGE,
    )
    .await?;
    let total = audit::count(&state.db, search.as_deref()).await?;
    let q = search.unwrap_or_default();
    let pager = Pager::new(
        paths::AUDIT,
        &[("q", &q)],
        page,
        PER_PAGE,
        events.len(),
        total,
    );
    Ok(LogPage {
        chrome: Chrome::new(&state, &operator, csrf, Section::Audit),
        events: events.iter().map(EventRow::from).collect(),
        q,
        pager,
    })
}
