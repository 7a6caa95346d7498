-- The deletion guard: a round's deletions are staged as its pages are applied and decided at
-- the round's end — applied when few, held for an operator when more than the tenant's
-- threshold. A rejected deletion keeps its object, and later rounds do not hold it again.

-- Per-tenant thresholds; null: the System Setting (or Gangway's default).
alter table tenants
    add column deletion_guard_percent integer constraint tenants_deletion_guard_percent_check
        check (deletion_guard_percent between 1 and 100),
    add column deletion_guard_objects integer constraint tenants_deletion_guard_objects_check
        check (deletion_guard_objects between 1 and 1000000);

create table held_deletions (
    tenant_id  uuid not null references tenants (id) on delete cascade,
    resource   text not null constraint held_deletions_resource_check check (resource in ('users', 'groups')),
    object_id  uuid not null,
    -- `soft`: to the recycle bin; `gone`: deleted for good (or vanished from a full round).
    kind       text not null constraint held_deletions_kind_check check (kind in ('soft', 'gone')),
    -- The object's name when staged: what the held notice samples.
    name       text,
    -- `staged`: seen by the round under way; `held`: waiting for an operator; `rejected`: kept.
    status     text not null default 'staged'
                   constraint held_deletions_status_check check (status in ('staged', 'held', 'rejected')),
    run_id     bigint references sync_runs (id) on delete set null,
    staged_at  timestamptz not null default now(),
    held_at    timestamptz,
    primary key (tenant_id, resource, object_id)
);
create index held_deletions_status on held_deletions (tenant_id, status);
