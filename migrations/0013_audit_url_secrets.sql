-- Audit details no longer keep the secrets URLs carry (credentials, query, fragment: a webhook
-- receiver's `?token=…`), and viewers read the trail: scrub the rows written before, with the
-- rule `audit::redact_urls` applies to new ones.
update audit_events
set detail = regexp_replace(
        regexp_replace(detail::text, '(https?://)[^/?#\s"\\<>]*@', '\1', 'gi'),
        '(https?://[^?#\s"\\<>]*)([?#])[^\s"\\<>]*', '\1\2[redacted]', 'gi')::jsonb
where detail::text ~* 'https?://';
