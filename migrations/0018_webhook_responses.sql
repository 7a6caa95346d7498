-- The delivery log shows what was sent and what the receiver answered (its body capped at
-- 4 KB, the last attempt's), and "send again" queues an event anew under the webhook-id of the
-- first delivery (`event_id`, null on that first one) so receivers can drop the duplicate.
alter table webhook_deliveries
    add column response_body text,
    add column event_id uuid;
