//! Webhook endpoints (admins): add one (its secret shown once), rotate the secret (the old one
//! keeps signing for a day), send a test event, enable or disable, delete, and each endpoint's
//! delivery log with what was sent and answered, where an event can be sent again.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use tower_sessions::Session;

use super::reveal::{self, Reveal};
use super::{Chrome, Section, When, parse_id};
use crate::audit::Actor;
use crate::types::{Secret, WebhookId};
use crate::web::AppState;
use crate::web::csrf::CsrfToken;
use crate::web::error::{Error, Result};
use crate::web::paths;
use crate::web::session::AdminOperator;
use crate::webhooks::{self, WebhookError};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(paths::WEBHOOKS, get(list).post(create))
        .route(paths::WEBHOOK, get(detail))
        .route(paths::WEBHOOK_ROTATE, post(rotate))
        .route(paths::WEBHOOK_TEST, post(test))
        .route(paths::WEBHOOK_ENABLED, post(enabled))
        .route(paths::WEBHOOK_DELETE, post(delete))
        .route(paths::WEBHOOK_SEND_AGAIN, post(send_again))
}

struct Row {
    url: String,
    description: String,
    events: String,
    enabled: bool,
    href: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/webhooks.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<Row>,
    notice: Option<&'static str>,
    event_types: &'static [webhooks::EventType],
    /// What the form was sent with, kept on a refusal.
    url: String,
    description: String,
    chosen: Vec<String>,
    error: Option<String>,
}

#[derive(Deserialize, Default)]
struct Done {
    done: Option<String>,
}

async fn list_page(state: &AppState, chrome: Chrome) -> Result<ListPage> {
    let rows = webhooks::list(&state.db)
        .await?
        .into_iter()
        .map(|e| Row {
            href: paths::webhook(e.id),
            events: e.events.join(", "),
            url: e.url,
            description: e.description,
            enabled: e.enabled,
        })
        .collect();
    Ok(ListPage {
        chrome,
        rows,
        notice: None,
        event_types: webhooks::EventType::SUBSCRIBABLE,
        url: String::new(),
        description: String::new(),
        // A new endpoint gets every event unless narrowed: an empty choice is refused anyway.
        chosen: vec!["*".into()],
        error: None,
    })
}

async fn list(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    CsrfToken(csrf): CsrfToken,
    Query(query): Query<Done>,
) -> Result<ListPage> {
    let chrome = Chrome::new(&state, &operator, csrf, Section::Webhooks);
    let mut page = list_page(&state, chrome).await?;
    if query.done.as_deref() == Some("deleted") {
        page.notice = Some("Endpoint deleted: nothing more is sent to it.");
    }
    Ok(page)
}

/// The form, read as pairs: `events` repeats once per ticked box.
async fn create(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    CsrfToken(csrf): CsrfToken,
    session: Session,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response> {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (url, description) = (field("url"), field("description"));
    let chosen: Vec<String> = fields
        .iter()
        .filter(|(k, _)| k == "events")
        .map(|(_, v)| v.clone())
        .collect();
    let actor = Actor::Operator(operator.email.clone());
    let result = webhooks::create(
        &state.db,
        &state.cfg.keys,
        &url,
        &description,
        &chosen,
        &actor,
    )
    .await;
    match result {
        Ok((endpoint, secret)) => Ok(reveal_secret(&session, endpoint.id, &secret, "added")
            .await?
            .into_response()),
        Err(WebhookError::Invalid(message)) => {
            let chrome = Chrome::new(&state, &operator, csrf, Section::Webhooks);
            let mut page = list_page(&state, chrome).await?;
            page.error = Some(message);
            page.url = url;
            page.description = description;
            page.chosen = chosen;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(Error::Internal(e.into())),
    }
}

struct DeliveryView {
    id: String,
    /// The `webhook-id` receivers see, shared by the event's deliveries.
    message_id: String,
    /// The body sent, indented.
    request: String,
    /// The start of the last answer's body, if one came.
    response: Option<String>,
    /// Whether it can be sent again: not once its data was erased.
    resendable: bool,
    event_type: String,
    created: When,
    attempts: i32,
    state: &'static str,
    status: String,
    duration: String,
    next: Option<When>,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/webhook.html")]
struct DetailPage {
    chrome: Chrome,
    rotate_url: String,
    test_url: String,
    send_again_url: String,
    enabled_url: String,
    delete_url: String,
    url: String,
    description: String,
    events: String,
    enabled: bool,
    overlap_until: Option<When>,
    created: When,
    created_by: String,
    /// A secret just made (creation or rotation): shown this once.
    secret: Option<String>,
    notice: Option<&'static str>,
    deliveries: Vec<DeliveryView>,
}

async fn detail_page(state: &AppState, chrome: Chrome, id: WebhookId) -> Result<DetailPage> {
    let endpoint = match webhooks::get(&state.db, id).await {
        Ok(e) => e,
        Err(WebhookError::NotFound) => return Err(Error::NotFound),
        Err(e) => return Err(Error::Internal(e.into())),
    };
    let now = time::OffsetDateTime::now_utc();
    let deliveries = webhooks::deliveries(&state.db, id, 100)
        .await?
        .into_iter()
        .map(|d| DeliveryView {
            id: d.id.to_string(),
            message_id: webhooks::delivery::message_id(d.event_id),
            request: serde_json::to_string_pretty(&d.payload).unwrap_or_default(),
            response: d.response_body,
            resendable: d.payload["data"].get("erased").is_none(),
            state: if d.delivered_at.is_some() {
                "delivered"
            } else if d.failed_at.is_some() {
                "failed"
            } else if d.attempts == 0 {
                "queued"
            } else {
                "retrying"
            },
            next: (d.delivered_at.is_none() && d.failed_at.is_none())
                .then(|| When::new(d.next_attempt_at)),
            status: match (d.last_status, &d.last_error) {
                (Some(s), _) => s.to_string(),
                (None, Some(e)) => e.clone(),
                (None, None) => "—".into(),
            },
            duration: d
                .last_duration_ms
                .map_or_else(|| "—".into(), |ms| format!("{ms} ms")),
            event_type: d.event_type,
            created: When::new(d.created_at),
            attempts: d.attempts,
        })
        .collect();
    Ok(DetailPage {
        chrome,
        rotate_url: paths::webhook_rotate(endpoint.id),
        test_url: paths::webhook_test(endpoint.id),
        send_again_url: paths::webhook_send_again(endpoint.id),
        enabled_url: paths::webhook_enabled(endpoint.id),
        delete_url: paths::webhook_delete(endpoint.id),
        events: endpoint.events.join(", "),
        enabled: endpoint.enabled,
        overlap_until: endpoint
            .previous_secret_until
            .filter(|u| *u > now)
            .map(When::new),
        created: When::new(endpoint.created_at),
        created_by: super::actor_name(&endpoint.created_by),
        url: endpoint.url,
        description: endpoint.description,
        secret: None,
        notice: None,
        deliveries,
    })
}

async fn detail(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    CsrfToken(csrf): CsrfToken,
    session: Session,
    Path(id): Path<String>,
    Query(query): Query<Done>,
) -> Result<DetailPage> {
    let id = parse_id(&id)?;
    let chrome = Chrome::new(&state, &operator, csrf, Section::Webhooks);
    let mut page = detail_page(&state, chrome, id).await?;
    page.secret = reveal::take(&session, |r| match r {
        Reveal::WebhookSecret { endpoint, secret } if endpoint == id => Some(secret),
        _ => None,
    })
    .await?;
    page.notice = match query.done.as_deref() {
        Some("added") => Some("Endpoint added."),
        Some("rotated") => {
            Some("Secret rotated: the old one keeps signing beside the new one for 24 hours.")
        }
        Some("test") => Some("Test event queued: it appears below once sent."),
        Some("again") => Some(
            "Event queued again with the same webhook-id, so a receiver that has it can drop it.",
        ),
        Some("enabled") => Some("Endpoint enabled."),
        Some("disabled") => Some("Endpoint disabled: no events are written for it."),
        _ => None,
    };
    Ok(page)
}

fn refused(e: WebhookError) -> Error {
    match e {
        WebhookError::NotFound => Error::NotFound,
        e => Error::Internal(e.into()),
    }
}

/// Keeps a new secret for the endpoint's page, shown there once, and redirects to it.
async fn reveal_secret(
    session: &Session,
    id: WebhookId,
    secret: &Secret,
    done: &str,
) -> Result<Redirect> {
    let secret = secret.expose().to_owned();
    reveal::keep(
        session,
        Reveal::WebhookSecret {
            endpoint: id,
            secret,
        },
    )
    .await?;
    Ok(Redirect::to(&format!("{}?done={done}", paths::webhook(id))))
}

async fn rotate(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    session: Session,
    Path(id): Path<String>,
) -> Result<Redirect> {
    let id = parse_id(&id)?;
    let actor = Actor::Operator(operator.email);
    let secret = webhooks::rotate_secret(&state.db, &state.cfg.keys, id, &actor)
        .await
        .map_err(refused)?;
    reveal_secret(&session, id, &secret, "rotated").await
}

async fn test(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    Path(id): Path<String>,
) -> Result<Redirect> {
    let id = parse_id(&id)?;
    webhooks::send_test(&state.db, id, &Actor::Operator(operator.email))
        .await
        .map_err(refused)?;
    Ok(Redirect::to(&format!("{}?done=test", paths::webhook(id))))
}

#[derive(Deserialize)]
struct SendAgain {
    #[serde(default)]
    delivery: String,
}

async fn send_again(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    Path(id): Path<String>,
    Form(form): Form<SendAgain>,
) -> Result<Redirect> {
    let id = parse_id(&id)?;
    let delivery = parse_id(&form.delivery)?;
    webhooks::send_again(&state.db, id, delivery, &Actor::Operator(operator.email))
        .await
        .map_err(refused)?;
    Ok(Redirect::to(&format!("{}?done=again", paths::webhook(id))))
}

#[derive(Deserialize)]
struct Enabled {
    #[serde(default)]
    enabled: String,
}

async fn enabled(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    Path(id): Path<String>,
    Form(form): Form<Enabled>,
) -> Result<Redirect> {
    let id = parse_id(&id)?;
    let on = form.enabled == "true";
    webhooks::set_enabled(&state.db, id, on, &Actor::Operator(operator.email))
        .await
        .map_err(refused)?;
    Ok(Redirect::to(&format!(
        "{}?done={}",
        paths::webhook(id),
        if on { "enabled" } else { "disabled" }
    )))
}

async fn delete(
    State(state): State<AppState>,
    AdminOperator(operator): AdminOperator,
    Path(id): Path<String>,
) -> Result<Redirect> {
    webhooks::delete(&state.db, parse_id(&id)?, &Actor::Operator(operator.email))
        .await
        .map_err(refused)?;
    Ok(Redirect::to(&format!("{}?done=deleted", paths::WEBHOOKS)))
}
