-- Change notifications: each tenant's Graph subscriptions on users and groups. A delivery names
-- its subscription; only the SHA-256 of the subscription's random clientState is kept.
create table directory_subscriptions (
    tenant_id         uuid not null constraint directory_subscriptions_tenant_id_fkey
                          references tenants (id) on delete cascade,
    resource          text not null constraint directory_subscriptions_resource_check
                          check (resource in ('users', 'groups')),
    subscription_id   text not null constraint directory_subscriptions_subscription_id_check
                          check (length(subscription_id) between 1 and 200),
    client_state_hash bytea not null,
    expires_at        timestamptz not null,
    created_at        timestamptz not null default now(),
    renewed_at        timestamptz,
    -- Set by a reauthorizationRequired lifecycle notification until the subscription is reauthorized.
    reauthorize_requested_at timestamptz,
    constraint directory_subscriptions_pkey primary key (tenant_id, resource),
    constraint directory_subscriptions_subscription_id_key unique (subscription_id)
);

-- Why the tenant's subscriptions could not be kept (shown on its page), cleared once they are;
-- and when a process last took the tenant's subscriptions in hand (a short lease, so two
-- processes never create them twice).
alter table tenants
    add column subscription_error text
        constraint tenants_subscription_error_check check (length(subscription_error) <= 2000),
    add column subscriptions_checked_at timestamptz;

-- A round a change notification asked for.
alter table sync_runs drop constraint sync_runs_trigger_check;
alter table sync_runs add constraint sync_runs_trigger_check
    check (trigger in ('first', 'schedule', 'manual', 'forced', 'retry', 'notification'));
