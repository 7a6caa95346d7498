-- A durable job queue. Workers claim a job by leasing it in a short transaction of their own,
-- run it outside any transaction, then record the result while their lease is still on it.
-- A lease that runs out (the worker died) lets another worker take the job over.
create table jobs (
    id               bigint generated always as identity primary key,
    kind             text not null constraint jobs_kind_check check (length(kind) between 1 and 100),
    -- Jobs of one tenant never run side by side (jobs_one_running_per_tenant); null: no tenant.
    tenant_id        uuid constraint jobs_tenant_id_fkey references tenants (id) on delete cascade,
    payload          jsonb not null default '{}',
    status           text not null default 'queued' constraint jobs_status_check
                         check (status in ('queued', 'running', 'done', 'failed', 'cancelled')),
    -- Counted when a worker claims the job, given back when it releases it unrun.
    attempts         integer not null default 0 constraint jobs_attempts_check check (attempts >= 0),
    max_attempts     integer not null default 5 constraint jobs_max_attempts_check check (max_attempts >= 1),
    run_at           timestamptz not null default now(),
    leased_by        text,
    lease_expires_at timestamptz,
    last_error       text,
    created_at       timestamptz not null default now(),
    finished_at      timestamptz,
    constraint jobs_lease_check
        check ((status = 'running') = (leased_by is not null and lease_expires_at is not null)),
    constraint jobs_finished_check
        check ((status in ('done', 'failed', 'cancelled')) = (finished_at is not null))
);

-- The database, not the workers' manners, keeps one tenant to one running job.
create unique index jobs_one_running_per_tenant on jobs (tenant_id) where status = 'running';
-- A second job of a kind for a tenant that already has one queued coalesces into it.
create unique index jobs_one_queued_per_tenant_kind on jobs (tenant_id, kind) where status = 'queued';
create index jobs_due on jobs (run_at) where status = 'queued';
create index jobs_lease_expiry on jobs (lease_expires_at) where status = 'running';
