//! The JSON API with access tokens Entra ID issues for the API the provider exposes on its own
//! app registration, through real HTTP against the emulator: users' tokens from the
//! authorization-code grant (and refresh), daemons' from client credentials, and the tokens
//! refused — forged, expired, for another audience or tenant, lacking the scope.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use entra_emulator::EmulatedLogin;
use gangway::web::paths;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Decision, TestApp, browser, consent_at_microsoft};
use crate::sso::Sso;
use crate::sync_console::tenant;

const SCOPE: &str = "Gangway.Manage";

/// The provider's registration as README says to set it up: operator sign-in (groups, user app
/// roles), "Expose an API" with the scope `Gangway.Manage` (and another), the application
/// roles `Gangway.Read` / `Gangway.Write` for daemons, and v2.0 access tokens.
async fn expose(app: &TestApp) -> Sso {
    expose_with(app, Some(2)).await
}

/// [`expose`] with `api.requestedAccessTokenVersion` set to `version` (`None`: left at
/// Microsoft's default, which mints v1.0 tokens).
async fn expose_with(app: &TestApp, version: Option<u8>) -> Sso {
    let sso = Sso::set_up(app).await;
    let user_role =
        |value: &str| json!({"value": value, "id": Uuid::new_v4(), "allowedMemberTypes": ["User"]});
    let app_role = |value: &str| json!({"value": value, "id": Uuid::new_v4(), "allowedMemberTypes": ["Application"]});
    let patched = reqwest::Client::new()
        .patch(format!(
            "{}/_emulator/apps/{}",
            app.emulator.base_url(),
            app.app.client_id
        ))
        .json(&json!({
            "app_roles": [
                user_role("Gangway.Admin"),
                user_role("Gangway.Viewer"),
                app_role("Gangway.Read"),
                app_role("Gangway.Write"),
            ],
            "oauth2_permission_scopes": [
                {"value": SCOPE, "id": Uuid::new_v4()},
                {"value": "Reports.Read", "id": Uuid::new_v4()},
            ],
            "requested_access_token_version": version,
        }))
        .send()
        .await
        .unwrap();
    assert!(patched.status().is_success(), "{}", patched.status());
    let body: Value = patched.json().await.unwrap();
    assert_eq!(
        body["identifier_uris"],
        json!([format!("api://{}", app.app.client_id)]),
        "the application ID URI defaults to api://{{client id}}"
    );
    sso
}

async fn token_endpoint(app: &TestApp, tenant: &str, form: &[(&str, &str)]) -> Value {
    let response = reqwest::Client::new()
        .post(format!(
            "{}/{tenant}/oauth2/v2.0/token",
            app.emulator.base_url()
        ))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Signs `login` in at the emulator for the provider app asking for `scope` (authorization
/// code), and redeems the code: the token response.
async fn user_grant(app: &TestApp, sso: &Sso, login: &EmulatedLogin, scope: &str) -> Value {
    let redirect = app.url(paths::SSO_CALLBACK);
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &app.app.client_id)
        .append_pair("response_type", "code")
        .append_pair("response_mode", "query")
        .append_pair("redirect_uri", &redirect)
        .append_pair("scope", &format!("openid profile offline_access {scope}"))
        .append_pair("state", "s")
        .finish();
    let start = format!(
        "{}/{}/oauth2/v2.0/authorize?{query}",
        app.emulator.base_url(),
        sso.tenant
    );
    let back = consent_at_microsoft(&browser(), &start, login, Decision::Accept).await;
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no code in {back}"));
    token_endpoint(
        app,
        &sso.tenant,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &app.app.client_id),
            ("client_secret", &app.app.client_secret),
            ("code", &code),
            ("redirect_uri", &redirect),
        ],
    )
    .await
}

async fn user_token(app: &TestApp, sso: &Sso, login: &EmulatedLogin, scope: &str) -> String {
    let grant = user_grant(app, sso, login, scope).await;
    grant["access_token"].as_str().unwrap().to_owned()
}

fn manage(app: &TestApp) -> String {
    format!("api://{}/{SCOPE}", app.app.client_id)
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Calls the API with `token`: status and body.
async fn call(app: &TestApp, method: reqwest::Method, path: &str, token: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .request(method, app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn last_sync_actor(app: &TestApp) -> String {
    sqlx::query_scalar(
        "select actor from audit_events where action = 'sync.requested' order by id desc limit 1",
    )
    .fetch_one(&app.db)
    .await
    .unwrap()
}

/// A daemon registered in the provider's tenant, granted `roles` of the provider's API; its
/// client-credentials token for `api://{client id}/.default`.
async fn daemon_token(app: &TestApp, sso: &Sso, roles: &[&str]) -> (String, String) {
    let daemon = app
        .admin
        .register_app(&json!({"home_tenant": sso.tenant, "display_name": "Nightly job"}))
        .await
        .unwrap();
    for role in roles {
        app.admin
            .post(
                &format!(
                    "/_emulator/tenants/{}/apps/{}/app-role-grants",
                    sso.tenant, app.app.client_id
                ),
                &json!({"client_id": daemon.client_id, "role": role}),
            )
            .await
            .unwrap();
    }
    let grant = token_endpoint(
        app,
        &sso.tenant,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &daemon.client_id),
            ("client_secret", &daemon.client_secret),
            ("scope", &format!("api://{}/.default", app.app.client_id)),
        ],
    )
    .await;
    (
        grant["access_token"].as_str().unwrap().to_owned(),
        daemon.client_id,
    )
}

#[tokio::test]
async fn a_users_token_for_the_exposed_scope_reads_and_writes_as_their_groups_map_and_the_audit_names_them()
 {
    let app = TestApp::spawn().await;
    let sso = expose(&app).await;
    let id = tenant(&app, "Contoso").await;
    let sync = format!("/api/v1/tenants/{id}/sync");

    let admin = sso.user(&app, "ada", &[&sso.admin_group]).await;
    let grant = user_grant(&app, &sso, &admin, &manage(&app)).await;
    let token = grant["access_token"].as_str().unwrap().to_owned();
    let said = claims(&token);
    assert_eq!(said["aud"], app.app.client_id.as_str());
    assert_eq!(said["ver"], "2.0");
    assert_eq!(said["scp"], SCOPE);
    assert_eq!(said["upn"], admin.username.as_str());
    assert_eq!(said["azp"], app.app.client_id.as_str());
    assert_eq!(
        said["iss"],
        format!("{}/{}/v2.0", app.emulator.base_url(), sso.tenant)
    );
    assert_eq!(said["groups"], json!([sso.admin_group]));
    assert_eq!(grant["scope"], format!("{} openid profile", manage(&app)));

    let (status, body) = call(&app, reqwest::Method::GET, "/api/v1/tenants", &token).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(&app, reqwest::Method::POST, &sync, &token).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        last_sync_actor(&app).await,
        format!("api:{}", admin.username)
    );

    // An Entra caller's retries are safe too: the same key and request answer the same.
    let mut answers = Vec::new();
    for _ in 0..2 {
        let response = reqwest::Client::new()
            .post(app.url("/api/v1/invitations"))
            .bearer_auth(&token)
            .header("Idempotency-Key", "order-1")
            .json(&json!({"customer": "Contoso", "admin_email": "it@contoso.example", "mode": "application"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        answers.push(response.json::<Value>().await.unwrap());
    }
    assert_eq!(
        answers[0], answers[1],
        "one invitation for the retried request"
    );

    // The OpenAPI document names both kinds of bearer.
    let doc: Value = reqwest::get(app.url(paths::API_OPENAPI))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let scheme = &doc["components"]["securitySchemes"]["api_token"];
    assert!(
        scheme["description"].as_str().unwrap().contains(SCOPE)
            && scheme["bearerFormat"].as_str().unwrap().contains("Entra"),
        "{scheme}"
    );

    // The refresh token gets another access token for the API.
    let refreshed = token_endpoint(
        &app,
        &sso.tenant,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &app.app.client_id),
            ("client_secret", &app.app.client_secret),
            ("refresh_token", grant["refresh_token"].as_str().unwrap()),
            ("scope", &manage(&app)),
        ],
    )
    .await;
    let again = refreshed["access_token"].as_str().unwrap();
    assert_eq!(claims(again)["scp"], SCOPE);
    let (status, _) = call(&app, reqwest::Method::GET, "/api/v1/tenants", again).await;
    assert_eq!(status, 200);

    // A viewer reads and cannot act; someone mapped to nothing gets a 403 saying why.
    let viewer = sso.user(&app, "vic", &[&sso.viewer_group]).await;
    let token = user_token(&app, &sso, &viewer, &manage(&app)).await;
    let (status, _) = call(&app, reqwest::Method::GET, "/api/v1/tenants", &token).await;
    assert_eq!(status, 200);
    let (status, body) = call(&app, reqwest::Method::POST, &sync, &token).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("may only read"));

    let nobody = sso.user(&app, "nel", &[]).await;
    let token = user_token(&app, &sso, &nobody, &manage(&app)).await;
    let (status, body) = call(&app, reqwest::Method::GET, "/api/v1/tenants", &token).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("None of")
            && body["detail"].as_str().unwrap().contains(&nobody.username),
        "{body}"
    );

    // An app role held by the user maps as for operator sign-in.
    app.admin
        .post(
            &format!(
                "/_emulator/tenants/{}/apps/{}/role-assignments",
                sso.tenant, app.app.client_id
            ),
            &json!({"user": nobody.id, "role": "Gangway.Admin"}),
        )
        .await
        .unwrap();
    let token = user_token(&app, &sso, &nobody, &manage(&app)).await;
    assert_eq!(claims(&token)["roles"], json!(["Gangway.Admin"]));
    let (status, body) = call(&app, reqwest::Method::POST, &sync, &token).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        last_sync_actor(&app).await,
        format!("api:{}", nobody.username)
    );
}

#[tokio::test]
async fn forged_expired_foreign_and_unscoped_tokens_are_refused() {
    let app = TestApp::spawn().await;
    // Before the provider's tenant is set, Entra tokens cannot be checked: 401 saying so.
    let (status, body) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/tenants",
        "eyJhbGciOiJSUzI1NiJ9.eyJ9.c2ln",
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("provider_tenant_id"),
        "{body}"
    );

    let sso = expose(&app).await;
    let admin = sso.user(&app, "ada", &[&sso.admin_group]).await;
    let good = user_token(&app, &sso, &admin, &manage(&app)).await;
    let (status, _) = call(&app, reqwest::Method::GET, "/api/v1/tenants", &good).await;
    assert_eq!(status, 200);

    for (kind, says) in [
        ("wrong_key", "signature"),
        ("expired", "expired"),
        ("wrong_aud", "audience"),
        ("wrong_iss", "tenant"),
        ("alg_none", "RS256"),
    ] {
        app.admin
            .post(
                "/_emulator/forgeries",
                &json!({"kind": kind, "token": "access_token"}),
            )
            .await
            .unwrap();
        let forged = user_token(&app, &sso, &admin, &manage(&app)).await;
        let (status, body) = call(&app, reqwest::Method::GET, "/api/v1/tenants", &forged).await;
        assert_eq!(status, 401, "{kind}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains(says),
            "{kind}: {body}"
        );
    }

    // A genuine token for another app's API (another audience).
    let other = app
        .admin
        .register_app(&json!({
            "home_tenant": sso.tenant,
            "display_name": "Another API",
            "oauth2_permission_scopes": [{"value": SCOPE, "id": Uuid::new_v4()}],
        }))
        .await
        .unwrap();
    let foreign = user_token(
        &app,
        &sso,
        &admin,
        &format!("api://{}/{SCOPE}", other.client_id),
    )
    .await;
    assert!(
        claims(&foreign)["aud"]
            .as_str()
            .unwrap()
            .ends_with(&other.client_id)
    );
    let (status, body) = call(&app, reqwest::Method::GET, "/api/v1/tenants", &foreign).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("audience"));

    // A genuine token of this API without the scope Gangway.Manage.
    let unscoped = user_token(
        &app,
        &sso,
        &admin,
        &format!("api://{}/Reports.Read", app.app.client_id),
    )
    .await;
    assert_eq!(claims(&unscoped)["scp"], "Reports.Read");
    let (status, body) = call(&app, reqwest::Method::GET, "/api/v1/tenants", &unscoped).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["detail"].as_str().unwrap().contains(SCOPE), "{body}");

    // A Graph token is no token for this API.
    let graph = user_token(&app, &sso, &admin, "User.Read").await;
    let (status, _) = call(&app, reqwest::Method::GET, "/api/v1/tenants", &graph).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn daemon_tokens_read_with_gangway_read_and_write_with_gangway_write() {
    let app = TestApp::spawn().await;
    let sso = expose(&app).await;
    let id = tenant(&app, "Contoso").await;
    let sync = format!("/api/v1/tenants/{id}/sync");

    let (reader, _) = daemon_token(&app, &sso, &["Gangway.Read"]).await;
    let said = claims(&reader);
    assert_eq!(said["roles"], json!(["Gangway.Read"]));
    assert_eq!(said["aud"], app.app.client_id.as_str());
    assert_eq!(said["idtyp"], "app");
    assert!(said.get("scp").is_none());
    let (status, body) = call(&app, reqwest::Method::GET, "/api/v1/tenants", &reader).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(&app, reqwest::Method::POST, &sync, &reader).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("Gangway.Write"),
        "{body}"
    );

    let (writer, writer_id) = daemon_token(&app, &sso, &["Gangway.Write"]).await;
    let (status, body) = call(&app, reqwest::Method::POST, &sync, &writer).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(last_sync_actor(&app).await, format!("api:{writer_id}"));

    // No app role granted: the token names none, and the API grants nothing.
    let (none, _) = daemon_token(&app, &sso, &[]).await;
    assert!(claims(&none).get("roles").is_none());
    let (status, _) = call(&app, reqwest::Method::GET, "/api/v1/tenants", &none).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn v1_access_tokens_are_accepted_when_the_registration_leaves_the_version_at_microsofts_default()
 {
    let app = TestApp::spawn().await;
    let sso = expose_with(&app, None).await;
    let id = tenant(&app, "Contoso").await;
    let admin = sso.user(&app, "ada", &[&sso.admin_group]).await;

    let token = user_token(&app, &sso, &admin, &manage(&app)).await;
    let said = claims(&token);
    assert_eq!(said["ver"], "1.0");
    assert_eq!(
        said["iss"],
        format!("https://sts.windows.net/{}/", sso.tenant)
    );
    assert_eq!(said["aud"], format!("api://{}", app.app.client_id));
    assert_eq!(said["appid"], app.app.client_id.as_str());
    assert!(said.get("azp").is_none());
    let (status, body) = call(&app, reqwest::Method::GET, "/api/v1/tenants", &token).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/tenants/{id}/sync"),
        &token,
    )
    .await;
    assert_eq!(status, 202, "{body}");

    // A daemon's v1.0 token names its application in appid.
    let (writer, writer_id) = daemon_token(&app, &sso, &["Gangway.Write"]).await;
    assert_eq!(claims(&writer)["appid"], writer_id.as_str());
    let (status, body) = call(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/tenants/{id}/sync"),
        &writer,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(last_sync_actor(&app).await, format!("api:{writer_id}"));

    // Held to the v1.0 shape: another tenant's STS is refused, saying which issuer counts.
    app.admin
        .post(
            "/_emulator/forgeries",
            &json!({"kind": "wrong_iss", "token": "access_token"}),
        )
        .await
        .unwrap();
    let forged = user_token(&app, &sso, &admin, &manage(&app)).await;
    assert!(
        claims(&forged)["iss"]
            .as_str()
            .unwrap()
            .starts_with("https://sts.windows.net/")
    );
    let (status, body) = call(&app, reqwest::Method::GET, "/api/v1/tenants", &forged).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("https://sts.windows.net/"),
        "{body}"
    );
}
