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
/// customer that needs a new consent (as "Send re-consent invitation" binds it): its access
/// stopped working, or its last consent check found permissions or the app taken away (those
/// are named). `None` for a first invitation.
pub async fn why_asked_again(
    db: impl PgExecutor<'_>,
    invitation: &Invitation,
) -> Result<Option<String>, sqlx::Error> {
    let Some(domain) = &invitation.tenant_domain else {
        return Ok(None);
    };
    let row = sqlx::query!(
        "select status, sync_error, consent_drift from tenants
         where customer_id = $1 and $2 = any(verified_domains)
           and (status = 'reconsent_required' or (status = 'active' and consent_drift is not null))
         order by status = 'reconsent_required' desc limit 1",
        invitation.customer_id as CustomerId,
        domain,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.and_then(|r| {
        if r.status == "reconsent_required" {
            Some(customer_words(r.sync_error.as_deref()).to_owned())
        } else {
            drift_words(&r.consent_drift?)
        }
    }))
}

/// The customer's words for a consent check's finding (`consent::drift`'s stored form), when
/// it takes a new consent: the app disabled or removed, or permissions no longer granted.
fn drift_words(drift: &serde_json::Value) -> Option<String> {
    let missing: Vec<&str> = drift["missing"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(serde_json::Value::as_str)
        .collect();
    match drift["service_principal"].as_str() {
        Some("disabled") => Some(APP_DISABLED.customer.to_owned()),
        Some("missing") => Some(APP_REMOVED.customer.to_owned()),
        _ if missing.is_empty() => None,
        _ => Some(format!(
            "your tenant no longer grants it {}",
            missing.join(", ")
        )),
    }
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

    #[test]
    fn a_drift_names_what_the_tenant_no_longer_grants() {
        let drift = serde_json::json!({"service_principal": "enabled", "missing": ["Group.Read.All"], "extra": ["Mail.Read"]});
        assert_eq!(
            drift_words(&drift).unwrap(),
            "your tenant no longer grants it Group.Read.All"
        );
        let extra_only = serde_json::json!({"service_principal": "enabled", "missing": [], "extra": ["Mail.Read"]});
        assert_eq!(drift_words(&extra_only), None);
        let disabled =
            serde_json::json!({"service_principal": "disabled", "missing": ["User.Read.All"]});
        assert_eq!(drift_words(&disabled).unwrap(), APP_DISABLED.customer);
    }
}
