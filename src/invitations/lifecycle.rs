//! An invitation's life: created, opened, declined or failed and retried, resent, revoked.

use serde_json::json;
use sqlx::{PgConnection, PgPool};
use url::Url;
use uuid::Uuid;

use super::types::select_invitations;
use super::{
    Invitation, InvitationError, InvitationStatus, InvitationToken, NewInvitation, Setback, mail,
};
use crate::audit::{self, Action, Actor};
use crate::crypto::Keyring;
use crate::customers;
use crate::types::Branding;
use crate::types::{CustomerId, DomainName, InvitationId, ProfileId};
use crate::webhooks;

/// What building links and invitation mail needs.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// Where the portal is reached, for the link.
    pub public_url: &'a Url,
    /// How the provider presents itself, for the email.
    pub brand: &'a Branding,
    /// Seals the queued email (it holds the link).
    pub keys: &'a Keyring,
}

impl Context<'_> {
    /// The customer's link for `token`.
    pub fn link(&self, token: &InvitationToken) -> Url {
        let mut url = self
            .public_url
            .join("authenticate")
            .expect("a fixed relative path joins");
        url.query_pairs_mut().append_pair("token", token.expose());
        url
    }
}

/// A new invitation for a tenant whose access stopped working: to the admin last invited for
/// it (else whoever consented), for the same customer and consent mode, bound to one of the
/// tenant's verified domains so that only this tenant can answer it.
pub async fn invite_again_for_tenant(
    db: &PgPool,
    cx: Context<'_>,
    tenant_id: Uuid,
    actor: &Actor,
    created_by: Option<Uuid>,
) -> Result<Issued, InvitationError> {
    let row = sqlx::query!(
        r#"select c.name::text as "customer!",
                  coalesce((select i.admin_email::text from invitations i where i.tenant_id = t.id
                            order by i.created_at desc limit 1), t.consented_by_upn) as admin,
                  t.consent_mode as "mode: crate::types::ConsentMode", t.verified_domains,
                  t.permission_profile_id as "permission_profile_id: ProfileId"
           from tenants t join customers c on c.id = t.customer_id where t.id = $1"#,
        tenant_id,
    )
    .fetch_optional(db)
    .await?
    .ok_or_else(|| InvitationError::Invalid("no such tenant".into()))?;
    let (customer, admin, mode, domains, profile) = (
        row.customer,
        row.admin,
        row.mode,
        row.verified_domains,
        row.permission_profile_id,
    );
    let admin = admin.ok_or_else(|| {
        InvitationError::Invalid(
            "nobody is on record as this tenant's admin: create an invitation instead".into(),
        )
    })?;
    let new = NewInvitation {
        profile,
        ..NewInvitation::parse(
            &customer,
            &admin,
            mode.as_str(),
            domains.first().map(String::as_str),
            None,
        )?
    };
    create(db, cx, &new, actor, created_by).await
}

/// A freshly minted link: shown once, then only its hash remains.
#[derive(Debug)]
pub struct Issued {
    /// The invitation as stored now.
    pub invitation: Invitation,
    /// The customer's link, with its token.
    pub link: Url,
}

/// Creates an invitation, records it and queues its email, all in one transaction.
pub async fn create(
    db: &PgPool,
    cx: Context<'_>,
    new: &NewInvitation,
    actor: &Actor,
    created_by: Option<Uuid>,
) -> Result<Issued, InvitationError> {
    let token = InvitationToken::mint();
    let mut tx = db.begin().await?;
    let customer_id = customers::find_or_create(&mut tx, &new.customer, actor).await?;
    let id = sqlx::query_scalar!(
        r#"insert into invitations (customer_id, admin_email, consent_mode, tenant_domain, token_sha256, expires_at,
                                    created_by, permission_profile_id, sync_scope, scope_groups)
           values ($1, $2, $3, $4, $5, now() + make_interval(secs => $6), $7,
                   coalesce($8, (select id from permission_profiles where is_default)), $9, $10)
           returning id as "id: InvitationId""#,
        customer_id as CustomerId,
        new.admin_email.as_str() as &str,
        new.mode as crate::types::ConsentMode,
        new.tenant_domain.as_ref().map(DomainName::as_str) as Option<&str>,
        token.hash(),
        new.valid_for.as_secs_f64(),
        created_by,
        new.profile as Option<ProfileId>,
        new.scope.as_ref().map(|s| s.as_str()),
        new.scope.as_ref().map_or(&[][..], |s| s.groups()),
    )
    .fetch_one(&mut *tx)
    .await?;
    let detail = json!({
        "customer": new.customer.as_str(),
        "email": new.admin_email.as_str(),
        "mode": new.mode.as_str(),
        "tenant_domain": new.tenant_domain.as_ref().map(DomainName::as_str),
        "sync_scope": new.scope.as_ref().map(|s| s.as_str()),
        "scope_groups": new.scope.as_ref().map(|s| s.groups()),
    });
    audit::record(
        &mut *tx,
        actor,
        Action::InvitationCreated,
        Some(id.into()),
        None,
        detail,
    )
    .await?;
    let issued = issue(&mut tx, cx, id, &token).await?;
    tx.commit().await?;
    Ok(issued)
}

/// Mints a new link for an invitation (the old one stops working) and sends it again.
pub async fn resend(
    db: &PgPool,
    cx: Context<'_>,
    id: InvitationId,
    actor: &Actor,
) -> Result<Issued, InvitationError> {
    let mut tx = db.begin().await?;
    let current = lock(&mut tx, id).await?;
    if !(current.status.is_open() || current.status == InvitationStatus::Expired) {
        return Err(InvitationError::WrongState {
            status: current.status,
            action: "resending",
        });
    }
    let token = InvitationToken::mint();
    // A resent link gets the same validity the first one had, counted from now.
    sqlx::query!(
        "update invitations set token_sha256 = $2, status = 'pending', last_activity_at = now(),
                expires_at = now() + (expires_at - created_at)
         where id = $1",
        id as InvitationId,
        token.hash(),
    )
    .execute(&mut *tx)
    .await?;
    mail::discard_unsent(&mut tx, id).await?;
    audit::record(
        &mut *tx,
        actor,
        Action::InvitationResent,
        Some(id.into()),
        None,
        json!({}),
    )
    .await?;
    let issued = issue(&mut tx, cx, id, &token).await?;
    tx.commit().await?;
    Ok(issued)
}

async fn issue(
    tx: &mut PgConnection,
    cx: Context<'_>,
    id: InvitationId,
    token: &InvitationToken,
) -> Result<Issued, InvitationError> {
    let invitation = find(&mut *tx, id).await?;
    let link = cx.link(token);
    mail::enqueue(&mut *tx, cx, &invitation, &link).await?;
    Ok(Issued { invitation, link })
}

/// Revokes an invitation for good.
pub async fn revoke(
    db: &PgPool,
    id: InvitationId,
    actor: &Actor,
) -> Result<Invitation, InvitationError> {
    let mut tx = db.begin().await?;
    let current = lock(&mut tx, id).await?;
    if matches!(
        current.status,
        InvitationStatus::Consented | InvitationStatus::Revoked
    ) {
        return Err(InvitationError::WrongState {
            status: current.status,
            action: "revoking",
        });
    }
    sqlx::query!(
        "update invitations set status = 'revoked', last_activity_at = now() where id = $1",
        id as InvitationId,
    )
    .execute(&mut *tx)
    .await?;
    mail::discard_unsent(&mut tx, id).await?;
    audit::record(
        &mut *tx,
        actor,
        Action::InvitationRevoked,
        Some(id.into()),
        None,
        json!({}),
    )
    .await?;
    let revoked = find(&mut *tx, id).await?;
    webhooks::emit(
        &mut tx,
        &webhooks::Event::new(
            webhooks::EventType::InvitationRevoked,
            json!({ "invitation_id": id, "customer_id": revoked.customer_id }),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(revoked)
}

/// What opening a link found.
#[derive(Debug)]
pub enum Opened {
    /// Usable: the wizard may go on.
    Ready(Invitation),
    /// The link is past its expiry.
    Expired(Invitation),
    /// An operator revoked it.
    Revoked(Invitation),
    /// Consent was already given through it.
    AlreadyUsed(Invitation),
    /// No invitation has this token (never issued, or replaced by a resend).
    Unknown,
}

/// Looks a link token up by its hash and, when usable, marks the invitation opened by `actor`.
pub async fn open(
    db: &PgPool,
    token: &InvitationToken,
    actor: &Actor,
) -> Result<Opened, InvitationError> {
    let found = select_invitations!("where token_sha256 = $1", token.hash())
        .fetch_optional(db)
        .await?;
    let Some(invitation) = found else {
        return Ok(Opened::Unknown);
    };
    Ok(match invitation.status {
        InvitationStatus::Expired => Opened::Expired(invitation),
        InvitationStatus::Revoked => Opened::Revoked(invitation),
        InvitationStatus::Consented => Opened::AlreadyUsed(invitation),
        _ => {
            let mut invitation = invitation;
            // Opening a link is the busiest write a customer makes, so its three writes (the
            // status, the audit event, the event log and through it the webhooks) are one
            // statement: one round trip and one commit.
            invitation.last_activity_at = sqlx::query_scalar!(
                r#"with opened as (
                       update invitations set status = 'opened', last_activity_at = now()
                       where id = $1
                       returning id, customer_id, last_activity_at
                   ), audited as (
                       insert into audit_events (actor, action, invitation_id)
                       select $2, $3, id from opened
                   ), logged as (
                       insert into events (event_type, data)
                       select $4, jsonb_build_object('invitation_id', id, 'customer_id', customer_id)
                       from opened
                   )
                   select last_activity_at as "last_activity_at!" from opened"#,
                invitation.id as InvitationId,
                actor.to_string(),
                Action::InvitationOpened.as_str(),
                webhooks::EventType::InvitationOpened.name(),
            )
            .fetch_one(db)
            .await?;
            invitation.status = InvitationStatus::Opened;
            Opened::Ready(invitation)
        }
    })
}

/// An invitation by id.
pub async fn get(db: &PgPool, id: InvitationId) -> Result<Invitation, InvitationError> {
    find(db, id).await
}

async fn find(
    db: impl sqlx::PgExecutor<'_>,
    id: InvitationId,
) -> Result<Invitation, InvitationError> {
    select_invitations!("where id = $1", id as InvitationId)
        .fetch_optional(db)
        .await?
        .ok_or(InvitationError::NotFound)
}

/// Locks the row for a state change and returns it with its derived status.
pub(crate) async fn lock(
    tx: &mut PgConnection,
    id: InvitationId,
) -> Result<Invitation, InvitationError> {
    sqlx::query!(
        "select 1 as locked from invitations where id = $1 for update",
        id as InvitationId
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(InvitationError::NotFound)?;
    find(&mut *tx, id).await
}

/// The longest reason or notice kept on an invitation; both may quote Microsoft or the customer.
pub const MAX_REASON_CHARS: usize = 500;

/// Records a declined or failed attempt on the invitation; the link stays usable for a retry.
/// `reason` is for operators, `notice` is what the customer is shown when they come back.
pub async fn record_setback(
    db: &PgPool,
    id: InvitationId,
    setback: Setback,
    reason: &str,
    notice: &str,
    actor: &Actor,
) -> Result<(), InvitationError> {
    let cap = |s: &str| s.chars().take(MAX_REASON_CHARS).collect::<String>();
    let (reason, notice) = (cap(reason), cap(notice));
    let action = match setback {
        Setback::Declined => Action::ConsentDeclined,
        Setback::Failed => Action::ConsentFailed,
    };
    let mut tx = db.begin().await?;
    // The outcome is kept apart from the status: opening the link again makes the status
    // `opened`, and the decline must stay visible (and findable) all the same.
    sqlx::query!(
        "update invitations set status = $2, attempts = attempts + 1, last_error = $3, customer_notice = $4,
                last_outcome = $2, last_outcome_at = now(), last_activity_at = now()
         where id = $1 and status not in ('consented', 'revoked')",
        id as InvitationId,
        setback as Setback,
        reason,
        notice,
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        actor,
        action,
        Some(id.into()),
        None,
        json!({ "reason": reason }),
    )
    .await?;
    let customer_id = sqlx::query_scalar!(
        "select customer_id from invitations where id = $1",
        id as InvitationId
    )
    .fetch_optional(&mut *tx)
    .await?;
    let event = match setback {
        Setback::Declined => webhooks::EventType::InvitationDeclined,
        Setback::Failed => webhooks::EventType::InvitationFailed,
    };
    webhooks::emit(
        &mut tx,
        &webhooks::Event::new(
            event,
            json!({ "invitation_id": id, "customer_id": customer_id, "reason": reason }),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Notes activity (e.g. the admin left for Microsoft's sign-in) without changing status.
pub async fn touch(
    db: &PgPool,
    id: InvitationId,
    actor: &Actor,
    action: Action,
) -> Result<(), InvitationError> {
    let mut tx = db.begin().await?;
    sqlx::query!(
        "update invitations set last_activity_at = now() where id = $1",
        id as InvitationId
    )
    .execute(&mut *tx)
    .await?;
    audit::record(&mut *tx, actor, action, Some(id.into()), None, json!({})).await?;
    tx.commit().await?;
    Ok(())
}
