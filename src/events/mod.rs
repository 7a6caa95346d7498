//! The event log: every event Gangway emits is one row, written in the transaction of the change
//! it reports ([`append`], or [`insert_select`] for a set of them in one statement), read in a
//! stable order by cursor ([`read`]) and pruned after the retention period ([`prune`]).
//! Webhook deliveries are fanned out from it, so an event has one id however it arrives.
//!
//! The reading order is (writing transaction's id, position), and a reader only sees rows whose
//! writing transaction is older than the oldest one still running in the cluster
//! (`pg_snapshot_xmin`). Positions alone would not do: a bigserial value is taken when the row
//! is inserted, not when it commits, so a transaction that took position 5 may commit after one
//! that took 6 was read, and a consumer past 6 would never see 5. Under the horizon every row a
//! later transaction writes has a larger transaction id than anything already handed out, so it
//! sorts after every saved cursor. The cost: a long transaction anywhere on the server holds the
//! stream back (not its writes) until it ends.

mod event;

pub use event::{Event, EventType};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

/// The System Setting holding how many days events stay readable.
pub const RETENTION_SETTING: &str = "event_retention_days";
/// Days events stay readable unless the setting says otherwise.
pub const DEFAULT_RETENTION_DAYS: i32 = 30;
/// The most events one read returns.
pub const MAX_LIMIT: i64 = 1000;

/// A place in the log's reading order: after the event it was taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Cursor {
    xid: i64,
    position: i64,
}

impl Cursor {
    /// The cursor as handed out: opaque, URL-safe.
    pub fn encode(self) -> String {
        URL_SAFE_NO_PAD.encode(format!("v1:{}:{}", self.xid, self.position))
    }

    /// A cursor handed out by [`Cursor::encode`], if `raw` is one.
    pub fn decode(raw: &str) -> Option<Cursor> {
        let bytes = URL_SAFE_NO_PAD.decode(raw.trim()).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let mut parts = text.strip_prefix("v1:")?.split(':');
        let (xid, position) = (parts.next()?.parse().ok()?, parts.next()?.parse().ok()?);
        (parts.next().is_none() && xid >= 0 && position >= 0).then_some(Cursor { xid, position })
    }
}

/// An event as the log holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Logged {
    /// Its id (the webhook body's `id`; `webhook-id` is `msg_` and its simple form).
    pub id: Uuid,
    /// Its type's wire name.
    pub event_type: String,
    /// The tenant it concerns, if any.
    pub tenant_id: Option<Uuid>,
    /// When the change it reports was made.
    pub occurred_at: OffsetDateTime,
    /// What it carries.
    pub data: Value,
    /// The cursor that reads on after it.
    pub cursor: Cursor,
}

/// Which events a read returns.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only these types (all when empty).
    pub types: Vec<EventType>,
    /// Only this tenant's.
    pub tenant: Option<Uuid>,
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Events after the cursor were pruned: the consumer has missed some.
    #[error("the cursor is older than the event retention period")]
    Expired,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Appends one event in the caller's transaction (and, by the same statement, queues its
/// webhook deliveries: the log's fan-out trigger).
pub async fn append(conn: &mut PgConnection, event: &Event) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into events (event_type, tenant_id, data)
         values ($1, ($2::jsonb->>'tenant_id')::uuid, $2)",
        event.event_type.name(),
        event.data,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The statement appending the events `select` yields — rows of (type's wire name, data), in
/// order, all of the tenant `tenant` (an SQL expression, the `tenant_id` their data carries) —
/// and queueing their webhook deliveries. For callers that build events set-based from tables
/// of their own. (Reading the tenant back out of each event's data was a measurable part of
/// appending the events of a full sync.)
pub fn insert_select(tenant: &str, select: &str) -> String {
    format!(
        "insert into events (event_type, tenant_id, data)
         select s.t, {tenant}, s.d from ({select}) as s(t, d)"
    )
}

/// Up to `limit` events after `after` (from the oldest kept without one) that `filter` keeps,
/// in the log's order; the same ones in the same order on every read.
pub async fn read(
    db: &PgPool,
    after: Option<Cursor>,
    filter: &Filter,
    limit: i64,
) -> Result<Vec<Logged>, ReadError> {
    let given = after.is_some();
    let after = after.unwrap_or_default();
    let types: Option<Vec<String>> = (!filter.types.is_empty())
        .then(|| filter.types.iter().map(|t| t.name().to_owned()).collect());
    let rows = sqlx::query!(
        r#"select position, id, event_type, tenant_id, occurred_at, data,
                  writer_xid::text::bigint as "xid!"
           from events
           where (writer_xid, position) > ($1::bigint::text::xid8, $2)
             and writer_xid < pg_snapshot_xmin(pg_current_snapshot())
             and ($3::text[] is null or event_type = any($3))
             and ($4::uuid is null or tenant_id = $4)
           order by writer_xid, position limit $5"#,
        after.xid,
        after.position,
        types.as_deref(),
        filter.tenant,
        limit.clamp(1, MAX_LIMIT),
    )
    .fetch_all(db)
    .await?;
    // Checked after reading: the mark only grows, so a prune during the read is caught too.
    let pruned =
        sqlx::query!(r#"select writer_xid::text::bigint as "xid!", position from events_pruned"#)
            .fetch_optional(db)
            .await?;
    if given
        && pruned.is_some_and(|p| {
            after
                < Cursor {
                    xid: p.xid,
                    position: p.position,
                }
        })
    {
        return Err(ReadError::Expired);
    }
    Ok(rows
        .into_iter()
        .map(|r| Logged {
            id: r.id,
            event_type: r.event_type,
            tenant_id: r.tenant_id,
            occurred_at: r.occurred_at,
            data: r.data,
            cursor: Cursor {
                xid: r.xid,
                position: r.position,
            },
        })
        .collect())
}

/// The cursor after the last event a reader can see now (after the pruned mark when none is
/// left): a consumer that took the state of what the events report after this call may read
/// on from it and miss nothing.
pub async fn head(db: &PgPool) -> Result<Cursor, sqlx::Error> {
    let row = sqlx::query!(
        r#"select writer_xid::text::bigint as "xid!", position as "position!" from (
               (select writer_xid, position from events
                where writer_xid < pg_snapshot_xmin(pg_current_snapshot())
                order by writer_xid desc, position desc limit 1)
               union all
               select writer_xid, position from events_pruned
           ) s order by writer_xid desc, position desc limit 1"#
    )
    .fetch_optional(db)
    .await?;
    Ok(row
        .map(|r| Cursor {
            xid: r.xid,
            position: r.position,
        })
        .unwrap_or_default())
}

/// Whether events after `after` that `filter` keeps are committed but not yet readable (their
/// transactions are not older than every running one): a reader that found nothing may want
/// to look again soon.
pub async fn held_back(db: &PgPool, after: Cursor, filter: &Filter) -> Result<bool, sqlx::Error> {
    let types: Option<Vec<String>> = (!filter.types.is_empty())
        .then(|| filter.types.iter().map(|t| t.name().to_owned()).collect());
    sqlx::query_scalar!(
        r#"select exists(select 1 from events
                         where (writer_xid, position) > ($1::bigint::text::xid8, $2)
                           and writer_xid >= pg_snapshot_xmin(pg_current_snapshot())
                           and ($3::text[] is null or event_type = any($3))
                           and ($4::uuid is null or tenant_id = $4)) as "held!""#,
        after.xid,
        after.position,
        types.as_deref(),
        filter.tenant,
    )
    .fetch_one(db)
    .await
}

/// Days events stay readable: the System Setting, else [`DEFAULT_RETENTION_DAYS`].
pub async fn retention_days(db: &PgPool) -> Result<i32, sqlx::Error> {
    let stored = sqlx::query_scalar!(
        "select value from settings where key = $1",
        RETENTION_SETTING
    )
    .fetch_optional(db)
    .await?
    .flatten();
    Ok(stored
        .and_then(|v| v.as_i64())
        .and_then(|d| i32::try_from(d).ok())
        .filter(|d| *d > 0)
        .unwrap_or(DEFAULT_RETENTION_DAYS))
}

/// Deletes events older than the retention period and moves the pruned mark past them, so a
/// cursor from before them gets [`ReadError::Expired`]. Returns how many were deleted.
pub async fn prune(db: &PgPool) -> Result<i64, sqlx::Error> {
    let days = retention_days(db).await?;
    let deleted = sqlx::query_scalar!(
        r#"with gone as (
               delete from events where occurred_at < now() - make_interval(days => $1)
               returning writer_xid, position
           ), last as (
               select writer_xid, position from gone order by writer_xid desc, position desc limit 1
           ), marked as (
               insert into events_pruned (writer_xid, position) select writer_xid, position from last
               on conflict (only_row) do update
                   set writer_xid = excluded.writer_xid, position = excluded.position
                   where (events_pruned.writer_xid, events_pruned.position)
                         < (excluded.writer_xid, excluded.position)
           )
           select count(*) as "n!" from gone"#,
        days,
    )
    .fetch_one(db)
    .await?;
    Ok(deleted)
}

/// Erases the directory data (users, groups, memberships) from the tenant's `directory.*`
/// events in the caller's transaction (offboarding's): each keeps its type, tenant and run and
/// says its data was erased. Returns how many were erased.
pub async fn erase_tenant_data(conn: &mut PgConnection, tenant: Uuid) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "update events set data = jsonb_build_object(
                 'tenant_id', data->'tenant_id', 'run_id', data->'run_id',
                 'erased', 'the tenant was offboarded')
         where tenant_id = $1 and event_type like 'directory.%' and not data ? 'erased'",
        tenant,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::Cursor;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = Cursor {
            xid: 812,
            position: 41,
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        for bad in [
            "",
            "abc",
            "djE6MToy0",
            &URL_SAFE_NO_PAD.encode("v1:1"),
            &URL_SAFE_NO_PAD.encode("v1:-1:2"),
            &URL_SAFE_NO_PAD.encode("v2:1:2"),
        ] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }
}
