//! The load generator the HTTP benchmarks share: keep-alive HTTP/1.1 connections to a server
//! on loopback, each sending its next request as soon as the last one is answered, until a
//! deadline. Each connection asks a call maker of its own what to send next (it sees the body
//! of the last 200, to follow a cursor); only 200s count, anything else is tallied by status.
//! The figures (rates, percentiles, medians over rounds) are computed here too.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;

use super::round;

/// One request to send.
#[derive(Debug, Clone)]
pub struct Call {
    method: Method,
    path: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
}

impl Call {
    /// `GET path`.
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            path: path.into(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// `POST path` with a form body (`application/x-www-form-urlencoded`).
    pub fn form(path: impl Into<String>, fields: &[(&str, &str)]) -> Self {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        Self {
            method: Method::POST,
            path: path.into(),
            headers: vec![(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            )],
            body: Bytes::from(body),
        }
    }

    /// The same call with header `name` set to `value`.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    fn request(&self) -> anyhow::Result<hyper::Request<Full<Bytes>>> {
        let mut request = hyper::Request::builder()
            .method(self.method.clone())
            .uri(self.path.as_str())
            .header(header::HOST, "127.0.0.1");
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        Ok(request.body(Full::new(self.body.clone()))?)
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

impl Load {
    /// Each figure's median over `rounds`; the refusals of all of them together.
    pub fn median<'a>(rounds: impl Iterator<Item = &'a Load> + Clone) -> Load {
        let of = |figure: fn(&Load) -> f64| median(rounds.clone().map(figure));
        Load {
            ok: of(|l| l.ok as f64) as u64,
            requests_per_second: of(|l| l.requests_per_second),
            p50_ms: of(|l| l.p50_ms),
            p90_ms: of(|l| l.p90_ms),
            p99_ms: of(|l| l.p99_ms),
            not_ok: rounds.flat_map(|l| l.not_ok.clone()).fold(
                BTreeMap::new(),
                |mut all, (status, n)| {
                    *all.entry(status).or_default() += n;
                    all
                },
            ),
        }
    }
}

/// The middle value (the upper of the two middle ones); 0 for none.
pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.into_iter().collect();
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or_default()
}

/// The `p`th percentile of `sorted` (ascending), ms rounded to 0.01; 0 for none.
pub fn percentile_ms(sorted: &[Duration], p: usize) -> f64 {
    sorted
        .get((sorted.len() * p / 100).min(sorted.len().saturating_sub(1)))
        .map_or(0.0, |d| round(d.as_secs_f64() * 1000.0, 2))
}

/// What one connection saw.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    not_ok: BTreeMap<String, u64>,
}

/// One connection per call maker on the server at `address` for `time`. A maker is asked for
/// each next call with the body of the last answer when it was a 200; when it has nothing
/// more to send, its connection ends early (the rate is over the time the round took).
///
/// The load runs on a thread and runtime of its own, as a load generator in a process of its
/// own would: it then competes with the server for the cores, not for the server's scheduler.
pub async fn drive<C>(address: SocketAddr, time: Duration, makers: Vec<C>) -> anyhow::Result<Load>
where
    C: FnMut(Option<&[u8]>) -> Option<Call> + Send + 'static,
{
    let (done, measured) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("bench-load".into())
        .spawn(move || {
            let outcome = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|runtime| runtime.block_on(load(address, time, makers)));
            // The caller may have gone (Ctrl-C): nobody to tell.
            let _ = done.send(outcome);
        })?;
    measured.await?
}

async fn load<C>(address: SocketAddr, time: Duration, makers: Vec<C>) -> anyhow::Result<Load>
where
    C: FnMut(Option<&[u8]>) -> Option<Call>,
{
    let started = Instant::now();
    let deadline = started + time;
    let tallies = futures_util::future::join_all(
        makers
            .into_iter()
            .map(|next| connection(address, next, deadline)),
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
    Ok(Load {
        ok: latencies.len() as u64,
        requests_per_second: round(latencies.len() as f64 / elapsed, 0),
        p50_ms: percentile_ms(&latencies, 50),
        p90_ms: percentile_ms(&latencies, 90),
        p99_ms: percentile_ms(&latencies, 99),
        not_ok,
    })
}

/// One keep-alive connection sending `next`'s calls one after another until `deadline` (opened
/// again if it fails).
async fn connection(
    address: SocketAddr,
    mut next: impl FnMut(Option<&[u8]>) -> Option<Call>,
    deadline: Instant,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let mut last_ok: Option<Bytes> = None;
    let mut sender = None;
    while Instant::now() < deadline {
        let Some(call) = next(last_ok.take().as_deref()) else {
            break;
        };
        let conn = match &mut sender {
            Some(conn) => conn,
            None => sender.insert(open(address).await?),
        };
        let request = call.request()?;
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
            Ok((StatusCode::OK, body)) => {
                tally.latencies.push(sent.elapsed());
                last_ok = Some(body);
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

async fn open(address: SocketAddr) -> anyhow::Result<http1::SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// `/proc/loadavg`'s three averages.
pub fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_sample_at_their_rank() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&sorted, 50), 51.0);
        assert_eq!(percentile_ms(&sorted, 90), 91.0);
        assert_eq!(percentile_ms(&sorted, 99), 100.0);
        assert_eq!(percentile_ms(&sorted[..1], 99), 1.0);
        assert_eq!(percentile_ms(&[], 50), 0.0);
    }

    #[test]
    fn medians_take_the_middle_round_and_sum_the_refusals() {
        assert_eq!(median([3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median([]), 0.0);
        let round = |rate: f64, refused: u64| Load {
            requests_per_second: rate,
            not_ok: BTreeMap::from([("400".to_owned(), refused)]),
            ..Load::default()
        };
        let rounds = [round(900.0, 1), round(1000.0, 2), round(100.0, 0)];
        let median = Load::median(rounds.iter());
        assert_eq!(median.requests_per_second, 900.0);
        assert_eq!(median.not_ok["400"], 3);
    }

    #[test]
    fn a_form_call_is_encoded() {
        let call = Call::form("/oidc/token", &[("code", "a b&c"), ("grant_type", "x")]);
        let request = call.request().unwrap();
        assert_eq!(request.method(), Method::POST);
        assert_eq!(
            request.headers()[header::CONTENT_TYPE],
            "application/x-www-form-urlencoded"
        );
        assert_eq!(call.body, Bytes::from("code=a+b%26c&grant_type=x"));
    }
}
