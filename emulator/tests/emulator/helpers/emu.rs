//! Shared test helpers: an emulator on port 0, HTTP clients that keep cookies and never follow
//! redirects, and one helper per common step.

use std::collections::HashMap;

use entra_emulator::{Emulator, Options};
use reqwest::{Client, Response, StatusCode, redirect};
use serde_json::{Value, json};

/// A running emulator plus the seeded tenants as the admin API lists them.
pub struct TestEmu {
    /// Kept so the server lives as long as the test.
    _emu: Emulator,
    pub base: String,
    pub http: Client,
    pub tenants: Vec<Value>,
}

/// A registered app.
#[derive(Clone, Debug)]
pub struct TestApp {
    pub client_id: String,
    pub secret: String,
}

/// Default redirect URI used by test apps.
pub const REDIRECT: &str = "http://localhost:8080/authenticate/OAuth2Callback";

/// A fresh client with its own cookie jar that does not follow redirects.
pub fn browser() -> Client {
    Client::builder()
        .redirect(redirect::Policy::none())
        .cookie_store(true)
        .build()
        .expect("client")
}

impl TestEmu {
    /// 3 tenants × 25 users × 4 groups, seed 7.
    pub async fn start() -> Self {
        Self::with(Options {
            tenants: 3,
            users: 25,
            groups: 4,
            seed: 7,
            ..Options::default()
        })
        .await
    }

    /// An emulator with the given options.
    pub async fn with(opts: Options) -> Self {
        let emu = Emulator::start(Options {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..opts
        })
        .await
        .expect("emulator starts");
        let base = emu.base_url().to_string();
        let http = browser();
        let tenants: Vec<Value> = http
            .get(format!("{base}/_emulator/tenants"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Self {
            _emu: emu,
            base,
            http,
            tenants,
        }
    }

    /// Tenant `i`'s id.
    pub fn tid(&self, i: usize) -> String {
        self.tenants[i]["id"].as_str().unwrap().to_string()
    }

    /// Tenant `i`'s admin (username, password).
    pub fn admin(&self, i: usize) -> (String, String) {
        login(&self.tenants[i]["admin"])
    }

    /// Tenant `i`'s plain member (username, password).
    pub fn member(&self, i: usize) -> (String, String) {
        login(&self.tenants[i]["member"])
    }

    /// POSTs JSON to the admin API and returns the answer.
    pub async fn admin_post(&self, path: &str, body: Value) -> Response {
        self.http
            .post(format!("{}/_emulator{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Registers the provider's multi-tenant app in tenant 0.
    pub async fn provider_app(&self) -> TestApp {
        self.register(json!({
            "home_tenant": self.tid(0),
            "multi_tenant": true,
            "display_name": "Gangway",
            "redirect_uris": [REDIRECT],
            "permissions": {
                "delegated": ["User.Read", "User.Read.All", "Group.Read.All"],
                "application": ["User.Read.All", "Group.Read.All", "Organization.Read.All"],
            },
        }))
        .await
    }

    /// Registers an app from a full admin-API body.
    pub async fn register(&self, body: Value) -> TestApp {
        let resp = self.admin_post("/apps", body).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        let v: Value = resp.json().await.unwrap();
        TestApp {
            client_id: v["client_id"].as_str().unwrap().into(),
            secret: v["client_secret"].as_str().unwrap().into(),
        }
    }

    /// Grants application permissions to `app` in tenant `tid` through the admin API.
    pub async fn grant(&self, tid: &str, app: &TestApp, application: &[&str]) {
        let resp = self
            .admin_post(
                &format!("/tenants/{tid}/consents"),
                json!({"client_id": app.client_id, "application": application}),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
    }

    /// POSTs a form to a tenant's token endpoint.
    pub async fn token(&self, tenant: &str, form: &[(&str, &str)]) -> Response {
        self.http
            .post(format!("{}/{tenant}/oauth2/v2.0/token", self.base))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// A client-credentials access token (asserts success).
    pub async fn app_token(&self, tid: &str, app: &TestApp) -> String {
        let resp = self
            .token(
                tid,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", &app.client_id),
                    ("client_secret", &app.secret),
                    ("scope", "https://graph.microsoft.com/.default"),
                ],
            )
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        let v: Value = resp.json().await.unwrap();
        v["access_token"].as_str().unwrap().to_string()
    }

    /// GET on Graph with a bearer token; `path` starts with `/v1.0/` or is a full URL.
    pub async fn graph(&self, token: &str, path: &str) -> Response {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        self.http.get(url).bearer_auth(token).send().await.unwrap()
    }

    /// An app-only token for tenant `i` with every directory read permission.
    pub async fn reader(&self, i: usize) -> String {
        let app = self.provider_app().await;
        self.grant(
            &self.tid(i),
            &app,
            &["User.Read.All", "Group.Read.All", "Organization.Read.All"],
        )
        .await;
        self.app_token(&self.tid(i), &app).await
    }
}

fn login(v: &Value) -> (String, String) {
    (
        v["username"].as_str().unwrap().to_string(),
        v["password"].as_str().unwrap().to_string(),
    )
}

/// Value of a hidden input `name` in an HTML page.
pub fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no field {name} in page:\n{html}"))
        + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end]
        .replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
}

/// The `Location` of a redirect, as a URL.
pub fn location(resp: &Response) -> url::Url {
    assert_eq!(resp.status(), StatusCode::FOUND, "expected a redirect");
    let loc = resp.headers()["location"].to_str().unwrap();
    url::Url::parse(loc).unwrap()
}

/// Query parameters of a URL.
pub fn params(url: &url::Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

/// GETs `url` in `client` and returns (status, body).
pub async fn page(client: &Client, url: &str) -> (StatusCode, String) {
    let resp = client.get(url).send().await.unwrap();
    (resp.status(), resp.text().await.unwrap())
}

/// Submits the sign-in form found in `html`; returns the raw answer.
pub async fn sign_in(
    client: &Client,
    base: &str,
    html: &str,
    user: &str,
    password: &str,
) -> Response {
    assert!(
        html.contains("id=\"idSIButton9\""),
        "not a sign-in page:\n{html}"
    );
    let action = form_action(html);
    let ctx = hidden(html, "ctx");
    client
        .post(format!("{base}{action}"))
        .form(&[("ctx", ctx.as_str()), ("login", user), ("passwd", password)])
        .send()
        .await
        .unwrap()
}

/// Clicks Accept (`accept`) or Cancel (`decline`) on a consent page.
pub async fn decide(client: &Client, base: &str, html: &str, decision: &str) -> Response {
    assert!(
        html.contains("id=\"idBtn_Accept\"") && html.contains("id=\"idBtn_Back\""),
        "not a consent page:\n{html}"
    );
    let action = form_action(html);
    let ctx = hidden(html, "ctx");
    client
        .post(format!("{base}{action}"))
        .form(&[("ctx", ctx.as_str()), ("decision", decision)])
        .send()
        .await
        .unwrap()
}

fn form_action(html: &str) -> String {
    let marker = "action=\"";
    let start = html.find(marker).unwrap() + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_string()
}

/// Asserts Microsoft's token-endpoint error shape and returns the body.
pub async fn aad_error(resp: Response, status: StatusCode, error: &str, code: u64) -> Value {
    assert_eq!(resp.status(), status);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"], error, "{v}");
    assert_eq!(v["error_codes"], json!([code]), "{v}");
    let desc = v["error_description"].as_str().unwrap();
    assert!(desc.starts_with(&format!("AADSTS{code}: ")), "{desc}");
    for part in ["Trace ID: ", "Correlation ID: ", "Timestamp: "] {
        assert!(desc.contains(part), "{desc}");
    }
    for field in ["timestamp", "trace_id", "correlation_id", "error_uri"] {
        assert!(v[field].is_string(), "{field} missing in {v}");
    }
    v
}

/// Asserts Graph's error shape and returns the code.
pub async fn graph_error(resp: Response, status: StatusCode) -> String {
    assert_eq!(resp.status(), status);
    let v: Value = resp.json().await.unwrap();
    let inner = &v["error"]["innerError"];
    assert!(
        inner["request-id"].is_string() && inner["date"].is_string(),
        "{v}"
    );
    assert!(v["error"]["message"].is_string());
    v["error"]["code"].as_str().unwrap().to_string()
}
