//! Consent drift. A customer's admin may remove a permission, disable or delete the provider's
//! enterprise application, or a tenant-wide re-consent may drop grants; the sync only notices
//! when a read fails. [`check`] reads what the tenant grants the provider's app now — its
//! service principal (`/servicePrincipals(appId='…')`: present, `accountEnabled`), its
//! application permissions (`appRoleAssignments`) and delegated grants
//! (`oauth2PermissionGrants`) — and compares them with the tenant's permission profile.
//! Where the tenant did not grant the app the right to read these (they need
//! `Application.Read.All` / `Directory.Read.All`), the access token Entra ID issued names the
//! same grants (`roles`, `scp`). The result is stored on the tenant; a new drift is audited,
//! raises `tenant.consent_drifted` and is counted.

use std::collections::BTreeSet;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::audit::{self, Action, Actor};
use crate::crypto::Keyring;
use crate::directory::budget::{self, Budget};
use crate::directory::credentials::{CredentialError, TokenSource};
use crate::directory::sync::tenant_access;
use crate::doctor::graph_ids::{self, Kind};
use crate::graph::{GraphClient, GraphError};
use crate::invitations::reconsent;
use crate::settings::{SettingsCache, profiles};
use crate::types::{ConsentMode, Secret};
use crate::webhooks::{self, EventType};

/// Where the provider's enterprise application stands in the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServicePrincipal {
    /// Present and enabled.
    Enabled,
    /// Present, but an admin turned off "Enabled for users to sign in?".
    Disabled,
    /// Deleted from the tenant (or never consented).
    Missing,
}

/// Where the grants were read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Graph's service principal, app role assignments and permission grants.
    Graph,
    /// The access token Entra ID issued (Graph refused the reads).
    Token,
    /// Entra ID issued no token: the app is disabled or gone.
    Refusal,
}

/// What a tenant grants the provider's app, against its profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    /// The enterprise application.
    pub service_principal: ServicePrincipal,
    /// Permissions the profile needs that the tenant does not grant.
    pub missing: Vec<String>,
    /// Permissions granted beyond the profile (least privilege says: remove them).
    pub extra: Vec<String>,
    /// Where this was read.
    pub source: Source,
}

impl Drift {
    /// Whether anything differs from the profile.
    pub fn drifted(&self) -> bool {
        self.service_principal != ServicePrincipal::Enabled
            || !self.missing.is_empty()
            || !self.extra.is_empty()
    }

    /// Whether only a new consent (or the admin) fixes it: something needed is not granted.
    pub fn needs_consent(&self) -> bool {
        self.service_principal != ServicePrincipal::Enabled || !self.missing.is_empty()
    }

    /// "consent drifted: Group.Read.All missing", or `None` when nothing drifted.
    pub fn summary(&self) -> Option<String> {
        let mut parts = Vec::new();
        match self.service_principal {
            ServicePrincipal::Enabled => {}
            ServicePrincipal::Disabled => parts.push("the app is disabled in the tenant".into()),
            ServicePrincipal::Missing => parts.push("the app was removed from the tenant".into()),
        }
        if !self.missing.is_empty() && self.service_principal == ServicePrincipal::Enabled {
            parts.push(format!("{} missing", self.missing.join(", ")));
        }
        if !self.extra.is_empty() {
            parts.push(format!(
                "{} granted beyond the profile",
                self.extra.join(", ")
            ));
        }
        (!parts.is_empty()).then(|| format!("consent drifted: {}", parts.join("; ")))
    }

    /// The grants `granted` (names) against `needed`, compared whatever the case.
    fn compare(
        needed: &[String],
        granted: &BTreeSet<String>,
        sp: ServicePrincipal,
        source: Source,
    ) -> Self {
        let has = |set: &[&String], name: &str| set.iter().any(|g| g.eq_ignore_ascii_case(name));
        let needed_refs: Vec<&String> = needed.iter().collect();
        let granted_refs: Vec<&String> = granted.iter().collect();
        Self {
            service_principal: sp,
            missing: needed
                .iter()
                .filter(|n| !has(&granted_refs, n))
                .cloned()
                .collect(),
            extra: granted
                .iter()
                .filter(|g| !OIDC.iter().any(|o| o.eq_ignore_ascii_case(g)))
                .filter(|g| !has(&needed_refs, g))
                .cloned()
                .collect(),
            source,
        }
    }
}

/// How often each tenant is checked.
pub const EVERY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
/// Tenants checked at most per activation (hourly), so a large installation spreads its checks.
pub const BATCH: i64 = 200;

/// Sign-in scopes every delegated grant carries; never "beyond the profile".
const OIDC: &[&str] = &["openid", "profile", "email", "offline_access"];

/// Why a tenant could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum DriftError {
    /// Not connected (offboarded, disabled or already waiting for a new consent), or in
    /// customer-app mode, where the app is the customer's own.
    #[error("only active tenants that consented to the provider's app are checked")]
    NotChecked,
    /// Entra ID or Graph could not be asked; try again later.
    #[error("{0}")]
    Failed(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// What the check needs: the database, the keys that open tenant credentials, the settings
/// (the provider's app) and Graph.
#[derive(Clone, Debug)]
pub struct Checker {
    /// The database.
    pub db: PgPool,
    /// Opens tenant credentials.
    pub keys: Keyring,
    /// The provider's app.
    pub settings: SettingsCache,
    /// Microsoft Graph.
    pub graph: GraphClient,
    /// Graph's throttle budget, shared with the sync workers.
    pub budget: Budget,
}

impl Checker {
    /// Reads what tenant `tenant` (Gangway's id) grants now, stores it on the tenant and, when
    /// it newly drifted, audits it, raises `tenant.consent_drifted` and counts it.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn check(&self, tenant: Uuid) -> Result<Drift, DriftError> {
        let result = self.read(tenant).await;
        let drift = match result {
            Ok(drift) => drift,
            Err(e) => {
                crate::metrics::record_consent_check("failed");
                return Err(e);
            }
        };
        crate::metrics::record_consent_check(if drift.drifted() { "drifted" } else { "ok" });
        let mut tx = self.db.begin().await?;
        let before: Option<Value> = sqlx::query_scalar!(
            "select consent_drift from tenants where id = $1 for update",
            tenant
        )
        .fetch_one(&mut *tx)
        .await?;
        let stored = serde_json::to_value(&drift).expect("a drift serialises");
        sqlx::query!(
            "update tenants set consent_drift = $2, consent_checked_at = now() where id = $1",
            tenant,
            stored,
        )
        .execute(&mut *tx)
        .await?;
        let was = before
            .and_then(|v| serde_json::from_value::<Drift>(v).ok())
            .and_then(|d| d.summary());
        if let Some(summary) = drift.summary().filter(|s| Some(s) != was.as_ref()) {
            let detail = json!({
                "tenant_id": tenant,
                "summary": summary,
                "service_principal": drift.service_principal,
                "missing": drift.missing,
                "extra": drift.extra,
            });
            audit::record(
                &mut *tx,
                &Actor::System,
                Action::TenantConsentDrifted,
                None,
                Some(tenant),
                detail.clone(),
            )
            .await?;
            webhooks::emit(
                &mut tx,
                &webhooks::Event::new(EventType::TenantConsentDrifted, detail),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(drift)
    }

    /// Checks every connected tenant not checked for [`EVERY`] (at most [`BATCH`] at a time,
    /// the longest unchecked first); says how many drifted. One that cannot be checked now is
    /// tried again at the next activation.
    pub async fn check_due(&self) -> Result<String, sqlx::Error> {
        let due = sqlx::query_scalar!(
            "select id from tenants
             where status = 'active' and consent_mode <> 'customer_app'
               and (consent_checked_at is null or consent_checked_at < now() - make_interval(secs => $1))
             order by consent_checked_at nulls first limit $2",
            EVERY.as_secs_f64(),
            BATCH,
        )
        .fetch_all(&self.db)
        .await?;
        let (mut drifted, mut failed) = (0, 0);
        for id in &due {
            match self.check(*id).await {
                Ok(drift) if drift.drifted() => drifted += 1,
                Ok(_) => {}
                Err(DriftError::Db(e)) => return Err(e),
                Err(e) => {
                    tracing::warn!(tenant_id = %id, error = %e, "consent check failed");
                    failed += 1;
                }
            }
        }
        Ok(format!(
            "checked {} tenant(s): {drifted} drifted, {failed} could not be checked",
            due.len()
        ))
    }

    async fn read(&self, tenant: Uuid) -> Result<Drift, DriftError> {
        let access = tenant_access(&self.db, tenant)
            .await?
            .filter(|a| a.consent_mode != ConsentMode::CustomerApp)
            .ok_or(DriftError::NotChecked)?;
        let profile_id = sqlx::query_scalar!(
            r#"select permission_profile_id as "id: crate::types::ProfileId" from tenants where id = $1"#,
            tenant
        )
        .fetch_one(&self.db)
        .await?;
        let profile = match profile_id {
            Some(id) => profiles::get(&self.db, id).await?,
            None => None,
        };
        let profile = match profile {
            Some(p) => p,
            None => profiles::default(&self.db).await?,
        };
        let delegated = access.consent_mode == ConsentMode::Delegated;
        let needed = if delegated {
            profile.delegated_scopes()
        } else {
            profile.application_scopes()
        };
        let gone = |sp| Drift {
            service_principal: sp,
            missing: needed.clone(),
            extra: Vec::new(),
            source: Source::Refusal,
        };
        // A fresh token, never a cached one: it must say what the tenant grants now.
        let source = TokenSource::new(self.db.clone(), self.keys.clone(), self.settings.clone());
        let (token, scopes) = match source.fresh(&access).await {
            Ok(fresh) => fresh,
            Err(CredentialError::ReconsentRequired(why)) => {
                return Ok(gone(if why.starts_with(reconsent::APP_DISABLED.operator) {
                    ServicePrincipal::Disabled
                } else {
                    ServicePrincipal::Missing
                }));
            }
            Err(CredentialError::Db(e)) => return Err(e.into()),
            Err(e) => return Err(DriftError::Failed(e.to_string())),
        };
        let client_id = self
            .settings
            .current()
            .await
            .and_then(|live| live.client_id().map(ToString::to_string))
            .map_err(|e| DriftError::Failed(e.to_string()))?;
        // The service principal, then its grants (delegated) or app role assignments.
        let grants = if delegated {
            "v1.0/servicePrincipals/{id}/oauth2PermissionGrants"
        } else {
            "v1.0/servicePrincipals/{id}/appRoleAssignments"
        };
        let cost = budget::cost("v1.0/servicePrincipals(appId='{appId}')") + budget::cost(grants);
        self.budget
            .take(
                budget::PROVIDER_APP,
                access.id,
                access.entra_tenant_id,
                cost,
            )
            .await?;
        match self.read_graph(&token, &client_id, delegated).await {
            Ok(Some((sp, granted))) => Ok(Drift::compare(&needed, &granted, sp, Source::Graph)),
            Ok(None) => Ok(gone(ServicePrincipal::Missing)),
            Err(GraphError::Api { status: 403, .. }) => {
                // A delegated grant's scopes come with the token response (its `scope`); an
                // app-only token names its roles.
                let granted = scopes
                    .map(|all| all.iter().map(|s| bare_scope(s).to_owned()).collect())
                    .or_else(|| from_token(&token, delegated))
                    .ok_or_else(|| {
                        DriftError::Failed("the access token names no permissions".into())
                    })?;
                Ok(Drift::compare(
                    &needed,
                    &granted,
                    ServicePrincipal::Enabled,
                    Source::Token,
                ))
            }
            Err(e) => Err(DriftError::Failed(e.to_string())),
        }
    }

    /// The service principal of `client_id` and the permissions granted to it, from Graph;
    /// `None` when there is no service principal.
    async fn read_graph(
        &self,
        token: &Secret,
        client_id: &str,
        delegated: bool,
    ) -> Result<Option<(ServicePrincipal, BTreeSet<String>)>, GraphError> {
        let url = self
            .graph
            .url(&format!("v1.0/servicePrincipals(appId='{client_id}')"))?;
        let sp: Value = match self.graph.get_json(url, token).await {
            Ok(sp) => sp,
            Err(GraphError::Api { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let state = if sp["accountEnabled"].as_bool() == Some(false) {
            ServicePrincipal::Disabled
        } else {
            ServicePrincipal::Enabled
        };
        let id = sp["id"].as_str().unwrap_or_default();
        let mut granted = BTreeSet::new();
        if delegated {
            let url = self.graph.url(&format!(
                "v1.0/servicePrincipals/{id}/oauth2PermissionGrants"
            ))?;
            let grants: Value = self.graph.get_json(url, token).await?;
            for grant in grants["value"].as_array().into_iter().flatten() {
                let scope = grant["scope"].as_str().unwrap_or_default();
                granted.extend(scope.split_whitespace().map(str::to_owned));
            }
        } else {
            let url = self
                .graph
                .url(&format!("v1.0/servicePrincipals/{id}/appRoleAssignments"))?;
            let assignments: Value = self.graph.get_json(url, token).await?;
            for a in assignments["value"].as_array().into_iter().flatten() {
                let role = a["appRoleId"].as_str().unwrap_or_default();
                granted.insert(
                    graph_ids::name_of(role, Kind::Application)
                        .map_or_else(|| format!("app role {role}"), str::to_owned),
                );
            }
        }
        Ok(Some((state, granted)))
    }
}

/// A scope as the token response may name it (`https://graph.microsoft.com/User.Read.All`)
/// without Graph's prefix, as the profile names it.
fn bare_scope(scope: &str) -> &str {
    scope
        .strip_prefix("https://graph.microsoft.com/")
        .unwrap_or(scope)
}

/// The permissions the access token names: `roles` (application) or `scp` (delegated). The
/// token came straight from Entra ID's token endpoint over TLS, so its payload is read as
/// is; it is never used to decide who someone is.
fn from_token(token: &Secret, delegated: bool) -> Option<BTreeSet<String>> {
    let payload = token.expose().split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    Some(if delegated {
        claims["scp"]
            .as_str()?
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    } else {
        claims["roles"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    })
}

/// The last check of a tenant: what it found and when, if it was ever checked.
pub async fn last(
    db: &PgPool,
    tenant: Uuid,
) -> Result<Option<(Drift, time::OffsetDateTime)>, sqlx::Error> {
    let row = sqlx::query!(
        "select consent_drift, consent_checked_at from tenants where id = $1",
        tenant
    )
    .fetch_optional(db)
    .await?;
    Ok(row.and_then(|r| {
        let drift = serde_json::from_value(r.consent_drift?).ok()?;
        Some((drift, r.consent_checked_at?))
    }))
}

/// The drift summaries of those of `tenants` whose last check found one.
pub async fn summaries(
    db: &PgPool,
    tenants: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, String>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select id, consent_drift as "drift!" from tenants
           where id = any($1) and consent_drift is not null"#,
        tenants,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let drift: Drift = serde_json::from_value(r.drift).ok()?;
            Some((r.id, drift.summary()?))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_drift_names_what_is_missing_and_what_is_granted_beyond_the_profile() {
        let needed = names(&["User.Read.All", "Group.Read.All"]);
        let granted: BTreeSet<String> = ["user.read.all", "Mail.Read", "openid"]
            .map(String::from)
            .into();
        let drift = Drift::compare(&needed, &granted, ServicePrincipal::Enabled, Source::Graph);
        assert_eq!(drift.missing, ["Group.Read.All"]);
        assert_eq!(drift.extra, ["Mail.Read"]);
        assert_eq!(
            drift.summary().unwrap(),
            "consent drifted: Group.Read.All missing; Mail.Read granted beyond the profile"
        );
        let fine = Drift::compare(
            &needed,
            &needed.iter().cloned().collect(),
            ServicePrincipal::Enabled,
            Source::Token,
        );
        assert!(!fine.drifted());
        assert_eq!(fine.summary(), None);
        let disabled = Drift::compare(
            &needed,
            &BTreeSet::new(),
            ServicePrincipal::Disabled,
            Source::Refusal,
        );
        assert_eq!(
            disabled.summary().unwrap(),
            "consent drifted: the app is disabled in the tenant"
        );
    }
}
