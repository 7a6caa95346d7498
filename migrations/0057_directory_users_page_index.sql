-- The API's directory page (`GET /api/v1/tenants/{id}/users`, by object id from a cursor) read
-- from the index alone: an index-only keyset scan touches a handful of index pages where the
-- primary key's scan fetched each row's heap page (about a hundred per page of a hundred
-- users), and its lower cost lets Postgres keep one generic plan for the statement. The price:
-- every write of a user in scope writes this index too, and a round's `last_seen_at` update is
-- no longer HOT.
create index directory_users_page on directory_users (tenant_id, object_id)
    include (user_principal_name, display_name, given_name, surname, mail, business_phones,
             mobile_phone, job_title, department, account_enabled, soft_deleted_at, last_seen_at,
             updated_at)
    where in_scope;
