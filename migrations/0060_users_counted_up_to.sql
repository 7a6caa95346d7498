-- A tenant's size class (Graph's throttle limits differ below 50, below 500 and from 500 users)
-- needs its users counted only up to one past the largest class. Planned from statistics taken
-- while the copy was still small (a first round writes 100,000 users in seconds, before
-- autovacuum's next analyze), the count chose a sequential or bitmap scan, which reads every
-- row of the tenant before the limit applies: 6-7 ms at 100,000 users, a third of an idle
-- round. An index scan stops at the limit whatever the statistics (or the session's planner
-- settings) say; the function is planned at each call (not inlined: it sets planner options),
-- so no plan outlives the table's growth.
create function users_in_copy_up_to(tenant uuid, cap bigint) returns bigint
    language sql stable
    set enable_seqscan = off
    set enable_bitmapscan = off
    set enable_indexscan = on
    return (select count(*) from (select from directory_users
                                  where tenant_id = tenant and soft_deleted_at is null
                                  limit cap) as counted);
