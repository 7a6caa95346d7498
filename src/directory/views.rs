//! Read-only queries over a tenant's sync state and directory copy, for pages and scripts.
//! Every query is scoped by the tenant.

use std::collections::HashMap;

use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::SYNC_JOB;
use super::runs::{RunOutcome, RunTrigger};
use super::store::Tally;
use super::sync::FailureKind;
use crate::tenants::TenantStatus;
use crate::types::Schedule;

/// Failed syncs in a row after which a tenant counts as unhealthy.
pub const UNHEALTHY_AFTER: i32 = 3;

/// One sync run as recorded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SyncRun {
    /// The run's id.
    pub id: i64,
    /// Why it ran.
    pub trigger: RunTrigger,
    /// How it ended (or `Running`).
    pub outcome: RunOutcome,
    /// A full round (everything read again) rather than the changes since the last one.
    pub full_round: bool,
    /// What it did so far.
    #[serde(flatten)]
    pub counts: Tally,
    /// Why it failed, in plain words.
    pub error: Option<String>,
    /// When it started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// When it ended.
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
}

impl SyncRun {
    /// How long it ran, or has been running until `now`.
    pub fn duration(&self, now: OffsetDateTime) -> time::Duration {
        self.finished_at.unwrap_or(now) - self.started_at
    }
}

/// Where a tenant's sync stands, in one word for lists and badges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncHealth {
    /// No sync succeeded yet.
    NeverSynced,
    /// A sync is running.
    Syncing,
    /// The last sync succeeded.
    Synced,
    /// The last attempt (or fewer than [`UNHEALTHY_AFTER`] in a row) failed; retried.
    Retrying,
    /// [`UNHEALTHY_AFTER`] or more syncs in a row failed.
    Failing,
    /// The credential stopped working: the customer must consent again.
    ReconsentNeeded,
    /// Offboarded or disabled: not synced.
    Stopped,
}

impl SyncHealth {
    /// Where a tenant in `status` stands, given whether a run is running, its last success and
    /// its failures in a row.
    pub fn of(
        status: TenantStatus,
        running: bool,
        last_success: Option<OffsetDateTime>,
        failures: i32,
    ) -> Self {
        match status {
            TenantStatus::ReconsentRequired => Self::ReconsentNeeded,
            TenantStatus::Offboarded | TenantStatus::Disabled => Self::Stopped,
            _ if running || status == TenantStatus::Syncing => Self::Syncing,
            _ if failures >= UNHEALTHY_AFTER => Self::Failing,
            _ if failures > 0 => Self::Retrying,
            _ if last_success.is_some() => Self::Synced,
            _ => Self::NeverSynced,
        }
    }

    /// A stable name (also the badge's CSS class).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NeverSynced => "never_synced",
            Self::Syncing => "syncing",
            Self::Synced => "synced",
            Self::Retrying => "retrying",
            Self::Failing => "failing",
            Self::ReconsentNeeded => "reconsent_required",
            Self::Stopped => "stopped",
        }
    }

    /// As people read it.
    pub fn label(self) -> &'static str {
        match self {
            Self::NeverSynced => "Never synced",
            Self::Syncing => "Syncing",
            Self::Synced => "Synced",
            Self::Retrying => "Retrying after a failure",
            Self::Failing => "Failing",
            Self::ReconsentNeeded => "Consent needed again",
            Self::Stopped => "Not synced",
        }
    }
}

/// A tenant's sync as its page shows it.
#[derive(Debug, Clone)]
pub struct SyncSummary {
    /// The tenant's status.
    pub status: TenantStatus,
    /// Its schedule (the default when none is stored).
    pub schedule: Schedule,
    /// Whether that is the default, no schedule being stored.
    pub default_schedule: bool,
    /// When the scheduler next enqueues a sync.
    pub next_sync_at: Option<OffsetDateTime>,
    /// When a sync last succeeded.
    pub last_sync_success_at: Option<OffsetDateTime>,
    /// Failed syncs in a row since then.
    pub sync_failures: i32,
    /// The last failure, in plain words.
    pub sync_error: Option<String>,
    /// What kind of failure that was (with `sync_error` only).
    pub failure_kind: Option<FailureKind>,
    /// Users in the copy (not in the recycle bin).
    pub users: i64,
    /// Groups in the copy (not in the recycle bin).
    pub groups: i64,
    /// Group memberships in the copy.
    pub memberships: i64,
    /// The run under way, if any.
    pub running: Option<SyncRun>,
    /// Whether a sync job is waiting in the queue.
    pub queued: bool,
    /// When the queued job is due (a failed run's retry waits its backoff).
    pub queued_for: Option<OffsetDateTime>,
    /// About how many objects a full round touches: the last successful full round's count,
    /// else the copy's size; `None` before any copy exists.
    pub full_round_objects: Option<i64>,
}

impl SyncSummary {
    /// Where the sync stands.
    pub fn health(&self) -> SyncHealth {
        SyncHealth::of(
            self.status,
            self.running.is_some(),
            self.last_sync_success_at,
            self.sync_failures,
        )
    }
}

/// A checked query reading [`SyncRun`]s from `sync_runs`; `$tail` (a string literal) filters
/// and orders.
macro_rules! select_runs {
    ($tail:tt $(, $arg:expr)* $(,)?) => {
        sqlx::query!(
            r#"select id, trigger as "trigger: crate::directory::runs::RunTrigger",
                      outcome as "outcome: crate::directory::runs::RunOutcome", full_round,
                      added, updated, soft_deleted, removed, members_added, members_removed, pages,
                      throttled_waits, throttled_seconds, error, started_at, finished_at
               from sync_runs "# + $tail
            $(, $arg)*
        )
        .map(|r| $crate::directory::views::SyncRun {
            id: r.id,
            trigger: r.trigger,
            outcome: r.outcome,
            full_round: r.full_round,
            counts: $crate::directory::runs::tally_of!(r),
            error: r.error,
            started_at: r.started_at,
            finished_at: r.finished_at,
        })
    };
}

pub(super) use select_runs;

/// The tenant's sync summary; `None` when there is no such tenant.
pub async fn sync_summary(
    db: &PgPool,
    tenant_id: Uuid,
) -> Result<Option<SyncSummary>, sqlx::Error> {
    let row = sqlx::query!(
        r#"select t.status as "status: TenantStatus", t.sync_schedule, t.next_sync_at,
                  t.last_sync_success_at, t.sync_failures, t.sync_error, t.sync_failure_kind,
                  (select count(*) from directory_users u
                    where u.tenant_id = t.id and u.soft_deleted_at is null and u.in_scope) as "users!",
                  (select count(*) from directory_groups g
                    where g.tenant_id = t.id and g.soft_deleted_at is null and g.in_scope) as "groups!",
                  (select count(*) from directory_group_members m where m.tenant_id = t.id)
                      as "memberships!",
                  (select min(j.run_at) from jobs j
                    where j.tenant_id = t.id and j.kind = $2 and j.status = 'queued') as queued_for,
                  (select r.added::bigint + r.updated + r.soft_deleted + r.removed from sync_runs r
                    where r.tenant_id = t.id and r.full_round and r.outcome = 'succeeded'
                    order by r.id desc limit 1) as last_full_round
           from tenants t where t.id = $1"#,
        tenant_id,
        SYNC_JOB,
    )
    .fetch_optional(db)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let schedule = super::schedule::effective(db, row.sync_schedule.as_deref()).await?;
    Ok(Some(SyncSummary {
        status: row.status,
        default_schedule: row.sync_schedule.is_none(),
        schedule,
        next_sync_at: row.next_sync_at,
        last_sync_success_at: row.last_sync_success_at,
        sync_failures: row.sync_failures,
        failure_kind: row
            .sync_failure_kind
            .filter(|_| row.sync_error.is_some())
            .map(|k| FailureKind::parse(&k)),
        sync_error: row.sync_error,
        full_round_objects: row
            .last_full_round
            .or(Some(row.users + row.groups))
            .filter(|n| *n > 0),
        users: row.users,
        groups: row.groups,
        memberships: row.memberships,
        running: running_run(db, tenant_id).await?,
        queued: row.queued_for.is_some(),
        queued_for: row.queued_for,
    }))
}

/// The tenant's run under way, if any: its latest run, when that is still running (only one
/// job of a tenant runs at a time, so no earlier run is still going).
pub async fn running_run(db: &PgPool, tenant_id: Uuid) -> Result<Option<SyncRun>, sqlx::Error> {
    let latest = select_runs!("where tenant_id = $1 order by id desc limit 1", tenant_id)
        .fetch_optional(db)
        .await?;
    Ok(latest.filter(|r| r.outcome == RunOutcome::Running))
}

/// Whether a sync job of the tenant waits in the queue.
pub async fn sync_queued(db: &PgPool, tenant_id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select exists (select 1 from jobs where tenant_id = $1 and kind = $2 and status = 'queued')
               as "queued!""#,
        tenant_id,
        SYNC_JOB,
    )
    .fetch_one(db)
    .await
}

/// One page of the tenant's runs, newest first, with the total.
pub async fn runs(
    db: &PgPool,
    tenant_id: Uuid,
    limit: i64,
    offset: i64,
) -> Result<(Vec<SyncRun>, i64), sqlx::Error> {
    let rows = select_runs!(
        "where tenant_id = $1 order by id desc limit $2 offset $3",
        tenant_id,
        limit,
        offset,
    )
    .fetch_all(db)
    .await?;
    let total = sqlx::query_scalar!(
        r#"select count(*) as "count!" from sync_runs where tenant_id = $1"#,
        tenant_id
    )
    .fetch_one(db)
    .await?;
    Ok((rows, total))
}

/// A tenant's sync as the tenants list shows it.
#[derive(Debug, Clone)]
pub struct TenantSync {
    /// The tenant.
    pub tenant_id: Uuid,
    /// Its status.
    pub status: TenantStatus,
    /// When the scheduler next enqueues a sync.
    pub next_sync_at: Option<OffsetDateTime>,
    /// When a sync last succeeded.
    pub last_sync_success_at: Option<OffsetDateTime>,
    /// Failed syncs in a row.
    pub sync_failures: i32,
    /// The last failure, in plain words.
    pub sync_error: Option<String>,
    /// Users in the copy (not in the recycle bin).
    pub users: i64,
    /// Groups in the copy (not in the recycle bin).
    pub groups: i64,
    /// Whether a run is under way.
    pub running: bool,
}

impl TenantSync {
    /// Where the sync stands.
    pub fn health(&self) -> SyncHealth {
        SyncHealth::of(
            self.status,
            self.running,
            self.last_sync_success_at,
            self.sync_failures,
        )
    }
}

/// The sync of each of `tenant_ids`, in one query, by tenant.
pub async fn tenant_syncs(
    db: &PgPool,
    tenant_ids: &[Uuid],
) -> Result<HashMap<Uuid, TenantSync>, sqlx::Error> {
    let rows = sqlx::query_as!(
        TenantSync,
        r#"select t.id as tenant_id, t.status as "status: TenantStatus", t.next_sync_at,
                  t.last_sync_success_at, t.sync_failures, t.sync_error,
                  (select count(*) from directory_users u
                    where u.tenant_id = t.id and u.soft_deleted_at is null and u.in_scope) as "users!",
                  (select count(*) from directory_groups g
                    where g.tenant_id = t.id and g.soft_deleted_at is null and g.in_scope) as "groups!",
                  coalesce((select r.outcome = 'running' from sync_runs r
                             where r.tenant_id = t.id order by r.id desc limit 1), false)
                      as "running!"
           from tenants t where t.id = any($1)"#,
        tenant_ids as &[Uuid],
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.tenant_id, r)).collect())
}

/// A search term as the directory queries take it: a pattern, and the object id it names if
/// it is one.
pub(super) fn search_terms(search: Option<&str>) -> (Option<String>, Option<Uuid>) {
    let search = search.map(str::trim).filter(|s| !s.is_empty());
    (
        search.map(crate::db::contains_pattern),
        search.and_then(|s| Uuid::parse_str(s).ok()),
    )
}

/// A user in the directory copy.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct DirectoryUser {
    /// Entra's object id.
    pub object_id: Uuid,
    /// Sign-in name.
    pub user_principal_name: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// First name.
    pub given_name: Option<String>,
    /// Last name.
    pub surname: Option<String>,
    /// Primary email address.
    pub mail: Option<String>,
    /// Office phones.
    pub business_phones: Vec<String>,
    /// Mobile phone.
    pub mobile_phone: Option<String>,
    /// Job title.
    pub job_title: Option<String>,
    /// Department.
    pub department: Option<String>,
    /// Whether the account may sign in (`None`: not reported).
    pub account_enabled: Option<bool>,
    /// When it went to Entra's recycle bin, if it is there.
    #[serde(with = "time::serde::rfc3339::option")]
    pub soft_deleted_at: Option<OffsetDateTime>,
    /// When a sync last saw it.
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    /// When a sync last changed it.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// [`DirectoryUser`]'s columns, for the dynamic feed (the checked queries name them), in the
/// order [`UserRow`] reads them.
pub(super) const USER_COLUMNS: &str =
    "object_id, user_principal_name, display_name, given_name, surname, mail, business_phones,
    mobile_phone, job_title, department, account_enabled, soft_deleted_at, last_seen_at,
    updated_at";

/// A user's row as an API page reads it ([`USER_COLUMNS`]), serialised as [`DirectoryUser`]
/// is, straight from the row: its strings are written from the row's own bytes, never copied
/// into strings of their own first (a page of a hundred users held about a thousand).
pub struct UserRow {
    /// Its object id (the API's cursor).
    pub object_id: Uuid,
    row: sqlx::postgres::PgRow,
}

impl TryFrom<sqlx::postgres::PgRow> for UserRow {
    type Error = sqlx::Error;

    fn try_from(row: sqlx::postgres::PgRow) -> Result<Self, Self::Error> {
        use sqlx::Row;
        Ok(Self {
            object_id: row.try_get_unchecked(0)?,
            row,
        })
    }
}

/// [`DirectoryUser`] borrowing its strings from a [`UserRow`]; the two serialise alike (the
/// API's tests compare a page with what `DirectoryUser` writes).
#[derive(serde::Serialize)]
struct DirectoryUserRef<'r> {
    object_id: Uuid,
    user_principal_name: Option<&'r str>,
    display_name: Option<&'r str>,
    given_name: Option<&'r str>,
    surname: Option<&'r str>,
    mail: Option<&'r str>,
    business_phones: Vec<String>,
    mobile_phone: Option<&'r str>,
    job_title: Option<&'r str>,
    department: Option<&'r str>,
    account_enabled: Option<bool>,
    #[serde(with = "time::serde::rfc3339::option")]
    soft_deleted_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    last_seen_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

impl<'r> DirectoryUserRef<'r> {
    /// By position, in [`USER_COLUMNS`]' order, and without comparing each column's type to
    /// the field's again: finding each column by its name, then checking its type, were
    /// measurable parts of serving a page. The columns are this module's own.
    fn read(row: &'r sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        Ok(Self {
            object_id: row.try_get_unchecked(0)?,
            user_principal_name: row.try_get_unchecked(1)?,
            display_name: row.try_get_unchecked(2)?,
            given_name: row.try_get_unchecked(3)?,
            surname: row.try_get_unchecked(4)?,
            mail: row.try_get_unchecked(5)?,
            business_phones: row.try_get_unchecked(6)?,
            mobile_phone: row.try_get_unchecked(7)?,
            job_title: row.try_get_unchecked(8)?,
            department: row.try_get_unchecked(9)?,
            account_enabled: row.try_get_unchecked(10)?,
            soft_deleted_at: row.try_get_unchecked(11)?,
            last_seen_at: row.try_get_unchecked(12)?,
            updated_at: row.try_get_unchecked(13)?,
        })
    }
}

impl serde::Serialize for UserRow {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        DirectoryUserRef::read(&self.row)
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

/// A checked query over a tenant's `directory_users` (`$1`) narrowed by a search (`$2` a
/// `contains_pattern`, `$3` an object id) and a [`UserState`] (`$4`), given as `query!(head
/// tokens)` then `$tail` and the arguments: the page and its count share this one condition.
macro_rules! users_matching {
    ($($query:ident)::+ !($($head:tt)*), $tail:literal $(, $arg:expr)* $(,)?) => {
        $($query)::+!(
            $($head)* r"where tenant_id = $1 and in_scope
                  and ($2::text is null or display_name ilike $2 escape '\'
                       or user_principal_name ilike $2 escape '\' or mail ilike $2 escape '\'
                       or object_id = $3)
                  and ($4::text is null
                       or ($4 = 'enabled' and soft_deleted_at is null and account_enabled is not false)
                       or ($4 = 'disabled' and soft_deleted_at is null and account_enabled is false)
                       or ($4 = 'deleted' and soft_deleted_at is not null)) "
                + $tail
            $(, $arg)*
        )
    };
}

/// One page of the tenant's users by display name, optionally narrowed to those whose name,
/// UPN or mail contains `search` (or whose object id it is); recycle-bin users included. With
/// the total.
pub async fn users(
    db: &PgPool,
    tenant_id: Uuid,
    search: Option<&str>,
    state: Option<UserState>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<DirectoryUser>, i64), sqlx::Error> {
    let state = state.map(UserState::as_str);
    let (pattern, id) = search_terms(search);
    let rows = users_matching!(
        sqlx::query_as!(
            DirectoryUser,
            r"select object_id, user_principal_name, display_name, given_name, surname, mail,
                     business_phones, mobile_phone, job_title, department, account_enabled,
                     soft_deleted_at, last_seen_at, updated_at
              from directory_users " +
        ),
        "order by display_name, object_id limit $5 offset $6",
        tenant_id,
        pattern,
        id,
        state,
        limit,
        offset,
    )
    .fetch_all(db)
    .await?;
    let total = users_matching!(
        sqlx::query_scalar!(r#"select count(*) as "count!" from directory_users "# +),
        "",
        tenant_id,
        pattern,
        id,
        state,
    )
    .fetch_one(db)
    .await?;
    Ok((rows, total))
}

/// One user of the tenant, if it is in the sync scope.
pub async fn user(
    db: &PgPool,
    tenant_id: Uuid,
    user_id: Uuid,
) -> Result<Option<DirectoryUser>, sqlx::Error> {
    sqlx::query_as!(
        DirectoryUser,
        r"select object_id, user_principal_name, display_name, given_name, surname, mail,
                 business_phones, mobile_phone, job_title, department, account_enabled,
                 soft_deleted_at, last_seen_at, updated_at
          from directory_users where tenant_id = $1 and object_id = $2 and in_scope",
        tenant_id,
        user_id,
    )
    .fetch_optional(db)
    .await
}

/// Which users of the copy a list shows: active accounts, disabled ones, or those in Entra's
/// recycle bin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserState {
    /// Enabled (or not known to be disabled), not deleted.
    Enabled,
    /// Sign-in blocked, not deleted.
    Disabled,
    /// In the recycle bin.
    Deleted,
}

impl UserState {
    /// Every state, in the order a filter offers them.
    pub const ALL: [UserState; 3] = [Self::Enabled, Self::Disabled, Self::Deleted];

    /// Its name in links and queries.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Disabled => "disabled",
            Self::Deleted => "deleted",
        }
    }

    /// As people read it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Enabled => "Enabled",
            Self::Disabled => "Disabled",
            Self::Deleted => "In recycle bin",
        }
    }

    /// The state named `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

/// A group in the directory copy, with its member count.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct DirectoryGroup {
    /// Entra's object id.
    pub object_id: Uuid,
    /// Display name.
    pub display_name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Email address, for mail-enabled groups.
    pub mail: Option<String>,
    /// Whether it receives mail.
    pub mail_enabled: Option<bool>,
    /// Whether it grants access (a security group).
    pub security_enabled: Option<bool>,
    /// When it went to Entra's recycle bin, if it is there.
    #[serde(with = "time::serde::rfc3339::option")]
    pub soft_deleted_at: Option<OffsetDateTime>,
    /// Members in the copy.
    pub members: i64,
}

impl DirectoryGroup {
    /// Its kind as Entra's admin center names it.
    pub fn kind(&self) -> &'static str {
        match (self.security_enabled, self.mail_enabled) {
            (Some(true), Some(true)) => "Mail-enabled security",
            (Some(true), _) => "Security",
            (_, Some(true)) => "Microsoft 365 or distribution",
            _ => "Other",
        }
    }
}

pub(super) const GROUP_COLUMNS: &str =
    "g.object_id, g.display_name, g.description, g.mail, g.mail_enabled,
    g.security_enabled, g.soft_deleted_at,
    (select count(*) from directory_group_members m
      where m.tenant_id = g.tenant_id and m.group_id = g.object_id) as members";

/// A checked query reading [`DirectoryGroup`]s from `directory_groups g` (the columns of
/// [`GROUP_COLUMNS`], which the dynamic feed uses); `$tail` (string literals, joined with `+`)
/// filters and orders.
macro_rules! select_groups {
    ($tail:literal $(+ $more:literal)* $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            DirectoryGroup,
            r#"select g.object_id, g.display_name, g.description, g.mail, g.mail_enabled,
                      g.security_enabled, g.soft_deleted_at,
                      (select count(*) from directory_group_members m
                        where m.tenant_id = g.tenant_id and m.group_id = g.object_id) as "members!"
               from directory_groups g "# + $tail $(+ $more)*
            $(, $arg)*
        )
    };
}

/// A checked query over a tenant's `directory_groups g` (`$1`) narrowed by a search (`$2` a
/// `contains_pattern`, `$3` an object id), given as `query!(head tokens)` then `$tail` and the
/// arguments: the page and its count share this one condition.
macro_rules! groups_matching {
    ($($query:ident)::+ !($($head:tt)*), $tail:literal $(, $arg:expr)* $(,)?) => {
        $($query)::+!(
            $($head)* r"where g.tenant_id = $1 and g.in_scope
                  and ($2::text is null or g.display_name ilike $2 escape '\'
                       or g.mail ilike $2 escape '\' or g.description ilike $2 escape '\'
                       or g.object_id = $3) "
                + $tail
            $(, $arg)*
        )
    };
}

/// One page of the tenant's groups by display name, optionally narrowed to those whose name,
/// mail or description contains `search` (or whose object id it is). With the total.
pub async fn groups(
    db: &PgPool,
    tenant_id: Uuid,
    search: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<DirectoryGroup>, i64), sqlx::Error> {
    let (pattern, id) = search_terms(search);
    let rows = groups_matching!(
        select_groups!(),
        "order by g.display_name, g.object_id limit $4 offset $5",
        tenant_id,
        pattern,
        id,
        limit,
        offset,
    )
    .fetch_all(db)
    .await?;
    let total = groups_matching!(
        sqlx::query_scalar!(r#"select count(*) as "count!" from directory_groups g "# +),
        "",
        tenant_id,
        pattern,
        id,
    )
    .fetch_one(db)
    .await?;
    Ok((rows, total))
}

/// One group of the tenant, if it is in the sync scope.
pub async fn group(
    db: &PgPool,
    tenant_id: Uuid,
    group_id: Uuid,
) -> Result<Option<DirectoryGroup>, sqlx::Error> {
    select_groups!(
        "where g.tenant_id = $1 and g.object_id = $2 and g.in_scope",
        tenant_id,
        group_id
    )
    .fetch_optional(db)
    .await
}

/// A member of a group: a user or group of the copy, or one the copy does not hold (yet).
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct GroupMember {
    /// The member's object id.
    pub member_id: Uuid,
    /// As Graph names it: `#microsoft.graph.user`, `#microsoft.graph.group`, …
    pub member_type: String,
    /// Whether the copy holds it (as a user or group).
    pub in_copy: bool,
    /// Its display name, when in the copy.
    pub display_name: Option<String>,
    /// Its UPN, for a user in the copy.
    pub user_principal_name: Option<String>,
    /// Its mail, when in the copy.
    pub mail: Option<String>,
    /// Whether it is in Entra's recycle bin.
    pub soft_deleted: bool,
}

impl GroupMember {
    /// Its type in plain words: User, Group, Device, Contact, or Graph's name.
    pub fn kind(&self) -> String {
        let name = self
            .member_type
            .strip_prefix("#microsoft.graph.")
            .unwrap_or(&self.member_type);
        match name {
            "user" => "User".into(),
            "group" => "Group".into(),
            "device" => "Device".into(),
            "orgContact" => "Contact".into(),
            "servicePrincipal" => "Service principal".into(),
            other => other.to_owned(),
        }
    }

    /// Whether it is a group (whose own page can be linked).
    pub fn is_group(&self) -> bool {
        self.kind() == "Group"
    }
}

/// A checked query over the members of a tenant's (`$1`) group (`$2`), with the users and groups
/// of the copy they are, narrowed by a search (`$3` a `contains_pattern`, `$4` an object id);
/// given as `query!(head tokens)` (the columns) then `$tail` and the arguments: the page and its
/// count share this one `from` and condition.
macro_rules! members_matching {
    ($($query:ident)::+ !($($head:tt)*), $tail:literal $(, $arg:expr)* $(,)?) => {
        $($query)::+!(
            $($head)* r"from directory_group_members m
                left join directory_users u on u.tenant_id = m.tenant_id and u.object_id = m.member_id
                left join directory_groups g on g.tenant_id = m.tenant_id and g.object_id = m.member_id
                where m.tenant_id = $1 and m.group_id = $2 and coalesce(u.in_scope, g.in_scope, true)
                  and ($3::text is null or coalesce(u.display_name, g.display_name) ilike $3 escape '\'
                       or u.user_principal_name ilike $3 escape '\'
                       or coalesce(u.mail, g.mail) ilike $3 escape '\' or m.member_id = $4) "
                + $tail
            $(, $arg)*
        )
    };
}

/// One page of a group's members, those in the copy first by name, then the others by id.
/// With the total.
pub async fn group_members(
    db: &PgPool,
    tenant_id: Uuid,
    group_id: Uuid,
    search: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<GroupMember>, i64), sqlx::Error> {
    let (pattern, id) = search_terms(search);
    let rows = members_matching!(
        sqlx::query_as!(
            GroupMember,
            r#"select m.member_id, m.member_type,
                      (u.object_id is not null or g.object_id is not null) as "in_copy!",
                      coalesce(u.display_name, g.display_name) as display_name,
                      u.user_principal_name as "user_principal_name?",
                      coalesce(u.mail, g.mail) as mail,
                      coalesce(u.soft_deleted_at, g.soft_deleted_at) is not null as "soft_deleted!" "# +
        ),
        "order by (u.object_id is null and g.object_id is null),
                  coalesce(u.display_name, g.display_name), m.member_id
         limit $5 offset $6",
        tenant_id,
        group_id,
        pattern,
        id,
        limit,
        offset,
    )
    .fetch_all(db)
    .await?;
    let total = members_matching!(
        sqlx::query_scalar!(r#"select count(*) as "count!" "# +),
        "",
        tenant_id,
        group_id,
        pattern,
        id,
    )
    .fetch_one(db)
    .await?;
    Ok((rows, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_term_is_a_pattern_or_an_object_id() {
        let id = Uuid::new_v4();
        assert_eq!(search_terms(Some(&format!(" {id} "))).1, Some(id));
        assert_eq!(search_terms(Some("  ")), (None, None));
    }

    #[test]
    fn health_puts_consent_first_then_a_running_sync_then_failures() {
        use SyncHealth::{
            Failing, NeverSynced, ReconsentNeeded, Retrying, Stopped, Synced, Syncing,
        };
        use TenantStatus::{Active, Offboarded, ReconsentRequired};
        let at = Some(OffsetDateTime::now_utc());
        assert_eq!(
            SyncHealth::of(ReconsentRequired, true, at, 5),
            ReconsentNeeded
        );
        assert_eq!(SyncHealth::of(Offboarded, false, at, 0), Stopped);
        assert_eq!(SyncHealth::of(Active, true, at, 4), Syncing);
        assert_eq!(SyncHealth::of(Active, false, at, 3), Failing);
        assert_eq!(SyncHealth::of(Active, false, None, 3), Failing);
        // The first failure already warns: it is not "Synced".
        assert_eq!(SyncHealth::of(Active, false, at, 2), Retrying);
        assert_eq!(SyncHealth::of(Active, false, None, 1), Retrying);
        assert_eq!(SyncHealth::of(Active, false, at, 0), Synced);
        assert_eq!(SyncHealth::of(Active, false, None, 0), NeverSynced);
    }
}
