//! Customer-app consent (the iPECS way): the customer's own single-tenant app, proved by what it
//! can do — a client-credentials token in its tenant, a users read, and `/organization` naming
//! that same tenant — before anything is saved.

use super::{consent_for, granted_or};
use crate::graph::{GraphClient, GraphError};
use crate::identity::{EntraClient, GRAPH_DEFAULT_SCOPE, IdentityError};
use crate::tenants::Consent;
use crate::types::ConsentMode;
use crate::types::{ClientId, Secret, TenantId};

/// A customer app's credentials, of the right shape but not yet proven.
#[derive(Debug)]
pub struct AppCredentials {
    /// The Directory (tenant) ID.
    pub tenant: TenantId,
    /// The Application (client) ID.
    pub client_id: ClientId,
    /// The client secret's value.
    pub secret: Secret,
}

/// Which Graph read failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphRead {
    /// `/users`, which needs `User.Read.All`.
    Users,
    /// `/organization`, which needs `Organization.Read.All`.
    Organization,
}

/// Why a customer app was not accepted.
#[derive(Debug)]
pub enum AppRefusal {
    /// Entra ID refused the client-credentials request (unknown tenant or app, bad or expired
    /// secret, no admin consent…).
    Token(IdentityError),
    /// The token was issued but a Graph read was refused or failed.
    Graph {
        /// Which read.
        read: GraphRead,
        /// What Graph answered.
        error: GraphError,
    },
    /// Graph describes another tenant than the one entered.
    OtherTenant,
}

/// Proves `creds` and returns the consent to record (with the secret as its credential).
#[tracing::instrument(skip_all, fields(tenant_id = %creds.tenant))]
pub async fn verify_customer_app(
    entra: &EntraClient,
    graph: &GraphClient,
    creds: AppCredentials,
) -> Result<Consent, AppRefusal> {
    let client_id = creds.client_id.to_string();
    let token = entra
        .app_token(&creds.tenant, Some((&client_id, &creds.secret)))
        .await
        .map_err(AppRefusal::Token)?;
    // The customer's own app: its own budget in its tenant.
    let graph = graph.for_tenant(&client_id, creds.tenant.as_uuid());
    let refused = |read| move |error| AppRefusal::Graph { read, error };
    graph
        .probe_users(&token)
        .await
        .map_err(refused(GraphRead::Users))?;
    let org = graph
        .organization(&token)
        .await
        .map_err(refused(GraphRead::Organization))?;
    if org.id != creds.tenant {
        return Err(AppRefusal::OtherTenant);
    }
    Ok(Consent {
        granted_scopes: granted_or(&token, vec![GRAPH_DEFAULT_SCOPE.to_owned()]),
        customer_client_id: Some(client_id),
        credential: Some(creds.secret),
        ..consent_for(&org, ConsentMode::CustomerApp)
    })
}
