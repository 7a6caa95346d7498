//! The directory copy and the sync runs for scripts: pages in a stable order, each going on
//! after the last item of the one before (a cursor), so rows added meanwhile neither repeat nor
//! get skipped. Every query is scoped by the tenant.

use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::views::{
    DirectoryGroup, DirectoryUser, GROUP_COLUMNS, GroupMember, RUN_COLUMNS, SyncRun, search_terms,
};

/// The tenant's users by object id after `after`, optionally only those changed since
/// `updated_since` or matching `search` (name, UPN, mail or object id).
pub async fn users(
    db: &PgPool,
    tenant_id: Uuid,
    after: Option<Uuid>,
    updated_since: Option<OffsetDateTime>,
    search: Option<&str>,
    limit: i64,
) -> Result<Vec<DirectoryUser>, sqlx::Error> {
    let (pattern, id) = search_terms(search);
    sqlx::query_as(
        "select object_id, user_principal_name, display_name, given_name, surname, mail,
                business_phones, mobile_phone, job_title, department, account_enabled,
                soft_deleted_at, last_seen_at, updated_at
         from directory_users
         where tenant_id = $1 and ($2::uuid is null or object_id > $2)
           and ($3::timestamptz is null or updated_at >= $3)
           and ($4::text is null or display_name ilike $4 escape '\\'
                or user_principal_name ilike $4 escape '\\' or mail ilike $4 escape '\\'
                or object_id = $5)
         order by object_id limit $6",
    )
    .bind(tenant_id)
    .bind(after)
    .bind(updated_since)
    .bind(&pattern)
    .bind(id)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// The tenant's groups by object id after `after`, optionally only those changed since
/// `updated_since` or matching `search`.
pub async fn groups(
    db: &PgPool,
    tenant_id: Uuid,
    after: Option<Uuid>,
    updated_since: Option<OffsetDateTime>,
    search: Option<&str>,
    limit: i64,
) -> Result<Vec<DirectoryGroup>, sqlx::Error> {
    let (pattern, id) = search_terms(search);
    sqlx::query_as(&format!(
        "select {GROUP_COLUMNS} from directory_groups g
         where g.tenant_id = $1 and ($2::uuid is null or g.object_id > $2)
           and ($3::timestamptz is null or g.updated_at >= $3)
           and ($4::text is null or g.display_name ilike $4 escape '\\'
                or g.mail ilike $4 escape '\\' or g.description ilike $4 escape '\\'
                or g.object_id = $5)
         order by g.object_id limit $6"
    ))
    .bind(tenant_id)
    .bind(after)
    .bind(updated_since)
    .bind(&pattern)
    .bind(id)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// A group's members by member id after `after`.
pub async fn members(
    db: &PgPool,
    tenant_id: Uuid,
    group_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<GroupMember>, sqlx::Error> {
    sqlx::query_as(
        "select m.member_id, m.member_type,
                (u.object_id is not null or g.object_id is not null) as in_copy,
                coalesce(u.display_name, g.display_name) as display_name,
                u.user_principal_name, coalesce(u.mail, g.mail) as mail,
                coalesce(u.soft_deleted_at, g.soft_deleted_at) is not null as soft_deleted
         from directory_group_members m
         left join directory_users u on u.tenant_id = m.tenant_id and u.object_id = m.member_id
         left join directory_groups g on g.tenant_id = m.tenant_id and g.object_id = m.member_id
         where m.tenant_id = $1 and m.group_id = $2 and ($3::uuid is null or m.member_id > $3)
         order by m.member_id limit $4",
    )
    .bind(tenant_id)
    .bind(group_id)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// The tenant's runs, newest first, older than run `before`.
pub async fn runs(
    db: &PgPool,
    tenant_id: Uuid,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<SyncRun>, sqlx::Error> {
    sqlx::query_as(&format!(
        "select {RUN_COLUMNS} from sync_runs
         where tenant_id = $1 and ($2::bigint is null or id < $2)
         order by id desc limit $3"
    ))
    .bind(tenant_id)
    .bind(before)
    .bind(limit)
    .fetch_all(db)
    .await
}
