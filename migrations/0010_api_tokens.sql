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

-- Idempotency-Key on creating POSTs: the first answer is kept (sealed: it may hold a link) for a
-- day and replayed for the same caller, key and request; `status` 0 while it is being made. The
-- caller is an API token's id or the id derived from an Entra caller's tenant and object id.
create table api_idempotency (
    caller_id           uuid not null,
    key                 text not null constraint api_idempotency_key_check check (length(key) between 1 and 200),
    request_sha256      bytea not null,
    status              integer not null default 0,
    response_ciphertext bytea,
    response_key_id     text,
    created_at          timestamptz not null default now(),
    primary key (caller_id, key)
);
