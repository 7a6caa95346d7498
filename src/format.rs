//! How times and durations read on pages, in mail and in the CLI.

use time::OffsetDateTime;
use time::macros::format_description;

/// `2026-11-29 14:05 UTC`.
pub fn datetime(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day] [hour]:[minute] UTC"
        ))
        .unwrap_or_default()
}

/// `in 6 days`, `3 hours ago`: relative to now, coarse on purpose.
pub fn relative(at: OffsetDateTime) -> String {
    let delta = at - OffsetDateTime::now_utc();
    let secs = delta.whole_seconds().abs();
    let amount = match secs {
        0..60 => return "just now".into(),
        60..3_600 => plural(secs / 60, "minute"),
        3_600..86_400 => plural(secs / 3_600, "hour"),
        _ => plural(secs / 86_400, "day"),
    };
    if delta.is_positive() {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

fn plural(n: i64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}
