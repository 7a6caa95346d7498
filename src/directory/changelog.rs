//! The copy's changes as events: one per object and membership a step changed, appended to
//! the event log set-based (one statement per step, however many objects) in the transaction
//! of the change, and fanned out to the webhooks by the same statement. Deletions are logged
//! before the rows go, so the event carries what went. Only objects in the tenant's sync scope,
//! and memberships between them, are logged (see [`super::scope`]).

use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::store::Resource;
use crate::events::{self, EventType};

/// A user as the directory API shows it (`DirectoryUser`'s fields and serde's time format),
/// from `directory_users d`; a webhook test compares the two.
const USER_JSON: &str = "jsonb_build_object(
    'object_id', d.object_id, 'user_principal_name', d.user_principal_name,
    'display_name', d.display_name, 'given_name', d.given_name, 'surname', d.surname,
    'mail', d.mail, 'business_phones', d.business_phones, 'mobile_phone', d.mobile_phone,
    'job_title', d.job_title, 'department', d.department, 'account_enabled', d.account_enabled,
    'soft_deleted_at', rfc3339_utc(d.soft_deleted_at), 'last_seen_at', rfc3339_utc(d.last_seen_at),
    'updated_at', rfc3339_utc(d.updated_at))";
/// A group as the directory API shows it (without its member count), from `directory_groups d`.
const GROUP_JSON: &str = "jsonb_build_object(
    'object_id', d.object_id, 'display_name', d.display_name, 'description', d.description,
    'mail', d.mail, 'mail_enabled', d.mail_enabled, 'security_enabled', d.security_enabled,
    'soft_deleted_at', rfc3339_utc(d.soft_deleted_at))";

/// The table of a resource's objects.
pub(super) fn table(resource: Resource) -> &'static str {
    match resource {
        Resource::Users => "directory_users",
        Resource::Groups => "directory_groups",
    }
}

/// A membership as the store changed it: group, member and the member's type (`user`,
/// `group`, `device`, … as Graph's `@odata.type` names it).
pub(super) type Membership = (Uuid, Uuid, String);

/// Whether the membership of `member` (of type `member_type`) in `group` (SQL expressions) is
/// one consumers see: its group is in scope, and its member is a user or group in scope, or of
/// a type the copy does not hold. A user or group the copy does not hold yet (the other chain
/// has not reached it) counts as in scope only where everyone is: in a scoped tenant it starts
/// outside when it comes, and its memberships are logged when it enters, once.
///
/// A tenant copying everyone with no object flagged out of scope sees every membership: three
/// probes, once per statement, say so before any membership is probed on its own.
fn visible(group: &str, member: &str, member_type: &str) -> String {
    format!(
        "((select exists (select from tenants vt where vt.id = $1 and vt.sync_scope = 'all')
              and not exists (select from directory_users where tenant_id = $1 and not in_scope)
              and not exists (select from directory_groups where tenant_id = $1 and not in_scope))
          or (exists (select from directory_groups vg
                      where vg.tenant_id = $1 and vg.object_id = {group} and vg.in_scope)
              and not exists (select from directory_users vu
                              where vu.tenant_id = $1 and vu.object_id = {member} and not vu.in_scope)
              and not exists (select from directory_groups vm
                              where vm.tenant_id = $1 and vm.object_id = {member} and not vm.in_scope)
              and ({member_type} not in ('user', 'group')
                   or exists (select from directory_users vu
                              where vu.tenant_id = $1 and vu.object_id = {member})
                   or exists (select from directory_groups vm
                              where vm.tenant_id = $1 and vm.object_id = {member})
                   or exists (select from tenants vt where vt.id = $1 and vt.sync_scope = 'all'))))"
    )
}

/// The creation event of a resource's objects.
fn created(resource: Resource) -> EventType {
    match resource {
        Resource::Users => EventType::UserCreated,
        Resource::Groups => EventType::GroupCreated,
    }
}

/// The deletion event of a resource's objects.
fn deleted(resource: Resource) -> EventType {
    match resource {
        Resource::Users => EventType::UserDeleted,
        Resource::Groups => EventType::GroupDeleted,
    }
}

/// Whose changes are logged: the tenant, the run that made them (none for an operator's
/// decision) and the chain's round.
///
/// In the statements [`Logger::run`] runs: `$1` the tenant, `$2` the run, `$3` object (or
/// group) ids, `$4` the round, `$5` member ids (and, for [`Logger::pairs`], `$6` their types).
#[derive(Debug, Clone, Copy)]
pub(super) struct Logger {
    pub(super) tenant: Uuid,
    pub(super) run_id: Option<i64>,
    pub(super) round: i64,
}

impl Logger {
    /// For an operator's decision on held deletions: no run, and no round (it logs by id).
    pub(super) fn decision(tenant: Uuid) -> Self {
        Self {
            tenant,
            run_id: None,
            round: 0,
        }
    }

    /// Logs one event per object of `resource` that `condition` keeps (over its table as `d`),
    /// of the type `event_type` names (an SQL expression over `d`), carrying the object as the
    /// directory API shows it and `extra` (a jsonb expression), in object id order.
    pub(super) async fn objects(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        resource: Resource,
        event_type: &str,
        condition: &str,
        extra: &str,
        ids: &[Uuid],
    ) -> Result<(), sqlx::Error> {
        let object = match resource {
            Resource::Users => USER_JSON,
            Resource::Groups => GROUP_JSON,
        };
        let sql = events::insert_select(&format!(
            "select {event_type}, jsonb_strip_nulls(jsonb_build_object('tenant_id', $1::uuid, 'run_id', $2::bigint))
                    || {object} || {extra}
             from {} d where d.tenant_id = $1 and d.in_scope and {condition} order by d.object_id",
            table(resource)
        ));
        self.run(tx, &sql, ids, &[], None).await
    }

    /// Logs the deletion of the objects of `resource` that `condition` keeps, `permanent` (gone
    /// for good) or not (in Entra ID's recycle bin).
    pub(super) async fn deletions(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        resource: Resource,
        condition: &str,
        permanent: bool,
        ids: &[Uuid],
    ) -> Result<(), sqlx::Error> {
        let event_type = format!("'{}'", deleted(resource).name());
        let extra = format!("jsonb_build_object('permanent', {permanent})");
        self.objects(tx, resource, &event_type, condition, &extra, ids)
            .await
    }

    /// Logs the objects among `ids` entering the sync scope (`entered`) as created, or leaving
    /// it as deleted (for good, as far as consumers are concerned); `scope` in the event says
    /// which.
    pub(super) async fn moved(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        resource: Resource,
        entered: bool,
        ids: &[Uuid],
    ) -> Result<(), sqlx::Error> {
        if ids.is_empty() {
            return Ok(());
        }
        let (event, extra) = if entered {
            (created(resource), "jsonb_build_object('scope', 'entered')")
        } else {
            (
                deleted(resource),
                "jsonb_build_object('permanent', true, 'scope', 'left')",
            )
        };
        let event_type = format!("'{}'", event.name());
        self.objects(
            tx,
            resource,
            &event_type,
            "d.object_id = any($3)",
            extra,
            ids,
        )
        .await
    }

    /// Logs one `event_type` event per membership of the tenant that `condition` keeps (over
    /// `directory_group_members d`, with `ids` as `$3` and `members` as `$5`), in (group,
    /// member) order.
    pub(super) async fn memberships(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        event_type: EventType,
        condition: &str,
        ids: &[Uuid],
        members: &[Uuid],
    ) -> Result<(), sqlx::Error> {
        let sql = events::insert_select(&format!(
            "select '{}', jsonb_strip_nulls(jsonb_build_object('tenant_id', $1::uuid, 'run_id', $2::bigint,
                        'group_id', d.group_id, 'member_id', d.member_id))
             from directory_group_members d where d.tenant_id = $1 and {condition} and {}
             order by d.group_id, d.member_id",
            event_type.name(),
            visible("d.group_id", "d.member_id", "d.member_type"),
        ));
        self.run(tx, &sql, ids, members, None).await
    }

    /// Logs one `event_type` event per membership, in the order given.
    pub(super) async fn pairs(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        event_type: EventType,
        memberships: &[Membership],
    ) -> Result<(), sqlx::Error> {
        if memberships.is_empty() {
            return Ok(());
        }
        let mut groups = Vec::with_capacity(memberships.len());
        let mut members = Vec::with_capacity(memberships.len());
        let mut types = Vec::with_capacity(memberships.len());
        for (group, member, kind) in memberships {
            groups.push(*group);
            members.push(*member);
            types.push(kind.as_str());
        }
        let sql = events::insert_select(&format!(
            "select '{}', jsonb_strip_nulls(jsonb_build_object('tenant_id', $1::uuid, 'run_id', $2::bigint,
                        'group_id', x.g, 'member_id', x.m))
             from unnest($3::uuid[], $5::uuid[], $6::text[]) with ordinality as x(g, m, t, n)
             where {} order by x.n",
            event_type.name(),
            visible("x.g", "x.m", "x.t"),
        ));
        self.run(tx, &sql, &groups, &members, Some(&types)).await
    }

    /// Runs one event-appending statement (which fans what it appends out to the webhooks);
    /// `types`, when given, is `$6`.
    async fn run(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        sql: &str,
        ids: &[Uuid],
        members: &[Uuid],
        types: Option<&[&str]>,
    ) -> Result<(), sqlx::Error> {
        let mut query = sqlx::query(sql)
            .bind(self.tenant)
            .bind(self.run_id)
            .bind(ids)
            .bind(self.round)
            .bind(members);
        if let Some(types) = types {
            query = query.bind(types);
        }
        query.execute(&mut **tx).await?;
        Ok(())
    }
}

/// The memberships that go with the objects of `resource` that `condition` keeps (over its
/// table as `o`) when they are deleted: theirs as members, and a group's own.
pub(super) fn departing(resource: Resource, condition: &str) -> String {
    format!(
        "(d.member_id in (select o.object_id from {table} o where o.tenant_id = $1 and {condition})
          or d.group_id in (select o.object_id from {table} o where o.tenant_id = $1 and {condition}))",
        table = table(resource)
    )
}
