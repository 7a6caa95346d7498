//! Directory replication: Graph's delta pages read into typed changes ([`delta`]); storing them
//! (upserts and the next link in one transaction) and the sync runs build on this. When a
//! tenant syncs is its [`schedule`].

pub mod delta;
pub mod schedule;
