//! Change notifications on `users` and `groups`: `/v1.0/subscriptions` (create with the
//! validation request, list, get, renew, delete, reauthorize), the deliveries a directory
//! change causes, the `reauthorizationRequired` lifecycle notification and expiry.
//!
//! A notifier task looks at every subscribed tenant's change version every 100 ms and POSTs
//! one notification per changed object (in batches) to the subscription's `notificationUrl`,
//! so every change path (admin API, faults, seeding) notifies without hooks of its own.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing::get, routing::post};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use url::Url;
use uuid::Uuid;

use super::errors::GraphError;
use super::{caller, require};
use crate::directory::{Life, Tenant};
use crate::state::AppState;

/// "Maximum length of subscription per resource type": users and groups, 41,760 minutes.
pub const MAX_MINUTES: i64 = 41_760;
/// "Any value under 45 minutes after the time of the request is automatically set to 45
/// minutes after the request time."
const MIN_MINUTES: i64 = 45;
/// Subscriptions per app and tenant (the emulator's tokens do not name their app, so it counts
/// per tenant).
pub const QUOTA_PER_TENANT: usize = 100;
/// The notification endpoint must answer the validation request within 10 seconds.
const VALIDATION_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a delivery may take before it counts as failed (Graph wants an answer in 3 s).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(3);
/// Notifications per POST; Graph batches them in `value` without saying how many.
const BATCH: usize = 100;
/// How often the notifier looks for changes.
const TICK: Duration = Duration::from_millis(100);

/// What a subscription watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// `/users`.
    Users,
    /// `/groups`.
    Groups,
}

impl Resource {
    fn parse(s: &str) -> Option<Self> {
        match s.trim_start_matches('/').to_ascii_lowercase().as_str() {
            "users" => Some(Self::Users),
            "groups" => Some(Self::Groups),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Users => "users",
            Self::Groups => "groups",
        }
    }

    /// The resource path a notification names (`Users/{id}`), and its `@odata.type`.
    fn of(self, id: Uuid) -> (String, &'static str) {
        match self {
            Self::Users => (format!("Users/{id}"), "#Microsoft.Graph.User"),
            Self::Groups => (format!("Groups/{id}"), "#Microsoft.Graph.Group"),
        }
    }
}

/// One subscription.
#[derive(Clone, Debug)]
pub struct Subscription {
    id: Uuid,
    tenant: Uuid,
    resource: Resource,
    change_type: String,
    notification_url: Url,
    lifecycle_url: Option<Url>,
    client_state: Option<String>,
    expires: OffsetDateTime,
    /// The tenant's change version already notified.
    seen: u64,
    /// A `reauthorizationRequired` was sent and neither a reauthorize nor a renewal followed:
    /// change notifications wait.
    reauthorize: bool,
}

impl Subscription {
    fn to_json(&self) -> Value {
        json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity",
            "id": self.id,
            "resource": self.resource.name(),
            "applicationId": Value::Null,
            "changeType": self.change_type,
            "clientState": self.client_state,
            "notificationUrl": self.notification_url.as_str(),
            "lifecycleNotificationUrl": self.lifecycle_url.as_ref().map(Url::as_str),
            "expirationDateTime": rfc3339(self.expires),
            "latestSupportedTlsVersion": "v1_2",
            "includeResourceData": false,
        })
    }

    fn wants(&self, change: &str) -> bool {
        self.change_type.split(',').any(|c| c.trim() == change)
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Every subscription, and how the emulator reaches notification URLs.
pub struct Subscriptions {
    all: Mutex<HashMap<Uuid, Subscription>>,
    http: reqwest::Client,
    /// Accept `http://` notification URLs (tests and demos on loopback); Graph requires HTTPS.
    allow_http: bool,
}

impl Subscriptions {
    /// None yet; `allow_http` lets notification URLs be plain HTTP.
    pub fn new(allow_http: bool) -> Self {
        Self {
            all: Mutex::default(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a plain HTTP client builds"),
            allow_http,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, Subscription>> {
        self.all.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets expired subscriptions, as Graph deletes them.
    fn sweep(&self) {
        let now = OffsetDateTime::now_utc();
        self.lock().retain(|_, s| s.expires > now);
    }
}

/// The Graph routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1.0/subscriptions", get(list).post(create))
        .route(
            "/v1.0/subscriptions/{id}",
            get(get_one).patch(renew).delete(remove),
        )
        .route("/v1.0/subscriptions/{id}/reauthorize", post(reauthorize))
}

/// The admin routes: list every subscription, expire or remove one, send a lifecycle event.
pub fn admin_router() -> Router<AppState> {
    Router::new()
        .route("/_emulator/subscriptions", get(admin_list))
        .route(
            "/_emulator/subscriptions/{id}",
            axum::routing::delete(admin_remove),
        )
        .route("/_emulator/subscriptions/{id}/expire", post(admin_expire))
        .route(
            "/_emulator/subscriptions/{id}/lifecycle",
            post(admin_lifecycle),
        )
}

fn answer(result: Result<Response, GraphError>) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

fn bad(message: impl Into<String>) -> GraphError {
    GraphError::new(StatusCode::BAD_REQUEST, "InvalidRequest", message)
}

/// The permission a subscription on `resource` needs (least privileged, app or delegated).
fn permitted(access: &crate::state::Access, resource: Resource) -> Result<(), GraphError> {
    match resource {
        Resource::Users => require(
            access,
            &["User.Read.All", "User.ReadWrite.All", "Directory.Read.All"],
            &["User.Read.All", "User.ReadWrite.All", "Directory.Read.All"],
        ),
        Resource::Groups => require(
            access,
            &[
                "Group.Read.All",
                "Group.ReadWrite.All",
                "Directory.Read.All",
            ],
            &[
                "Group.Read.All",
                "Group.ReadWrite.All",
                "Directory.Read.All",
            ],
        ),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewSubscription {
    change_type: Option<String>,
    notification_url: Option<String>,
    lifecycle_notification_url: Option<String>,
    resource: Option<String>,
    expiration_date_time: Option<String>,
    client_state: Option<String>,
}

/// The expiry asked for, within 45 minutes and 41,760 minutes from now.
fn expiry(asked: Option<&str>) -> Result<OffsetDateTime, GraphError> {
    let asked = asked.ok_or_else(|| bad("expirationDateTime is required."))?;
    let at = OffsetDateTime::parse(asked, &Rfc3339)
        .map_err(|_| bad("expirationDateTime is not a valid date and time."))?;
    let now = OffsetDateTime::now_utc();
    if at <= now {
        return Err(bad("Subscription expiration can only be in the future."));
    }
    if at > now + time::Duration::minutes(MAX_MINUTES) {
        return Err(bad(format!(
            "Subscription expiration can only be {MAX_MINUTES} minutes in the future."
        )));
    }
    Ok(at.max(now + time::Duration::minutes(MIN_MINUTES)))
}

impl Subscriptions {
    fn endpoint(&self, raw: &str, what: &str) -> Result<Url, GraphError> {
        let url = Url::parse(raw).map_err(|_| bad(format!("{what} is not a valid URL.")))?;
        match url.scheme() {
            "https" => Ok(url),
            "http" if self.allow_http => Ok(url),
            _ => Err(bad(format!("{what} must use https."))),
        }
    }

    /// The validation request: POST `url?validationToken=…` (text/plain); the endpoint must
    /// answer 200 with the decoded token within 10 seconds.
    async fn validate(&self, url: &Url) -> Result<(), GraphError> {
        let token = format!(
            "Validation: Testing client application reachability for subscription Request-Id: {}",
            Uuid::new_v4()
        );
        let mut target = url.clone();
        target
            .query_pairs_mut()
            .append_pair("validationToken", &token);
        let failed = || {
            bad(
                "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.",
            )
        };
        let resp = self
            .http
            .post(target)
            .header("content-type", "text/plain; charset=utf-8")
            .timeout(VALIDATION_TIMEOUT)
            .send()
            .await
            .map_err(|_| failed())?;
        let plain = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/plain"));
        if resp.status() != StatusCode::OK || !plain {
            return Err(failed());
        }
        let body = resp.text().await.map_err(|_| failed())?;
        if body != token {
            return Err(failed());
        }
        Ok(())
    }
}

async fn create(
    State(st): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<NewSubscription>,
) -> Response {
    answer(create_checked(&st, &headers, body).await)
}

async fn create_checked(
    st: &AppState,
    headers: &HeaderMap,
    body: NewSubscription,
) -> Result<Response, GraphError> {
    let access = caller(st, headers)?;
    let resource = body
        .resource
        .as_deref()
        .and_then(Resource::parse)
        .ok_or_else(|| bad("Resource not supported: the emulator notifies on users and groups."))?;
    permitted(&access, resource)?;
    let change_type = body
        .change_type
        .ok_or_else(|| bad("changeType is required."))?;
    if change_type
        .split(',')
        .any(|c| !matches!(c.trim(), "created" | "updated" | "deleted"))
    {
        return Err(bad("changeType must be created, updated or deleted."));
    }
    let subs = &st.subscriptions;
    let notification_url = subs.endpoint(
        body.notification_url.as_deref().unwrap_or_default(),
        "notificationUrl",
    )?;
    let lifecycle_url = body
        .lifecycle_notification_url
        .as_deref()
        .map(|u| subs.endpoint(u, "lifecycleNotificationUrl"))
        .transpose()?;
    if body.client_state.as_ref().is_some_and(|c| c.len() > 128) {
        return Err(bad("clientState can be at most 128 characters."));
    }
    let expires = expiry(body.expiration_date_time.as_deref())?;
    subs.sweep();
    if subs
        .lock()
        .values()
        .filter(|s| s.tenant == access.tid)
        .count()
        >= QUOTA_PER_TENANT
    {
        return Err(GraphError::new(
            StatusCode::FORBIDDEN,
            "ExtensionError",
            "Operation: Create; Exception: [Status Code: Forbidden; Reason: The maximum number of subscriptions for this tenant has been reached.]",
        ));
    }
    subs.validate(&notification_url).await?;
    if let Some(url) = &lifecycle_url {
        subs.validate(url).await?;
    }
    // Notifications start with the changes made from now on.
    let seen = {
        let w = st.world();
        w.dir
            .tenant_index(access.tid)
            .map_or(0, |t| w.dir.tenants[t].version)
    };
    let sub = Subscription {
        id: Uuid::new_v4(),
        tenant: access.tid,
        resource,
        change_type,
        notification_url,
        lifecycle_url,
        client_state: body.client_state,
        expires,
        seen,
        reauthorize: false,
    };
    let out = sub.to_json();
    subs.lock().insert(sub.id, sub);
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// The caller's subscription `id`, or 404.
fn owned(st: &AppState, headers: &HeaderMap, id: &str) -> Result<Uuid, GraphError> {
    let access = caller(st, headers)?;
    st.subscriptions.sweep();
    Uuid::parse_str(id)
        .ok()
        .filter(|id| {
            st.subscriptions
                .lock()
                .get(id)
                .is_some_and(|s| s.tenant == access.tid)
        })
        .ok_or_else(|| GraphError::not_found(id))
}

async fn list(State(st): State<AppState>, headers: HeaderMap) -> Response {
    answer((|| {
        let access = caller(&st, &headers)?;
        st.subscriptions.sweep();
        let value: Vec<Value> = st
            .subscriptions
            .lock()
            .values()
            .filter(|s| s.tenant == access.tid)
            .map(Subscription::to_json)
            .collect();
        Ok(Json(json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions",
            "value": value,
        }))
        .into_response())
    })())
}

async fn get_one(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    answer(owned(&st, &headers, &id).map(|id| {
        let sub = st.subscriptions.lock().get(&id).map(Subscription::to_json);
        Json(sub.unwrap_or(Value::Null)).into_response()
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Renewal {
    expiration_date_time: Option<String>,
    notification_url: Option<String>,
}

async fn renew(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<Renewal>,
) -> Response {
    answer(
        async {
            let id = owned(&st, &headers, &id)?;
            let expires = expiry(body.expiration_date_time.as_deref())?;
            let url = match body.notification_url.as_deref() {
                Some(raw) => {
                    let url = st.subscriptions.endpoint(raw, "notificationUrl")?;
                    st.subscriptions.validate(&url).await?;
                    Some(url)
                }
                None => None,
            };
            let mut all = st.subscriptions.lock();
            let sub = all
                .get_mut(&id)
                .ok_or_else(|| GraphError::not_found(&id.to_string()))?;
            sub.expires = expires;
            sub.reauthorize = false;
            if let Some(url) = url {
                sub.notification_url = url;
            }
            Ok(Json(sub.to_json()).into_response())
        }
        .await,
    )
}

async fn remove(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    answer(owned(&st, &headers, &id).map(|id| {
        st.subscriptions.lock().remove(&id);
        StatusCode::NO_CONTENT.into_response()
    }))
}

async fn reauthorize(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    answer(owned(&st, &headers, &id).and_then(|id| {
        let access = caller(&st, &headers)?;
        let mut all = st.subscriptions.lock();
        let sub = all
            .get_mut(&id)
            .ok_or_else(|| GraphError::not_found(&id.to_string()))?;
        permitted(&access, sub.resource)?;
        sub.reauthorize = false;
        Ok(StatusCode::NO_CONTENT.into_response())
    }))
}

async fn admin_list(State(st): State<AppState>) -> Json<Value> {
    st.subscriptions.sweep();
    let value: Vec<Value> = st
        .subscriptions
        .lock()
        .values()
        .map(|s| {
            let mut v = s.to_json();
            v["tenantId"] = json!(s.tenant);
            v["reauthorizationRequired"] = json!(s.reauthorize);
            v
        })
        .collect();
    Json(json!({ "value": value }))
}

fn admin_id(id: &str) -> Result<Uuid, (StatusCode, String)> {
    Uuid::parse_str(id).map_err(|_| (StatusCode::NOT_FOUND, "no such subscription".into()))
}

/// Removes a subscription without telling anyone, as Microsoft may.
async fn admin_remove(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, (StatusCode, String)> {
    let id = admin_id(&id)?;
    match st.subscriptions.lock().remove(&id) {
        Some(_) => Ok(StatusCode::NO_CONTENT),
        None => Err((StatusCode::NOT_FOUND, "no such subscription".into())),
    }
}

/// Lets a subscription expire now.
async fn admin_expire(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, (StatusCode, String)> {
    let id = admin_id(&id)?;
    match st.subscriptions.lock().get_mut(&id) {
        Some(sub) => {
            sub.expires = OffsetDateTime::now_utc();
            Ok(StatusCode::NO_CONTENT)
        }
        None => Err((StatusCode::NOT_FOUND, "no such subscription".into())),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LifecycleBody {
    lifecycle_event: String,
}

/// Sends a lifecycle notification to the subscription's `lifecycleNotificationUrl`. Only
/// `reauthorizationRequired` is sent for directory resources; change notifications wait until
/// the subscription is reauthorized or renewed.
async fn admin_lifecycle(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<LifecycleBody>,
) -> Result<StatusCode, (StatusCode, String)> {
    let id = admin_id(&id)?;
    if body.lifecycle_event != "reauthorizationRequired" {
        return Err((
            StatusCode::BAD_REQUEST,
            "users and groups subscriptions only get reauthorizationRequired".into(),
        ));
    }
    let (url, payload) = {
        let mut all = st.subscriptions.lock();
        let sub = all
            .get_mut(&id)
            .ok_or((StatusCode::NOT_FOUND, "no such subscription".to_owned()))?;
        let url = sub.lifecycle_url.clone().ok_or((
            StatusCode::CONFLICT,
            "the subscription has no lifecycleNotificationUrl".to_owned(),
        ))?;
        sub.reauthorize = true;
        let payload = json!({ "value": [{
            "subscriptionId": sub.id,
            "subscriptionExpirationDateTime": rfc3339(sub.expires),
            "tenantId": sub.tenant,
            "clientState": sub.client_state,
            "lifecycleEvent": "reauthorizationRequired",
        }]});
        (url, payload)
    };
    st.subscriptions.deliver(&url, &payload).await;
    Ok(StatusCode::ACCEPTED)
}

impl Subscriptions {
    /// POSTs one batch; a failure is logged (Graph retries for up to four hours and then drops
    /// it; the emulator drops it at once).
    async fn deliver(&self, url: &Url, payload: &Value) {
        let sent = self
            .http
            .post(url.clone())
            .json(payload)
            .timeout(DELIVERY_TIMEOUT)
            .send()
            .await;
        match sent {
            Ok(resp) if resp.status().is_success() => {}
            Ok(resp) => tracing::warn!(
                status = resp.status().as_u16(),
                "a notification was refused"
            ),
            Err(e) => {
                tracing::warn!(error = %e.without_url(), "a notification could not be delivered")
            }
        }
    }
}

/// The change type a changed object notifies with: `updated` when created, changed,
/// soft-deleted or restored; `deleted` when deleted for good.
fn change_of(life: Life) -> &'static str {
    match life {
        Life::HardDeleted => "deleted",
        Life::Active | Life::SoftDeleted => "updated",
    }
}

/// The objects of `resource` changed in `tenant` after version `since`.
fn changed(tenant: &Tenant, resource: Resource, since: u64) -> Vec<(Uuid, &'static str)> {
    match resource {
        Resource::Users => tenant
            .users
            .iter()
            .filter(|u| u.version > since)
            .map(|u| (u.id, change_of(u.life)))
            .collect(),
        Resource::Groups => tenant
            .groups
            .iter()
            .filter(|g| g.version > since)
            .map(|g| (g.id, change_of(g.life)))
            .collect(),
    }
}

/// What one look at the directory found to deliver: (url, payload) batches.
fn due(st: &AppState) -> Vec<(Url, Value)> {
    st.subscriptions.sweep();
    let w = st.world();
    let mut all = st.subscriptions.lock();
    let mut out = Vec::new();
    for sub in all.values_mut() {
        let Some(t) = w.dir.tenant_index(sub.tenant) else {
            continue;
        };
        let tenant = &w.dir.tenants[t];
        if tenant.version <= sub.seen || sub.reauthorize {
            continue;
        }
        let notes: Vec<Value> = changed(tenant, sub.resource, sub.seen)
            .into_iter()
            .filter(|(_, change)| sub.wants(change))
            .map(|(id, change)| {
                let (resource, kind) = sub.resource.of(id);
                json!({
                    "id": Uuid::new_v4(),
                    "subscriptionId": sub.id,
                    "subscriptionExpirationDateTime": rfc3339(sub.expires),
                    "clientState": sub.client_state,
                    "changeType": change,
                    "resource": resource,
                    "tenantId": sub.tenant,
                    "resourceData": {
                        "@odata.type": kind,
                        "@odata.id": resource,
                        "id": id,
                        "organizationId": sub.tenant,
                    },
                })
            })
            .collect();
        sub.seen = tenant.version;
        for batch in notes.chunks(BATCH) {
            out.push((sub.notification_url.clone(), json!({ "value": batch })));
        }
    }
    out
}

/// Delivers the notifications directory changes cause, until the task is aborted.
pub async fn notify(st: AppState) {
    loop {
        tokio::time::sleep(TICK).await;
        for (url, payload) in due(&st) {
            st.subscriptions.deliver(&url, &payload).await;
        }
    }
}
