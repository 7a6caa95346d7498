-- Consent drift: what a tenant last granted the provider's app, compared with its permission
-- profile (null: never checked), and when that was read.
alter table tenants
    add column consent_drift jsonb,
    add column consent_checked_at timestamptz;
