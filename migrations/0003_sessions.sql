-- Browser sessions. The cookie carries the session id; the database keeps only its SHA-256, so a
-- dump or backup yields no usable session. The payload (CSRF token, invitation, pending
-- sign-in's state, nonce and PKCE verifier) is sealed with AES-256-GCM; key id for rotation.
create table sessions (
    id_sha256          bytea primary key,
    -- The signed-in operator, so their sessions can be found and ended; null before sign-in.
    operator_id        uuid constraint sessions_operator_id_fkey
                           references operators (id) on delete cascade,
    payload_key_id     text not null,
    payload_ciphertext bytea not null,
    created_at         timestamptz not null default now(),
    expires_at         timestamptz not null
);
create index sessions_expires_at_idx on sessions (expires_at);
create index sessions_operator_id_idx on sessions (operator_id) where operator_id is not null;

-- The previous store kept session ids and payloads in clear: drop it (everyone signs in again).
drop schema if exists tower_sessions cascade;

-- Operators can be removed; the invitations they created stay (the audit trail names who).
alter table invitations
    drop constraint if exists invitations_created_by_fkey,
    add constraint invitations_created_by_fkey
        foreign key (created_by) references operators (id) on delete set null;
