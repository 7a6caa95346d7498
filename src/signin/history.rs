//! The sign-ins seen: every success and refusal with its application, customer, user and the
//! reason of a refusal, for operators (the Sign-ins page, each tenant's page) and the metrics.

use sqlx::{PgExecutor, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use super::SigninError;
use crate::metrics;

/// How a sign-in ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The application got its code.
    Succeeded,
    /// The user got a page saying why not.
    Refused,
}

impl Outcome {
    /// Every outcome, for filters.
    pub const ALL: [Outcome; 2] = [Outcome::Succeeded, Outcome::Refused];

    /// The stored form (and the metrics label).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Refused => "refused",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// A sign-in to record.
#[derive(Debug, Clone, Copy)]
pub struct NewSignIn<'a> {
    /// The application signed in to.
    pub application_id: Uuid,
    /// Its name now.
    pub application: &'a str,
    /// Gangway's id of the user's tenant, when known.
    pub tenant_id: Option<Uuid>,
    /// The customer's name, when known.
    pub customer: Option<&'a str>,
    /// The user's UPN, when Microsoft said it.
    pub user: Option<&'a str>,
    /// Why it was refused; `None` for a success.
    pub reason: Option<&'a str>,
}

/// Records a sign-in and counts it in `gangway_signins_total{outcome}`.
pub async fn record(db: impl PgExecutor<'_>, new: &NewSignIn<'_>) -> Result<(), SigninError> {
    let outcome = if new.reason.is_some() {
        Outcome::Refused
    } else {
        Outcome::Succeeded
    };
    sqlx::query!(
        "insert into signin_events
           (application_id, application_name, tenant_id, customer_id, customer_name, username,
            outcome, reason)
         values ($1, $2, $3, (select customer_id from tenants where id = $3), $4, $5, $6, $7)",
        new.application_id,
        new.application,
        new.tenant_id,
        new.customer,
        new.user,
        outcome.as_str(),
        new.reason,
    )
    .execute(db)
    .await?;
    metrics::record_signin(outcome.as_str());
    Ok(())
}

/// A recorded sign-in.
#[derive(Debug, Clone)]
pub struct SignIn {
    /// When.
    pub at: OffsetDateTime,
    /// The application, unless deleted since.
    pub application_id: Option<Uuid>,
    /// Its name then.
    pub application_name: String,
    /// Gangway's id of the tenant, when known (and not gone since).
    pub tenant_id: Option<Uuid>,
    /// The tenant's name.
    pub tenant_name: Option<String>,
    /// The customer's name then.
    pub customer_name: Option<String>,
    /// The user's UPN.
    pub username: Option<String>,
    /// `succeeded` or `refused`.
    pub outcome: String,
    /// Why it was refused.
    pub reason: Option<String>,
}

/// Which sign-ins to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Of this customer.
    pub customer_id: Option<Uuid>,
    /// To this application.
    pub application_id: Option<Uuid>,
    /// Of this tenant.
    pub tenant_id: Option<Uuid>,
    /// Ending so.
    pub outcome: Option<Outcome>,
    /// Whose user, application, customer or reason contains this (case-insensitive).
    pub search: Option<String>,
}

/// A page of the sign-ins `filter` picks, newest first, with the total it picks.
pub async fn list(
    db: &PgPool,
    filter: &Filter,
    limit: i64,
    offset: i64,
) -> Result<(Vec<SignIn>, i64), SigninError> {
    let pattern = filter.search.as_deref().map(crate::db::contains_pattern);
    let outcome = filter.outcome.map(Outcome::as_str);
    let rows = sqlx::query_as!(
        SignIn,
        r#"select e.at, e.application_id, e.application_name, e.tenant_id,
                  t.display_name as "tenant_name?", e.customer_name, e.username, e.outcome,
                  e.reason
           from signin_events e left join tenants t on t.id = e.tenant_id
           where ($1::uuid is null or e.customer_id = $1)
             and ($2::uuid is null or e.application_id = $2)
             and ($3::uuid is null or e.tenant_id = $3)
             and ($4::text is null or e.outcome = $4)
             and ($5::text is null or e.username ilike $5 escape '\'
                  or e.application_name ilike $5 escape '\'
                  or e.customer_name ilike $5 escape '\' or e.reason ilike $5 escape '\')
           order by e.at desc, e.id desc limit $6 offset $7"#,
        filter.customer_id,
        filter.application_id,
        filter.tenant_id,
        outcome,
        pattern,
        limit,
        offset,
    )
    .fetch_all(db)
    .await?;
    let total = sqlx::query_scalar!(
        r#"select count(*) as "n!" from signin_events e
           where ($1::uuid is null or e.customer_id = $1)
             and ($2::uuid is null or e.application_id = $2)
             and ($3::uuid is null or e.tenant_id = $3)
             and ($4::text is null or e.outcome = $4)
             and ($5::text is null or e.username ilike $5 escape '\'
                  or e.application_name ilike $5 escape '\'
                  or e.customer_name ilike $5 escape '\' or e.reason ilike $5 escape '\')"#,
        filter.customer_id,
        filter.application_id,
        filter.tenant_id,
        outcome,
        pattern,
    )
    .fetch_one(db)
    .await?;
    Ok((rows, total))
}
