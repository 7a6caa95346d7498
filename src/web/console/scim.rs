//! SCIM push connections (admins): add one, see each one's state, last push, capabilities,
//! errors in the SCIM server's words and its log; push or reconcile now, change, delete.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use uuid::Uuid;

use super::{Chrome, Section, When, parse_id};
use crate::audit::Actor;
use crate::customers;
use crate::scim::{self, Connection, ConnectionInput, Mapping, ScimError};
use crate::types::{ScimConnectionId, Secret};
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::{Error, Result};
use crate::web::paths;
use crate::web::session::AdminOperator;

/// Customers offered as a connection's scope.
const CUSTOMERS_SHOWN: i64 = 500;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(paths::SCIM, get(list).post(create))
        .route(paths::SCIM_CONNECTION, get(detail).post(update))
        .route(paths::SCIM_PUSH, post(push))
        .route(paths::SCIM_DELETE, post(delete))
}

/// The connection form as sent (and shown again on a refusal).
#[derive(Deserialize, Default)]
struct ConnectionForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    base_url: String,
    #[serde(default)]
    token: String,
    /// A customer's id, or empty for every customer.
    #[serde(default)]
    customer: String,
    /// `attribute = field`, one a line.
    #[serde(default)]
    mapping: String,
    /// Group object ids, one a line; empty: every user and group.
    #[serde(default)]
    scope_groups: String,
    #[serde(default)]
    enabled: Option<String>,
}

impl ConnectionForm {
    fn of(c: &Connection) -> Self {
        Self {
            name: c.name.clone(),
            base_url: c.base_url.clone(),
            token: String::new(),
            customer: c.customer_id.map(|id| id.to_string()).unwrap_or_default(),
            mapping: mapping_lines(&c.mapping),
            scope_groups: c.scope_groups.iter().map(|g| format!("{g}\n")).collect(),
            enabled: c.enabled.then(|| "on".into()),
        }
    }

    fn input(&self) -> std::result::Result<ConnectionInput, ScimError> {
        let customer_id = match self.customer.trim() {
            "" => None,
            id => Some(
                id.parse()
                    .map_err(|_| ScimError::Invalid("There is no such customer.".into()))?,
            ),
        };
        let mut mapping = std::collections::BTreeMap::new();
        for line in self
            .mapping
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            let (target, source) = line.split_once('=').ok_or_else(|| {
                ScimError::Invalid(format!(
                    "Write each mapping line as `attribute = field`; `{line}` is not."
                ))
            })?;
            mapping.insert(target.trim().to_owned(), source.trim().to_owned());
        }
        let scope_groups = self
            .scope_groups
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|g| !g.is_empty())
            .map(|g| {
                g.parse()
                    .map_err(|_| ScimError::Invalid(format!("`{g}` is not a group's object id.")))
            })
            .collect::<std::result::Result<Vec<Uuid>, ScimError>>()?;
        let token = self.token.trim();
        Ok(ConnectionInput {
            name: self.name.clone(),
            base_url: self.base_url.clone(),
            token: (!token.is_empty()).then(|| Secret::new(token)),
            customer_id,
            mapping: Some(mapping),
            scope_groups,
            enabled: self.enabled.is_some(),
        })
    }
}

fn mapping_lines(mapping: &Mapping) -> String {
    mapping
        .wire()
        .into_iter()
        .map(|(t, s)| format!("{t} = {s}\n"))
        .collect()
}

struct Row {
    name: String,
    href: String,
    base_url: String,
    scope: String,
    state: String,
    last_push: Option<When>,
}

#[derive(Template, WebTemplate)]
#[template(path = "scim/list.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<Row>,
    notice: Option<&'static str>,
    customers: Vec<(Uuid, String)>,
    form: ConnectionForm,
    error: Option<String>,
}

#[derive(Deserialize, Default)]
struct Done {
    done: Option<String>,
}

fn scope(c: &Connection) -> String {
    let tenants = c
        .customer_name
        .clone()
        .unwrap_or_else(|| "Every customer".into());
    match c.scope_groups.len() {
        0 => tenants,
        1 => format!("{tenants}, 1 group and its members"),
        n => format!("{tenants}, {n} groups and their members"),
    }
}

async fn customer_choices(state: &AppState) -> Result<Vec<(Uuid, String)>> {
    let (found, _) = customers::list(&state.db, None, CUSTOMERS_SHOWN, 0).await?;
    Ok(found
        .into_iter()
        .map(|l| (l.customer.id.into(), l.customer.name))
        .collect())
}

fn refused(e: ScimError) -> Error {
    match e {
        ScimError::NotFound => Error::NotFound,
        e => Error::Internal(e.into()),
    }
}

async fn list_page(state: &AppState, chrome: Chrome) -> Result<ListPage> {
    let rows = scim::list(&state.db)
        .await
        .map_err(refused)?
        .into_iter()
        .map(|c| Row {
            href: paths::scim_connection(c.id),
            scope: scope(&c),
            last_push: c.last_push_at.map(When::new),
            state: if c.enabled {
                c.state
            } else {
                "disabled".into()
            },
            name: c.name,
            base_url: c.base_url,
        })
        .collect();
    Ok(ListPage {
        chrome,
        rows,
        notice: None,
        customers: customer_choices(state).await?,
        form: ConnectionForm {
            mapping: mapping_lines(&Mapping::default()),
            enabled: Some("on".into()),
            ..ConnectionForm::default()
        },
        error: None,
    })
}

async fn list(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    CsrfToken(csrf): CsrfToken,
    Query(query): Query<Done>,
) -> Result<ListPage> {
    let chrome = Chrome::new(&state, &operator, csrf, Section::Scim);
    let mut page = list_page(&state, chrome).await?;
    if query.done.as_deref() == Some("deleted") {
        page.notice = Some("Connection deleted: nothing more is pushed to it.");
    }
    Ok(page)
}

async fn create(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    CsrfToken(csrf): CsrfToken,
    Form(form): Form<ConnectionForm>,
) -> Result<Response> {
    let actor = Actor::Operator(operator.email.clone());
    let result = match form.input() {
        Ok(input) => scim::create(&state.db, &state.cfg.keys, &input, &actor).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(c) => Ok(
            Redirect::to(&format!("{}?done=added", paths::scim_connection(c.id))).into_response(),
        ),
        Err(e @ (ScimError::Invalid(_) | ScimError::NameTaken(_))) => {
            let chrome = Chrome::new(&state, &operator, csrf, Section::Scim);
            let mut page = list_page(&state, chrome).await?;
            page.error = Some(e.to_string());
            page.form = ConnectionForm {
                token: String::new(),
                ..form
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(refused(e)),
    }
}

struct LogView {
    at: When,
    entry: String,
    summary: String,
    status: String,
    detail: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "scim/detail.html")]
struct DetailPage {
    chrome: Chrome,
    update_url: String,
    push_url: String,
    delete_url: String,
    name: String,
    base_url: String,
    scope: String,
    enabled: bool,
    state: String,
    capabilities: Option<String>,
    last_push: Option<When>,
    last_reconcile: Option<When>,
    last_error: Option<String>,
    created: When,
    created_by: String,
    log: Vec<LogView>,
    notice: Option<&'static str>,
    customers: Vec<(Uuid, String)>,
    form: ConnectionForm,
    error: Option<String>,
}

async fn detail_page(state: &AppState, chrome: Chrome, id: ScimConnectionId) -> Result<DetailPage> {
    let c = scim::get(&state.db, id).await.map_err(refused)?;
    let log = scim::log(&state.db, id, 100)
        .await
        .map_err(refused)?
        .into_iter()
        .map(|e| LogView {
            at: When::new(e.at),
            entry: e.entry,
            summary: e.summary,
            status: e.status.map_or_else(String::new, |s| s.to_string()),
            detail: e.detail.unwrap_or_default(),
        })
        .collect();
    let capabilities = c.capabilities.as_ref().map(|caps| {
        let yes = |b: bool| if b { "yes" } else { "no" };
        format!(
            "PATCH {} (updates are {}), filter {}, bulk {}",
            yes(caps.patch),
            if caps.patch { "PATCHes" } else { "PUTs" },
            yes(caps.filter),
            yes(caps.bulk)
        )
    });
    Ok(DetailPage {
        chrome,
        update_url: paths::scim_connection(id),
        push_url: paths::scim_push(id),
        delete_url: paths::scim_delete(id),
        scope: scope(&c),
        enabled: c.enabled,
        capabilities,
        last_push: c.last_push_at.map(When::new),
        last_reconcile: c.last_reconcile_at.map(When::new),
        created: When::new(c.created_at),
        created_by: super::actor_name(&c.created_by),
        form: ConnectionForm::of(&c),
        name: c.name,
        base_url: c.base_url,
        state: c.state,
        last_error: c.last_error,
        log,
        notice: None,
        customers: customer_choices(state).await?,
        error: None,
    })
}

async fn detail(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    CsrfToken(csrf): CsrfToken,
    Path(id): Path<String>,
    Query(query): Query<Done>,
) -> Result<DetailPage> {
    let chrome = Chrome::new(&state, &operator, csrf, Section::Scim);
    let mut page = detail_page(&state, chrome, parse_id(&id)?).await?;
    page.notice = match query.done.as_deref() {
        Some("added") => Some("Connection added: its first push (a full reconcile) starts now."),
        Some("changed") => Some("Connection changed: the next push writes everything again."),
        Some("push") => Some("Push requested: the log below shows it once done."),
        Some("reconcile") => Some("Full reconcile requested: the log below shows it once done."),
        _ => None,
    };
    Ok(page)
}

async fn update(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    CsrfToken(csrf): CsrfToken,
    Path(id): Path<String>,
    Form(form): Form<ConnectionForm>,
) -> Result<Response> {
    let id: ScimConnectionId = parse_id(&id)?;
    let actor = Actor::Operator(operator.email.clone());
    let result = match form.input() {
        Ok(input) => scim::update(&state.db, &state.cfg.keys, id, &input, &actor).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => Ok(
            Redirect::to(&format!("{}?done=changed", paths::scim_connection(id))).into_response(),
        ),
        Err(e @ (ScimError::Invalid(_) | ScimError::NameTaken(_))) => {
            let chrome = Chrome::new(&state, &operator, csrf, Section::Scim);
            let mut page = detail_page(&state, chrome, id).await?;
            page.error = Some(e.to_string());
            page.form = ConnectionForm {
                token: String::new(),
                ..form
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(refused(e)),
    }
}

#[derive(Deserialize)]
struct PushForm {
    #[serde(default)]
    reconcile: String,
}

async fn push(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    Path(id): Path<String>,
    Form(form): Form<PushForm>,
) -> Result<Redirect> {
    let id = parse_id(&id)?;
    let reconcile = form.reconcile == "true";
    scim::request_push(&state.db, id, reconcile, &Actor::Operator(operator.email))
        .await
        .map_err(refused)?;
    Ok(Redirect::to(&format!(
        "{}?done={}",
        paths::scim_connection(id),
        if reconcile { "reconcile" } else { "push" }
    )))
}

async fn delete(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    Path(id): Path<String>,
) -> Result<Redirect> {
    scim::delete(&state.db, parse_id(&id)?, &Actor::Operator(operator.email))
        .await
        .map_err(refused)?;
    Ok(Redirect::to(&format!("{}?done=deleted", paths::SCIM)))
}
