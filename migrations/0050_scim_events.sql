-- SCIM push driven by the event log: each connection reads `directory.*` events forward from
-- its own cursor (null: none yet, so the next push reconciles in full and starts one at the
-- log's head), and may be scoped to chosen groups (their transitive members and themselves).
alter table scim_connections
    add column event_cursor text,
    -- Null: every user and group of the tenants in scope; else only these groups' (object ids).
    add column scope_groups uuid[] constraint scim_connections_scope_groups_check
        check (scope_groups is null or cardinality(scope_groups) between 1 and 100);
