//! An emulator on port 0, HTTP clients that keep cookies and never follow redirects, and one
//! request helper per common call.

use entra_emulator::{Emulator, Options};
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode, redirect};
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

/// The only scope the client-credentials grant accepts.
/// Role template id of Global Administrator, as `wids` and `roleTemplateId` carry it.
pub const GLOBAL_ADMIN: &str = "62e90394-69f5-4237-9190-012177145e10";
pub const GRAPH_DEFAULT: &str = "https://graph.microsoft.com/.default";

/// A fresh client with its own cookie jar that does not follow redirects.
pub fn browser() -> Client {
    Client::builder()
        .redirect(redirect::Policy::none())
        .cookie_store(true)
        .build()
        .expect("client")
}

/// GETs `url` with `client` and parses the JSON answer.
pub async fn get_json(client: &Client, url: &str) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
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
        let tenants = get_json(&http, &format!("{base}/_emulator/tenants")).await;
        Self {
            _emu: emu,
            base,
            http,
            tenants: serde_json::from_value(tenants).unwrap(),
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

    /// GETs `path` (from the base URL) and parses the JSON answer.
    pub async fn get_json(&self, path: &str) -> Value {
        get_json(&self.http, &format!("{}{path}", self.base)).await
    }

    /// POSTs JSON to the admin API and returns the answer.
    pub async fn admin_post(&self, path: &str, body: Value) -> Response {
        self.admin_request(Method::POST, path)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// POSTs JSON to the admin API, asserts 201 Created and returns what was created.
    pub async fn admin_create(&self, path: &str, body: Value) -> Value {
        let resp = self.admin_post(path, body).await;
        assert_eq!(resp.status(), StatusCode::CREATED);
        resp.json().await.unwrap()
    }

    /// PATCHes JSON on the admin API and returns the answer.
    pub async fn admin_patch(&self, path: &str, body: Value) -> Response {
        let req = self.admin_request(Method::PATCH, path).json(&body);
        req.send().await.unwrap()
    }

    /// DELETEs on the admin API and returns the answer.
    pub async fn admin_delete(&self, path: &str) -> Response {
        self.admin_request(Method::DELETE, path)
            .send()
            .await
            .unwrap()
    }

    fn admin_request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}/_emulator{path}", self.base))
    }

    /// Registers the provider's multi-tenant app in tenant 0.
    pub async fn provider_app(&self) -> TestApp {
        self.register(json!({
            "home_tenant": self.tid(0),
            "multi_tenant": true,
            "display_name": "Gangway",
            "redirect_uris": [REDIRECT],
            // ID tokens name the signer's directory roles (`wids`), as Gangway's registration asks.
            "group_membership_claims": "DirectoryRole",
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

    /// Asks for a client-credentials token for Graph (`client_secret_post`).
    pub async fn client_credentials(&self, tid: &str, app: &TestApp) -> Response {
        self.token(
            tid,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &app.client_id),
                ("client_secret", &app.secret),
                ("scope", GRAPH_DEFAULT),
            ],
        )
        .await
    }

    /// A client-credentials access token (asserts success).
    pub async fn app_token(&self, tid: &str, app: &TestApp) -> String {
        let resp = self.client_credentials(tid, app).await;
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

    /// [`TestEmu::graph`], parsed as JSON.
    pub async fn graph_json(&self, token: &str, path: &str) -> Value {
        self.graph(token, path).await.json().await.unwrap()
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
