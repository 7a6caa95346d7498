-- An operator removed in Gangway stays out: without this, their next sign-in with Entra ID made
-- the account again from the group mapping. Only an admin restoring it lifts the block.
create table operator_blocks (
    email           citext primary key,
    entra_object_id uuid constraint operator_blocks_entra_object_id_key unique,
    -- The role they had, for the admin deciding whether to restore them.
    role            text not null,
    blocked_at      timestamptz not null default now(),
    blocked_by      text not null
);
