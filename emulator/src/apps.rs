//! The app registry (client ids, secrets, redirect URIs, requested permissions) and consent
//! grants per tenant and app.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::scopes;

/// "Microsoft Graph Command Line Tools", the public client Microsoft Graph PowerShell and the
/// Graph CLI sign in with: Microsoft's app, usable in every tenant without a registration there.
pub const FIRST_PARTY_PUBLIC_CLIENT: Uuid = uuid::uuid!("14d82eec-204b-4c2f-b7e8-296a70dab67e");
/// Its display name, as consent pages show it.
pub const FIRST_PARTY_PUBLIC_CLIENT_NAME: &str = "Microsoft Graph Command Line Tools";
/// The tenant Microsoft's own applications are registered in (their `appOwnerOrganizationId`).
pub const MICROSOFT_TENANT: Uuid = uuid::uuid!("f8cdef31-a31e-4b4a-93e4-5f571e91255a");

/// A client secret and when it stops working.
#[derive(Clone, Debug)]
pub struct Secret {
    /// Graph's `keyId` of the password credential.
    pub key_id: Uuid,
    /// The secret text.
    pub value: String,
    /// When it was added.
    pub starts_at: OffsetDateTime,
    /// After this, AADSTS7000222.
    pub expires_at: OffsetDateTime,
    /// The friendly name given to `addPassword`.
    pub display_name: Option<String>,
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
    /// Canonicalises names; returns the first unknown one as an error. OIDC scopes are
    /// delegated permissions of Graph too, never application ones.
    pub fn normalized(&self) -> Result<Self, String> {
        let norm = |set: &BTreeSet<String>, oidc: bool| -> Result<BTreeSet<String>, String> {
            set.iter()
                .map(|p| match scopes::parse(p) {
                    Some(scopes::Scope::Graph(s)) => Ok(s.to_string()),
                    Some(scopes::Scope::Oidc(s)) if oidc => Ok(s.to_string()),
                    _ => Err(p.clone()),
                })
                .collect()
        };
        Ok(Self {
            delegated: norm(&self.delegated, true)?,
            application: norm(&self.application, false)?,
        })
    }

    /// The delegated Graph permissions proper: what `.default` asks for and access tokens
    /// carry (the OIDC scopes are asked for by name).
    pub fn delegated_graph(&self) -> impl Iterator<Item = &String> {
        self.delegated
            .iter()
            .filter(|p| scopes::canonical(p).is_some())
    }
}

/// What an app's tokens say about the user's memberships (the manifest's
/// `groupMembershipClaims`): `groups` and `wids`, in ID tokens and in access tokens for the app.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum GroupClaims {
    /// Neither `groups` nor `wids` (the default).
    #[default]
    None,
    /// `groups`: the security groups the user is a member of.
    SecurityGroup,
    /// `wids`: the directory roles the user holds (role template ids).
    DirectoryRole,
    /// `groups`: only groups assigned to the application (the emulator assigns app roles to
    /// users only, so none).
    ApplicationGroup,
    /// `groups` (every group: security, Microsoft 365, distribution) and `wids`.
    All,
}

impl GroupClaims {
    /// Whether tokens carry `wids`: the access-token claims reference has it configured by
    /// `groupMembershipClaims` `All` or `DirectoryRole`, never by an optional claim.
    pub fn emits_wids(self) -> bool {
        matches!(self, Self::DirectoryRole | Self::All)
    }
}

/// An app role defined on a registration (the manifest's `appRoles`).
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppRole {
    /// The role's id, a GUID.
    pub id: Uuid,
    /// What tokens carry in `roles`, e.g. `Gangway.Admin`.
    pub value: String,
    /// `User` (assignable to users and groups) and/or `Application`.
    #[serde(default = "user_member_type")]
    pub allowed_member_types: Vec<String>,
    /// Shown in the portal.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Shown in the portal.
    #[serde(default)]
    pub description: Option<String>,
    /// A disabled role is neither assignable nor emitted.
    #[serde(default = "enabled")]
    pub is_enabled: bool,
}

fn user_member_type() -> Vec<String> {
    vec!["User".into()]
}

fn enabled() -> bool {
    true
}

impl AppRole {
    /// Whether users can be assigned the role.
    pub fn for_users(&self) -> bool {
        self.is_enabled && self.allowed_member_types.iter().any(|t| t == "User")
    }

    /// Whether applications (daemons, client credentials) can be granted the role.
    pub fn for_apps(&self) -> bool {
        self.is_enabled && self.allowed_member_types.iter().any(|t| t == "Application")
    }
}

/// A delegated scope an app exposes ("Expose an API", the manifest's
/// `api.oauth2PermissionScopes`), e.g. `Gangway.Manage`.
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExposedScope {
    /// The scope's id, a GUID.
    pub id: Uuid,
    /// What tokens carry in `scp`, and what clients ask for after the application ID URI.
    pub value: String,
    /// A disabled scope cannot be asked for.
    #[serde(default = "enabled")]
    pub is_enabled: bool,
}

/// `requestedAccessTokenVersion` takes 1, 2 or null (apiApplication resource).
fn check_token_version(version: Option<u8>) -> Result<(), String> {
    match version {
        None | Some(1 | 2) => Ok(()),
        Some(v) => Err(format!(
            "requestedAccessTokenVersion must be 1, 2 or null, not {v}"
        )),
    }
}

/// Checks exposed scopes as the portal does: values unique, without spaces.
fn check_scopes(scopes: &[ExposedScope]) -> Result<(), String> {
    for (i, scope) in scopes.iter().enumerate() {
        if scope.value.is_empty()
            || scope.value.chars().any(|c| c.is_whitespace() || c == '/')
            || scope.value.len() > 120
        {
            return Err(format!(
                "scope value '{}' must be 1 to 120 characters without spaces or slashes",
                scope.value
            ));
        }
        if scopes[..i]
            .iter()
            .any(|s| s.id == scope.id || s.value == scope.value)
        {
            return Err(format!(
                "scope '{}' is defined twice (ids and values must be unique)",
                scope.value
            ));
        }
    }
    Ok(())
}

/// An app granted an app role of another app (a resource) in a tenant: what "API permissions →
/// Application permissions" plus admin consent records, for client credentials.
#[derive(Clone, Debug)]
pub struct AppRoleGrant {
    /// The grant's id.
    pub id: Uuid,
    /// The client id of the app granted the role.
    pub client_id: String,
    /// The resource's app role id.
    pub role: Uuid,
}

/// Checks app roles as the portal does: GUID ids and values unique, values without spaces.
fn check_roles(roles: &[AppRole]) -> Result<(), String> {
    for (i, role) in roles.iter().enumerate() {
        if role.value.is_empty()
            || role.value.chars().any(char::is_whitespace)
            || role.value.len() > 250
        {
            return Err(format!(
                "app role value '{}' must be 1 to 250 characters without spaces",
                role.value
            ));
        }
        if role
            .allowed_member_types
            .iter()
            .any(|t| t != "User" && t != "Application")
        {
            return Err("allowedMemberTypes may only hold \"User\" and \"Application\"".into());
        }
        if roles[..i]
            .iter()
            .any(|r| r.id == role.id || r.value == role.value)
        {
            return Err(format!(
                "app role '{}' is defined twice (ids and values must be unique)",
                role.value
            ));
        }
    }
    Ok(())
}

/// A user assigned an app role of an app in a tenant.
#[derive(Clone, Debug)]
pub struct RoleAssignment {
    /// The assignment's id.
    pub id: Uuid,
    /// The user (principal).
    pub user: Uuid,
    /// The app role's id.
    pub role: Uuid,
}

/// A registered application.
#[derive(Clone, Debug)]
pub struct App {
    /// Object id of the application object (Graph's `id`, not the client id).
    pub object_id: Uuid,
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
    /// Front-channel logout URL.
    pub logout_url: Option<String>,
    /// What tokens say of the user's groups and directory roles (`groups`, `wids`).
    pub group_claims: GroupClaims,
    /// The app roles users (and apps) can be assigned.
    pub app_roles: Vec<AppRole>,
    /// Application ID URIs (`identifierUris`): `api://{client_id}` unless registered otherwise.
    pub identifier_uris: Vec<String>,
    /// The delegated scopes the app exposes as an API.
    pub api_scopes: Vec<ExposedScope>,
    /// `api.requestedAccessTokenVersion`: `None` (Microsoft's default) or 1 mints v1.0 access
    /// tokens for the API, 2 mints v2.0 — whatever endpoint the client used.
    pub access_token_version: Option<u8>,
    /// Configured (requested) permissions.
    pub permissions: Permissions,
    /// Client secrets.
    pub secrets: Vec<Secret>,
    /// Certificates (`keyCredentials`) whose keys may sign client assertions.
    pub certificates: Vec<crate::certificates::KeyCredential>,
    /// When it was registered.
    pub created_at: OffsetDateTime,
    /// Object ids of its owners (users, or service principals in the home tenant): app-only
    /// callers with `Application.ReadWrite.OwnedBy` manage only apps they own.
    pub owners: BTreeSet<Uuid>,
    /// The app instance property lock (`servicePrincipalLockConfiguration`), if set.
    pub lock: Option<LockConfig>,
    /// A public client ("Allow public client flows"): it has no secret, and the device code
    /// grant and refreshes need no client authentication.
    pub public_client: bool,
}

/// Graph's `servicePrincipalLockConfiguration`: which sensitive properties of the app's
/// service principals (in every tenant) cannot be changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LockConfig {
    /// The lock is on.
    pub is_enabled: bool,
    /// Locks keyCredentials, passwordCredentials and tokenEncryptionKeyId.
    #[serde(default)]
    pub all_properties: Option<bool>,
    /// Locks credentials used to verify (OAuth service principals).
    #[serde(default)]
    pub credentials_with_usage_verify: Option<bool>,
    /// Locks credentials used to sign.
    #[serde(default)]
    pub credentials_with_usage_sign: Option<bool>,
    /// Locks tokenEncryptionKeyId.
    #[serde(default)]
    pub token_encryption_key_id: Option<bool>,
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
    /// A new service principal is not usable for app-only tokens before this.
    pub usable_from: Option<Instant>,
    /// The service principal's `accountEnabled` turned off by an admin ("Enabled for users
    /// to sign in?" No): Entra ID issues the app no token in the tenant.
    pub disabled: bool,
}

impl Grant {
    /// Whether the service principal has propagated (app-only tokens can be issued).
    pub fn usable(&self) -> bool {
        self.usable_from.is_none_or(|at| at <= Instant::now())
    }
}

/// All apps and grants.
#[derive(Debug, Default)]
pub struct Registry {
    /// Apps by client id.
    pub apps: HashMap<String, App>,
    /// Keyed by (tenant id, client id); its presence means the app has a service principal there.
    pub grants: HashMap<(Uuid, String), Grant>,
    /// App role assignments, keyed by (tenant id, client id).
    pub role_assignments: HashMap<(Uuid, String), Vec<RoleAssignment>>,
    /// App roles granted to apps, keyed by (tenant id, the resource's client id).
    pub app_role_grants: HashMap<(Uuid, String), Vec<AppRoleGrant>>,
}

/// Why a role could not be assigned.
#[derive(Debug, PartialEq, Eq)]
pub enum AssignError {
    /// No app with that client id.
    NoApp,
    /// The app has no service principal in the tenant (not its home, no consent).
    NoServicePrincipal,
    /// The app defines no enabled user-assignable role with that value.
    NoRole,
    /// The user already holds the role.
    Exists,
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
    /// Front-channel logout URL.
    #[serde(default)]
    pub logout_url: Option<String>,
    /// `groupMembershipClaims`: `"None"` (default), `"SecurityGroup"`, `"DirectoryRole"`,
    /// `"ApplicationGroup"` or `"All"`.
    #[serde(default)]
    pub group_membership_claims: Option<GroupClaims>,
    /// App roles (`[{"value", "id", "allowedMemberTypes"}]`).
    #[serde(default)]
    pub app_roles: Vec<AppRole>,
    /// Application ID URIs (default `["api://{client_id}"]`).
    #[serde(default)]
    pub identifier_uris: Option<Vec<String>>,
    /// Exposed delegated scopes (`[{"value": "Gangway.Manage", "id": GUID}]`).
    #[serde(default)]
    pub oauth2_permission_scopes: Vec<ExposedScope>,
    /// `api.requestedAccessTokenVersion`: 1, 2 or absent (v1.0 tokens, as Microsoft defaults).
    #[serde(default)]
    pub requested_access_token_version: Option<u8>,
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

/// Changes to a registration, as an admin would make them in the portal; absent fields stay.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppChange {
    /// Replaces the redirect URIs.
    pub redirect_uris: Option<Vec<String>>,
    /// Switches between multi-tenant and single-tenant.
    pub multi_tenant: Option<bool>,
    /// Sets the front-channel logout URL (an empty string removes it).
    pub logout_url: Option<String>,
    /// Changes `groupMembershipClaims` (`"None"` removes `groups` and `wids`).
    pub group_membership_claims: Option<GroupClaims>,
    /// Replaces the app roles (assignments of removed roles stop counting).
    pub app_roles: Option<Vec<AppRole>>,
    /// Replaces the application ID URIs.
    pub identifier_uris: Option<Vec<String>>,
    /// Replaces the exposed delegated scopes.
    pub oauth2_permission_scopes: Option<Vec<ExposedScope>>,
    /// Sets `api.requestedAccessTokenVersion` (1 or 2).
    pub requested_access_token_version: Option<u8>,
    /// Replaces the requested permissions (what a tenant granted stays).
    pub permissions: Option<Permissions>,
    /// Moves every secret's expiry to this many days from now (negative: already expired).
    pub secret_expires_in_days: Option<i64>,
}

impl Registry {
    /// Registers (or replaces) an app and returns it.
    pub fn register(&mut self, new: NewApp, default_lifetime_days: i64) -> Result<&App, String> {
        let permissions = new
            .permissions
            .normalized()
            .map_err(|p| format!("unknown permission '{p}'"))?;
        check_roles(&new.app_roles)?;
        check_scopes(&new.oauth2_permission_scopes)?;
        check_token_version(new.requested_access_token_version)?;
        let client_id = match new.client_id {
            Some(id) => Uuid::parse_str(&id)
                .map_err(|_| format!("client_id '{id}' is not a GUID"))?
                .to_string(),
            None => Uuid::new_v4().to_string(),
        };
        let now = OffsetDateTime::now_utc();
        let secret = Secret {
            key_id: Uuid::new_v4(),
            starts_at: now,
            value: new
                .client_secret
                .unwrap_or_else(|| format!("emu~{}", crate::rng::secret_token(30))),
            expires_at: now
                + Duration::days(new.secret_lifetime_days.unwrap_or(default_lifetime_days)),
            display_name: None,
        };
        let app = App {
            object_id: Uuid::new_v4(),
            display_name: new.display_name.unwrap_or_else(|| "Emulated app".into()),
            client_id: client_id.clone(),
            home_tenant: new.home_tenant,
            multi_tenant: new.multi_tenant,
            redirect_uris: new.redirect_uris,
            logout_url: new.logout_url,
            group_claims: new.group_membership_claims.unwrap_or_default(),
            app_roles: new.app_roles,
            identifier_uris: new
                .identifier_uris
                .unwrap_or_else(|| vec![format!("api://{client_id}")]),
            api_scopes: new.oauth2_permission_scopes,
            access_token_version: new.requested_access_token_version,
            permissions,
            secrets: vec![secret],
            certificates: Vec::new(),
            created_at: now,
            owners: BTreeSet::new(),
            lock: None,
            public_client: false,
        };
        self.grants
            .entry((app.home_tenant, client_id.clone()))
            .or_default();
        self.apps.insert(client_id.clone(), app);
        Ok(&self.apps[&client_id])
    }

    /// Registers Microsoft's first-party public client [`FIRST_PARTY_PUBLIC_CLIENT`]: owned by
    /// Microsoft's tenant (so no seeded tenant lists it among its registrations), multi-tenant,
    /// without secrets, asking for nothing until a user consents to what they request.
    pub fn add_first_party_public_client(&mut self) {
        let client_id = FIRST_PARTY_PUBLIC_CLIENT.to_string();
        let app = App {
            object_id: Uuid::new_v4(),
            client_id: client_id.clone(),
            display_name: FIRST_PARTY_PUBLIC_CLIENT_NAME.into(),
            home_tenant: MICROSOFT_TENANT,
            multi_tenant: true,
            redirect_uris: Vec::new(),
            logout_url: None,
            group_claims: GroupClaims::None,
            app_roles: Vec::new(),
            identifier_uris: Vec::new(),
            api_scopes: Vec::new(),
            access_token_version: None,
            permissions: Permissions::default(),
            secrets: Vec::new(),
            certificates: Vec::new(),
            created_at: OffsetDateTime::now_utc(),
            owners: BTreeSet::new(),
            lock: None,
            public_client: true,
        };
        self.apps.insert(client_id, app);
    }

    /// Applies `change` to a registered app; `None` if there is no such app.
    pub fn change(&mut self, client_id: &str, change: AppChange) -> Option<Result<&App, String>> {
        let app = self.apps.get_mut(client_id)?;
        let permissions = match change.permissions.map(|p| p.normalized()).transpose() {
            Ok(p) => p,
            Err(p) => return Some(Err(format!("unknown permission '{p}'"))),
        };
        if let Some(Err(e)) = change.app_roles.as_deref().map(check_roles) {
            return Some(Err(e));
        }
        if let Some(Err(e)) = change.oauth2_permission_scopes.as_deref().map(check_scopes) {
            return Some(Err(e));
        }
        if let Err(e) = check_token_version(change.requested_access_token_version) {
            return Some(Err(e));
        }
        if let Some(version) = change.requested_access_token_version {
            app.access_token_version = Some(version);
        }
        if let Some(uris) = change.identifier_uris {
            app.identifier_uris = uris;
        }
        if let Some(scopes) = change.oauth2_permission_scopes {
            app.api_scopes = scopes;
        }
        if let Some(uris) = change.redirect_uris {
            app.redirect_uris = uris;
        }
        if let Some(multi) = change.multi_tenant {
            app.multi_tenant = multi;
        }
        if let Some(url) = change.logout_url {
            app.logout_url = Some(url).filter(|u| !u.is_empty());
        }
        if let Some(groups) = change.group_membership_claims {
            app.group_claims = groups;
        }
        if let Some(roles) = change.app_roles {
            app.app_roles = roles;
        }
        if let Some(p) = permissions {
            app.permissions = p;
        }
        if let Some(days) = change.secret_expires_in_days {
            let expires_at = OffsetDateTime::now_utc() + Duration::days(days);
            for secret in &mut app.secrets {
                secret.expires_at = expires_at;
            }
        }
        Some(Ok(app))
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

    /// Assigns `user` the app role `value` of `client_id` in `tid`; the new assignment, or why not.
    pub fn assign_role(
        &mut self,
        tid: Uuid,
        client_id: &str,
        user: Uuid,
        value: &str,
    ) -> Result<RoleAssignment, AssignError> {
        let app = self.apps.get(client_id).ok_or(AssignError::NoApp)?;
        if !self.grants.contains_key(&(tid, client_id.to_string())) {
            return Err(AssignError::NoServicePrincipal);
        }
        let role = app
            .app_roles
            .iter()
            .find(|r| r.value == value && r.for_users())
            .ok_or(AssignError::NoRole)?
            .id;
        let list = self
            .role_assignments
            .entry((tid, client_id.to_string()))
            .or_default();
        if list.iter().any(|a| a.user == user && a.role == role) {
            return Err(AssignError::Exists);
        }
        let assignment = RoleAssignment {
            id: Uuid::new_v4(),
            user,
            role,
        };
        list.push(assignment.clone());
        Ok(assignment)
    }

    /// Removes assignment `id` of `client_id` in `tid`; true if there was one.
    pub fn unassign_role(&mut self, tid: Uuid, client_id: &str, id: Uuid) -> bool {
        let Some(list) = self.role_assignments.get_mut(&(tid, client_id.to_string())) else {
            return false;
        };
        let before = list.len();
        list.retain(|a| a.id != id);
        list.len() != before
    }

    /// The values of the app roles `user` holds for `client_id` in `tid`, sorted; roles since
    /// removed from the app or disabled do not count.
    pub fn roles_of(&self, tid: Uuid, client_id: &str, user: Uuid) -> Vec<String> {
        let (Some(app), Some(list)) = (
            self.apps.get(client_id),
            self.role_assignments.get(&(tid, client_id.to_string())),
        ) else {
            return Vec::new();
        };
        let held: BTreeSet<String> = list
            .iter()
            .filter(|a| a.user == user)
            .filter_map(|a| {
                app.app_roles
                    .iter()
                    .find(|r| r.id == a.role && r.for_users())
            })
            .map(|r| r.value.clone())
            .collect();
        held.into_iter().collect()
    }

    /// The app whose application ID URI (or client id) is `resource`, compared as Entra does
    /// (case-insensitively, a trailing slash ignored).
    pub fn resource(&self, resource: &str) -> Option<&App> {
        let resource = resource.trim_end_matches('/');
        self.apps.values().find(|a| {
            a.client_id.eq_ignore_ascii_case(resource)
                || a.identifier_uris
                    .iter()
                    .any(|u| u.trim_end_matches('/').eq_ignore_ascii_case(resource))
        })
    }

    /// Grants the app `client_id` the app role `value` of `resource` in `tid`.
    pub fn grant_app_role(
        &mut self,
        tid: Uuid,
        resource: &str,
        client_id: &str,
        value: &str,
    ) -> Result<AppRoleGrant, AssignError> {
        let app = self.apps.get(resource).ok_or(AssignError::NoApp)?;
        if !self.apps.contains_key(client_id) {
            return Err(AssignError::NoApp);
        }
        if !self.grants.contains_key(&(tid, resource.to_string()))
            || !self.grants.contains_key(&(tid, client_id.to_string()))
        {
            return Err(AssignError::NoServicePrincipal);
        }
        let role = app
            .app_roles
            .iter()
            .find(|r| r.value == value && r.for_apps())
            .ok_or(AssignError::NoRole)?
            .id;
        let list = self
            .app_role_grants
            .entry((tid, resource.to_string()))
            .or_default();
        if list
            .iter()
            .any(|g| g.client_id == client_id && g.role == role)
        {
            return Err(AssignError::Exists);
        }
        let grant = AppRoleGrant {
            id: Uuid::new_v4(),
            client_id: client_id.to_string(),
            role,
        };
        list.push(grant.clone());
        Ok(grant)
    }

    /// The values of the app roles of `resource` granted to the app `client_id` in `tid`, sorted;
    /// roles since removed or disabled do not count.
    pub fn app_roles_of(&self, tid: Uuid, resource: &str, client_id: &str) -> Vec<String> {
        let (Some(app), Some(list)) = (
            self.apps.get(resource),
            self.app_role_grants.get(&(tid, resource.to_string())),
        ) else {
            return Vec::new();
        };
        let held: BTreeSet<String> = list
            .iter()
            .filter(|g| g.client_id == client_id)
            .filter_map(|g| {
                app.app_roles
                    .iter()
                    .find(|r| r.id == g.role && r.for_apps())
            })
            .map(|r| r.value.clone())
            .collect();
        held.into_iter().collect()
    }

    /// Removes the permission `name` (delegated or application) from the app's tenant-wide
    /// grant in `tid`, as an admin removes one under Enterprise applications → Permissions;
    /// true if it was granted.
    pub fn remove_permission(&mut self, tid: Uuid, client_id: &str, name: &str) -> bool {
        let Some(grant) = self.grants.get_mut(&(tid, client_id.to_string())) else {
            return false;
        };
        let granted = &mut grant.tenant_wide;
        let before = granted.delegated.len() + granted.application.len();
        granted.delegated.retain(|p| !p.eq_ignore_ascii_case(name));
        granted
            .application
            .retain(|p| !p.eq_ignore_ascii_case(name));
        before != granted.delegated.len() + granted.application.len()
    }

    /// Adds a generated client secret to an app (`addPassword`), valid from `starts_at` to
    /// `expires_at`; `None` if there is no such app.
    pub fn add_password(
        &mut self,
        client_id: &str,
        display_name: Option<String>,
        starts_at: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Option<Secret> {
        let app = self.apps.get_mut(client_id)?;
        let secret = Secret {
            key_id: Uuid::new_v4(),
            // Graph's secrets are 16 to 64 characters.
            value: format!("emu~{}", crate::rng::secret_token(30)),
            starts_at,
            expires_at,
            display_name,
        };
        app.secrets.push(secret.clone());
        Some(secret)
    }

    /// Removes the client secret `key_id` of an app (`removePassword`); true if it had one.
    pub fn remove_password(&mut self, client_id: &str, key_id: Uuid) -> bool {
        let Some(app) = self.apps.get_mut(client_id) else {
            return false;
        };
        let before = app.secrets.len();
        app.secrets.retain(|s| s.key_id != key_id);
        app.secrets.len() != before
    }

    /// The object id of an app's service principal in a tenant: stable, made up from both.
    pub fn service_principal_id(tid: Uuid, client_id: &str) -> Uuid {
        let digest = Sha256::digest(format!("sp:{tid}:{client_id}").as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    /// Removes every grant of the app in `tid`; true if there was one.
    pub fn revoke(&mut self, tid: Uuid, client_id: &str) -> bool {
        self.grants.remove(&(tid, client_id.to_string())).is_some()
    }
}
