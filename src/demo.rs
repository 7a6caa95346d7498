//! `gangway demo`: everything needed to try an onboarding on one machine — the database (on a
//! private PostgreSQL server when none runs), the built-in Entra ID emulator, a configured
//! portal, a demo operator, and the environment that points the CLI at it.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;
use entra_emulator::{Emulator, EmulatorAdmin, Options};
use serde_json::json;
use tokio::net::TcpListener;
use url::Url;

use crate::audit::Actor;
use crate::config::{Config, RateLimit, SyncSettings, TrustedProxies, parse_public_url};
use crate::crypto::{EncryptionKey, sha256};
use crate::operators::{self, OperatorError, Role};
use crate::private_postgres::{self, PostgresError, PrivatePostgres};
use crate::types::Secret;
use crate::types::permissions;
use crate::web::{Application, paths};

/// Options of `gangway demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Postgres database to use (created if missing). Without it: `gangway_demo` on the server
    /// at 127.0.0.1 (port $PGPORT or 5432, user postgres) or, when none answers there, on a
    /// private server started from this machine's PostgreSQL programs in --dir.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// The demo's own directory: the private server's data (kept across runs) and demo.env,
    /// the environment for the `gangway` CLI.
    #[arg(long, env = "GANGWAY_DEMO_DIR", default_value_os_t = default_dir())]
    dir: PathBuf,
    /// Where the portal listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where the emulator listens (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8081")]
    emulator_listen: SocketAddr,
    /// Users per emulated tenant.
    #[arg(long, default_value_t = 40)]
    users: usize,
}

/// The demo's fixed app registration, so links and consents survive a restart of the demo.
const DEMO_CLIENT_ID: &str = "6f1d9a4e-2c3b-4f7a-9e1d-0a5b8c7d6e5f";
const DEMO_OPERATOR: &str = "demo@gangway.test";

/// Runs the demo until interrupted.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let (database_url, private) = database(&args).await?;
    crate::db::create_if_missing(&database_url)
        .await
        .with_context(
            || "cannot reach Postgres; is it running? (DATABASE_URL or --database-url)",
        )?;
    let pool = crate::db::connect(&database_url, crate::db::DEFAULT_POOL_SIZE).await?;
    crate::db::migrate(&pool).await?;
    // Bound before anything is printed, so a busy port is the first and only thing said.
    let listener = TcpListener::bind(args.listen).await.with_context(|| {
        format!(
            "cannot listen on {} (is another demo running? try --listen)",
            args.listen
        )
    })?;

    let emulator = Emulator::start(Options {
        listen: args.emulator_listen,
        tenants: 3,
        users: args.users,
        groups: 6,
        seed: 2026,
        ..Options::default()
    })
    .await
    .context("starting the Entra ID emulator failed")?;
    let public_url =
        parse_public_url(&format!("http://{}", args.listen)).map_err(anyhow::Error::msg)?;
    let admin = EmulatorAdmin::new(&emulator)?;
    let tenants = admin.tenants().await?;
    let [provider, first, second, ..] = tenants.as_slice() else {
        anyhow::bail!("the emulator did not create three tenants");
    };
    let app = admin
        .register_app(&json!({
            "home_tenant": provider.id,
            "multi_tenant": true,
            "display_name": "Gangway (demo)",
            "client_id": DEMO_CLIENT_ID,
            // Registered as the doctor asks, so that it finds nothing to fix in a fresh demo:
            // the consent, operator sign-in and users' sign-in redirects, the sign-out URL, a
            // one-year secret.
            "redirect_uris": [
                public_url.join(paths::CALLBACK.trim_start_matches('/'))?.as_str(),
                public_url.join(paths::SSO_CALLBACK.trim_start_matches('/'))?.as_str(),
                public_url.join(paths::SIGNIN_CALLBACK.trim_start_matches('/'))?.as_str(),
            ],
            "logout_url": public_url.join(paths::SSO_LOGOUT.trim_start_matches('/'))?.as_str(),
            // ID tokens name the signer's directory roles (`wids`), as Microsoft needs it set.
            "group_membership_claims": "DirectoryRole",
            "permissions": provider_permissions(),
            "secret_lifetime_days": 365,
        }))
        .await?;
    // The doctor reads the registration with this grant, in the provider's own tenant.
    admin
        .grant(&provider.id, &app.client_id, &[], &["Application.Read.All"])
        .await?;
    // The second customer tries the customer-app way: its own app, already granted.
    let own_app = admin
        .register_app(&json!({
            "home_tenant": second.id,
            "multi_tenant": false,
            "display_name": "Provider user lookup",
            "redirect_uris": [],
            "permissions": { "delegated": [], "application": permissions::application_scopes() },
        }))
        .await?;
    admin
        .grant(
            &second.id,
            &own_app.client_id,
            &[],
            &permissions::application_scopes(),
        )
        .await?;

    let cfg = Config {
        database_url,
        listen: args.listen,
        public_url: public_url.clone(),
        authority: Url::parse(emulator.base_url())?,
        graph_url: Url::parse(emulator.base_url())?,
        client_id: Some(app.client_id.clone()),
        client_secret: Some(Secret::new(app.client_secret.clone())),
        keys: demo_key().into(),
        smtp_url: std::env::var("GANGWAY_SMTP_URL")
            .ok()
            .filter(|v| !v.is_empty())
            .map(Secret::new),
        mail_from: "Gangway demo <onboarding@gangway.test>".into(),
        provider_name: "Gangway Demo Provider".into(),
        provider_tenant_id: None,
        extra_ca_pem: None,
        link_rate: RateLimit::default(),
        sign_in_rate: RateLimit::SIGN_IN,
        consent_rate: RateLimit::CONSENT,
        api_calls_per_second: crate::config::api_rate_from_env()?,
        api_last_use_every: crate::config::API_LAST_USE_EVERY,
        trusted_proxies: TrustedProxies::default(),
        database_pool_size: None,
        sync: SyncSettings::default(),
        metrics: crate::config::MetricsSettings::default(),
        consent_propagation: crate::config::CONSENT_PROPAGATION,
        setup_client_id: crate::setup::sign_in::DEFAULT_SETUP_CLIENT_ID.into(),
    };
    let password = Secret::new(random_password());
    match operators::add(&pool, DEMO_OPERATOR, Role::Admin, &password, &Actor::System).await {
        Err(OperatorError::Exists) => {
            operators::set_password(&pool, DEMO_OPERATOR, &password).await?
        }
        other => {
            other?;
        }
    }
    let mail_configured = cfg.smtp_url.is_some();
    // The demo's app is new each run: its credentials replace any stored ones.
    sqlx::query!("delete from settings where key in ('client_id', 'client_secret')")
        .execute(&pool)
        .await?;
    crate::settings::prepare(&pool, &cfg.keys, &cfg.settings_seed()).await?;
    crate::settings::save(
        &pool,
        &cfg.keys,
        &[crate::settings::Edit {
            key: crate::settings::Key::ProviderTenantId,
            raw: provider.id.clone(),
        }],
        &Actor::System,
    )
    .await?;
    let cli_env = args.dir.join("demo.env");
    write_cli_env(&cli_env, &cfg)?;
    let application = Application::with_listener(cfg, pool, listener)?;

    println!(
        "\nGangway demo is running. Nothing here talks to Microsoft: logins go to a built-in emulator.\n"
    );
    println!("  Console          {}console", public_url);
    println!("  Operator login   {DEMO_OPERATOR} / {}", password.expose());
    if let Some(server) = &private {
        println!(
            "  PostgreSQL       a private server on {}, data in {} (stops with the demo)",
            server.url(""),
            server.data_dir().display()
        );
    }
    println!(
        "  The CLI          set -a; . {}; set +a   then e.g. gangway invite list",
        cli_env.display()
    );
    println!("\nCustomer tenants (sign in with these at the emulator's Microsoft-style page):");
    for t in [first, second] {
        println!("  {} ({})", t.display_name, t.domain);
        println!(
            "    Global admin   {} / {}",
            t.admin.username, t.admin.password
        );
        if let Some(member) = &t.member {
            println!(
                "    Plain member   {} / {}   (not an admin: consent is refused)",
                member.username, member.password
            );
        }
    }
    println!(
        "\nFor a customer-app invitation, {} has its own app registered:",
        second.display_name
    );
    println!(
        "  Tenant ID {}   Client ID {}   Secret {}",
        second.id, own_app.client_id, own_app.client_secret
    );
    println!(
        "\nTry it: sign in to the console, create an invitation for {} (mode delegated),",
        first.admin.username
    );
    println!("open the link it shows in another browser window, and consent as that admin.");
    println!(
        "Mail: {}",
        if mail_configured {
            "sent through GANGWAY_SMTP_URL"
        } else {
            "no SMTP configured; copy links from the console"
        }
    );
    println!(
        "Emulator at {} (admin API for demos only: {}/_emulator/tenants). Ctrl-C stops.\n",
        emulator.base_url(),
        emulator.base_url()
    );

    let result = crate::runtime::run_portal(application).await;
    emulator.shutdown().await;
    if let Some(mut server) = private {
        tokio::task::spawn_blocking(move || server.stop()).await??;
    }
    result
}

/// The database to use and, when the demo had to start one, its private server: the database
/// given; else `gangway_demo` on the local server; else, when none answers there, on a private
/// server in the demo's directory.
async fn database(args: &DemoArgs) -> anyhow::Result<(String, Option<PrivatePostgres>)> {
    if let Some(url) = &args.database_url {
        return Ok((url.clone(), None));
    }
    let port = std::env::var("PGPORT")
        .ok()
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(5432);
    if tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
    {
        return Ok((
            format!("postgres://postgres@127.0.0.1:{port}/gangway_demo"),
            None,
        ));
    }
    let unavailable =
        || format!("no PostgreSQL answers on 127.0.0.1:{port} and the demo cannot start its own");
    let bin = private_postgres::find_binaries()
        .ok_or(PostgresError::NotInstalled)
        .with_context(unavailable)?;
    let data = args.dir.join("postgres");
    println!(
        "No PostgreSQL answers on 127.0.0.1:{port}: starting a private one in {}",
        data.display()
    );
    let server = tokio::task::spawn_blocking(move || PrivatePostgres::start(&bin, &data))
        .await?
        .with_context(unavailable)?;
    Ok((server.url("gangway_demo"), Some(server)))
}

/// The demo's directory unless --dir says otherwise: under the user's data directory, or
/// /var/lib when run as root (whose home the `postgres` user running the server cannot enter).
fn default_dir() -> PathBuf {
    if private_postgres::running_as_root() {
        return PathBuf::from("/var/lib/gangway/demo");
    }
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share")))
        .map_or_else(
            || PathBuf::from(".gangway-demo"),
            |dir| dir.join("gangway/demo"),
        )
}

/// Writes `path`, readable by its owner only (it holds the demo's key and app secret): the
/// environment that points the `gangway` CLI at this demo, for `set -a; . FILE; set +a`.
fn write_cli_env(path: &Path, cfg: &Config) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

    let mut vars = vec![
        ("DATABASE_URL", cfg.database_url.clone()),
        ("GANGWAY_PUBLIC_URL", cfg.public_url.to_string()),
        ("GANGWAY_AUTHORITY", cfg.authority.to_string()),
        ("GANGWAY_GRAPH_URL", cfg.graph_url.to_string()),
        ("GANGWAY_ENCRYPTION_KEY", demo_key_base64()),
        ("GANGWAY_MAIL_FROM", cfg.mail_from.clone()),
    ];
    if let Some(client_id) = &cfg.client_id {
        vars.push(("GANGWAY_CLIENT_ID", client_id.clone()));
    }
    if let Some(secret) = &cfg.client_secret {
        vars.push(("GANGWAY_CLIENT_SECRET", secret.expose().to_owned()));
    }
    if let Some(smtp) = &cfg.smtp_url {
        vars.push(("GANGWAY_SMTP_URL", smtp.expose().to_owned()));
    }
    let mut text = String::from(
        "# Written by `gangway demo` at each start: the environment of the gangway CLI for it.\n",
    );
    for (name, value) in vars {
        // Single-quoted for the shell: only a quote itself needs escaping.
        text.push_str(&format!("{name}='{}'\n", value.replace('\'', r"'\''")));
    }
    let written = (|| {
        std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        // A file left by an earlier run keeps its mode otherwise.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(text.as_bytes())
    })();
    written.with_context(|| format!("cannot write {}", path.display()))
}

/// What the provider's app registration asks for, delegated (users' sign-in through Gangway
/// among them) and application.
pub fn provider_permissions() -> serde_json::Value {
    let mut delegated = permissions::delegated_scopes();
    delegated.extend(crate::doctor::SIGNIN_SCOPES);
    json!({ "delegated": delegated, "application": permissions::application_scopes() })
}

/// A fixed key, so a restarted demo can still open what it sealed. Demo only.
fn demo_key() -> EncryptionKey {
    EncryptionKey::from_base64(&demo_key_base64()).expect("a 32-byte key")
}

fn demo_key_base64() -> String {
    base64::engine::general_purpose::STANDARD
        .encode(sha256(b"gangway demo key - never use in production"))
}

fn random_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rngs::OsRng;
    (0..16)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}
