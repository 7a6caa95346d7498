//! SCIM 2.0 push (RFC 7643/7644): the directory copy written into the provider's own product
//! through its SCIM endpoint, so it gets every customer's users and groups without asking any
//! customer to set up provisioning.
//!
//! A connection names a SCIM server (base URL checked by the webhooks' outbound rules, bearer
//! token sealed), an attribute [`mapping`] and a scope (one customer's tenants, or all; inside
//! them every user and group, or only chosen groups with their members at any depth). The
//! [`push`] engine writes the copy's changes to the server as the event log reports them, soon
//! after a sync changed a tenant in scope, and in full (reading the server's users and groups
//! back) on demand and on a schedule.

pub mod client;
pub mod mapping;
pub mod push;

use std::collections::BTreeMap;

use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{self, Action, Actor};
use crate::background::Task;
use crate::crypto::Keyring;
use crate::db::ResultExt;
use crate::types::{CustomerId, ScimConnectionId, Secret};
use crate::webhooks::egress;

pub use mapping::Mapping;

/// A connection as pages and the API show it (its token stays sealed).
#[derive(Debug, Clone)]
pub struct Connection {
    /// Its id.
    pub id: ScimConnectionId,
    /// What it is called.
    pub name: String,
    /// The SCIM server's base URL (`…/scim/v2`).
    pub base_url: String,
    /// The customer whose tenants are pushed; `None`: every customer's.
    pub customer_id: Option<CustomerId>,
    /// That customer's name.
    pub customer_name: Option<String>,
    /// SCIM attribute → copy field.
    pub mapping: Mapping,
    /// Only these groups (object ids), their members at any depth and the groups nested in
    /// them are pushed; empty: every user and group of the tenants in scope.
    pub scope_groups: Vec<Uuid>,
    /// Whether pushes run.
    pub enabled: bool,
    /// `new`, `ok` or `failing`.
    pub state: String,
    /// What the server said it supports, at the last push.
    pub capabilities: Option<client::Capabilities>,
    /// When the last push ended.
    pub last_push_at: Option<OffsetDateTime>,
    /// When the last full reconcile ended.
    pub last_reconcile_at: Option<OffsetDateTime>,
    /// The last push's first failure, in the server's words.
    pub last_error: Option<String>,
    /// Who added it.
    pub created_by: String,
    /// When.
    pub created_at: OffsetDateTime,
}

/// A connection to add, or the new values of one (the token: `None` keeps it).
#[derive(Debug, Clone)]
pub struct ConnectionInput {
    /// What it is called.
    pub name: String,
    /// The SCIM server's base URL.
    pub base_url: String,
    /// Its bearer token.
    pub token: Option<Secret>,
    /// The customer whose tenants are pushed; `None`: every customer's.
    pub customer_id: Option<CustomerId>,
    /// SCIM attribute → copy field; `None`: the defaults.
    pub mapping: Option<BTreeMap<String, String>>,
    /// Only these groups, their members at any depth and the groups nested in them; empty:
    /// everything in the tenants.
    pub scope_groups: Vec<Uuid>,
    /// Whether pushes run.
    pub enabled: bool,
}

/// Why a connection could not be added, changed or pushed.
#[derive(Debug, thiserror::Error)]
pub enum ScimError {
    /// The input cannot be used; the message says why, for the form or the API.
    #[error("{0}")]
    Invalid(String),
    /// Another connection has this name.
    #[error("A SCIM connection named {0} exists already.")]
    NameTaken(String),
    /// No such connection.
    #[error("no such SCIM connection")]
    NotFound,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A log entry of a connection.
#[derive(Debug, Clone)]
pub struct LogEntry {
    /// When.
    pub at: OffsetDateTime,
    /// `push`, `reconcile` or `failure`.
    pub entry: String,
    /// What happened.
    pub summary: String,
    /// The server's status, for a failure.
    pub status: Option<i32>,
    /// The server's own message, for a failure.
    pub detail: Option<String>,
}

/// The most groups a connection's scope names.
pub const MAX_SCOPE_GROUPS: usize = 100;

/// What [`check`] found usable: the name, the URL, the mapping and the scope's groups (`None`:
/// everything).
type Checked = (String, url::Url, Mapping, Option<Vec<Uuid>>);

/// Checks the input: a name, an http(s) base URL webhooks may reach (the same allow-list), a
/// token when one is needed, a known customer, a valid mapping, scope groups that are live
/// groups of the copy in the connection's tenants.
async fn check(
    db: &PgPool,
    input: &ConnectionInput,
    token_needed: bool,
) -> Result<Checked, ScimError> {
    let name: String = input.name.trim().chars().take(200).collect();
    if name.is_empty() {
        return Err(ScimError::Invalid("Give the connection a name.".into()));
    }
    let url = url::Url::parse(input.base_url.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "https" | "http") && u.host().is_some())
        .filter(|u| u.query().is_none() && u.fragment().is_none())
        .ok_or_else(|| {
            ScimError::Invalid(
                "Enter the SCIM server's base URL (https://…/scim/v2), without a query.".into(),
            )
        })?;
    egress::check(&url, &egress::allowed(db).await?)
        .await
        .map_err(ScimError::Invalid)?;
    match &input.token {
        Some(t) if t.expose().trim().is_empty() || t.expose().len() > 4096 => {
            return Err(ScimError::Invalid(
                "The bearer token must be 1 to 4096 characters.".into(),
            ));
        }
        None if token_needed => {
            return Err(ScimError::Invalid(
                "Enter the bearer token the SCIM server accepts.".into(),
            ));
        }
        _ => {}
    }
    if let Some(customer) = input.customer_id {
        let known = sqlx::query_scalar!(
            r#"select exists(select 1 from customers where id = $1) as "known!""#,
            customer as CustomerId
        )
        .fetch_one(db)
        .await?;
        if !known {
            return Err(ScimError::Invalid("There is no such customer.".into()));
        }
    }
    let mapping = match &input.mapping {
        Some(wire) => Mapping::parse(wire).map_err(ScimError::Invalid)?,
        None => Mapping::default(),
    };
    let scope: Vec<Uuid> = input
        .scope_groups
        .iter()
        .copied()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if scope.len() > MAX_SCOPE_GROUPS {
        return Err(ScimError::Invalid(format!(
            "A connection's scope names at most {MAX_SCOPE_GROUPS} groups."
        )));
    }
    let found = sqlx::query_scalar!(
        r#"select g.object_id from directory_groups g join tenants t on t.id = g.tenant_id
           where g.object_id = any($1) and g.soft_deleted_at is null and t.status <> 'offboarded'
             and ($2::uuid is null or t.customer_id = $2)"#,
        &scope,
        input.customer_id as Option<CustomerId>
    )
    .fetch_all(db)
    .await?;
    if let Some(missing) = scope.iter().find(|g| !found.contains(g)) {
        return Err(ScimError::Invalid(format!(
            "There is no group {missing} in the copy of the connection's tenants."
        )));
    }
    Ok((name, url, mapping, (!scope.is_empty()).then_some(scope)))
}

/// The unique name's constraint.
const NAME_KEY: &str = "scim_connections_name_key";

/// Adds a connection; its first push (a full reconcile) is due at once.
pub async fn create(
    db: &PgPool,
    keys: &Keyring,
    input: &ConnectionInput,
    actor: &Actor,
) -> Result<Connection, ScimError> {
    let (name, url, mapping, scope) = check(db, input, true).await?;
    let token = input
        .token
        .as_ref()
        .map(|t| t.expose().trim())
        .unwrap_or_default();
    let mut tx = db.begin().await?;
    let id = sqlx::query_scalar!(
        r#"insert into scim_connections (name, base_url, token_ciphertext, token_key_id, customer_id,
                                         mapping, enabled, created_by, scope_groups)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9) returning id as "id: ScimConnectionId""#,
        name,
        url.as_str(),
        keys.seal(token.as_bytes()),
        keys.id(),
        input.customer_id as Option<CustomerId>,
        json!(mapping.wire()),
        input.enabled,
        actor.to_string(),
        scope.as_deref(),
    )
    .fetch_one(&mut *tx)
    .await
    .on_constraint(NAME_KEY, |_| ScimError::NameTaken(name.clone()))?;
    audit::record(
        &mut *tx,
        actor,
        Action::ScimConnectionCreated,
        None,
        None,
        json!({ "connection_id": id, "name": name, "base_url": url.as_str(),
                "scope_groups": scope }),
    )
    .await?;
    crate::background::registry::wake(&mut tx, Task::ScimPush).await?;
    tx.commit().await?;
    get(db, id).await
}

/// Changes a connection (the token only when a new one is given); the next push writes
/// everything again with the new settings.
pub async fn update(
    db: &PgPool,
    keys: &Keyring,
    id: ScimConnectionId,
    input: &ConnectionInput,
    actor: &Actor,
) -> Result<Connection, ScimError> {
    let (name, url, mapping, scope) = check(db, input, false).await?;
    let token = input
        .token
        .as_ref()
        .map(|t| keys.seal(t.expose().trim().as_bytes()));
    let mut tx = db.begin().await?;
    let done = sqlx::query!(
        "update scim_connections set name = $2, base_url = $3, customer_id = $4, mapping = $5,
                enabled = $6, token_ciphertext = coalesce($7, token_ciphertext),
                token_key_id = case when $7::bytea is null then token_key_id else $8 end,
                scope_groups = $9, dirty = true, reconcile_wanted = true
         where id = $1",
        id as ScimConnectionId,
        name,
        url.as_str(),
        input.customer_id as Option<CustomerId>,
        json!(mapping.wire()),
        input.enabled,
        token,
        keys.id(),
        scope.as_deref(),
    )
    .execute(&mut *tx)
    .await
    .on_constraint(NAME_KEY, |_| ScimError::NameTaken(name.clone()))?;
    if done.rows_affected() == 0 {
        return Err(ScimError::NotFound);
    }
    // A different mapping or server: nothing the ledger says was written still counts.
    sqlx::query!(
        "update scim_ledger set hash = null where connection_id = $1",
        id as ScimConnectionId
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        actor,
        Action::ScimConnectionChanged,
        None,
        None,
        json!({ "connection_id": id, "name": name, "base_url": url.as_str(),
                "enabled": input.enabled, "token_replaced": input.token.is_some(),
                "scope_groups": scope }),
    )
    .await?;
    crate::background::registry::wake(&mut tx, Task::ScimPush).await?;
    tx.commit().await?;
    get(db, id).await
}

/// Deletes a connection with its ledger and log (what was pushed stays on the server).
pub async fn delete(db: &PgPool, id: ScimConnectionId, actor: &Actor) -> Result<(), ScimError> {
    let mut tx = db.begin().await?;
    let name = sqlx::query_scalar!(
        "delete from scim_connections where id = $1 returning name",
        id as ScimConnectionId
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ScimError::NotFound)?;
    audit::record(
        &mut *tx,
        actor,
        Action::ScimConnectionDeleted,
        None,
        None,
        json!({ "connection_id": id, "name": name }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Every connection, by name.
pub async fn list(db: &PgPool) -> Result<Vec<Connection>, ScimError> {
    let ids = sqlx::query_scalar!(
        r#"select id as "id: ScimConnectionId" from scim_connections order by name"#
    )
    .fetch_all(db)
    .await?;
    let mut all = Vec::with_capacity(ids.len());
    for id in ids {
        all.push(get(db, id).await?);
    }
    Ok(all)
}

/// One connection.
pub async fn get(db: &PgPool, id: ScimConnectionId) -> Result<Connection, ScimError> {
    let row = sqlx::query!(
        r#"select c.id as "id: ScimConnectionId", c.name, c.base_url,
                  c.customer_id as "customer_id: CustomerId", cu.name as "customer_name?",
                  c.mapping, c.scope_groups, c.enabled, c.state, c.capabilities, c.last_push_at,
                  c.last_reconcile_at, c.last_error, c.created_by, c.created_at
           from scim_connections c left join customers cu on cu.id = c.customer_id
           where c.id = $1"#,
        id as ScimConnectionId
    )
    .fetch_optional(db)
    .await?
    .ok_or(ScimError::NotFound)?;
    let wire: BTreeMap<String, String> = serde_json::from_value(row.mapping).unwrap_or_default();
    Ok(Connection {
        id: row.id,
        name: row.name,
        base_url: row.base_url,
        customer_id: row.customer_id,
        customer_name: row.customer_name.map(|n| n.to_string()),
        // Stored mappings were checked when saved.
        mapping: Mapping::parse(&wire).unwrap_or_default(),
        scope_groups: row.scope_groups.unwrap_or_default(),
        enabled: row.enabled,
        state: row.state,
        capabilities: row
            .capabilities
            .and_then(|c| serde_json::from_value(c).ok()),
        last_push_at: row.last_push_at,
        last_reconcile_at: row.last_reconcile_at,
        last_error: row.last_error,
        created_by: row.created_by,
        created_at: row.created_at,
    })
}

/// A connection's log, newest first.
pub async fn log(
    db: &PgPool,
    id: ScimConnectionId,
    limit: i64,
) -> Result<Vec<LogEntry>, ScimError> {
    Ok(sqlx::query_as!(
        LogEntry,
        "select at, entry, summary, status, detail from scim_log
         where connection_id = $1 order by id desc limit $2",
        id as ScimConnectionId,
        limit
    )
    .fetch_all(db)
    .await?)
}

/// Asks for a push of `id` now (a full reconcile with `reconcile`), audited as `actor`'s.
pub async fn request_push(
    db: &PgPool,
    id: ScimConnectionId,
    reconcile: bool,
    actor: &Actor,
) -> Result<(), ScimError> {
    let mut tx = db.begin().await?;
    let done = sqlx::query!(
        "update scim_connections set dirty = true, reconcile_wanted = reconcile_wanted or $2
         where id = $1",
        id as ScimConnectionId,
        reconcile
    )
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ScimError::NotFound);
    }
    audit::record(
        &mut *tx,
        actor,
        Action::ScimPushRequested,
        None,
        None,
        json!({ "connection_id": id, "reconcile": reconcile }),
    )
    .await?;
    crate::background::registry::wake(&mut tx, Task::ScimPush).await?;
    tx.commit().await?;
    Ok(())
}
