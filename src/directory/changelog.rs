//! The copy's changes as events: one per object and membership a step changed, appended to
//! the event log set-based (one statement per step, however many objects) in the transaction
//! of the change, and fanned out to the webhooks by the same statement. Deletions are logged
//! before the rows go, so the event carries what went. Only objects in the tenant's sync scope,
//! and memberships between them, are logged (see [`super::scope`]).

use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::store::Resource;
use crate::events::{self, EventType};

/// Nothing of tenant `$1` is flagged out of its sync scope: with `sync_scope = 'all'`, every
/// object and membership of the copy is one consumers see.
pub(super) const NONE_OUT_OF_SCOPE: &str =
    "not exists (select from directory_users where tenant_id = $1 and not in_scope)
     and not exists (select from directory_groups where tenant_id = $1 and not in_scope)";

/// A user as the directory API shows it (`DirectoryUser`'s fields and serde's time format),
/// from `directory_users d`, as `jsonb_build_object` pairs; a webhook test compares the two.
const USER_PAIRS: &str = "'object_id', d.object_id, 'user_principal_name', d.user_principal_name,
    'display_name', d.display_name, 'given_name', d.given_name, 'surname', d.surname,
    'mail', d.mail, 'business_phones', d.business_phones, 'mobile_phone', d.mobile_phone,
    'job_title', d.job_title, 'department', d.department, 'account_enabled', d.account_enabled,
    'soft_deleted_at', rfc3339_utc(d.soft_deleted_at), 'last_seen_at', rfc3339_utc(d.last_seen_at),
    'updated_at', rfc3339_utc(d.updated_at)";
/// A group as the directory API shows it (without its member count), from `directory_groups d`.
const GROUP_PAIRS: &str = "'object_id', d.object_id, 'display_name', d.display_name,
    'description', d.description, 'mail', d.mail, 'mail_enabled', d.mail_enabled,
    'security_enabled', d.security_enabled, 'soft_deleted_at', rfc3339_utc(d.soft_deleted_at)";

/// The table of a resource's objects.
pub(super) fn table(resource: Resource) -> &'static str {
    match resource {
        Resource::Users => "directory_users",
        Resource::Groups => "directory_groups",
    }
}

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
              and {NONE_OUT_OF_SCOPE})
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

/// The event of a resource's objects whose properties changed.
fn updated(resource: Resource) -> EventType {
    match resource {
        Resource::Users => EventType::UserUpdated,
        Resource::Groups => EventType::GroupUpdated,
    }
}

/// An object of `resource` (over its table's columns as `d`) as `jsonb_build_object` pairs.
fn pairs(resource: Resource) -> &'static str {
    match resource {
        Resource::Users => USER_PAIRS,
        Resource::Groups => GROUP_PAIRS,
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
/// In the statements it writes: `$1` the tenant, `$2` the run, `$3` object (or group) ids,
/// `$4` the round, `$5` member ids.
#[derive(Debug, Clone, Copy)]
pub(super) struct Logger {
    pub(super) tenant: Uuid,
    pub(super) run_id: Option<i64>,
    pub(super) round: i64,
    /// Known for the whole transaction (read under its lock on the tenant row, which a change of
    /// scope must wait for): the tenant copies everyone and flags nobody out of its scope, so
    /// every membership is one consumers see and none is probed. The probes of [`visible`] cost
    /// about 3 µs a membership even when their first, once-per-statement part says yes.
    pub(super) all_visible: bool,
}

impl Logger {
    /// For an operator's decision on held deletions: no run, and no round (it logs by id).
    pub(super) fn decision(tenant: Uuid) -> Self {
        Self {
            tenant,
            run_id: None,
            round: 0,
            all_visible: false,
        }
    }

    /// The `jsonb_build_object` pairs every event of this logger starts with: the tenant, and
    /// the run when there is one. Left out of the statement rather than stripped as a null
    /// afterwards: each event's data is then one object built once, not three joined.
    fn head(&self) -> &'static str {
        match self.run_id {
            Some(_) => "'tenant_id', $1::uuid, 'run_id', $2::bigint",
            None => "'tenant_id', $1::uuid",
        }
    }

    /// The statement appending the events `select` yields, all of this logger's tenant (`$1`,
    /// as in their data's [`Self::head`]).
    fn append(select: &str) -> String {
        events::insert_select("$1::uuid", select)
    }

    /// Logs one event per object of `resource` that `condition` keeps (over its table as `d`),
    /// of the type `event_type` names (an SQL expression over `d`), carrying the object as the
    /// directory API shows it and `extra` (more `jsonb_build_object` pairs, each after a
    /// comma), in object id order.
    pub(super) async fn objects(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        resource: Resource,
        event_type: &str,
        condition: &str,
        extra: &str,
        ids: &[Uuid],
    ) -> Result<(), sqlx::Error> {
        let sql = Self::append(&format!(
            "select {event_type}, jsonb_build_object({}, {}{extra})
             from {} d where d.tenant_id = $1 and d.in_scope and {condition} order by d.object_id",
            self.head(),
            pairs(resource),
            table(resource)
        ));
        self.run(tx, &sql, ids, &[]).await
    }

    /// The statement appending, per object of `resource` in `source` that is in the sync scope,
    /// its creation event (where `source`'s `created` holds) or its update event, carrying the
    /// object as written, in object id order. `source` names the `with` queries of the
    /// statement that wrote them, returning the table's columns and `created`: the objects are
    /// logged from what the write returned, not looked up again.
    pub(super) fn upserted(&self, resource: Resource, source: &str) -> String {
        Self::append(&format!(
            "select case when d.created then '{}' else '{}' end, jsonb_build_object({}, {})
             from {source} d where d.in_scope order by d.object_id",
            created(resource).name(),
            updated(resource).name(),
            self.head(),
            pairs(resource),
        ))
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
        let extra = format!(", 'permanent', {permanent}");
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
            (created(resource), ", 'scope', 'entered'")
        } else {
            (deleted(resource), ", 'permanent', true, 'scope', 'left'")
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
        let sql = self.membership_events(
            event_type,
            &format!(
                "(select * from directory_group_members d where d.tenant_id = $1 and {condition})"
            ),
        );
        self.run(tx, &sql, ids, members).await
    }

    /// The statement appending one `event_type` event per membership in `source` (rows of
    /// `group_id`, `member_id` and `member_type`: a table expression, or the name of a
    /// data-modifying `with` query that returned them) that consumers see, in (group, member)
    /// order. Following the statement that wrote the memberships in its own `with`, it logs
    /// them without their ids going to the engine and back.
    pub(super) fn membership_events(&self, event_type: EventType, source: &str) -> String {
        Self::append(&format!(
            "select '{}', jsonb_build_object({}, 'group_id', x.group_id, 'member_id', x.member_id)
             from {source} x where {} order by x.group_id, x.member_id",
            event_type.name(),
            self.head(),
            if self.all_visible {
                "true".into()
            } else {
                visible("x.group_id", "x.member_id", "x.member_type")
            },
        ))
    }

    /// Runs one event-appending statement (which fans what it appends out to the webhooks).
    async fn run(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        sql: &str,
        ids: &[Uuid],
        members: &[Uuid],
    ) -> Result<(), sqlx::Error> {
        sqlx::query(sql)
            .bind(self.tenant)
            .bind(self.run_id)
            .bind(ids)
            .bind(self.round)
            .bind(members)
            .execute(&mut **tx)
            .await?;
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
