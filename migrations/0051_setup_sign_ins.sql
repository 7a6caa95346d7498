-- An administrator's device-code sign-in for the provider setup, started in the console and
-- followed by whichever portal process serves the next page load. The device code is a bearer
-- credential until it expires: stored sealed, deleted once the sign-in ends.
create table setup_sign_ins (
    id uuid primary key,
    tenant_id uuid not null,
    device_code bytea,
    key_id text,
    user_code text not null,
    verification_uri text not null,
    interval_secs integer not null,
    expires_at timestamptz not null,
    -- The next poll of Entra ID is due then; a page load claims it by moving it on.
    next_poll_at timestamptz not null default now(),
    state text not null default 'waiting',
    -- What the setup did (its checklist) or why the sign-in ended.
    steps jsonb,
    error text,
    started_by uuid references operators (id) on delete set null,
    created_at timestamptz not null default now(),
    finished_at timestamptz,
    constraint setup_sign_ins_state check (state in ('waiting', 'done', 'failed')),
    constraint setup_sign_ins_code_while_waiting check ((state = 'waiting') = (device_code is not null)),
    constraint setup_sign_ins_interval check (interval_secs between 1 and 60)
);

create index setup_sign_ins_latest on setup_sign_ins (created_at desc);
