-- Sync scope: which of a tenant's users and groups its consumers see. The copy keeps every
-- object (delta rounds need the whole picture); `in_scope` says whether the directory API, the
-- console and the events show it, and is recomputed at the end of each round and whenever an
-- operator changes the scope.

-- `all`: everyone; `groups`: the chosen groups and their transitive members; `app_assignments`:
-- the users and groups assigned to the provider's enterprise app, and the assigned groups'
-- transitive members.
alter table tenants
    add column sync_scope text not null default 'all'
        constraint tenants_sync_scope_check check (sync_scope in ('all', 'groups', 'app_assignments')),
    -- When the enterprise app's assignments were last read (null: never; an
    -- `app_assignments` scope is not applied before the first read).
    add column scope_assignments_read_at timestamptz;

-- The scope's principals: groups an operator chose (`chosen`), and the users and groups
-- assigned to the enterprise app as last read (`assigned`, replaced at each read).
create table sync_scope_principals (
    tenant_id      uuid not null references tenants (id) on delete cascade,
    source         text not null constraint sync_scope_principals_source_check
                       check (source in ('chosen', 'assigned')),
    principal_id   uuid not null,
    principal_type text not null constraint sync_scope_principals_type_check
                       check (principal_type in ('user', 'group')),
    primary key (tenant_id, source, principal_id)
);

alter table directory_users add column in_scope boolean not null default true;
alter table directory_groups add column in_scope boolean not null default true;

-- An object new to the copy of a scoped tenant starts outside the scope: the round's end
-- brings it in (with its `created` event) if the scope holds it, so no event shows it early.
create function directory_object_scope() returns trigger language plpgsql as $$
begin
    new.in_scope := coalesce((select sync_scope = 'all' from tenants where id = new.tenant_id), true);
    return new;
end $$;
create trigger directory_users_scope before insert on directory_users
    for each row execute function directory_object_scope();
create trigger directory_groups_scope before insert on directory_groups
    for each row execute function directory_object_scope();
