//! Microsoft Graph client: typed reads used by onboarding (`/organization`, a users probe) and a
//! paging primitive for the replication engine. Access tokens are opaque bearer strings here.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::{fmt, time::Duration};

use reqwest::{StatusCode, header};
use serde::{Deserialize, de::DeserializeOwned};
use url::Url;

use crate::types::{ClientId, Secret, TenantId};

pub mod keys;
pub mod registration;
pub mod subscriptions;

/// Why a Graph call failed. Messages never contain tokens.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// Graph answered with an error body, e.g. 403 `Authorization_RequestDenied` (a permission
    /// is missing) or 401 `InvalidAuthenticationToken`.
    #[error("Graph returned HTTP {status} {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Graph's `error.code`.
        code: String,
        /// Graph's `error.message`.
        message: String,
    },
    /// HTTP 429 or 503: wait `retry_after` (when sent) before trying again.
    #[error("Graph is throttling (HTTP {status})")]
    Throttled {
        /// 429 or 503.
        status: u16,
        /// The `Retry-After` delay, fractional seconds allowed.
        retry_after: Option<Duration>,
    },
    /// HTTP 500, 502 or 504: a passing fault on Graph's side, worth another try after a wait.
    #[error("Graph failed (HTTP {status}) and may answer if asked again")]
    ServerError {
        /// 500, 502 or 504.
        status: u16,
    },
    /// The delta or skip token is no longer good: 410 Gone (a reset), or any 4xx whose error
    /// code (or an inner one) is one Graph documents for it. Only a full round helps.
    #[error("Graph says the sync state is gone (HTTP {status} {code}): starting over")]
    Resync {
        /// 410, or the 4xx that carried the code.
        status: u16,
        /// The resync code that was met (empty for a bare 410).
        code: String,
    },
    /// The request could not be sent or the answer not received.
    #[error("could not talk to Graph: {0}")]
    Transport(String),
    /// The answer was not what Graph documents.
    #[error("unexpected Graph answer: {0}")]
    Decode(String),
}

impl GraphError {
    /// True for 403 `Authorization_RequestDenied`: the token lacks the permission for this call.
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, Self::Api { status: 403, .. })
    }

    /// True for 404: the object (a subscription, say) is gone.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Api { status: 404, .. })
    }

    /// True when a delta chain must start over with a full round (see [`Self::Resync`]).
    pub fn needs_resync(&self) -> bool {
        matches!(self, Self::Resync { .. })
    }
}

/// The error codes Graph documents for a delta or skip token it no longer honours, at the top
/// or nested in `innerError`; delta-query-overview promises only "a 40X-series error with
/// error codes such as `syncStateNotFound`", so the status alone decides nothing.
const RESYNC_CODES: [&str; 4] = [
    "syncStateNotFound",
    "resyncRequired",
    "resyncApplyDifferences",
    "resyncUploadDifferences",
];

/// The tenant as Graph describes it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    /// The tenant id.
    pub id: TenantId,
    /// The organisation's display name.
    #[serde(default)]
    pub display_name: String,
    /// The tenant's verified domains.
    #[serde(default)]
    pub verified_domains: Vec<VerifiedDomain>,
}

impl Organization {
    /// The default domain, else the initial (`*.onmicrosoft.com`) one.
    pub fn default_domain(&self) -> Option<&str> {
        self.verified_domains
            .iter()
            .find(|d| d.is_default)
            .or_else(|| self.verified_domains.iter().find(|d| d.is_initial))
            .map(|d| d.name.as_str())
    }

    /// Whether `domain` is one of the tenant's verified domains (case-insensitive).
    pub fn has_domain(&self, domain: &str) -> bool {
        self.verified_domains
            .iter()
            .any(|d| d.name.eq_ignore_ascii_case(domain.trim()))
    }
}

/// One verified domain of a tenant.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifiedDomain {
    /// The domain name, e.g. `contoso.com`.
    pub name: String,
    /// Whether it is the tenant's default domain.
    #[serde(default)]
    pub is_default: bool,
    /// Whether it is the initial `*.onmicrosoft.com` domain.
    #[serde(default)]
    pub is_initial: bool,
}

/// One page of a Graph collection.
#[derive(Clone, Debug, Deserialize)]
pub struct Page<T> {
    /// The items on this page (may be empty).
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
    /// The next page to fetch, if any.
    #[serde(rename = "@odata.nextLink", default)]
    pub next_link: Option<String>,
    /// On the last page of a delta round: the link to store for the next round.
    #[serde(rename = "@odata.deltaLink", default)]
    pub delta_link: Option<String>,
}

#[derive(Deserialize)]
struct Collection<T> {
    #[serde(default = "Vec::new")]
    value: Vec<T>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    /// Graph spells it `innerError`; its errors page, `innererror`.
    #[serde(default, rename = "innerError", alias = "innererror")]
    inner: Option<Box<ErrorDetail>>,
}

impl ErrorDetail {
    /// The first resync code in this error or its inner ones.
    fn resync_code(&self) -> Option<&'static str> {
        let mut at = Some(self);
        while let Some(e) = at {
            if let Some(code) = RESYNC_CODES
                .iter()
                .find(|c| c.eq_ignore_ascii_case(&e.code))
            {
                return Some(*code);
            }
            at = e.inner.as_deref();
        }
        None
    }
}

/// Counts Graph calls against the throttle budget every process shares (kept above this
/// module, in the directory's): told of each call a client made [`GraphClient::for_tenant`]
/// sends at normal priority. It must not make the call wait: a person waits for it, and Graph
/// throttles such calls last.
pub trait Meter: Send + Sync {
    /// Counts a call to `url` by `app` (its name in the budget) in Entra tenant `tenant`.
    fn count<'a>(
        &'a self,
        app: &'a str,
        tenant: uuid::Uuid,
        url: &'a Url,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
}

/// Whose budget a client's calls draw on. Graph's tokens are opaque to clients, so the caller
/// says which app and tenant it calls as.
#[derive(Clone)]
struct Charge {
    app: Arc<str>,
    tenant: uuid::Uuid,
}

/// A Microsoft Graph client. Cheap to clone.
#[derive(Clone)]
pub struct GraphClient {
    // Behind an `Arc`: the portal's state, which holds this client, is cloned per request.
    base: Arc<Url>,
    http: reqwest::Client,
    meter: Option<Arc<dyn Meter>>,
    charge: Option<Charge>,
}

impl fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl GraphClient {
    /// A client for Graph at `graph_url` (`https://graph.microsoft.com` or the emulator).
    pub fn new(graph_url: Url, http: reqwest::Client) -> Self {
        let mut base = graph_url;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        Self {
            base: Arc::new(base),
            http,
            meter: None,
            charge: None,
        }
    }

    /// The same client, counting with `meter` each call that a client made
    /// [`Self::for_tenant`] sends at normal priority. Reads sent with
    /// `x-ms-throttle-priority: low` are background work whose callers take from the budget
    /// themselves (and may wait).
    pub fn with_meter(self, meter: Arc<dyn Meter>) -> Self {
        Self {
            meter: Some(meter),
            ..self
        }
    }

    /// This client for calls by `app` (its name in the throttle budget) in Entra tenant
    /// `tenant`: each counts against their budget.
    pub fn for_tenant(&self, app: &str, tenant: uuid::Uuid) -> Self {
        Self {
            charge: Some(Charge {
                app: app.into(),
                tenant,
            }),
            ..self.clone()
        }
    }

    /// `path` (like `v1.0/users?$top=1`) resolved against the Graph base URL.
    pub fn url(&self, path: &str) -> Result<Url, GraphError> {
        self.base
            .join(path.trim_start_matches('/'))
            .map_err(|e| GraphError::Decode(format!("bad Graph path: {e}")))
    }

    /// `GET /v1.0/organization`: the tenant the token belongs to.
    #[tracing::instrument(skip_all)]
    pub async fn organization(&self, access_token: &Secret) -> Result<Organization, GraphError> {
        let url = self.url("v1.0/organization")?;
        let orgs: Collection<Organization> = self.get_json(url, access_token).await?;
        orgs.value
            .into_iter()
            .next()
            .ok_or_else(|| GraphError::Decode("/organization returned no organization".into()))
    }

    /// The role template ids of the directory roles a user holds, directly or through a group
    /// (`transitiveMemberOf`, cast to `directoryRole`, every page): the signed-in user's with a
    /// delegated token (`/me`, least permission `User.Read`), else `user`'s with an app-only
    /// token (least permission `User.Read.All`). A role the token may not read comes back with
    /// its id only (Graph's limited information for inaccessible objects): it is `None` here.
    #[tracing::instrument(skip_all)]
    pub async fn directory_roles(
        &self,
        access_token: &Secret,
        user: Option<uuid::Uuid>,
    ) -> Result<Vec<Option<String>>, GraphError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Role {
            #[serde(default)]
            role_template_id: Option<String>,
        }
        let who = user.map_or_else(|| "me".to_owned(), |id| format!("users/{id}"));
        let mut link = format!("v1.0/{who}/transitiveMemberOf/microsoft.graph.directoryRole");
        let mut roles = Vec::new();
        loop {
            let page: Page<Role> = self.page(&link, access_token).await?;
            roles.extend(page.value.into_iter().map(|r| r.role_template_id));
            match page.next_link {
                Some(next) => link = next,
                None => return Ok(roles),
            }
        }
    }

    /// `GET /v1.0/users?$top=1&$select=id`: succeeds only if the token may read users
    /// (`User.Read.All`); otherwise 403 `Authorization_RequestDenied`.
    #[tracing::instrument(skip_all)]
    pub async fn probe_users(&self, access_token: &Secret) -> Result<(), GraphError> {
        let url = self.url("v1.0/users?$top=1&$select=id")?;
        let _: Collection<serde_json::Value> = self.get_json(url, access_token).await?;
        Ok(())
    }

    /// `GET /v1.0/applications?$filter=appId eq '{app_id}'`: the app registration with this
    /// Application (client) ID in the token's tenant, as Graph's `application` resource (its
    /// redirect URIs, sign-in audience, optional claims, password credentials without their
    /// secrets, `requiredResourceAccess`); `None` when the tenant has none. Needs
    /// `Application.Read.All`, else 403 `Authorization_RequestDenied`.
    #[tracing::instrument(skip_all)]
    pub async fn application(
        &self,
        access_token: &Secret,
        app_id: &ClientId,
    ) -> Result<Option<serde_json::Value>, GraphError> {
        // A GUID needs no quoting; spaces as %20, as Graph's own examples write them.
        let url = self.url(&format!(
            "v1.0/applications?$filter=appId%20eq%20'{app_id}'"
        ))?;
        let apps: Collection<serde_json::Value> = self.get_json(url, access_token).await?;
        Ok(apps.value.into_iter().next())
    }

    /// One page of a collection: `link` is a path under the Graph base (`v1.0/users/delta`) or
    /// an absolute `@odata.nextLink`/`@odata.deltaLink`.
    #[tracing::instrument(skip_all)]
    pub async fn page<T: DeserializeOwned>(
        &self,
        link: &str,
        access_token: &Secret,
    ) -> Result<Page<T>, GraphError> {
        self.get_json(self.link(link)?, access_token).await
    }

    /// The raw body of one delta page at `link` (as for [`Self::page`]), asked with
    /// `Prefer: return=minimal` so an updated object carries only what changed, and with
    /// `x-ms-throttle-priority: low`: a sync is background work, which Graph throttles first
    /// so that reads a person waits for are spared.
    #[tracing::instrument(skip_all)]
    pub async fn delta_page(
        &self,
        link: &str,
        access_token: &Secret,
    ) -> Result<Vec<u8>, GraphError> {
        let request = self
            .http
            .get(self.link(link)?)
            .header("Prefer", "return=minimal")
            .header("x-ms-throttle-priority", "low");
        self.send(request, access_token).await
    }

    /// A path under the base, or an absolute link that must point at the configured Graph
    /// origin, so the bearer token is never sent elsewhere.
    fn link(&self, link: &str) -> Result<Url, GraphError> {
        if !link.contains("://") {
            return self.url(link);
        }
        let url = Url::parse(link).map_err(|e| GraphError::Decode(format!("bad link: {e}")))?;
        if url.origin() != self.base.origin() {
            return Err(GraphError::Decode(
                "link points outside the configured Graph origin".into(),
            ));
        }
        Ok(url)
    }

    /// GET `url` with the bearer token and decode the JSON answer, mapping Graph's errors.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        url: Url,
        access_token: &Secret,
    ) -> Result<T, GraphError> {
        let body = self.send(self.http.get(url), access_token).await?;
        serde_json::from_slice(&body).map_err(|e| GraphError::Decode(e.to_string()))
    }

    /// Sends `request` with the bearer token; the body of a success, else Graph's error.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        access_token: &Secret,
    ) -> Result<Vec<u8>, GraphError> {
        let transport = |e: reqwest::Error| GraphError::Transport(e.without_url().to_string());
        let request = request
            .bearer_auth(access_token.expose())
            .header(header::ACCEPT, "application/json")
            .build()
            .map_err(transport)?;
        let background = request
            .headers()
            .get("x-ms-throttle-priority")
            .is_some_and(|p| p == "low");
        if let (Some(meter), Some(charge), false) = (&self.meter, &self.charge, background) {
            meter.count(&charge.app, charge.tenant, request.url()).await;
        }
        let resp = self.http.execute(request).await.map_err(transport)?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp.bytes().await.map_err(transport)?.to_vec());
        }
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = resp.bytes().await.unwrap_or_default();
        Err(error_from(status, retry_after, &body))
    }
}

/// `Retry-After` in seconds; Graph sometimes sends fractions ("1.5"). HTTP dates are ignored.
fn parse_retry_after(v: &str) -> Option<Duration> {
    let secs: f64 = v.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

fn error_from(status: StatusCode, retry_after: Option<Duration>, body: &[u8]) -> GraphError {
    match status {
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => GraphError::Throttled {
            status: status.as_u16(),
            retry_after,
        },
        StatusCode::INTERNAL_SERVER_ERROR
        | StatusCode::BAD_GATEWAY
        | StatusCode::GATEWAY_TIMEOUT => GraphError::ServerError {
            status: status.as_u16(),
        },
        _ => match serde_json::from_slice::<ErrorBody>(body) {
            Ok(b) if status.is_client_error() && b.error.resync_code().is_some() => {
                GraphError::Resync {
                    status: status.as_u16(),
                    code: b.error.resync_code().unwrap_or_default().to_owned(),
                }
            }
            _ if status == StatusCode::GONE => GraphError::Resync {
                status: 410,
                code: String::new(),
            },
            // Remote text travels on into logs and stored errors: capped here, where it enters.
            Ok(b) => GraphError::Api {
                status: status.as_u16(),
                code: b.error.code.chars().take(100).collect(),
                message: b.error.message.chars().take(300).collect(),
            },
            Err(_) => GraphError::Api {
                status: status.as_u16(),
                code: String::new(),
                message: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_organization() {
        let body = r#"{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#organization","value":[{"id":"84DA47F5-0000-4000-8000-0000000000AA","displayName":"Contoso","verifiedDomains":[{"capabilities":"Email, OfficeCommunicationsOnline","isDefault":true,"isInitial":false,"name":"contoso.com","type":"Managed"},{"capabilities":"Email","isDefault":false,"isInitial":true,"name":"contoso.onmicrosoft.com","type":"Managed"}]}]}"#;
        let c: Collection<Organization> = serde_json::from_str(body).unwrap();
        let org = &c.value[0];
        assert_eq!(org.id.to_string(), "84da47f5-0000-4000-8000-0000000000aa");
        assert_eq!(org.display_name, "Contoso");
        assert_eq!(org.default_domain(), Some("contoso.com"));
        assert!(org.has_domain("CONTOSO.onmicrosoft.com"));
        assert!(!org.has_domain("fabrikam.com"));
    }

    #[test]
    fn maps_graph_errors() {
        let body = br#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation.","innerError":{"date":"2024-05-02T10:11:12","request-id":"5f1c","client-request-id":"5f1c"}}}"#;
        match error_from(StatusCode::FORBIDDEN, None, body) {
            e @ GraphError::Api { status: 403, .. } => {
                assert!(e.is_permission_denied());
                let GraphError::Api { code, .. } = e else {
                    unreachable!()
                };
                assert_eq!(code, "Authorization_RequestDenied");
            }
            other => panic!("{other:?}"),
        }
        let t = error_from(
            StatusCode::TOO_MANY_REQUESTS,
            parse_retry_after("1.5"),
            b"{}",
        );
        assert!(matches!(
            t,
            GraphError::Throttled { status: 429, retry_after: Some(d) } if d == Duration::from_millis(1500)
        ));
        assert!(error_from(StatusCode::GONE, None, b"").needs_resync());
        assert!(matches!(
            error_from(StatusCode::BAD_GATEWAY, None, b"<html>"),
            GraphError::ServerError { status: 502 }
        ));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn any_4xx_carrying_a_resync_code_at_any_depth_means_start_over() {
        let body = |code: &str, inner: &str| {
            format!(
                r#"{{"error":{{"code":"{code}","message":"m","innerError":{{"code":"{inner}","date":"2024-05-02T10:11:12"}}}}}}"#
            )
        };
        for (status, code, inner) in [
            (StatusCode::BAD_REQUEST, "syncStateNotFound", ""),
            (StatusCode::NOT_FOUND, "SyncStateNotFound", ""),
            (StatusCode::CONFLICT, "resyncRequired", ""),
            (
                StatusCode::BAD_REQUEST,
                "invalidRequest",
                "resyncApplyDifferences",
            ),
            (
                StatusCode::PRECONDITION_FAILED,
                "generalException",
                "resyncUploadDifferences",
            ),
        ] {
            let e = error_from(status, None, body(code, inner).as_bytes());
            assert!(e.needs_resync(), "{status} {code}/{inner}: {e:?}");
        }
        for (status, code) in [
            (StatusCode::BAD_REQUEST, "Request_BadRequest"),
            (StatusCode::FORBIDDEN, "Authorization_RequestDenied"),
        ] {
            assert!(!error_from(status, None, body(code, "").as_bytes()).needs_resync());
        }
        // A 5xx is Graph's own trouble, never a reason to throw the chain away.
        assert!(matches!(
            error_from(
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                body("syncStateNotFound", "").as_bytes()
            ),
            GraphError::ServerError { status: 500 }
        ));
    }

    #[test]
    fn builds_urls_under_the_base() {
        let g = GraphClient::new(
            Url::parse("http://127.0.0.1:9000").unwrap(),
            reqwest::Client::new(),
        );
        assert_eq!(
            g.url("v1.0/users?$top=1&$select=id").unwrap().as_str(),
            "http://127.0.0.1:9000/v1.0/users?$top=1&$select=id"
        );
        let g = GraphClient::new(
            Url::parse("http://127.0.0.1:9000/graph").unwrap(),
            reqwest::Client::new(),
        );
        assert_eq!(
            g.url("/v1.0/organization").unwrap().as_str(),
            "http://127.0.0.1:9000/graph/v1.0/organization"
        );
    }

    #[tokio::test]
    async fn refuses_links_to_other_origins() {
        let g = GraphClient::new(
            Url::parse("https://graph.microsoft.com").unwrap(),
            reqwest::Client::new(),
        );
        let err = g
            .page::<serde_json::Value>(
                "https://evil.example/v1.0/users?$skiptoken=x",
                &Secret::new("t"),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, GraphError::Decode(_)));
    }
}

#[cfg(test)]
mod http_tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::identity::test_http::{Handler, serve};

    async fn graph(seen: Arc<Mutex<Vec<(String, String)>>>) -> GraphClient {
        let handler: Arc<Handler> = Arc::new(move |_method, path, head, _body| {
            seen.lock()
                .unwrap()
                .push((path.to_owned(), head.to_owned()));
            if !head.contains("authorization: bearer good-token") {
                return (
                    401,
                    r#"{"error":{"code":"InvalidAuthenticationToken","message":"Access token validation failure."}}"#.into(),
                );
            }
            match path {
                "/v1.0/organization" => (
                    200,
                    r#"{"value":[{"id":"84da47f5-0000-4000-8000-0000000000aa","displayName":"Contoso","verifiedDomains":[{"name":"contoso.onmicrosoft.com","isDefault":true,"isInitial":true}]}]}"#.into(),
                ),
                "/v1.0/users?$top=1&$select=id" => (
                    403,
                    r#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation."}}"#.into(),
                ),
                _ => (404, "{}".into()),
            }
        });
        let base = serve(handler).await;
        GraphClient::new(Url::parse(&base).unwrap(), reqwest::Client::new())
    }

    #[tokio::test]
    async fn reads_organization_and_maps_denial() {
        let seen = Arc::default();
        let g = graph(Arc::clone(&seen)).await;
        let good = Secret::new("good-token");
        let org = g.organization(&good).await.unwrap();
        assert_eq!(org.display_name, "Contoso");
        let err = g.probe_users(&good).await.unwrap_err();
        assert!(err.is_permission_denied(), "{err:?}");
        let err = g.organization(&Secret::new("bad")).await.unwrap_err();
        assert!(
            matches!(&err, GraphError::Api { status: 401, code, .. } if code == "InvalidAuthenticationToken")
        );
        assert!(!err.to_string().contains("bad-token"));
        let seen = seen.lock().unwrap();
        assert_eq!(seen[1].0, "/v1.0/users?$top=1&$select=id");
    }
}
