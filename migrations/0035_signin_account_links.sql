-- Account links: per application, a directory user linked to the provider's own account id
-- (iPECS links each Entra account to one account of its own). One link per user and one user
-- per account id, in each application.
create table signin_account_links (
    application_id uuid not null references signin_applications (id) on delete cascade,
    tenant_id      uuid not null references tenants (id) on delete cascade,
    object_id      uuid not null,
    account_id     text not null constraint signin_account_links_account_id_check
                       check (length(account_id) between 1 and 200),
    created_by     text not null,
    created_at     timestamptz not null default now(),
    constraint signin_account_links_user_key primary key (application_id, tenant_id, object_id),
    constraint signin_account_links_account_key unique (application_id, account_id)
);

-- An application that requires a link refuses users without one (a page with the provider's
-- support contact instead of a token).
alter table signin_applications add column require_account_link boolean not null default false;
