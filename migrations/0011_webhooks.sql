-- Webhooks: the provider's endpoints (secrets sealed; the previous one kept signing for a day
-- after a rotation), an outbox of deliveries written in the transaction of the change they
-- report, and every attempt with its status code and duration for the console's delivery log.
create table webhook_endpoints (
    id                         uuid primary key default gen_random_uuid(),
    url                        text not null constraint webhook_endpoints_url_check check (length(url) between 1 and 2000),
    description                text not null default '',
    -- Event types this endpoint wants; '*' for all.
    events                     text[] not null,
    enabled                    boolean not null default true,
    secret_ciphertext          bytea not null,
    secret_key_id              text not null,
    previous_secret_ciphertext bytea,
    previous_secret_key_id     text,
    previous_secret_until      timestamptz,
    created_by                 text not null,
    created_at                 timestamptz not null default now()
);

-- One event for one endpoint. Leased like the mail outbox: claimed in a short committed
-- transaction, sent outside any, marked only under the lease it took.
create table webhook_deliveries (
    id               uuid primary key default gen_random_uuid(),
    endpoint_id      uuid not null references webhook_endpoints (id) on delete cascade,
    event_type       text not null,
    payload          jsonb not null,
    created_at       timestamptz not null default now(),
    attempts         integer not null default 0,
    next_attempt_at  timestamptz not null default now(),
    leased_until     timestamptz,
    delivered_at     timestamptz,
    failed_at        timestamptz,
    last_status      integer,
    last_error       text,
    last_duration_ms integer
);
create index webhook_deliveries_due_idx on webhook_deliveries (next_attempt_at)
    where delivered_at is null and failed_at is null;
create index webhook_deliveries_endpoint_idx on webhook_deliveries (endpoint_id, created_at desc);

create table webhook_attempts (
    id          bigserial primary key,
    delivery_id uuid not null references webhook_deliveries (id) on delete cascade,
    at          timestamptz not null default now(),
    status      integer,
    error       text,
    duration_ms integer not null
);
create index webhook_attempts_delivery_idx on webhook_attempts (delivery_id, at);
