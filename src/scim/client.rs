//! A SCIM 2.0 client (RFC 7644) for one connection: discovery, listing, lookup by
//! `externalId`, create, replace or patch, delete. Requests go out through the outbound rules
//! webhooks use ([`egress`]): no internal address unless allow-listed, no redirects. 429 and
//! 5xx answers and lost connections are retried with backoff, honouring `Retry-After`.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::background::Backoff;
use crate::types::Secret;
use crate::webhooks::egress;

/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Tries of one request before its failure is recorded.
const TRIES: u32 = 7;
/// Waits between tries without a `Retry-After`.
const BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(250),
    cap: Duration::from_secs(15),
    jitter: (0.5, 1.0),
};
/// The longest `Retry-After` honoured as given.
const LONGEST_WAIT: Duration = Duration::from_secs(60);
/// The SCIM media type (RFC 7644 §3.1).
const SCIM_JSON: &str = "application/scim+json";
/// Resources per listing page, unless the server allows fewer.
const PAGE: u64 = 500;

/// Users or groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `/Users`.
    User,
    /// `/Groups`.
    Group,
}

impl Kind {
    /// The resource endpoint.
    pub fn endpoint(self) -> &'static str {
        match self {
            Self::User => "Users",
            Self::Group => "Groups",
        }
    }

    /// The ledger's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Group => "group",
        }
    }
}

/// What the server's `/ServiceProviderConfig` and `/Schemas` said.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Capabilities {
    /// PATCH is supported (else updates are PUTs).
    pub patch: bool,
    /// Filtering is supported (else lookups list everything).
    pub filter: bool,
    /// The most resources a filter or list answers.
    pub max_results: Option<u64>,
    /// Bulk is supported (read and shown; pushes send one request per object).
    pub bulk: bool,
    /// The User schema's attributes, lowercase (`None`: `/Schemas` did not say).
    pub user_attributes: Option<BTreeSet<String>>,
}

/// A request that did not succeed: the status and the server's own message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{what}: {}{detail}", status.map(|s| format!("{s} ")).unwrap_or_default())]
pub struct Failure {
    /// The request (`POST Users`).
    pub what: String,
    /// The HTTP status, if an answer came.
    pub status: Option<u16>,
    /// The server's `detail` (or body), or why no answer came.
    pub detail: String,
}

/// A client for one SCIM server.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: url::Url,
    token: Secret,
    allowed: egress::Allowed,
}

impl Client {
    /// A client for the server at `base` with bearer `token`, reaching only what `allowed`
    /// admits.
    pub fn new(base: &str, token: Secret, allowed: egress::Allowed) -> Result<Self, Failure> {
        let mut base = url::Url::parse(base).map_err(|e| Failure {
            what: "base URL".into(),
            status: None,
            detail: e.to_string(),
        })?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let resolver = egress::Resolver::default();
        resolver.set(allowed.clone());
        Ok(Self {
            http: egress::client(&resolver, "Gangway-SCIM/1", TIMEOUT),
            base,
            token,
            allowed,
        })
    }

    /// Reads `/ServiceProviderConfig` (required) and `/Schemas` (optional).
    pub async fn discover(&self) -> Result<Capabilities, Failure> {
        let config = self
            .send(Method::GET, "ServiceProviderConfig", None)
            .await?
            .1
            .unwrap_or_default();
        let supported = |k: &str| config[k]["supported"].as_bool().unwrap_or(false);
        let mut caps = Capabilities {
            patch: supported("patch"),
            filter: supported("filter"),
            max_results: config["filter"]["maxResults"].as_u64().filter(|n| *n > 0),
            bulk: supported("bulk"),
            user_attributes: None,
        };
        if let Ok((_, Some(schemas))) = self.send(Method::GET, "Schemas", None).await {
            caps.user_attributes = schemas["Resources"]
                .as_array()
                .and_then(|all| all.iter().find(|s| s["id"] == super::mapping::USER_SCHEMA))
                .and_then(|user| user["attributes"].as_array())
                .map(|attrs| {
                    attrs
                        .iter()
                        .filter_map(|a| a["name"].as_str())
                        .map(str::to_lowercase)
                        .collect()
                });
        }
        Ok(caps)
    }

    /// Every resource of `kind` on the server, page by page.
    pub async fn list(&self, kind: Kind, caps: &Capabilities) -> Result<Vec<Value>, Failure> {
        let count = caps.max_results.unwrap_or(PAGE).min(PAGE);
        let mut all = Vec::new();
        let mut start = 1;
        loop {
            let path = format!("{}?startIndex={start}&count={count}", kind.endpoint());
            let page = self
                .send(Method::GET, &path, None)
                .await?
                .1
                .unwrap_or_default();
            let resources = page["Resources"].as_array().cloned().unwrap_or_default();
            let total = page["totalResults"].as_u64().unwrap_or(0);
            start += resources.len() as u64;
            let done = resources.is_empty() || start > total;
            all.extend(resources);
            if done {
                return Ok(all);
            }
        }
    }

    /// The server's id of the resource of `kind` whose `externalId` is `external_id`.
    pub async fn find(&self, kind: Kind, external_id: &str) -> Result<Option<String>, Failure> {
        let filter = format!("externalId eq \"{external_id}\"");
        let mut path = self.base.join(kind.endpoint()).expect("a relative path");
        path.query_pairs_mut().append_pair("filter", &filter);
        let path = path.as_str()[self.base.as_str().len()..].to_owned();
        let page = self
            .send(Method::GET, &path, None)
            .await?
            .1
            .unwrap_or_default();
        Ok(page["Resources"]
            .as_array()
            .and_then(|r| r.first())
            .and_then(|r| r["id"].as_str())
            .map(str::to_owned))
    }

    /// Creates a resource; its id on the server.
    pub async fn create(&self, kind: Kind, body: &Value) -> Result<String, Failure> {
        let (_, answer) = self.send(Method::POST, kind.endpoint(), Some(body)).await?;
        answer
            .as_ref()
            .and_then(|a| a["id"].as_str())
            .map(str::to_owned)
            .ok_or_else(|| Failure {
                what: format!("POST {}", kind.endpoint()),
                status: None,
                detail: "the server answered without the resource's id".into(),
            })
    }

    /// Writes `body` over the resource `id`: a PATCH replacing its attributes and removing
    /// `cleared` when the server supports PATCH, else a PUT.
    pub async fn update(
        &self,
        kind: Kind,
        id: &str,
        body: &Value,
        cleared: &[&str],
        caps: &Capabilities,
    ) -> Result<(), Failure> {
        let path = format!("{}/{id}", kind.endpoint());
        if caps.patch {
            let mut value = body.clone();
            if let Some(o) = value.as_object_mut() {
                o.remove("schemas");
            }
            let mut operations = vec![json!({"op": "replace", "value": value})];
            operations.extend(cleared.iter().map(|p| json!({"op": "remove", "path": p})));
            let patch = json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": operations,
            });
            self.send(Method::PATCH, &path, Some(&patch)).await?;
        } else {
            let mut full = body.clone();
            full["id"] = json!(id);
            self.send(Method::PUT, &path, Some(&full)).await?;
        }
        Ok(())
    }

    /// Deletes a resource; one already gone counts as deleted.
    pub async fn delete(&self, kind: Kind, id: &str) -> Result<(), Failure> {
        match self
            .send(Method::DELETE, &format!("{}/{id}", kind.endpoint()), None)
            .await
        {
            Err(Failure {
                status: Some(404), ..
            }) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// One request, retried on 429, 5xx and lost connections; the status and JSON body of a
    /// 2xx answer.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Option<Value>), Failure> {
        let what = format!("{method} {}", path.split('?').next().unwrap_or(path));
        let url = self.base.join(path).map_err(|e| Failure {
            what: what.clone(),
            status: None,
            detail: e.to_string(),
        })?;
        if let Some(refused) = egress::literal_refusal(url.as_str(), &self.allowed) {
            return Err(Failure {
                what,
                status: None,
                detail: refused,
            });
        }
        let mut tries = 0;
        loop {
            tries += 1;
            let mut req = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(self.token.expose())
                .header(header::ACCEPT, SCIM_JSON);
            if let Some(body) = body {
                req = req
                    .header(header::CONTENT_TYPE, SCIM_JSON)
                    .body(serde_json::to_vec(body).unwrap_or_default());
            }
            let (wait, failure) = match req.send().await {
                Ok(resp) if resp.status().is_success() => {
                    let status = resp.status();
                    let bytes = resp.bytes().await.unwrap_or_default();
                    return Ok((status, serde_json::from_slice(&bytes).ok()));
                }
                Ok(resp) => {
                    let status = resp.status();
                    let retry_after = retry_after(resp.headers());
                    let text = resp.text().await.unwrap_or_default();
                    let failure = Failure {
                        what: what.clone(),
                        status: Some(status.as_u16()),
                        detail: detail(&text),
                    };
                    let transient =
                        status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
                    if !transient {
                        return Err(failure);
                    }
                    (retry_after, failure)
                }
                Err(e) => {
                    let failure = Failure {
                        what: what.clone(),
                        status: None,
                        detail: egress::failure(&e, TIMEOUT),
                    };
                    if !(e.is_connect() || e.is_timeout() || e.is_request()) {
                        return Err(failure);
                    }
                    (None, failure)
                }
            };
            if tries >= TRIES {
                return Err(failure);
            }
            metrics::counter!("gangway_scim_retries_total").increment(1);
            let wait = wait.map_or_else(|| BACKOFF.after(tries - 1), |w| w.min(LONGEST_WAIT));
            tokio::time::sleep(wait).await;
        }
    }
}

/// `Retry-After` in seconds (fractions too).
fn retry_after(headers: &header::HeaderMap) -> Option<Duration> {
    headers
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// The server's own message: a SCIM error's `detail` (RFC 7644 §3.12), else the body, capped.
fn detail(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| v["detail"].as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| body.trim().to_owned());
    message.chars().take(500).collect()
}
