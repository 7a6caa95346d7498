//! The JSON API through real HTTP: tokens made in the console, scopes, problem details, cursor
//! pages, the directory copy, sync, schedule, offboarding and the OpenAPI document.

use std::time::Duration;

use gangway::operators::Role;
use gangway::web::paths;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::api_token_use::{last_use_recorded, refused_within_the_bound};
use crate::helpers::{TestApp, input_value};
use crate::sync_console::{group, member, tenant, user};

/// Creates a token in the console as the signed-in admin and returns it (shown once).
pub(crate) async fn token(app: &TestApp, name: &str, scope: &str) -> String {
    let response = app
        .post_and_follow(
            paths::API_TOKENS,
            &[("name", name), ("scope", scope), ("valid_days", "90")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.unwrap();
    let token = page
        .split("id=\"new-token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the new token is shown")
        .to_owned();
    assert!(token.starts_with("gw_") && token.len() > 40, "{token}");
    token
}

/// Calls the API, with `token` if given; the status, headers and JSON body (null if none).
pub(crate) async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = reqwest::Client::new().request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let body = response.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

fn is_problem(headers: &reqwest::header::HeaderMap, body: &Value, status: u16) -> bool {
    headers
        .get("content-type")
        .is_some_and(|v| v == "application/problem+json")
        && body["status"] == status
        && body["title"].is_string()
        && body["detail"].as_str().is_some_and(|d| !d.is_empty())
}

#[tokio::test]
async fn reloading_the_new_token_page_neither_shows_it_again_nor_makes_another() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let created = app
        .post_form(
            paths::API_TOKENS,
            &[("name", "crm"), ("scope", "read"), ("valid_days", "90")],
        )
        .await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER, "post/redirect/get");
    let to = crate::helpers::location(created).await;
    let shown = app.get(&to).await.text().await.unwrap();
    let token = shown
        .split("id=\"new-token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("shown on the page the POST led to");
    let reloaded = app.get(&to).await.text().await.unwrap();
    assert!(!reloaded.contains("id=\"new-token\"") && !reloaded.contains(token));
    let count: i64 = sqlx::query_scalar("select count(*) from api_tokens")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn tokens_are_shown_once_scoped_and_refused_once_revoked_or_expired() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let reader = token(&app, "dashboards", "read").await;
    let writer = token(&app, "provisioning", "write").await;
    let stored: i64 = sqlx::query_scalar("select count(*) from api_tokens where position($1 in name) > 0 or token_sha256 = convert_to($1, 'utf8')")
        .bind(&reader)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stored, 0, "only a hash is kept");
    let page = app.get(paths::API_TOKENS).await.text().await.unwrap();
    assert!(!page.contains(&reader) && page.contains("dashboards") && page.contains("never"));

    let (status, headers, body) =
        call(&app, reqwest::Method::GET, "/api/v1/tenants", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(is_problem(&headers, &body, 401), "{body}");
    assert_eq!(headers.get("www-authenticate").unwrap(), "Bearer");
    let (status, ..) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/tenants",
        Some("gw_not-a-token"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, body) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/tenants",
        Some(&reader),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"items": [], "next_cursor": null}));
    last_use_recorded(&app, "dashboards", None, Duration::from_secs(5)).await;
    let page = app.get(paths::API_TOKENS).await.text().await.unwrap();
    assert!(
        page.contains("from 127.0.0.1"),
        "last use and address are shown"
    );

    // A read token cannot act; a write token can.
    let id = tenant(&app, "Contoso").await;
    let sync = format!("/api/v1/tenants/{id}/sync");
    let (status, headers, body) =
        call(&app, reqwest::Method::POST, &sync, Some(&reader), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        is_problem(&headers, &body, 403)
            && body["detail"].as_str().unwrap().contains("write token")
    );
    let (status, _, body) = call(&app, reqwest::Method::POST, &sync, Some(&writer), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert!(body["job_id"].is_i64());
    let actor: String = sqlx::query_scalar(
        "select actor from audit_events where action = 'sync.requested' order by id desc limit 1",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(actor, "api-token:provisioning");

    // A token revoked in the console stops working at once; one expired meanwhile, within
    // the bound.
    let revoke_id: Uuid =
        sqlx::query_scalar("select id from api_tokens where name = 'provisioning'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    let csrf_page = app.get(paths::API_TOKENS).await.text().await.unwrap();
    assert!(input_value(&csrf_page, "csrf_token").is_some());
    let revoked = app
        .post_form(&paths::api_token_revoke(revoke_id.into()), &[])
        .await;
    assert_eq!(revoked.status(), StatusCode::SEE_OTHER);
    let (status, ..) = call(&app, reqwest::Method::POST, &sync, Some(&writer), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    sqlx::query(
        "update api_tokens set expires_at = now() - interval '1 second' where name = 'dashboards'",
    )
    .execute(&app.db)
    .await
    .unwrap();
    refused_within_the_bound(&app, &reader).await;
    let page = app.get(paths::API_TOKENS).await.text().await.unwrap();
    assert!(page.contains("revoked") && page.contains("expired"));

    let refused = app
        .post_form(
            paths::API_TOKENS,
            &[("name", ""), ("scope", "read"), ("valid_days", "90")],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn tenants_runs_and_the_directory_page_by_cursor_and_errors_are_problems() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let read = token(&app, "reader", "read").await;
    let write = token(&app, "writer", "write").await;
    let a = tenant(&app, "Contoso").await;
    let b = tenant(&app, "Fabrikam").await;
    let get = |path: String| {
        let read = read.clone();
        let app = &app;
        async move { call(app, reqwest::Method::GET, &path, Some(&read), None).await }
    };

    // Tenants, one per page.
    let (status, _, first) = get("/api/v1/tenants?limit=1".into()).await;
    assert_eq!(status, StatusCode::OK);
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let (_, _, second) = get(format!("/api/v1/tenants?limit=1&cursor={cursor}")).await;
    let (_, _, third) = get(format!(
        "/api/v1/tenants?limit=1&cursor={}",
        second["next_cursor"].as_str().unwrap()
    ))
    .await;
    let mut seen: Vec<String> = [&first, &second]
        .iter()
        .map(|p| p["items"][0]["id"].as_str().unwrap().to_owned())
        .collect();
    seen.sort();
    let mut expected = vec![a.to_string(), b.to_string()];
    expected.sort();
    assert_eq!(seen, expected);
    assert_eq!(third, json!({"items": [], "next_cursor": null}));
    for bad in ["/api/v1/tenants?limit=0", "/api/v1/tenants?cursor=nope"] {
        let (status, headers, body) = get(bad.into()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(is_problem(&headers, &body, 400));
    }
    let (status, _, detail) = get(format!("/api/v1/tenants/{a}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["display_name"], "Contoso");
    assert_eq!(detail["sync"]["schedule"], "every 1h");
    for missing in [
        format!("/api/v1/tenants/{}", Uuid::new_v4()),
        "/api/v1/tenants/nope".into(),
        "/api/v1/nothing".into(),
    ] {
        let (status, headers, body) = get(missing.clone()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
        assert!(is_problem(&headers, &body, 404), "{missing}: {body}");
    }

    // The directory copy: cursor, search, changed since, members.
    let adele = user(
        &app,
        a,
        "Adele Vance",
        "adele@contoso.example",
        Some("adele@mail.example"),
        false,
    )
    .await;
    let alex = user(&app, a, "Alex Wilber", "alex@contoso.example", None, true).await;
    user(&app, b, "Other Tenant", "x@fabrikam.example", None, false).await;
    sqlx::query(
        "update directory_users set updated_at = now() - interval '2 days' where object_id = $1",
    )
    .bind(alex)
    .execute(&app.db)
    .await
    .unwrap();
    let sales = group(&app, a, "Sales", Some("sales@contoso.example")).await;
    member(&app, a, sales, adele, "user").await;
    member(&app, a, sales, Uuid::new_v4(), "device").await;
    let (_, _, page) = get(format!("/api/v1/tenants/{a}/users?limit=1")).await;
    let (_, _, rest) = get(format!(
        "/api/v1/tenants/{a}/users?limit=1&cursor={}",
        page["next_cursor"].as_str().unwrap()
    ))
    .await;
    let mut ids = vec![
        page["items"][0]["object_id"].clone(),
        rest["items"][0]["object_id"].clone(),
    ];
    ids.sort_by_key(|v| v.as_str().unwrap().to_owned());
    let mut want = vec![json!(adele), json!(alex)];
    want.sort_by_key(|v| v.as_str().unwrap().to_owned());
    assert_eq!(ids, want, "only this tenant's users, each once");
    let (_, _, found) = get(format!("/api/v1/tenants/{a}/users?search=MAIL.EXAMPLE")).await;
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    assert_eq!(found["items"][0]["display_name"], "Adele Vance");
    let since = (time::OffsetDateTime::now_utc() - time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (_, _, recent) = get(format!(
        "/api/v1/tenants/{a}/users?updated_since={}",
        urlencode(&since)
    ))
    .await;
    assert_eq!(recent["items"].as_array().unwrap().len(), 1, "{recent}");
    let (status, ..) = get(format!("/api/v1/tenants/{a}/users?updated_since=yesterday")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, _, groups) = get(format!("/api/v1/tenants/{a}/groups")).await;
    assert_eq!(groups["items"][0]["members"], 2);
    let (_, _, members) = get(format!("/api/v1/tenants/{a}/groups/{sales}/members")).await;
    assert_eq!(members["items"].as_array().unwrap().len(), 2);
    let (status, ..) = get(format!("/api/v1/tenants/{b}/groups/{sales}/members")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "scoped by tenant");

    // Runs, schedule, offboarding.
    sqlx::query("insert into sync_runs (tenant_id, trigger, outcome, finished_at, added) values ($1, 'first', 'succeeded', now(), 3), ($1, 'manual', 'failed', now(), 0)")
        .bind(a)
        .execute(&app.db)
        .await
        .unwrap();
    let (_, _, runs) = get(format!("/api/v1/tenants/{a}/sync-runs?limit=1")).await;
    assert_eq!(runs["items"][0]["trigger"], "manual");
    let (_, _, older) = get(format!(
        "/api/v1/tenants/{a}/sync-runs?cursor={}",
        runs["next_cursor"].as_str().unwrap()
    ))
    .await;
    assert_eq!(older["items"][0]["added"], 3);
    let schedule = format!("/api/v1/tenants/{a}/schedule");
    let (status, headers, body) = call(
        &app,
        reqwest::Method::PUT,
        &schedule,
        Some(&write),
        Some(json!({"schedule": "every 2m"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        is_problem(&headers, &body, 422) && body["detail"].as_str().unwrap().contains("5 minutes")
    );
    let (status, _, body) = call(
        &app,
        reqwest::Method::PUT,
        &schedule,
        Some(&write),
        Some(json!({"schedule": "daily 02:30 Europe/Berlin"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sync"]["schedule"], "daily 02:30 Europe/Berlin");
    let offboard = format!("/api/v1/tenants/{a}/offboard");
    let (status, _, body) = call(&app, reqwest::Method::POST, &offboard, Some(&write), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "offboarded");
    let (status, headers, body) =
        call(&app, reqwest::Method::POST, &offboard, Some(&write), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(is_problem(&headers, &body, 409));
    let (_, _, gone) = get(format!("/api/v1/tenants/{a}/users")).await;
    assert_eq!(
        gone["items"],
        json!([]),
        "the copy went with the offboarding"
    );
    let (status, ..) = call(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/tenants/{a}/sync"),
        Some(&write),
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "an offboarded tenant is not synced"
    );
}

#[tokio::test]
async fn a_users_page_written_by_postgres_is_the_documented_shape_with_times_as_serde_writes_them()
{
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let read = token(&app, "reader", "read").await;
    let a = tenant(&app, "Contoso").await;
    user(&app, a, "Adele Vance", "adele@contoso.example", None, true).await;
    let quoted = user(
        &app,
        a,
        "Alex \"W\" \\ Ünal",
        "alex@contoso.example",
        None,
        false,
    )
    .await;
    // Nulls, an empty list, a whole second and a fraction with trailing zeros trimmed.
    sqlx::query(
        "update directory_users set mail = null, business_phones = '{}', account_enabled = null,
                last_seen_at = '2026-12-01T09:30:00Z', updated_at = '2026-12-01T09:30:00.120+02:00'
         where object_id = $1",
    )
    .bind(quoted)
    .execute(&app.db)
    .await
    .unwrap();
    let (status, headers, page) = call(
        &app,
        reqwest::Method::GET,
        &format!("/api/v1/tenants/{a}/users?limit=2"),
        Some(&read),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    let (rows, _) = gangway::directory::views::users(&app.db, a, None, None, 10, 0)
        .await
        .unwrap();
    let mut want: Vec<Value> = rows
        .iter()
        .map(|u| serde_json::to_value(u).unwrap())
        .collect();
    want.sort_by_key(|u| u["object_id"].as_str().unwrap().to_owned());
    assert_eq!(
        page["items"],
        json!(want),
        "as serde writes a DirectoryUser"
    );
    let last = want[1]["object_id"].clone();
    assert_eq!(page["next_cursor"], last, "a full page names its last id");
    let alex = want
        .iter()
        .find(|u| u["object_id"] == json!(quoted))
        .unwrap();
    assert_eq!(alex["updated_at"], "2026-12-01T07:30:00.12Z");
    assert_eq!(alex["last_seen_at"], "2026-12-01T09:30:00Z");
    let (_, _, rest) = call(
        &app,
        reqwest::Method::GET,
        &format!(
            "/api/v1/tenants/{a}/users?limit=2&cursor={}",
            last.as_str().unwrap()
        ),
        Some(&read),
        None,
    )
    .await;
    assert_eq!(rest, json!({"items": [], "next_cursor": null}));
}

/// A users page after the first is read from the covering index alone (no heap page per row),
/// by a statement whose page size is written in, so Postgres may keep its generic plan.
#[tokio::test]
async fn a_users_page_is_an_index_only_keyset_scan_with_the_page_size_written_in() {
    let app = TestApp::spawn().await;
    let a = tenant(&app, "Contoso").await;
    sqlx::query(
        "insert into directory_users (tenant_id, object_id, display_name, user_principal_name,
                                      seen_round)
         select $1, gen_random_uuid(), 'User ' || i, 'user' || i || '@contoso.example', 1
         from generate_series(1, 1000) i",
    )
    .bind(a)
    .execute(&app.db)
    .await
    .unwrap();
    // The visibility map an index-only scan needs, as autovacuum sets it after a sync.
    sqlx::raw_sql("vacuum analyze directory_users")
        .execute(&app.db)
        .await
        .unwrap();
    // One connection: the statements the pages prepared are the ones looked at.
    let db = gangway::db::connect(&app.database_url, 1).await.unwrap();
    let mut after = None;
    for _ in 0..3 {
        let page = gangway::directory::feed::users(&db, a, after, None, None, 100)
            .await
            .unwrap();
        assert_eq!(page.len(), 100);
        after = page.last().map(|u| u.object_id);
    }
    let (name, statement): (String, String) = sqlx::query_as(
        "select name, statement from pg_prepared_statements
         where statement like 'select object_id,%from directory_users%object_id >%'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert!(statement.ends_with("limit 100"), "{statement}");
    let plan: Vec<String> = sqlx::query_scalar(&format!(
        "explain execute {name}('{a}', '{}')",
        after.unwrap()
    ))
    .fetch_all(&db)
    .await
    .unwrap();
    assert!(
        plan.iter()
            .any(|line| line.contains("Index Only Scan using directory_users_page")),
        "{plan:#?}"
    );
    db.close().await;
}

fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_and_the_token_scheme() {
    let app = TestApp::spawn().await;
    let (status, _, doc) = call(&app, reqwest::Method::GET, paths::API_OPENAPI, None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    for (path, method) in [
        ("/api/v1/customers", "get"),
        ("/api/v1/customers/{id}", "get"),
        ("/api/v1/invitations", "post"),
        ("/api/v1/invitations", "get"),
        ("/api/v1/invitations/{id}", "get"),
        ("/api/v1/invitations/{id}/resend", "post"),
        ("/api/v1/invitations/{id}/revoke", "post"),
        ("/api/v1/tenants", "get"),
        ("/api/v1/tenants/{id}", "get"),
        ("/api/v1/tenants/{id}/sync", "post"),
        ("/api/v1/tenants/{id}/schedule", "put"),
        ("/api/v1/tenants/{id}/offboard", "post"),
        ("/api/v1/tenants/{id}/sync-runs", "get"),
        ("/api/v1/tenants/{id}/users", "get"),
        ("/api/v1/tenants/{id}/groups", "get"),
        ("/api/v1/tenants/{id}/groups/{group_id}/members", "get"),
    ] {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is documented");
        assert!(
            op["responses"]["401"].is_object(),
            "{method} {path} documents 401"
        );
        assert_eq!(op["security"][0]["api_token"], json!([]));
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["api_token"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    app.sign_in(Role::Viewer).await;
    assert_eq!(
        app.get(paths::API_TOKENS).await.status(),
        StatusCode::FORBIDDEN
    );
    let page = app.get(paths::API_DOCS).await.text().await.unwrap();
    assert!(
        page.contains("POST /api/v1/invitations") && page.contains("Creates an invitation"),
        "{page}"
    );
    assert!(page.contains("GET /api/v1/tenants/{id}/users"));
}

#[tokio::test]
async fn invitations_are_created_once_per_idempotency_key_listed_resent_and_revoked() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let read = token(&app, "reader", "read").await;
    let write = token(&app, "scripts", "write").await;
    let body =
        json!({"customer": "Contoso", "admin_email": "admin@contoso.example", "mode": "delegated"});
    let post = |key: Option<&'static str>, body: Value, token: String| {
        let app = &app;
        async move {
            let mut request = reqwest::Client::new()
                .post(app.url("/api/v1/invitations"))
                .bearer_auth(token)
                .json(&body);
            if let Some(key) = key {
                request = request.header("Idempotency-Key", key);
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, _) = post(None, body.clone(), read.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, first) = post(Some("order-42"), body.clone(), write.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let link = first["link"].as_str().unwrap();
    assert!(link.starts_with(&format!("{}/authenticate?token=", app.address)));
    assert_eq!(first["invitation"]["status"], "pending");
    let (status, again) = post(Some("order-42"), body.clone(), write.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        again, first,
        "a retry gets the same answer, not a second invitation"
    );
    let count: i64 = sqlx::query_scalar("select count(*) from invitations")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 1);
    let stored: i64 = sqlx::query_scalar("select count(*) from api_idempotency where position(convert_to($1, 'utf8') in response_ciphertext) > 0")
        .bind(link)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stored, 0, "the kept answer is sealed");
    let (status, other) = post(
        Some("order-42"),
        json!({"customer": "Fabrikam", "admin_email": "a@fabrikam.example", "mode": "delegated"}),
        write.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        other["detail"]
            .as_str()
            .unwrap()
            .contains("different request")
    );
    let (status, bad) = post(
        Some("order-43"),
        json!({"customer": "Contoso", "admin_email": "nope", "mode": "delegated"}),
        write.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    let (status, _) = post(Some("order-43"), json!({"customer": "Contoso", "admin_email": "it@contoso.example", "mode": "application", "profile_id": Uuid::new_v4()}), write.clone()).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "an unknown profile is named"
    );
    let (status, second) = post(Some("order-43"), json!({"customer": "Contoso", "admin_email": "it@contoso.example", "mode": "application", "expires_in": "3d"}), write.clone()).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "a key whose request failed can be used again"
    );

    // Listing, by status and cursor.
    let (_, _, page) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/invitations?limit=1&status=pending",
        Some(&read),
        None,
    )
    .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let (_, _, rest) = call(
        &app,
        reqwest::Method::GET,
        &format!(
            "/api/v1/invitations?limit=1&status=pending&cursor={}",
            page["next_cursor"].as_str().unwrap()
        ),
        Some(&read),
        None,
    )
    .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_ne!(rest["items"][0]["id"], page["items"][0]["id"]);
    let (status, ..) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/invitations?status=sleeping",
        Some(&read),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Resend gives a new link; revoke is final.
    let id = second["invitation"]["id"].as_str().unwrap();
    let (status, _, got) = call(
        &app,
        reqwest::Method::GET,
        &format!("/api/v1/invitations/{id}"),
        Some(&read),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["consent_mode"], "application");
    assert!(got.get("link").is_none(), "the link is never shown again");
    let (status, _, resent) = call(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/invitations/{id}/resend"),
        Some(&write),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(resent["link"], second["link"]);
    let (status, _, revoked) = call(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/invitations/{id}/revoke"),
        Some(&write),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(revoked["status"], "revoked");
    let (status, headers, body) = call(
        &app,
        reqwest::Method::POST,
        &format!("/api/v1/invitations/{id}/revoke"),
        Some(&write),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(is_problem(&headers, &body, 409));
    let (status, ..) = call(
        &app,
        reqwest::Method::GET,
        &format!("/api/v1/invitations/{}", Uuid::new_v4()),
        Some(&read),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn scripts_make_list_and_revoke_tokens_with_the_cli() {
    let app = TestApp::spawn().await;
    let output = crate::cli::run(
        crate::cli::gangway(&app),
        &[
            "api-token",
            "create",
            "--name",
            "ci",
            "--scope",
            "write",
            "--json",
        ],
    )
    .await;
    assert!(output.status.success(), "{}", crate::cli::stderr(&output));
    let made: Value = serde_json::from_str(&crate::cli::stdout(&output)).unwrap();
    let token = made["token"].as_str().unwrap();
    let (status, ..) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/tenants",
        Some(token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let list = crate::cli::run(crate::cli::gangway(&app), &["api-token", "list"]).await;
    assert!(crate::cli::stdout(&list).contains("ci") && !crate::cli::stdout(&list).contains(token));
    let bad = crate::cli::run(
        crate::cli::gangway(&app),
        &["api-token", "create", "--name", "ci", "--scope", "admin"],
    )
    .await;
    assert_eq!(bad.status.code(), Some(2));
    let id = made["id"].as_str().unwrap();
    let listed_rate = || async {
        let list =
            crate::cli::run(crate::cli::gangway(&app), &["api-token", "list", "--json"]).await;
        let rows: Value = serde_json::from_str(&crate::cli::stdout(&list)).unwrap();
        rows[0]["calls_per_second"].clone()
    };
    assert_eq!(listed_rate().await, Value::Null, "the default until set");
    let set = crate::cli::run(crate::cli::gangway(&app), &["api-token", "rate", id, "500"]).await;
    assert!(set.status.success(), "{}", crate::cli::stderr(&set));
    assert_eq!(listed_rate().await, json!(500));
    for bad in ["0", "fast", "100001"] {
        let refused =
            crate::cli::run(crate::cli::gangway(&app), &["api-token", "rate", id, bad]).await;
        assert_eq!(refused.status.code(), Some(2), "{bad}");
    }
    let reset = crate::cli::run(
        crate::cli::gangway(&app),
        &["api-token", "rate", id, "default"],
    )
    .await;
    assert!(reset.status.success());
    assert_eq!(listed_rate().await, Value::Null);
    let revoke = crate::cli::run(crate::cli::gangway(&app), &["api-token", "revoke", id]).await;
    assert!(revoke.status.success());
    refused_within_the_bound(&app, token).await;
}

#[tokio::test]
async fn each_token_has_its_own_rate_limit() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let busy = token(&app, "busy", "read").await;
    let calm = token(&app, "calm", "read").await;
    let mut limited = None;
    for _ in 0..400 {
        let (status, headers, body) = call(
            &app,
            reqwest::Method::GET,
            "/api/v1/customers",
            Some(&busy),
            None,
        )
        .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some((headers, body));
            break;
        }
    }
    let (headers, body) = limited.expect("a burst past the limit is refused");
    assert!(is_problem(&headers, &body, 429), "{body}");
    assert!(headers.get("retry-after").is_some());
    let (status, ..) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/customers",
        Some(&calm),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "another token is not held back");
}

/// How many calls in a row `token` gets before a 429 (at most `up_to`).
async fn calls_before_refusal(app: &TestApp, token: &str, up_to: usize) -> usize {
    calls_within_rate(app, token, up_to, None).await
}

/// Like [`calls_before_refusal`], and checks the count is what `per_second` allows: five
/// seconds' worth at once, plus what refilled while the calls ran.
async fn calls_within_rate(
    app: &TestApp,
    token: &str,
    up_to: usize,
    per_second: Option<f64>,
) -> usize {
    let started = std::time::Instant::now();
    let n = count_calls(app, token, up_to).await;
    if let Some(rate) = per_second {
        let burst = (rate * 5.0) as usize;
        let most = burst + (rate * started.elapsed().as_secs_f64()).ceil() as usize + 1;
        assert!(
            (burst..=most).contains(&n),
            "{n} calls at {rate}/s, expected {burst}..={most}"
        );
    }
    n
}

async fn count_calls(app: &TestApp, token: &str, up_to: usize) -> usize {
    for n in 0..up_to {
        let (status, ..) = call(
            app,
            reqwest::Method::GET,
            "/api/v1/customers",
            Some(token),
            None,
        )
        .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            return n;
        }
        assert_eq!(status, StatusCode::OK);
    }
    up_to
}

#[tokio::test]
async fn the_rate_limit_is_the_settings_default_or_the_tokens_own() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let saved = app
        .post_form(
            paths::SETTINGS,
            &crate::settings::form(&app, &[("api_calls_per_second", "2")]),
        )
        .await;
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    // Five seconds' worth at once (10), and a call or two more refilled while they ran.
    let plain = token(&app, "plain", "read").await;
    calls_within_rate(&app, &plain, 40, Some(2.0)).await;

    // A token of its own rate, set when created…
    let response = app
        .post_and_follow(
            paths::API_TOKENS,
            &[
                ("name", "bulk reader"),
                ("scope", "read"),
                ("valid_days", "90"),
                ("calls_per_second", "40"),
            ],
        )
        .await;
    let page = response.text().await.unwrap();
    let fast = page
        .split("id=\"new-token\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    calls_within_rate(&app, &fast, 1000, Some(40.0)).await;

    // …or changed later, effective at once in this process.
    let id: Uuid = sqlx::query_scalar("select id from api_tokens where name = 'plain'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let rate_path = paths::api_token_rate(id.into());
    let refused = app
        .post_form(&rate_path, &[("calls_per_second", "fast")])
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("whole number of calls per second")
    );
    let refused = app
        .post_form(&rate_path, &[("calls_per_second", "0")])
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let changed = app
        .post_form(&rate_path, &[("calls_per_second", "100")])
        .await;
    assert_eq!(changed.status(), StatusCode::SEE_OTHER);
    assert_eq!(calls_before_refusal(&app, &plain, 100).await, 100);
    let page = app.get(paths::API_TOKENS).await.text().await.unwrap();
    assert!(
        page.contains("Rate saved") || page.contains("value=\"100\""),
        "{page}"
    );
    let audited: Vec<String> = sqlx::query_scalar(
        "select detail::text from audit_events where action = 'api_token.rate_changed'",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(
        audited.len(),
        1,
        "only the saved change is audited: {audited:?}"
    );
    assert!(
        audited[0].contains("\"old\": \"default\"") && audited[0].contains("100/s"),
        "{audited:?}"
    );
}

#[tokio::test]
async fn a_client_guessing_tokens_is_slowed_down_and_valid_tokens_are_not() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let good = token(&app, "steady", "read").await;
    let mut limited = None;
    for i in 0..100 {
        let guess = format!("gw_guess{i:040}");
        let (status, headers, body) = call(
            &app,
            reqwest::Method::GET,
            "/api/v1/customers",
            Some(&guess),
            None,
        )
        .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some((i, headers, body));
            break;
        }
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        // Valid calls between the guesses neither count nor are held back.
        let (status, ..) = call(
            &app,
            reqwest::Method::GET,
            "/api/v1/customers",
            Some(&good),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (guesses, headers, body) = limited.expect("guessing is slowed down");
    assert_eq!(guesses, 20, "the first 20 refusals are answered 401");
    assert!(is_problem(&headers, &body, 429), "{body}");
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3).contains(&wait), "{wait}");
    // A forged Entra token counts as a guess too.
    let (status, ..) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/customers",
        Some("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.sig"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let (status, ..) = call(
        &app,
        reqwest::Method::GET,
        "/api/v1/customers",
        Some(&good),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "a working token is never slowed");
}

#[tokio::test]
async fn a_token_dies_with_its_owners_removal_and_a_write_token_with_their_admin_role() {
    let app = TestApp::spawn().await;
    let owner = app.sign_in(Role::Admin).await;
    let writer = token(&app, "provisioning", "write").await;
    let reader = token(&app, "dashboards", "read").await;
    let other = format!("other-admin-{}@provider.test", crate::helpers::short_id());
    app.add_operator(&other, Role::Admin).await;
    let id_of = |email: String| {
        let db = app.db.clone();
        async move {
            sqlx::query_scalar::<_, Uuid>("select id from operators where email = $1")
                .bind(email)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };
    let works = |token: String| {
        let app = &app;
        async move {
            call(
                app,
                reqwest::Method::GET,
                "/api/v1/customers",
                Some(&token),
                None,
            )
            .await
            .0
        }
    };
    let cli = crate::cli::run(
        crate::cli::gangway(&app),
        &[
            "api-token",
            "create",
            "--name",
            "ci",
            "--scope",
            "write",
            "--json",
        ],
    )
    .await;
    let cli_token: Value = serde_json::from_str(&crate::cli::stdout(&cli)).unwrap();

    // The list says whose each token is.
    let page = app.get(paths::API_TOKENS).await.text().await.unwrap();
    assert!(
        page.contains(&owner) && page.contains("CLI (no operator)"),
        "{page}"
    );
    let listed = crate::cli::run(crate::cli::gangway(&app), &["api-token", "list", "--json"]).await;
    let listed: Value = serde_json::from_str(&crate::cli::stdout(&listed)).unwrap();
    let owners: Vec<(&str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["owner"].as_str().unwrap()))
        .collect();
    assert!(
        owners.contains(&("provisioning", owner.as_str())),
        "{owners:?}"
    );
    assert!(owners.contains(&("ci", "CLI (no operator)")), "{owners:?}");

    // Demoted: the write token dies, the read token keeps working.
    gangway::operators::set_role(
        &app.db,
        id_of(owner.clone()).await,
        Role::Viewer,
        &gangway::audit::Actor::Operator(other.clone()),
    )
    .await
    .unwrap();
    // Revoked outside the portal process (as the CLI does): refused within the cache's bound.
    crate::api_token_use::refused_within_the_bound(&app, &writer).await;
    assert_eq!(works(reader.clone()).await, StatusCode::OK);
    // Removed: every token of theirs dies; the CLI's is no one's and lives on.
    gangway::operators::remove(
        &app.db,
        id_of(owner.clone()).await,
        &gangway::audit::Actor::Operator(other.clone()),
    )
    .await
    .unwrap();
    crate::api_token_use::refused_within_the_bound(&app, &reader).await;
    assert_eq!(
        works(cli_token["token"].as_str().unwrap().to_owned()).await,
        StatusCode::OK
    );
    let revoked: Vec<(String, Value)> = sqlx::query_as(
        "select actor, detail from audit_events where action = 'api_token.revoked' order by id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(revoked.len(), 2, "{revoked:?}");
    assert_eq!(revoked[0].0, format!("operator:{other}"));
    assert_eq!(revoked[0].1["token"], "provisioning");
    assert_eq!(revoked[0].1["reason"], "its owner is no longer an admin");
    assert_eq!(revoked[1].1["token"], "dashboards");
    assert_eq!(revoked[1].1["reason"], "its owner was removed");
}
