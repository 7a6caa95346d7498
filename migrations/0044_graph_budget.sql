-- Graph's throttle budgets, shared by every worker of every process: token buckets of resource
-- units, one per app and tenant and one per app across all tenants. Their sizes and refill
-- rates follow the tenant's size and are given with each take (src/directory/budget.rs), so
-- only the level and when it was last refilled are kept.
create table graph_budgets (
    bucket      text not null constraint graph_budgets_bucket_check
                    check (length(bucket) between 1 and 200),
    level       double precision not null,
    refilled_at timestamptz not null default clock_timestamp(),
    constraint graph_budgets_pkey primary key (bucket)
);
