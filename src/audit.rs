//! The append-only audit trail: every operator action and every consent outcome.

use serde_json::Value;
use sqlx::{PgExecutor, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

/// Who did something.
#[derive(Clone, Debug)]
pub enum Actor {
    /// A signed-in operator (by email).
    Operator(String),
    /// The command line, run by someone with database access.
    Cli,
    /// The customer's admin, identified as well as we know them.
    Customer(String),
    /// Gangway itself (mail delivery, expiry…).
    System,
}

impl Actor {
    fn label(&self) -> String {
        match self {
            Actor::Operator(email) => format!("operator:{email}"),
            Actor::Cli => "cli".into(),
            Actor::Customer(who) => format!("customer:{who}"),
            Actor::System => "system".into(),
        }
    }
}

/// One line of the audit trail as read back.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct AuditEvent {
    pub id: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub actor: String,
    pub action: String,
    pub invitation_id: Option<Uuid>,
    pub tenant_id: Option<Uuid>,
    pub detail: Value,
}

impl AuditEvent {
    /// `detail` as short `key: value` text for pages.
    pub fn detail_text(&self) -> String {
        match &self.detail {
            Value::Object(map) => map
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| match v {
                    Value::String(s) => format!("{k}: {s}"),
                    other => format!("{k}: {other}"),
                })
                .collect::<Vec<_>>()
                .join(" · "),
            _ => String::new(),
        }
    }
}

/// Appends an event.
pub async fn record(
    db: impl PgExecutor<'_>,
    actor: &Actor,
    action: &str,
    invitation_id: Option<Uuid>,
    tenant_id: Option<Uuid>,
    detail: Value,
) -> Result<(), sqlx::Error> {
    sqlx::query("insert into audit_events (actor, action, invitation_id, tenant_id, detail) values ($1, $2, $3, $4, $5)")
        .bind(actor.label())
        .bind(action)
        .bind(invitation_id)
        .bind(tenant_id)
        .bind(detail)
        .execute(db)
        .await?;
    Ok(())
}

/// One page of the whole trail, newest first, optionally narrowed by a search term.
pub async fn page(
    db: &PgPool,
    search: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<AuditEvent>, sqlx::Error> {
    sqlx::query_as(
        "select * from audit_events
         where $1::text is null or actor ilike '%' || $1 || '%' or action ilike '%' || $1 || '%'
            or detail::text ilike '%' || $1 || '%'
         order by at desc, id desc limit $2 offset $3",
    )
    .bind(search)
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await
}

/// An invitation's timeline, oldest first.
pub async fn for_invitation(
    db: &PgPool,
    invitation_id: Uuid,
) -> Result<Vec<AuditEvent>, sqlx::Error> {
    sqlx::query_as("select * from audit_events where invitation_id = $1 order by at, id")
        .bind(invitation_id)
        .fetch_all(db)
        .await
}

/// A tenant's history, newest first.
pub async fn for_tenant(db: &PgPool, tenant_id: Uuid) -> Result<Vec<AuditEvent>, sqlx::Error> {
    sqlx::query_as("select * from audit_events where tenant_id = $1 order by at desc, id desc")
        .bind(tenant_id)
        .fetch_all(db)
        .await
}

/// How many events [`page`] would go through for `search`, for "showing 1–50 of N".
pub async fn count(db: &PgPool, search: Option<&str>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "select count(*) from audit_events
         where $1::text is null or actor ilike '%' || $1 || '%' or action ilike '%' || $1 || '%'
            or detail::text ilike '%' || $1 || '%'",
    )
    .bind(search)
    .fetch_one(db)
    .await
}
