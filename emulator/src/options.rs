//! Command-line and programmatic configuration of the emulator.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser};

/// Everything the emulator can be told at start-up; `main.rs` flattens it into its CLI.
#[derive(Args, Clone, Debug)]
pub struct Options {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,

    /// Number of seeded tenants (tenant 0 is conventionally the provider's home tenant).
    #[arg(long, default_value_t = 2)]
    pub tenants: usize,

    /// Users per seeded tenant (one Global Administrator plus plain members).
    #[arg(long, default_value_t = 20)]
    pub users: usize,

    /// Groups per seeded tenant.
    #[arg(long, default_value_t = 3)]
    pub groups: usize,

    /// Memberships per seeded tenant, dealt evenly over the groups (each group about
    /// memberships / groups users, each user in about memberships / users groups; at most every
    /// user in every group). Without it group 0 has every user and the others about 30 % each.
    #[arg(long, value_name = "N")]
    pub memberships: Option<usize>,

    /// Seed for all generated data: the same seed gives the same tenants, users and passwords.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Serve HTTPS with a certificate for localhost/127.0.0.1 signed by a freshly generated CA.
    #[arg(long)]
    pub tls: bool,

    /// Where to write the CA certificate (PEM) when --tls is on.
    #[arg(long, value_name = "PATH", requires = "tls")]
    pub ca_out: Option<PathBuf>,

    /// Register the provider's multi-tenant app in tenant 0 with this client id (a GUID).
    #[arg(long, value_name = "GUID")]
    pub app_client_id: Option<String>,

    /// Client secret of the --app-client-id app (required with it).
    #[arg(
        long,
        env = "EMULATOR_APP_CLIENT_SECRET",
        hide_env_values = true,
        requires = "app_client_id"
    )]
    pub app_client_secret: Option<String>,

    /// Redirect URI of the --app-client-id app (repeat for several; matched exactly).
    #[arg(long = "app-redirect-uri", value_name = "URI")]
    pub app_redirect_uris: Vec<String>,

    /// Delegated Graph permissions the app requests (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "User.Read,User.Read.All,Group.Read.All,Organization.Read.All"
    )]
    pub app_delegated_permissions: Vec<String>,

    /// Application Graph permissions the app requests (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "User.Read.All,Group.Read.All,Organization.Read.All"
    )]
    pub app_application_permissions: Vec<String>,

    /// Display name of the --app-client-id app, shown on consent pages.
    #[arg(long, default_value = "Gangway")]
    pub app_display_name: String,

    /// Lifetime of client secrets in days (negative: already expired).
    #[arg(long, default_value_t = 730, allow_negative_numbers = true)]
    pub secret_lifetime_days: i64,

    /// Refresh tokens unused for this many seconds expire (AADSTS700082); Microsoft uses 90 days.
    #[arg(long, default_value_t = 90 * 24 * 3600)]
    pub refresh_token_inactivity_secs: u64,

    /// Lifetime of access and ID tokens in seconds.
    #[arg(long, default_value_t = 3600)]
    pub access_token_lifetime_secs: u64,

    /// Delta links older than this answer 400 syncStateNotFound; Microsoft keeps them 7 days.
    #[arg(long, default_value_t = 7 * 24 * 3600)]
    pub delta_token_lifetime_secs: u64,

    /// Default Graph page size (lists and delta rounds) when no $top or Prefer:
    /// odata.maxpagesize is given; Graph's own delta pages hold up to about 200 objects.
    #[arg(long, default_value_t = 100)]
    pub page_size: usize,

    /// Time every Graph answer (one page or one object) takes, in milliseconds, as a network
    /// and service round trip would; for realistic benchmarks.
    #[arg(long, default_value_t = 0)]
    pub graph_latency_ms: u64,

    /// Time a new admin consent (a new service principal) takes to be usable, in milliseconds:
    /// until then client-credentials requests for the app in that tenant fail with AADSTS700016.
    #[arg(long, default_value_t = 0)]
    pub consent_propagation_ms: u64,

    /// Accept plain-HTTP notification URLs for change-notification subscriptions (tests and
    /// demos on loopback); Graph itself requires HTTPS.
    #[arg(long)]
    pub notifications_over_http: bool,

    /// Graph's resource-unit limits (per app and tenant, per app across tenants) at this many
    /// times Microsoft's; 0 turns throttling off. Small values let a test reach the limits.
    #[arg(long, default_value_t = 1.0)]
    pub throttle_scale: f64,
}

#[derive(Parser)]
struct DefaultsOnly {
    #[command(flatten)]
    opts: Options,
}

impl Default for Options {
    /// The same values the CLI uses when no flag is given.
    fn default() -> Self {
        DefaultsOnly::parse_from(["entra-emulator"]).opts
    }
}
