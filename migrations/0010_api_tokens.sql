-- API tokens for the JSON API: only the SHA-256 of a token is kept; the token is shown once.
create table api_tokens (
    id             uuid primary key default gen_random_uuid(),
    name           text not null constraint api_tokens_name_check check (length(name) between 1 and 100),
    token_sha256   bytea not null constraint api_tokens_token_sha256_key unique,
    scope          text not null constraint api_tokens_scope_check check (scope in ('read', 'write')),
    created_by     text not null,
    created_at     timestamptz not null default now(),
    expires_at     timestamptz,
    revoked_at     timestamptz,
    last_used_at   timestamptz,
    last_used_addr text
);
