//! `gangway bench signin`: the OpenID Provider's figures. The emulator in a process of its own
//! ([`super::emulator`]), a scratch database (created, migrated, dropped), customer tenant 1
//! connected as a consent connects it and its first sync run (its users are in the copy), a
//! web application registered (client secret), and the portal serving on loopback in this
//! process. Two parts:
//!
//! - **Throughput**: K keep-alive connections ([`super::load`]) for D seconds each on the
//!   token endpoint (the authorization-code grant with `client_secret_basic`; the codes are
//!   issued beforehand by [`grants::issue_code`], each used once: twice what the last round
//!   reached; each connection's in a session of its own, as [`sessions::start`] makes one), on userinfo with a bearer access
//!   token per connection, and on `/healthz`, the floor at the same moment; medians of rounds.
//! - **Gangway's own time per sign-in**: N sign-ins one after another by a cookie-keeping
//!   client, each as a new browser to Gangway (so its single sign-on does not short-cut the
//!   trip) while Microsoft (the emulator) remembers the user: `/oidc/authorize`, the email
//!   page and its answer, the emulator's authorize endpoint, and `/oidc/callback` back to the
//!   application. The callback includes Gangway's code exchange at the emulator's token
//!   endpoint, so that exchange is made again, as Gangway makes it, N times from here and its
//!   median taken off each callback; the emulator's times are reported apart.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use entra_emulator::{EmulatedLogin, Options};
use futures_util::{StreamExt, TryStreamExt};
use hyper::header::{self, HeaderValue};
use serde::Serialize;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use url::Url;
use uuid::Uuid;

use super::emulator::EmulatorProcess;
use super::load::{self, Call, Load, drive, load_average, percentile_ms};
use super::{Machine, machine, round};
use crate::audit::Actor;
use crate::config::RateLimit;
use crate::crypto::random_token;
use crate::directory::worker::{self, WorkerConfig};
use crate::identity::SignedInUser;
use crate::jobs::Outcome;
use crate::signin::grants::{self, CodeRequest};
use crate::signin::{AppKind, GroupsClaim, NewApplication, applications, sessions};
use crate::web::{Application, paths};

/// The application's redirect URI (nothing listens there: the client reads the redirect).
const APP_CALLBACK: &str = "http://127.0.0.1:9/callback";
/// What a web application usually asks for.
const SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];
/// Codes each connection gets for the warm-up, before any rate is known.
const FIRST_CODES: usize = 100;
/// The warm-up on the token endpoint, whose rate sizes the first round's codes.
const WARM_UP: Duration = Duration::from_secs(2);
/// Concurrent [`grants::issue_code`] calls while codes are prepared.
const ISSUING: usize = 8;

/// What to measure.
#[derive(Debug, Clone, Serialize)]
pub struct SigninBenchParams {
    /// Keep-alive connections, each with one request in flight.
    pub connections: usize,
    /// Seconds of load per target and round.
    pub seconds: u64,
    /// Rounds; the report gives each and their medians.
    pub repeat: usize,
    /// Sign-ins timed one after another.
    pub sign_ins: usize,
}

impl SigninBenchParams {
    /// The first contradiction between the parameters, if any.
    pub fn problem(&self) -> Option<String> {
        if self.connections == 0 || self.seconds == 0 || self.repeat == 0 || self.sign_ins == 0 {
            return Some(
                "--connections, --seconds, --repeat and --sign-ins must be at least 1".into(),
            );
        }
        if self.connections > 1024 {
            return Some("--connections must be at most 1024".into());
        }
        None
    }
}

/// One round: the token endpoint, userinfo, then `/healthz`, the same connections and time.
#[derive(Debug, Clone, Serialize)]
pub struct SigninRound {
    /// `POST /oidc/token`, `grant_type=authorization_code`.
    pub token: Load,
    /// `GET /oidc/userinfo` with a bearer access token.
    pub userinfo: Load,
    /// `GET /healthz`.
    pub healthz: Load,
    /// The token endpoint's rate as a share of `/healthz`'s.
    pub token_to_healthz: f64,
    /// Userinfo's rate as a share of `/healthz`'s.
    pub userinfo_to_healthz: f64,
}

/// The median and 90th percentile of one step over the sign-ins, ms.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Step {
    /// Median, ms.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
}

impl Step {
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        Self {
            p50_ms: percentile_ms(&samples, 50),
            p90_ms: percentile_ms(&samples, 90),
        }
    }
}

/// A sign-in's steps, each from sending the request to the answer's last byte.
#[derive(Debug, Clone, Serialize)]
pub struct SignIns {
    /// Sign-ins timed.
    pub count: usize,
    /// Gangway's own time per sign-in: its four answers together, less the median of the
    /// emulator's token endpoint (`emulator_token`) for the code exchange inside the callback.
    pub gangway: Step,
    /// `GET /oidc/authorize` → the email page.
    pub authorize: Step,
    /// `GET` the email page.
    pub email_page: Step,
    /// `POST` the email → the user's tenant at Microsoft.
    pub email_answer: Step,
    /// `GET /oidc/callback` → the application, Gangway's code exchange included.
    pub callback: Step,
    /// The emulator's authorize endpoint, which knows the user → Gangway's callback.
    pub emulator_authorize: Step,
    /// The emulator's token endpoint redeeming a code as Gangway does, timed from here.
    pub emulator_token: Step,
}

/// Everything measured.
#[derive(Debug, Clone, Serialize)]
pub struct SigninBenchReport {
    /// Where.
    pub machine: Machine,
    /// The load averages (1, 5, 15 minutes) before and after, from `/proc/loadavg`.
    pub load_average: [Option<String>; 2],
    /// What.
    pub params: SigninBenchParams,
    /// Each round of throughput.
    pub rounds: Vec<SigninRound>,
    /// Each figure's median over the rounds.
    pub median: SigninRound,
    /// The sign-ins timed.
    pub sign_ins: SignIns,
}

/// Runs the benchmark against a scratch database on the Postgres server `server_url` points
/// at; the database is dropped at the end, whatever happened (Ctrl-C included).
pub async fn run_signin_bench(
    params: SigninBenchParams,
    server_url: &str,
) -> anyhow::Result<SigninBenchReport> {
    if let Some(problem) = params.problem() {
        bail!(problem);
    }
    super::on_scratch_database(server_url, "gangway_bench_signin", |db, _| {
        measure(params, db)
    })
    .await
}

/// What both parts share.
struct Bench {
    db: PgPool,
    /// Where the portal serves.
    address: SocketAddr,
    /// Its base URL.
    portal: String,
    /// The emulator's base URL.
    emulator: String,
    /// Microsoft's id of the customer tenant.
    entra_tenant: String,
    /// The customer's user who signs in.
    member: EmulatedLogin,
    /// The provider's app at the emulator: Gangway's client id and secret there.
    provider: (String, String),
    /// The registered application and its client secret.
    application: crate::signin::Application,
    client_secret: String,
}

async fn measure(params: SigninBenchParams, db: PgPool) -> anyhow::Result<SigninBenchReport> {
    let emulator = EmulatorProcess::start(&Options {
        tenants: 2,
        users: 20,
        groups: 5,
        seed: super::SEED,
        ..Options::default()
    })
    .await
    .context("starting the emulator failed")?;
    let admin = emulator.admin()?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let portal = format!("http://{address}");
    let state = super::connect(&emulator, &admin, &db, &portal).await?;
    let provider_id = state
        .cfg
        .client_id
        .as_deref()
        .context("the benchmark registers its app")?;
    let customer = super::customers(&admin, &state)
        .await?
        .into_iter()
        .next()
        .context("no customer tenant")?;
    // The tenant's admin consent covers the provider app's delegated sign-in permissions.
    admin
        .grant(&customer.entra.id, provider_id, &["User.Read"], &[])
        .await?;
    // The consent queued the first sync: run it, so the user is in the copy.
    let stop = CancellationToken::new();
    match worker::work_one(
        &crate::runtime::syncer(&state),
        &WorkerConfig::new(1),
        "bench",
        &stop,
    )
    .await?
    {
        Outcome::Ran(_, Ok(_)) => {}
        Outcome::Ran(_, Err(failure)) => bail!("the first sync failed: {}", failure.error),
        Outcome::Idle => bail!("no sync was queued"),
    }
    let registered = applications::register(
        &db,
        &NewApplication {
            name: "Benchmark".into(),
            kind: AppKind::Web,
            redirect_uris: vec![APP_CALLBACK.into()],
            post_logout_redirect_uris: Vec::new(),
            backchannel_logout_uri: None,
            customers: None,
            pairwise_subject: false,
            groups: GroupsClaim::All,
            role_mapping: BTreeMap::new(),
            require_account_link: false,
        },
        &Actor::Cli,
    )
    .await?;
    let mut cfg = (*state.cfg).clone();
    cfg.listen = address;
    // One client signs in hundreds of times a minute: the per-address limits would refuse it.
    let unlimited = RateLimit {
        burst: 1_000_000,
        period: Duration::from_micros(1),
    };
    cfg.consent_rate = unlimited;
    cfg.sign_in_rate = unlimited;
    let server =
        tokio::spawn(Application::with_listener(cfg, db.clone(), listener)?.run_until_stopped());
    let bench = Bench {
        address,
        portal,
        emulator: emulator.base_url().trim_end_matches('/').to_owned(),
        entra_tenant: customer.entra.id.clone(),
        member: customer
            .entra
            .member
            .clone()
            .context("the customer tenant has no plain member")?,
        provider: (
            provider_id.to_owned(),
            state
                .cfg
                .client_secret
                .as_ref()
                .context("the benchmark's app has a client secret")?
                .expose()
                .to_owned(),
        ),
        client_secret: registered
            .client_secret
            .context("a web application has a client secret")?
            .expose()
            .to_owned(),
        application: registered.application,
        db,
    };
    let load_before = load_average();
    let sign_ins = bench.sign_ins(params.sign_ins).await?;
    let (rounds, median) = bench.throughput(&params, customer.id).await?;
    server.abort();
    emulator.stop().await;
    Ok(SigninBenchReport {
        machine: machine(),
        load_average: [load_before, load_average()],
        params,
        rounds,
        median,
        sign_ins,
    })
}

impl Bench {
    /// Gangway's SSO session of the member, as Microsoft's sign-in starts it.
    async fn session(&self, tenant_id: Uuid) -> anyhow::Result<Uuid> {
        let user = SignedInUser {
            tenant_id: self.entra_tenant.parse()?,
            object_id: self.member.id.parse()?,
            username: self.member.username.clone(),
            name: None,
            sid: None,
            amr: vec!["pwd".into()],
        };
        Ok(sessions::start(&self.db, tenant_id, &user).await?.id)
    }

    /// `count` codes of the application in `session`, issued [`ISSUING`] at a time.
    async fn codes(&self, session: Uuid, count: usize) -> anyhow::Result<Vec<String>> {
        let scopes: Vec<String> = SCOPES.map(String::from).to_vec();
        let request = CodeRequest {
            application_id: self.application.id,
            session_id: session,
            redirect_uri: APP_CALLBACK,
            code_challenge: None,
            nonce: Some("benchmark"),
            scopes: &scopes,
        };
        Ok(futures_util::stream::iter(0..count)
            .map(|_| grants::issue_code(&self.db, &request))
            .buffer_unordered(ISSUING)
            .try_collect()
            .await?)
    }

    /// Connection makers redeeming `per_connection` codes each at the token endpoint.
    async fn token_calls(
        &self,
        sessions: &[Uuid],
        per_connection: usize,
    ) -> anyhow::Result<Vec<impl FnMut(Option<&[u8]>) -> Option<Call> + use<>>> {
        let encode =
            |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let basic = HeaderValue::try_from(format!(
            "Basic {}",
            STANDARD.encode(format!(
                "{}:{}",
                encode(&self.application.client_id),
                encode(&self.client_secret)
            ))
        ))?;
        let mut calls = Vec::with_capacity(sessions.len());
        for session in sessions {
            let mut codes = self.codes(*session, per_connection).await?;
            let basic = basic.clone();
            calls.push(move |_: Option<&[u8]>| {
                let code = codes.pop()?;
                let call = Call::form(
                    paths::SIGNIN_TOKEN,
                    &[
                        ("grant_type", "authorization_code"),
                        ("code", &code),
                        ("redirect_uri", APP_CALLBACK),
                    ],
                );
                Some(call.header(header::AUTHORIZATION, basic.clone()))
            });
        }
        Ok(calls)
    }

    /// Connection makers asking userinfo, each with an access token of its own.
    async fn userinfo_calls(
        &self,
        sessions: &[Uuid],
    ) -> anyhow::Result<Vec<impl FnMut(Option<&[u8]>) -> Option<Call> + use<>>> {
        let mut calls = Vec::with_capacity(sessions.len());
        for session in sessions {
            let code = self.codes(*session, 1).await?.remove(0);
            let issued =
                grants::redeem_code(&self.db, &self.application, &code, Some(APP_CALLBACK), None)
                    .await
                    .map_err(|e| anyhow::anyhow!("redeeming a code failed: {e}"))?;
            let bearer = HeaderValue::try_from(format!("Bearer {}", issued.access_token))?;
            calls.push(move |_: Option<&[u8]>| {
                Some(
                    Call::get(paths::SIGNIN_USERINFO).header(header::AUTHORIZATION, bearer.clone()),
                )
            });
        }
        Ok(calls)
    }

    /// The throughput rounds and their medians.
    async fn throughput(
        &self,
        params: &SigninBenchParams,
        tenant_id: Uuid,
    ) -> anyhow::Result<(Vec<SigninRound>, SigninRound)> {
        let k = params.connections;
        // A session per connection, as many users signing in at once have.
        let mut sessions = Vec::with_capacity(k);
        for _ in 0..k {
            sessions.push(self.session(tenant_id).await?);
        }
        // Connections opened, statements prepared, keys loaded; its rate sizes the next codes.
        let first = self.token_calls(&sessions, FIRST_CODES).await?;
        let mut rate = drive(self.address, WARM_UP, first)
            .await?
            .requests_per_second;
        drive(
            self.address,
            Duration::from_secs(1),
            self.userinfo_calls(&sessions).await?,
        )
        .await?;
        let seconds = Duration::from_secs(params.seconds);
        let mut rounds = Vec::with_capacity(params.repeat);
        for _ in 0..params.repeat {
            // Twice what the last round reached, so that the codes last the round.
            let wanted = (rate * 2.0 * params.seconds as f64) as usize;
            let per_connection = wanted.div_ceil(k).max(FIRST_CODES);
            let calls = self.token_calls(&sessions, per_connection).await?;
            let token = drive(self.address, seconds, calls).await?;
            rate = token.requests_per_second;
            let calls = self.userinfo_calls(&sessions).await?;
            let userinfo = drive(self.address, seconds, calls).await?;
            let healthz = drive(self.address, seconds, super::api::healthz(k)).await?;
            rounds.push(SigninRound {
                token_to_healthz: round(token.requests_per_second / healthz.requests_per_second, 3),
                userinfo_to_healthz: round(
                    userinfo.requests_per_second / healthz.requests_per_second,
                    3,
                ),
                token,
                userinfo,
                healthz,
            });
        }
        let median = SigninRound {
            token: Load::median(rounds.iter().map(|r| &r.token)),
            userinfo: Load::median(rounds.iter().map(|r| &r.userinfo)),
            healthz: Load::median(rounds.iter().map(|r| &r.healthz)),
            token_to_healthz: load::median(rounds.iter().map(|r| r.token_to_healthz)),
            userinfo_to_healthz: load::median(rounds.iter().map(|r| r.userinfo_to_healthz)),
        };
        Ok((rounds, median))
    }

    /// `count` sign-ins timed step by step, after one untimed that signs the user in at the
    /// emulator (its password page), and `count` code exchanges at the emulator as Gangway's
    /// callback makes them.
    async fn sign_ins(&self, count: usize) -> anyhow::Result<SignIns> {
        let mut browser = Browser::new()?;
        let mut steps: [Vec<Duration>; 5] = Default::default();
        let mut gangway = Vec::with_capacity(count);
        for n in 0..=count {
            let times = self.sign_in(&mut browser, n == 0).await?;
            if n > 0 {
                gangway.push(times[0] + times[1] + times[2] + times[4]);
                for (step, time) in steps.iter_mut().zip(times) {
                    step.push(time);
                }
            }
        }
        let mut exchanges = Vec::with_capacity(count);
        for _ in 0..count {
            exchanges.push(self.exchange_at_emulator(&mut browser).await?);
        }
        let emulator_token = Step::of(exchanges);
        // The code exchange inside each callback is the emulator's: its median is taken off.
        let upstream = Duration::from_secs_f64(emulator_token.p50_ms / 1000.0);
        let [
            authorize,
            email_page,
            email_answer,
            emulator_authorize,
            callback,
        ] = steps;
        Ok(SignIns {
            count,
            gangway: Step::of(
                gangway
                    .into_iter()
                    .map(|t| t.saturating_sub(upstream))
                    .collect(),
            ),
            authorize: Step::of(authorize),
            email_page: Step::of(email_page),
            email_answer: Step::of(email_answer),
            callback: Step::of(callback),
            emulator_authorize: Step::of(emulator_authorize),
            emulator_token,
        })
    }

    /// One sign-in as a new browser to Gangway; the times of its steps: authorize, email page,
    /// email answer, the emulator's authorize, callback. `first`: the emulator does not know
    /// the user yet and asks for the password (that step's time is then not Microsoft's
    /// alone, and the caller drops it).
    async fn sign_in(&self, browser: &mut Browser, first: bool) -> anyhow::Result<[Duration; 5]> {
        browser.forget(&self.portal);
        let state = random_token();
        let mut authorize = Url::parse(&format!("{}{}", self.portal, paths::SIGNIN_AUTHORIZE))?;
        authorize
            .query_pairs_mut()
            .append_pair("client_id", &self.application.client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", APP_CALLBACK)
            .append_pair("scope", &SCOPES.join(" "))
            .append_pair("state", &state)
            .append_pair("nonce", &random_token());
        let asked = browser.get(authorize.as_str()).await?;
        let email_page = asked.redirect(&self.portal)?;
        let page = browser.get(&email_page).await?;
        let csrf =
            input_value(&page.body, "csrf_token").context("the email page has no CSRF token")?;
        let answered = browser
            .post(
                &email_page,
                &[("csrf_token", &csrf), ("email", &self.member.username)],
            )
            .await?;
        let mut at = answered.redirect(&self.portal)?;
        anyhow::ensure!(
            at.starts_with(&format!("{}/{}/", self.emulator, self.entra_tenant)),
            "the email did not lead to the user's tenant at Microsoft: {at}"
        );
        let mut at_microsoft = Duration::ZERO;
        let callback_prefix = format!("{}{}", self.portal, paths::SIGNIN_CALLBACK);
        while !at.starts_with(&callback_prefix) {
            let answer = browser.get(&at).await?;
            at_microsoft += answer.took;
            at = match answer.location {
                Some(_) => answer.redirect(&self.emulator)?,
                None if first && answer.body.contains("name=\"passwd\"") => {
                    let action =
                        form_action(&answer.body).context("no form on the sign-in page")?;
                    let ctx = input_value(&answer.body, "ctx").context("no ctx")?;
                    let posted = browser
                        .post(
                            Url::parse(&at)?.join(&action)?.as_str(),
                            &[
                                ("ctx", &ctx),
                                ("login", &self.member.username),
                                ("passwd", &self.member.password),
                            ],
                        )
                        .await?;
                    at_microsoft += posted.took;
                    posted.redirect(&self.emulator)?
                }
                None => bail!(
                    "the emulator answered {} without sending the user back",
                    answer.status
                ),
            };
        }
        let back = browser.get(&at).await?;
        let app = back.redirect(&self.portal)?;
        let app = Url::parse(&app)?;
        let code = app.query_pairs().find(|(k, _)| k == "code");
        anyhow::ensure!(
            app.as_str().starts_with(APP_CALLBACK) && code.is_some(),
            "the sign-in did not end at the application with a code: {app}"
        );
        Ok([
            asked.took,
            page.took,
            answered.took,
            at_microsoft,
            back.took,
        ])
    }

    /// The emulator's token endpoint redeeming a code for Gangway's callback, as Gangway's
    /// callback does (PKCE, client secret, the same connection pool): its time. The code comes
    /// from the emulator's authorize endpoint, which knows the user by now.
    async fn exchange_at_emulator(&self, browser: &mut Browser) -> anyhow::Result<Duration> {
        let verifier = random_token();
        let redirect_uri = format!("{}{}", self.portal, paths::SIGNIN_CALLBACK);
        let tenant = format!("{}/{}/oauth2/v2.0", self.emulator, self.entra_tenant);
        let mut authorize = Url::parse(&format!("{tenant}/authorize"))?;
        authorize
            .query_pairs_mut()
            .append_pair("client_id", &self.provider.0)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", &redirect_uri)
            .append_pair("scope", "openid profile email")
            .append_pair("state", "benchmark")
            .append_pair("nonce", "benchmark")
            .append_pair("code_challenge", &grants::s256(&verifier))
            .append_pair("code_challenge_method", "S256");
        let back = browser.get(authorize.as_str()).await?;
        let back = Url::parse(&back.redirect(&self.emulator)?)?;
        let code = back
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .with_context(|| format!("the emulator sent no code: {back}"))?;
        let token = browser
            .post(
                &format!("{tenant}/token"),
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", &redirect_uri),
                    ("client_id", &self.provider.0),
                    ("client_secret", &self.provider.1),
                    ("code_verifier", &verifier),
                    ("scope", "openid profile email"),
                ],
            )
            .await?;
        anyhow::ensure!(
            token.status == reqwest::StatusCode::OK,
            "the emulator's token endpoint answered {}: {}",
            token.status,
            token.body
        );
        Ok(token.took)
    }
}

/// A browser enough for the sign-in: no redirects followed, cookies kept per origin.
struct Browser {
    http: reqwest::Client,
    /// Cookie names and values, by origin.
    cookies: BTreeMap<String, BTreeMap<String, String>>,
}

/// An answer and how long it took, from sending to the last byte.
struct Answer {
    status: reqwest::StatusCode,
    location: Option<String>,
    body: String,
    took: Duration,
}

impl Answer {
    /// Where a redirect leads, made absolute against `base`.
    fn redirect(&self, base: &str) -> anyhow::Result<String> {
        let to = self
            .location
            .as_deref()
            .with_context(|| format!("expected a redirect, got {}: {}", self.status, self.body))?;
        Ok(Url::parse(base)?.join(to)?.to_string())
    }
}

impl Browser {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            cookies: BTreeMap::new(),
        })
    }

    /// Forgets `base`'s cookies: a new browser there.
    fn forget(&mut self, base: &str) {
        if let Ok(url) = Url::parse(base) {
            self.cookies.remove(&url.origin().ascii_serialization());
        }
    }

    async fn get(&mut self, url: &str) -> anyhow::Result<Answer> {
        self.send(self.http.get(url), url).await
    }

    async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> anyhow::Result<Answer> {
        self.send(self.http.post(url).form(form), url).await
    }

    async fn send(
        &mut self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> anyhow::Result<Answer> {
        let origin = Url::parse(url)?.origin().ascii_serialization();
        let jar = self.cookies.entry(origin).or_default();
        let cookie = jar
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ");
        let request = if cookie.is_empty() {
            request
        } else {
            request.header(header::COOKIE, cookie)
        };
        let sent = Instant::now();
        let response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await?;
        let took = sent.elapsed();
        for set in headers.get_all(header::SET_COOKIE) {
            let Some((name, value)) = set
                .to_str()?
                .split(';')
                .next()
                .and_then(|c| c.split_once('='))
            else {
                continue;
            };
            if value.is_empty() {
                jar.remove(name.trim());
            } else {
                jar.insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
        Ok(Answer {
            status,
            location: headers
                .get(header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .map(str::to_owned),
            body,
            took,
        })
    }
}

/// The value of the first `<input name="NAME" … value="…">` in `html`; the values read here
/// (CSRF tokens, the emulator's context) carry no HTML entities.
fn input_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let tag = &html[html[..at].rfind('<')?..at + html[at..].find('>')?];
    let value = &tag[tag.find("value=\"")? + 7..];
    Some(value[..value.find('"')?].to_owned())
}

/// The `action` of the first form in `html`, with `&amp;` decoded.
fn form_action(html: &str) -> Option<String> {
    let form = &html[html.find("<form")?..];
    let action = &form[form.find("action=\"")? + 8..];
    Some(action[..action.find('"')?].replace("&amp;", "&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_fields_are_read_from_a_page() {
        let page = r#"<form method="post" action="/login?a=1&amp;b=2"><input type="hidden" name="csrf_token" value="abc-123"><input name="email"></form>"#;
        assert_eq!(input_value(page, "csrf_token").as_deref(), Some("abc-123"));
        assert_eq!(input_value(page, "email"), None);
        assert_eq!(form_action(page).as_deref(), Some("/login?a=1&b=2"));
    }

    #[test]
    fn steps_are_the_median_and_90th_percentile() {
        let step = Step::of((1..=10).rev().map(Duration::from_millis).collect());
        assert_eq!((step.p50_ms, step.p90_ms), (6.0, 10.0));
    }
}
