//! The app registry (client ids, secrets, redirect URIs, requested permissions) and consent
//! grants per tenant and app.

use std::collections::{BTreeSet, HashMap};

use serde::Deserialize;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::scopes;

/// A client secret and when it stops working.
#[derive(Clone, Debug)]
pub struct Secret {
    /// The secret text.
    pub value: String,
    /// After this, AADSTS7000222.
    pub expires_at: OffsetDateTime,
}

/// Permissions an app requests or a tenant granted.
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize)]
pub struct Permissions {
    /// Delegated Graph permissions (short names).
    #[serde(default)]
    pub delegated: BTreeSet<String>,
    /// Application Graph permissions (app roles, short names).
    #[serde(default)]
    pub application: BTreeSet<String>,
}

impl Permissions {
    /// Canonicalises names; returns the first unknown one as an error.
    pub fn normalized(&self) -> Result<Self, String> {
        let norm = |set: &BTreeSet<String>| -> Result<BTreeSet<String>, String> {
            set.iter()
                .map(|p| match scopes::parse(p) {
                    Some(scopes::Scope::Graph(s)) => Ok(s.to_string()),
                    _ => Err(p.clone()),
                })
                .collect()
        };
        Ok(Self {
            delegated: norm(&self.delegated)?,
            application: norm(&self.application)?,
        })
    }
}

/// A registered application.
#[derive(Clone, Debug)]
pub struct App {
    /// Application (client) id, a GUID.
    pub client_id: String,
    /// Name shown on consent pages.
    pub display_name: String,
    /// Tenant the app is registered in.
    pub home_tenant: Uuid,
    /// Whether other tenants may consent to it.
    pub multi_tenant: bool,
    /// Registered redirect URIs (matched exactly).
    pub redirect_uris: Vec<String>,
    /// Configured (requested) permissions.
    pub permissions: Permissions,
    /// Client secrets.
    pub secrets: Vec<Secret>,
}

/// Outcome of checking a presented client secret.
#[derive(Debug, PartialEq, Eq)]
pub enum SecretCheck {
    /// Matches a live secret.
    Valid,
    /// Matches an expired secret.
    Expired,
    /// Matches nothing.
    Wrong,
}

impl App {
    /// Checks a client secret against every secret of the app.
    pub fn check_secret(&self, presented: &str) -> SecretCheck {
        match self.secrets.iter().find(|s| s.value == presented) {
            None => SecretCheck::Wrong,
            Some(s) if s.expires_at <= OffsetDateTime::now_utc() => SecretCheck::Expired,
            Some(_) => SecretCheck::Valid,
        }
    }

    /// Whether `uri` is registered (Microsoft matches exactly).
    pub fn has_redirect(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|r| r == uri)
    }
}

/// What a tenant granted an app: tenant-wide (admin) and per-user delegated consent.
#[derive(Clone, Debug, Default)]
pub struct Grant {
    /// Granted by an administrator for everyone.
    pub tenant_wide: Permissions,
    /// Delegated permissions users consented to for themselves.
    pub by_user: HashMap<Uuid, BTreeSet<String>>,
}

/// All apps and grants.
#[derive(Debug, Default)]
pub struct Registry {
    /// Apps by client id.
    pub apps: HashMap<String, App>,
    /// Keyed by (tenant id, client id); its presence means the app has a service principal there.
    pub grants: HashMap<(Uuid, String), Grant>,
}

/// Input to [`Registry::register`].
#[derive(Debug, Deserialize)]
pub struct NewApp {
    /// Tenant to register in.
    pub home_tenant: Uuid,
    /// Multi-tenant app (default false).
    #[serde(default)]
    pub multi_tenant: bool,
    /// Name shown on consent pages.
    pub display_name: Option<String>,
    /// Redirect URIs.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Requested permissions.
    #[serde(default)]
    pub permissions: Permissions,
    /// Secret lifetime; negative means already expired.
    pub secret_lifetime_days: Option<i64>,
    /// A fixed client id (GUID) instead of a random one.
    pub client_id: Option<String>,
    /// A fixed secret instead of a random one.
    pub client_secret: Option<String>,
}

impl Registry {
    /// Registers (or replaces) an app and returns it.
    pub fn register(&mut self, new: NewApp, default_lifetime_days: i64) -> Result<&App, String> {
        let permissions = new
            .permissions
            .normalized()
            .map_err(|p| format!("unknown permission '{p}'"))?;
        let client_id = match new.client_id {
            Some(id) => Uuid::parse_str(&id)
                .map_err(|_| format!("client_id '{id}' is not a GUID"))?
                .to_string(),
            None => Uuid::new_v4().to_string(),
        };
        let secret = Secret {
            value: new
                .client_secret
                .unwrap_or_else(|| format!("emu~{}", crate::rng::secret_token(30))),
            expires_at: OffsetDateTime::now_utc()
                + Duration::days(new.secret_lifetime_days.unwrap_or(default_lifetime_days)),
        };
        let app = App {
            display_name: new.display_name.unwrap_or_else(|| "Emulated app".into()),
            client_id: client_id.clone(),
            home_tenant: new.home_tenant,
            multi_tenant: new.multi_tenant,
            redirect_uris: new.redirect_uris,
            permissions,
            secrets: vec![secret],
        };
        self.grants
            .entry((app.home_tenant, client_id.clone()))
            .or_default();
        self.apps.insert(client_id.clone(), app);
        Ok(&self.apps[&client_id])
    }

    /// Delegated permissions `oid` may use for the app in `tid` (tenant-wide plus their own).
    pub fn delegated_for(&self, tid: Uuid, client_id: &str, oid: Uuid) -> BTreeSet<String> {
        let Some(grant) = self.grants.get(&(tid, client_id.to_string())) else {
            return BTreeSet::new();
        };
        let mut all = grant.tenant_wide.delegated.clone();
        if let Some(mine) = grant.by_user.get(&oid) {
            all.extend(mine.iter().cloned());
        }
        all
    }

    /// Application permissions granted to the app in `tid`, if it has a service principal there.
    pub fn roles_for(&self, tid: Uuid, client_id: &str) -> Option<BTreeSet<String>> {
        self.grants
            .get(&(tid, client_id.to_string()))
            .map(|g| g.tenant_wide.application.clone())
    }

    /// Whether `oid` (or the whole tenant) consented to the app before, so sign-in scopes need no prompt.
    pub fn has_delegated_consent(&self, tid: Uuid, client_id: &str, oid: Uuid) -> bool {
        self.grants
            .get(&(tid, client_id.to_string()))
            .is_some_and(|g| !g.tenant_wide.delegated.is_empty() || g.by_user.contains_key(&oid))
    }

    /// Records a grant (adds to what was there).
    pub fn grant(&mut self, tid: Uuid, client_id: &str, user: Option<Uuid>, perms: &Permissions) {
        let grant = self.grants.entry((tid, client_id.to_string())).or_default();
        match user {
            Some(oid) => grant
                .by_user
                .entry(oid)
                .or_default()
                .extend(perms.delegated.iter().cloned()),
            None => {
                grant
                    .tenant_wide
                    .delegated
                    .extend(perms.delegated.iter().cloned());
                grant
                    .tenant_wide
                    .application
                    .extend(perms.application.iter().cloned());
            }
        }
    }

    /// Removes every grant of the app in `tid`; true if there was one.
    pub fn revoke(&mut self, tid: Uuid, client_id: &str) -> bool {
        self.grants.remove(&(tid, client_id.to_string())).is_some()
    }
}
