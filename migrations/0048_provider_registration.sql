-- The provider's own app registration as the zero-touch setup left it: its ids, and the client
-- secret Gangway added (Graph's keyId, for removePassword) with its expiry. During a rotation
-- the previous secret waits in retiring_key_id until every process switched (switched_at).
create table provider_registration (
    singleton boolean primary key default true
        constraint provider_registration_singleton check (singleton),
    client_id uuid not null,
    object_id uuid not null,
    secret_key_id uuid,
    secret_expires_at timestamptz,
    retiring_key_id uuid,
    switched_at timestamptz,
    updated_at timestamptz not null default now()
);
