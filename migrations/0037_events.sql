-- The event log: every event Gangway emits, one row each, written in the transaction of the
-- change it reports. Webhook deliveries are fanned out from it (`webhook_deliveries.event_id`
-- is the event's id, so an event has one id on the stream and in `webhook-id`).
--
-- Readers page in (writer_xid, position) order and only see rows whose writing transaction is
-- older than every transaction still running (see src/events/log.rs): a row committed later
-- always sorts after every row already handed out, so a saved cursor never skips one.
create table events (
    position    bigserial primary key,
    id          uuid not null default gen_random_uuid() constraint events_id_key unique,
    event_type  text not null,
    tenant_id   uuid,
    occurred_at timestamptz not null default now(),
    data        jsonb not null,
    writer_xid  xid8 not null default pg_current_xact_id()
);
create index events_order_idx on events (writer_xid, position);
create index events_tenant_idx on events (tenant_id, writer_xid, position);
create index events_occurred_idx on events (occurred_at);

-- How far retention has pruned: a cursor before this mark points at events that are gone.
create table events_pruned (
    only_row   boolean primary key default true constraint events_pruned_one_row check (only_row),
    writer_xid xid8 not null,
    position   bigint not null
);
