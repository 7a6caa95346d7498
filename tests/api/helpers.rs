//! The test harness: a fresh Postgres database per test, the Entra ID emulator and the portal on
//! loopback ports, a cookie-keeping HTTP client, and a real SMTP server that keeps what it gets.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use entra_emulator::{
    EmulatedLogin, EmulatedTenant, Emulator, EmulatorAdmin, Options, RegisteredApp,
};
use gangway::audit::Actor;
use gangway::config::{Config, RateLimit, TrustedProxies, parse_public_url};
use gangway::crypto::EncryptionKey;
use gangway::demo::provider_permissions;
use gangway::invitations::{self, NewInvitation};
use gangway::operators::{self, Role};
use gangway::tenants::Consent;
use gangway::types::Secret;
use gangway::web::{AppState, Application};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use url::Url;
use uuid::Uuid;

/// The operator password every test operator gets.
pub const OPERATOR_PASSWORD: &str = "correct horse battery staple";

/// A running portal with its own database, emulator and mail catcher.
pub struct TestApp {
    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub address: String,
    pub db: PgPool,
    /// Connection string of this test's database.
    pub database_url: String,
    /// Drops the database when the test ends.
    _database: ScratchDatabase,
    /// The encryption key, base64 (for running the CLI against the same database).
    pub key_b64: String,
    pub state: AppState,
    pub emulator: Emulator,
    pub admin: EmulatorAdmin,
    /// Customer tenants (two).
    pub customers: Vec<EmulatedTenant>,
    /// The provider's multi-tenant app registration.
    pub app: RegisteredApp,
    pub mail: MailCatcher,
    /// The operator's browser: keeps cookies, follows no redirects.
    pub client: reqwest::Client,
}

/// Knobs for [`TestApp::spawn_with`].
pub struct Setup {
    pub link_rate: RateLimit,
    pub sign_in_rate: RateLimit,
    pub consent_rate: RateLimit,
    /// Proxies whose forwarding headers are believed (none: tests then share 127.0.0.1).
    pub trusted_proxies: TrustedProxies,
    pub smtp: bool,
    /// Serve the emulator over HTTPS with its own CA, as Microsoft's client libraries require.
    pub emulator_tls: bool,
    /// With `emulator_tls`: give Gangway the emulator's CA (`GANGWAY_EXTRA_CA_FILE`).
    pub trust_emulator_ca: bool,
    /// The emulator's delta-link lifetime (Microsoft's 7 days unless set).
    pub delta_token_lifetime_secs: Option<u64>,
    /// Who may read `/metrics`.
    pub metrics: gangway::config::MetricsSettings,
    /// How long Gangway retries an admin consent Entra ID has not finished setting up.
    pub consent_propagation: Duration,
    /// How often an API token's last use is recorded.
    pub api_last_use_every: Duration,
    /// Graph's change notifications over plain HTTP on loopback: the emulator delivers to
    /// `http://` and Gangway subscribes with its `http://127.0.0.1` public URL.
    pub notifications_over_http: bool,
    /// Users per emulated tenant.
    pub users: usize,
    /// The provider's tenant holds no app registration and the settings name none that exists
    /// (a fresh installation before its setup): [`TestApp::app`] is a client id nobody
    /// registered.
    pub empty_provider: bool,
}

impl Default for Setup {
    fn default() -> Self {
        let generous = RateLimit {
            burst: 50,
            period: Duration::from_millis(100),
        };
        Self {
            link_rate: generous,
            sign_in_rate: generous,
            consent_rate: generous,
            trusted_proxies: TrustedProxies::default(),
            smtp: true,
            emulator_tls: false,
            trust_emulator_ca: true,
            delta_token_lifetime_secs: None,
            metrics: gangway::config::MetricsSettings::default(),
            consent_propagation: gangway::config::CONSENT_PROPAGATION,
            api_last_use_every: gangway::config::API_LAST_USE_EVERY,
            notifications_over_http: false,
            users: 12,
            empty_provider: false,
        }
    }
}

impl TestApp {
    /// The data of every event of `event_type` in the event log, oldest first.
    pub async fn event_data(&self, event_type: &str) -> Vec<Value> {
        sqlx::query_scalar("select data from events where event_type = $1 order by position")
            .bind(event_type)
            .fetch_all(&self.db)
            .await
            .unwrap()
    }

    /// A portal with default settings.
    pub async fn spawn() -> Self {
        Self::spawn_with(Setup::default()).await
    }

    /// A portal with the given settings.
    pub async fn spawn_with(setup: Setup) -> Self {
        // Captured per test, shown only when one fails.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("warn,gangway=info")
            .try_init();
        let database = fresh_database().await;
        let (db, database_url) = (database.pool.clone(), database.url.clone());
        let key_b64 = EncryptionKey::generate_base64();
        let emulator = Emulator::start(Options {
            listen: "127.0.0.1:0".parse().unwrap(),
            tenants: 3,
            users: setup.users,
            groups: 3,
            seed: 42,
            tls: setup.emulator_tls,
            delta_token_lifetime_secs: setup
                .delta_token_lifetime_secs
                .unwrap_or(Options::default().delta_token_lifetime_secs),
            notifications_over_http: setup.notifications_over_http,
            ..Options::default()
        })
        .await
        .expect("the emulator starts");
        let admin = EmulatorAdmin::new(&emulator).unwrap();
        let mut tenants = admin.tenants().await.expect("the emulator lists tenants");
        // The first tenant is the provider's home; the others are customers.
        let provider = tenants.remove(0);

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let public_url = parse_public_url(&address).unwrap();
        let app = if setup.empty_provider {
            RegisteredApp {
                client_id: Uuid::new_v4().to_string(),
                client_secret: "no registration yet".into(),
            }
        } else {
            admin
                .register_app(&json!({
                    "home_tenant": provider.id,
                    "multi_tenant": true,
                    "display_name": "Gangway Test Provider",
                    "redirect_uris": [public_url.join("authenticate/OAuth2Callback").unwrap().as_str()],
                    // ID tokens name the signer's directory roles (`wids`), as Gangway needs.
                    "group_membership_claims": "DirectoryRole",
                    "permissions": provider_permissions(),
                }))
                .await
                .expect("the provider app registers")
        };
        let mail = MailCatcher::start().await;
        let cfg = Config {
            database_url: String::new(),
            listen: listener.local_addr().unwrap(),
            public_url,
            authority: Url::parse(emulator.base_url()).unwrap(),
            graph_url: Url::parse(emulator.base_url()).unwrap(),
            // A true first run: no app in the environment; the setup registers one.
            client_id: (!setup.empty_provider).then(|| app.client_id.clone()),
            client_secret: (!setup.empty_provider).then(|| Secret::new(app.client_secret.clone())),
            keys: EncryptionKey::from_base64(&key_b64).unwrap().into(),
            smtp_url: setup.smtp.then(|| Secret::new(mail.url())),
            mail_from: "Test Provider <onboarding@provider.test>".into(),
            provider_name: "Test Provider".into(),
            provider_tenant_id: None,
            extra_ca_pem: emulator
                .ca_pem()
                .filter(|_| setup.trust_emulator_ca)
                .map(|pem| pem.as_bytes().to_vec()),
            link_rate: setup.link_rate,
            sign_in_rate: setup.sign_in_rate,
            consent_rate: setup.consent_rate,
            api_calls_per_second: 20,
            api_last_use_every: setup.api_last_use_every,
            trusted_proxies: setup.trusted_proxies,
            database_pool_size: None,
            sync: gangway::config::SyncSettings {
                notifications_over_http: setup.notifications_over_http,
                ..gangway::config::SyncSettings::default()
            },
            metrics: setup.metrics,
            consent_propagation: setup.consent_propagation,
            setup_client_id: gangway::setup::sign_in::DEFAULT_SETUP_CLIENT_ID.into(),
        };
        gangway::settings::prepare(&db, &cfg.keys, &cfg.settings_seed())
            .await
            .unwrap();
        let application = Application::with_listener(cfg, db.clone(), listener).unwrap();
        let state = application.state().clone();
        tokio::spawn(application.run_until_stopped());
        TestApp {
            address,
            db,
            database_url,
            _database: database,
            key_b64,
            state,
            emulator,
            admin,
            customers: tenants,
            app,
            mail,
            client: browser(),
        }
    }

    /// Absolute URL of a path on the portal.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// GET with the operator's browser.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// POST a form with the operator's browser, adding this session's CSRF token.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        post_with_csrf(&self.client, self, path, fields).await
    }

    /// POST a form as [`post_form`](Self::post_form) does, insist on a redirect (post/redirect/
    /// get) and follow it: the page the browser shows after the POST.
    pub async fn post_and_follow(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let to = location(self.post_form(path, fields).await).await;
        self.get(&to).await
    }

    /// Adds an operator with [`OPERATOR_PASSWORD`] directly through the domain.
    pub async fn add_operator(&self, email: &str, role: Role) {
        operators::add(
            &self.db,
            email,
            role,
            &Secret::new(OPERATOR_PASSWORD),
            &Actor::Cli,
        )
        .await
        .unwrap();
    }

    /// Adds an operator directly and signs the operator's browser in as them.
    pub async fn sign_in(&self, role: Role) -> String {
        let email = format!(
            "{}-{}@provider.test",
            if role == Role::Admin {
                "admin"
            } else {
                "viewer"
            },
            short_id()
        );
        self.add_operator(&email, role).await;
        let response = self
            .post_form(
                gangway::web::paths::LOGIN,
                &[("email", &email), ("password", OPERATOR_PASSWORD)],
            )
            .await;
        assert!(
            response.status().is_redirection(),
            "sign-in failed: {}",
            response.status()
        );
        email
    }

    /// Creates an invitation through the domain (as the CLI would) and returns it with its link.
    pub async fn invite(
        &self,
        mode: &str,
        email: &str,
        tenant_domain: Option<&str>,
    ) -> invitations::Issued {
        self.invite_for("Contoso Ltd", mode, email, tenant_domain)
            .await
    }

    /// Like [`invite`](Self::invite), for a named customer.
    pub async fn invite_for(
        &self,
        customer: &str,
        mode: &str,
        email: &str,
        tenant_domain: Option<&str>,
    ) -> invitations::Issued {
        let new = NewInvitation::parse(customer, email, mode, tenant_domain, Some("7d")).unwrap();
        invitations::create(
            &self.db,
            self.state
                .invitation_context(&self.state.live().await.unwrap()),
            &new,
            &Actor::Cli,
            None,
        )
        .await
        .unwrap()
    }

    /// The link's path and query, relative to the portal.
    pub fn path_of(&self, link: &Url) -> String {
        format!("{}?{}", link.path(), link.query().unwrap_or_default())
    }

    /// Delivers queued mail now, as the worker would.
    pub async fn deliver_mail(&self) -> invitations::mail::Delivered {
        let mailer = invitations::mail::Mailer::new(
            &Secret::new(self.mail.url()),
            &self.state.cfg.mail_from,
        )
        .unwrap();
        invitations::mail::deliver_due(&self.db, &self.state.cfg.keys, &mailer)
            .await
            .unwrap()
    }

    /// A new browser that, like a real one, trusts the emulator's certificate when it serves
    /// HTTPS.
    pub fn new_browser(&self) -> reqwest::Client {
        browser_trusting(self.emulator.ca_pem())
    }

    /// A customer tenant by index (0 or 1).
    pub fn customer(&self, index: usize) -> &EmulatedTenant {
        &self.customers[index]
    }
}

/// A verified delegated consent for `entra_tenant_id`, as the callback would record it.
pub fn consent(entra_tenant_id: Uuid) -> Consent {
    Consent {
        entra_tenant_id,
        display_name: "Contoso".into(),
        verified_domains: vec!["contoso.example".into()],
        mode: gangway::types::ConsentMode::Delegated,
        granted_scopes: vec!["User.Read.All".into(), "Group.Read.All".into()],
        consented_by_oid: None,
        consented_by_upn: Some("admin@contoso.example".into()),
        customer_client_id: None,
        credential: Some(Secret::new("the-refresh-token")),
    }
}

/// A new browser: its own cookies, no redirects followed.
pub fn browser() -> reqwest::Client {
    browser_trusting(None)
}

/// A new browser that also trusts the CA in `ca_pem`.
pub fn browser_trusting(ca_pem: Option<&str>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(pem) = ca_pem {
        builder =
            builder.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

/// POSTs a form after fetching this browser's CSRF token from the sign-in page.
pub async fn post_with_csrf(
    client: &reqwest::Client,
    app: &TestApp,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let token = csrf_token(client, app).await;
    let mut form: Vec<(&str, &str)> = fields.to_vec();
    form.push(("csrf_token", &token));
    client.post(app.url(path)).form(&form).send().await.unwrap()
}

/// This browser's CSRF token, read from the hidden field of the sign-in page.
pub async fn csrf_token(client: &reqwest::Client, app: &TestApp) -> String {
    let page = client
        .get(app.url(gangway::web::paths::LOGIN))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    input_value(&page, "csrf_token").expect("the sign-in page carries a CSRF token")
}

/// The `Location` of a redirect, panicking with the body when it is not one.
pub async fn location(response: reqwest::Response) -> String {
    let status = response.status();
    match response.headers().get("location") {
        Some(l) if status.is_redirection() => l.to_str().unwrap().to_owned(),
        _ => panic!(
            "expected a redirect, got {status}: {}",
            response.text().await.unwrap_or_default()
        ),
    }
}

/// The value of the first `<input name="NAME" … value="…">` in `html` (HTML entities decoded).
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let needle = format!("name=\"{name}\"");
    let at = html.find(&needle)?;
    let start = html[..at].rfind('<')?;
    let end = at + html[at..].find('>')?;
    let tag = &html[start..end];
    let value_at = tag.find("value=\"")? + 7;
    let value = &tag[value_at..value_at + tag[value_at..].find('"')?];
    Some(unescape(value))
}

/// The `action` of the first form in `html`.
pub fn form_action(html: &str) -> Option<String> {
    let at = html.find("<form")?;
    let action_at = at + html[at..].find("action=\"")? + 8;
    Some(unescape(
        &html[action_at..action_at + html[action_at..].find('"')?],
    ))
}

fn unescape(value: &str) -> String {
    value
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#x2f;", "/")
        .replace("&#x2F;", "/")
        .replace("&amp;", "&")
}

/// What the admin does on Microsoft's consent page.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Accept,
    Decline,
}

/// Drives the emulator's sign-in and consent pages from `start` (an authorize or admin-consent
/// URL) as `login`, and returns the URL Microsoft sends the browser back to.
pub async fn consent_at_microsoft(
    browser: &reqwest::Client,
    start: &str,
    login: &EmulatedLogin,
    decision: Decision,
) -> Url {
    let mut response = browser.get(start).send().await.unwrap();
    let start_url = Url::parse(start).unwrap();
    let origin = start_url.origin().ascii_serialization();
    for _ in 0..8 {
        if response.status().is_redirection() {
            let next = start_url.join(&location(response).await).unwrap();
            if next.origin().ascii_serialization() != origin {
                return next;
            }
            response = browser.get(next).send().await.unwrap();
            continue;
        }
        let page = response.text().await.unwrap();
        let ctx = input_value(&page, "ctx");
        let action = form_action(&page).map(|a| start_url.join(&a).unwrap());
        response = if page.contains("name=\"passwd\"") {
            let form = [
                ("ctx", ctx.unwrap()),
                ("login", login.username.clone()),
                ("passwd", login.password.clone()),
            ];
            browser
                .post(action.unwrap())
                .form(&form)
                .send()
                .await
                .unwrap()
        } else if page.contains("idBtn_Accept") {
            let choice = if decision == Decision::Accept {
                "accept"
            } else {
                "decline"
            };
            browser
                .post(action.unwrap())
                .form(&[("ctx", ctx.unwrap().as_str()), ("decision", choice)])
                .send()
                .await
                .unwrap()
        } else if let Some(at) = page.find("id=\"returnToApp\" href=\"") {
            let href = &page[at + 23..];
            let href = unescape(&href[..href.find('"').unwrap()]);
            browser
                .get(start_url.join(&href).unwrap())
                .send()
                .await
                .unwrap()
        } else {
            panic!("unexpected page at the emulator: {page}");
        };
    }
    panic!("the emulator never sent the browser back");
}

/// A database made for one test, dropped when the test ends (passed or panicked); the first
/// one made in a run also drops leftovers an hour old (a test killed before its end).
pub struct ScratchDatabase {
    pub pool: PgPool,
    /// Its connection string.
    pub url: String,
}

/// Connects to the server's maintenance database and creates a database just for this test.
pub async fn fresh_database() -> ScratchDatabase {
    let server = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let (pool, url) = gangway::db::create_scratch(&server, "gangway_test")
        .await
        .expect("Postgres is reachable at DATABASE_URL");
    ScratchDatabase { pool, url }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        // Drop cannot await and may run inside the test's runtime (which must not block on
        // another) or during its shutdown: a thread of its own, with its own runtime and
        // connection, drops the database, ending the test's connections (`with (force)`).
        let url = self.url.clone();
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(gangway::db::drop_scratch(&url))
                .map_err(std::io::Error::other)
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop the test database {}: {e}", self.url);
        }
    }
}

/// A short unique suffix.
pub fn short_id() -> String {
    Uuid::new_v4().simple().to_string()[..8].to_owned()
}

/// A real SMTP server on loopback that accepts everything and keeps it.
#[derive(Clone)]
pub struct MailCatcher {
    port: u16,
    received: Arc<Mutex<Vec<CaughtMail>>>,
}

/// One message as it arrived.
#[derive(Clone, Debug)]
pub struct CaughtMail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

impl MailCatcher {
    /// Listens on a free port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let catcher = Self {
            port: listener.local_addr().unwrap().port(),
            received: Arc::default(),
        };
        let received = catcher.received.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_smtp(stream, received.clone()));
            }
        });
        catcher
    }

    /// A port where nothing listens, for outage tests.
    pub async fn dead_url() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        format!("smtp://127.0.0.1:{port}")
    }

    /// `smtp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Everything received so far.
    pub fn messages(&self) -> Vec<CaughtMail> {
        self.received.lock().unwrap().clone()
    }
}

impl CaughtMail {
    /// The decoded bodies of every MIME part, concatenated.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let (mut encoding, mut in_body, mut body) = (String::new(), false, String::new());
        let flush = |encoding: &str, body: &mut String, out: &mut String| {
            out.push_str(&decode(encoding, body));
            body.clear();
        };
        for line in self.data.split("\r\n") {
            if line.starts_with("--") && line.len() > 10 && !line.contains(' ') {
                flush(&encoding, &mut body, &mut out);
                in_body = false;
                encoding.clear();
                continue;
            }
            if !in_body {
                if let Some(value) = line
                    .to_ascii_lowercase()
                    .strip_prefix("content-transfer-encoding:")
                {
                    encoding = value.trim().to_owned();
                }
                in_body = line.is_empty();
                continue;
            }
            body.push_str(line);
            body.push('\n');
        }
        flush(&encoding, &mut body, &mut out);
        out
    }

    /// The first invitation link in the message.
    pub fn link(&self) -> Url {
        let text = self.text();
        let at = text
            .find("/authenticate?token=")
            .expect("the mail carries a link");
        let start = text[..at].rfind("http").unwrap();
        let end = at
            + text[at..]
                .find(|c: char| c.is_whitespace() || c == '"' || c == '<')
                .unwrap_or(text.len() - at);
        Url::parse(&text[start..end]).unwrap()
    }

    /// The Subject header.
    pub fn subject(&self) -> String {
        self.data
            .split("\r\n")
            .find_map(|l| l.strip_prefix("Subject: "))
            .map(str::to_owned)
            .unwrap_or_default()
    }
}

fn decode(encoding: &str, body: &str) -> String {
    use base64::Engine;
    match encoding {
        "base64" => {
            let joined: String = body.split_whitespace().collect();
            String::from_utf8_lossy(
                &base64::engine::general_purpose::STANDARD
                    .decode(joined)
                    .unwrap_or_default(),
            )
            .into_owned()
        }
        "quoted-printable" => {
            let unfolded = body.replace("=\n", "");
            let bytes = unfolded.as_bytes();
            let mut out = Vec::with_capacity(bytes.len());
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'=' && i + 2 < bytes.len() {
                    if let Ok(byte) = u8::from_str_radix(&unfolded[i + 1..i + 3], 16) {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                }
                out.push(bytes[i]);
                i += 1;
            }
            String::from_utf8_lossy(&out).into_owned()
        }
        _ => body.to_owned(),
    }
}

async fn serve_smtp(stream: tokio::net::TcpStream, received: Arc<Mutex<Vec<CaughtMail>>>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let _ = write.write_all(b"220 catcher ESMTP ready\r\n").await;
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let upper = line.to_ascii_uppercase();
        let answer: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            b"250-catcher\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            from = line[10..].trim().to_owned();
            b"250 OK\r\n"
        } else if upper.starts_with("RCPT TO:") {
            to.push(line[8..].trim().to_owned());
            b"250 OK\r\n"
        } else if upper.starts_with("DATA") {
            let _ = write.write_all(b"354 go ahead\r\n").await;
            let mut data = String::new();
            loop {
                let mut l = String::new();
                if lines.read_line(&mut l).await.unwrap_or(0) == 0 {
                    return;
                }
                if l == ".\r\n" {
                    break;
                }
                data.push_str(
                    l.strip_prefix('.')
                        .filter(|_| l.starts_with(".."))
                        .unwrap_or(&l),
                );
            }
            received.lock().unwrap().push(CaughtMail {
                from: from.clone(),
                to: std::mem::take(&mut to),
                data,
            });
            b"250 OK queued\r\n"
        } else if upper.starts_with("QUIT") {
            let _ = write.write_all(b"221 bye\r\n").await;
            return;
        } else {
            b"250 OK\r\n"
        };
        if write.write_all(answer).await.is_err() {
            return;
        }
    }
}

/// The value of cookie `name` that `response` sets, if it sets one.
pub fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| c.strip_prefix(&format!("{name}=")).map(str::to_owned))
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
}

/// Signs `browser` in as `email` (with [`OPERATOR_PASSWORD`]); returns the session cookie set.
pub async fn sign_in_as(browser: &reqwest::Client, app: &TestApp, email: &str) -> String {
    let response = post_with_csrf(
        browser,
        app,
        gangway::web::paths::LOGIN,
        &[("email", email), ("password", OPERATOR_PASSWORD)],
    )
    .await;
    assert!(response.status().is_redirection(), "sign-in failed");
    set_cookie(&response, "gangway_session").expect("signing in sets the session cookie")
}

/// A SCIM connection for every customer, made through the JSON API with the write `token`,
/// with nothing left to push (as after a push): what follows shows whether it is told of a
/// change ([`scim_push_due`]).
pub async fn scim_connection_up_to_date(app: &TestApp, token: &str) {
    let (status, _, scim) = crate::json_api::call(
        app,
        reqwest::Method::POST,
        "/api/v1/scim/connections",
        Some(token),
        Some(json!({
            "name": "Product", "base_url": "https://scim.provider.example/scim/v2",
            "token": "scim-token", "enabled": true,
        })),
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{scim}");
    sqlx::query("update scim_connections set dirty = false")
        .execute(&app.db)
        .await
        .unwrap();
}

/// Whether the SCIM connection of [`scim_connection_up_to_date`] is due a push again.
pub async fn scim_push_due(app: &TestApp) -> bool {
    sqlx::query_scalar("select dirty from scim_connections")
        .fetch_one(&app.db)
        .await
        .unwrap()
}
