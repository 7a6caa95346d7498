//! Invitations: minting and hashing link tokens, the lifecycle, and the invitation email.

pub mod mail;
pub mod permissions;
pub mod token;

use std::time::Duration;

use serde_json::json;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use url::Url;
use uuid::Uuid;

use crate::audit::{self, Action, Actor};
use crate::crypto::Keyring;
use crate::types::{DomainName, EmailAddress, Invalid};
pub use token::InvitationToken;

/// How the customer grants access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type, serde::Serialize, serde::Deserialize)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum ConsentMode {
    /// The admin signs in and consents for themselves; Gangway keeps a refresh token.
    Delegated,
    /// The admin grants the provider's app application permissions for the whole tenant.
    Application,
    /// The admin registers an app in their own tenant and hands over its credentials.
    CustomerApp,
}

impl ConsentMode {
    /// All modes, for forms.
    pub const ALL: [ConsentMode; 3] = [
        ConsentMode::Delegated,
        ConsentMode::Application,
        ConsentMode::CustomerApp,
    ];

    /// Accepts `delegated`, `application`, `customer-app` or `customer_app`.
    pub fn parse(value: &str) -> Result<Self, InvitationError> {
        match value.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "delegated" => Ok(Self::Delegated),
            "application" => Ok(Self::Application),
            "customer_app" => Ok(Self::CustomerApp),
            _ => Err(InvitationError::Invalid(
                "mode must be delegated, application or customer-app".into(),
            )),
        }
    }

    /// The stored and CLI form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delegated => "delegated",
            Self::Application => "application",
            Self::CustomerApp => "customer_app",
        }
    }

    /// As people read it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Delegated => "Delegated (admin signs in)",
            Self::Application => "Application (admin consent)",
            Self::CustomerApp => "Customer's own app",
        }
    }
}

/// Where an invitation stands. `Expired` is derived from `expires_at`, never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type, serde::Serialize)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Opened,
    Consented,
    Declined,
    Failed,
    Expired,
    Revoked,
}

impl Status {
    /// All statuses, for filters.
    pub const ALL: [Status; 7] = [
        Status::Pending,
        Status::Opened,
        Status::Consented,
        Status::Declined,
        Status::Failed,
        Status::Expired,
        Status::Revoked,
    ];

    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Opened => "opened",
            Self::Consented => "consented",
            Self::Declined => "declined",
            Self::Failed => "failed",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }

    /// Parses a status name.
    pub fn parse(value: &str) -> Result<Self, InvitationError> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == value.trim().to_ascii_lowercase())
            .ok_or_else(|| InvitationError::Invalid(format!("unknown status `{value}`")))
    }

    /// Whether the customer may still use the link (a decline or failure may be retried).
    pub fn is_open(self) -> bool {
        matches!(
            self,
            Self::Pending | Self::Opened | Self::Declined | Self::Failed
        )
    }
}

/// An invitation as stored (with its derived status).
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct Invitation {
    pub id: Uuid,
    pub customer_name: String,
    pub admin_email: String,
    pub consent_mode: ConsentMode,
    pub permission_profile: String,
    pub tenant_domain: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[sqlx(rename = "effective_status")]
    pub status: Status,
    pub attempts: i32,
    /// Why the last attempt failed, for operators (may name other customers).
    pub last_error: Option<String>,
    /// What the customer was told about the last failed attempt (safe to show them again).
    pub customer_notice: Option<String>,
    pub tenant_id: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_activity_at: OffsetDateTime,
}

/// Why an invitation operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum InvitationError {
    #[error("{0}")]
    Invalid(String),
    #[error("no such invitation")]
    NotFound,
    #[error("the invitation is {}: {action} is not possible", .status.as_str())]
    WrongState {
        status: Status,
        action: &'static str,
    },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl From<Invalid> for InvitationError {
    fn from(e: Invalid) -> Self {
        Self::Invalid(e.0)
    }
}

/// Parses a validity such as `7d`, `48h` or `90m` (between one hour and 30 days).
pub fn parse_validity(value: &str) -> Result<Duration, InvitationError> {
    let value = value.trim();
    let bad = || {
        InvitationError::Invalid(format!(
            "`{value}` is not a validity such as 7d, 48h or 90m"
        ))
    };
    let (number, unit) = value.split_at(value.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let unit_secs: u64 = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        _ => return Err(bad()),
    };
    // A huge number must be out of range, not wrap around into it.
    let secs = number.saturating_mul(unit_secs);
    if !(3_600..=30 * 86_400).contains(&secs) {
        return Err(InvitationError::Invalid(
            "validity must be between 1h and 30d".into(),
        ));
    }
    Ok(Duration::from_secs(secs))
}

/// A validated request for a new invitation.
#[derive(Debug, Clone)]
pub struct NewInvitation {
    pub customer_name: String,
    pub admin_email: EmailAddress,
    pub mode: ConsentMode,
    pub tenant_domain: Option<DomainName>,
    pub valid_for: Duration,
}

impl NewInvitation {
    /// Validates raw inputs, naming the first problem found.
    pub fn parse(
        customer_name: &str,
        admin_email: &str,
        mode: &str,
        tenant_domain: Option<&str>,
        valid_for: Option<&str>,
    ) -> Result<Self, InvitationError> {
        let customer_name = customer_name.trim();
        if customer_name.is_empty() || customer_name.chars().count() > 200 {
            return Err(InvitationError::Invalid(
                "customer name must be 1 to 200 characters".into(),
            ));
        }
        if customer_name.chars().any(char::is_control) {
            return Err(InvitationError::Invalid(
                "customer name must not contain control characters".into(),
            ));
        }
        Ok(Self {
            customer_name: customer_name.to_owned(),
            admin_email: EmailAddress::parse(admin_email)?,
            mode: ConsentMode::parse(mode)?,
            tenant_domain: tenant_domain
                .filter(|d| !d.trim().is_empty())
                .map(DomainName::parse)
                .transpose()?,
            valid_for: parse_validity(valid_for.filter(|v| !v.trim().is_empty()).unwrap_or("7d"))?,
        })
    }
}

/// What building links and invitation mail needs.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub public_url: &'a Url,
    pub provider_name: &'a str,
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

/// A freshly minted link: shown once, then only its hash remains.
#[derive(Debug)]
pub struct Issued {
    pub invitation: Invitation,
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
    let id: Uuid = sqlx::query_scalar(
        "insert into invitations (customer_name, admin_email, consent_mode, tenant_domain, token_sha256, expires_at, created_by)
         values ($1, $2, $3, $4, $5, now() + make_interval(secs => $6), $7) returning id",
    )
    .bind(&new.customer_name)
    .bind(new.admin_email.as_str())
    .bind(new.mode)
    .bind(new.tenant_domain.as_ref().map(DomainName::as_str))
    .bind(token.hash())
    .bind(new.valid_for.as_secs_f64())
    .bind(created_by)
    .fetch_one(&mut *tx)
    .await?;
    let detail = json!({
        "customer": new.customer_name,
        "email": new.admin_email.as_str(),
        "mode": new.mode.as_str(),
        "tenant_domain": new.tenant_domain.as_ref().map(DomainName::as_str),
    });
    audit::record(
        &mut *tx,
        actor,
        Action::InvitationCreated,
        Some(id),
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
    id: Uuid,
    actor: &Actor,
) -> Result<Issued, InvitationError> {
    let mut tx = db.begin().await?;
    let current = lock(&mut tx, id).await?;
    if !(current.status.is_open() || current.status == Status::Expired) {
        return Err(InvitationError::WrongState {
            status: current.status,
            action: "resending",
        });
    }
    let token = InvitationToken::mint();
    // A resent link gets the same validity the first one had, counted from now.
    sqlx::query(
        "update invitations set token_sha256 = $2, status = 'pending', last_activity_at = now(),
                expires_at = now() + (expires_at - created_at)
         where id = $1",
    )
    .bind(id)
    .bind(token.hash())
    .execute(&mut *tx)
    .await?;
    mail::discard_unsent(&mut tx, id).await?;
    audit::record(
        &mut *tx,
        actor,
        Action::InvitationResent,
        Some(id),
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
    id: Uuid,
    token: &InvitationToken,
) -> Result<Issued, InvitationError> {
    let invitation = find(&mut *tx, id).await?;
    let link = cx.link(token);
    mail::enqueue(&mut *tx, cx, &invitation, &link).await?;
    Ok(Issued { invitation, link })
}

/// Revokes an invitation for good.
pub async fn revoke(db: &PgPool, id: Uuid, actor: &Actor) -> Result<Invitation, InvitationError> {
    let mut tx = db.begin().await?;
    let current = lock(&mut tx, id).await?;
    if matches!(current.status, Status::Consented | Status::Revoked) {
        return Err(InvitationError::WrongState {
            status: current.status,
            action: "revoking",
        });
    }
    sqlx::query(
        "update invitations set status = 'revoked', last_activity_at = now() where id = $1",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?;
    mail::discard_unsent(&mut tx, id).await?;
    audit::record(
        &mut *tx,
        actor,
        Action::InvitationRevoked,
        Some(id),
        None,
        json!({}),
    )
    .await?;
    let revoked = find(&mut *tx, id).await?;
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
    let found: Option<Invitation> =
        sqlx::query_as("select * from invitation_view where token_sha256 = $1")
            .bind(token.hash())
            .fetch_optional(db)
            .await?;
    let Some(invitation) = found else {
        return Ok(Opened::Unknown);
    };
    Ok(match invitation.status {
        Status::Expired => Opened::Expired(invitation),
        Status::Revoked => Opened::Revoked(invitation),
        Status::Consented => Opened::AlreadyUsed(invitation),
        _ => {
            let mut invitation = invitation;
            let mut tx = db.begin().await?;
            invitation.last_activity_at = sqlx::query_scalar(
                "update invitations set status = 'opened', last_activity_at = now() where id = $1
                 returning last_activity_at",
            )
            .bind(invitation.id)
            .fetch_one(&mut *tx)
            .await?;
            invitation.status = Status::Opened;
            audit::record(
                &mut *tx,
                actor,
                Action::InvitationOpened,
                Some(invitation.id),
                None,
                json!({}),
            )
            .await?;
            tx.commit().await?;
            Opened::Ready(invitation)
        }
    })
}

/// An invitation by id.
pub async fn get(db: &PgPool, id: Uuid) -> Result<Invitation, InvitationError> {
    find(db, id).await
}

async fn find(db: impl sqlx::PgExecutor<'_>, id: Uuid) -> Result<Invitation, InvitationError> {
    sqlx::query_as("select * from invitation_view where id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or(InvitationError::NotFound)
}

/// Locks the row for a state change and returns it with its derived status.
pub(crate) async fn lock(tx: &mut PgConnection, id: Uuid) -> Result<Invitation, InvitationError> {
    sqlx::query("select 1 from invitations where id = $1 for update")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(InvitationError::NotFound)?;
    find(&mut *tx, id).await
}

/// How a consent attempt ended badly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setback {
    /// The admin said no.
    Declined,
    /// Something failed: wrong account, wrong tenant, bad credentials, Microsoft error.
    Failed,
}

/// The longest reason or notice kept on an invitation; both may quote Microsoft or the customer.
pub const MAX_REASON_CHARS: usize = 500;

/// Records a declined or failed attempt on the invitation; the link stays usable for a retry.
/// `reason` is for operators, `notice` is what the customer is shown when they come back.
pub async fn record_setback(
    db: &PgPool,
    id: Uuid,
    setback: Setback,
    reason: &str,
    notice: &str,
    actor: &Actor,
) -> Result<(), InvitationError> {
    let cap = |s: &str| s.chars().take(MAX_REASON_CHARS).collect::<String>();
    let (reason, notice) = (cap(reason), cap(notice));
    let (status, action) = match setback {
        Setback::Declined => ("declined", Action::ConsentDeclined),
        Setback::Failed => ("failed", Action::ConsentFailed),
    };
    let mut tx = db.begin().await?;
    sqlx::query(
        "update invitations set status = $2, attempts = attempts + 1, last_error = $3, customer_notice = $4,
                last_activity_at = now()
         where id = $1 and status not in ('consented', 'revoked')",
    )
    .bind(id)
    .bind(status)
    .bind(&reason)
    .bind(&notice)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut *tx,
        actor,
        action,
        Some(id),
        None,
        json!({ "reason": reason }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Notes activity (e.g. the admin left for Microsoft's sign-in) without changing status.
pub async fn touch(
    db: &PgPool,
    id: Uuid,
    actor: &Actor,
    action: Action,
) -> Result<(), InvitationError> {
    let mut tx = db.begin().await?;
    sqlx::query("update invitations set last_activity_at = now() where id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    audit::record(&mut *tx, actor, action, Some(id), None, json!({})).await?;
    tx.commit().await?;
    Ok(())
}

/// A filter for listing invitations.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub status: Option<Status>,
    pub search: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

/// Invitations matching `filter`, open ones first, then newest first; with the total count.
pub async fn list(db: &PgPool, filter: &Filter) -> Result<(Vec<Invitation>, i64), InvitationError> {
    const WHERE: &str = "where ($1::text is null or effective_status = $1)
          and ($2::text is null or customer_name ilike '%' || $2 || '%' or admin_email ilike '%' || $2 || '%'
               or tenant_domain ilike '%' || $2 || '%')";
    let status = filter.status.map(Status::as_str);
    let search = filter
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let rows = sqlx::query_as(&format!(
        "select * from invitation_view {WHERE}
         order by (effective_status in ('pending', 'opened', 'declined', 'failed')) desc, created_at desc
         limit $3 offset $4"
    ))
    .bind(status)
    .bind(search)
    .bind(filter.limit)
    .bind(filter.offset)
    .fetch_all(db)
    .await?;
    let total = sqlx::query_scalar(&format!("select count(*) from invitation_view {WHERE}"))
        .bind(status)
        .bind(search)
        .fetch_one(db)
        .await?;
    Ok((rows, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_invitations_are_validated_at_the_edge() {
        let ok = NewInvitation::parse(
            " Contoso ",
            "Admin@Contoso.com",
            "customer-app",
            Some("Contoso.COM"),
            Some("48h"),
        )
        .unwrap();
        assert_eq!(ok.customer_name, "Contoso");
        assert_eq!(ok.mode, ConsentMode::CustomerApp);
        assert_eq!(
            ok.tenant_domain.as_ref().map(DomainName::as_str),
            Some("contoso.com")
        );
        assert_eq!(ok.valid_for, Duration::from_secs(48 * 3600));

        for (name, email, mode, domain, validity) in [
            ("", "a@b.co", "delegated", None, None),
            ("X", "not-an-email", "delegated", None, None),
            ("X", "a b@c.co", "delegated", None, None),
            ("X", "a@b.co", "sideways", None, None),
            ("X", "a@b.co", "delegated", Some("no spaces.com x"), None),
            ("X", "a@b.co", "delegated", None, Some("90d")),
            ("X", "a@b.co", "delegated", None, Some("soon")),
            ("X", "a@b.co", "delegated", None, Some("213503982334602d")),
            (
                "X",
                "a@b.co",
                "delegated",
                None,
                Some("99999999999999999999h"),
            ),
            ("Con\0toso", "a@b.co", "delegated", None, None),
            ("Con\ntoso", "a@b.co", "delegated", None, None),
        ] {
            assert!(
                NewInvitation::parse(name, email, mode, domain, validity).is_err(),
                "{email} {mode} {validity:?}"
            );
        }
    }
}
