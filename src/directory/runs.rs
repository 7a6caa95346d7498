//! What a sync run records about itself: why it ran and how it ended (`sync_runs`).

/// Why a sync ran (`sync_runs.trigger`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type, serde::Serialize, serde::Deserialize)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum RunTrigger {
    /// The first sync after a consent.
    First,
    /// The tenant's schedule.
    Schedule,
    /// An operator's "Sync now".
    Manual,
    /// The delta token would otherwise expire.
    Forced,
    /// A retry after a failure.
    Retry,
    /// A change notification from Graph.
    Notification,
}

impl RunTrigger {
    /// As people read it.
    pub fn label(self) -> &'static str {
        match self {
            Self::First => "First sync",
            Self::Schedule => "Scheduled",
            Self::Manual => "Manual (Sync now)",
            Self::Forced => "Forced (6 days)",
            Self::Retry => "Retry",
            Self::Notification => "Change notification",
        }
    }
}

/// How a sync run ended (`sync_runs.outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type, serde::Serialize, serde::Deserialize)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Still going.
    Running,
    /// Completed.
    Succeeded,
    /// Stopped by an error.
    Failed,
    /// Stopped (e.g. on shutdown); the next run resumes where it stood.
    Interrupted,
    /// Its worker vanished; the next run resumes where it stood.
    Abandoned,
}

impl RunOutcome {
    /// The stored form (also the badge's CSS class).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
            Self::Abandoned => "abandoned",
        }
    }

    /// As people read it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Interrupted => "Interrupted",
            Self::Abandoned => "Abandoned",
        }
    }
}

/// The [`Tally`](super::store::Tally) in a checked query's row that selected a run's counting
/// columns (`added` … `throttled_seconds`): `query!` rows cannot fill a flattened struct.
macro_rules! tally_of {
    ($row:ident) => {
        $crate::directory::store::Tally {
            added: $row.added,
            updated: $row.updated,
            soft_deleted: $row.soft_deleted,
            removed: $row.removed,
            members_added: $row.members_added,
            members_removed: $row.members_removed,
            pages: $row.pages,
            throttled_waits: $row.throttled_waits,
            throttled_seconds: $row.throttled_seconds,
        }
    };
}
pub(crate) use tally_of;
