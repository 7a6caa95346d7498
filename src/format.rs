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

/// `2026-11-29T14:05:00Z`: the instant for `<time datetime>`, which the page's script shows in
/// the viewer's own time zone.
pub fn iso(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .unwrap_or_default()
}

/// An address (or any text) as HTML that wraps only after `@` and before `.` in a narrow
/// cell, never mid-word: escaped, with `<wbr>` there. Shown with askama's `safe`.
pub fn breakable(text: &str) -> String {
    let mut html = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if c == '.' {
            html.push_str("<wbr>");
        }
        match c {
            '&' => html.push_str("&amp;"),
            '<' => html.push_str("&lt;"),
            '>' => html.push_str("&gt;"),
            '"' => html.push_str("&quot;"),
            '\'' => html.push_str("&#39;"),
            c => html.push(c),
        }
        if c == '@' {
            html.push_str("<wbr>");
        }
    }
    html
}

/// `in 6 days`, `3 hours ago`: relative to now, coarse on purpose.
pub fn relative(at: OffsetDateTime) -> String {
    let delta = at - OffsetDateTime::now_utc();
    let secs = delta.whole_seconds().abs();
    // Rounded to the nearest unit: a 7-day link created a moment ago reads "in 7 days".
    let amount = match secs {
        // What is due within the minute has not happened yet: "next try: just now" misleads.
        0..60 if delta.is_positive() => return "in under a minute".into(),
        0..60 => return "just now".into(),
        60..3_570 => plural((secs + 30) / 60, "minute"),
        3_570..84_600 => plural((secs + 1_800) / 3_600, "hour"),
        _ => plural((secs + 43_200) / 86_400, "day"),
    };
    if delta.is_positive() {
        format!("in {amount}")
    } else {
        format!("{amount} ago")
    }
}

/// `1 day`, `10 days`: a count with its noun, never "day(s)".
pub fn count(n: i64, unit: &str) -> String {
    plural(n, unit)
}

/// `Contoso's`, `Northwind Traders'`: a name's possessive as English writes it.
pub fn possessive(name: &str) -> String {
    if name.ends_with('s') || name.ends_with('S') {
        format!("{name}'")
    } else {
        format!("{name}'s")
    }
}

fn plural(n: i64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

#[cfg(test)]
mod tests {
    use time::{Duration, OffsetDateTime};

    use super::{breakable, count, possessive, relative};

    #[test]
    fn an_address_wraps_only_at_its_at_sign_and_dots_and_stays_escaped() {
        assert_eq!(
            breakable("admin@fabrikam.onmicrosoft.com"),
            "admin@<wbr>fabrikam<wbr>.onmicrosoft<wbr>.com"
        );
        assert_eq!(breakable("<b>&\"'"), "&lt;b&gt;&amp;&quot;&#39;");
    }

    #[test]
    fn counts_and_possessives_read_as_english() {
        assert_eq!(count(1, "day"), "1 day");
        assert_eq!(count(10, "day"), "10 days");
        assert_eq!(possessive("Contoso"), "Contoso's");
        assert_eq!(possessive("Northwind Traders"), "Northwind Traders'");
    }

    #[test]
    fn relative_times_round_to_the_nearest_unit() {
        let now = OffsetDateTime::now_utc();
        assert_eq!(
            relative(now + Duration::days(7) - Duration::seconds(5)),
            "in 7 days"
        );
        assert_eq!(relative(now - Duration::minutes(90)), "2 hours ago");
        assert_eq!(relative(now + Duration::hours(1)), "in 1 hour");
        assert_eq!(relative(now - Duration::seconds(10)), "just now");
        assert_eq!(relative(now + Duration::seconds(10)), "in under a minute");
    }
}
