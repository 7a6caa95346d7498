//! Shared server state: configuration, the directory and registry, issued codes and tokens,
//! signing keys and fault settings.

use std::collections::{BTreeSet, HashMap};
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use time::OffsetDateTime;
use uuid::Uuid;

use crate::apps::{NewApp, Permissions, Registry};
use crate::control::faults::Faults;
use crate::directory::{Authority, Directory};
use crate::graph::service_principals::Assignment;
use crate::graph::subscriptions::Subscriptions;
use crate::graph::throttle::Throttle;
use crate::login::forgeries::Forgeries;
use crate::login::keys::{Keys, SigningKey};
use crate::options::Options;

/// Settings fixed at start-up.
#[derive(Debug, Clone)]
pub struct Config {
    /// Authority and Graph base, no trailing slash.
    pub base_url: String,
    /// Access and ID token lifetime.
    pub access_ttl: Duration,
    /// Idle time after which refresh tokens fail.
    pub refresh_inactivity: Duration,
    /// Age after which delta links answer 400 `syncStateNotFound`.
    pub delta_ttl: Duration,
    /// Default client-secret lifetime.
    pub secret_lifetime_days: i64,
}

/// How Graph answers when nothing is wrong: the default page size and the time each answer
/// (one page or one object) takes. Set at start-up, changeable through the admin API.
#[derive(Debug)]
pub struct GraphSettings {
    latency_ms: AtomicU64,
    page_size: AtomicUsize,
    members_per_slice: AtomicUsize,
}

/// Members a group carries in one `members@delta` slice unless set otherwise; Microsoft does
/// not say how many, only that a large group repeats across pages with other slices.
pub const MEMBERS_PER_SLICE: usize = 100;

impl GraphSettings {
    fn new(latency_ms: u64, page_size: usize) -> Self {
        Self {
            latency_ms: AtomicU64::new(latency_ms),
            page_size: AtomicUsize::new(page_size.clamp(1, 999)),
            members_per_slice: AtomicUsize::new(MEMBERS_PER_SLICE),
        }
    }

    /// The most `members@delta` entries a group carries in one page; a group with more
    /// changes comes back on the following pages with the next slices (delta-query-groups,
    /// "Paging through members in a large group").
    pub fn members_per_slice(&self) -> usize {
        self.members_per_slice.load(Ordering::Relaxed)
    }

    /// Time every Graph answer takes.
    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms.load(Ordering::Relaxed))
    }

    /// Page size of lists and delta rounds without `$top` or `Prefer: odata.maxpagesize`.
    pub fn page_size(&self) -> usize {
        self.page_size.load(Ordering::Relaxed)
    }

    /// Changes what is given; the page size is kept within Graph's 1..=999.
    pub fn set(
        &self,
        latency_ms: Option<u64>,
        page_size: Option<usize>,
        members_per_slice: Option<usize>,
    ) {
        if let Some(ms) = latency_ms {
            self.latency_ms.store(ms, Ordering::Relaxed);
        }
        if let Some(n) = members_per_slice {
            self.members_per_slice.store(n.max(1), Ordering::Relaxed);
        }
        if let Some(size) = page_size {
            self.page_size.store(size.clamp(1, 999), Ordering::Relaxed);
        }
    }
}

/// How long a new service principal (the first admin consent of an app in a tenant) takes to
/// be usable: until then client-credentials requests for it fail with AADSTS700016, as a
/// freshly consented app's can at Microsoft for a short while.
pub struct Propagation {
    delay_ms: AtomicU64,
}

impl Propagation {
    fn new(delay_ms: u64) -> Self {
        Self {
            delay_ms: AtomicU64::new(delay_ms),
        }
    }

    /// The delay given to consents from now on.
    pub fn delay(&self) -> Duration {
        Duration::from_millis(self.delay_ms.load(Ordering::Relaxed))
    }

    /// Changes the delay of later consents (earlier ones keep theirs).
    pub fn set(&self, delay_ms: u64) {
        self.delay_ms.store(delay_ms, Ordering::Relaxed);
    }
}

/// How the authorize response is returned to the app.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseMode {
    /// 302 to the redirect URI with a query string.
    Query,
    /// An auto-submitting HTML form.
    FormPost,
}

/// What a sign-in transaction is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// `/oauth2/v2.0/authorize`.
    Authorize,
    /// `/v2.0/adminconsent` (`v2` true) or legacy `/adminconsent`.
    AdminConsent { v2: bool },
    /// The user's half of a device authorization grant: signed in and consented at the
    /// verification page, the answer goes to the device code ([`Txn::device_code`]), not to a
    /// redirect URI.
    Device,
}

/// An authorize or admin-consent request between its pages (keyed by the `ctx` form field).
#[derive(Clone, Debug)]
pub struct Txn {
    /// Authorize or admin consent.
    pub flow: Flow,
    /// Which users may sign in.
    pub authority: Authority,
    /// The `{tenant}` path segment as the app sent it.
    pub tenant_segment: String,
    /// The app.
    pub client_id: String,
    /// Verified redirect URI.
    pub redirect_uri: String,
    /// Echoed back to the app.
    pub state: Option<String>,
    /// Copied into the ID token.
    pub nonce: Option<String>,
    /// Requested OIDC scopes (as given).
    pub oidc: BTreeSet<String>,
    /// Requested Graph permissions (short names).
    pub graph: BTreeSet<String>,
    /// Requested scopes of an API an app exposes, in full (`api://{id}/Gangway.Manage`).
    pub api: BTreeSet<String>,
    /// PKCE (challenge, method).
    pub code_challenge: Option<(String, String)>,
    /// How to answer.
    pub response_mode: ResponseMode,
    /// `prompt` parameter.
    pub prompt: Option<String>,
    /// Pre-fills the sign-in name.
    pub login_hint: Option<String>,
    /// The tenant a `domain_hint` named on `organizations`/`common`: the user is looked up
    /// there, not discovered from the name they type.
    pub realm: Option<usize>,
    /// (tenant, user) once signed in.
    pub user: Option<(Uuid, Uuid)>,
    /// The browser session (`ESTSAUTH` value) the user signed in with, once signed in.
    pub session: Option<String>,
    /// The device code a [`Flow::Device`] sign-in answers.
    pub device_code: Option<String>,
}

/// An issued authorization code.
#[derive(Clone, Debug)]
pub struct Code {
    /// App it was issued to.
    pub client_id: String,
    /// The authority (`{tenant}` path) it was requested on: it is redeemed there or nowhere.
    pub authority: Authority,
    /// Must be sent again when redeeming.
    pub redirect_uri: String,
    /// Signed-in user's tenant.
    pub tid: Uuid,
    /// Signed-in user.
    pub oid: Uuid,
    /// OIDC scopes granted.
    pub oidc: BTreeSet<String>,
    /// Graph permissions granted.
    pub graph: BTreeSet<String>,
    /// Scopes of an exposed API granted, in full (`api://{id}/Gangway.Manage`).
    pub api: BTreeSet<String>,
    /// For the ID token.
    pub nonce: Option<String>,
    /// PKCE (challenge, method).
    pub code_challenge: Option<(String, String)>,
    /// The browser session's `sid`, for the ID token.
    pub sid: Option<String>,
    /// Codes live 10 minutes.
    pub issued: Instant,
    /// Codes are single use.
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
    /// App it was issued to.
    pub client_id: String,
    /// User's tenant.
    pub tid: Uuid,
    /// User.
    pub oid: Uuid,
    /// OIDC scopes.
    pub oidc: BTreeSet<String>,
    /// Graph permissions.
    pub graph: BTreeSet<String>,
    /// Scopes of an exposed API, in full: when present, access tokens are for that API.
    pub api: BTreeSet<String>,
    /// For the 700082 message.
    pub issued_at: OffsetDateTime,
    /// Inactivity is measured from here.
    pub last_used: Instant,
    /// Set when revoked.
    pub revoked: Option<Revoked>,
    /// The browser session's `sid` the grant started in (ID tokens keep carrying it).
    pub sid: Option<String>,
}

/// An issued (opaque) access token for Graph.
#[derive(Clone, Debug)]
pub struct Access {
    /// Tenant whose Graph data the token reads.
    pub tid: Uuid,
    /// The signed-in user for delegated tokens; `None` for app-only tokens.
    pub oid: Option<Uuid>,
    /// The client id of the app the token was issued to (Graph's `appid` claim): app-only
    /// callers manage the apps their service principal owns, and Graph throttles per app.
    pub client_id: String,
    /// Delegated scopes or application roles.
    pub permissions: BTreeSet<String>,
    /// Graph answers 401 after this.
    pub expires: Instant,
}

/// A browser's sign-in at the emulator (the `ESTSAUTH` cookie).
#[derive(Clone, Debug)]
pub struct BrowserSession {
    /// The user's tenant.
    pub tid: Uuid,
    /// The user.
    pub oid: Uuid,
    /// The session id ID tokens carry in `sid` (a GUID, as Microsoft's), for front-channel logout.
    pub sid: String,
    /// Apps that received a code in this session, in order: signing out notifies their
    /// front-channel logout URLs.
    pub apps: Vec<String>,
}

/// Where a device authorization request stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceAnswer {
    /// The user has not finished signing in at the verification page.
    Pending,
    /// The user declined (or could not grant) the consent.
    Declined,
    /// The user (tenant, user) signed in and consented; the next poll gets the tokens (and the
    /// device code is spent).
    Approved(Uuid, Uuid),
}

/// A device authorization request (`/oauth2/v2.0/devicecode`).
#[derive(Clone, Debug)]
pub struct DeviceCode {
    /// The app that asked.
    pub client_id: String,
    /// The authority (`{tenant}` path) it was requested on: polled there, signed in there.
    pub authority: Authority,
    /// That path segment as the app sent it.
    pub tenant_segment: String,
    /// What the user types at the verification page.
    pub user_code: String,
    /// Requested OIDC scopes.
    pub oidc: BTreeSet<String>,
    /// Requested Graph permissions (short names).
    pub graph: BTreeSet<String>,
    /// When both codes die (`expires_in` after the request).
    pub expires: Instant,
    /// Where the user is.
    pub answer: DeviceAnswer,
}

/// Codes, tokens, browser sessions and pending sign-ins.
#[derive(Debug, Default)]
pub struct AuthStore {
    /// Pending sign-ins by `ctx`.
    pub txns: HashMap<String, Txn>,
    /// `ESTSAUTH` cookie value → the session.
    pub sessions: HashMap<String, BrowserSession>,
    /// Authorization codes.
    pub codes: HashMap<String, Code>,
    /// Refresh tokens.
    pub refresh: HashMap<String, Refresh>,
    /// Access tokens.
    pub access: HashMap<String, Access>,
    /// Device authorization requests by `device_code`.
    pub devices: HashMap<String, DeviceCode>,
    /// `jti` of the client assertions accepted, by (client id, jti), until they expire (Unix
    /// time): each is used once.
    pub assertion_ids: HashMap<(String, String), i64>,
}

/// Everything mutable behind one lock; the emulator is small enough that this is simplest.
#[derive(Debug)]
pub struct World {
    /// Tenants, users, groups.
    pub dir: Directory,
    /// Apps and consents.
    pub reg: Registry,
    /// Codes, tokens, sessions.
    pub auth: AuthStore,
    /// Users and groups assigned to enterprise apps with default access, keyed by (tenant id,
    /// client id).
    pub assignments: HashMap<(Uuid, String), Vec<Assignment>>,
}

/// The state shared by every handler.
pub struct Shared {
    /// Start-up settings.
    pub cfg: Config,
    world: Mutex<World>,
    /// ID-token signing keys.
    pub keys: RwLock<Keys>,
    /// Page size and latency of Graph answers.
    pub graph: GraphSettings,
    /// How long new consents take to be usable.
    pub propagation: Propagation,
    /// Fault injection.
    pub faults: Faults,
    /// Graph's resource-unit limits.
    pub throttle: Throttle,
    /// A forged ID token waiting to be issued.
    pub forgeries: Forgeries,
    /// Change-notification subscriptions.
    pub subscriptions: Subscriptions,
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
        let dir = Directory::seeded(
            opts.seed,
            opts.tenants,
            opts.users,
            opts.groups,
            opts.memberships,
        );
        tracing::info!(
            tenants = opts.tenants,
            users_per_tenant = opts.users,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "seeded directory"
        );
        let mut reg = Registry::default();
        reg.add_first_party_public_client();
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
                logout_url: None,
                group_membership_claims: None,
                app_roles: Vec::new(),
                identifier_uris: None,
                oauth2_permission_scopes: Vec::new(),
                requested_access_token_version: None,
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
            secret_lifetime_days: opts.secret_lifetime_days,
        };
        Ok(Self(Arc::new(Shared {
            cfg,
            world: Mutex::new(World {
                dir,
                reg,
                auth: AuthStore::default(),
                assignments: HashMap::new(),
            }),
            keys: RwLock::new(Keys::new(key_task.await??)),
            graph: GraphSettings::new(opts.graph_latency_ms, opts.page_size),
            propagation: Propagation::new(opts.consent_propagation_ms),
            faults: Faults::new(opts.seed),
            throttle: Throttle::new(opts.throttle_scale),
            forgeries: Forgeries::default(),
            subscriptions: Subscriptions::new(opts.notifications_over_http),
        })))
    }
}
