//! Why a customer is asked to consent again: the tenant a re-consent invitation is bound to lost
//! its access, and the customer's admin is told why in their own terms, never in error codes.

use sqlx::PgExecutor;

use super::Invitation;
use crate::types::CustomerId;

/// One reason a tenant's access stops working: as recorded for operators (the start of the
/// tenant's sync error) and as the customer's admin reads it.
pub struct Cause {
    /// The operator's words, which the sync error starts with.
    pub operator: &'static str,
    /// The same cause for the customer, completing "… stopped working: ".
    pub customer: &'static str,
}

/// The grant was withdrawn in the customer's tenant.
pub const CONSENT_REVOKED: Cause = Cause {
    operator: "consent was revoked in the customer's tenant",
    customer: "the consent granted to it was revoked in your tenant",
};
/// The provider's application (its enterprise application) is gone from the tenant.
pub const APP_REMOVED: Cause = Cause {
    operator: "the application was removed from the customer's tenant",
    customer: "its application was removed from your tenant",
};
/// The provider's application (its enterprise application) was disabled in the tenant.
pub const APP_DISABLED: Cause = Cause {
    operator: "the application was disabled in the customer's tenant",
    customer: "its application was disabled in your tenant (Enterprise applications, \"Enabled for users to sign in?\")",
};
/// Customer-app mode: the secret of the customer's own app expired.
pub const SECRET_EXPIRED: Cause = Cause {
    operator: "the customer's client secret expired",
    customer: "the client secret of your application expired",
};
/// Customer-app mode: the secret of the customer's own app was replaced or deleted.
pub const SECRET_REFUSED: Cause = Cause {
    operator: "the customer's client secret was refused (replaced or deleted)",
    customer: "the client secret of your application was replaced or deleted",
};
/// Delegated mode: the sign-in kept for the tenant was revoked or ran out.
pub const GRANT_ENDED: Cause = Cause {
    operator: "the stored sign-in no longer works (refresh token revoked or expired)",
    customer: "the sign-in granted to it was revoked or has expired",
};
/// Nothing usable is stored for the tenant.
pub const NO_CREDENTIAL: Cause = Cause {
    operator: "no credential is stored for this tenant",
    customer: "its access is no longer on record",
};

const CAUSES: [Cause; 7] = [
    CONSENT_REVOKED,
    APP_REMOVED,
    APP_DISABLED,
    SECRET_EXPIRED,
    SECRET_REFUSED,
    GRANT_ENDED,
    NO_CREDENTIAL,
];

/// Said when the recorded error names no known cause.
const UNKNOWN: &str = "Microsoft no longer accepts its access";

/// The customer's words for a tenant's recorded sync error.
pub fn customer_words(sync_error: Option<&str>) -> &'static str {
    let error = sync_error.unwrap_or_default();
    CAUSES
        .iter()
        .find(|c| error.starts_with(c.operator))
        .map_or(UNKNOWN, |c| c.customer)
}

/// Why `invitation` asks again, in the customer's words, when it is bound to a tenant of its
/// customer that needs a new consent (as "Send re-consent invitation" binds it); `None` for a
/// first invitation.
pub async fn why_asked_again(
    db: impl PgExecutor<'_>,
    invitation: &Invitation,
) -> Result<Option<&'static str>, sqlx::Error> {
    let Some(domain) = &invitation.tenant_domain else {
        return Ok(None);
    };
    let error = sqlx::query_scalar!(
        "select sync_error from tenants
         where customer_id = $1 and status = 'reconsent_required' and $2 = any(verified_domains)
         limit 1",
        invitation.customer_id as CustomerId,
        domain,
    )
    .fetch_optional(db)
    .await?;
    Ok(error.map(|e| customer_words(e.as_deref())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_cause_reads_in_the_customers_terms_without_codes() {
        let recorded = format!(
            "{}: AADSTS7000222: the provided client secret keys are expired",
            SECRET_EXPIRED.operator
        );
        assert_eq!(
            customer_words(Some(&recorded)),
            "the client secret of your application expired"
        );
        assert_eq!(customer_words(Some("AADSTS50001: odd")), UNKNOWN);
        assert_eq!(customer_words(None), UNKNOWN);
    }
}
