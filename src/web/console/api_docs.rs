//! The JSON API in words, for people: every route of the OpenAPI document the API serves, with
//! the token it needs and what it does.

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::State;
use axum::routing::get;

use super::{Chrome, Section};
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::Result;
use crate::web::paths;
use crate::web::session::CurrentOperator;

pub(super) fn router() -> Router<AppState> {
    Router::new().route(paths::API_DOCS, get(show))
}

/// One route.
struct Route {
    method: &'static str,
    path: String,
    scope: &'static str,
    summary: String,
    details: String,
}

/// Routes under one tag.
struct Group {
    name: String,
    routes: Vec<Route>,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/api_docs.html")]
struct DocsPage {
    chrome: Chrome,
    intro: String,
    groups: Vec<Group>,
    openapi: &'static str,
}

async fn show(
    State(state): State<AppState>,
    CurrentOperator(operator): CurrentOperator,
    CsrfToken(csrf): CsrfToken,
) -> Result<DocsPage> {
    let doc = crate::web::api::document();
    let mut groups: Vec<Group> = Vec::new();
    for (path, item) in &doc.paths.paths {
        let operations = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("DELETE", &item.delete),
        ];
        for (method, op) in operations {
            let Some(op) = op else { continue };
            let tag = op
                .tags
                .as_ref()
                .and_then(|t| t.first())
                .cloned()
                .unwrap_or_else(|| "other".into());
            let text = op.description.clone().unwrap_or_default();
            let (summary, details) = match (&op.summary, text.split_once('\n')) {
                (Some(summary), _) => (summary.clone(), text),
                (None, Some((first, rest))) => (first.to_owned(), rest.trim().to_owned()),
                (None, None) => (text, String::new()),
            };
            let route = Route {
                method,
                path: path.clone(),
                scope: if method == "GET" { "read" } else { "write" },
                summary,
                details,
            };
            match groups.iter_mut().find(|g| g.name == tag) {
                Some(group) => group.routes.push(route),
                None => groups.push(Group {
                    name: tag,
                    routes: vec![route],
                }),
            }
        }
    }
    Ok(DocsPage {
        chrome: Chrome::new(&state, &operator, csrf, Section::Api),
        intro: doc.info.description.unwrap_or_default(),
        groups,
        openapi: paths::API_OPENAPI,
    })
}
