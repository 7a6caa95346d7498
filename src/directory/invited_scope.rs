//! The groups an invitation named for a tenant's sync scope (`invitations::scope`), until they
//! resolve to groups of the copy: at the end of each round once the tenant's groups were read
//! in full, each name to exactly one live group, by object id or by display name (whatever
//! the case). Only when every one does do they become the scope's chosen groups; a name that
//! matches no group, or several, stays pending with the reason, shown on the tenant's Sync
//! scope page, and while any is pending the scope holds no one: never everyone by accident. An
//! operator choosing the scope ends it.

use sqlx::PgConnection;
use uuid::Uuid;

/// A name that is an object id: matched to a group by its key (an index lookup) rather than as
/// text.
const UUID_PATTERN: &str = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";

/// A group an invitation named that is not (yet) one group of the copy.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct PendingGroup {
    /// As the invitation named it.
    pub name: String,
    /// Why it did not resolve (none: not tried yet, before the groups were read in full).
    pub problem: Option<String>,
}

/// Forgets the groups pending for `tenant` (an operator chose its scope).
pub(super) async fn clear(tx: &mut PgConnection, tenant: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!("delete from sync_scope_names where tenant_id = $1", tenant)
        .execute(tx)
        .await?;
    Ok(())
}

/// The groups pending for `tenant`, by name.
pub async fn pending(
    db: impl sqlx::PgExecutor<'_>,
    tenant: Uuid,
) -> Result<Vec<PendingGroup>, sqlx::Error> {
    sqlx::query_as!(
        PendingGroup,
        "select name, problem from sync_scope_names where tenant_id = $1 order by name",
        tenant
    )
    .fetch_all(db)
    .await
}

/// Before a round's end recomputes the scope: once the tenant's groups were read in full,
/// resolves the pending names. Only when every one matches exactly one live group do they
/// become the chosen groups; otherwise each keeps why it did not, and the scope holds no one.
pub(super) async fn resolve(tx: &mut PgConnection, tenant: Uuid) -> Result<(), sqlx::Error> {
    let rows = sqlx::query!(
        r#"select n.name,
                  array(select g.object_id from directory_groups g
                        where g.tenant_id = $1 and g.soft_deleted_at is null
                          and g.object_id = case when n.name ~* $2 then n.name::uuid end)
                    as "by_id!",
                  array(select g.object_id from directory_groups g
                        where g.tenant_id = $1 and g.soft_deleted_at is null
                          and lower(g.display_name) = lower(n.name)) as "by_name!"
           from sync_scope_names n
           where n.tenant_id = $1
             and exists (select from sync_state s where s.tenant_id = $1 and s.resource = 'groups'
                                                      and s.last_round_at is not null)
           order by n.name"#,
        tenant,
        UUID_PATTERN,
    )
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Ok(());
    }
    let mut found = Vec::with_capacity(rows.len());
    let mut problems = Vec::new();
    for row in rows {
        let matches = if row.by_id.is_empty() {
            row.by_name
        } else {
            row.by_id
        };
        match matches.as_slice() {
            [one] => found.push(*one),
            [] => problems.push((
                row.name,
                "no group of the directory has this name or object id".to_owned(),
            )),
            many => problems.push((
                row.name,
                format!(
                    "{} groups have this name: choose the one meant below",
                    many.len()
                ),
            )),
        }
    }
    if problems.is_empty() {
        sqlx::query!(
            "insert into sync_scope_principals (tenant_id, source, principal_id, principal_type)
             select $1, 'chosen', g, 'group' from unnest($2::uuid[]) g on conflict do nothing",
            tenant,
            &found,
        )
        .execute(&mut *tx)
        .await?;
        return clear(tx, tenant).await;
    }
    let (names, reasons): (Vec<String>, Vec<String>) = problems.into_iter().unzip();
    // Those that did resolve are no problem; the others say why.
    sqlx::query!(
        "update sync_scope_names n set problem = x.problem
         from unnest($2::text[], $3::text[]) as x(name, problem)
         where n.tenant_id = $1 and n.name = x.name",
        tenant,
        &names,
        &reasons,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "update sync_scope_names set problem = null where tenant_id = $1 and name <> all($2)",
        tenant,
        &names,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}
