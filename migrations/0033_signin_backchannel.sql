-- Back-channel logouts (OpenID Connect Back-Channel Logout 1.0) waiting to be POSTed: one per
-- application a session signed in to that registered a back-channel logout URI, queued in the
-- transaction that ends the session and leased like webhook deliveries. The logout token is
-- minted at each attempt, so nothing secret is stored here.
create table signin_logouts (
    id              uuid primary key default gen_random_uuid(),
    application_id  uuid not null references signin_applications (id) on delete cascade,
    session_id      uuid not null references signin_sessions (id) on delete cascade,
    -- Why the session ended ("logged out", "the user was disabled…").
    reason          text not null,
    created_at      timestamptz not null default now(),
    attempts        integer not null default 0,
    next_attempt_at timestamptz not null default now(),
    leased_until    timestamptz,
    last_status     integer,
    last_error      text,
    delivered_at    timestamptz,
    failed_at       timestamptz,
    constraint signin_logouts_once unique (application_id, session_id)
);
create index signin_logouts_due on signin_logouts (next_attempt_at)
    where delivered_at is null and failed_at is null;
