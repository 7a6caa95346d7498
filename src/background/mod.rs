//! Background work, in one place: the leased queue engine every kind of queued work uses
//! ([`lease`]: jobs, mail, webhooks), one backoff ([`backoff`]), and the registry of background
//! tasks with their state ([`registry`], [`status`]) that the console and `/readyz` show.

pub mod backoff;
pub mod lease;
pub mod registry;
pub mod status;

pub use backoff::Backoff;
pub use lease::{Batch, Leased, try_run_due, work_on};
pub use registry::{Activity, BackgroundTask, Registry, from_fn, request_run};

/// Every background task Gangway runs (a closed list: the console and "Run now" name them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Task {
    /// Enqueues the directory syncs tenants' schedules make due.
    SyncScheduler,
    /// Runs queued directory syncs.
    SyncWorkers,
    /// Keeps the tenants' change-notification subscriptions.
    DirectorySubscriptions,
    /// Delivers queued mail.
    MailOutbox,
    /// Delivers queued webhook events.
    WebhookDeliveries,
    /// Deletes old entries of the webhook delivery log.
    WebhookLogPruning,
    /// Deletes events older than the event retention period.
    EventLogPruning,
    /// Sends back-channel logout tokens to applications when sessions end.
    BackchannelLogouts,
    /// Keeps the sign-in signing keys and ends sessions that may no longer run.
    SigninUpkeep,
    /// Deletes expired console and wizard sessions.
    SessionSweep,
    /// Forgets idle clients of the rate limiters (in this process's memory).
    RateLimitPruning,
    /// Drains the metrics' histograms (in this process's memory).
    MetricsUpkeep,
    /// Checks daily what each tenant grants the provider's app.
    ConsentChecks,
    /// Pushes the directory copy to the provider's SCIM servers.
    ScimPush,
    /// Replaces the provider app's certificate before it expires.
    CertificateRotation,
    /// Rotates the client secret Gangway added to its own registration before it expires.
    SecretRotation,
    /// Follows an administrator's setup sign-in and then sets the app registration up.
    SetupSignIn,
}

impl Task {
    /// Every task, in the order pages list them.
    pub const ALL: [Task; 17] = [
        Task::SyncScheduler,
        Task::SyncWorkers,
        Task::DirectorySubscriptions,
        Task::MailOutbox,
        Task::WebhookDeliveries,
        Task::WebhookLogPruning,
        Task::EventLogPruning,
        Task::BackchannelLogouts,
        Task::SigninUpkeep,
        Task::SessionSweep,
        Task::RateLimitPruning,
        Task::MetricsUpkeep,
        Task::ConsentChecks,
        Task::ScimPush,
        Task::CertificateRotation,
        Task::SecretRotation,
        Task::SetupSignIn,
    ];

    /// The stored and wire name.
    pub fn name(self) -> &'static str {
        match self {
            Self::SyncScheduler => "sync_scheduler",
            Self::SyncWorkers => "sync_workers",
            Self::DirectorySubscriptions => "directory_subscriptions",
            Self::MailOutbox => "mail_outbox",
            Self::WebhookDeliveries => "webhook_deliveries",
            Self::WebhookLogPruning => "webhook_log_pruning",
            Self::EventLogPruning => "event_log_pruning",
            Self::BackchannelLogouts => "backchannel_logouts",
            Self::SigninUpkeep => "signin_upkeep",
            Self::SessionSweep => "session_sweep",
            Self::RateLimitPruning => "rate_limit_pruning",
            Self::MetricsUpkeep => "metrics_upkeep",
            Self::ConsentChecks => "consent_checks",
            Self::ScimPush => "scim_push",
            Self::CertificateRotation => "certificate_rotation",
            Self::SecretRotation => "secret_rotation",
            Self::SetupSignIn => "setup_sign_in",
        }
    }

    /// The name people read.
    pub fn title(self) -> &'static str {
        match self {
            Self::SyncScheduler => "Sync scheduler",
            Self::SyncWorkers => "Sync workers",
            Self::DirectorySubscriptions => "Change notifications",
            Self::MailOutbox => "Mail outbox",
            Self::WebhookDeliveries => "Webhook deliveries",
            Self::WebhookLogPruning => "Webhook log pruning",
            Self::EventLogPruning => "Event log pruning",
            Self::BackchannelLogouts => "Back-channel logouts",
            Self::SigninUpkeep => "Sign-in upkeep",
            Self::SessionSweep => "Session sweep",
            Self::RateLimitPruning => "Rate-limit pruning",
            Self::MetricsUpkeep => "Metrics upkeep",
            Self::ConsentChecks => "Consent checks",
            Self::ScimPush => "SCIM push",
            Self::CertificateRotation => "Certificate rotation",
            Self::SecretRotation => "Client secret rotation",
            Self::SetupSignIn => "Setup sign-in",
        }
    }

    /// What it does, in a sentence.
    pub fn description(self) -> &'static str {
        match self {
            Self::SyncScheduler => {
                "Queues a directory sync for every active tenant whose schedule makes one due."
            }
            Self::SyncWorkers => {
                "Takes queued directory syncs into free worker slots and runs them."
            }
            Self::DirectorySubscriptions => {
                "Creates, renews and recreates each synced tenant's Graph subscriptions on users and groups, so changes arrive in seconds."
            }
            Self::MailOutbox => {
                "Sends queued mail (invitations, operator invitations); failures retry with backoff."
            }
            Self::WebhookDeliveries => {
                "POSTs queued webhook events to their endpoints; failures retry with backoff."
            }
            Self::WebhookLogPruning => {
                "Deletes delivered and failed webhook events older than the retention period."
            }
            Self::EventLogPruning => {
                "Deletes events older than the event retention period (a System Setting, 30 days by default) from the event stream."
            }
            Self::BackchannelLogouts => {
                "POSTs logout tokens to the applications an ended sign-in session used; failures retry with backoff."
            }
            Self::SigninUpkeep => {
                "Keeps a current and a next sign-in signing key, retires old ones, ends the sessions of users and tenants that may no longer sign in, and deletes sessions ended long ago."
            }
            Self::SessionSweep => "Deletes expired sessions, so abandoned sign-ins do not pile up.",
            Self::RateLimitPruning => {
                "Forgets clients the rate limiters have not seen lately (this process's memory)."
            }
            Self::MetricsUpkeep => "Drains the metrics' histograms (this process's memory).",
            Self::ConsentChecks => {
                "Reads what each connected tenant grants the provider's app, once a day per tenant, and flags what drifted from its permission profile."
            }
            Self::ScimPush => {
                "Pushes the directory copy to the SCIM connections whose tenants changed, and reconciles each in full daily or on request."
            }
            Self::CertificateRotation => {
                "Before the app certificate expires, registers a new one on the app (addKey, proven by the current one), signs with it, and removes the old one (removeKey) once every process has switched."
            }
            Self::SecretRotation => {
                "Adds a new client secret to Gangway's own registration before the one it added expires (a System Setting, 30 days before by default), waits until every process uses it, then removes the old one."
            }
            Self::SetupSignIn => {
                "Follows the sign-in started on the Setup page, polling Entra ID at the interval it gave; once the administrator signed in, creates or repairs the app registration."
            }
        }
    }

    /// The task named `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }
}
