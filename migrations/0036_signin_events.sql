-- Every sign-in through Gangway's OpenID Provider, for the Sign-ins page and each tenant's page.
-- The audit trail records them too, but keeps application, customer and user inside its JSON
-- detail: filtering a growing trail by those would read every row. Here they are columns, each
-- filter has its index, and names are kept as they were (an application or customer may be
-- renamed or deleted later).
create table signin_events (
    id               bigint generated always as identity primary key,
    at               timestamptz not null default now(),
    application_id   uuid references signin_applications (id) on delete set null,
    application_name text not null,
    tenant_id        uuid references tenants (id) on delete set null,
    customer_id      uuid references customers (id) on delete set null,
    customer_name    text,
    username         text,
    outcome          text not null constraint signin_events_outcome_check
                         check (outcome in ('succeeded', 'refused')),
    -- Why, for a refusal.
    reason           text
);
create index signin_events_at on signin_events (at desc, id desc);
create index signin_events_application on signin_events (application_id, at desc);
create index signin_events_customer on signin_events (customer_id, at desc);
create index signin_events_tenant on signin_events (tenant_id, at desc);
create index signin_events_outcome on signin_events (outcome, at desc);
