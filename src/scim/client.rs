//! A SCIM 2.0 client (RFC 7644) for one connection: discovery, listing, lookup by
//! `externalId`, create, replace or patch, delete, and the same as operations of `/Bulk`
//! requests (§3.7) within the server's `maxOperations` and `maxPayloadSize`. Requests go out
//! through the outbound rules webhooks use ([`egress`]): no internal address unless
//! allow-listed, no redirects. 429 and 5xx answers and lost connections are retried with
//! backoff, honouring `Retry-After`.

use std::collections::BTreeSet;
use std::ops::Range;
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
/// Operations per bulk request when the server names no maximum.
const BULK_OPERATIONS: usize = 100;
/// Bytes per bulk request when the server names no maximum.
const BULK_PAYLOAD: usize = 1 << 20;
/// Bytes of a bulk request besides its operations, and per operation besides its data.
const BULK_ENVELOPE: usize = 256;
/// The prefix of a reference to a resource created by another operation of the same bulk
/// request (RFC 7644 §3.7.2).
pub const BULK_ID_REF: &str = "bulkId:";

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
    /// Bulk is supported: pushes send their writes as `/Bulk` requests.
    pub bulk: bool,
    /// The most operations a bulk request may hold.
    #[serde(default)]
    pub bulk_max_operations: Option<u64>,
    /// The most bytes a bulk request may have.
    #[serde(default)]
    pub bulk_max_payload: Option<u64>,
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
            bulk_max_operations: config["bulk"]["maxOperations"].as_u64().filter(|n| *n > 0),
            bulk_max_payload: config["bulk"]["maxPayloadSize"].as_u64().filter(|n| *n > 0),
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
        let op = BulkOp::update(kind, id, body, cleared, caps);
        self.send(op.method, &op.path, op.data.as_ref()).await?;
        Ok(())
    }

    /// Sends `ops` as one `/Bulk` request (the caller keeps it within [`bulk_chunks`]); each
    /// operation's outcome in order: the resource's id (from its `location`) or the failure
    /// in the server's words. The request as a whole is retried like any other.
    pub async fn bulk(&self, ops: &[BulkOp]) -> Result<Vec<Result<String, Failure>>, Failure> {
        let request = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
            "Operations": ops.iter().map(BulkOp::wire).collect::<Vec<_>>(),
        });
        let answer = self
            .send(Method::POST, "Bulk", Some(&request))
            .await?
            .1
            .unwrap_or_default();
        let answered = answer["Operations"].as_array().cloned().unwrap_or_default();
        Ok(ops
            .iter()
            .enumerate()
            .map(|(i, op)| bulk_outcome(op, &answered, i))
            .collect())
    }
}

/// One operation of a bulk request (RFC 7644 §3.7): the request it stands for.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkOp {
    /// POST, PUT, PATCH or DELETE.
    pub method: Method,
    /// The resource's path under the base (`Users`, `Users/{id}`).
    pub path: String,
    /// For a POST: the id other operations of the request refer to it by.
    pub bulk_id: Option<String>,
    /// The body, if any.
    pub data: Option<Value>,
}

impl BulkOp {
    /// Creates a resource of `kind`, known in the request as `bulk_id`.
    pub fn create(kind: Kind, body: &Value, bulk_id: &str) -> Self {
        Self {
            method: Method::POST,
            path: kind.endpoint().to_owned(),
            bulk_id: Some(bulk_id.to_owned()),
            data: Some(body.clone()),
        }
    }

    /// Writes `body` over the resource `id`, as [`Client::update`] does.
    pub fn update(
        kind: Kind,
        id: &str,
        body: &Value,
        cleared: &[&str],
        caps: &Capabilities,
    ) -> Self {
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
            Self {
                method: Method::PATCH,
                path,
                bulk_id: None,
                data: Some(patch),
            }
        } else {
            let mut full = body.clone();
            full["id"] = json!(id);
            Self {
                method: Method::PUT,
                path,
                bulk_id: None,
                data: Some(full),
            }
        }
    }

    /// Deletes the resource `id`.
    pub fn delete(kind: Kind, id: &str) -> Self {
        Self {
            method: Method::DELETE,
            path: format!("{}/{id}", kind.endpoint()),
            bulk_id: None,
            data: None,
        }
    }

    /// The operation as the request carries it.
    fn wire(&self) -> Value {
        let mut op = json!({"method": self.method.as_str(), "path": format!("/{}", self.path)});
        if let Some(id) = &self.bulk_id {
            op["bulkId"] = json!(id);
        }
        if let Some(data) = &self.data {
            op["data"] = data.clone();
        }
        op
    }

    /// Bytes it adds to a request, about.
    pub fn size(&self) -> usize {
        BULK_ENVELOPE + self.data.as_ref().map_or(0, |d| d.to_string().len())
    }
}

/// Splits operations of `sizes` bytes, in order, into bulk requests within the server's
/// `maxOperations` and `maxPayloadSize` (an operation larger than the payload alone still
/// gets a request of its own, for the server to refuse in its words).
pub fn bulk_chunks(caps: &Capabilities, sizes: &[usize]) -> Vec<Range<usize>> {
    let most = caps
        .bulk_max_operations
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(BULK_OPERATIONS)
        .max(1);
    let payload = caps
        .bulk_max_payload
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(BULK_PAYLOAD);
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, BULK_ENVELOPE);
    for (i, size) in sizes.iter().enumerate() {
        let full = i - start >= most || (i > start && bytes + size > payload);
        if full {
            chunks.push(start..i);
            (start, bytes) = (i, BULK_ENVELOPE);
        }
        bytes += size;
    }
    if start < sizes.len() {
        chunks.push(start..sizes.len());
    }
    chunks
}

/// The outcome of the `i`th operation of a bulk request: its answer by `bulkId` for a POST
/// (answers may come in another order), else by position; `status` may be a number or a
/// string (RFC 7644's examples write it as a string).
fn bulk_outcome(op: &BulkOp, answered: &[Value], i: usize) -> Result<String, Failure> {
    let what = format!(
        "{} {} (bulk)",
        op.method,
        op.path.split('/').next().unwrap_or("")
    );
    let answer = match &op.bulk_id {
        Some(id) => answered.iter().find(|a| a["bulkId"].as_str() == Some(id)),
        None => answered.get(i),
    };
    let Some(answer) = answer else {
        return Err(Failure {
            what,
            status: None,
            detail: "the server's bulk answer has no result for this operation".into(),
        });
    };
    let status = answer["status"]
        .as_u64()
        .or_else(|| answer["status"].as_str()?.parse().ok())
        .and_then(|s| u16::try_from(s).ok());
    match status {
        Some(s) if (200..300).contains(&s) => Ok(answer["location"]
            .as_str()
            .and_then(|l| l.trim_end_matches('/').rsplit('/').next())
            .unwrap_or_default()
            .to_owned()),
        status => Err(Failure {
            what,
            status,
            detail: answer["response"]["detail"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| answer["response"].to_string())
                .chars()
                .take(500)
                .collect(),
        }),
    }
}

impl Client {
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

#[cfg(test)]
mod tests {
    use reqwest::Method;
    use serde_json::json;

    use super::{BulkOp, Capabilities, Kind, bulk_chunks, bulk_outcome};

    fn caps(ops: u64, payload: u64) -> Capabilities {
        Capabilities {
            patch: true,
            bulk: true,
            bulk_max_operations: Some(ops),
            bulk_max_payload: Some(payload),
            ..Capabilities::default()
        }
    }

    #[test]
    fn bulk_requests_keep_within_max_operations_and_payload() {
        assert_eq!(
            bulk_chunks(&caps(3, 1 << 20), &[10; 7]),
            vec![0..3, 3..6, 6..7]
        );
        // 256 bytes of envelope: 300-byte operations fit three to a 1,200-byte request.
        assert_eq!(
            bulk_chunks(&caps(100, 1200), &[300; 7]),
            vec![0..3, 3..6, 6..7]
        );
        // One too large for any request still goes, alone.
        assert_eq!(
            bulk_chunks(&caps(100, 1000), &[100, 5000, 100]),
            vec![0..1, 1..2, 2..3]
        );
        assert!(bulk_chunks(&caps(10, 1000), &[]).is_empty());
    }

    #[test]
    fn bulk_operations_are_written_as_rfc_7644_says() {
        let body = json!({"schemas": ["s"], "displayName": "Ops", "externalId": "x",
                          "members": [{"value": "bulkId:g1"}]});
        let create = BulkOp::create(Kind::Group, &body, "g2");
        assert_eq!(
            create.wire(),
            json!({"method": "POST", "path": "/Groups", "bulkId": "g2", "data": body})
        );
        let patch = BulkOp::update(Kind::User, "u1", &body, &["title"], &caps(1, 1));
        assert_eq!(patch.method, Method::PATCH);
        assert_eq!(patch.wire()["path"], "/Users/u1");
        assert_eq!(
            patch.wire()["data"]["Operations"][1],
            json!({"op": "remove", "path": "title"})
        );
        let put = BulkOp::update(Kind::User, "u1", &body, &[], &Capabilities::default());
        assert_eq!(
            (put.method.as_str(), &put.wire()["data"]["id"]),
            ("PUT", &json!("u1"))
        );
        assert_eq!(
            BulkOp::delete(Kind::User, "u1").wire(),
            json!({"method": "DELETE", "path": "/Users/u1"})
        );
    }

    #[test]
    fn bulk_answers_are_matched_by_bulk_id_and_errors_keep_the_servers_words() {
        let ops = [
            BulkOp::create(Kind::User, &json!({}), "a"),
            BulkOp::delete(Kind::User, "old"),
            BulkOp::create(Kind::User, &json!({}), "b"),
        ];
        let answered = [
            json!({"method": "POST", "bulkId": "b", "status": "409",
                   "response": {"detail": "userName is taken", "status": "409"}}),
            json!({"method": "DELETE", "status": 204}),
            json!({"method": "POST", "bulkId": "a", "status": "201",
                   "location": "https://scim.example/v2/Users/92b7"}),
        ];
        assert_eq!(bulk_outcome(&ops[0], &answered, 0).unwrap(), "92b7");
        let taken = bulk_outcome(&ops[2], &answered, 2).unwrap_err();
        assert_eq!(
            (taken.status, taken.detail.as_str()),
            (Some(409), "userName is taken")
        );
        // Answered by position when there is no bulkId; the second answer is the delete's.
        assert!(bulk_outcome(&ops[1], &answered, 1).is_ok());
        assert!(bulk_outcome(&ops[1], &answered[..1], 1).is_err());
    }
}
