//! Nested groups in the copy: a group's transitive members and a user's (or any object's)
//! transitive groups, walked in Postgres by recursive queries. `union` (not `union all`)
//! drops a row already reached, so a cycle of groups ends the walk instead of looping.
//! Downward walks follow only group members (`member_type = 'group'`, as the store keeps
//! Graph's type without its `#microsoft.graph.` prefix) on the primary key; upward walks use
//! `directory_group_members_member`. Pages go by object id after a cursor. Only what is in the
//! tenant's sync scope is shown: a group in scope has its members in scope, so a downward walk
//! from one never leaves it, and an upward walk keeps the groups in scope.

use sqlx::PgPool;
use uuid::Uuid;

use super::views::{DirectoryGroup, GroupMember};

/// The start of the keyset: every object id sorts after it.
const BEFORE_ALL: Uuid = Uuid::nil();

/// One page of the members of `group_id`, and of every group nested in it at any depth, by
/// member id after `after`; each member once, the group itself left out (a cycle leads back
/// to it).
pub async fn transitive_members(
    db: &PgPool,
    tenant_id: Uuid,
    group_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<GroupMember>, sqlx::Error> {
    sqlx::query_as!(
        GroupMember,
        r#"with recursive down(id) as (
               select $2::uuid
               union
               select m.member_id from directory_group_members m join down on m.group_id = down.id
               where m.tenant_id = $1 and m.member_type = 'group'
           )
           select distinct on (m.member_id) m.member_id, m.member_type,
                  (u.object_id is not null or g.object_id is not null) as "in_copy!",
                  coalesce(u.display_name, g.display_name) as display_name,
                  u.user_principal_name as "user_principal_name?",
                  coalesce(u.mail, g.mail) as mail,
                  coalesce(u.soft_deleted_at, g.soft_deleted_at) is not null as "soft_deleted!"
           from directory_group_members m
           join down on m.group_id = down.id
           left join directory_users u on u.tenant_id = m.tenant_id and u.object_id = m.member_id
           left join directory_groups g on g.tenant_id = m.tenant_id and g.object_id = m.member_id
           where m.tenant_id = $1 and m.member_id <> $2 and m.member_id > $3
             and coalesce(u.in_scope, g.in_scope, true)
           order by m.member_id
           limit $4"#,
        tenant_id,
        group_id,
        after.unwrap_or(BEFORE_ALL),
        limit,
    )
    .fetch_all(db)
    .await
}

/// How many distinct members `group_id` has at any depth (itself left out).
pub async fn transitive_member_count(
    db: &PgPool,
    tenant_id: Uuid,
    group_id: Uuid,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"with recursive down(id) as (
               select $2::uuid
               union
               select m.member_id from directory_group_members m join down on m.group_id = down.id
               where m.tenant_id = $1 and m.member_type = 'group'
           )
           select count(distinct m.member_id) as "count!"
           from directory_group_members m join down on m.group_id = down.id
           where m.tenant_id = $1 and m.member_id <> $2"#,
        tenant_id,
        group_id,
    )
    .fetch_one(db)
    .await
}

/// One page of the groups `member_id` (a user or any other member) is in, by group id after
/// `after`: directly, or with `transitive` also the groups those are in, at any depth.
pub async fn groups_of(
    db: &PgPool,
    tenant_id: Uuid,
    member_id: Uuid,
    transitive: bool,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<DirectoryGroup>, sqlx::Error> {
    sqlx::query_as!(
        DirectoryGroup,
        r#"with recursive up(id) as (
               select group_id from directory_group_members where tenant_id = $1 and member_id = $2
               union
               select m.group_id from directory_group_members m join up on m.member_id = up.id
               where m.tenant_id = $1 and $3
           )
           select g.object_id, g.display_name, g.description, g.mail, g.mail_enabled,
                  g.security_enabled, g.soft_deleted_at,
                  (select count(*) from directory_group_members m
                    where m.tenant_id = g.tenant_id and m.group_id = g.object_id) as "members!"
           from directory_groups g join up on g.object_id = up.id
           where g.tenant_id = $1 and g.in_scope and g.object_id > $4
           order by g.object_id
           limit $5"#,
        tenant_id,
        member_id,
        transitive,
        after.unwrap_or(BEFORE_ALL),
        limit,
    )
    .fetch_all(db)
    .await
}

/// Whether the copy holds user `user_id` (in the recycle bin or not) in the sync scope.
pub async fn has_user(db: &PgPool, tenant_id: Uuid, user_id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select exists (select from directory_users where tenant_id = $1 and object_id = $2 and in_scope) as "exists!""#,
        tenant_id,
        user_id,
    )
    .fetch_one(db)
    .await
}
