-- Customers become records that own their invitations and tenants; an invitation keeps its last
-- declined or failed outcome after the link is opened again; a refused consent remembers which
-- connected tenant stood in the way; the never-used permission_profile column goes (permission
-- profiles get their own table when they arrive).

create table customers (
    id         uuid primary key default gen_random_uuid(),
    name       citext not null constraint customers_name_key unique
                   constraint customers_name_check check (length(name) between 1 and 200),
    contact    text constraint customers_contact_check check (length(contact) <= 200),
    notes      text constraint customers_notes_check check (length(notes) <= 2000),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create trigger customers_updated_at before update on customers
    for each row execute function set_updated_at();

-- Every free-text name becomes one record; names differing only in case or surrounding blanks
-- were meant as the same customer (the old ownership check already compared them that way).
-- The earliest spelling wins.
insert into customers (name, created_at)
select distinct on (trim(customer_name)::citext) trim(customer_name), created_at from invitations
order by trim(customer_name)::citext, created_at;

drop view invitation_view;

alter table invitations add column customer_id uuid
    constraint invitations_customer_id_fkey references customers (id);
update invitations i set customer_id = c.id from customers c where c.name = trim(i.customer_name)::citext;
alter table invitations alter column customer_id set not null;
create index invitations_customer_id_idx on invitations (customer_id, created_at desc);
alter table invitations drop column customer_name, drop column permission_profile;

alter table invitations
    add column last_outcome text constraint invitations_last_outcome_check
        check (last_outcome in ('declined', 'failed')),
    add column last_outcome_at timestamptz,
    add column conflict_tenant_id uuid constraint invitations_conflict_tenant_id_fkey references tenants (id),
    add constraint invitations_last_outcome_at_check check ((last_outcome is null) = (last_outcome_at is null));
update invitations i set last_outcome = e.outcome, last_outcome_at = e.at
from (select distinct on (invitation_id) invitation_id, at,
             case action when 'consent.declined' then 'declined' else 'failed' end as outcome
      from audit_events where action in ('consent.declined', 'consent.failed') and invitation_id is not null
      order by invitation_id, at desc) e
where e.invitation_id = i.id;
update invitations set last_outcome = status, last_outcome_at = last_activity_at
where last_outcome is null and status in ('declined', 'failed');

-- A tenant belongs to the customer whose invitation connected it last.
alter table tenants add column customer_id uuid
    constraint tenants_customer_id_fkey references customers (id);
update tenants t set customer_id = i.customer_id
from (select distinct on (tenant_id) tenant_id, customer_id from invitations
      where tenant_id is not null order by tenant_id, last_activity_at desc) i
where i.tenant_id = t.id;
insert into customers (name)
select distinct left(display_name, 200) from tenants where customer_id is null
on conflict (name) do nothing;
update tenants t set customer_id = c.id from customers c
where t.customer_id is null and c.name = left(t.display_name, 200)::citext;
alter table tenants alter column customer_id set not null;
create index tenants_customer_id_idx on tenants (customer_id);

-- `i.*` is expanded when a view is created, so the view is made again after the columns changed.
create view invitation_view as
select i.*,
       c.name::text as customer_name,
       case when i.status in ('pending', 'opened', 'declined', 'failed') and i.expires_at <= now() then 'expired'
            else i.status end as effective_status
from invitations i join customers c on c.id = i.customer_id;
