//! When a tenant's directory is synced: its effective schedule (its own, or the default in
//! System Settings) and the next time the scheduler should enqueue a sync. The schedule
//! itself is a value type, [`Schedule`].

use jiff::civil::{Date, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};
use sqlx::{PgExecutor, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::types::Schedule;
use crate::types::schedule::to_jiff;

/// Graph's directory delta tokens expire after 7 days: sync at least this often regardless.
pub const FORCED_AFTER: time::Duration = time::Duration::days(6);
/// When the forced sync is overdue (the tenant keeps failing), it is retried this often.
pub const OVERDUE_RETRY: time::Duration = time::Duration::hours(1);

/// A tenant's effective schedule from its `tenants.sync_schedule` column: the tenant's own, or
/// (none stored) the default in System Settings. Every reader of a tenant's schedule asks here.
pub async fn effective(db: &PgPool, stored: Option<&str>) -> Result<Schedule, sqlx::Error> {
    let default = crate::settings::stored_default_schedule(db).await?;
    Ok(Schedule::from_column(stored, &default))
}

/// The effective schedule of tenant `tenant` (see [`effective`]), read in one round trip (a
/// sync run's end reads it in its transaction).
pub async fn of_tenant(db: impl PgExecutor<'_>, tenant: Uuid) -> Result<Schedule, sqlx::Error> {
    let stored = sqlx::query!(
        "select t.sync_schedule,
                (select value from settings where key = 'default_schedule') as default_schedule
         from tenants t where t.id = $1",
        tenant
    )
    .fetch_optional(db)
    .await?;
    let (own, default) = stored.map_or((None, None), |s| (s.sync_schedule, s.default_schedule));
    let default = crate::settings::default_schedule_from(default.as_ref());
    Ok(Schedule::from_column(own.as_deref(), &default))
}

/// When the scheduler should next enqueue a sync for a tenant, given `now`, the schedule and
/// the last successful round (`None` = never).
///
/// `Every(d)` is `now + d`; `Daily` is the next HH:MM in its zone strictly after `now` (a time
/// skipped by a spring-forward gap runs at the first instant after the gap; a time that a
/// fall-back fold repeats runs once, at the earlier instant); `Manual` never, from the schedule
/// alone. Then the forced rule caps it: at most [`FORCED_AFTER`] after the last success, but
/// when that is already past, no sooner than [`OVERDUE_RETRY`] from now (a failing tenant is
/// retried hourly and never spins). A never-synced manual tenant is due [`FORCED_AFTER`] from
/// now: its first sync comes from the consent itself.
pub fn next_due(
    schedule: &Schedule,
    now: OffsetDateTime,
    last_success: Option<OffsetDateTime>,
) -> OffsetDateTime {
    let planned = match schedule {
        Schedule::Every(interval) => Some(now + *interval),
        Schedule::Daily { at, tz, .. } => Some(next_daily(*at, tz, now)),
        Schedule::Manual => None,
    };
    let forced = match last_success {
        Some(success) if success + FORCED_AFTER > now => success + FORCED_AFTER,
        Some(_) => now + OVERDUE_RETRY,
        None => now + FORCED_AFTER,
    };
    match (planned, last_success) {
        (Some(planned), Some(_)) => planned.min(forced),
        (Some(planned), None) => planned,
        (None, _) => forced,
    }
}

/// The first `at` in `tz` strictly after `now`.
fn next_daily(at: Time, tz: &TimeZone, now: OffsetDateTime) -> OffsetDateTime {
    let now_ts = to_jiff(now);
    let today = now_ts.to_zoned(tz.clone()).date();
    // Zones have skipped whole days (Samoa, 2011-12-30): look a few days ahead.
    let mut day = today;
    for _ in 0..4 {
        if let Some(instant) = instant_on(day, at, tz).filter(|i| *i > now_ts) {
            return from_jiff(instant);
        }
        day = match day.tomorrow() {
            Ok(next) => next,
            Err(_) => break,
        };
    }
    // Past the calendar's end (the year 9999): a day later is as good as any.
    now + time::Duration::days(1)
}

/// The instant `at` happens on `day` in `tz`: in a gap, the instant the gap ends; in a fold,
/// the earlier of the two.
fn instant_on(day: Date, at: Time, tz: &TimeZone) -> Option<jiff::Timestamp> {
    let civil = day.to_datetime(at);
    match tz.to_ambiguous_timestamp(civil).offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(civil).ok(),
        AmbiguousOffset::Fold { before, .. } => before.to_timestamp(civil).ok(),
        AmbiguousOffset::Gap { after, .. } => {
            // Read with the later offset the time lies just before the transition; the
            // transition itself is the first instant that exists after the gap.
            let just_before = after.to_timestamp(civil).ok()?;
            tz.following(just_before).next().map(|t| t.timestamp())
        }
    }
}

/// A jiff instant back as `time`'s.
fn from_jiff(at: jiff::Timestamp) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(at.as_nanosecond())
        .expect("an instant near now is within time's range")
}

#[cfg(test)]
mod tests {

    use time::macros::datetime;

    use super::*;

    fn parse(text: &str) -> Schedule {
        text.parse()
            .unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
    }

    #[test]
    fn every_is_now_plus_the_interval() {
        let now = datetime!(2026-05-01 10:17:03 UTC);
        let recent = Some(now - time::Duration::hours(2));
        assert_eq!(
            next_due(&parse("every 6h"), now, recent),
            datetime!(2026-05-01 16:17:03 UTC)
        );
        assert_eq!(
            next_due(&parse("every 30m"), now, None),
            datetime!(2026-05-01 10:47:03 UTC)
        );
    }

    #[test]
    fn daily_is_the_next_wall_clock_time_strictly_after_now() {
        let berlin = parse("daily 02:30 Europe/Berlin");
        // Summer: Berlin is UTC+2, so 02:30 there is 00:30 UTC.
        let now = datetime!(2026-06-10 00:00 UTC);
        assert_eq!(
            next_due(&berlin, now, None),
            datetime!(2026-06-10 00:30 UTC)
        );
        // Exactly at the time: strictly after, so tomorrow.
        let now = datetime!(2026-06-10 00:30 UTC);
        assert_eq!(
            next_due(&berlin, now, None),
            datetime!(2026-06-11 00:30 UTC)
        );
        // Winter: UTC+1.
        let now = datetime!(2026-01-15 12:00 UTC);
        assert_eq!(
            next_due(&berlin, now, None),
            datetime!(2026-01-16 01:30 UTC)
        );
        // UTC by default; the local date in another zone may differ from UTC's.
        assert_eq!(
            next_due(&parse("daily 02:30"), now, None),
            datetime!(2026-01-16 02:30 UTC)
        );
        let tokyo = parse("daily 08:00 Asia/Tokyo");
        // 23:30 UTC on the 15th is already 08:30 on the 16th in Tokyo: next is the 17th.
        let now = datetime!(2026-01-15 23:30 UTC);
        assert_eq!(next_due(&tokyo, now, None), datetime!(2026-01-16 23:00 UTC));
    }

    #[test]
    fn a_time_skipped_by_spring_forward_runs_when_the_gap_ends() {
        // 2026-03-29: Berlin jumps from 02:00 CET to 03:00 CEST; 02:30 does not exist.
        let berlin = parse("daily 02:30 Europe/Berlin");
        let before = datetime!(2026-03-28 23:00 UTC); // 00:00 CET on the 29th
        let due = next_due(&berlin, before, None);
        // 03:00 CEST, the first instant after the gap, is 01:00 UTC.
        assert_eq!(due, datetime!(2026-03-29 01:00 UTC));
        // The day after, back to normal: 02:30 CEST is 00:30 UTC.
        assert_eq!(
            next_due(&berlin, due, None),
            datetime!(2026-03-30 00:30 UTC)
        );
        // New York: 2026-03-08 02:00 EST jumps to 03:00 EDT.
        let new_york = parse("daily 02:15 America/New_York");
        let before = datetime!(2026-03-08 05:00 UTC); // 00:00 EST
        assert_eq!(
            next_due(&new_york, before, None),
            datetime!(2026-03-08 07:00 UTC) // 03:00 EDT
        );
    }

    #[test]
    fn a_time_repeated_by_fall_back_runs_once_at_the_earlier_instant() {
        // 2026-10-25: Berlin goes back from 03:00 CEST to 02:00 CET; 02:30 happens twice,
        // at 00:30 UTC (CEST) and 01:30 UTC (CET).
        let berlin = parse("daily 02:30 Europe/Berlin");
        let before = datetime!(2026-10-24 22:00 UTC); // 00:00 CEST on the 25th
        let first = next_due(&berlin, before, None);
        assert_eq!(first, datetime!(2026-10-25 00:30 UTC));
        // After it ran, the second 02:30 is not another run: next is the 26th (CET).
        let next = next_due(&berlin, first, None);
        assert_eq!(next, datetime!(2026-10-26 01:30 UTC));
        // Even asked between the two 02:30s.
        let between = datetime!(2026-10-25 01:00 UTC);
        assert_eq!(
            next_due(&berlin, between, None),
            datetime!(2026-10-26 01:30 UTC)
        );
        // New York: 2026-11-01 01:30 happens at 05:30 UTC (EDT) and 06:30 UTC (EST).
        let new_york = parse("daily 01:30 America/New_York");
        let before = datetime!(2026-11-01 04:00 UTC); // 00:00 EDT
        let first = next_due(&new_york, before, None);
        assert_eq!(first, datetime!(2026-11-01 05:30 UTC));
        assert_eq!(
            next_due(&new_york, first, None),
            datetime!(2026-11-02 06:30 UTC)
        );
    }

    #[test]
    fn the_forced_sync_caps_any_schedule_at_six_days_after_the_last_success() {
        let now = datetime!(2026-05-10 12:00 UTC);
        let success = datetime!(2026-05-05 12:00 UTC); // 5 days ago: forced in 1 day
        assert_eq!(
            next_due(&parse("every 7d"), now, Some(success)),
            datetime!(2026-05-11 12:00 UTC)
        );
        assert_eq!(
            next_due(&Schedule::Manual, now, Some(success)),
            datetime!(2026-05-11 12:00 UTC)
        );
        // A sooner schedule wins over the cap.
        assert_eq!(
            next_due(&parse("every 6h"), now, Some(success)),
            datetime!(2026-05-10 18:00 UTC)
        );
        assert_eq!(
            next_due(&parse("daily 02:30 UTC"), now, Some(success)),
            datetime!(2026-05-11 02:30 UTC)
        );
        // Never synced: the schedule alone; manual waits the forced interval from now.
        assert_eq!(
            next_due(&parse("every 7d"), now, None),
            datetime!(2026-05-17 12:00 UTC)
        );
        assert_eq!(
            next_due(&Schedule::Manual, now, None),
            datetime!(2026-05-16 12:00 UTC)
        );
    }

    #[test]
    fn an_overdue_forced_sync_is_retried_hourly_and_never_spins() {
        let now = datetime!(2026-05-10 12:00 UTC);
        let long_ago = Some(datetime!(2026-05-01 00:00 UTC)); // 9 days: forced is overdue
        assert_eq!(
            next_due(&Schedule::Manual, now, long_ago),
            datetime!(2026-05-10 13:00 UTC)
        );
        assert_eq!(
            next_due(&parse("every 7d"), now, long_ago),
            datetime!(2026-05-10 13:00 UTC)
        );
        assert_eq!(
            next_due(&parse("daily 23:00"), now, long_ago),
            datetime!(2026-05-10 13:00 UTC)
        );
        // A schedule sooner than the hour keeps its own pace.
        assert_eq!(
            next_due(&parse("every 10m"), now, long_ago),
            datetime!(2026-05-10 12:10 UTC)
        );
        // Exactly six days ago counts as overdue too.
        assert_eq!(
            next_due(&Schedule::Manual, now, Some(now - FORCED_AFTER)),
            datetime!(2026-05-10 13:00 UTC)
        );
    }
}
