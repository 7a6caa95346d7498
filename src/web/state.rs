//! What handlers share: the database, configuration, the live System Settings (with the Entra
//! ID client they name), the Graph client, rate limits, checked API tokens.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;

use super::limits::Limits;
use super::paths;
use crate::api_tokens::TokenCache;
use crate::config::Config;
use crate::directory::budget::Budget;
use crate::directory::credentials::TokenSource;
use crate::directory::subscriptions::{Endpoint, Keeper};
use crate::directory::sync::{RetryPolicy, Syncer};
use crate::graph::GraphClient;
use crate::identity::EntraEndpoints;
use crate::invitations;
use crate::settings::{Live, SettingsCache, SettingsError};

/// How stale another process's settings change may be here.
const SETTINGS_TTL: Duration = Duration::from_secs(2);

/// What handlers share: one `Arc`, so the clones axum makes for every request and extractor
/// cost one atomic increment (cloning each field's handles was a tenth of a cheap request).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

// Extractors that need only the configuration (the client's address) take it from the state.
impl axum::extract::FromRef<AppState> for Arc<Config> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.cfg)
    }
}

/// What [`AppState`] holds.
pub struct Shared {
    /// The database.
    pub db: PgPool,
    /// The settings.
    pub cfg: Arc<Config>,
    /// The System Settings, read again every few seconds.
    pub settings: SettingsCache,
    /// Microsoft Graph.
    pub graph: GraphClient,
    /// The HTTP client for Entra ID and Graph ([`http_client`]).
    pub http: reqwest::Client,
    /// Per-client rate limits.
    pub limits: Arc<Limits>,
    /// API tokens checked in the last seconds, and when their use was last recorded.
    pub api_tokens: Arc<TokenCache>,
    /// Graph's throttle budget, shared with every other process through the database.
    pub budget: Budget,
}

impl AppState {
    /// What checks a tenant's consent against its permission profile.
    pub fn consent_checker(&self) -> crate::consent::drift::Checker {
        crate::consent::drift::Checker {
            db: self.db.clone(),
            keys: self.cfg.keys.clone(),
            settings: self.settings.clone(),
            graph: self.graph.clone(),
            budget: self.budget.clone(),
        }
    }

    /// State for `cfg` over `db`.
    pub fn new(cfg: Config, db: PgPool) -> anyhow::Result<Self> {
        // Before any request or sync is counted (installed once per process).
        crate::metrics::handle();
        let http = http_client(&cfg)?;
        // The app's credentials come from the stored settings.
        let entra = EntraEndpoints {
            authority: cfg.authority.clone(),
            graph_url: cfg.graph_url.clone(),
            redirect_uri: cfg.redirect_uri(),
        };
        let settings = SettingsCache::new(
            db.clone(),
            cfg.keys.clone(),
            entra,
            http.clone(),
            SETTINGS_TTL,
        );
        let budget = Budget::new(db.clone(), cfg.sync.graph_budget_scale);
        // Every call to a customer's tenant counts against the budget the workers share.
        let graph = GraphClient::new(cfg.graph_url.clone(), http.clone())
            .with_meter(Arc::new(budget.clone()));
        Ok(Self(Arc::new(Shared {
            http,
            budget,
            db,
            settings,
            graph,
            limits: Arc::new(Limits::new(&cfg)),
            api_tokens: Arc::new(TokenCache::new(cfg.api_last_use_every)),
            cfg: Arc::new(cfg),
        })))
    }

    /// The settings now, with the Entra client they name.
    pub async fn live(&self) -> Result<Arc<Live>, SettingsError> {
        self.settings.current().await
    }

    /// The sync engine over this state's database, Graph client and tokens.
    pub fn syncer(&self) -> Syncer {
        let tokens = TokenSource::new(
            self.db.clone(),
            self.cfg.keys.clone(),
            self.settings.clone(),
        );
        Syncer::new(
            self.db.clone(),
            self.graph.clone(),
            tokens,
            RetryPolicy::default(),
        )
        .with_budget(self.budget.clone())
    }

    /// What keeps the tenants' change-notification subscriptions; it keeps none when Graph
    /// cannot deliver to the public URL.
    pub fn subscriptions(&self) -> Keeper {
        let endpoint = Endpoint::at(
            &self.cfg.public_url,
            paths::GRAPH_NOTIFICATIONS,
            paths::GRAPH_LIFECYCLE,
            self.cfg.sync.notifications_over_http,
        );
        Keeper::new(self.syncer(), endpoint)
    }

    /// What invitation links and mail need, with the provider as `live` presents it.
    pub fn invitation_context<'a>(&'a self, live: &'a Live) -> invitations::Context<'a> {
        invitations::Context {
            public_url: &self.cfg.public_url,
            brand: &live.settings.branding,
            keys: &self.cfg.keys,
        }
    }
}

/// The HTTP client for Entra ID and Graph: it follows no redirects (no SSRF through a
/// redirecting endpoint) and trusts an extra CA when one is configured.
pub fn http_client(cfg: &Config) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("Gangway/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = &cfg.extra_ca_pem {
        for cert in reqwest::Certificate::from_pem_bundle(pem)
            .context("GANGWAY_EXTRA_CA_FILE holds no PEM certificate")?
        {
            builder = builder.add_root_certificate(cert);
        }
    }
    Ok(builder.build()?)
}
