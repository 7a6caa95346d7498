-- Operators invited from the console: a one-time link to set a password, of which only the
-- SHA-256 is kept; it expires, and is used at most once.
create table operator_invitations (
    id            uuid primary key default gen_random_uuid(),
    email         citext not null,
    role          text not null constraint operator_invitations_role_check check (role in ('admin', 'viewer')),
    token_sha256  bytea not null constraint operator_invitations_token_key unique,
    expires_at    timestamptz not null,
    accepted_at   timestamptz,
    created_by    text not null,
    created_at    timestamptz not null default now()
);
-- One open invitation per address: inviting again replaces it.
create unique index operator_invitations_open_email on operator_invitations (email) where accepted_at is null;
