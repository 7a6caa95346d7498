-- An invitation may narrow the sync scope of the tenant it connects: to the members of groups
-- the operator names (`groups`), or to the users and groups assigned to the provider's
-- enterprise app (`app_assignments`). Null sets nothing: a new tenant copies everyone, one
-- already connected (a re-consent) keeps its scope. Before consent the groups are not in the
-- copy, so they are kept as the operator named them: display names or object ids.
alter table invitations
    add column sync_scope text
        constraint invitations_sync_scope_check check (sync_scope in ('groups', 'app_assignments')),
    add column scope_groups text[] not null default '{}';

drop view invitation_view;
create view invitation_view as
select i.*,
       c.name::text as customer_name,
       case when i.status in ('pending', 'opened', 'declined', 'failed') and i.expires_at <= now() then 'expired'
            else i.status end as effective_status
from invitations i join customers c on c.id = i.customer_id;

-- Groups an invitation named for a tenant's scope, until the end of a full round of its groups
-- resolves every one to exactly one group of the copy (by object id, or by exact display
-- name); then they become the scope's chosen groups. `problem` says why a name did not resolve
-- (null: not tried yet). While any is here the scope holds no one: never everyone by accident.
create table sync_scope_names (
    tenant_id uuid not null references tenants (id) on delete cascade,
    name      text not null,
    problem   text,
    primary key (tenant_id, name)
);
