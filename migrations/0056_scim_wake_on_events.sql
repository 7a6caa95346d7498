-- The SCIM push follows the event log, so the log is what tells it: whenever a statement appends
-- changes of the copy (`directory.user.*`, `directory.group.*`, `directory.membership.*`), the
-- enabled connections whose customers the changed tenants belong to (or that take every
-- customer) become due, and the push task is woken in every process once the transaction
-- commits. Every writer of those events (a sync round, an approval of held deletions, a change
-- of sync scope) is covered without asking for it.
--
-- A connection already due is neither written nor woken again: it was woken when it became due
-- (a failed push is retried on the task's period). So concurrent syncs of many tenants do not
-- queue behind one another on the connection's row, and commit no notification each.
--
-- The channel and payload are the background registry's (src/background/registry.rs: CHANNEL,
-- and Task::ScimPush's name).
create function scim_connections_changed_copy() returns trigger language plpgsql as $$
begin
    update scim_connections c set dirty = true
    where c.enabled and not c.dirty
      and exists (select from appended e left join tenants t on t.id = e.tenant_id
                  where e.event_type ~ '^directory\.(user|group|membership)\.'
                    and (c.customer_id is null or c.customer_id = t.customer_id));
    if found then
        perform pg_notify('gangway_background_tasks', 'scim_push');
    end if;
    return null;
end
$$;

create trigger events_wake_scim_push after insert on events
    referencing new table as appended
    for each statement execute function scim_connections_changed_copy();
