//! The audit log: every operator action and consent outcome, newest first.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::State;
use axum::routing::get;

use super::list::{Empty, ListPage, ListQuery};
use super::{Chrome, EventRow, Section};
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

#[derive(Template, WebTemplate)]
#[template(path = "console/audit.html")]
struct LogPage {
    chrome: Chrome,
    list: ListPage<EventRow>,
}

async fn log(
    State(state): State<AppState>,
    CurrentOperator(operator): CurrentOperator,
    CsrfToken(csrf): CsrfToken,
    query: ListQuery<()>,
) -> Result<LogPage> {
    let search = query.q.as_deref();
    let events = audit::page(&state.db, search, PER_PAGE, query.offset(PER_PAGE)).await?;
    let total = audit::count(&state.db, search).await?;
    let rows = events.iter().map(EventRow::from).collect();
    let list = ListPage::new(
        query,
        paths::AUDIT,
        PER_PAGE,
        rows,
        total,
        "events",
        Empty::first_run(
            "Nothing recorded yet",
            "Sign-ins, invitations and consents appear here as they happen.",
            None,
        ),
    );
    Ok(LogPage {
        chrome: Chrome::new(&state, &operator, csrf, Section::Audit),
        list,
    })
}
