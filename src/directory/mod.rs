//! Directory replication: Graph's delta pages read into typed changes ([`delta`]); storing them
//! (upserts and the next link in one transaction) and the sync runs build on this.

pub mod delta;
