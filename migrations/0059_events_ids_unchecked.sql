-- An event's id is a UUIDv7 (`uuid_v7()`, migration 0058): a millisecond timestamp and 74
-- random bits, unique by construction. Nothing looks an event up by its id (readers page by
-- (`writer_xid`, `position`), the primary key), so the unique index checking it cost a b-tree
-- insert per event — a full sync appends one per object and membership it copies — and
-- answered no query.
alter table events drop constraint events_id_key;
