-- private_key_jwt client authentication (RFC 7523): a web application may register its public
-- keys (a JWKS) instead of holding a client secret, and proves itself with JWTs it signs, each
-- used once.
alter table signin_applications add column jwks jsonb;
alter table signin_applications drop constraint signin_applications_secret_check;
alter table signin_applications add constraint signin_applications_secret_check
    check (case when kind = 'web' then num_nonnulls(client_secret_sha256, jwks) = 1
                else client_secret_sha256 is null and jwks is null end);

-- The `jti` of every client assertion accepted, until it expires: a second use is refused.
create table signin_assertion_jtis (
    application_id uuid not null references signin_applications (id) on delete cascade,
    jti            text not null,
    expires_at     timestamptz not null,
    primary key (application_id, jti)
);
create index signin_assertion_jtis_expires on signin_assertion_jtis (expires_at);
