//! Typed settings, read from the environment once at start-up.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ipnet::IpNet;
use url::Url;

use crate::crypto::{EncryptionKey, Keyring};
use crate::types::Schedule;
use crate::types::Secret;

/// Everything `gangway serve` needs. Tests and `demo` build it directly.
#[derive(Clone, Debug)]
pub struct Config {
    /// Postgres connection string.
    pub database_url: String,
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// The address customers and operators use; links and the OAuth redirect derive from it.
    pub public_url: Url,
    /// Entra ID login host (`https://login.microsoftonline.com` in production).
    pub authority: Url,
    /// Microsoft Graph host (`https://graph.microsoft.com` in production).
    pub graph_url: Url,
    /// The provider's multi-tenant app registration, when given (the first-run setup registers
    /// it otherwise).
    pub client_id: Option<String>,
    /// Its client secret, when it has one.
    pub client_secret: Option<Secret>,
    /// Seals refresh tokens, customer secrets and queued mail at rest; earlier keys still open.
    pub keys: Keyring,
    /// `smtp://user:pass@host:port` or `smtps://…`; without it mail waits in the outbox.
    pub smtp_url: Option<Secret>,
    /// Sender of invitation mail.
    pub mail_from: String,
    /// The provider's name as customers see it.
    pub provider_name: String,
    /// The provider's own tenant (`GANGWAY_PROVIDER_TENANT_ID`): seeds the System Setting on
    /// first start.
    pub provider_tenant_id: Option<crate::types::TenantId>,
    /// PEM of an extra root CA to trust for the authority and Graph (a local emulator with TLS).
    pub extra_ca_pem: Option<Vec<u8>>,
    /// Token-link opens allowed per client address: a burst, then one per `period`.
    pub link_rate: RateLimit,
    /// Operator sign-in attempts allowed per client address.
    pub sign_in_rate: RateLimit,
    /// Consent round trips allowed per client address: leaving for Microsoft and coming back
    /// each take from their own bucket.
    pub consent_rate: RateLimit,
    /// JSON API calls allowed per token and second, unless the token has its own rate
    /// (`GANGWAY_API_CALLS_PER_SECOND`): seeds the System Setting on first start.
    pub api_calls_per_second: u32,
    /// How often an API token's last use is recorded, per process ([`API_LAST_USE_EVERY`];
    /// tests shorten it).
    pub api_last_use_every: Duration,
    /// Proxies whose `X-Forwarded-For` / `Forwarded` names the client; nobody else's is believed.
    pub trusted_proxies: TrustedProxies,
    /// Database connections per process at most (`GANGWAY_DATABASE_POOL_SIZE`); none:
    /// [`default_pool_size`] for the process's sync workers.
    pub database_pool_size: Option<u32>,
    /// Directory replication: default schedule, workers, lease.
    pub sync: SyncSettings,
    /// Who may read `/metrics`.
    pub metrics: MetricsSettings,
    /// How long an admin consent is retried while Entra ID finishes setting it up
    /// (`GANGWAY_CONSENT_PROPAGATION_SECS`, default 60) before its failure is shown.
    pub consent_propagation: Duration,
    /// The public client the setup's administrator signs in with (`GANGWAY_SETUP_CLIENT_ID`,
    /// default Microsoft's "Microsoft Graph Command Line Tools").
    pub setup_client_id: String,
}

/// How long an admin consent is retried by default while Entra ID sets it up.
pub const CONSENT_PROPAGATION: Duration = Duration::from_secs(60);

/// Who may read the Prometheus `/metrics`. With neither set, the main listener serves it to
/// loopback clients only.
#[derive(Clone, Debug, Default)]
pub struct MetricsSettings {
    /// `GANGWAY_METRICS_TOKEN`: when set, `/metrics` needs `Authorization: Bearer <token>`.
    pub token: Option<Secret>,
    /// `GANGWAY_METRICS_LISTEN`: when set, `/metrics` is served on this address only, not on the
    /// portal's listener.
    pub listen: Option<SocketAddr>,
}

/// How directory syncs run.
#[derive(Clone, Debug)]
pub struct SyncSettings {
    /// The schedule of tenants without one of their own (`GANGWAY_SYNC_SCHEDULE`).
    pub schedule: Schedule,
    /// Syncs `gangway serve` runs at once (`GANGWAY_SYNC_WORKERS`; 0: none, leave it to
    /// `gangway worker` processes).
    pub workers: usize,
    /// A sync job's lease (`GANGWAY_SYNC_LEASE_SECS`): how soon another worker takes over the
    /// job of a worker that died.
    pub lease: Duration,
    /// `GANGWAY_NOTIFICATIONS_OVER_HTTP` (development only): subscribe to Graph's change
    /// notifications even though the public URL is plain HTTP, for an emulator on loopback.
    /// Graph itself delivers only over HTTPS.
    pub notifications_over_http: bool,
    /// `GANGWAY_GRAPH_BUDGET_SCALE`: the throttle budget the workers share, as a multiple of
    /// Microsoft's Graph limits (1 by default; 0 turns it off; a test lowers it to match an
    /// emulator whose limits are scaled down).
    pub graph_budget_scale: f64,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            schedule: crate::types::schedule::default_schedule(),
            workers: 2,
            lease: Duration::from_secs(60),
            notifications_over_http: false,
            graph_budget_scale: 1.0,
        }
    }
}

/// A token bucket: `burst` at once, then one more every `period`.
#[derive(Clone, Copy, Debug)]
pub struct RateLimit {
    /// Requests allowed at once.
    pub burst: u32,
    /// Time to earn one more request.
    pub period: Duration,
}

impl RateLimit {
    /// Ten sign-in attempts, then one every 30 seconds.
    pub const SIGN_IN: RateLimit = RateLimit {
        burst: 10,
        period: Duration::from_secs(30),
    };

    /// Ten consent round trips, then one every 10 seconds: a retrying admin never notices, a
    /// script replaying callbacks (each one calls Microsoft) soon does.
    pub const CONSENT: RateLimit = RateLimit {
        burst: 10,
        period: Duration::from_secs(10),
    };

    /// JSON API calls per token: five seconds' worth at once, then `per_second`.
    pub const fn api(per_second: u32) -> RateLimit {
        let per_second = if per_second == 0 { 1 } else { per_second };
        RateLimit {
            burst: per_second.saturating_mul(5),
            period: Duration::from_nanos(1_000_000_000 / per_second as u64),
        }
    }
}

impl Default for RateLimit {
    /// Ten link opens, then one every 6 seconds.
    fn default() -> Self {
        Self {
            burst: 10,
            period: Duration::from_secs(6),
        }
    }
}

/// The proxies (addresses or CIDR blocks) in front of the portal, none by default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses a comma-separated list such as `10.0.0.0/8, 192.0.2.7, 2001:db8::/48`, naming
    /// every entry that is neither an IP address nor a CIDR block.
    pub fn parse(value: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        let mut bad = Vec::new();
        for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            match entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
            {
                Ok(net) => nets.push(net.trunc()),
                Err(_) => bad.push(format!("`{entry}`")),
            }
        }
        if bad.is_empty() {
            Ok(Self(nets))
        } else {
            Err(format!(
                "{} is not an IP address or CIDR block such as 10.0.0.0/8",
                bad.join(", ")
            ))
        }
    }

    /// Whether `addr` is one of the proxies.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        self.0.iter().any(|net| net.contains(&addr))
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A process's database connections when `GANGWAY_DATABASE_POOL_SIZE` is unset: ten for
/// requests, mail and webhooks, and one per sync worker — a sync holds a connection only while
/// it writes a page, so with fewer, runs mostly wait for one while Graph has answered.
pub fn default_pool_size(sync_workers: usize) -> u32 {
    crate::db::DEFAULT_POOL_SIZE + u32::try_from(sync_workers).unwrap_or(u32::MAX - 10)
}

impl Config {
    /// The pool size for a process running `sync_workers` syncs at once.
    pub fn pool_size(&self, sync_workers: usize) -> u32 {
        self.database_pool_size
            .unwrap_or_else(|| default_pool_size(sync_workers))
    }

    /// The setup's device-code sign-in to `tenant`, as its public client.
    pub fn setup_login(
        &self,
        tenant: crate::types::TenantId,
    ) -> crate::setup::sign_in::DeviceLogin {
        crate::setup::sign_in::DeviceLogin {
            authority: self.authority.clone(),
            tenant,
            client_id: self.setup_client_id.clone(),
        }
    }

    /// What the environment offers the stored settings on first start.
    pub fn settings_seed(&self) -> crate::settings::Seed {
        crate::settings::Seed {
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.clone(),
            provider_tenant_id: self.provider_tenant_id,
            provider_name: self.provider_name.clone(),
            default_schedule: self.sync.schedule.clone(),
            api_calls_per_second: self.api_calls_per_second,
        }
    }

    /// Cookies are `Secure` unless the portal is plain HTTP on loopback (local development).
    pub fn secure_cookies(&self) -> bool {
        self.public_url.scheme() == "https"
    }

    /// Where Microsoft sends the admin back.
    pub fn redirect_uri(&self) -> Url {
        self.public_url
            .join("authenticate/OAuth2Callback")
            .expect("a fixed relative path joins")
    }

    /// Reads the configuration from the environment, reporting every missing or malformed
    /// value at once.
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut env = Env::default();
        let database_url = env.required("DATABASE_URL", |v| Ok(v.to_owned()));
        let listen = env.optional("GANGWAY_LISTEN", "127.0.0.1:8080", |v| {
            v.parse::<SocketAddr>()
                .map_err(|_| "must be an address such as 0.0.0.0:8080".into())
        });
        let public_url = env.required("GANGWAY_PUBLIC_URL", parse_public_url);
        let authority = env.optional(
            "GANGWAY_AUTHORITY",
            "https://login.microsoftonline.com",
            parse_base_url,
        );
        let graph_url = env.optional(
            "GANGWAY_GRAPH_URL",
            "https://graph.microsoft.com",
            parse_base_url,
        );
        let client_id = env.maybe("GANGWAY_CLIENT_ID", |v| {
            uuid::Uuid::parse_str(v).map(|_| v.to_owned()).map_err(|_| {
                "must be the app registration's Application (client) ID, a GUID".into()
            })
        });
        let client_secret = env.maybe("GANGWAY_CLIENT_SECRET", |v| Ok(Secret::new(v)));
        if matches!((&client_id, &client_secret), (Some(None), Some(Some(_)))) {
            env.problem(
                "GANGWAY_CLIENT_SECRET",
                "is a secret of the app GANGWAY_CLIENT_ID names: set both, or neither and run the setup",
            );
        }
        let encryption_key = env.required("GANGWAY_ENCRYPTION_KEY", |v| {
            EncryptionKey::from_base64(v).map_err(|e| e.to_string())
        });
        let previous_keys = env.maybe("GANGWAY_PREVIOUS_ENCRYPTION_KEYS", |v| {
            v.split(',')
                .map(|k| {
                    EncryptionKey::from_base64(k)
                        .map_err(|e| format!("each comma-separated key {e}"))
                })
                .collect::<Result<Vec<_>, _>>()
        });
        let smtp_url = env.maybe("GANGWAY_SMTP_URL", |v| {
            lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(v)
                .map(|_| Secret::new(v))
                .map_err(|_| {
                    "must look like smtp://user:password@host:587 or smtps://host:465".into()
                })
        });
        let mail_from = env.optional("GANGWAY_MAIL_FROM", "Gangway <onboarding@localhost>", |v| {
            v.parse::<lettre::message::Mailbox>()
                .map(|_| v.to_owned())
                .map_err(|_| {
                    "must be a mailbox such as `Acme Onboarding <onboarding@acme.example>`".into()
                })
        });
        let provider_name = env.optional("GANGWAY_PROVIDER_NAME", "Gangway", |v| Ok(v.to_owned()));
        let provider_tenant_id = env.maybe("GANGWAY_PROVIDER_TENANT_ID", |v| {
            crate::types::TenantId::parse(v).map_err(|_| {
                "must be your tenant's ID, a GUID (Entra admin center → Overview → Tenant ID)"
                    .into()
            })
        });
        let extra_ca_pem = env.maybe("GANGWAY_EXTRA_CA_FILE", |v| {
            std::fs::read(v).map_err(|e| format!("cannot read {v}: {e}"))
        });
        let api_calls_per_second = env.optional(API_RATE_VAR, "20", parse_api_rate);
        let trusted_proxies = env.optional("GANGWAY_TRUSTED_PROXIES", "", TrustedProxies::parse);
        let database_pool_size = env.maybe("GANGWAY_DATABASE_POOL_SIZE", |v| {
            v.parse::<u32>()
                .ok()
                .filter(|n| (2..=1000).contains(n))
                .ok_or_else(|| "must be a number of connections from 2 to 1000".into())
        });
        let defaults = SyncSettings::default();
        let sync_schedule = env.maybe("GANGWAY_SYNC_SCHEDULE", |v| {
            v.parse::<Schedule>().map_err(|e| e.to_string())
        });
        let sync_workers = env.maybe("GANGWAY_SYNC_WORKERS", |v| {
            v.parse::<usize>()
                .ok()
                .filter(|n| *n <= 64)
                .ok_or_else(|| "must be a number of workers from 0 to 64".into())
        });
        let sync_lease = env.maybe("GANGWAY_SYNC_LEASE_SECS", |v| {
            v.parse::<u64>()
                .ok()
                .filter(|n| (1..=3600).contains(n))
                .map(Duration::from_secs)
                .ok_or_else(|| "must be a number of seconds from 1 to 3600".into())
        });
        let notifications_over_http = env.maybe("GANGWAY_NOTIFICATIONS_OVER_HTTP", |v| match v {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err("must be true or false".into()),
        });
        let graph_budget_scale = env.maybe("GANGWAY_GRAPH_BUDGET_SCALE", |v| {
            v.parse::<f64>()
                .ok()
                .filter(|n| (0.0..=10.0).contains(n))
                .ok_or_else(|| "must be a number from 0 (off) to 10".into())
        });
        let metrics_token = env.maybe("GANGWAY_METRICS_TOKEN", |v| {
            if v.len() < 16 {
                Err("must be at least 16 characters (e.g. openssl rand -hex 32)".into())
            } else {
                Ok(Secret::new(v))
            }
        });
        let metrics_listen = env.maybe("GANGWAY_METRICS_LISTEN", |v| {
            v.parse::<SocketAddr>()
                .map_err(|_| "must be an address and port, like 127.0.0.1:9100".into())
        });
        let consent_propagation = env.maybe("GANGWAY_CONSENT_PROPAGATION_SECS", |v| {
            v.parse::<u64>()
                .ok()
                .filter(|n| *n <= 600)
                .map(Duration::from_secs)
                .ok_or_else(|| "must be a number of seconds from 0 to 600".into())
        });
        let setup_client_id = env.optional(
            "GANGWAY_SETUP_CLIENT_ID",
            crate::setup::sign_in::DEFAULT_SETUP_CLIENT_ID,
            |v| {
                uuid::Uuid::parse_str(v)
                    .map(|_| v.to_owned())
                    .map_err(|_| "must be a public client's Application (client) ID, a GUID".into())
            },
        );
        env.finish()?;
        Ok(Self {
            database_url: database_url.unwrap(),
            listen: listen.unwrap(),
            public_url: public_url.unwrap(),
            authority: authority.unwrap(),
            graph_url: graph_url.unwrap(),
            client_id: client_id.unwrap(),
            client_secret: client_secret.unwrap(),
            keys: Keyring::new(
                encryption_key.unwrap(),
                previous_keys.unwrap().unwrap_or_default(),
            ),
            smtp_url: smtp_url.unwrap(),
            mail_from: mail_from.unwrap(),
            provider_name: provider_name.unwrap(),
            provider_tenant_id: provider_tenant_id.unwrap(),
            extra_ca_pem: extra_ca_pem.unwrap(),
            link_rate: RateLimit::default(),
            sign_in_rate: RateLimit::SIGN_IN,
            consent_rate: RateLimit::CONSENT,
            api_calls_per_second: api_calls_per_second.unwrap(),
            api_last_use_every: API_LAST_USE_EVERY,
            trusted_proxies: trusted_proxies.unwrap(),
            database_pool_size: database_pool_size.flatten(),
            sync: SyncSettings {
                schedule: sync_schedule.unwrap().unwrap_or(defaults.schedule),
                workers: sync_workers.unwrap().unwrap_or(defaults.workers),
                lease: sync_lease.unwrap().unwrap_or(defaults.lease),
                notifications_over_http: notifications_over_http.unwrap().unwrap_or(false),
                graph_budget_scale: graph_budget_scale
                    .unwrap()
                    .unwrap_or(defaults.graph_budget_scale),
            },
            metrics: MetricsSettings {
                token: metrics_token.unwrap(),
                listen: metrics_listen.unwrap(),
            },
            consent_propagation: consent_propagation.unwrap().unwrap_or(CONSENT_PROPAGATION),
            setup_client_id: setup_client_id.unwrap(),
        })
    }
}

/// Reads `DATABASE_URL` alone, for commands that need nothing else.
pub fn database_url_from_env() -> Result<String, ConfigError> {
    let mut env = Env::default();
    let url = env.required("DATABASE_URL", |v| Ok(v.to_owned()));
    env.finish()?;
    Ok(url.unwrap())
}

/// Reads `GANGWAY_API_CALLS_PER_SECOND` alone, for `gangway demo`, which configures the rest
/// itself.
pub fn api_rate_from_env() -> Result<u32, ConfigError> {
    let mut env = Env::default();
    let rate = env.optional(API_RATE_VAR, "20", parse_api_rate);
    env.finish()?;
    Ok(rate.unwrap())
}

/// How often an API token's last use is recorded, per process: the console's "last used" is
/// at most this late, and reads do not write per request.
pub const API_LAST_USE_EVERY: Duration = Duration::from_secs(60);

const API_RATE_VAR: &str = "GANGWAY_API_CALLS_PER_SECOND";

fn parse_api_rate(value: &str) -> Result<u32, String> {
    value
        .parse::<u32>()
        .ok()
        .filter(|n| (1..=crate::api_tokens::MAX_CALLS_PER_SECOND).contains(n))
        .ok_or_else(|| "must be a number of calls per second from 1 to 100000".into())
}

/// Every configuration problem found, one line each.
#[derive(Debug, thiserror::Error)]
#[error("configuration is incomplete:\n{}", .0.join("\n"))]
pub struct ConfigError(pub Vec<String>);

/// Collects problems instead of stopping at the first.
#[derive(Default)]
struct Env {
    problems: Vec<String>,
}

impl Env {
    fn maybe<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<Option<T>> {
        match std::env::var(name) {
            Ok(v) if !v.trim().is_empty() => match parse(v.trim()) {
                Ok(value) => Some(Some(value)),
                Err(why) => {
                    self.problems.push(format!("  {name}: {why}"));
                    None
                }
            },
            _ => Some(None),
        }
    }

    fn required<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        match self.maybe(name, parse)? {
            Some(value) => Some(value),
            None => {
                self.problems
                    .push(format!("  {name}: is not set (see .env.example)"));
                None
            }
        }
    }

    fn optional<T>(
        &mut self,
        name: &str,
        default: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        match self.maybe(name, &parse)? {
            Some(value) => Some(value),
            None => Some(parse(default).expect("defaults are valid")),
        }
    }

    fn problem(&mut self, name: &str, why: &str) {
        self.problems.push(format!("  {name}: {why}"));
    }

    fn finish(self) -> Result<(), ConfigError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError(self.problems))
        }
    }
}

fn parse_base_url(value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|_| "must be an absolute http(s) URL".to_owned())?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("must be an absolute http(s) URL".into());
    }
    Ok(url)
}

/// The public URL must be HTTPS, except plain HTTP on loopback for local development.
pub fn parse_public_url(value: &str) -> Result<Url, String> {
    let mut url = parse_base_url(value)?;
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    if url.scheme() != "https" && !loopback {
        return Err("must be https:// (plain http is allowed only on localhost)".into());
    }
    if !url.path().ends_with('/') {
        url.set_path(&format!("{}/", url.path()));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_secure_whenever_the_portal_is_https() {
        let local = parse_public_url("http://127.0.0.1:8080").unwrap();
        let mut cfg = Config {
            database_url: String::new(),
            listen: "127.0.0.1:8080".parse().unwrap(),
            public_url: local,
            authority: parse_base_url("https://login.microsoftonline.com").unwrap(),
            graph_url: parse_base_url("https://graph.microsoft.com").unwrap(),
            client_id: Some(uuid::Uuid::nil().to_string()),
            client_secret: Some(Secret::new("s")),
            keys: EncryptionKey::from_base64(&EncryptionKey::generate_base64())
                .unwrap()
                .into(),
            smtp_url: None,
            mail_from: String::new(),
            provider_name: String::new(),
            provider_tenant_id: None,
            extra_ca_pem: None,
            link_rate: RateLimit::default(),
            sign_in_rate: RateLimit::SIGN_IN,
            consent_rate: RateLimit::CONSENT,
            api_calls_per_second: 20,
            api_last_use_every: API_LAST_USE_EVERY,
            trusted_proxies: TrustedProxies::default(),
            database_pool_size: None,
            sync: SyncSettings::default(),
            metrics: MetricsSettings::default(),
            consent_propagation: CONSENT_PROPAGATION,
            setup_client_id: crate::setup::sign_in::DEFAULT_SETUP_CLIENT_ID.into(),
        };
        assert!(!cfg.secure_cookies());
        cfg.public_url = parse_public_url("https://portal.example.com").unwrap();
        assert!(cfg.secure_cookies());
        assert_eq!(
            cfg.redirect_uri().as_str(),
            "https://portal.example.com/authenticate/OAuth2Callback"
        );
    }

    #[test]
    fn trusted_proxies_take_addresses_and_blocks_and_name_every_bad_entry() {
        let proxies = TrustedProxies::parse(" 10.0.0.0/8, 192.0.2.7 ,2001:db8::/48,").unwrap();
        for trusted in [
            "10.1.2.3",
            "192.0.2.7",
            "2001:db8:0:ffff::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(proxies.contains(trusted.parse().unwrap()), "{trusted}");
        }
        for untrusted in ["11.0.0.1", "192.0.2.8", "2001:db9::1"] {
            assert!(!proxies.contains(untrusted.parse().unwrap()), "{untrusted}");
        }
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        let why = TrustedProxies::parse("10.0.0.0/8, proxy.internal, 10.0.0.0/33").unwrap_err();
        assert!(
            why.contains("`proxy.internal`") && why.contains("`10.0.0.0/33`"),
            "{why}"
        );
    }

    #[test]
    fn the_pool_holds_ten_connections_and_one_per_sync_worker() {
        assert_eq!(default_pool_size(0), 10);
        assert_eq!(default_pool_size(64), 74);
    }

    #[test]
    fn api_rate_is_five_seconds_of_calls_at_once_then_the_given_rate() {
        assert_eq!(parse_api_rate("20"), Ok(20));
        let rate = RateLimit::api(20);
        assert_eq!((rate.burst, rate.period), (100, Duration::from_millis(50)));
        let fast = RateLimit::api(parse_api_rate("10000").unwrap());
        assert_eq!(
            (fast.burst, fast.period),
            (50_000, Duration::from_micros(100))
        );
        for bad in ["0", "-1", "fast", "100001"] {
            assert!(parse_api_rate(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn public_url_requires_https_off_loopback() {
        assert!(parse_public_url("http://portal.example.com").is_err());
        assert_eq!(
            parse_public_url("http://127.0.0.1:8080").unwrap().as_str(),
            "http://127.0.0.1:8080/"
        );
        assert_eq!(
            parse_public_url("https://portal.example.com/onboard")
                .unwrap()
                .as_str(),
            "https://portal.example.com/onboard/"
        );
    }
}
