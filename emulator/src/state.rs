//! Shared server state: configuration, the directory and registry, issued codes and tokens,
//! signing keys and fault settings.

use std::collections::{BTreeSet, HashMap};
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use uuid::Uuid;

use crate::apps::{NewApp, Permissions, Registry};
use crate::directory::{Authority, Directory};
use crate::faults::Faults;
use crate::forgeries::Forgeries;
use crate::keys::{Keys, SigningKey};
use crate::options::Options;

/// Settings fixed at start-up.
#[derive(Debug, Clone)]
pub struct Config {
    pub base_url: String,
    pub access_ttl: Duration,
    pub refresh_inactivity: Duration,
    pub delta_ttl: Duration,
    pub page_size: usize,
    pub secret_lifetime_days: i64,
}

/// How the authorize response is returned to the app.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseMode {
    Query,
    FormPost,
}

/// What a sign-in transaction is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// `/oauth2/v2.0/authorize`.
    Authorize,
    /// `/v2.0/adminconsent` (`v2` true) or legacy `/adminconsent`.
    AdminConsent { v2: bool },
}

/// An authorize or admin-consent request between its pages (keyed by the `ctx` form field).
#[derive(Clone, Debug)]
pub struct Txn {
    pub flow: Flow,
    pub authority: Authority,
    pub tenant_segment: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    /// Requested OIDC scopes (as given).
    pub oidc: BTreeSet<String>,
    /// Requested Graph permissions (short names).
    pub graph: BTreeSet<String>,
    pub code_challenge: Option<(String, String)>,
    pub response_mode: ResponseMode,
    pub prompt: Option<String>,
    pub login_hint: Option<String>,
    /// (tenant, user) once signed in.
    pub user: Option<(Uuid, Uuid)>,
}

/// An issued authorization code.
#[derive(Clone, Debug)]
pub struct Code {
    pub client_id: String,
    pub redirect_uri: String,
    pub tid: Uuid,
    pub oid: Uuid,
    pub oidc: BTreeSet<String>,
    pub graph: BTreeSet<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<(String, String)>,
    pub issued: Instant,
    pub redeemed: bool,
}

/// Why a refresh token stopped working.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revoked {
    /// The tenant's consent for the app was revoked (AADSTS65001).
    Consent,
}

/// An issued refresh token.
#[derive(Clone, Debug)]
pub struct Refresh {
    pub client_id: String,
    pub tid: Uuid,
    pub oid: Uuid,
    pub oidc: BTreeSet<String>,
    pub graph: BTreeSet<String>,
    pub issued_at: OffsetDateTime,
    pub last_used: Instant,
    pub revoked: Option<Revoked>,
}

/// An issued (opaque) access token for Graph.
#[derive(Clone, Debug)]
pub struct Access {
    pub tid: Uuid,
    /// The signed-in user for delegated tokens; `None` for app-only tokens.
    pub oid: Option<Uuid>,
    /// Delegated scopes or application roles.
    pub permissions: BTreeSet<String>,
    pub expires: Instant,
}

/// Codes, tokens, browser sessions and pending sign-ins.
#[derive(Debug, Default)]
pub struct AuthStore {
    pub txns: HashMap<String, Txn>,
    /// `ESTSAUTH` cookie value → (tenant, user).
    pub sessions: HashMap<String, (Uuid, Uuid)>,
    pub codes: HashMap<String, Code>,
    pub refresh: HashMap<String, Refresh>,
    pub access: HashMap<String, Access>,
}

/// Everything mutable behind one lock; the emulator is small enough that this is simplest.
#[derive(Debug)]
pub struct World {
    pub dir: Directory,
    pub reg: Registry,
    pub auth: AuthStore,
}

/// The state shared by every handler.
pub struct Shared {
    pub cfg: Config,
    world: Mutex<World>,
    pub keys: RwLock<Keys>,
    pub faults: Faults,
    /// A forged ID token waiting to be issued.
    pub forgeries: Forgeries,
}

/// Cheap-to-clone handle on [`Shared`].
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl Shared {
    /// Locks the world; a poisoned lock is taken over since every change is self-contained.
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl AppState {
    /// Seeds the directory, registers the command-line app and generates the first signing key.
    pub async fn new(opts: &Options, base_url: String) -> anyhow::Result<Self> {
        // Key generation overlaps with seeding.
        let key_task = tokio::task::spawn_blocking(SigningKey::generate);
        let started = Instant::now();
        let dir = Directory::seeded(opts.seed, opts.tenants, opts.users, opts.groups);
        tracing::info!(
            tenants = opts.tenants,
            users_per_tenant = opts.users,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "seeded directory"
        );
        let mut reg = Registry::default();
        if let Some(client_id) = &opts.app_client_id {
            let home = dir
                .tenants
                .first()
                .ok_or_else(|| anyhow::anyhow!("--app-client-id needs at least one tenant"))?
                .id;
            let secret = opts
                .app_client_secret
                .clone()
                .ok_or_else(|| anyhow::anyhow!("--app-client-id needs --app-client-secret"))?;
            let new = NewApp {
                home_tenant: home,
                multi_tenant: true,
                display_name: Some(opts.app_display_name.clone()),
                redirect_uris: opts.app_redirect_uris.clone(),
                permissions: Permissions {
                    delegated: opts.app_delegated_permissions.iter().cloned().collect(),
                    application: opts.app_application_permissions.iter().cloned().collect(),
                },
                secret_lifetime_days: Some(opts.secret_lifetime_days),
                client_id: Some(client_id.clone()),
                client_secret: Some(secret),
            };
            let app = reg
                .register(new, opts.secret_lifetime_days)
                .map_err(anyhow::Error::msg)?;
            tracing::info!(client_id = %app.client_id, home_tenant = %home, "registered provider app");
        }
        let cfg = Config {
            base_url,
            access_ttl: Duration::from_secs(opts.access_token_lifetime_secs),
            refresh_inactivity: Duration::from_secs(opts.refresh_token_inactivity_secs),
            delta_ttl: Duration::from_secs(opts.delta_token_lifetime_secs),
            page_size: opts.page_size.clamp(1, 999),
            secret_lifetime_days: opts.secret_lifetime_days,
        };
        Ok(Self(Arc::new(Shared {
            cfg,
            world: Mutex::new(World {
                dir,
                reg,
                auth: AuthStore::default(),
            }),
            keys: RwLock::new(Keys::new(key_task.await??)),
            faults: Faults::new(opts.seed),
            forgeries: Forgeries::default(),
        })))
    }
}
