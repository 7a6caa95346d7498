//! Change notifications as triggers. Once a tenant's first full round has succeeded, Gangway
//! keeps a Graph subscription on its `users` and one on its `groups` (`updated,deleted`),
//! renewed well before it expires and recreated when Graph no longer has it; each carries a
//! random `clientState` of its own, kept only as a SHA-256 and checked on every delivery. A
//! delivery is only a trigger: it queues a debounced delta round for the tenant (a burst is one
//! round), and the delta round stays the source of truth, the schedule the safety net.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use url::Url;
use uuid::Uuid;

use super::SYNC_JOB;
use super::control::syncable;
use super::credentials::CredentialError;
use super::runs::RunTrigger;
use super::store::Resource;
use super::sync::{Syncer, tenant_access};
use crate::crypto::{constant_time_eq, random_token, sha256};
use crate::graph::GraphError;
use crate::graph::subscriptions::NewSubscription;
use crate::jobs::{self, NewJob};
use crate::tenants::TenantStatus;

/// What Graph notifies about: a created, changed, soft-deleted or restored object arrives as
/// `updated`, one deleted for good as `deleted`.
pub const CHANGE_TYPE: &str = "updated,deleted";
/// The longest a users or groups subscription may live (41,760 minutes) less an hour, so a
/// clock a little ahead of Graph's is not refused.
const LIFETIME: time::Duration = time::Duration::minutes(41_760 - 60);
/// A subscription is renewed once less than this is left: a failing renewal has days of
/// retries before notifications stop.
const RENEW_WITHIN: time::Duration = time::Duration::days(3);
/// A notification's round waits for this much quiet…
pub const QUIET: Duration = Duration::from_secs(1);
/// …but never longer than this after the first notification of a burst.
pub const MAX_WAIT: Duration = Duration::from_secs(10);
/// How often the `directory_subscriptions` task looks at every tenant's subscriptions.
pub const PERIOD: Duration = Duration::from_secs(60);
/// A process keeps a tenant's subscriptions in hand this long before another may.
const LEASE_SECS: f64 = 60.0;
/// The lifecycle event Graph sends for directory resources.
const REAUTHORIZATION_REQUIRED: &str = "reauthorizationRequired";

/// Where Graph delivers: the portal's public addresses for change and lifecycle
/// notifications.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// Change notifications.
    pub notifications: Url,
    /// Lifecycle notifications.
    pub lifecycle: Url,
}

impl Endpoint {
    /// The endpoint at `public_url`'s `notifications` and `lifecycle` paths, if Graph can use
    /// it: Graph delivers only over HTTPS, so a plain-HTTP portal gets none unless
    /// `allow_http` (development and tests against the emulator) says otherwise.
    pub fn at(
        public_url: &Url,
        notifications: &str,
        lifecycle: &str,
        allow_http: bool,
    ) -> Option<Self> {
        let usable =
            public_url.scheme() == "https" || (allow_http && public_url.scheme() == "http");
        let join = |path: &str| public_url.join(path.trim_start_matches('/')).ok();
        usable.then(|| {
            Some(Self {
                notifications: join(notifications)?,
                lifecycle: join(lifecycle)?,
            })
        })?
    }
}

/// Why a tenant's subscriptions could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    /// No token for the tenant.
    #[error("no token for the tenant: {0}")]
    Credential(#[from] CredentialError),
    /// Graph refused or failed.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Creates, renews and deletes the tenants' subscriptions. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Keeper {
    syncer: Syncer,
    endpoint: Option<Endpoint>,
}

/// What one pass over the tenants did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Kept {
    /// Subscriptions created (first ones and replacements of lost ones).
    pub created: usize,
    /// Subscriptions renewed or reauthorized.
    pub renewed: usize,
    /// Tenants whose subscriptions could not be kept.
    pub failed: usize,
}

/// A stored subscription.
struct Row {
    resource: String,
    subscription_id: String,
    expires_at: OffsetDateTime,
    reauthorize_requested_at: Option<OffsetDateTime>,
}

impl Keeper {
    /// A keeper using `syncer`'s Graph client and tokens; without an `endpoint` it keeps none.
    pub fn new(syncer: Syncer, endpoint: Option<Endpoint>) -> Self {
        Self { syncer, endpoint }
    }

    /// Whether Graph can reach the portal, so that tenants get subscriptions at all.
    pub fn enabled(&self) -> bool {
        self.endpoint.is_some()
    }

    fn db(&self) -> &PgPool {
        self.syncer.db()
    }

    /// Keeps the subscriptions of every active tenant whose first round succeeded, taking
    /// each tenant for a short lease so processes doing the same never meet.
    pub async fn keep_all(&self) -> Result<Kept, sqlx::Error> {
        let mut kept = Kept::default();
        if self.endpoint.is_none() {
            return Ok(kept);
        }
        let tenants = sqlx::query_scalar!(
            "update tenants set subscriptions_checked_at = now()
             where status = 'active' and last_sync_success_at is not null
               and (subscriptions_checked_at is null
                    or subscriptions_checked_at < now() - make_interval(secs => $1))
             returning id",
            LEASE_SECS,
        )
        .fetch_all(self.db())
        .await?;
        for tenant in tenants {
            match self.keep(tenant).await {
                Ok((created, renewed)) => {
                    kept.created += created;
                    kept.renewed += renewed;
                }
                Err(_) => kept.failed += 1,
            }
        }
        Ok(kept)
    }

    /// Keeps `tenant`'s two subscriptions and records on the tenant why that failed, if it
    /// did; (created, renewed).
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn keep(&self, tenant: Uuid) -> Result<(usize, usize), SubscriptionError> {
        let result = self.keep_tenant(tenant).await;
        let error = result.as_ref().err().map(|e| {
            tracing::warn!(error = %e, "the tenant's change notifications could not be kept");
            e.to_string().chars().take(2_000).collect::<String>()
        });
        sqlx::query!(
            "update tenants set subscription_error = $2 where id = $1",
            tenant,
            error
        )
        .execute(self.db())
        .await?;
        result
    }

    async fn keep_tenant(&self, tenant: Uuid) -> Result<(usize, usize), SubscriptionError> {
        let Some(endpoint) = &self.endpoint else {
            return Ok((0, 0));
        };
        let Some(access) = tenant_access(self.db(), tenant).await? else {
            return Ok((0, 0));
        };
        let token = self.syncer.tokens().token(&access).await?;
        let graph = self.syncer.graph_for(&access);
        let live: BTreeSet<String> = graph
            .subscriptions(&token)
            .await?
            .into_iter()
            .map(|s| s.id)
            .collect();
        let rows = sqlx::query_as!(
            Row,
            "select resource, subscription_id, expires_at, reauthorize_requested_at
             from directory_subscriptions where tenant_id = $1",
            tenant
        )
        .fetch_all(self.db())
        .await?;
        let now = OffsetDateTime::now_utc();
        let (mut created, mut renewed) = (0, 0);
        for resource in [Resource::Users, Resource::Groups] {
            let row = rows.iter().find(|r| r.resource == resource.as_str());
            let gone = match row {
                None => true,
                Some(r) if !live.contains(&r.subscription_id) => true,
                Some(r) if r.reauthorize_requested_at.is_some() => {
                    match graph
                        .reauthorize_subscription(&token, &r.subscription_id)
                        .await
                    {
                        Ok(()) => {
                            sqlx::query!(
                                "update directory_subscriptions
                                 set reauthorize_requested_at = null, renewed_at = now()
                                 where tenant_id = $1 and resource = $2",
                                tenant,
                                resource.as_str()
                            )
                            .execute(self.db())
                            .await?;
                            renewed += 1;
                            false
                        }
                        Err(e) if e.is_not_found() => true,
                        Err(e) => return Err(e.into()),
                    }
                }
                Some(r) if r.expires_at - now < RENEW_WITHIN => {
                    match graph
                        .renew_subscription(&token, &r.subscription_id, now + LIFETIME)
                        .await
                    {
                        Ok(s) => {
                            sqlx::query!(
                                "update directory_subscriptions
                                 set expires_at = $3, renewed_at = now()
                                 where tenant_id = $1 and resource = $2",
                                tenant,
                                resource.as_str(),
                                s.expiration_date_time
                            )
                            .execute(self.db())
                            .await?;
                            renewed += 1;
                            false
                        }
                        Err(e) if e.is_not_found() => true,
                        Err(e) => return Err(e.into()),
                    }
                }
                Some(_) => false,
            };
            if gone {
                self.create(tenant, resource, endpoint, &token).await?;
                created += 1;
            }
        }
        Ok((created, renewed))
    }

    /// Creates the tenant's subscription on `resource` (replacing a stored one Graph lost).
    async fn create(
        &self,
        tenant: Uuid,
        resource: Resource,
        endpoint: &Endpoint,
        token: &crate::types::Secret,
    ) -> Result<(), SubscriptionError> {
        let client_state = random_token();
        let sub = self
            .syncer
            .graph()
            .create_subscription(
                token,
                &NewSubscription {
                    change_type: CHANGE_TYPE,
                    notification_url: endpoint.notifications.as_str(),
                    lifecycle_notification_url: endpoint.lifecycle.as_str(),
                    resource: resource.as_str(),
                    expiration_date_time: OffsetDateTime::now_utc() + LIFETIME,
                    client_state: &client_state,
                },
            )
            .await?;
        sqlx::query!(
            "insert into directory_subscriptions
                 (tenant_id, resource, subscription_id, client_state_hash, expires_at)
             values ($1, $2, $3, $4, $5)
             on conflict (tenant_id, resource) do update set
                 subscription_id = excluded.subscription_id,
                 client_state_hash = excluded.client_state_hash,
                 expires_at = excluded.expires_at,
                 created_at = now(), renewed_at = null, reauthorize_requested_at = null",
            tenant,
            resource.as_str(),
            sub.id,
            sha256(client_state.as_bytes()),
            sub.expiration_date_time,
        )
        .execute(self.db())
        .await?;
        tracing::info!(
            resource = resource.as_str(),
            "change notifications subscribed"
        );
        Ok(())
    }

    /// Deletes the tenant's subscriptions at Graph (as far as a token can still be had: ones
    /// left behind expire on their own) and forgets them; offboarding calls it first.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn delete_all(&self, tenant: Uuid) -> Result<usize, sqlx::Error> {
        let ids = sqlx::query_scalar!(
            "delete from directory_subscriptions where tenant_id = $1 returning subscription_id",
            tenant
        )
        .fetch_all(self.db())
        .await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let token = match tenant_access(self.db(), tenant).await? {
            Some(access) => self.syncer.tokens().token(&access).await.ok(),
            None => None,
        };
        let Some(token) = token else {
            tracing::warn!(
                "no token to delete the tenant's subscriptions: they expire on their own"
            );
            return Ok(0);
        };
        let mut deleted = 0;
        for id in &ids {
            match self.syncer.graph().delete_subscription(&token, id).await {
                Ok(()) => deleted += 1,
                Err(e) => tracing::warn!(error = %e, "a subscription could not be deleted"),
            }
        }
        Ok(deleted)
    }
}

/// One notification as Graph delivers it (change or lifecycle); only what a trigger needs.
/// Its `Debug` leaves the `clientState` out, so it never reaches a log.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// The subscription it is for.
    pub subscription_id: String,
    /// The subscription's secret, sent back.
    #[serde(default)]
    pub client_state: Option<String>,
    /// Set on lifecycle notifications (`reauthorizationRequired`).
    #[serde(default)]
    pub lifecycle_event: Option<String>,
}

impl std::fmt::Debug for Notification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notification")
            .field("subscription_id", &self.subscription_id)
            .field("lifecycle_event", &self.lifecycle_event)
            .finish_non_exhaustive()
    }
}

/// What a delivery came to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Accepted {
    /// Tenants a round was queued for.
    pub synced: Vec<Uuid>,
    /// Tenants whose subscriptions must be reauthorized now.
    pub reauthorize: Vec<Uuid>,
    /// Notifications refused: an unknown subscription or a wrong `clientState`.
    pub refused: usize,
}

/// Takes a delivery: each notification whose subscription is known and whose `clientState`
/// matches (compared in constant time) queues a debounced round for its tenant, or, for
/// `reauthorizationRequired`, marks the subscription for reauthorization. Anything else is
/// counted as refused and changes nothing.
pub async fn accept(db: &PgPool, notes: &[Notification]) -> Result<Accepted, sqlx::Error> {
    let mut accepted = Accepted::default();
    let (mut synced, mut reauthorize) = (BTreeSet::new(), BTreeSet::new());
    // A delivery batches many notifications of one or two subscriptions: each looked up once.
    let mut rows = HashMap::new();
    for note in notes {
        if !rows.contains_key(&note.subscription_id) {
            let row = sqlx::query!(
                "select tenant_id, client_state_hash from directory_subscriptions
                 where subscription_id = $1",
                note.subscription_id
            )
            .fetch_optional(db)
            .await?
            .map(|r| (r.tenant_id, r.client_state_hash));
            rows.insert(note.subscription_id.clone(), row);
        }
        let known = rows[&note.subscription_id].as_ref();
        let presented = sha256(note.client_state.as_deref().unwrap_or_default().as_bytes());
        let Some(&(tenant, _)) = known.filter(|(_, hash)| constant_time_eq(&presented, hash))
        else {
            accepted.refused += 1;
            continue;
        };
        match note.lifecycle_event.as_deref() {
            None => {
                synced.insert(tenant);
            }
            Some(REAUTHORIZATION_REQUIRED) => {
                sqlx::query!(
                    "update directory_subscriptions set reauthorize_requested_at = now()
                     where subscription_id = $1",
                    note.subscription_id
                )
                .execute(db)
                .await?;
                reauthorize.insert(tenant);
            }
            // Other lifecycle events are not sent for directory resources; the schedule and
            // the next keeping pass cover whatever they would mean.
            Some(_) => {}
        }
    }
    for tenant in synced {
        if queue_round(db, tenant).await? {
            accepted.synced.push(tenant);
        }
    }
    accepted.reauthorize = reauthorize.into_iter().collect();
    if accepted.refused > 0 {
        tracing::warn!(
            refused = accepted.refused,
            "notifications with an unknown subscription or a wrong clientState were ignored"
        );
    }
    Ok(accepted)
}

/// Queues a round for `tenant` once notifications are quiet, if it is synced at all.
async fn queue_round(db: &PgPool, tenant: Uuid) -> Result<bool, sqlx::Error> {
    let status = sqlx::query_scalar!(
        r#"select status as "status: TenantStatus" from tenants where id = $1"#,
        tenant
    )
    .fetch_optional(db)
    .await?;
    if !status.is_some_and(syncable) {
        return Ok(false);
    }
    jobs::enqueue_debounced(
        db,
        &NewJob {
            payload: json!({ "trigger": RunTrigger::Notification }),
            ..NewJob::new(SYNC_JOB, Some(tenant))
        },
        QUIET,
        MAX_WAIT,
    )
    .await?;
    Ok(true)
}

/// What the tenant's page says about its change notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The portal has no public HTTPS address Graph could deliver to: the tenant is polled.
    NoPublicUrl,
    /// Subscribed to both; they are renewed before this.
    On {
        /// The earlier expiry of the two.
        renew_before: OffsetDateTime,
    },
    /// Not (yet, or no longer) subscribed; with why, if keeping them failed.
    Off {
        /// The last error.
        error: Option<String>,
    },
}

/// The tenant's change-notification status, for a portal that can (`enabled`) or cannot be
/// reached by Graph.
pub async fn status(db: &PgPool, tenant: Uuid, enabled: bool) -> Result<Status, sqlx::Error> {
    if !enabled {
        return Ok(Status::NoPublicUrl);
    }
    let row = sqlx::query!(
        r#"select (select count(*) from directory_subscriptions where tenant_id = t.id) as "count!",
                  (select min(expires_at) from directory_subscriptions where tenant_id = t.id) as soonest,
                  t.subscription_error
           from tenants t where t.id = $1"#,
        tenant
    )
    .fetch_optional(db)
    .await?;
    Ok(match row {
        Some(r) if r.count == 2 && r.subscription_error.is_none() => Status::On {
            renew_before: r.soonest.unwrap_or_else(OffsetDateTime::now_utc),
        },
        Some(r) => Status::Off {
            error: r.subscription_error,
        },
        None => Status::Off { error: None },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_is_given_an_https_endpoint_and_plain_http_only_when_allowed() {
        let at = |url: &str, allow_http| {
            Endpoint::at(
                &Url::parse(url).unwrap(),
                "/graph/notifications",
                "/graph/lifecycle",
                allow_http,
            )
        };
        let https = at("https://portal.example.com/onboard/", false).unwrap();
        assert_eq!(
            https.notifications.as_str(),
            "https://portal.example.com/onboard/graph/notifications"
        );
        assert_eq!(
            https.lifecycle.as_str(),
            "https://portal.example.com/onboard/graph/lifecycle"
        );
        assert!(at("http://127.0.0.1:8080", false).is_none());
        assert!(at("http://127.0.0.1:8080", true).is_some());
    }

    #[test]
    fn a_notification_never_shows_its_client_state() {
        let note: Notification = serde_json::from_str(
            r#"{"subscriptionId":"s1","clientState":"very-secret","changeType":"updated"}"#,
        )
        .unwrap();
        assert!(!format!("{note:?}").contains("very-secret"));
    }
}
