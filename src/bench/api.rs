//! `gangway bench api`: the JSON API's read path under load. A scratch database (created,
//! migrated, dropped) holding one tenant's directory copy of N users, a read token made by
//! [`api_tokens::create`], the portal serving on loopback in this process, and the load
//! generator of [`super::load`] holding K keep-alive HTTP/1.1 connections: for D seconds on the
//! directory (100-user pages, following the cursor through the whole copy and starting over),
//! then for D seconds on `/healthz`, the floor the same machine reaches at the same moment.
//! Only 200s count; anything else is reported.

use std::time::Duration;

use anyhow::bail;
use hyper::header::{self, HeaderValue};
use serde::Serialize;
use sqlx::PgPool;
use tokio::net::TcpListener;
use url::Url;
use uuid::Uuid;

use super::load::{self, Call, Load, drive, load_average};
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

    let authorization = HeaderValue::try_from(format!("Bearer {}", token.expose()))?;
    let directory = || {
        (0..params.connections)
            .map(|_| directory_pages(tenant, authorization.clone()))
            .collect()
    };
    let load_before = load_average();
    // Connections opened, statements prepared, pages cached.
    drive(address, Duration::from_secs(1), directory()).await?;
    let seconds = Duration::from_secs(params.seconds);
    let mut rounds = Vec::with_capacity(params.repeat);
    for _ in 0..params.repeat {
        let directory = drive(address, seconds, directory()).await?;
        let healthz = drive(address, seconds, healthz(params.connections)).await?;
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
pub(super) async fn seed(db: &PgPool, users: usize) -> anyhow::Result<Uuid> {
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
    // As autovacuum leaves a copy a minute after its sync: the visibility map set, so pages
    // come from the index alone (run on its own: vacuum takes no transaction).
    sqlx::raw_sql("vacuum analyze directory_users")
        .execute(db)
        .await?;
    Ok(tenant)
}

/// One connection's calls: the tenant's users page after page, following the cursor through
/// the whole copy and starting over.
fn directory_pages(
    tenant: Uuid,
    authorization: HeaderValue,
) -> impl FnMut(Option<&[u8]>) -> Option<Call> {
    let mut cursor: Option<String> = None;
    move |last| {
        if let Some(page) = last {
            cursor = next_cursor(page);
        }
        let path = match &cursor {
            None => format!("/api/v1/tenants/{tenant}/users?limit={PAGE}"),
            Some(c) => format!("/api/v1/tenants/{tenant}/users?limit={PAGE}&cursor={c}"),
        };
        Some(Call::get(path).header(header::AUTHORIZATION, authorization.clone()))
    }
}

/// `connections` connections' calls to `/healthz`, the floor.
pub(super) fn healthz(connections: usize) -> Vec<impl FnMut(Option<&[u8]>) -> Option<Call>> {
    (0..connections)
        .map(|_| |_: Option<&[u8]>| Some(Call::get("/healthz")))
        .collect()
}

/// A page's `next_cursor`, read from where it stands without parsing the page.
fn next_cursor(page: &[u8]) -> Option<String> {
    const KEY: &[u8] = b"\"next_cursor\":\"";
    let at = page.windows(KEY.len()).rposition(|w| w == KEY)? + KEY.len();
    let rest = &page[at..];
    let end = rest.iter().position(|b| *b == b'"')?;
    String::from_utf8(rest[..end].to_vec()).ok()
}

/// Each figure's median over `rounds`.
fn median(rounds: &[ApiRound]) -> ApiRound {
    ApiRound {
        directory: Load::median(rounds.iter().map(|r| &r.directory)),
        healthz: Load::median(rounds.iter().map(|r| &r.healthz)),
        directory_to_healthz: load::median(rounds.iter().map(|r| r.directory_to_healthz)),
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
