-- A new object's `in_scope` is now set by the statement that inserts it (once per statement,
-- from the tenant's scope) instead of a per-row trigger that read `tenants` for every user and
-- group a full round inserts.
drop trigger directory_users_scope on directory_users;
drop trigger directory_groups_scope on directory_groups;
drop function directory_object_scope();

-- The objects flagged outside the scope, in or out of the recycle bin: a tenant with none (one
-- copying everyone) shows every membership a page logs, which one index probe per statement
-- says instead of three per membership. A round's end still asks for the live ones.
drop index directory_users_out_of_scope;
drop index directory_groups_out_of_scope;
create index directory_users_out_of_scope on directory_users (tenant_id) where not in_scope;
create index directory_groups_out_of_scope on directory_groups (tenant_id) where not in_scope;
