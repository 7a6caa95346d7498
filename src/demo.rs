//! `gangway demo`: everything needed to try an onboarding on one machine with Postgres running —
//! the database, the built-in Entra ID emulator, a configured portal and a demo operator.

use std::net::SocketAddr;

use anyhow::Context;
use base64::Engine;
use entra_emulator::{Emulator, EmulatorAdmin, Options};
use serde_json::json;
use tokio::net::TcpListener;
use url::Url;

use crate::audit::Actor;
use crate::config::{Config, RateLimit, SyncSettings, TrustedProxies, parse_public_url};
use crate::crypto::{EncryptionKey, sha256};
use crate::invitations::permissions;
use crate::operators::{self, OperatorError, Role};
use crate::types::Secret;
use crate::web::Application;

/// Options of `gangway demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Postgres database to use (created if missing).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/gangway_demo"
    )]
    database_url: String,
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
    crate::db::create_if_missing(&args.database_url)
        .await
        .with_context(
            || "cannot reach Postgres; is it running? (DATABASE_URL or --database-url)",
        )?;
    let pool = crate::db::connect(&args.database_url).await?;
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
            "redirect_uris": [public_url.join("authenticate/OAuth2Callback")?.as_str()],
            // ID tokens name the signer's directory roles (`wids`), as Microsoft needs it set.
            "group_membership_claims": "DirectoryRole",
            "permissions": provider_permissions(),
        }))
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
        database_url: args.database_url.clone(),
        listen: args.listen,
        public_url: public_url.clone(),
        authority: Url::parse(emulator.base_url())?,
        graph_url: Url::parse(emulator.base_url())?,
        client_id: app.client_id.clone(),
        client_secret: Secret::new(app.client_secret.clone()),
        keys: demo_key().into(),
        smtp_url: std::env::var("GANGWAY_SMTP_URL")
            .ok()
            .filter(|v| !v.is_empty())
            .map(Secret::new),
        mail_from: "Gangway demo <onboarding@gangway.test>".into(),
        provider_name: "Gangway Demo Provider".into(),
        extra_ca_pem: None,
        link_rate: RateLimit::default(),
        sign_in_rate: RateLimit::SIGN_IN,
        consent_rate: RateLimit::CONSENT,
        trusted_proxies: TrustedProxies::default(),
        sync: SyncSettings::default(),
        metrics: crate::config::MetricsSettings::default(),
        consent_propagation: crate::config::CONSENT_PROPAGATION,
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
    sqlx::query("delete from settings where key in ('client_id', 'client_secret')")
        .execute(&pool)
        .await?;
    crate::settings::prepare(&pool, &cfg.keys, &cfg.settings_seed()).await?;
    let application = Application::with_listener(cfg, pool, listener)?;

    println!(
        "\nGangway demo is running. Nothing here talks to Microsoft: logins go to a built-in emulator.\n"
    );
    println!("  Console          {}console", public_url);
    println!("  Operator login   {DEMO_OPERATOR} / {}", password.expose());
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
    result
}

/// What the provider's app registration asks for, delegated and application.
pub fn provider_permissions() -> serde_json::Value {
    json!({ "delegated": permissions::delegated_scopes(), "application": permissions::application_scopes() })
}

/// A fixed key, so a restarted demo can still open what it sealed. Demo only.
fn demo_key() -> EncryptionKey {
    let key = base64::engine::general_purpose::STANDARD
        .encode(sha256(b"gangway demo key - never use in production"));
    EncryptionKey::from_base64(&key).expect("a 32-byte key")
}

fn random_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rngs::OsRng;
    (0..16)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}
