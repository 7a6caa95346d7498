-- What kind of failure the tenant's last sync error is, so the console can say what to do next
-- (offboard a tenant Microsoft no longer knows, grant a missing permission, wait for throttling).
-- Meaningful only beside a sync_error.
alter table tenants add column sync_failure_kind text
    constraint tenants_sync_failure_kind_check
    check (sync_failure_kind in ('tenant_not_found', 'permission_missing', 'throttled', 'other'));
