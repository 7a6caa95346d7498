//! Change-notification subscriptions: creation only after the validation request is echoed,
//! Graph's limits on expiry, scheme and change types, notifications for every directory change
//! with `clientState`, renewal, reauthorization after `reauthorizationRequired`, expiry and
//! deletion.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::Query;
use axum::http::StatusCode as AxumStatus;
use entra_emulator::Options;
use reqwest::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::helpers::*;

/// A notification endpoint on loopback: echoes validation tokens (unless told to answer
/// wrong) and keeps every delivery.
struct Listener {
    url: String,
    got: Arc<Mutex<Vec<Value>>>,
}

async fn listener(echo: bool) -> Listener {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let kept = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |Query(q): Query<std::collections::HashMap<String, String>>, body: String| {
                let kept = kept.clone();
                async move {
                    if let Some(token) = q.get("validationToken") {
                        let answer = if echo { token.clone() } else { "nope".into() };
                        return (AxumStatus::OK, [("content-type", "text/plain")], answer);
                    }
                    kept.lock()
                        .unwrap()
                        .push(serde_json::from_str(&body).unwrap());
                    (
                        AxumStatus::ACCEPTED,
                        [("content-type", "text/plain")],
                        String::new(),
                    )
                }
            },
        ),
    );
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", socket.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(socket, app).await });
    Listener { url, got }
}

fn in_minutes(minutes: i64) -> String {
    (OffsetDateTime::now_utc() + time::Duration::minutes(minutes))
        .format(&Rfc3339)
        .unwrap()
}

async fn post(t: &TestEmu, token: &str, body: Value) -> reqwest::Response {
    t.http
        .post(format!("{}/v1.0/subscriptions", t.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn setup() -> (TestEmu, String, String) {
    let t = TestEmu::with(Options {
        notifications_over_http: true,
        ..Options::default()
    })
    .await;
    let app = t.provider_app().await;
    let tid = t.tid(1);
    t.grant(&tid, &app, &["User.Read.All", "Group.Read.All"])
        .await;
    let token = t.app_token(&tid, &app).await;
    (t, tid, token)
}

#[tokio::test]
async fn a_subscription_is_created_once_its_endpoint_echoes_the_validation_token_and_notifies_every_change()
 {
    let (t, tid, token) = setup().await;
    let hook = listener(true).await;
    let subscription = |url: &str, minutes: i64| {
        json!({"changeType": "updated,deleted", "notificationUrl": url, "lifecycleNotificationUrl": url,
               "resource": "users", "expirationDateTime": in_minutes(minutes), "clientState": "s3cret"})
    };
    // Graph's rules: the echo, the lifetime, the scheme.
    let wrong = listener(false).await;
    let resp = post(&t, &token, subscription(&wrong.url, 60)).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("validation request failed")
    );
    let resp = post(&t, &token, subscription(&hook.url, 41_760 + 5)).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = post(&t, &token, subscription(&hook.url, -5)).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let mut body = subscription(&hook.url, 60);
    body["changeType"] = json!("renamed");
    assert_eq!(
        post(&t, &token, body).await.status(),
        StatusCode::BAD_REQUEST
    );
    let strict = TestEmu::start().await;
    let strict_app = strict.provider_app().await;
    strict
        .grant(&strict.tid(1), &strict_app, &["User.Read.All"])
        .await;
    let strict_token = strict.app_token(&strict.tid(1), &strict_app).await;
    let resp = post(&strict, &strict_token, subscription(&hook.url, 60)).await;
    assert_eq!(
        resp.status(),
        StatusCode::BAD_REQUEST,
        "Graph delivers over HTTPS only"
    );

    // Under 45 minutes is raised to 45.
    let resp = post(&t, &token, subscription(&hook.url, 10)).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let sub: Value = resp.json().await.unwrap();
    let expires =
        OffsetDateTime::parse(sub["expirationDateTime"].as_str().unwrap(), &Rfc3339).unwrap();
    assert!(expires - OffsetDateTime::now_utc() > time::Duration::minutes(44));
    let id = sub["id"].as_str().unwrap().to_owned();

    // A user created, changed and deleted for good: updated, updated, deleted.
    let user = t
        .admin_create(
            &format!("/tenants/{tid}/users"),
            json!({"displayName": "Watched"}),
        )
        .await;
    let uid = user["id"].as_str().unwrap();
    t.admin_patch(
        &format!("/tenants/{tid}/users/{uid}"),
        json!({"jobTitle": "Pilot"}),
    )
    .await;
    t.admin_delete(&format!("/tenants/{tid}/users/{uid}?hard=true"))
        .await;
    let started = Instant::now();
    let notes = loop {
        let notes: Vec<Value> = hook
            .got
            .lock()
            .unwrap()
            .iter()
            .flat_map(|d| d["value"].as_array().unwrap().clone())
            .collect();
        if notes.iter().any(|n| n["changeType"] == "deleted") {
            break notes;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{notes:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for n in &notes {
        assert_eq!(n["subscriptionId"], id.as_str());
        assert_eq!(n["clientState"], "s3cret");
        assert_eq!(n["tenantId"], tid.as_str());
        assert_eq!(n["resource"], format!("Users/{uid}"));
        assert_eq!(n["resourceData"]["id"], uid);
        assert_eq!(n["resourceData"]["@odata.type"], "#Microsoft.Graph.User");
    }

    // Renewed, listed, reauthorized after a lifecycle notification, deleted.
    let renewed: Value = t
        .http
        .patch(format!("{}/v1.0/subscriptions/{id}", t.base))
        .bearer_auth(&token)
        .json(&json!({"expirationDateTime": in_minutes(41_000)}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(renewed["expirationDateTime"], sub["expirationDateTime"]);
    let listed = t.graph_json(&token, "/v1.0/subscriptions").await;
    assert_eq!(listed["value"].as_array().unwrap().len(), 1);
    let resp = t
        .admin_post(
            &format!("/subscriptions/{id}/lifecycle"),
            json!({"lifecycleEvent": "reauthorizationRequired"}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert!(
        hook.got
            .lock()
            .unwrap()
            .iter()
            .any(|d| d["value"][0]["lifecycleEvent"] == "reauthorizationRequired")
    );
    let resp = t
        .http
        .post(format!("{}/v1.0/subscriptions/{id}/reauthorize", t.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = t
        .http
        .delete(format!("{}/v1.0/subscriptions/{id}", t.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = t.graph(&token, &format!("/v1.0/subscriptions/{id}")).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_expired_subscription_is_gone_and_a_groups_subscription_needs_group_read_all() {
    let (t, tid, token) = setup().await;
    let hook = listener(true).await;
    let resp = post(
        &t,
        &token,
        json!({"changeType": "updated", "notificationUrl": hook.url, "resource": "/groups",
               "expirationDateTime": in_minutes(60), "clientState": "x"}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let id = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    t.admin_post(&format!("/subscriptions/{id}/expire"), json!({}))
        .await;
    let resp = t.graph(&token, &format!("/v1.0/subscriptions/{id}")).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    let app = t.provider_app().await;
    t.grant(&tid, &app, &["User.Read.All"]).await;
    let users_only = t.app_token(&tid, &app).await;
    let resp = post(
        &t,
        &users_only,
        json!({"changeType": "updated", "notificationUrl": hook.url, "resource": "groups",
               "expirationDateTime": in_minutes(60)}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}
