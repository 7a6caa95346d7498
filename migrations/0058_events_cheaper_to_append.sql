-- A sync's first round appends about one event per object and membership it copies, so every
-- index on `events` is written as often as the copy's own tables. Three of them cost more than
-- they need to:
-- * `id` came from `gen_random_uuid()`, so each insert landed on a random page of its unique
--   index (and, after a checkpoint, wrote that whole page to the WAL). Ids are now UUIDv7
--   (RFC 9562: a millisecond timestamp, then random bits), so new ones go to the index's right
--   edge as the other indexes' keys do. They stay unique and opaque; nothing sorts by them.
-- * The primary key on `position` and the reading order's index on (`writer_xid`, `position`)
--   were two indexes where one does: the reading order's key is unique since `position` is.
-- * `occurred_at` only serves pruning, and the log is appended in time order, so a block-range
--   index answers it at a fraction of a b-tree's upkeep.
create function uuid_v7() returns uuid
    language sql volatile parallel safe
    return encode(
        set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
                                placing substring(int8send((extract(epoch from clock_timestamp()) * 1000)::bigint) from 3)
                                from 1 for 6),
                        52, 1),
                53, 1),
        'hex')::uuid;

alter table events alter column id set default uuid_v7();

alter table events drop constraint events_pkey;
drop index events_order_idx;
alter table events add constraint events_pkey primary key (writer_xid, position);

drop index events_occurred_idx;
create index events_occurred_idx on events using brin (occurred_at);
