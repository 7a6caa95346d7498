//! What an invitation is: its consent mode, status, record, request and errors.

use std::time::Duration;

use time::OffsetDateTime;

use super::scope::InvitedScope;
use crate::customers::{CustomerError, CustomerName};
use crate::types::{
    ConsentMode, CustomerId, DomainName, EmailAddress, Invalid, InvitationId, ProfileId,
    TenantRecordId,
};

/// Where an invitation stands. `Expired` is derived from `expires_at`, never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type, serde::Serialize)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum InvitationStatus {
    /// Created; the link was not opened yet (or was just resent).
    Pending,
    /// The admin opened the link.
    Opened,
    /// Consent was given: the link is used.
    Consented,
    /// The admin said no; the link may be tried again.
    Declined,
    /// The last attempt failed; the link may be tried again.
    Failed,
    /// Past its expiry while still usable (derived).
    Expired,
    /// An operator withdrew it for good.
    Revoked,
}

impl InvitationStatus {
    /// All statuses, for filters.
    pub const ALL: [InvitationStatus; 7] = [
        InvitationStatus::Pending,
        InvitationStatus::Opened,
        InvitationStatus::Consented,
        InvitationStatus::Declined,
        InvitationStatus::Failed,
        InvitationStatus::Expired,
        InvitationStatus::Revoked,
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
#[derive(Debug, Clone, serde::Serialize)]
pub struct Invitation {
    /// Gangway's id.
    pub id: InvitationId,
    /// The customer record it belongs to.
    pub customer_id: CustomerId,
    /// That customer's name (joined in by the view).
    pub customer_name: String,
    /// The customer's Global Administrator it was sent to.
    pub admin_email: String,
    /// How access is to be granted.
    pub consent_mode: ConsentMode,
    /// Only the tenant verified for this domain may consent, if set.
    pub tenant_domain: Option<String>,
    /// When the link stops working.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Where it stands (expiry derived).
    pub status: InvitationStatus,
    /// Declined or failed attempts so far.
    pub attempts: i32,
    /// Why the last attempt failed, for operators (may name other customers).
    pub last_error: Option<String>,
    /// What the customer was told about the last failed attempt (safe to show them again).
    pub customer_notice: Option<String>,
    /// The last decline or failure, kept when the link is opened again or resent.
    pub last_outcome: Option<Setback>,
    /// When that outcome happened.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_outcome_at: Option<OffsetDateTime>,
    /// The connected tenant of another customer that refused the last consent, if that is why.
    pub conflict_tenant_id: Option<TenantRecordId>,
    /// The tenant connected through it, once consented.
    pub tenant_id: Option<TenantRecordId>,
    /// The permission profile it asks for.
    pub permission_profile_id: ProfileId,
    /// The sync scope it sets for the tenant (`groups` or `app_assignments`), if any: see
    /// [`Invitation::scope`].
    pub sync_scope: Option<String>,
    /// The groups of a `groups` scope, as the operator named them.
    pub scope_groups: Vec<String>,
    /// When it was created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When anything last happened to it.
    #[serde(with = "time::serde::rfc3339")]
    pub last_activity_at: OffsetDateTime,
}

impl Invitation {
    /// The sync scope it sets for the tenant it connects, if any.
    pub fn scope(&self) -> Option<InvitedScope> {
        InvitedScope::stored(self.sync_scope.as_deref(), &self.scope_groups)
    }
}

/// A checked query reading [`Invitation`] rows from `invitation_view` (whose columns Postgres
/// reports as nullable, hence the overrides); `$tail` (string literals joined with `+`) filters
/// and orders.
macro_rules! select_invitations {
    ($tail:literal $(+ $more:literal)* $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            crate::invitations::Invitation,
            r#"select id as "id!: crate::types::InvitationId",
                      customer_id as "customer_id!: crate::types::CustomerId", customer_name as "customer_name!",
                      admin_email::text as "admin_email!",
                      consent_mode as "consent_mode!: crate::types::ConsentMode",
                      tenant_domain::text as tenant_domain, expires_at as "expires_at!",
                      effective_status as "status!: crate::invitations::InvitationStatus",
                      attempts as "attempts!", last_error, customer_notice,
                      last_outcome as "last_outcome: crate::invitations::Setback", last_outcome_at,
                      conflict_tenant_id as "conflict_tenant_id: crate::types::TenantRecordId",
                      tenant_id as "tenant_id: crate::types::TenantRecordId",
                      permission_profile_id as "permission_profile_id!: crate::types::ProfileId",
                      sync_scope, scope_groups as "scope_groups!",
                      created_at as "created_at!", last_activity_at as "last_activity_at!"
               from invitation_view "# + $tail $(+ $more)*
            $(, $arg)*
        )
    };
}
pub(super) use select_invitations;

/// Why an invitation operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum InvitationError {
    /// An input is not acceptable; the message says which and why.
    #[error("{0}")]
    Invalid(String),
    /// No invitation has this id.
    #[error("no such invitation")]
    NotFound,
    /// The action does not fit where the invitation stands.
    #[error("the invitation is {}: {action} is not possible", .status.as_str())]
    WrongState {
        /// Where it stands.
        status: InvitationStatus,
        /// What was asked, e.g. "resending".
        action: &'static str,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl From<CustomerError> for InvitationError {
    fn from(e: CustomerError) -> Self {
        match e {
            CustomerError::Db(e) => Self::Db(e),
            other => Self::Invalid(other.to_string()),
        }
    }
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
    /// The customer it is for: an existing record with this name (in any case), else a new one.
    pub customer: CustomerName,
    /// Who gets the link.
    pub admin_email: EmailAddress,
    /// How access is to be granted.
    pub mode: ConsentMode,
    /// Only the tenant verified for this domain may consent, if set.
    pub tenant_domain: Option<DomainName>,
    /// How long the link works.
    pub valid_for: Duration,
    /// The permission profile asked for; `None` is the default profile.
    pub profile: Option<ProfileId>,
    /// The sync scope it sets for the tenant; `None`: everyone for a new tenant, its own for
    /// one already connected.
    pub scope: Option<InvitedScope>,
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
        Ok(Self {
            customer: CustomerName::parse(customer_name)?,
            admin_email: EmailAddress::parse(admin_email)?,
            mode: ConsentMode::parse(mode)?,
            tenant_domain: tenant_domain
                .filter(|d| !d.trim().is_empty())
                .map(DomainName::parse)
                .transpose()?,
            valid_for: parse_validity(valid_for.filter(|v| !v.trim().is_empty()).unwrap_or("7d"))?,
            profile: None,
            scope: None,
        })
    }
}

/// How a consent attempt ended badly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type, serde::Serialize)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Setback {
    /// The admin said no.
    Declined,
    /// Something failed: wrong account, wrong tenant, bad credentials, Microsoft error.
    Failed,
}

impl Setback {
    /// The stored form, the same as the matching [`Status`].
    pub fn as_str(self) -> &'static str {
        self.status().as_str()
    }

    /// The status an invitation takes when this happens.
    pub fn status(self) -> InvitationStatus {
        match self {
            Self::Declined => InvitationStatus::Declined,
            Self::Failed => InvitationStatus::Failed,
        }
    }
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
        assert_eq!(ok.customer.as_str(), "Contoso");
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
