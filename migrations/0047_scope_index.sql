-- The objects a tenant's sync scope leaves out, found without reading the whole copy: a tenant
-- copying everyone has none, and a round's end can say so from the index alone.
create index directory_users_out_of_scope on directory_users (tenant_id)
    where not in_scope and soft_deleted_at is null;
create index directory_groups_out_of_scope on directory_groups (tenant_id)
    where not in_scope and soft_deleted_at is null;
