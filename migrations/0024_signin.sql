-- Sign-in for the customers' users: Gangway as an OpenID Provider for the provider's own
-- applications. Secrets and tokens are kept only as SHA-256 hashes; signing keys sealed.

create table signin_applications (
    id                        uuid primary key default gen_random_uuid(),
    name                      citext not null constraint signin_applications_name_key unique
                                  constraint signin_applications_name_check check (length(name) between 1 and 200),
    -- web: confidential (client secret); spa, native: public clients (PKCE S256 required).
    kind                      text not null constraint signin_applications_kind_check
                                  check (kind in ('web', 'spa', 'native')),
    client_id                 text not null constraint signin_applications_client_id_key unique,
    client_secret_sha256      bytea,
    redirect_uris             text[] not null constraint signin_applications_redirect_uris_check
                                  check (cardinality(redirect_uris) between 1 and 20),
    post_logout_redirect_uris text[] not null default '{}',
    backchannel_logout_uri    text,
    -- Every connected customer may sign in, or only those in signin_application_customers.
    all_customers             boolean not null default true,
    -- `sub` differs per application (pairwise) instead of being the same everywhere.
    pairwise_subject          boolean not null default false,
    groups_claim              text not null default 'none' constraint signin_applications_groups_claim_check
                                  check (groups_claim in ('none', 'all', 'filter')),
    -- With `filter`: group names starting with this prefix (case-insensitive).
    groups_filter             text constraint signin_applications_groups_filter_check
                                  check (length(groups_filter) between 1 and 200),
    -- Group name -> role value.
    role_mapping              jsonb not null default '{}',
    created_at                timestamptz not null default now(),
    updated_at                timestamptz not null default now(),
    constraint signin_applications_secret_check
        check ((kind = 'web') = (client_secret_sha256 is not null))
);
create trigger signin_applications_updated_at before update on signin_applications
    for each row execute function set_updated_at();

create table signin_application_customers (
    application_id uuid not null references signin_applications (id) on delete cascade,
    customer_id    uuid not null references customers (id) on delete cascade,
    primary key (application_id, customer_id)
);

-- RSA keys signing ID tokens. A key is published from created_at, signs from activates_at (a
-- later time, so relying parties have fetched it first) and stays published until retired_at.
create table signin_keys (
    id                    uuid primary key default gen_random_uuid(),
    kid                   text not null constraint signin_keys_kid_key unique,
    private_key_ciphertext bytea not null,
    private_key_key_id    text not null,
    created_at            timestamptz not null default now(),
    activates_at          timestamptz not null,
    retired_at            timestamptz
);

-- Gangway's own single sign-on session of a customer's user (the `sid` of the tokens).
create table signin_sessions (
    id             uuid primary key default gen_random_uuid(),
    sid            text not null constraint signin_sessions_sid_key unique,
    tenant_id      uuid not null references tenants (id) on delete cascade,
    object_id      uuid not null,
    username       text not null,
    auth_time      timestamptz not null,
    amr            text[] not null default '{}',
    -- Entra ID's own session id, when its token named one.
    upstream_sid   text,
    created_at     timestamptz not null default now(),
    last_seen_at   timestamptz not null default now(),
    expires_at     timestamptz not null,
    ended_at       timestamptz
);
create index signin_sessions_user on signin_sessions (tenant_id, object_id) where ended_at is null;

-- Authorization codes: single use, short-lived, bound to client, redirect URI and PKCE.
create table signin_codes (
    code_sha256      bytea primary key,
    application_id   uuid not null references signin_applications (id) on delete cascade,
    session_id       uuid not null references signin_sessions (id) on delete cascade,
    redirect_uri     text not null,
    code_challenge   text,
    nonce            text,
    scopes           text[] not null,
    created_at       timestamptz not null default now(),
    expires_at       timestamptz not null,
    used_at          timestamptz
);

-- What one redeemed code granted: its access tokens and its refresh-token family. Revoking
-- the grant ends them all (code replay, refresh-token reuse, logout, a disabled user).
create table signin_grants (
    id             uuid primary key default gen_random_uuid(),
    application_id uuid not null references signin_applications (id) on delete cascade,
    session_id     uuid not null references signin_sessions (id) on delete cascade,
    code_sha256    bytea not null constraint signin_grants_code_key unique,
    scopes         text[] not null,
    created_at     timestamptz not null default now(),
    revoked_at     timestamptz,
    revoked_reason text
);

create table signin_tokens (
    token_sha256 bytea primary key,
    grant_id     uuid not null references signin_grants (id) on delete cascade,
    kind         text not null constraint signin_tokens_kind_check check (kind in ('access', 'refresh')),
    created_at   timestamptz not null default now(),
    expires_at   timestamptz not null,
    -- A refresh token is used once (rotation); a second use revokes the grant.
    used_at      timestamptz
);
create index signin_tokens_grant on signin_tokens (grant_id);
create index signin_codes_expires on signin_codes (expires_at);
