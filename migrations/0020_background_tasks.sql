-- What every process's background tasks are doing, so the console and /readyz show them all
-- (a `gangway worker` runs in a process of its own). One row per task per process, written by
-- that process: when a run started and ended, its error, what it is doing now, and a heartbeat
-- that tells a live process from one that died. A process deletes its rows when it stops.
create table background_tasks (
    name text not null,
    process text not null,
    description text not null,
    period_ms bigint not null constraint background_tasks_period_check check (period_ms > 0),
    doing text,
    runs bigint not null default 0,
    last_started_at timestamptz,
    last_finished_at timestamptz,
    last_summary text,
    last_error text,
    heartbeat_at timestamptz not null default now(),
    constraint background_tasks_pkey primary key (name, process)
);
