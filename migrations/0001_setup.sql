-- Shared setup: case-insensitive text for emails/domains and an updated_at trigger.
create extension if not exists citext;

create or replace function set_updated_at() returns trigger language plpgsql as $$
begin
    new.updated_at := now();
    return new;
end;
$$;
