//! When a tenant's directory is synced: its schedule (`every 6h`, `daily 02:30 Europe/Berlin`,
//! `manual`), parsed from and stored as text in `tenants.sync_schedule`, and the next time the
//! scheduler should enqueue a sync.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use jiff::civil::{Date, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};
use time::OffsetDateTime;

/// The shortest interval between syncs: Graph's throttling budget is per app and tenant.
pub const MIN_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// The longest interval between syncs: a delta token lives 7 days.
pub const MAX_INTERVAL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Graph's directory delta tokens expire after 7 days: sync at least this often regardless.
pub const FORCED_AFTER: time::Duration = time::Duration::days(6);
/// When the forced sync is overdue (the tenant keeps failing), it is retried this often.
pub const OVERDUE_RETRY: time::Duration = time::Duration::hours(1);
/// The longest schedule text accepted (the column allows 100 characters).
const MAX_TEXT_CHARS: usize = 100;

/// A tenant's sync schedule, stored as text in tenants.sync_schedule.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// A sync this long after the previous one was scheduled (5 minutes to 7 days).
    Every(Duration),
    /// Once a day at a wall-clock time in a time zone.
    Daily {
        /// The time of day (hours and minutes).
        at: Time,
        /// The zone the time is read in.
        tz: TimeZone,
        /// The zone's IANA name (`UTC`, `Europe/Berlin`), as stored and shown.
        zone: String,
    },
    /// Only when an operator asks (and the forced sync every [`FORCED_AFTER`]).
    Manual,
}

/// The schedule a tenant has until an operator sets one: every hour.
pub fn default_schedule() -> Schedule {
    Schedule::Every(Duration::from_secs(3600))
}

/// Why a schedule's text is not a schedule; each message names what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// Nothing was given.
    #[error("Enter a schedule, e.g. \"every 6h\", \"daily 02:30 Europe/Berlin\" or \"manual\".")]
    Empty,
    /// Longer than any schedule can be.
    #[error("A schedule is at most {MAX_TEXT_CHARS} characters.")]
    TooLong,
    /// The first word is not a kind of schedule.
    #[error("\"{0}\" is not a kind of schedule: start with \"every\", \"daily\" or \"manual\".")]
    UnknownKind(String),
    /// The interval is not a number with a unit.
    #[error(
        "\"{0}\" is not an interval: write a whole number and a unit, e.g. 30m, 6h, 90 minutes or 1d."
    )]
    BadInterval(String),
    /// The interval is shorter than [`MIN_INTERVAL`].
    #[error("Every {0} is too often: the shortest interval is 5 minutes.")]
    IntervalTooShort(String),
    /// The interval is longer than [`MAX_INTERVAL`].
    #[error(
        "Every {0} is too rare: the longest interval is 7 days (Microsoft forgets a directory's changes after 7 days)."
    )]
    IntervalTooLong(String),
    /// The time of day is not HH:MM.
    #[error("\"{0}\" is not a time of day: write HH:MM on the 24-hour clock, e.g. 02:30.")]
    BadTime(String),
    /// No time zone has this name.
    #[error(
        "\"{0}\" is not a time zone: use an IANA name such as Europe/Berlin, America/New_York or UTC."
    )]
    UnknownZone(String),
    /// Words after a complete schedule.
    #[error("\"{0}\" does not belong in a schedule: nothing follows {1}.")]
    Trailing(String, &'static str),
}

impl FromStr for Schedule {
    type Err = ScheduleError;

    /// `every 30m`, `every 6h`, `every 90 minutes`, `every 2 days`, `daily 02:30`,
    /// `daily 02:30 Europe/Berlin`, `manual`; keywords and units in any case.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.chars().count() > MAX_TEXT_CHARS {
            return Err(ScheduleError::TooLong);
        }
        let mut words = text.split_whitespace();
        let Some(kind) = words.next() else {
            return Err(ScheduleError::Empty);
        };
        let rest: Vec<&str> = words.collect();
        match kind.to_ascii_lowercase().as_str() {
            "manual" => match rest.first() {
                None => Ok(Schedule::Manual),
                Some(_) => Err(ScheduleError::Trailing(rest.join(" "), "\"manual\"")),
            },
            "every" => parse_interval(&rest.join(" ")).map(Schedule::Every),
            "daily" => parse_daily(&rest),
            _ => Err(ScheduleError::UnknownKind(kind.to_owned())),
        }
    }
}

/// `30m`, `6 h`, `90 minutes`, `1d`, `hour`: a whole number (1 when left out) and a unit.
fn parse_interval(text: &str) -> Result<Duration, ScheduleError> {
    let bad = || ScheduleError::BadInterval(text.to_owned());
    let compact: String = text.split_whitespace().collect();
    let digits = compact.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = compact.split_at(digits);
    let count: u64 = if number.is_empty() {
        1
    } else {
        number.parse().map_err(|_| bad())?
    };
    let unit_secs: u64 = match unit.to_ascii_lowercase().as_str() {
        // Never enough, but named so the message says "too often" rather than "not a unit".
        "s" | "sec" | "secs" | "second" | "seconds" => 1,
        "m" | "min" | "mins" | "minute" | "minutes" => 60,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        _ => return Err(bad()),
    };
    // A number too big to multiply is certainly too long.
    let interval = count
        .checked_mul(unit_secs)
        .map(Duration::from_secs)
        .unwrap_or(Duration::MAX);
    if interval < MIN_INTERVAL {
        return Err(ScheduleError::IntervalTooShort(text.to_owned()));
    }
    if interval > MAX_INTERVAL {
        return Err(ScheduleError::IntervalTooLong(text.to_owned()));
    }
    // Stored in whole minutes: 330 seconds would come back as 5 minutes.
    if interval.as_secs() % 60 != 0 {
        return Err(bad());
    }
    Ok(interval)
}

/// `02:30` and an optional zone (UTC when left out).
fn parse_daily(words: &[&str]) -> Result<Schedule, ScheduleError> {
    let Some(at) = words.first() else {
        return Err(ScheduleError::BadTime(String::new()));
    };
    let at = parse_time(at)?;
    let (tz, zone) = match words.get(1) {
        None => (TimeZone::UTC, "UTC".to_owned()),
        Some(name) => zone(name)?,
    };
    if words.len() > 2 {
        return Err(ScheduleError::Trailing(
            words[2..].join(" "),
            "the time zone",
        ));
    }
    Ok(Schedule::Daily { at, tz, zone })
}

/// `H:MM` or `HH:MM`, 00:00 to 23:59.
fn parse_time(text: &str) -> Result<Time, ScheduleError> {
    let bad = || ScheduleError::BadTime(text.to_owned());
    let (hour, minute) = text.split_once(':').ok_or_else(bad)?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(hour) || hour.len() > 2 || !digits(minute) || minute.len() != 2 {
        return Err(bad());
    }
    let (hour, minute) = (
        hour.parse().map_err(|_| bad())?,
        minute.parse().map_err(|_| bad())?,
    );
    Time::new(hour, minute, 0, 0).map_err(|_| bad())
}

/// A zone by IANA name (any case), with its canonical name.
fn zone(name: &str) -> Result<(TimeZone, String), ScheduleError> {
    if name.eq_ignore_ascii_case("utc") {
        return Ok((TimeZone::UTC, "UTC".to_owned()));
    }
    let tz = TimeZone::get(name).map_err(|_| ScheduleError::UnknownZone(name.to_owned()))?;
    let canonical = tz.iana_name().unwrap_or(name).to_owned();
    Ok((tz, canonical))
}

impl fmt::Display for Schedule {
    /// The canonical stored form, which [`FromStr`] reads back to the same schedule.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Every(interval) => {
                let (count, unit) = in_largest_unit(*interval);
                write!(f, "every {count}{}", &unit[..1])
            }
            Schedule::Daily { at, zone, .. } => {
                write!(f, "daily {:02}:{:02} {zone}", at.hour(), at.minute())
            }
            Schedule::Manual => f.write_str("manual"),
        }
    }
}

/// The interval as a count of the largest unit that divides it: (6, "hour"), (90, "minute").
fn in_largest_unit(interval: Duration) -> (u64, &'static str) {
    let secs = interval.as_secs();
    if secs % 86_400 == 0 {
        (secs / 86_400, "day")
    } else if secs % 3600 == 0 {
        (secs / 3600, "hour")
    } else {
        (secs / 60, "minute")
    }
}

impl Schedule {
    /// How people read it: "Every 6 hours", "Daily at 02:30 (Europe/Berlin)", "Manual only".
    pub fn label(&self) -> String {
        match self {
            Schedule::Every(interval) => match in_largest_unit(*interval) {
                (1, unit) => format!("Every {unit}"),
                (count, unit) => format!("Every {count} {unit}s"),
            },
            Schedule::Daily { at, zone, .. } => {
                format!("Daily at {:02}:{:02} ({zone})", at.hour(), at.minute())
            }
            Schedule::Manual => "Manual only".to_owned(),
        }
    }

    /// An interval as a whole count of its largest unit: (6, "hour"), (90, "minute").
    pub fn interval_parts(interval: Duration) -> (u64, &'static str) {
        in_largest_unit(interval)
    }

    /// `at` on the wall clock of a daily schedule's zone ("2026-12-07 02:30 Europe/Berlin"),
    /// the way the schedule itself was given; `None` for schedules without a zone.
    pub fn in_own_zone(&self, at: OffsetDateTime) -> Option<String> {
        let Schedule::Daily { tz, zone, .. } = self else {
            return None;
        };
        let local = to_jiff(at).to_zoned(tz.clone());
        Some(format!("{} {zone}", local.strftime("%Y-%m-%d %H:%M")))
    }

    /// The schedule stored in `tenants.sync_schedule`: a null column (or, defensively, text
    /// that no longer parses, e.g. a zone dropped from the database) is `default`.
    pub fn from_column(stored: Option<&str>, default: &Schedule) -> Schedule {
        stored
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| default.clone())
    }
}

/// The IANA names a daily schedule may use, sorted (for a form's suggestions).
pub fn time_zone_names() -> &'static [String] {
    static NAMES: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| {
        let mut names: Vec<String> = jiff::tz::db()
            .available()
            .map(|name| name.as_str().to_owned())
            .filter(|name| !name.starts_with("Etc/") && name.contains('/'))
            .collect();
        names.push("UTC".to_owned());
        names.sort();
        names.dedup();
        names
    })
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

fn to_jiff(at: OffsetDateTime) -> jiff::Timestamp {
    jiff::Timestamp::from_nanosecond(at.unix_timestamp_nanos())
        .expect("time's range lies within jiff's")
}

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

    fn hours(n: u64) -> Duration {
        Duration::from_secs(n * 3600)
    }

    #[test]
    fn schedules_parse_and_print_their_canonical_form_which_reads_back_the_same() {
        for (text, canonical, label) in [
            ("every 30m", "every 30m", "Every 30 minutes"),
            ("every 6h", "every 6h", "Every 6 hours"),
            ("Every 90 minutes", "every 90m", "Every 90 minutes"),
            ("every 120 min", "every 2h", "Every 2 hours"),
            ("every hour", "every 1h", "Every hour"),
            ("every 1 d", "every 1d", "Every day"),
            ("every 7 days", "every 7d", "Every 7 days"),
            ("every 5m", "every 5m", "Every 5 minutes"),
            (
                "daily 02:30 Europe/Berlin",
                "daily 02:30 Europe/Berlin",
                "Daily at 02:30 (Europe/Berlin)",
            ),
            (
                "daily 2:30 europe/berlin",
                "daily 02:30 Europe/Berlin",
                "Daily at 02:30 (Europe/Berlin)",
            ),
            ("daily 02:30", "daily 02:30 UTC", "Daily at 02:30 (UTC)"),
            ("DAILY 23:59 utc", "daily 23:59 UTC", "Daily at 23:59 (UTC)"),
            (
                "daily 00:00 America/New_York",
                "daily 00:00 America/New_York",
                "Daily at 00:00 (America/New_York)",
            ),
            ("manual", "manual", "Manual only"),
            ("  Manual ", "manual", "Manual only"),
        ] {
            let schedule = parse(text);
            assert_eq!(schedule.to_string(), canonical, "{text:?}");
            assert_eq!(schedule.label(), label, "{text:?}");
            assert_eq!(parse(canonical), schedule, "{canonical:?} reads back");
            assert_eq!(parse(canonical).to_string(), canonical);
        }
        assert_eq!(parse("every 6h"), Schedule::Every(hours(6)));
        assert_eq!(default_schedule().to_string(), "every 1h");
        assert_eq!(
            Schedule::from_column(None, &default_schedule()),
            default_schedule()
        );
        assert_eq!(
            Schedule::from_column(Some("daily 03:00 Mars/Olympus"), &default_schedule()),
            default_schedule()
        );
        assert_eq!(
            Schedule::from_column(Some("manual"), &default_schedule()),
            Schedule::Manual
        );
    }

    #[test]
    fn every_suggested_zone_makes_a_daily_schedule() {
        let names = time_zone_names();
        assert!(names.iter().any(|n| n == "Europe/Berlin") && names.iter().any(|n| n == "UTC"));
        for name in names {
            let schedule = parse(&format!("daily 02:30 {name}"));
            assert_eq!(schedule.to_string(), format!("daily 02:30 {name}"));
        }
    }

    #[test]
    fn a_daily_run_reads_in_its_own_zone() {
        let schedule: Schedule = "daily 02:30 Europe/Berlin".parse().unwrap();
        let winter = time::macros::datetime!(2026-12-07 01:30 UTC);
        assert_eq!(
            schedule.in_own_zone(winter).as_deref(),
            Some("2026-12-07 02:30 Europe/Berlin")
        );
        assert_eq!(
            "every 6h".parse::<Schedule>().unwrap().in_own_zone(winter),
            None
        );
    }

    #[test]
    fn every_error_names_what_is_wrong() {
        use ScheduleError::*;
        for (text, expected) in [
            ("", Empty),
            ("   ", Empty),
            ("weekly", UnknownKind("weekly".into())),
            ("every", BadInterval(String::new())),
            ("every fortnight", BadInterval("fortnight".into())),
            ("every 6 parsecs", BadInterval("6 parsecs".into())),
            ("every -5m", BadInterval("-5m".into())),
            ("every 1.5h", BadInterval("1.5h".into())),
            ("every 4m", IntervalTooShort("4m".into())),
            ("every 30 seconds", IntervalTooShort("30 seconds".into())),
            ("every 299s", IntervalTooShort("299s".into())),
            ("every 330s", BadInterval("330s".into())),
            ("every  2   minutes", IntervalTooShort("2 minutes".into())),
            ("every 0h", IntervalTooShort("0h".into())),
            ("every 8d", IntervalTooLong("8d".into())),
            (
                "every 99999999999999999999d",
                BadInterval("99999999999999999999d".into()),
            ),
            (
                "every 9999999999999999d",
                IntervalTooLong("9999999999999999d".into()),
            ),
            ("daily", BadTime(String::new())),
            ("daily 25:00", BadTime("25:00".into())),
            ("daily 02:60", BadTime("02:60".into())),
            ("daily 2:3", BadTime("2:3".into())),
            ("daily 0230", BadTime("0230".into())),
            ("daily 02:30:00", BadTime("02:30:00".into())),
            (
                "daily 02:30 Mars/Olympus",
                UnknownZone("Mars/Olympus".into()),
            ),
            (
                "daily 02:30 Europe/Berlin please",
                Trailing("please".into(), "the time zone"),
            ),
            ("manual now", Trailing("now".into(), "\"manual\"")),
        ] {
            assert_eq!(text.parse::<Schedule>(), Err(expected), "{text:?}");
        }
        assert_eq!(
            "every ".repeat(30).parse::<Schedule>(),
            Err(ScheduleError::TooLong)
        );
        // The messages are sentences an operator can act on.
        assert_eq!(
            "every 4m".parse::<Schedule>().unwrap_err().to_string(),
            "Every 4m is too often: the shortest interval is 5 minutes."
        );
        assert!(
            "daily 02:30 Mars/Olympus"
                .parse::<Schedule>()
                .unwrap_err()
                .to_string()
                .contains("is not a time zone")
        );
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
