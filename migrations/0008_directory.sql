-- The directory copy: every consented tenant's users, groups and memberships, kept current
-- from Microsoft Graph delta rounds. Every row is keyed, and every query scoped, by
-- (tenant, object id).

-- Each tenant's sync schedule (`every 30m`, `every 6h`, `daily 02:30 Europe/Berlin`, `manual`,
-- parsed by the application) and when the scheduler next enqueues a sync.
alter table tenants
    add column sync_schedule text constraint tenants_sync_schedule_check
        check (length(sync_schedule) between 1 and 100),
    add column next_sync_at timestamptz,
    add column last_sync_success_at timestamptz,
    -- Failed runs in a row since the last success; the console calls a tenant unhealthy at 3.
    add column sync_failures integer not null default 0,
    add column sync_error text;
create index tenants_next_sync on tenants (next_sync_at) where status = 'active';

create table directory_users (
    tenant_id           uuid not null references tenants (id) on delete cascade,
    object_id           uuid not null,
    user_principal_name text,
    display_name        text,
    given_name          text,
    surname             text,
    mail                text,
    business_phones     text[] not null default '{}',
    mobile_phone        text,
    job_title           text,
    department          text,
    account_enabled     boolean,
    -- In Entra's recycle bin (delta `@removed: changed`): kept, flagged, restorable.
    soft_deleted_at     timestamptz,
    first_seen_at       timestamptz not null default now(),
    last_seen_at        timestamptz not null default now(),
    updated_at          timestamptz not null default now(),
    -- The full round that last saw it: what a full round did not see has vanished.
    seen_round          bigint not null,
    primary key (tenant_id, object_id)
);
create index directory_users_name on directory_users (tenant_id, display_name, object_id);

create table directory_groups (
    tenant_id        uuid not null references tenants (id) on delete cascade,
    object_id        uuid not null,
    display_name     text,
    description      text,
    mail             text,
    mail_enabled     boolean,
    security_enabled boolean,
    soft_deleted_at  timestamptz,
    first_seen_at    timestamptz not null default now(),
    last_seen_at     timestamptz not null default now(),
    updated_at       timestamptz not null default now(),
    seen_round       bigint not null,
    primary key (tenant_id, object_id)
);
create index directory_groups_name on directory_groups (tenant_id, display_name, object_id);

-- A member may be a user, a group, a device or a contact, and may arrive before the users
-- chain has reached it: no foreign key to directory_users.
create table directory_group_members (
    tenant_id   uuid not null,
    group_id    uuid not null,
    member_id   uuid not null,
    member_type text not null,
    seen_round  bigint not null,
    primary key (tenant_id, group_id, member_id),
    foreign key (tenant_id, group_id) references directory_groups (tenant_id, object_id) on delete cascade
);
create index directory_group_members_member on directory_group_members (tenant_id, member_id);

-- Where each chain stands. `next_link` is set mid-round (a crash resumes there), `delta_link`
-- once a round completed. `round` counts full rounds; `full_round` says the current round is one.
create table sync_state (
    tenant_id        uuid not null references tenants (id) on delete cascade,
    resource         text not null constraint sync_state_resource_check check (resource in ('users', 'groups')),
    next_link        text,
    delta_link       text,
    round            bigint not null default 1,
    full_round       boolean not null default true,
    round_started_at timestamptz,
    last_round_at    timestamptz,
    primary key (tenant_id, resource)
);

create table sync_runs (
    id                bigint generated always as identity primary key,
    tenant_id         uuid not null references tenants (id) on delete cascade,
    job_id            bigint references jobs (id) on delete set null,
    trigger           text not null constraint sync_runs_trigger_check
                          check (trigger in ('first', 'schedule', 'manual', 'forced', 'retry')),
    outcome           text not null default 'running' constraint sync_runs_outcome_check
                          check (outcome in ('running', 'succeeded', 'failed', 'interrupted', 'abandoned')),
    full_round        boolean not null default false,
    added             integer not null default 0,
    updated           integer not null default 0,
    soft_deleted      integer not null default 0,
    removed           integer not null default 0,
    members_added     integer not null default 0,
    members_removed   integer not null default 0,
    pages             integer not null default 0,
    throttled_waits   integer not null default 0,
    throttled_seconds double precision not null default 0,
    error             text,
    started_at        timestamptz not null default now(),
    finished_at       timestamptz,
    constraint sync_runs_finished_check check ((outcome = 'running') = (finished_at is null))
);
create index sync_runs_tenant on sync_runs (tenant_id, id desc);
