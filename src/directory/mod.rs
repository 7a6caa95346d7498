//! Directory replication: Graph's delta pages read into typed changes ([`delta`]); storing them
//! (upserts and the next link in one transaction) and the sync runs build on this. When a
//! tenant syncs is its [`schedule`]; operators ask for a sync or change the schedule through
//! [`control`], and the console reads the copy and the runs through [`views`].

pub mod control;
pub mod delta;
pub mod schedule;
pub mod views;

/// The job kind of a directory sync: what `request_sync` and the scheduler enqueue and what a
/// worker's handler runs.
pub const SYNC_JOB: &str = "directory_sync";
