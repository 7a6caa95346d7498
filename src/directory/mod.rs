//! Directory replication: a copy of each consented tenant's users, groups and memberships,
//! kept current from Microsoft Graph delta rounds.
//!
//! [`delta`] reads a page into typed changes, [`store`] applies a page and its link in one
//! transaction, [`sync`] runs a tenant's two chains, [`credentials`] gets its tokens,
//! [`schedule`] says when it is due and [`worker`] runs jobs from the queue. Operators ask for
//! a sync or change the schedule through [`control`]; the console reads the copy and the runs
//! through [`views`]; scripts page through it with [`feed`]. [`subscriptions`] keeps Graph's
//! change notifications coming and turns them into rounds. [`scope`] decides which users and
//! groups the provider sees; [`invited_scope`] resolves the groups an invitation named.
//! Every worker's Graph reads draw on one throttle [`budget`] kept in Postgres.

pub mod budget;
mod changelog;
pub mod control;
pub mod credentials;
pub mod delta;
pub mod feed;
pub mod guard;
pub mod invited_scope;
pub mod nesting;
pub mod runs;
pub mod schedule;
pub mod scope;
pub mod store;
pub mod subscriptions;
pub mod sync;
pub mod views;
pub mod worker;

pub use crate::tenants::SYNC_JOB;
