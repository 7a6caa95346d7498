//! Customer tenants: recording a consent, encrypted credentials, listing.

use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{self, Action, Actor};
use crate::crypto::Keyring;
use crate::invitations::{self, InvitationError, InvitationStatus};
use crate::jobs;
use crate::types::Secret;
use crate::types::{ConsentMode, CustomerId, InvitationId, TenantRecordId};
use crate::webhooks;

/// Where a tenant stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type, serde::Serialize)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    /// Connected; its directory is (or will be) copied.
    Active,
    /// A sync is running.
    Syncing,
    /// The credential stopped working (revoked consent, expired secret): a new consent is needed.
    ReconsentRequired,
    /// Kept but not synced, by an operator's decision.
    Disabled,
    /// Disconnected for good: credential erased, history kept.
    Offboarded,
}

impl TenantStatus {
    /// The stored form (also the badge's CSS class).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Syncing => "syncing",
            Self::ReconsentRequired => "reconsent_required",
            Self::Disabled => "disabled",
            Self::Offboarded => "offboarded",
        }
    }

    /// As people read it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Active => "Active",
            Self::Syncing => "Syncing",
            Self::ReconsentRequired => "Consent needed again",
            Self::Disabled => "Disabled",
            Self::Offboarded => "Offboarded",
        }
    }
}

/// A tenant as stored (credentials stay sealed and are not read here).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Tenant {
    /// Gangway's id.
    pub id: TenantRecordId,
    /// The customer it belongs to: the one whose invitation connected it last.
    pub customer_id: CustomerId,
    /// That customer's name.
    pub customer_name: String,
    /// Microsoft's id of the directory.
    pub entra_tenant_id: Uuid,
    /// The organisation's name, as Microsoft reports it.
    pub display_name: String,
    /// Its verified domains.
    pub verified_domains: Vec<String>,
    /// How access was granted.
    pub consent_mode: ConsentMode,
    /// The permissions granted.
    pub granted_scopes: Vec<String>,
    /// Who consented (object id), when known.
    pub consented_by_oid: Option<Uuid>,
    /// Who consented (UPN), when known.
    pub consented_by_upn: Option<String>,
    /// When consent was (last) given.
    #[serde(with = "time::serde::rfc3339")]
    pub consented_at: OffsetDateTime,
    /// Customer-app mode: the customer's own app registration.
    pub customer_client_id: Option<String>,
    /// Where it stands.
    pub status: TenantStatus,
    /// When it was first connected.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A checked query reading [`Tenant`] rows (a tenant with its customer's name); `$tail` (string
/// literals joined with `+`) filters and orders.
macro_rules! select_tenants {
    ($tail:literal $(+ $more:literal)* $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            Tenant,
            r#"select t.id as "id: crate::types::TenantRecordId",
                      t.customer_id as "customer_id: crate::types::CustomerId",
                      c.name::text as "customer_name!", t.entra_tenant_id,
                      t.display_name, t.verified_domains, t.consent_mode as "consent_mode: ConsentMode",
                      t.granted_scopes, t.consented_by_oid, t.consented_by_upn, t.consented_at,
                      t.customer_client_id, t.status as "status: TenantStatus", t.created_at
               from tenants t join customers c on c.id = t.customer_id "# + $tail $(+ $more)*
            $(, $arg)*
        )
    };
}

/// What a verified consent established about a tenant.
#[derive(Debug, Clone)]
pub struct Consent {
    /// Microsoft's id of the directory.
    pub entra_tenant_id: Uuid,
    /// The organisation's name.
    pub display_name: String,
    /// Its verified domains.
    pub verified_domains: Vec<String>,
    /// How access was granted.
    pub mode: ConsentMode,
    /// The permissions granted.
    pub granted_scopes: Vec<String>,
    /// Who consented (object id), when known.
    pub consented_by_oid: Option<Uuid>,
    /// Who consented (UPN), when known.
    pub consented_by_upn: Option<String>,
    /// Customer-app mode: the customer's own app registration.
    pub customer_client_id: Option<String>,
    /// Refresh token (delegated) or client secret (customer app); sealed before storing.
    pub credential: Option<Secret>,
}

/// Why a consent could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    /// The invitation is restricted to another tenant's domain.
    #[error("the invitation is for the tenant with domain {expected}, but consent came from a tenant verified for {}", .found.join(", "))]
    WrongTenant {
        /// The invitation's domain.
        expected: String,
        /// The consenting tenant's verified domains.
        found: Vec<String>,
    },
    /// Connected and not offboarded under another customer record; the invitation remembers
    /// the tenant so the operator's page can point at it.
    #[error(
        "this tenant is already connected for another customer ({owner}); an operator must resolve that first"
    )]
    OwnedByAnother {
        /// The owning customer's name.
        owner: String,
    },
    /// The invitation was used, revoked or expired meanwhile.
    #[error("the invitation can no longer be used: it is {}", .0.as_str())]
    InvitationClosed(InvitationStatus),
    /// Reading the invitation failed.
    #[error(transparent)]
    Invitation(#[from] InvitationError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Records a verified consent in one transaction: tenant upserted with its sealed credential,
/// invitation marked consented, audit event written with `actor` (who consented, as verified).
/// Returns the tenant's id.
pub async fn record_consent(
    db: &PgPool,
    keys: &Keyring,
    invitation_id: InvitationId,
    consent: &Consent,
    actor: &Actor,
) -> Result<Uuid, ConsentError> {
    let mut tx = db.begin().await?;
    let invitation = invitations::lock(&mut tx, invitation_id).await?;
    if !invitation.status.is_open() {
        return Err(ConsentError::InvitationClosed(invitation.status));
    }
    if let Some(expected) = &invitation.tenant_domain {
        if !consent
            .verified_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(expected))
        {
            return Err(ConsentError::WrongTenant {
                expected: expected.clone(),
                found: consent.verified_domains.clone(),
            });
        }
    }
    // A tenant connected for another customer record is not silently taken over. The names
    // do not matter: "Contoso (typo)" and "Contoso Ltd" are two customers unless the operator
    // picked the same record.
    let owner = sqlx::query!(
        r#"select t.id, c.name::text as "owner!" from tenants t join customers c on c.id = t.customer_id
           where t.entra_tenant_id = $1 and t.status <> 'offboarded' and t.customer_id <> $2"#,
        consent.entra_tenant_id,
        invitation.customer_id as CustomerId,
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(owner) = owner {
        // Kept (and committed) although the consent is refused, for the operator to resolve.
        sqlx::query!(
            "update invitations set conflict_tenant_id = $2 where id = $1",
            invitation_id as InvitationId,
            owner.id,
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        return Err(ConsentError::OwnedByAnother { owner: owner.owner });
    }
    let sealed = consent
        .credential
        .as_ref()
        .map(|s| keys.seal(s.expose().as_bytes()));
    let key_id = sealed.as_ref().map(|_| keys.id());
    let tenant_id = sqlx::query_scalar!(
        "insert into tenants (entra_tenant_id, display_name, verified_domains, consent_mode, granted_scopes,
                              consented_by_oid, consented_by_upn, customer_client_id, credential_ciphertext,
                              credential_key_id, customer_id, consented_at, status, permission_profile_id)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now(), 'active',
                 (select permission_profile_id from invitations where id = $12))
         on conflict (entra_tenant_id) do update set customer_id = excluded.customer_id,
             permission_profile_id = excluded.permission_profile_id,
             display_name = excluded.display_name, verified_domains = excluded.verified_domains,
             consent_mode = excluded.consent_mode, granted_scopes = excluded.granted_scopes,
             consented_by_oid = excluded.consented_by_oid, consented_by_upn = excluded.consented_by_upn,
             customer_client_id = excluded.customer_client_id,
             credential_ciphertext = excluded.credential_ciphertext, credential_key_id = excluded.credential_key_id,
             consented_at = now(), status = 'active',
             consent_drift = null, consent_checked_at = null
         returning id",
        consent.entra_tenant_id,
        consent.display_name,
        &consent.verified_domains,
        consent.mode as ConsentMode,
        &consent.granted_scopes,
        consent.consented_by_oid,
        consent.consented_by_upn,
        consent.customer_client_id,
        sealed,
        key_id,
        invitation.customer_id as CustomerId,
        invitation_id as InvitationId,
    )
    .fetch_one(&mut *tx)
    .await?;
    // The scope the invitation chose; a re-consent chooses none and keeps the tenant's.
    invitations::scope::apply_at_consent(
        &mut tx,
        invitation_id.into(),
        tenant_id,
        invitation.scope().as_ref(),
        actor,
    )
    .await?;
    sqlx::query!(
        "update invitations set status = 'consented', tenant_id = $2, last_error = null,
                customer_notice = null, conflict_tenant_id = null, last_activity_at = now()
         where id = $1",
        invitation_id as InvitationId,
        tenant_id,
    )
    .execute(&mut *tx)
    .await?;
    // The link is used: mail still queued for it must not go out.
    invitations::mail::discard_unsent(&mut tx, invitation_id).await?;
    // The first sync is part of the consent: it is queued, or neither happened. The scheduler
    // looks again in an hour should that sync never run; each run sets the next time itself.
    sqlx::query!(
        "update tenants set next_sync_at = now() + interval '1 hour', sync_failures = 0, sync_error = null
         where id = $1",
        tenant_id,
    )
    .execute(&mut *tx)
    .await?;
    jobs::enqueue(
        &mut *tx,
        &jobs::NewJob {
            payload: json!({ "trigger": "first" }),
            ..jobs::NewJob::new(SYNC_JOB, Some(tenant_id))
        },
    )
    .await?;
    let detail = json!({
        "tenant": consent.display_name,
        "entra_tenant_id": consent.entra_tenant_id,
        "mode": consent.mode.as_str(),
        "scopes": consent.granted_scopes.join(" "),
    });
    audit::record(
        &mut *tx,
        actor,
        Action::ConsentGranted,
        Some(invitation_id.into()),
        Some(tenant_id),
        detail,
    )
    .await?;
    webhooks::emit(&mut tx, &webhooks::Event::new(webhooks::EventType::InvitationConsented, json!({ "invitation_id": invitation_id, "customer_id": invitation.customer_id, "tenant_id": tenant_id })))
    .await?;
    webhooks::emit(
        &mut tx,
        &webhooks::Event::new(
            webhooks::EventType::TenantConnected,
            json!({
                "tenant_id": tenant_id,
                "entra_tenant_id": consent.entra_tenant_id,
                "display_name": consent.display_name,
                "customer_id": invitation.customer_id,
                "consent_mode": consent.mode.as_str(),
                "invitation_id": invitation_id,
            }),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(tenant_id)
}

/// Records when the customer app's secret of the tenant `entra_tenant_id` expires (`None`:
/// unknown), for the console's reminders.
pub async fn set_credential_expiry(
    db: &PgPool,
    entra_tenant_id: Uuid,
    expires_on: Option<time::Date>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update tenants set credential_expires_on = $2 where entra_tenant_id = $1",
        entra_tenant_id,
        expires_on,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The job kind of a directory sync (the replication engine handles it).
pub const SYNC_JOB: &str = "directory_sync";

/// Marks an active tenant `reconsent_required` because its credential stopped working
/// (`why`, kept for operators): its queued syncs are cancelled and the scheduler skips it
/// until the customer consents again; audited. False when it was not active.
pub async fn require_reconsent(db: &PgPool, id: Uuid, why: &str) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let why: String = why.chars().take(audit::MAX_DETAIL_CHARS).collect();
    let changed = sqlx::query!(
        "update tenants set status = 'reconsent_required', sync_error = $2
         where id = $1 and status = 'active'",
        id,
        why,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if changed {
        jobs::cancel_for_tenant(&mut *tx, id).await?;
        audit::record(
            &mut *tx,
            &Actor::System,
            Action::TenantReconsentRequired,
            None,
            Some(id),
            json!({ "reason": why }),
        )
        .await?;
        webhooks::emit(
            &mut tx,
            &webhooks::Event::new(
                webhooks::EventType::TenantReconsentRequired,
                json!({ "tenant_id": id, "reason": why }),
            ),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(changed)
}

/// Why a tenant could not be offboarded.
#[derive(Debug, thiserror::Error)]
pub enum OffboardError {
    /// No tenant has this id.
    #[error("no such tenant")]
    NotFound,
    /// Nothing left to do.
    #[error("the tenant is already offboarded")]
    AlreadyOffboarded,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Offboards a tenant: its stored credential is erased for good, its directory copy and sync
/// state deleted, its queued syncs cancelled (a running one stops at its next page), and it
/// stops counting as connected, so another customer's invitation may connect it. Its runs and
/// audit history stay.
pub async fn offboard(db: &PgPool, id: Uuid, actor: &Actor) -> Result<Tenant, OffboardError> {
    let mut tx = db.begin().await?;
    let status = sqlx::query_scalar!(
        r#"select status as "status: TenantStatus" from tenants where id = $1 for update"#,
        id,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(OffboardError::NotFound)?;
    if status == TenantStatus::Offboarded {
        return Err(OffboardError::AlreadyOffboarded);
    }
    sqlx::query!(
        "update tenants set status = 'offboarded', credential_ciphertext = null, credential_key_id = null,
                credential_expires_on = null, next_sync_at = null, sync_failures = 0, sync_error = null
         where id = $1",
        id,
    )
    .execute(&mut *tx)
    .await?;
    // The directory copy and where its syncs stood go with the credential: a tenant invited
    // again syncs from scratch. A sync running now stops at its next page (it finds the tenant
    // no longer active); queued ones are cancelled. Runs and the audit trail stay as history.
    let removed = erase_directory(&mut tx, id).await?;
    let cancelled = jobs::cancel_for_tenant(&mut *tx, id).await?;
    // So are the copies of it in webhook events waiting in the delivery log.
    let erased = webhooks::erase_tenant_payloads(&mut tx, id).await?;
    let tenant = find(&mut *tx, id.into())
        .await?
        .ok_or(OffboardError::NotFound)?;
    let detail = json!({
        "tenant": tenant.display_name,
        "entra_tenant_id": tenant.entra_tenant_id,
        "directory_objects_deleted": removed,
        "queued_syncs_cancelled": cancelled,
        "webhook_events_erased": erased,
    });
    audit::record(
        &mut *tx,
        actor,
        Action::TenantOffboarded,
        None,
        Some(id),
        detail,
    )
    .await?;
    webhooks::emit(
        &mut tx,
        &webhooks::Event::new(
            webhooks::EventType::TenantOffboarded,
            json!({
                "tenant_id": id,
                "entra_tenant_id": tenant.entra_tenant_id,
                "display_name": tenant.display_name,
                "customer_id": tenant.customer_id,
            }),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(tenant)
}

/// Deletes the tenant's directory copy, sync state and sync scope; returns the users and groups
/// deleted.
async fn erase_directory(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    id: Uuid,
) -> Result<i64, sqlx::Error> {
    sqlx::query!(
        "delete from directory_group_members where tenant_id = $1",
        id
    )
    .execute(&mut **tx)
    .await?;
    let users = sqlx::query!("delete from directory_users where tenant_id = $1", id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    let groups = sqlx::query!("delete from directory_groups where tenant_id = $1", id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    sqlx::query!("delete from sync_state where tenant_id = $1", id)
        .execute(&mut **tx)
        .await?;
    sqlx::query!("delete from held_deletions where tenant_id = $1", id)
        .execute(&mut **tx)
        .await?;
    // The sync scope names objects of the erased copy: a tenant invited again starts from
    // everyone, as a new one does, with nothing of the old scope left behind.
    sqlx::query!("delete from sync_scope_principals where tenant_id = $1", id)
        .execute(&mut **tx)
        .await?;
    sqlx::query!("delete from sync_scope_names where tenant_id = $1", id)
        .execute(&mut **tx)
        .await?;
    sqlx::query!(
        "update tenants set sync_scope = 'all', scope_assignments_read_at = null where id = $1",
        id
    )
    .execute(&mut **tx)
    .await?;
    Ok((users + groups) as i64)
}

/// Tenants by id after `after`, for paging by cursor (scripts).
pub async fn page_after(
    db: &PgPool,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Tenant>, sqlx::Error> {
    select_tenants!(
        "where ($1::uuid is null or t.id > $1) order by t.id limit $2",
        after,
        limit,
    )
    .fetch_all(db)
    .await
}

/// A checked query over `tenants t join customers c` narrowed by a search (`$1` the term, `$2`
/// its `contains_pattern`: the name, a domain or the customer's name, or the tenant id),
/// given as `query!(head tokens)` then `$tail` and the arguments: the list and its count share
/// this one condition.
macro_rules! tenants_matching {
    ($($query:ident)::+ !($($head:tt)*), $tail:literal $(, $arg:expr)* $(,)?) => {
        $($query)::+!(
            $($head)* r"where $1::text is null or t.display_name ilike $2 escape '\'
                           or t.entra_tenant_id::text = lower($1)
                           or array_to_string(t.verified_domains, ' ') ilike $2 escape '\'
                           or c.name ilike $2 escape '\' "
                + $tail
            $(, $arg)*
        )
    };
}

/// Tenants, newest consent first, optionally narrowed by name, domain, tenant id or customer;
/// with the total.
pub async fn list(
    db: &PgPool,
    search: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Tenant>, i64), sqlx::Error> {
    let search = search.map(str::trim).filter(|s| !s.is_empty());
    let pattern = search.map(crate::db::contains_pattern);
    let rows = tenants_matching!(
        select_tenants!(),
        "order by t.consented_at desc limit $3 offset $4",
        search,
        pattern,
        limit,
        offset,
    )
    .fetch_all(db)
    .await?;
    let total = tenants_matching!(
        sqlx::query_scalar!(
            r#"select count(*) as "count!" from tenants t join customers c on c.id = t.customer_id "# +
        ),
        "",
        search,
        pattern,
    )
    .fetch_one(db)
    .await?;
    Ok((rows, total))
}

/// A customer's tenants, connected ones first, then newest consent first.
pub async fn for_customer(
    db: &PgPool,
    customer_id: CustomerId,
) -> Result<Vec<Tenant>, sqlx::Error> {
    select_tenants!(
        "where t.customer_id = $1 order by (t.status = 'offboarded'), t.consented_at desc",
        customer_id as CustomerId,
    )
    .fetch_all(db)
    .await
}

/// A tenant by Gangway's id.
pub async fn get(db: &PgPool, id: TenantRecordId) -> Result<Option<Tenant>, sqlx::Error> {
    find(db, id).await
}

async fn find(
    db: impl sqlx::PgExecutor<'_>,
    id: TenantRecordId,
) -> Result<Option<Tenant>, sqlx::Error> {
    select_tenants!("where t.id = $1", id as TenantRecordId)
        .fetch_optional(db)
        .await
}
