//! The push engine: one connection at a time, leased so two processes never push it at once.
//!
//! A push reads the server's capabilities, computes the desired users and groups from the copy
//! (the tenants in scope) and compares each with the ledger (object id → the server's id, hash
//! of what was last written): new objects are looked up by `externalId` (a filter when the
//! server filters and they are few, one listing otherwise) and adopted or created; changed ones
//! are PATCHed (PUT when the server has no PATCH); ones gone from the copy are deleted. Users go
//! first, then groups (created bare, then written with members, so nested groups resolve), then
//! deletions. Each object is one request at a time, retried inside [`Client`]. A full reconcile
//! also lists the server's users and groups and writes whatever drifted from the copy.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::client::{Capabilities, Client, Failure, Kind};
use super::mapping::{self, CopyUser, Mapping, Member};
use crate::background::{Activity, BackgroundTask};
use crate::crypto::Keyring;
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
/// Failures a push writes to the log (the count is in the summary).
const LOGGED_FAILURES: usize = 20;

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
            "{}: {} created, {} updated, {} deleted, {} adopted, {} failed in {:.1} s",
            if self.reconcile {
                "full reconcile"
            } else {
                "push"
            },
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
    let outcome = run(db, keys, id, reconcile, &mut report).await;
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
                last_error = $3, dirty = dirty or $2,
                capabilities = coalesce($4, capabilities),
                last_reconcile_at = case when $5 and not $2 then now() else last_reconcile_at end,
                reconcile_wanted = reconcile_wanted or ($5 and $2)
         where id = $1",
        id as ScimConnectionId,
        failed,
        report.failures.first().map(ToString::to_string),
        caps.map(|c| json!(c)),
        reconcile,
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

/// The push itself; the server's capabilities when discovery worked.
async fn run(
    db: &PgPool,
    keys: &Keyring,
    id: ScimConnectionId,
    reconcile: bool,
    report: &mut Report,
) -> Result<Capabilities, RunError> {
    let row = sqlx::query!(
        r#"select base_url, token_ciphertext, token_key_id, customer_id as "customer_id: CustomerId"
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
    let desired = desired(db, &mapping, row.customer_id).await?;
    let mut ledger = ledger(db, id).await?;
    let pusher = Pusher {
        db,
        id,
        client: &client,
        caps: &caps,
        mapping: &mapping,
    };
    if reconcile {
        pusher.reconcile(&desired, &mut ledger, report).await?;
    } else {
        pusher
            .look_up_unknown(&desired, &mut ledger, report)
            .await?;
    }
    pusher.write_users(&desired, &mut ledger, report).await;
    pusher.write_groups(&desired, &mut ledger, report).await;
    pusher.delete_gone(&desired, &ledger, report).await;
    Ok(caps)
}

/// The copy in scope as SCIM users and groups.
async fn desired(
    db: &PgPool,
    mapping: &Mapping,
    customer: Option<CustomerId>,
) -> Result<Desired, sqlx::Error> {
    let users = sqlx::query_as!(
        CopyUser,
        r#"select u.object_id, u.user_principal_name, u.display_name, u.given_name, u.surname,
                  u.mail, u.business_phones, u.mobile_phone, u.job_title, u.department,
                  u.account_enabled, u.soft_deleted_at is not null as "soft_deleted!"
           from directory_users u join tenants t on t.id = u.tenant_id
           where t.status <> 'offboarded' and ($1::uuid is null or t.customer_id = $1)"#,
        customer as Option<CustomerId>
    )
    .fetch_all(db)
    .await?;
    let users: BTreeMap<Uuid, (Value, Vec<u8>)> = users
        .iter()
        .filter_map(|u| {
            let body = mapping::user(mapping, u)?;
            let hash = mapping::hash(&body);
            Some((u.object_id, (body, hash)))
        })
        .collect();
    let groups = sqlx::query!(
        r#"select g.object_id, coalesce(g.display_name, '') as "display_name!"
           from directory_groups g join tenants t on t.id = g.tenant_id
           where g.soft_deleted_at is null and t.status <> 'offboarded'
             and ($1::uuid is null or t.customer_id = $1)"#,
        customer as Option<CustomerId>
    )
    .fetch_all(db)
    .await?;
    let members = sqlx::query!(
        r#"select m.group_id, m.member_id, m.member_type = 'group' as "group!"
           from directory_group_members m join tenants t on t.id = m.tenant_id
           where m.member_type in ('user', 'group') and t.status <> 'offboarded'
             and ($1::uuid is null or t.customer_id = $1)"#,
        customer as Option<CustomerId>
    )
    .fetch_all(db)
    .await?;
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
}

impl Pusher<'_> {
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
                            let body = self.group_body(object, name, members, ledger);
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
        let mut work: Vec<BoxFuture<'_, (Uuid, Vec<u8>, Outcome)>> = Vec::new();
        for (object, (body, hash)) in &desired.users {
            let known = ledger.get(&(Kind::User, *object));
            if known.is_some_and(|e| e.hash.as_ref() == Some(hash)) {
                continue;
            }
            let scim_id = known.map(|e| e.scim_id.clone());
            let (object, body, hash) = (*object, body.clone(), hash.clone());
            work.push(Box::pin(async move {
                let cleared = self.mapping.cleared(&body);
                let outcome = self.write(Kind::User, scim_id, &body, &cleared).await;
                (object, hash, outcome)
            }));
        }
        for (object, hash, outcome) in all(work).await {
            self.record(Kind::User, object, Some(hash), outcome, ledger, report)
                .await;
        }
    }

    /// Creates the groups the server lacks (bare), then writes every group whose name or
    /// members changed, so members that are groups created in this push resolve.
    async fn write_groups(&self, desired: &Desired, ledger: &mut Ledger, report: &mut Report) {
        let mut bare: Vec<BoxFuture<'_, (Uuid, Outcome)>> = Vec::new();
        for (object, (name, _, _)) in &desired.groups {
            if ledger.contains_key(&(Kind::Group, *object)) {
                continue;
            }
            let (object, body) = (*object, mapping::group(*object, name, &[]));
            bare.push(Box::pin(async move {
                (object, self.write(Kind::Group, None, &body, &[]).await)
            }));
        }
        for (object, outcome) in all(bare).await {
            // Bare: its hash stays unset so the members are written next.
            self.record(Kind::Group, object, None, outcome, ledger, report)
                .await;
        }
        let mut changed: Vec<BoxFuture<'_, (Uuid, Vec<u8>, Outcome)>> = Vec::new();
        for (object, (name, members, hash)) in &desired.groups {
            let Some(e) = ledger.get(&(Kind::Group, *object)) else {
                continue;
            };
            if e.hash.as_ref() == Some(hash) {
                continue;
            }
            let body = self.group_body(*object, name, members, ledger);
            let (object, hash, scim_id) = (*object, hash.clone(), e.scim_id.clone());
            changed.push(Box::pin(async move {
                let outcome = self.write(Kind::Group, Some(scim_id), &body, &[]).await;
                (object, hash, outcome)
            }));
        }
        for (object, hash, outcome) in all(changed).await {
            self.record(Kind::Group, object, Some(hash), outcome, ledger, report)
                .await;
        }
    }

    /// A group's body with its members by the server's ids.
    fn group_body(
        &self,
        object: Uuid,
        name: &str,
        members: &BTreeSet<Member>,
        ledger: &Ledger,
    ) -> Value {
        let resolved: Vec<(String, bool)> = members
            .iter()
            .filter_map(|m| {
                let kind = if m.group { Kind::Group } else { Kind::User };
                ledger
                    .get(&(kind, m.object_id))
                    .map(|e| (e.scim_id.clone(), m.group))
            })
            .collect();
        mapping::group(object, name, &resolved)
    }

    /// Deletes what the ledger holds and the copy no longer does: groups first, then users.
    async fn delete_gone(&self, desired: &Desired, ledger: &Ledger, report: &mut Report) {
        for kind in [Kind::Group, Kind::User] {
            let gone: Vec<(Uuid, String)> = ledger
                .iter()
                .filter(|((k, object), _)| {
                    *k == kind
                        && match kind {
                            Kind::User => !desired.users.contains_key(object),
                            Kind::Group => !desired.groups.contains_key(object),
                        }
                })
                .map(|((_, object), e)| (*object, e.scim_id.clone()))
                .collect();
            let mut work: Vec<BoxFuture<'_, (Uuid, Outcome)>> = Vec::new();
            for (object, scim_id) in gone {
                work.push(Box::pin(async move {
                    let outcome = match self.client.delete(kind, &scim_id).await {
                        Ok(()) => Outcome::Deleted,
                        Err(f) => Outcome::Failed(f),
                    };
                    (object, outcome)
                }));
            }
            let done = all(work).await;
            let mut scratch = ledger.clone();
            for (object, outcome) in done {
                self.record(kind, object, None, outcome, &mut scratch, report)
                    .await;
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

/// Runs `work`, [`IN_FLIGHT`] at a time.
async fn all<T>(work: Vec<BoxFuture<'_, T>>) -> Vec<T> {
    futures_util::stream::iter(work)
        .buffer_unordered(IN_FLIGHT)
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
