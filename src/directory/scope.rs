//! Sync scope: which of a tenant's users and groups the provider sees — everyone, the
//! transitive members of chosen groups (and those groups), or the users and groups assigned to
//! the provider's enterprise app in the tenant (and the assigned groups' transitive members).
//!
//! The copy keeps every object whatever the scope: delta rounds report changes relative to
//! what was seen before, and a group joining the scope needs its members already there. Each
//! user and group carries `in_scope` instead, recomputed set-based in Postgres at the end of
//! each round and when an operator changes the scope ([`apply`]); what consumers see (the
//! directory API and feed, nested-group answers, console pages) and the events logged through
//! the changelog keep to objects in scope. An object leaving the scope is logged as a deletion
//! (its visible memberships removed first), one entering as created (its memberships added
//! after), so webhooks and the event stream follow with nothing of their own. Nothing is
//! deleted from the copy, so the deletion guard never counts a scope change: it guards the
//! copy, which a scope change does not shrink. Objects in Entra's recycle bin keep their flag
//! (they lost their memberships only for a while).
//!
//! The app-assignment kind reads `appRoleAssignedTo` of the app's service principal once a
//! round (every page); until a first read succeeds its scope is not applied, and a tenant where
//! the service principal is missing fails the sync with a reason instead of emptying the copy.

use serde::Deserialize;
use serde_json::json;
use sqlx::{PgPool, Postgres, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use super::changelog::Logger;
use super::credentials::{TenantAccess, TokenSource};
use super::invited_scope::{self, PendingGroup};
use super::store::{self, Resource};
use super::sync::SyncError;
use crate::audit::{self, Action, Actor};
use crate::events::EventType;
use crate::graph::GraphClient;

/// Which objects a tenant's scope holds.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ScopeKind {
    /// Every user and group.
    All,
    /// The chosen groups, and their members at any depth.
    Groups,
    /// The users and groups assigned to the provider's enterprise app, and the assigned groups'
    /// members at any depth.
    AppAssignments,
}

impl ScopeKind {
    /// Every kind, in the order forms list them.
    pub const ALL: [ScopeKind; 3] = [Self::All, Self::Groups, Self::AppAssignments];

    /// The stored (and wire) form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::Groups => "groups",
            Self::AppAssignments => "app_assignments",
        }
    }

    /// Reads the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// How the console names it.
    pub fn label(self) -> &'static str {
        match self {
            Self::All => "Everyone",
            Self::Groups => "Members of chosen groups",
            Self::AppAssignments => "Users and groups assigned to the enterprise app",
        }
    }
}

/// A group chosen for a scope.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct ScopeGroup {
    /// Its object id.
    pub object_id: Uuid,
    /// Its name in the copy.
    pub display_name: Option<String>,
}

/// A tenant's scope and what it holds now.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Scope {
    /// Which objects it holds.
    pub kind: ScopeKind,
    /// The chosen groups (kind `groups`), by name.
    pub groups: Vec<ScopeGroup>,
    /// Kind `app_assignments`: when the assignments were last read (none yet: the scope is
    /// applied after the next sync reads them).
    #[serde(with = "time::serde::rfc3339::option")]
    pub assignments_read_at: Option<OffsetDateTime>,
    /// Users in scope now.
    pub users_in_scope: i64,
    /// Groups in scope now.
    pub groups_in_scope: i64,
    /// Kind `groups` set by an invitation: the groups it named that are not resolved to one
    /// group of the copy yet. While any is here the scope holds no one; choosing the scope
    /// ends it.
    pub pending_groups: Vec<PendingGroup>,
}

/// Why a scope was not set.
#[derive(Debug, thiserror::Error)]
pub enum ScopeError {
    /// No such tenant (or it was offboarded).
    #[error("no such tenant")]
    NoTenant,
    /// A group scope without a group would hold no one.
    #[error("choose at least one group")]
    NoGroups,
    /// A chosen group is not in the tenant's copy.
    #[error("group {0} is not in the tenant's directory copy")]
    UnknownGroup(Uuid),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// What a recomputation moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Moves {
    /// Users and groups that entered the scope.
    pub entered: usize,
    /// Users and groups that left it.
    pub left: usize,
}

/// The tenant's scope, or `None` for an unknown tenant.
pub async fn get(db: &PgPool, tenant: Uuid) -> Result<Option<Scope>, sqlx::Error> {
    let Some(row) = sqlx::query!(
        r#"select sync_scope, scope_assignments_read_at,
                  (select count(*) from directory_users u where u.tenant_id = t.id and u.in_scope) as "users!",
                  (select count(*) from directory_groups g where g.tenant_id = t.id and g.in_scope) as "groups!"
           from tenants t where t.id = $1"#,
        tenant,
    )
    .fetch_optional(db)
    .await?
    else {
        return Ok(None);
    };
    let groups = sqlx::query_as!(
        ScopeGroup,
        r#"select p.principal_id as object_id, g.display_name as "display_name?"
           from sync_scope_principals p
           left join directory_groups g on g.tenant_id = p.tenant_id and g.object_id = p.principal_id
           where p.tenant_id = $1 and p.source = 'chosen'
           order by g.display_name, p.principal_id"#,
        tenant,
    )
    .fetch_all(db)
    .await?;
    let pending_groups = invited_scope::pending(db, tenant).await?;
    Ok(Some(Scope {
        kind: ScopeKind::parse(&row.sync_scope).unwrap_or(ScopeKind::All),
        groups,
        assignments_read_at: row.scope_assignments_read_at,
        users_in_scope: row.users,
        groups_in_scope: row.groups,
        pending_groups,
    }))
}

/// Groups of the tenant's copy, in scope or not, whose name or mail contains `search` (or whose
/// object id it is), by name: what a group scope may choose from.
pub async fn candidates(
    db: &PgPool,
    tenant: Uuid,
    search: &str,
    limit: i64,
) -> Result<Vec<ScopeGroup>, sqlx::Error> {
    let (pattern, id) = super::views::search_terms(Some(search));
    sqlx::query_as!(
        ScopeGroup,
        r#"select object_id, display_name from directory_groups
           where tenant_id = $1 and soft_deleted_at is null
             and (display_name ilike $2 escape '\' or mail ilike $2 escape '\' or object_id = $3)
           order by display_name, object_id limit $4"#,
        tenant,
        pattern,
        id,
        limit,
    )
    .fetch_all(db)
    .await
}

/// The groups among `ids` with their names in the copy (none for one it does not hold), by
/// name.
pub async fn named(
    db: &PgPool,
    tenant: Uuid,
    ids: &[Uuid],
) -> Result<Vec<ScopeGroup>, sqlx::Error> {
    sqlx::query_as!(
        ScopeGroup,
        r#"select x.id as "object_id!", g.display_name as "display_name?"
           from unnest($2::uuid[]) as x(id)
           left join directory_groups g on g.tenant_id = $1 and g.object_id = x.id
           order by g.display_name, x.id"#,
        tenant,
        ids,
    )
    .fetch_all(db)
    .await
}

/// Sets the tenant's scope (`groups` only for kind `groups`, each a group of its copy) and
/// applies it at once, logging what leaves and enters; audited as
/// [`Action::TenantScopeChanged`] when it changed. An app-assignment scope not yet read waits
/// for the next sync.
pub async fn set(
    db: &PgPool,
    tenant: Uuid,
    kind: ScopeKind,
    groups: &[Uuid],
    actor: &Actor,
) -> Result<Moves, ScopeError> {
    let mut groups = if kind == ScopeKind::Groups {
        groups.to_vec()
    } else {
        Vec::new()
    };
    groups.sort_unstable();
    groups.dedup();
    if kind == ScopeKind::Groups && groups.is_empty() {
        return Err(ScopeError::NoGroups);
    }
    let mut tx = db.begin().await?;
    let old = sqlx::query_scalar!(
        "select sync_scope from tenants where id = $1 and status <> 'offboarded' for update",
        tenant
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(ScopeError::NoTenant)?;
    let known: Vec<Uuid> = sqlx::query_scalar!(
        "select object_id from directory_groups where tenant_id = $1 and object_id = any($2)",
        tenant,
        &groups,
    )
    .fetch_all(&mut *tx)
    .await?;
    if let Some(unknown) = groups.iter().find(|g| !known.contains(g)) {
        return Err(ScopeError::UnknownGroup(*unknown));
    }
    let old_groups: Vec<Uuid> = sqlx::query_scalar!(
        "delete from sync_scope_principals where tenant_id = $1 and source = 'chosen'
         returning principal_id",
        tenant
    )
    .fetch_all(&mut *tx)
    .await?;
    // The operator's choice replaces any groups an invitation named.
    invited_scope::clear(&mut tx, tenant).await?;
    sqlx::query!(
        "insert into sync_scope_principals (tenant_id, source, principal_id, principal_type)
         select $1, 'chosen', g, 'group' from unnest($2::uuid[]) g",
        tenant,
        &groups,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "update tenants set sync_scope = $2 where id = $1",
        tenant,
        kind.as_str()
    )
    .execute(&mut *tx)
    .await?;
    let moves = apply(&mut tx, Logger::decision(tenant)).await?;
    let mut old_sorted = old_groups;
    old_sorted.sort_unstable();
    if old != kind.as_str() || old_sorted != groups {
        audit::record(
            &mut *tx,
            actor,
            Action::TenantScopeChanged,
            None,
            Some(tenant),
            json!({
                "from": old, "to": kind.as_str(), "groups": groups,
                "entered": moves.entered, "left": moves.left,
            }),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(moves)
}

/// One `appRoleAssignedTo` entry: who is assigned.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Assigned {
    principal_id: Uuid,
    principal_type: String,
}

/// At the end of a sync's rounds: reads the enterprise app's assignments when the scope is
/// theirs, then recomputes the scope in one transaction, logged as part of run `run_id`.
pub async fn after_round(
    db: &PgPool,
    graph: &GraphClient,
    tokens: &TokenSource,
    tenant: &TenantAccess,
    run_id: i64,
) -> Result<Moves, SyncError> {
    // The scope's kind and, in a tenant that copies everyone, whether anything is flagged out
    // of it: one round trip. Planned each time, not kept prepared, as the page's look at the
    // scope is (`store`'s `ensure_active`): a plan kept from when the copy was small scans the
    // whole of both tables.
    let scope: Option<(String, bool)> = sqlx::query_as(
        "select t.sync_scope,
                t.sync_scope = 'all'
                and not exists (select from directory_users
                                where tenant_id = $1 and not in_scope and soft_deleted_at is null)
                and not exists (select from directory_groups
                                where tenant_id = $1 and not in_scope and soft_deleted_at is null)
         from tenants t where t.id = $1",
    )
    .bind(tenant.id)
    .persistent(false)
    .fetch_optional(db)
    .await?;
    let Some((kind, settled)) = scope else {
        return Ok(Moves::default());
    };
    let assigned = match ScopeKind::parse(&kind) {
        Some(ScopeKind::AppAssignments) => Some(read_assignments(graph, tokens, tenant).await?),
        // Everyone is copied and nobody is flagged out (new objects start in): nothing can
        // move, and two index probes say so instead of a recomputation over the whole copy.
        Some(ScopeKind::All) if settled => return Ok(Moves::default()),
        _ => None,
    };
    let mut tx = db.begin().await?;
    // The recomputation reads and moves the whole copy.
    store::plan_afresh(&mut tx).await?;
    if let Some(assigned) = assigned {
        let (ids, types): (Vec<Uuid>, Vec<String>) = assigned.into_iter().unzip();
        sqlx::query!(
            "delete from sync_scope_principals where tenant_id = $1 and source = 'assigned'",
            tenant.id
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "insert into sync_scope_principals (tenant_id, source, principal_id, principal_type)
             select $1, 'assigned', p, t from unnest($2::uuid[], $3::text[]) as x(p, t)
             on conflict do nothing",
            tenant.id,
            &ids,
            &types,
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "update tenants set scope_assignments_read_at = now() where id = $1",
            tenant.id
        )
        .execute(&mut *tx)
        .await?;
    }
    invited_scope::resolve(&mut tx, tenant.id).await?;
    let log = Logger {
        tenant: tenant.id,
        run_id: Some(run_id),
        round: 0,
        // This transaction moves objects in and out of the scope.
        all_visible: false,
    };
    let moves = apply(&mut tx, log).await?;
    tx.commit().await?;
    Ok(moves)
}

/// Every user and group assigned to the app Gangway reads the tenant as (every page), as
/// (id, `user` or `group`); service principals assigned are not people and are left out.
async fn read_assignments(
    graph: &GraphClient,
    tokens: &TokenSource,
    tenant: &TenantAccess,
) -> Result<Vec<(Uuid, String)>, SyncError> {
    let app_id = tokens.app_id(tenant).await?;
    let token = tokens.token(tenant).await?;
    let graph = graph.for_tenant(super::budget::app_of(tenant), tenant.entra_tenant_id);
    let mut link = format!("v1.0/servicePrincipals(appId='{app_id}')/appRoleAssignedTo?$top=999");
    let mut out = Vec::new();
    loop {
        let page = match graph.page::<Assigned>(&link, &token).await {
            Ok(page) => page,
            Err(e) if e.is_permission_denied() => {
                return Err(SyncError::PermissionMissing(
                    "Application.Read.All is required to read who is assigned to the enterprise app (the tenant's sync scope): the customer's admin must grant it (consent again), or an operator must choose another scope".into(),
                ));
            }
            Err(e) if e.is_not_found() => {
                return Err(SyncError::PermissionMissing(format!(
                    "the enterprise app {app_id} is not in the tenant (no service principal), so who is assigned to it (the tenant's sync scope) cannot be read: the customer's admin must consent again, or an operator must choose another scope"
                )));
            }
            Err(e) => return Err(SyncError::Graph(e)),
        };
        out.extend(page.value.into_iter().filter_map(|a| {
            let kind = match a.principal_type.as_str() {
                "User" => "user",
                "Group" => "group",
                _ => return None,
            };
            Some((a.principal_id, kind.to_owned()))
        }));
        match page.next_link {
            Some(next) => link = next,
            None => return Ok(out),
        }
    }
}

/// Recomputes which of the tenant's objects are in scope; logs, with `log`, the departure of
/// those leaving (their visible memberships removed, then their deletion) and the arrival of
/// those entering (their creation, then their memberships). An app-assignment scope whose
/// assignments were never read changes nothing.
pub(super) async fn apply(
    tx: &mut Transaction<'_, Postgres>,
    log: Logger,
) -> Result<Moves, sqlx::Error> {
    store::lock_memberships(tx, log.tenant).await?;
    let moving = sqlx::query!(
        r#"with recursive t as (
               select sync_scope as kind from tenants
               where id = $1 and (sync_scope <> 'app_assignments' or scope_assignments_read_at is not null)
           ), down(id) as (
               select principal_id from sync_scope_principals, t
               where tenant_id = $1 and principal_type = 'group'
                 and source = case t.kind when 'groups' then 'chosen' else 'assigned' end
               union
               select m.member_id from directory_group_members m join down on m.group_id = down.id
               where m.tenant_id = $1 and m.member_type = 'group'
           ), users_in(id) as (
               select m.member_id from directory_group_members m join down on m.group_id = down.id
               where m.tenant_id = $1 and m.member_type = 'user'
               union
               select principal_id from sync_scope_principals, t
               where tenant_id = $1 and principal_type = 'user' and source = 'assigned'
                 and t.kind = 'app_assignments'
           ), u as (
               select d.object_id, d.in_scope,
                      (t.kind = 'all' or exists (select from users_in where users_in.id = d.object_id)) as target
               from directory_users d, t where d.tenant_id = $1 and d.soft_deleted_at is null
           ), g as (
               select d.object_id, d.in_scope,
                      (t.kind = 'all' or exists (select from down where down.id = d.object_id)) as target
               from directory_groups d, t where d.tenant_id = $1 and d.soft_deleted_at is null
           )
           select array(select object_id from u where in_scope and not target order by 1) as "users_out!",
                  array(select object_id from u where not in_scope and target order by 1) as "users_in!",
                  array(select object_id from g where in_scope and not target order by 1) as "groups_out!",
                  array(select object_id from g where not in_scope and target order by 1) as "groups_in!""#,
        log.tenant,
    )
    .fetch_one(&mut **tx)
    .await?;
    let leaving: Vec<Uuid> = [&moving.users_out[..], &moving.groups_out[..]].concat();
    let entering: Vec<Uuid> = [&moving.users_in[..], &moving.groups_in[..]].concat();
    let touching = "(d.group_id = any($3) or d.member_id = any($3))";
    if !leaving.is_empty() {
        log.memberships(tx, EventType::MembershipRemoved, touching, &leaving, &[])
            .await?;
        for (resource, ids) in [
            (Resource::Users, &moving.users_out),
            (Resource::Groups, &moving.groups_out),
        ] {
            log.moved(tx, resource, false, ids).await?;
        }
        set_in_scope(tx, log.tenant, &leaving, false).await?;
        crate::signin::ends::after_copy_changed(tx, log.tenant).await?;
    }
    if !entering.is_empty() {
        set_in_scope(tx, log.tenant, &entering, true).await?;
        for (resource, ids) in [
            (Resource::Users, &moving.users_in),
            (Resource::Groups, &moving.groups_in),
        ] {
            log.moved(tx, resource, true, ids).await?;
        }
        log.memberships(tx, EventType::MembershipAdded, touching, &entering, &[])
            .await?;
    }
    Ok(Moves {
        entered: entering.len(),
        left: leaving.len(),
    })
}

/// Sets the flag of the tenant's users and groups among `ids`.
async fn set_in_scope(
    tx: &mut Transaction<'_, Postgres>,
    tenant: Uuid,
    ids: &[Uuid],
    in_scope: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update directory_users set in_scope = $3 where tenant_id = $1 and object_id = any($2)",
        tenant,
        ids,
        in_scope
    )
    .execute(&mut **tx)
    .await?;
    sqlx::query!(
        "update directory_groups set in_scope = $3 where tenant_id = $1 and object_id = any($2)",
        tenant,
        ids,
        in_scope
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}
