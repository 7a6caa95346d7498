-- Operators, invitations, tenants, the audit trail and the mail outbox.

create table operators (
    id             uuid primary key default gen_random_uuid(),
    email          citext not null constraint operators_email_key unique,
    password_hash  text not null,
    role           text not null constraint operators_role_check check (role in ('admin', 'viewer')),
    created_at     timestamptz not null default now(),
    updated_at     timestamptz not null default now(),
    last_login_at  timestamptz
);
create trigger operators_updated_at before update on operators
    for each row execute function set_updated_at();

create table tenants (
    id                    uuid primary key default gen_random_uuid(),
    entra_tenant_id       uuid not null constraint tenants_entra_tenant_id_key unique,
    display_name          text not null,
    verified_domains      text[] not null default '{}',
    consent_mode          text not null constraint tenants_consent_mode_check
                              check (consent_mode in ('delegated', 'application', 'customer_app')),
    granted_scopes        text[] not null default '{}',
    consented_by_oid      uuid,
    consented_by_upn      text,
    consented_at          timestamptz not null default now(),
    -- Customer-app mode: the customer's own app registration.
    customer_client_id    text,
    -- Refresh token (delegated) or client secret (customer_app), AES-256-GCM; key id for rotation.
    credential_ciphertext bytea,
    credential_key_id     text,
    status                text not null default 'active' constraint tenants_status_check
                              check (status in ('active', 'syncing', 'reconsent_required', 'disabled', 'offboarded')),
    created_at            timestamptz not null default now(),
    updated_at            timestamptz not null default now(),
    constraint tenants_credential_key check ((credential_ciphertext is null) = (credential_key_id is null))
);
create trigger tenants_updated_at before update on tenants
    for each row execute function set_updated_at();

create table invitations (
    id                 uuid primary key default gen_random_uuid(),
    customer_name      text not null constraint invitations_customer_name_check check (length(customer_name) between 1 and 200),
    admin_email        citext not null,
    consent_mode       text not null constraint invitations_consent_mode_check
                           check (consent_mode in ('delegated', 'application', 'customer_app')),
    permission_profile text not null default 'directory_sync',
    tenant_domain      citext,
    -- SHA-256 of the link token; the token itself is never stored.
    token_sha256       bytea not null constraint invitations_token_sha256_key unique,
    expires_at         timestamptz not null,
    status             text not null default 'pending' constraint invitations_status_check
                           check (status in ('pending', 'opened', 'consented', 'declined', 'failed', 'revoked')),
    attempts           integer not null default 0,
    last_error         text,
    tenant_id          uuid references tenants (id),
    created_by         uuid references operators (id),
    created_at         timestamptz not null default now(),
    updated_at         timestamptz not null default now(),
    last_activity_at   timestamptz not null default now()
);
create index invitations_created_at_idx on invitations (created_at desc);
create trigger invitations_updated_at before update on invitations
    for each row execute function set_updated_at();

-- "expired" is derived, never stored, so it can not drift from expires_at.
create view invitation_view as
select i.*,
       case when i.status in ('pending', 'opened') and i.expires_at <= now() then 'expired'
            else i.status end as effective_status
from invitations i;

create table audit_events (
    id            bigint generated always as identity primary key,
    at            timestamptz not null default now(),
    actor         text not null,
    action        text not null,
    invitation_id uuid references invitations (id),
    tenant_id     uuid references tenants (id),
    detail        jsonb not null default '{}'
);
create index audit_events_at_idx on audit_events (at desc);
create index audit_events_invitation_idx on audit_events (invitation_id, at);
create index audit_events_tenant_idx on audit_events (tenant_id, at);

-- Mail waiting to be delivered. The payload holds a token link, so it is encrypted and
-- wiped once sent.
create table outbox (
    id                 bigint generated always as identity primary key,
    invitation_id      uuid references invitations (id),
    recipient          citext not null,
    payload_ciphertext bytea,
    payload_key_id     text,
    attempts           integer not null default 0,
    next_attempt_at    timestamptz not null default now(),
    last_error         text,
    sent_at            timestamptz,
    created_at         timestamptz not null default now()
);
create index outbox_due_idx on outbox (next_attempt_at) where sent_at is null;
