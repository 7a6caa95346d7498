-- System Settings: what a provider configures in the console. The environment seeds each value
-- on first start (`from_env`); from then on the database is the truth and every portal process
-- reads it. Secrets are sealed like the other credentials.
create table settings (
    key        text primary key constraint settings_key_check check (key ~ '^[a-z][a-z0-9_]{0,62}$'),
    -- Plain values; null for a secret (held in `ciphertext`) or an unset optional value.
    value      jsonb,
    ciphertext bytea,
    key_id     text,
    from_env   boolean not null default false,
    updated_at timestamptz not null default now(),
    updated_by text,
    constraint settings_sealed_check check ((ciphertext is null) = (key_id is null))
);

-- Named sets of Graph permissions with the reason shown to the customer for each. An invitation
-- picks one; the wizard, the authorize request, the doctor and the sync read it.
create table permission_profiles (
    id          uuid primary key default gen_random_uuid(),
    name        citext not null constraint permission_profiles_name_key unique
                    constraint permission_profiles_name_check check (length(name) between 1 and 80),
    description text not null default '',
    -- [{"name": "User.Read.All", "plain": "Read all users' full profiles", "why": "to copy …"}, …]
    delegated   jsonb not null default '[]',
    application jsonb not null default '[]',
    built_in    boolean not null default false,
    is_default  boolean not null default false,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now()
);
create unique index permission_profiles_one_default on permission_profiles (is_default) where is_default;
create trigger permission_profiles_updated_at before update on permission_profiles
    for each row execute function set_updated_at();

-- The built-in profile: its permissions are written by Gangway at start from its own list
-- (src/invitations/permissions.rs), so the code and this row never disagree.
insert into permission_profiles (id, name, description, built_in, is_default)
values ('00000000-0000-4000-8000-000000000001', 'Read-only directory',
        'Users, groups and memberships, read only: what directory sync needs.', true, true);

-- Invitations and the tenants they connect remember the profile asked for; older rows get the
-- built-in one.
alter table invitations add column permission_profile_id uuid
    constraint invitations_permission_profile_id_fkey references permission_profiles (id);
alter table tenants add column permission_profile_id uuid
    constraint tenants_permission_profile_id_fkey references permission_profiles (id);
update invitations set permission_profile_id = '00000000-0000-4000-8000-000000000001';
update tenants set permission_profile_id = '00000000-0000-4000-8000-000000000001';
alter table invitations alter column permission_profile_id set not null;

-- The view lists the invitation's columns as they were when it was made: make it again.
drop view invitation_view;
create view invitation_view as
select i.*,
       c.name::text as customer_name,
       case when i.status in ('pending', 'opened', 'declined', 'failed') and i.expires_at <= now() then 'expired'
            else i.status end as effective_status
from invitations i join customers c on c.id = i.customer_id;

-- When a customer app's secret expires, where known (the admin may say so in the wizard).
alter table tenants add column credential_expires_on date;

-- Operators who sign in with Entra ID: their object id in the provider's tenant. A local
-- password stays for bootstrap accounts only.
alter table operators add column entra_object_id uuid constraint operators_entra_object_id_key unique;
alter table operators alter column password_hash drop not null;
