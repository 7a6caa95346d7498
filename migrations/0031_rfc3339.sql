-- A time as the JSON API writes it (RFC 3339 in UTC with `Z`, the fraction without trailing
-- zeros, as Rust's `time` crate does), for the pages Postgres builds as JSON itself.
create function rfc3339_utc(t timestamptz) returns text
    language sql stable strict parallel safe
    return rtrim(rtrim(to_char(t at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), '0'), '.') || 'Z';
