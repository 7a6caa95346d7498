//! Portal benchmark: prints figures, asserts nothing. Run with `cargo bench --bench portal`
//! (Postgres at DATABASE_URL or 127.0.0.1:5432; a scratch database is created and dropped).
//!
//! Measures what grows with a provider's size: the console's invitation list and search over
//! many invitations, creating invitations (token, hash, audit, sealed mail in one transaction),
//! and opening token links concurrently (hash lookup, session, redirect).

use std::time::{Duration, Instant};

use gangway::audit::Actor;
use gangway::config::{Config, RateLimit, TrustedProxies, parse_public_url};
use gangway::crypto::EncryptionKey;
use gangway::invitations::{self, NewInvitation};
use gangway::operators::{self, Role};
use gangway::types::Secret;
use gangway::web::Application;
use sqlx::{Connection, Executor};
use tokio::net::TcpListener;
use url::Url;

const SEEDED: i64 = 20_000;
const CREATED: usize = 500;
const CONCURRENCY: usize = 16;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let server = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let (db, db_url) = gangway::db::create_scratch(&server, "gangway_bench").await?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = format!("http://{}", listener.local_addr()?);
    let unlimited = RateLimit {
        burst: u32::MAX,
        period: Duration::from_nanos(1),
    };
    let cfg = Config {
        database_url: db_url.clone(),
        listen: listener.local_addr()?,
        public_url: parse_public_url(&address).map_err(anyhow::Error::msg)?,
        // Nothing measured here talks to Microsoft.
        authority: Url::parse("http://127.0.0.1:9")?,
        graph_url: Url::parse("http://127.0.0.1:9")?,
        client_id: None,
        client_secret: None,
        keys: EncryptionKey::from_base64(&EncryptionKey::generate_base64())?.into(),
        smtp_url: None,
        mail_from: "Bench <bench@provider.test>".into(),
        provider_name: "Bench Provider".into(),
        provider_tenant_id: None,
        extra_ca_pem: None,
        link_rate: unlimited,
        sign_in_rate: unlimited,
        consent_rate: unlimited,
        api_calls_per_second: gangway::api_tokens::MAX_CALLS_PER_SECOND,
        api_last_use_every: gangway::config::API_LAST_USE_EVERY,
        trusted_proxies: TrustedProxies::default(),
        database_pool_size: None,
        sync: gangway::config::SyncSettings::default(),
        metrics: gangway::config::MetricsSettings::default(),
        consent_propagation: gangway::config::CONSENT_PROPAGATION,
        setup_client_id: gangway::setup::sign_in::DEFAULT_SETUP_CLIENT_ID.into(),
    };
    gangway::settings::prepare(&db, &cfg.keys, &cfg.settings_seed()).await?;
    let application = Application::with_listener(cfg, db.clone(), listener)?;
    let state = application.state().clone();
    tokio::spawn(application.run_until_stopped());

    println!(
        "Gangway portal benchmark ({} CPU(s))\n",
        std::thread::available_parallelism()?.get()
    );

    // Creating invitations through the domain, as the console and CLI do.
    let live = state.live().await?;
    let started = Instant::now();
    let mut links = Vec::with_capacity(CREATED);
    for n in 0..CREATED {
        let new = NewInvitation::parse(
            &format!("Customer {n}"),
            &format!("admin@c{n}.example"),
            "delegated",
            None,
            None,
        )?;
        links.push(
            invitations::create(
                &db,
                state.invitation_context(&live),
                &new,
                &Actor::Cli,
                None,
            )
            .await?
            .link,
        );
    }
    let took = started.elapsed();
    println!(
        "create invitation     {CREATED} sequential: {:>7.1} /s   mean {:>6.2} ms",
        CREATED as f64 / took.as_secs_f64(),
        took.as_secs_f64() * 1000.0 / CREATED as f64
    );

    // Many more invitations, inserted directly, so the list has something to page through.
    sqlx::query(
        "insert into customers (name) select 'Seeded customer ' || g from generate_series(1, $1) g",
    )
    .bind(SEEDED)
    .execute(&db)
    .await?;
    sqlx::query(
        "insert into invitations (customer_id, admin_email, consent_mode, token_sha256, expires_at, status, created_at,
                                  permission_profile_id)
         select c.id, 'admin' || g || '@seed' || g || '.example', 'application',
                sha256(('seed' || g)::bytea), now() + interval '7 days' - (g % 10) * interval '1 day',
                (array['pending','opened','consented','declined'])[1 + g % 4], now() - g * interval '1 minute',
                (select id from permission_profiles where is_default)
         from generate_series(1, $1) g join customers c on c.name = 'Seeded customer ' || g",
    )
    .bind(SEEDED)
    .execute(&db)
    .await?;
    sqlx::query("analyze").execute(&db).await?;

    let browser = signed_in(&address, &db).await?;
    let list = format!("{address}/console/invitations");
    report(
        "list, first page",
        &latencies(&browser, &list, 100).await?,
        SEEDED + CREATED as i64,
    );
    report(
        "list, page 400",
        &latencies(&browser, &format!("{list}?page=400"), 100).await?,
        SEEDED + CREATED as i64,
    );
    report(
        "list, search",
        &latencies(&browser, &format!("{list}?q=seed1999"), 100).await?,
        SEEDED + CREATED as i64,
    );
    report(
        "list, status filter",
        &latencies(&browser, &format!("{list}?status=expired"), 100).await?,
        SEEDED + CREATED as i64,
    );

    // Opening token links, CONCURRENCY at a time, each in a fresh browser.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let started = Instant::now();
    let mut all = Vec::with_capacity(links.len());
    for chunk in links.chunks(CONCURRENCY) {
        let mut opens = tokio::task::JoinSet::new();
        for link in chunk {
            let (client, link) = (client.clone(), link.clone());
            opens.spawn(async move {
                let t = Instant::now();
                let response = client.get(link).send().await?;
                anyhow::ensure!(
                    response.status() == 303,
                    "open answered {}",
                    response.status()
                );
                Ok::<_, anyhow::Error>(t.elapsed())
            });
        }
        while let Some(took) = opens.join_next().await {
            all.push(took??);
        }
    }
    let took = started.elapsed();
    all.sort();
    println!(
        "open token link       {} at {CONCURRENCY} concurrent: {:>7.1} /s   p50 {:>6.2} ms   p95 {:>6.2} ms",
        all.len(),
        all.len() as f64 / took.as_secs_f64(),
        ms(all[all.len() / 2]),
        ms(all[all.len() * 95 / 100])
    );

    db.close().await;
    let mut admin = sqlx::PgConnection::connect(&server).await?;
    let name = Url::parse(&db_url)?
        .path()
        .trim_start_matches('/')
        .to_owned();
    admin
        .execute(format!("drop database if exists \"{name}\" with (force)").as_str())
        .await?;
    Ok(())
}

async fn signed_in(address: &str, db: &sqlx::PgPool) -> anyhow::Result<reqwest::Client> {
    let password = Secret::new("bench passphrase long enough");
    operators::add(
        db,
        "bench@provider.test",
        Role::Viewer,
        &password,
        &Actor::Cli,
    )
    .await?;
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let login = browser
        .get(format!("{address}/console/login"))
        .send()
        .await?
        .text()
        .await?;
    let at = login
        .find("name=\"csrf_token\" value=\"")
        .ok_or_else(|| anyhow::anyhow!("no CSRF field"))?
        + 25;
    let csrf = &login[at..at + login[at..].find('"').unwrap_or(0)];
    let form = [
        ("email", "bench@provider.test"),
        ("password", password.expose()),
        ("csrf_token", csrf),
    ];
    let response = browser
        .post(format!("{address}/console/login"))
        .form(&form)
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_redirection(),
        "sign-in failed: {}",
        response.status()
    );
    Ok(browser)
}

async fn latencies(
    browser: &reqwest::Client,
    url: &str,
    runs: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut all = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let response = browser.get(url).send().await?;
        anyhow::ensure!(
            response.status() == 200,
            "{url} answered {}",
            response.status()
        );
        response.bytes().await?;
        all.push(t.elapsed());
    }
    all.sort();
    Ok(all)
}

fn report(what: &str, sorted: &[Duration], rows: i64) {
    println!(
        "{what:<21} {} runs over {rows} invitations:   p50 {:>6.2} ms   p95 {:>6.2} ms",
        sorted.len(),
        ms(sorted[sorted.len() / 2]),
        ms(sorted[sorted.len() * 95 / 100])
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
