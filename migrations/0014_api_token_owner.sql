-- An API token belongs to the operator who made it (null: made with the CLI, owned by whoever
-- runs it). A token dies with its owner's removal, and a write token with their admin role.
alter table api_tokens
    add column owner_id uuid constraint api_tokens_owner_id_fkey references operators (id) on delete set null;
update api_tokens t set owner_id = o.id from operators o where t.created_by = 'operator:' || o.email::text;

-- Tokens that already outlived their owner (removed), or write tokens of one now a viewer,
-- stop now; each revocation is audited as the ones Gangway makes from now on.
with revoked as (
    update api_tokens t set revoked_at = now()
    where t.revoked_at is null and t.created_by like 'operator:%'
      and (t.owner_id is null
           or (t.scope = 'write' and exists (select 1 from operators o where o.id = t.owner_id and o.role = 'viewer')))
    returning t.name, t.created_by, t.owner_id
)
insert into audit_events (actor, action, detail)
select 'system', 'api_token.revoked',
       jsonb_build_object('token', name, 'owner', substr(created_by, 10),
                          'reason', case when owner_id is null then 'its owner was removed'
                                         else 'its owner is no longer an admin' end)
from revoked;
