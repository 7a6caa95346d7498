//! A tenant's sync scope page: which of its users and groups the provider sees, changed by
//! admins (everyone, members of chosen groups — picked by searching the copy's groups — or
//! those assigned to the enterprise app).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;
use uuid::Uuid;

use super::super::{Chrome, Section, parse_id};
use super::Head;
use super::directory::load;
use crate::audit::Actor;
use crate::directory::scope::{self, Scope, ScopeError, ScopeGroup, ScopeKind};
use crate::operators::Operator;
use crate::types::TenantRecordId;
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::{Error, Result};
use crate::web::paths;
use crate::web::session::{AdminOperator, CurrentOperator};

/// Groups the picker offers for one search.
const PICKS: i64 = 20;

pub(super) fn router() -> Router<AppState> {
    Router::new().route(paths::TENANT_SCOPE, get(show).post(save))
}

#[derive(Template, WebTemplate)]
#[template(path = "console/tenant_scope.html")]
struct ScopePage {
    chrome: Chrome,
    head: Head,
    scope: Scope,
    /// The kind ticked: the saved one, or the one posted.
    kind: ScopeKind,
    /// The groups ticked, by name: the saved ones, or those posted.
    chosen: Vec<ScopeGroup>,
    /// The picker's search and what it found (those not ticked already).
    q: String,
    found: Vec<ScopeGroup>,
    notice: Option<&'static str>,
    error: Option<String>,
    form_url: String,
}

impl ScopePage {
    /// The kinds a form offers: (value, label, what it means).
    fn kinds(&self) -> Vec<(&'static str, &'static str, &'static str)> {
        ScopeKind::ALL
            .into_iter()
            .map(|k| {
                let text = match k {
                    ScopeKind::All => "every user and group of the directory",
                    ScopeKind::Groups => {
                        "the groups ticked below, their members and the members of groups nested in them, at any depth"
                    }
                    ScopeKind::AppAssignments => {
                        "those the customer's admin assigned to the enterprise app (Enterprise applications → Users and groups), and the members of assigned groups at any depth; read at each sync, which needs Application.Read.All"
                    }
                };
                (k.as_str(), k.label(), text)
            })
            .collect()
    }
}

#[derive(Deserialize, Default)]
struct ScopeQuery {
    q: Option<String>,
    done: Option<String>,
}

/// The page for `scope` as saved or posted (`kind`, `chosen`), with the picker's results.
async fn page(
    state: &AppState,
    operator: &Operator,
    csrf: String,
    id: TenantRecordId,
    posted: Option<(ScopeKind, Vec<Uuid>)>,
    q: Option<&str>,
) -> Result<ScopePage> {
    let (head, _) = load(state, id, "scope").await?;
    let scope = scope::get(&state.db, id.into())
        .await?
        .ok_or(Error::NotFound)?;
    let (kind, chosen) = match posted {
        Some((kind, ids)) => (kind, scope::named(&state.db, id.into(), &ids).await?),
        None => (scope.kind, scope.groups.clone()),
    };
    let q = q.map(str::trim).unwrap_or_default().to_owned();
    let found = if q.is_empty() {
        Vec::new()
    } else {
        scope::candidates(&state.db, id.into(), &q, PICKS)
            .await?
            .into_iter()
            .filter(|g| !chosen.iter().any(|c| c.object_id == g.object_id))
            .collect()
    };
    Ok(ScopePage {
        chrome: Chrome::new(state, operator, csrf, Section::Tenants),
        head,
        scope,
        kind,
        chosen,
        q,
        found,
        notice: None,
        error: None,
        form_url: paths::tenant_scope(id),
    })
}

async fn show(
    State(state): State<AppState>,
    CurrentOperator(operator): CurrentOperator,
    CsrfToken(csrf): CsrfToken,
    Path(id): Path<String>,
    Query(query): Query<ScopeQuery>,
) -> Result<ScopePage> {
    let id: TenantRecordId = parse_id(&id)?;
    let mut shown = page(&state, &operator, csrf, id, None, query.q.as_deref()).await?;
    shown.notice = (query.done.as_deref() == Some("saved")).then_some(
        "Sync scope changed. Users and groups that left it were reported deleted to the provider, those that entered it created.",
    );
    Ok(shown)
}

async fn save(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    CsrfToken(csrf): CsrfToken,
    Path(id): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response> {
    let id: TenantRecordId = parse_id(&id)?;
    let kind = fields
        .iter()
        .find(|(k, _)| k == "kind")
        .and_then(|(_, v)| ScopeKind::parse(v));
    // Ticked boxes repeat `groups`; one not an id cannot be in the copy.
    let groups: Vec<std::result::Result<Uuid, String>> = fields
        .iter()
        .filter(|(k, _)| k == "groups")
        .map(|(_, v)| v.trim().parse().map_err(|_| v.clone()))
        .collect();
    let ids: Vec<Uuid> = groups
        .iter()
        .filter_map(|g| g.as_ref().ok())
        .copied()
        .collect();
    let actor = Actor::Operator(operator.email.clone());
    let refusal = match (kind, groups.iter().find_map(|g| g.as_ref().err())) {
        (None, _) => "Choose who Gangway copies.".to_owned(),
        (Some(_), Some(bad)) => format!("“{bad}” is not a group's object id."),
        (Some(kind), None) => match scope::set(&state.db, id.into(), kind, &ids, &actor).await {
            Ok(_) => {
                let to = format!("{}?done=saved", paths::tenant_scope(id));
                return Ok(Redirect::to(&to).into_response());
            }
            Err(ScopeError::NoTenant) => return Err(Error::NotFound),
            Err(ScopeError::NoGroups) => {
                "Tick at least one group, or choose another scope.".to_owned()
            }
            Err(ScopeError::UnknownGroup(group)) => {
                format!("Group {group} is not in the tenant's directory copy.")
            }
            Err(ScopeError::Db(e)) => return Err(e.into()),
        },
    };
    let posted = (kind.unwrap_or(ScopeKind::All), ids);
    let mut shown = page(&state, &operator, csrf, id, Some(posted), None).await?;
    shown.error = Some(refusal);
    Ok((StatusCode::UNPROCESSABLE_ENTITY, shown).into_response())
}
