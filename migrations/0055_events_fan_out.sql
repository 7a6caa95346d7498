-- Webhook deliveries are fanned out by the statement that appends the events: one statement-level
-- trigger reads the rows it appended (its transition table) and queues one delivery per enabled
-- endpoint whose filter matches, in the same transaction. The writers no longer read the events
-- back by position in a second round trip (a full sync appends about one event per object and
-- membership it copies). The body is `{"id", "type", "timestamp", "data"}`, as Standard Webhooks
-- suggests, with the event's own id and time.
create function events_fan_out() returns trigger language plpgsql as $$
begin
    insert into webhook_deliveries (endpoint_id, event_type, payload, event_id)
    select w.id, e.event_type,
           jsonb_build_object('id', e.id, 'type', e.event_type,
                              'timestamp', rfc3339_utc(e.occurred_at), 'data', e.data),
           e.id
    from appended e
    join webhook_endpoints w on w.enabled and ('*' = any(w.events) or e.event_type = any(w.events))
    order by e.position;
    return null;
end $$;
create trigger events_fan_out after insert on events
    referencing new table as appended
    for each statement execute function events_fan_out();
