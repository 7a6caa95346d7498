//! The directory copy in Postgres. One delta page (during a full round, a few pages in a row)
//! is applied in one transaction together with the link that follows it and the run's counts,
//! so a crash resumes at the page it stopped on and nothing is lost or counted into the copy
//! twice. Upserts are idempotent (a replayed page
//! changes nothing), write only the properties the page carried, and every statement is
//! scoped by tenant.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sqlx::{Acquire, PgPool, Postgres, Transaction};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::changelog::{self, Logger};
use super::delta::{Change, GroupFields, Link, MemberChange, Overlay, Page, UserFields, fold};
use super::guard;
use crate::events::EventType;

/// A delta chain: users and groups are synced independently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    /// `/users/delta`.
    Users,
    /// `/groups/delta` with members.
    Groups,
}

impl Resource {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Users => "users",
            Self::Groups => "groups",
        }
    }

    /// Where a full round starts: the delta function with the replicated properties.
    pub fn first_link(self) -> &'static str {
        match self {
            Self::Users => {
                "v1.0/users/delta?$select=userPrincipalName,displayName,givenName,surname,mail,businessPhones,mobilePhone,jobTitle,department,accountEnabled"
            }
            Self::Groups => {
                "v1.0/groups/delta?$select=displayName,description,mail,mailEnabled,securityEnabled,members"
            }
        }
    }
}

/// Where a chain stands, as last committed.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ChainState {
    /// Mid-round: the next page.
    pub next_link: Option<String>,
    /// After a completed round: where the next round starts.
    pub delta_link: Option<String>,
    /// Full rounds so far (from 1); rows carry the last full round that saw them.
    pub round: i64,
    /// Whether the current round is a full one (it ends by dropping what it did not see).
    pub full_round: bool,
}

impl ChainState {
    /// The link to fetch next.
    pub fn link(&self, resource: Resource) -> &str {
        self.next_link
            .as_deref()
            .or(self.delta_link.as_deref())
            .unwrap_or(resource.first_link())
    }

    /// The chain once a page with `link` is applied: mid-round at its next link, or, at a
    /// delta link, at the end of an incremental round.
    pub fn after(&self, link: &Link) -> ChainState {
        match link {
            Link::Next(next) => ChainState {
                next_link: Some(next.clone()),
                ..self.clone()
            },
            Link::Delta(delta) => ChainState {
                next_link: None,
                delta_link: Some(delta.clone()),
                round: self.round,
                full_round: false,
            },
        }
    }
}

/// What a run did so far; also what one page adds to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, sqlx::FromRow, serde::Serialize)]
pub struct Tally {
    /// Objects new to the copy.
    pub added: i32,
    /// Objects whose properties changed (or that came back from the recycle bin).
    pub updated: i32,
    /// Objects moved to the recycle bin.
    pub soft_deleted: i32,
    /// Objects gone for good (deleted, or vanished during a full round).
    pub removed: i32,
    /// Memberships added.
    pub members_added: i32,
    /// Memberships removed.
    pub members_removed: i32,
    /// Pages applied.
    pub pages: i32,
    /// Waits Graph asked for (429, 503).
    pub throttled_waits: i32,
    /// Their total, in seconds.
    pub throttled_seconds: f64,
}

impl Tally {
    /// Adds `other` in.
    pub fn add(&mut self, other: &Tally) {
        self.added += other.added;
        self.updated += other.updated;
        self.soft_deleted += other.soft_deleted;
        self.removed += other.removed;
        self.members_added += other.members_added;
        self.members_removed += other.members_removed;
        self.pages += other.pages;
        self.throttled_waits += other.throttled_waits;
        self.throttled_seconds += other.throttled_seconds;
    }

    /// Objects touched: added, updated, soft-deleted or removed.
    pub fn objects(&self) -> i64 {
        i64::from(self.added)
            + i64::from(self.updated)
            + i64::from(self.soft_deleted)
            + i64::from(self.removed)
    }
}

/// Why a page was not applied.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The tenant was offboarded or stopped meanwhile: the sync ends here.
    #[error("the tenant is no longer active")]
    TenantInactive,
    /// The chain moved on under this worker (its job was taken over): nothing was written.
    #[error("the sync state changed under this worker")]
    StateMoved,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// The chain's state, created (empty: a full round) on first use.
pub async fn chain_state(
    db: &PgPool,
    tenant: Uuid,
    resource: Resource,
) -> Result<ChainState, sqlx::Error> {
    // One round trip: the row as created, or (the statement's snapshot does not see what it
    // inserted) as it was.
    let state = sqlx::query_as(
        "with created as (
            insert into sync_state (tenant_id, resource) values ($1, $2) on conflict do nothing
            returning next_link, delta_link, round, full_round
         )
         select next_link, delta_link, round, full_round from created
         union all
         select next_link, delta_link, round, full_round from sync_state
         where tenant_id = $1 and resource = $2",
    )
    .bind(tenant)
    .bind(resource.as_str())
    .fetch_optional(db)
    .await?;
    match state {
        Some(state) => Ok(state),
        // Created by a transaction that committed after this statement's snapshot was taken.
        None => {
            sqlx::query_as(
                "select next_link, delta_link, round, full_round from sync_state
                 where tenant_id = $1 and resource = $2",
            )
            .bind(tenant)
            .bind(resource.as_str())
            .fetch_one(db)
            .await
        }
    }
}

/// Starts the chain over with a full round (its delta link expired or was reset); what the
/// round does not see is dropped at its end. Returns the new state.
pub async fn restart_chain(
    db: &PgPool,
    tenant: Uuid,
    resource: Resource,
) -> Result<ChainState, sqlx::Error> {
    sqlx::query_as(
        "update sync_state set next_link = null, delta_link = null, round = round + 1,
                full_round = true, round_started_at = null
         where tenant_id = $1 and resource = $2
         returning next_link, delta_link, round, full_round",
    )
    .bind(tenant)
    .bind(resource.as_str())
    .fetch_one(db)
    .await
}

/// An object type the copy keeps.
pub trait Stored: Overlay + Sized {
    /// Its chain.
    const RESOURCE: Resource;
    /// The page's upserts as JSON rows for `jsonb_to_recordset`, with a bit mask `m` of the
    /// properties present.
    fn row(id: Uuid, fields: &Self) -> Value;
    /// The `with` queries that insert the page's new objects (`ins`) and update the
    /// properties present on known ones (`upd`), restoring soft-deleted ones: over the rows
    /// `$3` for tenant `$1` and round `$4`, each returning the table's columns, `changed` and
    /// `created`. [`upsert_objects`] logs what they return.
    const UPSERT: &'static str;
}

/// `Some(v)` when the page carried the property, and the bit to say so.
fn bit<T: serde::Serialize>(mask: &mut i32, n: u32, field: &Option<Option<T>>) -> Value {
    match field {
        Some(v) => {
            *mask |= 1 << n;
            json!(v)
        }
        None => Value::Null,
    }
}

impl Stored for UserFields {
    const RESOURCE: Resource = Resource::Users;

    fn row(id: Uuid, f: &Self) -> Value {
        let mut m = 0;
        let mut row = json!({
            "id": id,
            "upn": bit(&mut m, 0, &f.user_principal_name),
            "dn": bit(&mut m, 1, &f.display_name),
            "gn": bit(&mut m, 2, &f.given_name),
            "sn": bit(&mut m, 3, &f.surname),
            "mail": bit(&mut m, 4, &f.mail),
            "phones": bit(&mut m, 5, &f.business_phones),
            "mobile": bit(&mut m, 6, &f.mobile_phone),
            "title": bit(&mut m, 7, &f.job_title),
            "dept": bit(&mut m, 8, &f.department),
            "enabled": bit(&mut m, 9, &f.account_enabled),
        });
        row["m"] = json!(m);
        row
    }

    // Data-modifying CTEs share one snapshot: `upd` sees only the rows that existed
    // before the statement, so it never touches what `ins` adds; `known` (the ids `ins`
    // did not add) spares a first round one lookup per row.
    // The ids as an array, and the statement planned afresh each time (not
    // kept prepared): a first round fills the table from empty faster than statistics
    // follow, and a plan kept from when it was small scans every row of the tenant on
    // every page; with the array the lookups stay on the primary key however stale the
    // statistics, and a fresh plan sees the table's size.
    // A new object starts in the sync scope only in a tenant that copies everyone (`s`, read
    // once per statement): elsewhere the round's end brings it in, with its `created`
    // event, if the scope holds it, so no event shows it early.
    // The events are built from the rows `ins` and `upd` return, not looked up afterwards.
    const UPSERT: &'static str = "with u as (
                select * from jsonb_to_recordset($3) as u(id uuid, m int, upn text, dn text, gn text,
                    sn text, mail text, phones text[], mobile text, title text, dept text, enabled boolean)
             ), s as (
                select sync_scope = 'all' as all_in from tenants where id = $1
             ), ins as (
                insert into directory_users (tenant_id, object_id, user_principal_name, display_name,
                    given_name, surname, mail, business_phones, mobile_phone, job_title, department,
                    account_enabled, seen_round, in_scope)
                select $1, id, upn, dn, gn, sn, mail, coalesce(phones, '{}'), mobile, title, dept, enabled, $4,
                    (select all_in from s)
                from u
                on conflict (tenant_id, object_id) do nothing
                returning *, true as changed, true as created
             ), known as (
                select array_agg(id) as ids from u where id not in (select object_id from ins)
             ), n as (
                select o.object_id, x.*,
                       (x.upn, x.dn, x.gn, x.sn, x.mail, x.phones, x.mobile, x.title, x.dept, x.enabled)
                         is distinct from
                       (o.user_principal_name, o.display_name, o.given_name, o.surname, o.mail,
                        o.business_phones, o.mobile_phone, o.job_title, o.department, o.account_enabled)
                       or o.soft_deleted_at is not null as changed
                from u join directory_users o on o.tenant_id = $1 and o.object_id = u.id
                    and o.object_id = any((select ids from known)::uuid[])
                cross join lateral (select
                    case when u.m & 1 <> 0 then u.upn else o.user_principal_name end as upn,
                    case when u.m & 2 <> 0 then u.dn else o.display_name end as dn,
                    case when u.m & 4 <> 0 then u.gn else o.given_name end as gn,
                    case when u.m & 8 <> 0 then u.sn else o.surname end as sn,
                    case when u.m & 16 <> 0 then u.mail else o.mail end as mail,
                    case when u.m & 32 <> 0 then coalesce(u.phones, '{}') else o.business_phones end as phones,
                    case when u.m & 64 <> 0 then u.mobile else o.mobile_phone end as mobile,
                    case when u.m & 128 <> 0 then u.title else o.job_title end as title,
                    case when u.m & 256 <> 0 then u.dept else o.department end as dept,
                    case when u.m & 512 <> 0 then u.enabled else o.account_enabled end as enabled) x
             ), upd as (
                update directory_users d set user_principal_name = n.upn, display_name = n.dn,
                    given_name = n.gn, surname = n.sn, mail = n.mail, business_phones = n.phones,
                    mobile_phone = n.mobile, job_title = n.title, department = n.dept,
                    account_enabled = n.enabled, soft_deleted_at = null, last_seen_at = now(),
                    seen_round = $4, updated_at = case when n.changed then now() else d.updated_at end
                from n where d.tenant_id = $1 and d.object_id = n.object_id
                    and d.object_id = any((select ids from known)::uuid[])
                returning d.*, n.changed, false as created
             )";
}

impl Stored for GroupFields {
    const RESOURCE: Resource = Resource::Groups;

    fn row(id: Uuid, f: &Self) -> Value {
        let mut m = 0;
        let mut row = json!({
            "id": id,
            "dn": bit(&mut m, 0, &f.display_name),
            "descr": bit(&mut m, 1, &f.description),
            "mail": bit(&mut m, 2, &f.mail),
            "me": bit(&mut m, 3, &f.mail_enabled),
            "se": bit(&mut m, 4, &f.security_enabled),
        });
        row["m"] = json!(m);
        row
    }

    // As for users: the ids' array and a fresh plan keep the lookups on the index, a new
    // group starts in the scope only in a tenant that copies everyone, and the events are
    // built from the rows written.
    const UPSERT: &'static str = "with u as (
                select * from jsonb_to_recordset($3)
                    as u(id uuid, m int, dn text, descr text, mail text, me boolean, se boolean)
             ), s as (
                select sync_scope = 'all' as all_in from tenants where id = $1
             ), ins as (
                insert into directory_groups (tenant_id, object_id, display_name, description, mail,
                    mail_enabled, security_enabled, seen_round, in_scope)
                select $1, id, dn, descr, mail, me, se, $4, (select all_in from s) from u
                on conflict (tenant_id, object_id) do nothing
                returning *, true as changed, true as created
             ), known as (
                select array_agg(id) as ids from u where id not in (select object_id from ins)
             ), n as (
                select o.object_id, x.*,
                       (x.dn, x.descr, x.mail, x.me, x.se) is distinct from
                       (o.display_name, o.description, o.mail, o.mail_enabled, o.security_enabled)
                       or o.soft_deleted_at is not null as changed
                from u join directory_groups o on o.tenant_id = $1 and o.object_id = u.id
                    and o.object_id = any((select ids from known)::uuid[])
                cross join lateral (select
                    case when u.m & 1 <> 0 then u.dn else o.display_name end as dn,
                    case when u.m & 2 <> 0 then u.descr else o.description end as descr,
                    case when u.m & 4 <> 0 then u.mail else o.mail end as mail,
                    case when u.m & 8 <> 0 then u.me else o.mail_enabled end as me,
                    case when u.m & 16 <> 0 then u.se else o.security_enabled end as se) x
             ), upd as (
                update directory_groups d set display_name = n.dn, description = n.descr,
                    mail = n.mail, mail_enabled = n.me, security_enabled = n.se,
                    soft_deleted_at = null, last_seen_at = now(), seen_round = $4,
                    updated_at = case when n.changed then now() else d.updated_at end
                from n where d.tenant_id = $1 and d.object_id = n.object_id
                    and d.object_id = any((select ids from known)::uuid[])
                returning d.*, n.changed, false as created
             )";
}

/// Applies one page of `F` objects for `tenant` to the copy (or several pages of a round,
/// joined), moves the chain to the page's link, and adds the page's counts plus `fetching`
/// (the pages fetched and the throttling met) to run `run_id` — all in one transaction. `state` is the chain as the page was fetched from it:
/// if the chain moved meanwhile nothing is written. Returns the new state and the page's tally.
///
/// `db` is the pool, or a connection taken from it beforehand.
///
/// With `earlier`, the page's rows are written while the batch before it is still being
/// written in a transaction of its own, and its link waits for word that that one committed
/// (the chain is then where `state` says): no batch commits before the one before it. Without
/// the word (that write failed), nothing is written. Nothing that batch may still lock is
/// taken before the word: the memberships' lock waits for it too (only the round's last batch,
/// never written beside another, deletes or decides deletions).
///
/// The steps run in this order, each returning what it counted and logging one event per
/// object and membership it changed: upserts (releasing them from the deletion guard),
/// memberships, deletions staged for the guard, at a round's end what it did not see staged too
/// and the guard's decision on them all (the deletions it lets through logged before the rows
/// go), the link and the run's counts — all in the same transaction.
pub async fn apply_page<'c, F: Stored>(
    db: impl Acquire<'c, Database = Postgres>,
    tenant: Uuid,
    run_id: i64,
    state: &ChainState,
    page: Page<F>,
    fetching: Tally,
    mut earlier: Option<oneshot::Receiver<()>>,
) -> Result<(ChainState, Tally), StoreError> {
    let mut tx = db.begin().await?;
    let all_visible = ensure_active(&mut tx, tenant).await?;
    if !all_visible {
        // The events' look at what the scope shows probes the copy for each row.
        plan_afresh(&mut tx).await?;
    }
    let ctx = PageCtx::<F> {
        log: Logger {
            tenant,
            run_id: Some(run_id),
            round: state.round,
            all_visible,
        },
        stored: std::marker::PhantomData,
    };
    let changes = Changes::split(page.changes);
    let mut done = Tally {
        pages: fetching.pages,
        throttled_waits: fetching.throttled_waits,
        throttled_seconds: fetching.throttled_seconds,
        ..Tally::default()
    };
    let upserted = changes.ids();
    done.add(&upsert_objects(&mut tx, &ctx, changes.rows).await?);
    guard::release(&mut tx, tenant, F::RESOURCE, &upserted).await?;
    // The batch before may still take the memberships' lock: taking it first and then waiting
    // for that batch (outside Postgres, which would not see the cycle) would wait forever.
    if !changes.members.is_empty() {
        committed(earlier.take()).await?;
    }
    done.add(&apply_memberships(&mut tx, &ctx, &changes.members).await?);
    // Deletions wait for the round's end, where the guard decides them all at once.
    for (kind, ids) in [
        (guard::Kind::Soft, &changes.soft),
        (guard::Kind::Gone, &changes.gone),
    ] {
        guard::stage(&mut tx, tenant, F::RESOURCE, run_id, kind, ids).await?;
    }
    if matches!(page.link, Link::Delta(_)) {
        done.add(&end_round(&mut tx, &ctx, state).await?);
    }
    committed(earlier).await?;
    let next = follow_link(&mut tx, &ctx, state, &page.link, run_id, &done).await?;
    // Sign-in sessions of users this page disabled or deleted end with it (after the link: the
    // end of a first round also ends those of users it did not copy). A page of an incremental
    // round that changed no object (an idle round's) changed no session's user.
    if done.objects() > 0 || state.full_round {
        crate::signin::ends::after_copy_changed(&mut tx, tenant).await?;
    }
    tx.commit().await?;
    Ok((next, done))
}

/// Waits for word that the batch written before this one committed; without it (that write
/// failed), the chain is not where this batch would move it from.
async fn committed(earlier: Option<oneshot::Receiver<()>>) -> Result<(), StoreError> {
    match earlier {
        Some(word) => word.await.map_err(|_| StoreError::StateMoved),
        None => Ok(()),
    }
}

/// Holds the tenant row shared for the page's transaction, which keeps an offboarding (and a
/// change of scope) from interleaving with the page; refuses a tenant no longer active. Says
/// whether the tenant copies everyone and flags nobody out of its scope (see
/// [`Logger::all_visible`]): a page only ever brings objects into such a tenant's scope.
async fn ensure_active(
    tx: &mut Transaction<'_, Postgres>,
    tenant: Uuid,
) -> Result<bool, StoreError> {
    // Planned for each page, not kept prepared: a connection keeps the generic plan it made
    // while the copy was small (a scan of the whole table, the cheapest then), and went on
    // scanning the table, 100,000 users later, on every page until an ANALYZE replanned it.
    let sql = format!(
        "select status, sync_scope = 'all' and {} from tenants where id = $1 for share",
        changelog::NONE_OUT_OF_SCOPE
    );
    let row: Option<(String, bool)> = sqlx::query_as(&sql)
        .bind(tenant)
        .persistent(false)
        .fetch_optional(&mut **tx)
        .await?;
    match row {
        Some((status, all_visible)) if status == "active" => Ok(all_visible),
        _ => Err(StoreError::TenantInactive),
    }
}

/// What every step of one page knows: whose page it is, and how to log what it changed.
struct PageCtx<F> {
    log: Logger,
    /// The kind of object only (no `F` is held, so the context goes between threads).
    stored: std::marker::PhantomData<fn() -> F>,
}

/// A page's changes, sorted by what is done with them.
struct Changes {
    /// Upserts as rows for [`Stored::upsert`].
    rows: Vec<Value>,
    /// Membership changes of the upserted groups: (group, change).
    members: Vec<(Uuid, MemberChange)>,
    /// Moved to the recycle bin.
    soft: Vec<Uuid>,
    /// Gone for good.
    gone: Vec<Uuid>,
}

impl Changes {
    /// The ids of the objects upserted.
    fn ids(&self) -> Vec<Uuid> {
        self.rows
            .iter()
            .filter_map(|r| r["id"].as_str().and_then(|i| i.parse().ok()))
            .collect()
    }

    /// Folds the page's changes (the last word on each object wins) and sorts them.
    fn split<F: Stored>(changes: Vec<Change<F>>) -> Self {
        let mut out = Changes {
            rows: Vec::new(),
            members: Vec::new(),
            soft: Vec::new(),
            gone: Vec::new(),
        };
        for change in fold(changes) {
            match change {
                Change::Upsert {
                    id,
                    fields,
                    members,
                } => {
                    out.rows.push(F::row(id, &fields));
                    out.members.extend(members.into_iter().map(|m| (id, m)));
                }
                Change::SoftDeleted(id) => out.soft.push(id),
                Change::Deleted(id) => out.gone.push(id),
            }
        }
        out
    }
}

/// Upserts the page's objects; logs those created and those changed, each as now stored, from
/// what the upsert returned.
async fn upsert_objects<F: Stored>(
    tx: &mut Transaction<'_, Postgres>,
    ctx: &PageCtx<F>,
    rows: Vec<Value>,
) -> Result<Tally, sqlx::Error> {
    let mut tally = Tally::default();
    if rows.is_empty() {
        return Ok(tally);
    }
    let sql = format!(
        "{}, written as (
            select * from ins union all select * from upd where changed
         ), logged as ({})
         select (select count(*) from ins)::int, (select count(*) from upd where changed)::int",
        F::UPSERT,
        ctx.log.upserted(F::RESOURCE, "written")
    );
    // Planned afresh each time (not kept prepared): see the users' `UPSERT`.
    (tally.added, tally.updated) = sqlx::query_as(&sql)
        .bind(ctx.log.tenant)
        .bind(ctx.log.run_id)
        .bind(Value::Array(rows))
        .bind(ctx.log.round)
        .persistent(false)
        .fetch_one(&mut **tx)
        .await?;
    Ok(tally)
}

/// Applies the page's membership changes; logs those added and removed.
async fn apply_memberships<F: Stored>(
    tx: &mut Transaction<'_, Postgres>,
    ctx: &PageCtx<F>,
    members: &[(Uuid, MemberChange)],
) -> Result<Tally, sqlx::Error> {
    let mut tally = Tally::default();
    if members.is_empty() {
        return Ok(tally);
    }
    lock_memberships(tx, ctx.log.tenant).await?;
    (tally.members_added, tally.members_removed) = apply_members(tx, &ctx.log, members).await?;
    Ok(tally)
}

/// Moves objects to the recycle bin (those not there already) and logs their deletion;
/// returns those moved.
pub(super) async fn soft_remove(
    tx: &mut Transaction<'_, Postgres>,
    log: &Logger,
    resource: Resource,
    ids: &[Uuid],
) -> Result<Vec<Uuid>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // The table is the resource's: built per resource, so not checked.
    let moved: Vec<Uuid> = sqlx::query_scalar(&format!(
        "update {} set soft_deleted_at = now(), updated_at = now()
         where tenant_id = $1 and object_id = any($2) and soft_deleted_at is null
         returning object_id",
        changelog::table(resource)
    ))
    .bind(log.tenant)
    .bind(ids)
    .fetch_all(&mut **tx)
    .await?;
    log.deletions(tx, resource, "d.object_id = any($3)", false, &moved)
        .await?;
    Ok(moved)
}

/// The end of the chain's round: at the end of a full round what it did not see is staged as
/// gone, then the guard decides the round's deletions. Counts those applied.
async fn end_round<F: Stored>(
    tx: &mut Transaction<'_, Postgres>,
    ctx: &PageCtx<F>,
    state: &ChainState,
) -> Result<Tally, sqlx::Error> {
    // Once a round, over the tenant's whole copy.
    plan_afresh(tx).await?;
    if state.full_round {
        stage_vanished(tx, &ctx.log, F::RESOURCE).await?;
    }
    let decision = guard::decide(tx, &ctx.log, F::RESOURCE).await?;
    Ok(Tally {
        soft_deleted: decision.soft_deleted.len() as i32,
        removed: decision.deleted.len() as i32,
        ..Tally::default()
    })
}

/// Has every later statement of `tx` planned with its own values, never by the generic plan a
/// long-lived connection keeps for a prepared statement after five uses, made with the tables
/// as they were then: one made while the copy was small scans every tenant's rows where the key
/// finds one's. For the statements that probe a tenant's whole copy (a round's end, the
/// scope's recomputation, the visibility of a narrowed scope), at the price of planning each.
pub(super) async fn plan_afresh(tx: &mut Transaction<'_, Postgres>) -> Result<(), sqlx::Error> {
    sqlx::query("set local plan_cache_mode = force_custom_plan")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Moves the chain to the page's link, unless it moved under this worker meanwhile, and adds
/// the page's counts `done` to run `run_id` — one statement. A delta link ends the round.
async fn follow_link<F: Stored>(
    tx: &mut Transaction<'_, Postgres>,
    ctx: &PageCtx<F>,
    state: &ChainState,
    link: &Link,
    run_id: i64,
    done: &Tally,
) -> Result<ChainState, StoreError> {
    let next = state.after(link);
    let moved = sqlx::query_scalar!(
        r#"with moved as (
             update sync_state set next_link = $5, delta_link = $6, full_round = $7,
                    round_started_at = case when $5::text is null then null else coalesce(round_started_at, now()) end,
                    last_round_at = case when $5::text is null then now() else last_round_at end
             where tenant_id = $1 and resource = $2 and round = $3 and next_link is not distinct from $4
             returning 1
         ), counted as (
             update sync_runs set added = added + $9, updated = updated + $10,
                    soft_deleted = soft_deleted + $11, removed = removed + $12,
                    members_added = members_added + $13, members_removed = members_removed + $14,
                    pages = pages + $15, throttled_waits = throttled_waits + $16,
                    throttled_seconds = throttled_seconds + $17, full_round = full_round or $18
             where id = $8 and exists (select from moved)
         )
         select count(*) as "moved!" from moved"#,
        ctx.log.tenant,
        F::RESOURCE.as_str(),
        state.round,
        state.next_link.as_deref(),
        next.next_link.as_deref(),
        next.delta_link.as_deref(),
        next.full_round,
        run_id,
        done.added,
        done.updated,
        done.soft_deleted,
        done.removed,
        done.members_added,
        done.members_removed,
        done.pages,
        done.throttled_waits,
        done.throttled_seconds,
        state.full_round,
    )
    .fetch_one(&mut **tx)
    .await?;
    if moved != 1 {
        return Err(StoreError::StateMoved);
    }
    Ok(next)
}

/// Advisory lock class of a tenant's memberships (the key's first half; the second is the
/// tenant's hash).
const MEMBERSHIPS_LOCK: i32 = 0x6d656d62;

/// Takes the tenant's memberships for the rest of the page's transaction. Both chains write
/// them — the groups chain its members, the users chain the memberships of users deleted for
/// good — and two pages deleting the same memberships in different orders deadlock; so a page
/// takes this before its first membership write (after which it locks nothing the other
/// chain's pages hold) and membership-writing pages of a tenant commit one after the other.
pub(super) async fn lock_memberships(
    tx: &mut Transaction<'_, Postgres>,
    tenant: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("select pg_advisory_xact_lock($1, hashtext($2::text))")
        .bind(MEMBERSHIPS_LOCK)
        .bind(tenant)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Adds and removes memberships, each statement logging what it changed; the last word on
/// each (group, member) in the page wins. Returns how many were added and removed.
async fn apply_members(
    tx: &mut Transaction<'_, Postgres>,
    log: &Logger,
    changes: &[(Uuid, MemberChange)],
) -> Result<(i32, i32), sqlx::Error> {
    // In (group, member) order, the primary key's: the rows go into its index side by side
    // rather than scattered.
    let mut last: BTreeMap<(Uuid, Uuid), &MemberChange> = BTreeMap::new();
    for (group, m) in changes {
        last.insert((*group, m.id), m);
    }
    let (mut add_g, mut add_m, mut add_t, mut del_g, mut del_m) =
        (vec![], vec![], vec![], vec![], vec![]);
    for ((group, member), m) in last {
        if m.removed {
            del_g.push(group);
            del_m.push(member);
        } else {
            add_g.push(group);
            add_m.push(member);
            add_t.push(m.kind.trim_start_matches("#microsoft.graph.").to_owned());
        }
    }
    // In the logger's numbering: `$3` the groups, `$5` the members, `$6` the members' types.
    let (mut joined, mut left) = (0, 0);
    if !add_g.is_empty() {
        joined = sqlx::query_scalar(&format!(
            "with ins as (
                insert into directory_group_members (tenant_id, group_id, member_id, member_type, seen_round)
                select $1, g, m, t, $4 from unnest($3::uuid[], $5::uuid[], $6::text[]) as x(g, m, t)
                on conflict (tenant_id, group_id, member_id)
                do update set seen_round = excluded.seen_round, member_type = excluded.member_type
                returning group_id, member_id, member_type, (xmax = 0) as inserted
             ), joined as (
                select group_id, member_id, member_type from ins where inserted
             ), logged as ({})
             select count(*)::int from joined",
            log.membership_events(EventType::MembershipAdded, "joined")
        ))
        .bind(log.tenant)
        .bind(log.run_id)
        .bind(&add_g)
        .bind(log.round)
        .bind(&add_m)
        .bind(&add_t)
        .fetch_one(&mut **tx)
        .await?;
    }
    if !del_g.is_empty() {
        left = sqlx::query_scalar(&format!(
            "with gone as (
                delete from directory_group_members d using unnest($3::uuid[], $5::uuid[]) as x(g, m)
                where d.tenant_id = $1 and d.group_id = x.g and d.member_id = x.m
                returning d.group_id, d.member_id, d.member_type
             ), logged as ({})
             select count(*)::int from gone",
            log.membership_events(EventType::MembershipRemoved, "gone")
        ))
        .bind(log.tenant)
        .bind(log.run_id)
        .bind(&del_g)
        .bind(log.round)
        .bind(&del_m)
        .fetch_one(&mut **tx)
        .await?;
    }
    Ok((joined, left))
}

/// Deletes objects for good, logging first their deletion (those the copy has) and the
/// removal of the memberships that go with them; they leave every group they were in (a
/// group's own members go by cascade). Graph reports those departures in the groups'
/// `members@delta` too, but the other chain may not have reached them yet. Returns how many.
pub(super) async fn remove(
    tx: &mut Transaction<'_, Postgres>,
    log: &Logger,
    resource: Resource,
    ids: &[Uuid],
) -> Result<i32, sqlx::Error> {
    if ids.is_empty() {
        return Ok(0);
    }
    lock_memberships(tx, log.tenant).await?;
    log.deletions(tx, resource, "d.object_id = any($3)", true, ids)
        .await?;
    let departing = changelog::departing(resource, "o.object_id = any($3)");
    log.memberships(tx, EventType::MembershipRemoved, &departing, ids, &[])
        .await?;
    // The table is the resource's: built per resource, so not checked.
    let n = sqlx::query(&format!(
        "delete from {} where tenant_id = $1 and object_id = any($2)",
        changelog::table(resource)
    ))
    .bind(log.tenant)
    .bind(ids)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    sqlx::query("delete from directory_group_members where tenant_id = $1 and member_id = any($2)")
        .bind(log.tenant)
        .bind(ids)
        .execute(&mut **tx)
        .await?;
    Ok(n as i32)
}

/// At the end of a full round: what it did not see vanished meanwhile, and is staged as gone
/// (objects the guard holds or keeps are its own). The groups chain also drops (and logs the
/// removal of) the memberships the round did not see, but not those of objects in the guard's
/// hands: nothing held is lost.
async fn stage_vanished(
    tx: &mut Transaction<'_, Postgres>,
    log: &Logger,
    resource: Resource,
) -> Result<(), sqlx::Error> {
    let (tenant, round) = (log.tenant, log.round);
    let guarded = guard::guarded(tx, tenant, resource).await?;
    // The table is the resource's: built per resource, so not checked.
    let vanished: Vec<Uuid> = sqlx::query_scalar(&format!(
        "select object_id from {} where tenant_id = $1 and seen_round < $2 and object_id <> all($3)",
        changelog::table(resource)
    ))
    .bind(tenant)
    .bind(round)
    .bind(&guarded)
    .fetch_all(&mut **tx)
    .await?;
    let run_id = log.run_id.unwrap_or_default();
    guard::stage(tx, tenant, resource, run_id, guard::Kind::Gone, &vanished).await?;
    if resource == Resource::Groups {
        lock_memberships(tx, tenant).await?;
        let users = guard::guarded(tx, tenant, Resource::Users).await?;
        // Staging put every vanished group in the guard's hands too.
        let mut groups = guarded;
        groups.extend(vanished);
        // `$3` the guarded groups, `$5` the guarded users.
        let unseen = "d.seen_round < $4 and d.group_id <> all($3) and d.member_id <> all($3)
                      and d.member_id <> all($5)";
        log.memberships(tx, EventType::MembershipRemoved, unseen, &groups, &users)
            .await?;
        sqlx::query(
            "delete from directory_group_members
             where tenant_id = $1 and seen_round < $2
               and group_id <> all($3) and member_id <> all($3) and member_id <> all($4)",
        )
        .bind(tenant)
        .bind(round)
        .bind(&groups)
        .bind(&users)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
