//! Finding a user's tenant: by the domain of their work email (a verified domain of a
//! connected tenant), by a customer id, or by a tenant id; and whether that tenant's users may
//! sign in to the application now. Every refusal here is answered with a clear page, before
//! any trip to Microsoft.

use sqlx::PgPool;
use uuid::Uuid;

use super::{Application, SigninError};
use crate::types::TenantId;

/// A connected tenant whose users may sign in to the application.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RoutedTenant {
    /// Gangway's id of the tenant.
    pub id: Uuid,
    /// Microsoft's id of the directory.
    pub entra_tenant_id: TenantId,
    /// The organization's name.
    pub display_name: String,
    /// The customer it belongs to.
    pub customer_id: Uuid,
    /// That customer's name.
    pub customer_name: String,
}

/// Why the user cannot be sent to Microsoft.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No connected tenant has this verified domain.
    UnknownDomain(String),
    /// The customer (or tenant) named by the application has no connected tenant.
    NotConnected,
    /// The tenant was offboarded.
    Offboarded(String),
    /// Gangway's access to the tenant stopped working: its admin must consent again.
    ReconsentRequired(String),
    /// An operator turned the tenant off.
    Disabled(String),
    /// The tenant connected with its own app registration, not the provider's application,
    /// so the provider's application cannot sign its users in.
    OwnApplication(String),
    /// The application does not admit this customer.
    NotAdmitted(String),
}

impl Refusal {
    /// A short reason for the audit trail.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnknownDomain(_) => "no connected tenant has this domain",
            Self::NotConnected => "the customer has no connected tenant",
            Self::Offboarded(_) => "the tenant was offboarded",
            Self::ReconsentRequired(_) => "the tenant needs a new consent",
            Self::Disabled(_) => "the tenant is disabled",
            Self::OwnApplication(_) => "the tenant connected with its own app registration",
            Self::NotAdmitted(_) => "the application does not admit this customer",
        }
    }
}

/// A tenant as routing reads it.
struct Candidate {
    id: Uuid,
    entra_tenant_id: Uuid,
    display_name: String,
    status: String,
    consent_mode: String,
    customer_id: Uuid,
    customer_name: String,
}

/// Decides for one tenant.
fn decide(app: &Application, t: Candidate) -> Result<RoutedTenant, Refusal> {
    let org = t.display_name.clone();
    match t.status.as_str() {
        "offboarded" => return Err(Refusal::Offboarded(org)),
        "reconsent_required" => return Err(Refusal::ReconsentRequired(org)),
        "disabled" => return Err(Refusal::Disabled(org)),
        _ => {}
    }
    if t.consent_mode == "customer_app" {
        return Err(Refusal::OwnApplication(org));
    }
    if !app.admits(t.customer_id) {
        return Err(Refusal::NotAdmitted(org));
    }
    Ok(RoutedTenant {
        id: t.id,
        entra_tenant_id: TenantId::from(t.entra_tenant_id),
        display_name: t.display_name,
        customer_id: t.customer_id,
        customer_name: t.customer_name,
    })
}

/// The domain of an email address, lowercased, if it looks like one.
pub fn domain_of(email: &str) -> Option<String> {
    let (local, domain) = email.trim().rsplit_once('@')?;
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let plausible = !local.is_empty()
        && domain.contains('.')
        && domain.len() <= 253
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    plausible.then_some(domain)
}

/// The tenant whose verified domains include `domain`. A tenant that was offboarded and
/// connected again under a new record loses to the live one.
pub async fn by_domain(
    db: &PgPool,
    app: &Application,
    domain: &str,
) -> Result<Result<RoutedTenant, Refusal>, SigninError> {
    let found = sqlx::query_as!(
        Candidate,
        r#"select t.id, t.entra_tenant_id, t.display_name, t.status, t.consent_mode,
                  t.customer_id, c.name::text as "customer_name!"
           from tenants t join customers c on c.id = t.customer_id
           where exists (select 1 from unnest(t.verified_domains) d where lower(d) = lower($1))
           order by (t.status = 'offboarded'), t.updated_at desc
           limit 1"#,
        domain
    )
    .fetch_optional(db)
    .await?;
    Ok(match found {
        Some(t) => decide(app, t),
        None => Err(Refusal::UnknownDomain(domain.to_owned())),
    })
}

/// The tenant of customer `customer_id`, when it has exactly one that is not offboarded
/// (`Ok(None)` when it has several: then the email decides).
pub async fn by_customer(
    db: &PgPool,
    app: &Application,
    customer_id: Uuid,
) -> Result<Result<Option<RoutedTenant>, Refusal>, SigninError> {
    let mut found = sqlx::query_as!(
        Candidate,
        r#"select t.id, t.entra_tenant_id, t.display_name, t.status, t.consent_mode,
                  t.customer_id, c.name::text as "customer_name!"
           from tenants t join customers c on c.id = t.customer_id
           where t.customer_id = $1
           order by (t.status = 'offboarded'), t.updated_at desc"#,
        customer_id
    )
    .fetch_all(db)
    .await?;
    let live = found.iter().filter(|t| t.status != "offboarded").count();
    if found.is_empty() {
        return Ok(Err(Refusal::NotConnected));
    }
    if live > 1 {
        return Ok(Ok(None));
    }
    Ok(decide(app, found.remove(0)).map(Some))
}

/// The connected tenant with Microsoft id `tenant`.
pub async fn by_tenant(
    db: &PgPool,
    app: &Application,
    tenant: &TenantId,
) -> Result<Result<RoutedTenant, Refusal>, SigninError> {
    let found = sqlx::query_as!(
        Candidate,
        r#"select t.id, t.entra_tenant_id, t.display_name, t.status, t.consent_mode,
                  t.customer_id, c.name::text as "customer_name!"
           from tenants t join customers c on c.id = t.customer_id
           where t.entra_tenant_id = $1"#,
        tenant.as_uuid()
    )
    .fetch_optional(db)
    .await?;
    Ok(found.map_or(Err(Refusal::NotConnected), |t| decide(app, t)))
}

/// Checks again, when Microsoft has signed the user in, that `tenant` still may: its status
/// can change while the user is at Microsoft.
pub async fn recheck(
    db: &PgPool,
    app: &Application,
    tenant: &RoutedTenant,
) -> Result<Result<RoutedTenant, Refusal>, SigninError> {
    by_tenant(db, app, &tenant.entra_tenant_id).await
}

#[cfg(test)]
mod tests {
    use super::domain_of;

    #[test]
    fn the_domain_of_an_email_is_lowercased_and_plausible() {
        assert_eq!(
            domain_of("Ann@Contoso.Example").as_deref(),
            Some("contoso.example")
        );
        assert_eq!(
            domain_of("ann@contoso.example.").as_deref(),
            Some("contoso.example")
        );
        assert_eq!(domain_of("contoso.example"), None);
        assert_eq!(domain_of("@contoso.example"), None);
        assert_eq!(domain_of("ann@localhost"), None);
        assert_eq!(domain_of("ann@contoso.example/x"), None);
    }
}
