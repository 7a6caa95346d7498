//! The deletion guard: a round that would remove more of a tenant's directory than its
//! threshold applies everything else and holds the deletions for an operator.
//!
//! A delta round spans many pages, each committed on its own, so a page does not delete: it
//! stages its deletions (`held_deletions`, status `staged`) in the page's own transaction, and
//! the transaction that ends the chain's round decides them all at once — applied when under the
//! threshold, held otherwise. A crash mid-round resumes with the staged rows in place; a replayed
//! staging changes nothing; an object upserted later in the round (or in any later round) is
//! released from the guard. Held objects stay in the copy until an operator approves (they are
//! deleted then) or rejects (they stay, and later rounds do not hold them again).

use serde_json::json;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::changelog::Logger;
use super::store::{self, Resource};
use crate::audit::{self, Action, Actor};
use crate::settings::{self, Key};
use crate::webhooks::{self, Event, EventType};

/// A round deleting at most this many objects is never held by the share alone: in a
/// five-person directory one departure is 20 %.
pub const FLOOR: i64 = 10;
/// How many names the held notice samples.
const SAMPLE: i64 = 10;

/// How a deletion is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// To the recycle bin.
    Soft,
    /// For good.
    Gone,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Soft => "soft",
            Self::Gone => "gone",
        }
    }
}

/// A tenant's thresholds in force, and whether they are its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Thresholds {
    /// A round deleting more than this share (%) of a chain's objects is held.
    pub percent: i32,
    /// A round deleting more than this many objects of a chain is held.
    pub objects: i32,
    /// The tenant's own share, when set.
    pub own_percent: Option<i32>,
    /// The tenant's own number, when set.
    pub own_objects: Option<i32>,
}

impl Thresholds {
    /// Whether deleting `n` of `total` objects is more than these allow.
    pub fn exceeded(&self, n: i64, total: i64) -> bool {
        n > i64::from(self.objects) || (n > FLOOR && n * 100 > i64::from(self.percent) * total)
    }
}

/// The tenant's thresholds: its own, else the System Settings', else Gangway's defaults.
pub async fn thresholds(
    db: impl sqlx::PgExecutor<'_>,
    tenant: Uuid,
) -> Result<Thresholds, sqlx::Error> {
    let row = sqlx::query!(
        r#"select t.deletion_guard_percent as own_percent, t.deletion_guard_objects as own_objects,
                  (select (value #>> '{}')::int from settings where key = $2) as global_percent,
                  (select (value #>> '{}')::int from settings where key = $3) as global_objects
           from tenants t where t.id = $1"#,
        tenant,
        Key::DeletionGuardPercent.name(),
        Key::DeletionGuardObjects.name(),
    )
    .fetch_one(db)
    .await?;
    Ok(Thresholds {
        percent: row
            .own_percent
            .or(row.global_percent)
            .unwrap_or(settings::DEFAULT_DELETION_GUARD_PERCENT),
        objects: row
            .own_objects
            .or(row.global_objects)
            .unwrap_or(settings::DEFAULT_DELETION_GUARD_OBJECTS),
        own_percent: row.own_percent,
        own_objects: row.own_objects,
    })
}

/// Stages a page's deletions of objects the copy has (a soft deletion only of those not in the
/// recycle bin already). An object already held stays held (its kind follows the latest word);
/// a rejected one is left alone.
pub(super) async fn stage(
    tx: &mut Transaction<'_, Postgres>,
    tenant: Uuid,
    resource: Resource,
    run_id: i64,
    kind: Kind,
    ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        r#"insert into held_deletions (tenant_id, resource, object_id, kind, name, run_id)
           select $1, $2, o.object_id, $3, o.name, $5
           from (select object_id, coalesce(display_name, user_principal_name) as name, soft_deleted_at
                   from directory_users where $2 = 'users' and tenant_id = $1 and object_id = any($4)
                 union all
                 select object_id, display_name, soft_deleted_at
                   from directory_groups where $2 = 'groups' and tenant_id = $1 and object_id = any($4)) o
           where $3 = 'gone' or o.soft_deleted_at is null
           on conflict (tenant_id, resource, object_id) do update
               set kind = excluded.kind, run_id = excluded.run_id
               where held_deletions.status <> 'rejected'"#,
        tenant,
        resource.as_str(),
        kind.as_str(),
        ids,
        run_id,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Releases objects a page upserted: they exist after all, whatever was staged, held or
/// rejected for them.
pub(super) async fn release(
    tx: &mut Transaction<'_, Postgres>,
    tenant: Uuid,
    resource: Resource,
    ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "delete from held_deletions where tenant_id = $1 and resource = $2 and object_id = any($3)",
        tenant,
        resource.as_str(),
        ids,
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Objects in the guard's hands: excluded from a full round's sweep of what it did not see
/// (they are decided here, or kept).
pub(super) async fn guarded(
    tx: &mut Transaction<'_, Postgres>,
    tenant: Uuid,
    resource: Resource,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "select object_id from held_deletions where tenant_id = $1 and resource = $2",
        tenant,
        resource.as_str(),
    )
    .fetch_all(&mut **tx)
    .await
}

/// What the end of a round decided about its staged deletions.
#[derive(Debug, Default)]
pub(super) struct Decision {
    /// Applied: moved to the recycle bin.
    pub(super) soft_deleted: Vec<Uuid>,
    /// Applied: deleted for good.
    pub(super) deleted: Vec<Uuid>,
}

/// Decides the chain's staged deletions at the end of its round, in the round's last
/// transaction: applied when within the tenant's thresholds, else held (and the provider told).
pub(super) async fn decide(
    tx: &mut Transaction<'_, Postgres>,
    log: &Logger,
    resource: Resource,
) -> Result<Decision, sqlx::Error> {
    let tenant = log.tenant;
    // The copy's size is counted only when something is staged: most rounds (an idle one
    // always) stage nothing, and counting a 100,000-user copy took longer than the rest of
    // such a round.
    let staged = sqlx::query!(
        r#"select n as "n!", case when n = 0 then 0 else
                  (select count(*) from directory_users where $2 = 'users' and tenant_id = $1)
                + (select count(*) from directory_groups where $2 = 'groups' and tenant_id = $1)
                  end as "total!"
           from (select count(*) as n from held_deletions
                 where tenant_id = $1 and resource = $2 and status = 'staged') s"#,
        tenant,
        resource.as_str(),
    )
    .fetch_one(&mut **tx)
    .await?;
    if staged.n == 0 {
        return Ok(Decision::default());
    }
    let limits = thresholds(&mut **tx, tenant).await?;
    if limits.exceeded(staged.n, staged.total) {
        sqlx::query!(
            "update held_deletions set status = 'held', held_at = now()
             where tenant_id = $1 and resource = $2 and status = 'staged'",
            tenant,
            resource.as_str(),
        )
        .execute(&mut **tx)
        .await?;
        let held = summary(&mut **tx, tenant).await?;
        webhooks::emit(
            tx,
            &Event::new(
                EventType::DeletionsHeld,
                json!({
                    "tenant_id": tenant,
                    "run_id": log.run_id,
                    "users": held.users,
                    "groups": held.groups,
                    "sample": held.sample,
                    "percent": limits.percent,
                    "objects": limits.objects,
                }),
            ),
        )
        .await?;
        return Ok(Decision::default());
    }
    let taken = sqlx::query!(
        "delete from held_deletions where tenant_id = $1 and resource = $2 and status = 'staged'
         returning object_id, kind",
        tenant,
        resource.as_str(),
    )
    .fetch_all(&mut **tx)
    .await?;
    apply(
        tx,
        log,
        resource,
        taken.into_iter().map(|r| (r.object_id, r.kind)),
    )
    .await
}

/// Applies deletions to the copy, each as its kind says.
async fn apply(
    tx: &mut Transaction<'_, Postgres>,
    log: &Logger,
    resource: Resource,
    rows: impl Iterator<Item = (Uuid, String)>,
) -> Result<Decision, sqlx::Error> {
    let (soft, gone): (Vec<_>, Vec<_>) = rows.partition(|(_, kind)| kind == Kind::Soft.as_str());
    let soft: Vec<Uuid> = soft.into_iter().map(|(id, _)| id).collect();
    let gone: Vec<Uuid> = gone.into_iter().map(|(id, _)| id).collect();
    let soft_deleted = store::soft_remove(tx, log, resource, &soft).await?;
    store::remove(tx, log, resource, &gone).await?;
    Ok(Decision {
        soft_deleted,
        deleted: gone,
    })
}

/// What a tenant has held, as its page and the API show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Held {
    /// Users held.
    pub users: i64,
    /// Groups held.
    pub groups: i64,
    /// Of those, to the recycle bin.
    pub soft_deleted: i64,
    /// Of those, for good.
    pub deleted: i64,
    /// A few of their names, alphabetically.
    pub sample: Vec<String>,
    /// Since when (RFC 3339) the oldest is held.
    #[serde(skip)]
    pub since: Option<time::OffsetDateTime>,
}

impl Held {
    /// Whether anything is held.
    pub fn any(&self) -> bool {
        self.users + self.groups > 0
    }

    /// Objects held.
    pub fn total(&self) -> i64 {
        self.users + self.groups
    }
}

/// What the tenant has held now.
pub async fn summary(db: impl sqlx::PgExecutor<'_>, tenant: Uuid) -> Result<Held, sqlx::Error> {
    let row = sqlx::query!(
        r#"select count(*) filter (where resource = 'users') as "users!",
                  count(*) filter (where resource = 'groups') as "groups!",
                  count(*) filter (where kind = 'soft') as "soft!",
                  count(*) filter (where kind = 'gone') as "gone!",
                  min(held_at) as since,
                  coalesce((select array_agg(n) from (
                      select coalesce(name, object_id::text) as n from held_deletions
                      where tenant_id = $1 and status = 'held' order by 1 limit $2) s), '{}') as "sample!"
           from held_deletions where tenant_id = $1 and status = 'held'"#,
        tenant,
        SAMPLE,
    )
    .fetch_one(db)
    .await?;
    Ok(Held {
        users: row.users,
        groups: row.groups,
        soft_deleted: row.soft,
        deleted: row.gone,
        sample: row.sample,
        since: row.since,
    })
}

/// Tenants with deletions held, among `ids`, with how many.
pub async fn held_counts(db: &PgPool, ids: &[Uuid]) -> Result<Vec<(Uuid, i64)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select tenant_id, count(*) as "n!" from held_deletions
           where tenant_id = any($1) and status = 'held' group by tenant_id"#,
        ids,
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.tenant_id, r.n)).collect())
}

/// Why an operator's decision was refused.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// Nothing is held for the tenant (decided meanwhile, or released by a round).
    #[error("no deletions are held for this tenant")]
    NothingHeld,
    /// A threshold out of range, with why.
    #[error("{0}")]
    Invalid(String),
    /// No tenant has this id.
    #[error("no such tenant")]
    NotFound,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Applies the tenant's held deletions (the provider hears of them as of any deletion);
/// audited. Returns what was applied.
pub async fn approve(db: &PgPool, tenant: Uuid, actor: &Actor) -> Result<Held, GuardError> {
    let mut tx = db.begin().await?;
    let held = locked_summary(&mut tx, tenant).await?;
    let taken = sqlx::query!(
        "delete from held_deletions where tenant_id = $1 and status = 'held'
         returning resource, object_id, kind",
        tenant,
    )
    .fetch_all(&mut *tx)
    .await?;
    let log = Logger::decision(tenant);
    for resource in [Resource::Users, Resource::Groups] {
        let rows = taken
            .iter()
            .filter(|r| r.resource == resource.as_str())
            .map(|r| (r.object_id, r.kind.clone()));
        apply(&mut tx, &log, resource, rows).await?;
    }
    crate::signin::ends::after_copy_changed(&mut tx, tenant).await?;
    audit::record(
        &mut *tx,
        actor,
        Action::DeletionsApproved,
        None,
        Some(tenant),
        json!({ "users": held.users, "groups": held.groups, "sample": held.sample }),
    )
    .await?;
    tx.commit().await?;
    Ok(held)
}

/// Keeps the tenant's held objects: they stay in the copy and later rounds do not hold them
/// again (until they come back and are deleted anew); audited. Returns what was kept.
pub async fn reject(db: &PgPool, tenant: Uuid, actor: &Actor) -> Result<Held, GuardError> {
    let mut tx = db.begin().await?;
    let held = locked_summary(&mut tx, tenant).await?;
    sqlx::query!(
        "update held_deletions set status = 'rejected' where tenant_id = $1 and status = 'held'",
        tenant,
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        actor,
        Action::DeletionsRejected,
        None,
        Some(tenant),
        json!({ "users": held.users, "groups": held.groups, "sample": held.sample }),
    )
    .await?;
    tx.commit().await?;
    Ok(held)
}

/// What is held, with the tenant's row locked (two decisions at once apply one after the
/// other, the second finding nothing); refused when nothing is.
async fn locked_summary(
    tx: &mut Transaction<'_, Postgres>,
    tenant: Uuid,
) -> Result<Held, GuardError> {
    sqlx::query_scalar!("select id from tenants where id = $1 for update", tenant)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(GuardError::NotFound)?;
    let held = summary(&mut **tx, tenant).await?;
    if !held.any() {
        return Err(GuardError::NothingHeld);
    }
    Ok(held)
}

/// Checks a threshold typed for a tenant: a share from 1 to 100 (%), a number from 1 to
/// 1,000,000; `None` means "the global one".
pub fn check_thresholds(percent: Option<i64>, objects: Option<i64>) -> Result<(), GuardError> {
    if percent.is_some_and(|p| !(1..=100).contains(&p)) {
        return Err(GuardError::Invalid(
            "percent must be a whole number from 1 to 100".into(),
        ));
    }
    if objects.is_some_and(|o| !(1..=1_000_000).contains(&o)) {
        return Err(GuardError::Invalid(
            "objects must be a whole number from 1 to 1000000".into(),
        ));
    }
    Ok(())
}

/// Sets (or, with `None`, clears) the tenant's own thresholds; audited.
pub async fn set_thresholds(
    db: &PgPool,
    tenant: Uuid,
    percent: Option<i64>,
    objects: Option<i64>,
    actor: &Actor,
) -> Result<Thresholds, GuardError> {
    check_thresholds(percent, objects)?;
    let mut tx = db.begin().await?;
    let changed = sqlx::query!(
        "update tenants set deletion_guard_percent = $2, deletion_guard_objects = $3 where id = $1",
        tenant,
        percent.map(|p| p as i32),
        objects.map(|o| o as i32),
    )
    .execute(&mut *tx)
    .await?;
    if changed.rows_affected() == 0 {
        return Err(GuardError::NotFound);
    }
    audit::record(
        &mut *tx,
        actor,
        Action::DeletionGuardChanged,
        None,
        Some(tenant),
        json!({ "percent": percent, "objects": objects }),
    )
    .await?;
    let now = thresholds(&mut *tx, tenant).await?;
    tx.commit().await?;
    Ok(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_is_held_above_either_threshold_but_never_for_a_handful() {
        let t = Thresholds {
            percent: 20,
            objects: 500,
            own_percent: None,
            own_objects: None,
        };
        assert!(!t.exceeded(2, 5), "a handful in a small directory");
        assert!(!t.exceeded(20, 100), "exactly the share is allowed");
        assert!(t.exceeded(21, 100));
        assert!(t.exceeded(501, 1_000_000));
        assert!(!t.exceeded(500, 1_000_000));
    }

    #[test]
    fn thresholds_out_of_range_are_refused() {
        assert!(check_thresholds(Some(0), None).is_err());
        assert!(check_thresholds(Some(101), None).is_err());
        assert!(check_thresholds(None, Some(0)).is_err());
        assert!(check_thresholds(Some(50), Some(10)).is_ok());
        assert!(check_thresholds(None, None).is_ok());
    }
}
