-- SCIM 2.0 push: connections to the provider's SCIM servers (bearer tokens sealed), the ledger
-- of what each has been sent (object id → the server's id, hash of the representation last
-- written), and a log of pushes and the server's own error messages.
create table scim_connections (
    id                 uuid primary key default gen_random_uuid(),
    name               text not null constraint scim_connections_name_check check (length(name) between 1 and 200),
    base_url           text not null constraint scim_connections_base_url_check check (length(base_url) between 1 and 2000),
    token_ciphertext   bytea not null,
    token_key_id       text not null,
    -- The customer whose tenants are pushed; null: every customer's.
    customer_id        uuid references customers (id) on delete cascade,
    -- SCIM attribute → copy field (see src/scim/mapping.rs).
    mapping            jsonb not null,
    enabled            boolean not null default true,
    -- What /ServiceProviderConfig said at the last push.
    capabilities       jsonb,
    -- The copy changed since the last push began.
    dirty              boolean not null default true,
    -- A full reconcile (reading the server's users and groups) is wanted.
    reconcile_wanted   boolean not null default true,
    leased_until       timestamptz,
    state              text not null default 'new' constraint scim_connections_state_check
                           check (state in ('new', 'ok', 'failing')),
    last_push_at       timestamptz,
    last_reconcile_at  timestamptz,
    last_error         text,
    created_by         text not null,
    created_at         timestamptz not null default now(),
    constraint scim_connections_name_key unique (name)
);

create table scim_ledger (
    connection_id uuid not null references scim_connections (id) on delete cascade,
    kind          text not null constraint scim_ledger_kind_check check (kind in ('user', 'group')),
    object_id     uuid not null,
    scim_id       text not null,
    -- SHA-256 of the representation last written; null: write it again.
    hash          bytea,
    pushed_at     timestamptz not null default now(),
    primary key (connection_id, kind, object_id)
);

create table scim_log (
    id            bigint generated always as identity primary key,
    connection_id uuid not null references scim_connections (id) on delete cascade,
    at            timestamptz not null default now(),
    -- A push's summary, or one failed request.
    entry         text not null constraint scim_log_entry_check check (entry in ('push', 'reconcile', 'failure')),
    summary       text not null,
    -- The server's status and own message, for a failure.
    status        integer,
    detail        text
);
create index scim_log_connection_idx on scim_log (connection_id, id desc);
