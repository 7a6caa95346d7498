//! Start-up and Graph paging figures for a large tenant, printed rather than asserted:
//! `cargo bench -p entra-emulator --bench seed`.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use entra_emulator::{Emulator, Options};
use reqwest::Client;
use serde_json::{Value, json};

/// Rounds per paging figure; the median is printed.
const ROUNDS: usize = 5;

#[tokio::main]
async fn main() {
    let log = Log::default();
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(log.clone())
        .init();
    println!("entra-emulator seed bench (release build, one tenant)");
    // One user shows the fixed cost: the RSA signing key, generated while the directory seeds.
    for (users, runs) in [(1, 5), (10_000, 5), (100_000, 5)] {
        let (mut times, mut seeding) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let (emu, took) = start(users).await;
            emu.shutdown().await;
            times.push(took);
            seeding.push(log.last_seeding());
        }
        let seed = ms(median(seeding));
        let (min, max) = (
            ms(*times.iter().min().unwrap()),
            ms(*times.iter().max().unwrap()),
        );
        let med = ms(median(times));
        let per_10k = |t: f64| t * 10_000.0 / users as f64;
        print!(
            "start, {users:>7} users: median {med:.1} ms (min {min:.1}, max {max:.1}) of {runs}"
        );
        if users >= 10_000 {
            print!(
                " = {:.1} ms per 10,000 users; seeding alone {seed:.0} ms = {:.1} ms per 10,000 users",
                per_10k(med),
                per_10k(seed)
            );
        }
        println!();
    }

    let (emu, _) = start(10_000).await;
    let http = Client::new();
    let token = reader_token(&http, emu.base_url()).await;
    let base = emu.base_url();
    report(
        "users ?$top=999",
        walk(&http, &token, &format!("{base}/v1.0/users?$top=999"), None).await,
    );
    report(
        "users/delta round, default page (100)",
        walk(&http, &token, &format!("{base}/v1.0/users/delta"), None).await,
    );
    report(
        "users/delta round, maxpagesize=999",
        walk(
            &http,
            &token,
            &format!("{base}/v1.0/users/delta"),
            Some("odata.maxpagesize=999"),
        )
        .await,
    );
    emu.shutdown().await;
}

/// Starts an emulator with one tenant of `users` users; returns it and how long that took.
async fn start(users: usize) -> (Emulator, Duration) {
    let started = Instant::now();
    let emu = Emulator::start(Options {
        tenants: 1,
        users,
        groups: 3,
        ..Options::default()
    })
    .await
    .expect("emulator starts");
    (emu, started.elapsed())
}

/// Registers an app, grants it `User.Read.All` and returns a client-credentials token.
async fn reader_token(http: &Client, base: &str) -> String {
    let tenants = send(http.get(format!("{base}/_emulator/tenants"))).await;
    let tid = tenants[0]["id"].as_str().expect("tenant id");
    let app = send(
        http.post(format!("{base}/_emulator/apps"))
            .json(&json!({"home_tenant": tid, "permissions": {"application": ["User.Read.All"]}})),
    )
    .await;
    send(
        http.post(format!("{base}/_emulator/tenants/{tid}/consents"))
            .json(&json!({"client_id": app["client_id"], "application": ["User.Read.All"]})),
    )
    .await;
    let token = send(http.post(format!("{base}/{tid}/oauth2/v2.0/token")).form(&[
        ("grant_type", "client_credentials"),
        ("client_id", app["client_id"].as_str().expect("client_id")),
        (
            "client_secret",
            app["client_secret"].as_str().expect("secret"),
        ),
        ("scope", "https://graph.microsoft.com/.default"),
    ]))
    .await;
    token["access_token"]
        .as_str()
        .expect("access token")
        .to_string()
}

async fn send(req: reqwest::RequestBuilder) -> Value {
    let resp = req.send().await.expect("request");
    assert!(resp.status().is_success(), "{}", resp.status());
    resp.json().await.expect("JSON answer")
}

/// One full walk per round along `@odata.nextLink`: (pages, users, time) of each round.
async fn walk(
    http: &Client,
    token: &str,
    first: &str,
    prefer: Option<&str>,
) -> Vec<(usize, usize, Duration)> {
    let mut rounds = Vec::new();
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let (mut pages, mut users) = (0, 0);
        let mut next = Some(first.to_string());
        while let Some(url) = next {
            let mut req = http.get(&url).bearer_auth(token);
            if let Some(p) = prefer {
                req = req.header("Prefer", p);
            }
            let page = send(req).await;
            pages += 1;
            users += page["value"].as_array().expect("value").len();
            next = page["@odata.nextLink"].as_str().map(str::to_string);
        }
        rounds.push((pages, users, started.elapsed()));
    }
    rounds
}

fn report(what: &str, rounds: Vec<(usize, usize, Duration)>) {
    let (pages, users, _) = rounds[0];
    let took = median(rounds.iter().map(|r| r.2).collect());
    let secs = took.as_secs_f64();
    println!(
        "{what}: {pages} pages, {users} users, median {:.1} ms of {ROUNDS} => {:.0} pages/s, {:.0} users/s",
        ms(took),
        pages as f64 / secs,
        users as f64 / secs
    );
}

/// The emulator's log, kept to read how long seeding took (its `seeded directory` line).
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Log {
    fn last_seeding(&self) -> Duration {
        let text = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
        let line = text
            .lines()
            .rev()
            .find(|l| l.contains("seeded directory"))
            .expect("the emulator logs its seeding");
        let ms = line
            .split_once("elapsed_ms=")
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .expect("elapsed_ms in the seeding line");
        Duration::from_millis(ms)
    }
}

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Log {
    type Writer = Log;

    fn make_writer(&'a self) -> Log {
        self.clone()
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
