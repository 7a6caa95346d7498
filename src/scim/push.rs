//! The push engine: one connection at a time, leased so two processes never push it at once.
//!
//! A push follows the event log: from the connection's cursor it reads the `directory.*`
//! events of its tenants a page at a time, gathers the objects each page touched (a user, a
//! group, a membership's group) and writes only those, as the copy holds them now (the latest
//! state wins, so events folded per object apply in order). The cursor moves past a page only
//! once every object of it was written, so a crash replays the page; the replay is idempotent
//! because the ledger (object id → the server's id, hash of what was last written) skips what
//! is already there and new objects are looked up by `externalId` first.
//!
//! A full push (a new connection's first, on demand, on a schedule, or when the cursor is
//! older than the log's retention) computes the desired users and groups of the whole scope
//! and compares each with the ledger; a full reconcile also lists the server's users and
//! groups and writes whatever drifted. It takes the log's head before reading the copy and
//! starts the cursor there, so nothing committed after it is missed.
//!
//! Writing: new objects are looked up by `externalId` (a filter when the server filters and
//! they are few, one listing otherwise) and adopted or created; changed ones are PATCHed (PUT
//! when the server has no PATCH); ones gone from the copy or the scope are deleted. Users go
//! first, then groups (created bare, then written with members, so nested groups resolve), then
//! deletions. Each object is one request at a time, retried inside [`Client`].

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::client::{BULK_ID_REF, BulkOp, Capabilities, Client, Failure, Kind, bulk_chunks};
use super::mapping::{self, CopyUser, Mapping, Member};
use crate::background::{Activity, BackgroundTask};
use crate::crypto::Keyring;
use crate::events::{self, Cursor, EventType, ReadError};
use crate::types::{CustomerId, ScimConnectionId, Secret};
use crate::webhooks::egress;

/// How often the task looks for due work without being woken.
pub const PERIOD: Duration = Duration::from_secs(60);
/// A connection is reconciled in full at least this often.
const RECONCILE_EVERY_SECS: f64 = 24.0 * 3600.0;
/// How long a push may hold its connection before another process may take it.
const LEASE_SECS: f64 = 30.0 * 60.0;
/// Requests in flight at once per push.
const IN_FLIGHT: usize = 8;
/// Unknown objects up to this many are looked up one filter each; more, by one listing.
const FILTER_LOOKUPS: usize = 50;
/// Bytes of a group's body besides its name and members, about.
const BULK_GROUP: usize = 200;
/// Failures a push writes to the log (the count is in the summary).
const LOGGED_FAILURES: usize = 20;
/// Events read (and their objects written) per step of the cursor.
const PAGE: i64 = 1000;
/// How long a push waits for events committed but held back by an older transaction.
const HELD_WAIT: Duration = Duration::from_secs(10);
/// How often it looks again meanwhile.
const HELD_POLL: Duration = Duration::from_millis(50);
/// The events a push follows: the copy's changes, and offboarding (a full push forgets the
/// tenant's objects).
const FOLLOWED: &[EventType] = &[
    EventType::UserCreated,
    EventType::UserUpdated,
    EventType::UserDeleted,
    EventType::GroupCreated,
    EventType::GroupUpdated,
    EventType::GroupDeleted,
    EventType::MembershipAdded,
    EventType::MembershipRemoved,
    EventType::TenantOffboarded,
];

/// What a push did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Which connection.
    pub connection: Option<ScimConnectionId>,
    /// Whether it was a full reconcile.
    pub reconcile: bool,
    /// Resources created.
    pub created: usize,
    /// Resources written over.
    pub updated: usize,
    /// Resources deleted.
    pub deleted: usize,
    /// Existing resources found by `externalId` and taken into the ledger.
    pub adopted: usize,
    /// Copy objects whose SCIM representation was computed and compared with the ledger: the
    /// whole scope for a full push, the objects the events touched otherwise.
    pub considered: usize,
    /// Events read from the log.
    pub events: usize,
    /// Events were committed but still held back by an older transaction when the push
    /// ended: the connection is due again.
    pub behind: bool,
    /// Requests that failed for good.
    pub failures: Vec<Failure>,
    /// How long it took.
    pub elapsed: Duration,
}

impl Report {
    /// Objects the server received (created, updated or deleted).
    pub fn written(&self) -> usize {
        self.created + self.updated + self.deleted
    }

    fn summary(&self) -> String {
        format!(
            "{}: {} events, {} objects compared, {} created, {} updated, {} deleted, {} adopted, \
             {} failed in {:.1} s",
            if self.reconcile {
                "full reconcile"
            } else {
                "push"
            },
            self.events,
            self.considered,
            self.created,
            self.updated,
            self.deleted,
            self.adopted,
            self.failures.len(),
            self.elapsed.as_secs_f64()
        )
    }
}

/// One ledger row: the server's id and the hash of what was last written (`None`: write it).
#[derive(Debug, Clone)]
struct Entry {
    scim_id: String,
    hash: Option<Vec<u8>>,
}

type Ledger = HashMap<(Kind, Uuid), Entry>;

/// What a push wants on the server.
struct Desired {
    users: BTreeMap<Uuid, (Value, Vec<u8>)>,
    groups: BTreeMap<Uuid, (String, BTreeSet<Member>, Vec<u8>)>,
}

/// The objects a page of events touched: only these are computed and written.
#[derive(Debug, Default)]
struct Touched {
    users: BTreeSet<Uuid>,
    groups: BTreeSet<Uuid>,
}

impl Touched {
    fn insert(&mut self, kind: Kind, object: Uuid) {
        match kind {
            Kind::User => self.users.insert(object),
            Kind::Group => self.groups.insert(object),
        };
    }

    /// The object an event is about: a user, a group, or a membership's group (an erased
    /// event names none).
    fn add(&mut self, event: &events::Logged) {
        let id = |key: &str| {
            event.data[key]
                .as_str()
                .and_then(|v| Uuid::parse_str(v).ok())
        };
        let kind = match event.event_type.split('.').nth(1) {
            Some("user") => Kind::User,
            Some("group" | "membership") => Kind::Group,
            _ => return,
        };
        let key = if event.event_type.starts_with("directory.membership.") {
            "group_id"
        } else {
            "object_id"
        };
        if let Some(object) = id(key) {
            self.insert(kind, object);
        }
    }

    fn is_empty(&self) -> bool {
        self.users.is_empty() && self.groups.is_empty()
    }

    fn contains(&self, kind: Kind, object: &Uuid) -> bool {
        match kind {
            Kind::User => self.users.contains(object),
            Kind::Group => self.groups.contains(object),
        }
    }
}

/// A connection's own scope inside its tenants, when it names groups: their members at any
/// depth, and they and the groups nested in them.
#[derive(Debug)]
struct Scope {
    users: HashSet<Uuid>,
    groups: HashSet<Uuid>,
}

impl Scope {
    fn contains(&self, kind: Kind, object: &Uuid) -> bool {
        match kind {
            Kind::User => self.users.contains(object),
            Kind::Group => self.groups.contains(object),
        }
    }
}

/// The scope of `groups`: walked down like `directory::nesting` does (`union` ends cycles).
async fn scope(db: &PgPool, groups: &[Uuid]) -> Result<Scope, sqlx::Error> {
    let rows = sqlx::query!(
        r#"with recursive down(id) as (
               select unnest($1::uuid[])
               union
               select m.member_id from directory_group_members m join down on m.group_id = down.id
               where m.member_type = 'group'
           )
           select m.member_id as "id!", m.member_type = 'group' as "group!"
           from directory_group_members m join down on m.group_id = down.id
           where m.member_type in ('user', 'group')
           union
           select id as "id!", true as "group!" from down"#,
        groups
    )
    .fetch_all(db)
    .await?;
    let (groups, users): (Vec<_>, Vec<_>) = rows.into_iter().partition(|r| r.group);
    Ok(Scope {
        users: users.into_iter().map(|r| r.id).collect(),
        groups: groups.into_iter().map(|r| r.id).collect(),
    })
}

/// The `try_…` entry point tests and the task share: pushes every connection that is due
/// (changed copy, reconcile asked for or scheduled), one after another, until none is.
pub async fn push_due(
    db: &PgPool,
    keys: &Keyring,
    stop: &CancellationToken,
) -> anyhow::Result<Vec<Report>> {
    let mut reports = Vec::new();
    // Each connection once per call: one whose push failed is due again at the next activation.
    let mut pushed: Vec<uuid::Uuid> = Vec::new();
    while !stop.is_cancelled() {
        let Some(due) = sqlx::query!(
            r#"with due as (
                   select id, reconcile_wanted
                          or coalesce(last_reconcile_at < now() - make_interval(secs => $1), true)
                          as reconcile
                   from scim_connections
                   where enabled and (leased_until is null or leased_until < now())
                     and not (id = any($3))
                     and (dirty or reconcile_wanted
                          or coalesce(last_reconcile_at < now() - make_interval(secs => $1), true))
                   order by last_push_at nulls first
                   limit 1 for update skip locked)
               update scim_connections c
                  set leased_until = now() + make_interval(secs => $2), dirty = false,
                      reconcile_wanted = false
                 from due where c.id = due.id
               returning c.id as "id: ScimConnectionId", due.reconcile as "reconcile!""#,
            RECONCILE_EVERY_SECS,
            LEASE_SECS,
            &pushed
        )
        .fetch_optional(db)
        .await?
        else {
            break;
        };
        pushed.push(due.id.into());
        reports.push(push(db, keys, due.id, due.reconcile).await?);
    }
    Ok(reports)
}

/// Pushes one connection the caller holds the lease of, records the outcome and gives the
/// lease back.
async fn push(
    db: &PgPool,
    keys: &Keyring,
    id: ScimConnectionId,
    reconcile: bool,
) -> anyhow::Result<Report> {
    let started = Instant::now();
    let mut report = Report {
        connection: Some(id),
        reconcile,
        ..Report::default()
    };
    let outcome = run(db, keys, id, &mut report).await;
    let reconcile = report.reconcile;
    report.elapsed = started.elapsed();
    let mut caps = None;
    match outcome {
        Ok(c) => caps = Some(c),
        Err(RunError::Server(f)) => report.failures.insert(0, f),
        Err(RunError::Db(e)) => {
            sqlx::query!(
                "update scim_connections set leased_until = null, dirty = true where id = $1",
                id as ScimConnectionId
            )
            .execute(db)
            .await?;
            return Err(e.into());
        }
    }
    let failed = !report.failures.is_empty();
    let mut tx = db.begin().await?;
    sqlx::query!(
        "insert into scim_log (connection_id, entry, summary) values ($1, $2, $3)",
        id as ScimConnectionId,
        if reconcile { "reconcile" } else { "push" },
        report.summary()
    )
    .execute(&mut *tx)
    .await?;
    for f in report.failures.iter().take(LOGGED_FAILURES) {
        sqlx::query!(
            "insert into scim_log (connection_id, entry, summary, status, detail)
             values ($1, 'failure', $2, $3, $4)",
            id as ScimConnectionId,
            f.what,
            f.status.map(i32::from),
            f.detail
        )
        .execute(&mut *tx)
        .await?;
    }
    // A failed object is retried by the next push: the periodic activation finds it dirty.
    sqlx::query!(
        "update scim_connections set leased_until = null, last_push_at = now(),
                state = case when $2 then 'failing' else 'ok' end,
                last_error = $3, dirty = dirty or $2 or $6,
                capabilities = coalesce($4, capabilities),
                last_reconcile_at = case when $5 and not $2 then now() else last_reconcile_at end,
                reconcile_wanted = reconcile_wanted or ($5 and $2)
         where id = $1",
        id as ScimConnectionId,
        failed,
        report.failures.first().map(ToString::to_string),
        caps.map(|c| json!(c)),
        reconcile,
        report.behind,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    metrics::counter!("gangway_scim_objects_written_total").increment(report.written() as u64);
    tracing::info!(connection = %id, summary = report.summary(), "scim push");
    Ok(report)
}

enum RunError {
    Server(Failure),
    Db(sqlx::Error),
}

impl From<Failure> for RunError {
    fn from(f: Failure) -> Self {
        Self::Server(f)
    }
}

impl From<sqlx::Error> for RunError {
    fn from(e: sqlx::Error) -> Self {
        Self::Db(e)
    }
}

/// The push itself (following the log, or in full when `report` asks for a reconcile or the
/// cursor cannot be followed); the server's capabilities when discovery worked.
async fn run(
    db: &PgPool,
    keys: &Keyring,
    id: ScimConnectionId,
    report: &mut Report,
) -> Result<Capabilities, RunError> {
    let row = sqlx::query!(
        r#"select base_url, token_ciphertext, token_key_id, customer_id as "customer_id: CustomerId",
                  event_cursor, scope_groups
           from scim_connections where id = $1"#,
        id as ScimConnectionId
    )
    .fetch_one(db)
    .await?;
    let token = keys
        .open(&row.token_key_id, &row.token_ciphertext)
        .map_err(|e| Failure {
            what: "bearer token".into(),
            status: None,
            detail: format!("the sealed token cannot be opened: {e}"),
        })?;
    let token = Secret::new(String::from_utf8_lossy(&token).into_owned());
    let client = Client::new(&row.base_url, token, egress::allowed(db).await?)?;
    let caps = client.discover().await?;
    let stored = super::get(db, id).await.map_err(|e| match e {
        super::ScimError::Db(e) => RunError::Db(e),
        other => RunError::Db(sqlx::Error::Protocol(other.to_string())),
    })?;
    let mapping = stored.mapping.served_by(caps.user_attributes.as_ref());
    let scope = match &row.scope_groups {
        Some(groups) => Some(scope(db, groups).await?),
        None => None,
    };
    let mut ledger = ledger(db, id).await?;
    let pusher = Pusher {
        db,
        id,
        client: &client,
        caps: &caps,
        mapping: &mapping,
        customer: row.customer_id,
        scope: scope.as_ref(),
    };
    let cursor = row.event_cursor.as_deref().and_then(Cursor::decode);
    if let (false, Some(cursor)) = (report.reconcile, cursor) {
        match pusher.follow(cursor, &mut ledger, report).await {
            Ok(()) => return Ok(caps),
            // Events are gone or a tenant left: only the whole copy says what to do.
            Err(FollowError::Reconcile) => report.reconcile = true,
            Err(FollowError::Run(e)) => return Err(e),
        }
    }
    // Taken before the copy is read: whatever commits later is read from the log next time.
    let head = settled_head(db).await?;
    let desired = desired(db, &mapping, row.customer_id, scope.as_ref(), None).await?;
    report.considered += desired.users.len() + desired.groups.len();
    if report.reconcile {
        pusher.reconcile(&desired, &mut ledger, report).await?;
    } else {
        pusher
            .look_up_unknown(&desired, &mut ledger, report)
            .await?;
    }
    pusher.write_users(&desired, &mut ledger, report).await;
    pusher.write_groups(&desired, &mut ledger, report).await;
    pusher
        .delete_gone(&desired, None, &mut ledger, report)
        .await;
    if report.failures.is_empty() {
        save_cursor(db, id, head).await?;
    }
    Ok(caps)
}

/// The log's head, once no followed event is held back behind it by an older transaction
/// (or after [`HELD_WAIT`]): what is held back would otherwise be read again after a full
/// push that already wrote it.
async fn settled_head(db: &PgPool) -> Result<Cursor, sqlx::Error> {
    let filter = followed();
    let started = Instant::now();
    loop {
        let head = events::head(db).await?;
        if started.elapsed() >= HELD_WAIT || !events::held_back(db, head, &filter).await? {
            return Ok(head);
        }
        tokio::time::sleep(HELD_POLL).await;
    }
}

/// The events a push reads.
fn followed() -> events::Filter {
    events::Filter {
        types: FOLLOWED.to_vec(),
        tenant: None,
    }
}

/// Moves the connection's cursor to `cursor`.
async fn save_cursor(db: &PgPool, id: ScimConnectionId, cursor: Cursor) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update scim_connections set event_cursor = $2 where id = $1",
        id as ScimConnectionId,
        cursor.encode()
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Why following the log stopped short.
enum FollowError {
    /// The cursor is older than the retention, or a tenant was offboarded: push in full.
    Reconcile,
    /// The server or the database failed.
    Run(RunError),
}

impl<E: Into<RunError>> From<E> for FollowError {
    fn from(e: E) -> Self {
        Self::Run(e.into())
    }
}

/// The copy in scope as SCIM users and groups: all of it, or (`only`) the objects touched
/// and the users in the touched groups (a group's members count when the push writes them
/// too, so its users and groups are read for that).
async fn desired(
    db: &PgPool,
    mapping: &Mapping,
    customer: Option<CustomerId>,
    scope: Option<&Scope>,
    only: Option<&Touched>,
) -> Result<Desired, sqlx::Error> {
    let touched_groups: Option<Vec<Uuid>> = only.map(|t| t.groups.iter().copied().collect());
    let members = sqlx::query!(
        r#"select m.group_id, m.member_id, m.member_type = 'group' as "group!"
           from directory_group_members m join tenants t on t.id = m.tenant_id
           where m.member_type in ('user', 'group') and t.status <> 'offboarded'
             and ($1::uuid is null or t.customer_id = $1)
             and ($2::uuid[] is null or m.group_id = any($2))
             -- The tenant's sync scope: what it hides is not the provider's to see.
             and case m.member_type
                   when 'user' then exists (select 1 from directory_users u where u.tenant_id = m.tenant_id
                                            and u.object_id = m.member_id and u.in_scope)
                   else exists (select 1 from directory_groups g where g.tenant_id = m.tenant_id
                                and g.object_id = m.member_id and g.in_scope) end"#,
        customer as Option<CustomerId>,
        touched_groups.as_deref(),
    )
    .fetch_all(db)
    .await?;
    // What to read: everything, or the touched objects and their groups' members.
    let (read_users, read_groups): (Option<Vec<Uuid>>, Option<Vec<Uuid>>) = match only {
        None => (None, None),
        Some(t) => {
            let mut users = t.users.clone();
            let mut groups = t.groups.clone();
            for m in &members {
                if m.group {
                    groups.insert(m.member_id);
                } else {
                    users.insert(m.member_id);
                }
            }
            (
                Some(users.into_iter().collect()),
                Some(groups.into_iter().collect()),
            )
        }
    };
    let in_scope = |kind: Kind, object: &Uuid| scope.is_none_or(|s| s.contains(kind, object));
    let users = sqlx::query_as!(
        CopyUser,
        r#"select u.object_id, u.user_principal_name, u.display_name, u.given_name, u.surname,
                  u.mail, u.business_phones, u.mobile_phone, u.job_title, u.department,
                  u.account_enabled, u.soft_deleted_at is not null as "soft_deleted!"
           from directory_users u join tenants t on t.id = u.tenant_id
           where u.in_scope and t.status <> 'offboarded' and ($1::uuid is null or t.customer_id = $1)
             and ($2::uuid[] is null or u.object_id = any($2))"#,
        customer as Option<CustomerId>,
        read_users.as_deref(),
    )
    .fetch_all(db)
    .await?;
    let users: BTreeMap<Uuid, (Value, Vec<u8>)> = users
        .iter()
        .filter(|u| in_scope(Kind::User, &u.object_id))
        .filter_map(|u| {
            let body = mapping::user(mapping, u)?;
            let hash = mapping::hash(&body);
            Some((u.object_id, (body, hash)))
        })
        .collect();
    let groups = sqlx::query!(
        r#"select g.object_id, coalesce(g.display_name, '') as "display_name!"
           from directory_groups g join tenants t on t.id = g.tenant_id
           where g.soft_deleted_at is null and g.in_scope and t.status <> 'offboarded'
             and ($1::uuid is null or t.customer_id = $1)
             and ($2::uuid[] is null or g.object_id = any($2))"#,
        customer as Option<CustomerId>,
        read_groups.as_deref(),
    )
    .fetch_all(db)
    .await?;
    let groups: Vec<_> = groups
        .into_iter()
        .filter(|g| in_scope(Kind::Group, &g.object_id))
        .collect();
    let mut by_group: HashMap<Uuid, BTreeSet<Member>> = HashMap::new();
    for m in members {
        by_group.entry(m.group_id).or_default().insert(Member {
            object_id: m.member_id,
            group: m.group,
        });
    }
    let group_ids: BTreeSet<Uuid> = groups.iter().map(|g| g.object_id).collect();
    let groups = groups
        .into_iter()
        .filter(|g| only.is_none_or(|t| t.groups.contains(&g.object_id)))
        .map(|g| {
            // Only members the push writes too: users it has a representation for, live groups.
            let members: BTreeSet<Member> = by_group
                .remove(&g.object_id)
                .unwrap_or_default()
                .into_iter()
                .filter(|m| {
                    if m.group {
                        group_ids.contains(&m.object_id)
                    } else {
                        users.contains_key(&m.object_id)
                    }
                })
                .collect();
            let hash = mapping::hash(&mapping::group_key(g.object_id, &g.display_name, &members));
            (g.object_id, (g.display_name, members, hash))
        })
        .collect();
    Ok(Desired { users, groups })
}

async fn ledger(db: &PgPool, id: ScimConnectionId) -> Result<Ledger, sqlx::Error> {
    let rows = sqlx::query!(
        "select kind, object_id, scim_id, hash from scim_ledger where connection_id = $1",
        id as ScimConnectionId
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let kind = if r.kind == "group" {
                Kind::Group
            } else {
                Kind::User
            };
            (
                (kind, r.object_id),
                Entry {
                    scim_id: r.scim_id,
                    hash: r.hash,
                },
            )
        })
        .collect())
}

/// One object's write: a creation (no `scim_id`), an update, or a deletion (no `body`).
struct Write {
    kind: Kind,
    object: Uuid,
    scim_id: Option<String>,
    body: Option<Value>,
    cleared: Vec<&'static str>,
    /// For a creation whose body refers to others of its bulk request: the body without.
    plain: Option<Value>,
}

/// What one object's request came to.
enum Outcome {
    Created(String),
    Updated(String),
    Deleted,
    Failed(Failure),
}

struct Pusher<'a> {
    db: &'a PgPool,
    id: ScimConnectionId,
    client: &'a Client,
    caps: &'a Capabilities,
    mapping: &'a Mapping,
    customer: Option<CustomerId>,
    scope: Option<&'a Scope>,
}

impl Pusher<'_> {
    /// Reads the log forward from `at` a page at a time and writes what each page touched,
    /// saving the cursor after each page written without a failure (a failed page is read
    /// again by the next push). A scoped connection first writes the objects that entered its
    /// scope and deletes those that left it, by the ledger's keys.
    async fn follow(
        &self,
        mut at: Cursor,
        ledger: &mut Ledger,
        report: &mut Report,
    ) -> Result<(), FollowError> {
        let tenants: HashSet<Uuid> = sqlx::query_scalar!(
            "select id from tenants where $1::uuid is null or customer_id = $1",
            self.customer as Option<CustomerId>
        )
        .fetch_all(self.db)
        .await?
        .into_iter()
        .collect();
        if let Some(scope) = self.scope {
            let mut moved = Touched::default();
            for (kind, object) in ledger.keys() {
                if !scope.contains(*kind, object) {
                    moved.insert(*kind, *object);
                }
            }
            for (kind, ids) in [(Kind::User, &scope.users), (Kind::Group, &scope.groups)] {
                for object in ids {
                    if !ledger.contains_key(&(kind, *object)) {
                        moved.insert(kind, *object);
                    }
                }
            }
            if !moved.is_empty() {
                self.apply(&moved, ledger, report).await?;
            }
        }
        let filter = followed();
        let waiting_since = Instant::now();
        while report.failures.is_empty() {
            let page = match events::read(self.db, Some(at), &filter, PAGE).await {
                Ok(page) => page,
                Err(ReadError::Expired) => return Err(FollowError::Reconcile),
                Err(ReadError::Db(e)) => return Err(e.into()),
            };
            let Some(last) = page.last().map(|e| e.cursor) else {
                // The change that woke this push may wait behind an older transaction.
                if waiting_since.elapsed() < HELD_WAIT
                    && events::held_back(self.db, at, &filter).await?
                {
                    tokio::time::sleep(HELD_POLL).await;
                    continue;
                }
                report.behind = events::held_back(self.db, at, &filter).await?;
                break;
            };
            report.events += page.len();
            let mut touched = Touched::default();
            for event in page
                .iter()
                .filter(|e| e.tenant_id.is_some_and(|t| tenants.contains(&t)))
            {
                if event.event_type == EventType::TenantOffboarded.name() {
                    return Err(FollowError::Reconcile);
                }
                touched.add(event);
            }
            if !touched.is_empty() {
                self.apply(&touched, ledger, report).await?;
            }
            if report.failures.is_empty() {
                save_cursor(self.db, self.id, last).await?;
                at = last;
            }
        }
        Ok(())
    }

    /// Writes the objects `touched` names as the copy holds them now, and deletes those of
    /// them the ledger holds and the copy (or the scope) no longer does.
    async fn apply(
        &self,
        touched: &Touched,
        ledger: &mut Ledger,
        report: &mut Report,
    ) -> Result<(), RunError> {
        let mut desired = desired(
            self.db,
            self.mapping,
            self.customer,
            self.scope,
            Some(touched),
        )
        .await?;
        // A touched group's member whose own event is not read yet is written now, so the
        // group names it; other members were written before and are left alone.
        desired.users.retain(|object, _| {
            touched.users.contains(object) || !ledger.contains_key(&(Kind::User, *object))
        });
        report.considered += desired.users.len() + touched.groups.len();
        self.look_up_unknown(&desired, ledger, report).await?;
        self.write_users(&desired, ledger, report).await;
        self.write_groups(&desired, ledger, report).await;
        self.delete_gone(&desired, Some(touched), ledger, report)
            .await;
        Ok(())
    }

    /// Records an outcome in the ledger and the report.
    async fn record(
        &self,
        kind: Kind,
        object: Uuid,
        hash: Option<Vec<u8>>,
        outcome: Outcome,
        ledger: &mut Ledger,
        report: &mut Report,
    ) {
        let written = match outcome {
            Outcome::Created(scim_id) => {
                report.created += 1;
                Some(scim_id)
            }
            Outcome::Updated(scim_id) => {
                report.updated += 1;
                Some(scim_id)
            }
            Outcome::Deleted => {
                report.deleted += 1;
                ledger.remove(&(kind, object));
                let gone = sqlx::query!(
                    "delete from scim_ledger where connection_id = $1 and kind = $2 and object_id = $3",
                    self.id as ScimConnectionId,
                    kind.name(),
                    object
                )
                .execute(self.db)
                .await;
                if let Err(e) = gone {
                    tracing::warn!(error = %e, "could not record a SCIM deletion");
                }
                None
            }
            Outcome::Failed(f) => {
                report.failures.push(f);
                None
            }
        };
        if let Some(scim_id) = written {
            self.remember(kind, object, &scim_id, hash.as_deref(), ledger)
                .await;
        }
    }

    /// Writes one ledger row (and keeps the in-memory ledger the same).
    async fn remember(
        &self,
        kind: Kind,
        object: Uuid,
        scim_id: &str,
        hash: Option<&[u8]>,
        ledger: &mut Ledger,
    ) {
        ledger.insert(
            (kind, object),
            Entry {
                scim_id: scim_id.to_owned(),
                hash: hash.map(<[u8]>::to_vec),
            },
        );
        let saved = sqlx::query!(
            "insert into scim_ledger (connection_id, kind, object_id, scim_id, hash)
             values ($1, $2, $3, $4, $5)
             on conflict (connection_id, kind, object_id)
             do update set scim_id = excluded.scim_id, hash = excluded.hash, pushed_at = now()",
            self.id as ScimConnectionId,
            kind.name(),
            object,
            scim_id,
            hash
        )
        .execute(self.db)
        .await;
        if let Err(e) = saved {
            // The next push looks the object up by externalId again: nothing is doubled.
            tracing::warn!(error = %e, "could not record a SCIM write");
        }
    }

    /// Takes the server's resources into the ledger by `externalId`, marking those that drifted
    /// from the copy for writing, and forgets ledger entries the server no longer has.
    async fn reconcile(
        &self,
        desired: &Desired,
        ledger: &mut Ledger,
        report: &mut Report,
    ) -> Result<(), Failure> {
        for kind in [Kind::User, Kind::Group] {
            let listed = self.client.list(kind, self.caps).await?;
            let on_server: HashMap<&str, &Value> = listed
                .iter()
                .filter_map(|r| Some((r["id"].as_str()?, r)))
                .collect();
            let stale: Vec<(Kind, Uuid)> = ledger
                .iter()
                .filter(|((k, _), e)| *k == kind && !on_server.contains_key(e.scim_id.as_str()))
                .map(|(key, _)| *key)
                .collect();
            for key in stale {
                ledger.remove(&key);
                let _ = sqlx::query!(
                    "delete from scim_ledger where connection_id = $1 and kind = $2 and object_id = $3",
                    self.id as ScimConnectionId,
                    kind.name(),
                    key.1
                )
                .execute(self.db)
                .await;
            }
            for resource in &listed {
                let (Some(scim_id), Some(object)) = (
                    resource["id"].as_str(),
                    resource["externalId"]
                        .as_str()
                        .and_then(|e| Uuid::parse_str(e).ok()),
                ) else {
                    continue;
                };
                let current = match kind {
                    Kind::User => desired.users.get(&object).and_then(|(body, hash)| {
                        (!mapping::user_drifted(self.mapping, resource, body)).then_some(hash)
                    }),
                    Kind::Group => desired
                        .groups
                        .get(&object)
                        .and_then(|(name, members, hash)| {
                            let (resolved, _) = self.members(members, ledger, &HashSet::new());
                            let body = mapping::group(object, name, &resolved);
                            (!mapping::group_drifted(resource, &body)).then_some(hash)
                        }),
                };
                let known = ledger.get(&(kind, object));
                if known.is_some_and(|e| e.scim_id == scim_id && e.hash.as_ref() == current) {
                    continue;
                }
                if known.is_none() {
                    report.adopted += 1;
                }
                // Ours by externalId: kept and fixed when in the copy, deleted when not.
                self.remember(kind, object, scim_id, current.map(Vec::as_slice), ledger)
                    .await;
            }
        }
        Ok(())
    }

    /// Finds on the server the desired objects the ledger does not know, by `externalId`.
    async fn look_up_unknown(
        &self,
        desired: &Desired,
        ledger: &mut Ledger,
        report: &mut Report,
    ) -> Result<(), Failure> {
        let unknown: Vec<(Kind, Uuid)> = desired
            .users
            .keys()
            .map(|o| (Kind::User, *o))
            .chain(desired.groups.keys().map(|o| (Kind::Group, *o)))
            .filter(|key| !ledger.contains_key(key))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        if self.caps.filter && unknown.len() <= FILTER_LOOKUPS {
            for (kind, object) in unknown {
                if let Some(scim_id) = self.client.find(kind, &object.to_string()).await? {
                    report.adopted += 1;
                    self.remember(kind, object, &scim_id, None, ledger).await;
                }
            }
            return Ok(());
        }
        for kind in [Kind::User, Kind::Group] {
            for resource in self.client.list(kind, self.caps).await? {
                let (Some(scim_id), Some(object)) = (
                    resource["id"].as_str(),
                    resource["externalId"]
                        .as_str()
                        .and_then(|e| Uuid::parse_str(e).ok()),
                ) else {
                    continue;
                };
                if unknown.contains(&(kind, object)) {
                    report.adopted += 1;
                    self.remember(kind, object, scim_id, None, ledger).await;
                }
            }
        }
        Ok(())
    }

    /// Creates or updates every user whose representation is not the one last written.
    async fn write_users(&self, desired: &Desired, ledger: &mut Ledger, report: &mut Report) {
        let mut writes = Vec::new();
        let mut hashes = Vec::new();
        for (object, (body, hash)) in &desired.users {
            let known = ledger.get(&(Kind::User, *object));
            if known.is_some_and(|e| e.hash.as_ref() == Some(hash)) {
                continue;
            }
            writes.push(Write {
                kind: Kind::User,
                object: *object,
                scim_id: known.map(|e| e.scim_id.clone()),
                cleared: self.mapping.cleared(body),
                body: Some(body.clone()),
                plain: None,
            });
            hashes.push(hash.clone());
        }
        let outcomes = self.send_all(&writes).await;
        for ((w, hash), (outcome, _)) in writes.iter().zip(hashes).zip(outcomes) {
            self.record(w.kind, w.object, Some(hash), outcome, ledger, report)
                .await;
        }
    }

    /// Creates the groups the server lacks, then writes every group whose name or members
    /// changed, so members that are groups created in this push resolve. One at a time, a
    /// new group is created bare; in a bulk request, with its members, those created earlier
    /// in the same request referred to by `bulkId` (a group with a member left out, created
    /// later, is written again in the second step).
    async fn write_groups(&self, desired: &Desired, ledger: &mut Ledger, report: &mut Report) {
        let new = nested_first(
            desired
                .groups
                .iter()
                .filter(|(object, _)| !ledger.contains_key(&(Kind::Group, **object)))
                .collect(),
        );
        if self.caps.bulk {
            // Sized as if every member were written, so the references fit too.
            let sizes: Vec<usize> = new
                .iter()
                .map(|(_, (name, members, _))| name.len() + 100 * members.len() + BULK_GROUP)
                .collect();
            // A request at a time: the next one names what this one created by its ids.
            for chunk in bulk_chunks(self.caps, &sizes) {
                let batch = &new[chunk];
                let mut writes = Vec::with_capacity(batch.len());
                let mut hashes = Vec::with_capacity(batch.len());
                let mut before = HashSet::new();
                for (object, (name, members, hash)) in batch {
                    let (resolved, complete) = self.members(members, ledger, &before);
                    writes.push(Write {
                        kind: Kind::Group,
                        object: **object,
                        scim_id: None,
                        body: Some(mapping::group(**object, name, &resolved)),
                        cleared: Vec::new(),
                        plain: Some(mapping::group(**object, name, &[])),
                    });
                    hashes.push(complete.then(|| hash.clone()));
                    before.insert(**object);
                }
                self.create_groups(&writes, hashes, ledger, report).await;
            }
        } else {
            let writes: Vec<Write> = new
                .iter()
                .map(|(object, (name, _, _))| Write {
                    kind: Kind::Group,
                    object: **object,
                    scim_id: None,
                    body: Some(mapping::group(**object, name, &[])),
                    cleared: Vec::new(),
                    plain: None,
                })
                .collect();
            // Bare: their hashes stay unset so the members are written next.
            let hashes = vec![None; writes.len()];
            self.create_groups(&writes, hashes, ledger, report).await;
        }
        let mut writes = Vec::new();
        let mut hashes = Vec::new();
        for (object, (name, members, hash)) in &desired.groups {
            let Some(e) = ledger.get(&(Kind::Group, *object)) else {
                continue;
            };
            if e.hash.as_ref() == Some(hash) {
                continue;
            }
            let (resolved, complete) = self.members(members, ledger, &HashSet::new());
            writes.push(Write {
                kind: Kind::Group,
                object: *object,
                scim_id: Some(e.scim_id.clone()),
                body: Some(mapping::group(*object, name, &resolved)),
                cleared: Vec::new(),
                plain: None,
            });
            // A member the server does not have yet: the group is written again later.
            hashes.push(complete.then(|| hash.clone()));
        }
        let outcomes = self.send_all(&writes).await;
        for ((w, hash), (outcome, _)) in writes.iter().zip(hashes).zip(outcomes) {
            self.record(w.kind, w.object, hash, outcome, ledger, report)
                .await;
        }
    }

    /// Sends group creations and records them with `hashes` (`None`: members still to write).
    async fn create_groups(
        &self,
        writes: &[Write],
        hashes: Vec<Option<Vec<u8>>>,
        ledger: &mut Ledger,
        report: &mut Report,
    ) {
        let outcomes = self.send_all(writes).await;
        for ((w, hash), (outcome, whole)) in writes.iter().zip(hashes).zip(outcomes) {
            // Created bare after its bulk creation was refused: its members are still to write.
            let hash = hash.filter(|_| whole);
            self.record(w.kind, w.object, hash, outcome, ledger, report)
                .await;
        }
    }

    /// A group's members by the server's ids (or, for groups of `same_request`, by
    /// `bulkId`), and whether every member could be named.
    fn members(
        &self,
        members: &BTreeSet<Member>,
        ledger: &Ledger,
        same_request: &HashSet<Uuid>,
    ) -> (Vec<(String, bool)>, bool) {
        let mut complete = true;
        let resolved = members
            .iter()
            .filter_map(|m| {
                let kind = if m.group { Kind::Group } else { Kind::User };
                let named = ledger
                    .get(&(kind, m.object_id))
                    .map(|e| e.scim_id.clone())
                    .or_else(|| {
                        (m.group && same_request.contains(&m.object_id))
                            .then(|| format!("{BULK_ID_REF}{}", m.object_id))
                    });
                complete &= named.is_some();
                named.map(|id| (id, m.group))
            })
            .collect();
        (resolved, complete)
    }

    /// Deletes what the ledger holds (of `only`, when given) and the copy no longer does:
    /// groups first, then users.
    async fn delete_gone(
        &self,
        desired: &Desired,
        only: Option<&Touched>,
        ledger: &mut Ledger,
        report: &mut Report,
    ) {
        for kind in [Kind::Group, Kind::User] {
            let writes: Vec<Write> = ledger
                .iter()
                .filter(|((k, object), _)| {
                    *k == kind
                        && only.is_none_or(|t| t.contains(kind, object))
                        && match kind {
                            Kind::User => !desired.users.contains_key(object),
                            Kind::Group => !desired.groups.contains_key(object),
                        }
                })
                .map(|((_, object), e)| Write {
                    kind,
                    object: *object,
                    scim_id: Some(e.scim_id.clone()),
                    body: None,
                    cleared: Vec::new(),
                    plain: None,
                })
                .collect();
            let outcomes = self.send_all(&writes).await;
            for (w, (outcome, _)) in writes.iter().zip(outcomes) {
                self.record(kind, w.object, None, outcome, ledger, report)
                    .await;
            }
        }
    }

    /// Sends `writes`, as `/Bulk` requests when the server takes them, else one request each
    /// ([`IN_FLIGHT`] at a time); their outcomes in order, each with whether the body was
    /// sent whole. A bulk operation the server refuses as a duplicate (409) or a missing
    /// resource (404) is done again on its own, where adopting by `externalId` and creating
    /// again live (without its `bulkId` references: not whole).
    async fn send_all(&self, writes: &[Write]) -> Vec<(Outcome, bool)> {
        if !self.caps.bulk {
            let single = ordered(
                writes
                    .iter()
                    .map(|w| -> BoxFuture<'_, Outcome> { Box::pin(self.send_one(w)) })
                    .collect(),
            )
            .await;
            return single
                .into_iter()
                .zip(writes)
                .map(|(o, w)| (o, w.plain.is_none()))
                .collect();
        }
        let ops: Vec<BulkOp> = writes
            .iter()
            .map(|w| match (&w.body, &w.scim_id) {
                (None, id) => BulkOp::delete(w.kind, id.as_deref().unwrap_or_default()),
                (Some(body), Some(id)) => BulkOp::update(w.kind, id, body, &w.cleared, self.caps),
                (Some(body), None) => BulkOp::create(w.kind, body, &w.object.to_string()),
            })
            .collect();
        let sizes: Vec<usize> = ops.iter().map(BulkOp::size).collect();
        let requests: Vec<BoxFuture<'_, Vec<Result<String, Failure>>>> =
            bulk_chunks(self.caps, &sizes)
                .into_iter()
                .map(|range| -> BoxFuture<'_, _> {
                    let ops = &ops[range];
                    Box::pin(async move {
                        match self.client.bulk(ops).await {
                            Ok(outcomes) => outcomes,
                            Err(f) => vec![Err(f); ops.len()],
                        }
                    })
                })
                .collect();
        let answers = ordered(requests).await.into_iter().flatten();
        let mut outcomes = Vec::with_capacity(writes.len());
        for (w, answer) in writes.iter().zip(answers) {
            outcomes.push(match (answer, &w.body, &w.scim_id) {
                (
                    Ok(_)
                    | Err(Failure {
                        status: Some(404), ..
                    }),
                    None,
                    _,
                ) => (Outcome::Deleted, true),
                (Ok(_), Some(_), Some(id)) => (Outcome::Updated(id.clone()), true),
                (Ok(id), Some(_), None) if !id.is_empty() => (Outcome::Created(id), true),
                (
                    Err(Failure {
                        status: Some(404 | 409),
                        ..
                    }),
                    Some(_),
                    _,
                ) => (self.send_one(w).await, w.plain.is_none()),
                (Err(f), _, _) => (Outcome::Failed(f), true),
                (Ok(_), Some(_), None) => (
                    Outcome::Failed(Failure {
                        what: format!("POST {} (bulk)", w.kind.endpoint()),
                        status: None,
                        detail: "the server's bulk answer has no location for the resource".into(),
                    }),
                    true,
                ),
            });
        }
        outcomes
    }

    /// Sends one write on its own (a bulk creation's body without its `bulkId` references).
    async fn send_one(&self, w: &Write) -> Outcome {
        match &w.body {
            None => match self
                .client
                .delete(w.kind, w.scim_id.as_deref().unwrap_or_default())
                .await
            {
                Ok(()) => Outcome::Deleted,
                Err(f) => Outcome::Failed(f),
            },
            Some(body) => {
                let body = w.plain.as_ref().unwrap_or(body);
                self.write(w.kind, w.scim_id.clone(), body, &w.cleared)
                    .await
            }
        }
    }

    /// Creates (`scim_id` unknown) or writes over one resource. A resource the server lost is
    /// created again; a create the server refuses as taken adopts the one with this
    /// `externalId`, when it can be found.
    async fn write(
        &self,
        kind: Kind,
        scim_id: Option<String>,
        body: &Value,
        cleared: &[&str],
    ) -> Outcome {
        let external = body["externalId"].as_str().unwrap_or_default();
        if let Some(id) = scim_id {
            return match self
                .client
                .update(kind, &id, body, cleared, self.caps)
                .await
            {
                Ok(()) => Outcome::Updated(id),
                Err(Failure {
                    status: Some(404), ..
                }) => self.create(kind, body, external).await,
                Err(f) => Outcome::Failed(f),
            };
        }
        self.create(kind, body, external).await
    }

    async fn create(&self, kind: Kind, body: &Value, external: &str) -> Outcome {
        match self.client.create(kind, body).await {
            Ok(id) => Outcome::Created(id),
            Err(f) if f.status == Some(409) && self.caps.filter => {
                match self.client.find(kind, external).await {
                    Ok(Some(id)) => match self.client.update(kind, &id, body, &[], self.caps).await
                    {
                        Ok(()) => Outcome::Updated(id),
                        Err(f) => Outcome::Failed(f),
                    },
                    _ => Outcome::Failed(f),
                }
            }
            Err(f) => Outcome::Failed(f),
        }
    }
}

/// A desired group: its name, members and hash.
type GroupEntry<'a> = (&'a Uuid, &'a (String, BTreeSet<Member>, Vec<u8>));

/// `groups` reordered so a group nested in another comes before it (a cycle is cut where the
/// walk meets it), so a bulk request can refer to it by `bulkId`.
fn nested_first(groups: Vec<GroupEntry<'_>>) -> Vec<GroupEntry<'_>> {
    let at: HashMap<Uuid, usize> = groups
        .iter()
        .enumerate()
        .map(|(i, (object, _))| (**object, i))
        .collect();
    let nested: Vec<Vec<usize>> = groups
        .iter()
        .map(|(_, (_, members, _))| {
            members
                .iter()
                .filter(|m| m.group)
                .filter_map(|m| at.get(&m.object_id).copied())
                .collect()
        })
        .collect();
    let mut reached = vec![false; groups.len()];
    let mut order = Vec::with_capacity(groups.len());
    for root in 0..groups.len() {
        if reached[root] {
            continue;
        }
        reached[root] = true;
        let mut stack = vec![(root, 0)];
        while let Some(top) = stack.last_mut() {
            let (i, k) = *top;
            if let Some(&member) = nested[i].get(k) {
                top.1 += 1;
                if !reached[member] {
                    reached[member] = true;
                    stack.push((member, 0));
                }
            } else {
                order.push(i);
                stack.pop();
            }
        }
    }
    order.into_iter().map(|i| groups[i]).collect()
}

/// Runs `work`, [`IN_FLIGHT`] at a time; the results in the order of `work`.
async fn ordered<T>(work: Vec<BoxFuture<'_, T>>) -> Vec<T> {
    futures_util::stream::iter(work)
        .buffered(IN_FLIGHT)
        .collect()
        .await
}

/// The `scim_push` background task.
pub struct PushTask {
    db: PgPool,
    keys: Keyring,
}

impl PushTask {
    /// The task over `db`, opening tokens with `keys`.
    pub fn new(db: PgPool, keys: Keyring) -> Self {
        Self { db, keys }
    }
}

impl BackgroundTask for PushTask {
    fn activate<'a>(
        &'a mut self,
        _: &'a Activity,
        stop: &'a CancellationToken,
    ) -> BoxFuture<'a, anyhow::Result<String>> {
        Box::pin(async move {
            let reports = push_due(&self.db, &self.keys, stop).await?;
            let written: usize = reports.iter().map(Report::written).sum();
            let failed: usize = reports.iter().map(|r| r.failures.len()).sum();
            Ok(format!(
                "pushed {} connections: {written} objects written, {failed} failed",
                reports.len()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use uuid::Uuid;

    use super::{Member, nested_first};

    #[test]
    fn nested_groups_come_before_the_groups_they_are_in_and_cycles_end() {
        let [a, b, c, d] = [1u128, 2, 3, 4].map(Uuid::from_u128);
        let of = |ids: &[Uuid]| -> (String, BTreeSet<Member>, Vec<u8>) {
            let members = ids
                .iter()
                .map(|id| Member {
                    object_id: *id,
                    group: true,
                })
                .collect();
            (String::new(), members, Vec::new())
        };
        // a ⊃ b ⊃ c, and d ⊃ a ⊃ … with c ⊃ d closing a cycle.
        let (ga, gb, gc, gd) = (of(&[b]), of(&[c]), of(&[d]), of(&[a]));
        let order: Vec<Uuid> = nested_first(vec![(&a, &ga), (&b, &gb), (&c, &gc), (&d, &gd)])
            .into_iter()
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(order, vec![d, c, b, a]);
        let (gb, gc) = (of(&[]), of(&[b]));
        let order: Vec<Uuid> = nested_first(vec![(&a, &ga), (&c, &gc), (&b, &gb)])
            .into_iter()
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(order, vec![b, a, c]);
    }
}
