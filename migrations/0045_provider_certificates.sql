-- The provider application's certificate credentials (private_key_jwt): the key pair Gangway
-- generated (private key sealed like every stored secret), the public certificate to register
-- on the app, and where each is in its life: pending (not yet signing), active (signs every
-- token request; at most one), retiring (replaced; removed from the app after the overlap).
create table provider_certificates (
    id                     uuid primary key default gen_random_uuid(),
    certificate            bytea not null,
    thumbprint             text not null,
    x5t_s256               text not null,
    key_ciphertext         bytea not null,
    key_id                 text not null,
    not_before             timestamptz not null,
    not_after              timestamptz not null,
    state                  text not null default 'pending',
    graph_key_id           uuid,
    created_at             timestamptz not null default now(),
    activated_at           timestamptz,
    retiring_since         timestamptz,
    constraint provider_certificates_thumbprint_key unique (thumbprint),
    constraint provider_certificates_state_check check (state in ('pending', 'active', 'retiring')),
    constraint provider_certificates_validity_check check (not_before < not_after)
);

create unique index provider_certificates_one_active on provider_certificates (state)
    where state = 'active';
