//! `gangway bench api`: the JSON API's read path under load. A scratch database (created,
//! migrated, dropped) holding one tenant's directory copy of N users, a read token made by
//! [`api_tokens::create`], the portal serving on loopback in this process, and a load generator
//! holding K keep-alive HTTP/1.1 connections, each sending its next request as soon as the
//! last one is answered: for D seconds on the directory (100-user pages, following the cursor
//! through the whole copy and starting over), then for D seconds on `/healthz`, the floor the
//! same machine reaches at the same moment. Only 200s count; anything else is reported.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::bail;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use sqlx::PgPool;
use tokio::net::{TcpListener, TcpStream};
use url::Url;
use uuid::Uuid;

use super::{Machine, machine, round};
use crate::api_tokens::{self, Scope};
use crate::audit::Actor;
use crate::web::Application;

/// Users per directory page, as an integrating system reads them.
const PAGE: usize = 100;

/// What to measure.
#[derive(Debug, Clone, Serialize)]
pub struct ApiBenchParams {
    /// Users in the tenant's copy.
    pub users: usize,
    /// Keep-alive connections, each with one request in flight.
    pub connections: usize,
    /// Seconds of load per target and round.
    pub seconds: u64,
    /// Rounds; the report gives each and their medians.
    pub repeat: usize,
}

impl ApiBenchParams {
    /// The first contradiction between the parameters, if any.
    pub fn problem(&self) -> Option<String> {
        if self.users == 0 || self.connections == 0 || self.seconds == 0 || self.repeat == 0 {
            return Some(
                "--users, --connections, --seconds and --repeat must be at least 1".into(),
            );
        }
        if self.connections > 1024 {
            return Some("--connections must be at most 1024".into());
        }
        None
    }
}

/// One target's figures over one round.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Load {
    /// 200 answers.
    pub ok: u64,
    /// 200 answers per second of the round.
    pub requests_per_second: f64,
    /// Latency of the 200 answers, from sending the request to the body's last byte, ms.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Anything but a 200, by status (`error`: the connection failed).
    pub not_ok: BTreeMap<String, u64>,
}

/// One round: the directory, then `/healthz`, the same connections and time each.
#[derive(Debug, Clone, Serialize)]
pub struct ApiRound {
    /// `GET /api/v1/tenants/{id}/users?limit=100[&cursor=…]`.
    pub directory: Load,
    /// `GET /healthz`.
    pub healthz: Load,
    /// The directory's rate as a share of `/healthz`'s.
    pub directory_to_healthz: f64,
}

/// Everything measured.
#[derive(Debug, Clone, Serialize)]
pub struct ApiBenchReport {
    /// Where.
    pub machine: Machine,
    /// The load averages (1, 5, 15 minutes) before and after, from `/proc/loadavg`.
    pub load_average: [Option<String>; 2],
    /// What.
    pub params: ApiBenchParams,
    /// Each round.
    pub rounds: Vec<ApiRound>,
    /// Each figure's median over the rounds.
    pub median: ApiRound,
}

/// Runs the benchmark against a scratch database on the Postgres server `server_url` points
/// at; the database is dropped at the end, whatever happened (Ctrl-C included).
pub async fn run_api_bench(
    params: ApiBenchParams,
    server_url: &str,
) -> anyhow::Result<ApiBenchReport> {
    if let Some(problem) = params.problem() {
        bail!(problem);
    }
    super::on_scratch_database(server_url, "gangway_bench_api", |db, _| measure(params, db)).await
}

async fn measure(params: ApiBenchParams, db: PgPool) -> anyhow::Result<ApiBenchReport> {
    let tenant = seed(&db, params.users).await?;
    // The benchmark measures the server, not the limit: its token has the highest rate.
    let benchmark = api_tokens::NewToken {
        name: "benchmark",
        scope: Scope::Read,
        valid_days: None,
        calls_per_second: Some(api_tokens::MAX_CALLS_PER_SECOND),
        owner: None,
    };
    let (token, _) = api_tokens::create(&db, &benchmark, &Actor::Cli).await?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    // Nothing here calls Entra ID or Graph: their addresses lead nowhere.
    let nowhere = Url::parse("http://127.0.0.1:9")?;
    let mut cfg = super::config(
        nowhere.clone(),
        nowhere,
        Uuid::nil().to_string(),
        "unused".into(),
    )?;
    cfg.listen = address;
    crate::settings::prepare(&db, &cfg.keys, &cfg.settings_seed()).await?;
    let server = tokio::spawn(Application::with_listener(cfg, db, listener)?.run_until_stopped());

    let directory = Target::Directory {
        tenant,
        authorization: format!("Bearer {}", token.expose()),
    };
    let load_before = load_average();
    // Connections opened, statements prepared, pages cached.
    drive(address, &params, &directory, Duration::from_secs(1)).await?;
    let seconds = Duration::from_secs(params.seconds);
    let mut rounds = Vec::with_capacity(params.repeat);
    for _ in 0..params.repeat {
        let directory = drive(address, &params, &directory, seconds).await?;
        let healthz = drive(address, &params, &Target::Healthz, seconds).await?;
        rounds.push(ApiRound {
            directory_to_healthz: round(
                directory.requests_per_second / healthz.requests_per_second,
                3,
            ),
            directory,
            healthz,
        });
    }
    server.abort();
    Ok(ApiBenchReport {
        machine: machine(),
        load_average: [load_before, load_average()],
        median: median(&rounds),
        params,
        rounds,
    })
}

/// A tenant whose copy holds `users` users, as a sync leaves them; returns its id.
async fn seed(db: &PgPool, users: usize) -> anyhow::Result<Uuid> {
    let mut tx = db.begin().await?;
    let customer =
        sqlx::query_scalar!("insert into customers (name) values ('Benchmark') returning id")
            .fetch_one(&mut *tx)
            .await?;
    let tenant = sqlx::query_scalar!(
        "insert into tenants (entra_tenant_id, display_name, verified_domains, consent_mode, customer_id)
         values (gen_random_uuid(), 'Benchmark', '{bench.example}', 'application', $1)
         returning id",
        customer,
    )
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query!(
        "insert into directory_users (tenant_id, object_id, user_principal_name, display_name,
                                      given_name, surname, mail, business_phones, mobile_phone,
                                      job_title, department, account_enabled, seen_round)
         select $1, gen_random_uuid(), 'user' || i || '@bench.example', 'Bench User ' || i,
                'Bench', 'User ' || i, 'user' || i || '@bench.example', '{+1 425 555 0100}',
                case when i % 3 = 0 then '+1 425 555 0199' end, 'Engineer',
                'Research & Development', i % 50 <> 0, 1
         from generate_series(1, $2::bigint) i",
        tenant,
        i64::try_from(users)?,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    sqlx::query!("analyze directory_users").execute(db).await?;
    Ok(tenant)
}

/// What the connections ask for.
enum Target {
    /// `/healthz`.
    Healthz,
    /// The tenant's users, page after page.
    Directory { tenant: Uuid, authorization: String },
}

impl Target {
    fn request(&self, cursor: Option<&str>) -> anyhow::Result<hyper::Request<Empty<Bytes>>> {
        let request = hyper::Request::get(match self {
            Self::Healthz => "/healthz".to_owned(),
            Self::Directory { tenant, .. } => match cursor {
                None => format!("/api/v1/tenants/{tenant}/users?limit={PAGE}"),
                Some(c) => format!("/api/v1/tenants/{tenant}/users?limit={PAGE}&cursor={c}"),
            },
        })
        .header(hyper::header::HOST, "127.0.0.1");
        let request = match self {
            Self::Healthz => request,
            Self::Directory { authorization, .. } => {
                request.header(hyper::header::AUTHORIZATION, authorization)
            }
        };
        Ok(request.body(Empty::new())?)
    }
}

/// What one connection saw.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    not_ok: BTreeMap<String, u64>,
}

/// `params.connections` connections on `target` for `time`.
async fn drive(
    address: SocketAddr,
    params: &ApiBenchParams,
    target: &Target,
    time: Duration,
) -> anyhow::Result<Load> {
    let started = Instant::now();
    let deadline = started + time;
    let tallies = futures_util::future::join_all(
        (0..params.connections).map(|_| connection(address, target, deadline)),
    )
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies = Vec::new();
    let mut not_ok = BTreeMap::new();
    for tally in tallies {
        let tally = tally?;
        latencies.extend(tally.latencies);
        for (status, n) in tally.not_ok {
            *not_ok.entry(status).or_default() += n;
        }
    }
    latencies.sort_unstable();
    let percentile = |p: usize| {
        latencies
            .get((latencies.len() * p / 100).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| round(d.as_secs_f64() * 1000.0, 2))
    };
    Ok(Load {
        ok: latencies.len() as u64,
        requests_per_second: round(latencies.len() as f64 / elapsed, 0),
        p50_ms: percentile(50),
        p90_ms: percentile(90),
        p99_ms: percentile(99),
        not_ok,
    })
}

/// One keep-alive connection sending requests one after another until `deadline` (opened
/// again if it fails).
async fn connection(
    address: SocketAddr,
    target: &Target,
    deadline: Instant,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let mut cursor: Option<String> = None;
    let mut sender = None;
    while Instant::now() < deadline {
        let conn = match &mut sender {
            Some(conn) => conn,
            None => sender.insert(open(address).await?),
        };
        let request = target.request(cursor.as_deref())?;
        let sent = Instant::now();
        // The connection takes the next request once it has finished with the last one.
        let answer = match conn.ready().await {
            Ok(()) => conn.send_request(request).await,
            Err(e) => Err(e),
        };
        let answer = match answer {
            Ok(response) => {
                let status = response.status();
                response
                    .into_body()
                    .collect()
                    .await
                    .map(|body| (status, body.to_bytes()))
            }
            Err(e) => Err(e),
        };
        match answer {
            Ok((status, body)) if status == hyper::StatusCode::OK => {
                tally.latencies.push(sent.elapsed());
                if let Target::Directory { .. } = target {
                    cursor = next_cursor(&body);
                }
            }
            Ok((status, _)) => *tally.not_ok.entry(status.as_str().to_owned()).or_default() += 1,
            Err(_) => {
                *tally.not_ok.entry("error".to_owned()).or_default() += 1;
                sender = None;
            }
        }
    }
    Ok(tally)
}

async fn open(address: SocketAddr) -> anyhow::Result<http1::SendRequest<Empty<Bytes>>> {
    let stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// A page's `next_cursor`, read from where it stands without parsing the page.
fn next_cursor(page: &[u8]) -> Option<String> {
    const KEY: &[u8] = b"\"next_cursor\":\"";
    let at = page.windows(KEY.len()).rposition(|w| w == KEY)? + KEY.len();
    let rest = &page[at..];
    let end = rest.iter().position(|b| *b == b'"')?;
    String::from_utf8(rest[..end].to_vec()).ok()
}

/// `/proc/loadavg`'s three averages.
fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// Each figure's median over `rounds`.
fn median(rounds: &[ApiRound]) -> ApiRound {
    let of = |figure: &dyn Fn(&ApiRound) -> f64| {
        let mut values: Vec<f64> = rounds.iter().map(figure).collect();
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or_default()
    };
    let load = |pick: fn(&ApiRound) -> &Load| Load {
        ok: of(&|r| pick(r).ok as f64) as u64,
        requests_per_second: of(&|r| pick(r).requests_per_second),
        p50_ms: of(&|r| pick(r).p50_ms),
        p90_ms: of(&|r| pick(r).p90_ms),
        p99_ms: of(&|r| pick(r).p99_ms),
        not_ok: rounds.iter().flat_map(|r| pick(r).not_ok.clone()).fold(
            BTreeMap::new(),
            |mut all, (status, n)| {
                *all.entry(status).or_default() += n;
                all
            },
        ),
    };
    ApiRound {
        directory: load(|r| &r.directory),
        healthz: load(|r| &r.healthz),
        directory_to_healthz: of(&|r| r.directory_to_healthz),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_is_read_from_the_end_of_a_page() {
        let id = "0b6c1d3e-8f1a-4c2b-9d3e-5f6a7b8c9d0e";
        let page = format!(r#"{{"items":[{{"next_cursor":"x"}}],"next_cursor":"{id}"}}"#);
        assert_eq!(next_cursor(page.as_bytes()).as_deref(), Some(id));
        assert_eq!(next_cursor(br#"{"items":[],"next_cursor":null}"#), None);
    }
}
