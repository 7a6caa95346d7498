//! A tenant's sync schedule (`every 6h`, `daily 02:30 Europe/Berlin`, `manual`), parsed from
//! and stored as text in `tenants.sync_schedule`; when it makes a tenant due is
//! `directory::schedule`'s business.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use jiff::civil::Time;
use jiff::tz::TimeZone;
use time::OffsetDateTime;

/// The shortest interval between syncs: Graph's throttling budget is per app and tenant.
pub const MIN_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// The longest interval between syncs: a delta token lives 7 days.
pub const MAX_INTERVAL: Duration = Duration::from_secs(7 * 24 * 3600);
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
    /// Only when an operator asks (and the forced sync that keeps the delta link alive).
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

/// `at` as a jiff instant (jiff knows the time zones).
pub(crate) fn to_jiff(at: OffsetDateTime) -> jiff::Timestamp {
    jiff::Timestamp::from_nanosecond(at.unix_timestamp_nanos())
        .expect("time's range lies within jiff's")
}

#[cfg(test)]
mod tests {
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
}
