-- A worker claims due mail by leasing it in a short transaction of its own, sends outside any
-- transaction, then marks each message sent only while its lease is still the one it took.
-- A lease that runs out (the worker died) makes the mail claimable again.
alter table outbox add column leased_until timestamptz;
