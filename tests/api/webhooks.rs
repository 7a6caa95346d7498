//! Webhooks through a real HTTP receiver on loopback: endpoints added in the console (secret
//! shown once), Standard Webhooks signatures verified with the specification's algorithm,
//! retries with backoff until a success stops them, rotation overlap, the event filter, and
//! events emitted by the domain.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gangway::operators::Role;
use gangway::types::WebhookId;
use gangway::web::paths;
use gangway::webhooks::{self, delivery};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use uuid::Uuid;

use crate::helpers::TestApp;

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub id: String,
    pub timestamp: i64,
    pub signature: String,
    pub body: Vec<u8>,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A webhook receiver on loopback answering with a status and body the test sets.
pub struct Receiver {
    pub url: String,
    pub got: Arc<Mutex<Vec<Received>>>,
    pub status: Arc<AtomicU16>,
    pub answer: Arc<Mutex<String>>,
}

impl Receiver {
    pub async fn start() -> Self {
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let status = Arc::new(AtomicU16::new(200));
        let answer: Arc<Mutex<String>> = Arc::default();
        let (g, s, a) = (got.clone(), status.clone(), answer.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let (g, s, a) = (g.clone(), s.clone(), a.clone());
                async move {
                    let h = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    g.lock().unwrap().push(Received {
                        id: h("webhook-id"),
                        timestamp: h("webhook-timestamp").parse().unwrap_or(0),
                        signature: h("webhook-signature"),
                        body: body.to_vec(),
                    });
                    (
                        StatusCode::from_u16(s.load(Ordering::SeqCst)).unwrap(),
                        a.lock().unwrap().clone(),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url,
            got,
            status,
            answer,
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

/// The receiver's check, written from the specification (not Gangway's code): HMAC-SHA256 over
/// `{id}.{timestamp}.{body}` keyed with the base64 after `whsec_`, any `v1,` signature matching.
pub fn verifies(secret: &str, r: &Received) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.", r.id, r.timestamp).as_bytes());
    mac.update(&r.body);
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    r.signature
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| s == expected)
}

/// Lets webhooks reach loopback, where the test receivers listen (as an admin would in System
/// Settings; without it such endpoints are refused).
pub async fn allow_loopback(app: &TestApp) {
    let edit = gangway::settings::Edit {
        key: gangway::settings::Key::WebhookAllowedNetworks,
        raw: "127.0.0.0/8\n::1".into(),
    };
    gangway::settings::save(
        &app.db,
        &app.state.cfg.keys,
        &[edit],
        &gangway::audit::Actor::Cli,
    )
    .await
    .unwrap();
}

/// Adds an endpoint in the console as the signed-in admin, loopback allowed; returns its id
/// and secret.
pub async fn add_endpoint(app: &TestApp, url: &str, events: &[&str]) -> (WebhookId, String) {
    allow_loopback(app).await;
    let mut fields = vec![("url", url), ("description", "tests")];
    fields.extend(events.iter().map(|e| ("events", *e)));
    let response = app.post_and_follow(paths::WEBHOOKS, &fields).await;
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.unwrap();
    let secret = page
        .split("id=\"new-secret\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the secret is shown once")
        .to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let endpoint = webhooks::list(&app.db)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.url == url)
        .unwrap();
    (endpoint.id, secret)
}

pub async fn deliver(app: &TestApp) -> delivery::Round {
    delivery::deliver_due(&app.db, &app.state.cfg.keys, &delivery::client())
        .await
        .unwrap()
}

/// Delivers rounds until one finds nothing due.
async fn deliver_all(app: &TestApp) {
    while deliver(app).await != delivery::Round::default() {}
}

async fn make_due(app: &TestApp) {
    sqlx::query("update webhook_deliveries set next_attempt_at = now() where delivered_at is null")
        .execute(&app.db)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_test_event_arrives_signed_and_the_delivery_log_shows_it() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let receiver = Receiver::start().await;
    let (id, secret) = add_endpoint(&app, &receiver.url, &["*"]).await;

    // The secret is shown once, then only sealed.
    let page = app.get(&paths::webhook(id)).await.text().await.unwrap();
    assert!(!page.contains(&secret));
    let sealed: Vec<u8> = sqlx::query_scalar("select secret_ciphertext from webhook_endpoints")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(!sealed.windows(10).any(|w| w == &secret.as_bytes()[6..16]));

    let response = app.post_form(&paths::webhook_test(id), &[]).await;
    assert!(response.status().is_redirection());
    assert_eq!(deliver(&app).await.delivered, 1);
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert!(verifies(&secret, &got[0]), "{got:?}");
    assert!(got[0].id.starts_with("msg_"));
    assert_eq!(got[0].json()["type"], "webhook.test");
    assert!((got[0].timestamp - time::OffsetDateTime::now_utc().unix_timestamp()).abs() < 60);

    // Delivered once: another round sends nothing.
    make_due(&app).await;
    assert_eq!(deliver(&app).await, delivery::Round::default());
    assert_eq!(receiver.received().len(), 1);

    let page = app.get(&paths::webhook(id)).await.text().await.unwrap();
    assert!(
        page.contains("webhook.test") && page.contains("delivered") && page.contains(">200<"),
        "{page}"
    );
    assert!(page.contains(" ms<"));

    let audit: Vec<String> = sqlx::query_scalar(
        "select action from audit_events where action like 'webhook.%' order by id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(audit, ["webhook.endpoint_created", "webhook.test_sent"]);
}

#[tokio::test]
async fn a_failing_receiver_gets_retries_with_backoff_until_a_success_stops_them() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let receiver = Receiver::start().await;
    let (id, secret) = add_endpoint(&app, &receiver.url, &["*"]).await;
    receiver.status.store(500, Ordering::SeqCst);
    webhooks::send_test(&app.db, id, &gangway::audit::Actor::Cli)
        .await
        .unwrap();

    assert_eq!(deliver(&app).await.retried, 1);
    // Not due yet: nothing is sent before the backoff has passed.
    assert_eq!(deliver(&app).await, delivery::Round::default());
    let (attempts, wait): (i32, f64) = sqlx::query_as(
        "select attempts, extract(epoch from next_attempt_at - now())::float8 from webhook_deliveries",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(attempts, 1);
    assert!((20.0..=40.0).contains(&wait), "{wait}");

    make_due(&app).await;
    assert_eq!(deliver(&app).await.retried, 1);
    let wait: f64 = sqlx::query_scalar(
        "select extract(epoch from next_attempt_at - now())::float8 from webhook_deliveries",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!((50.0..=75.0).contains(&wait), "doubled: {wait}");

    receiver.status.store(204, Ordering::SeqCst);
    make_due(&app).await;
    assert_eq!(deliver(&app).await.delivered, 1);
    make_due(&app).await;
    assert_eq!(deliver(&app).await, delivery::Round::default());
    let got = receiver.received();
    assert_eq!(got.len(), 3);
    // The same message id on every retry, each signed.
    assert!(
        got.iter()
            .all(|r| r.id == got[0].id && verifies(&secret, r))
    );

    let log: Vec<(Option<i32>, i32)> =
        sqlx::query_as("select status, duration_ms from webhook_attempts order by id")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(
        log.iter().map(|l| l.0).collect::<Vec<_>>(),
        [Some(500), Some(500), Some(204)]
    );

    // An endpoint that never answers 2xx is given up after the last attempt.
    receiver.status.store(503, Ordering::SeqCst);
    webhooks::send_test(&app.db, id, &gangway::audit::Actor::Cli)
        .await
        .unwrap();
    sqlx::query("update webhook_deliveries set attempts = $1 - 1 where delivered_at is null")
        .bind(delivery::MAX_ATTEMPTS)
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(deliver(&app).await.failed, 1);
    make_due(&app).await;
    assert_eq!(deliver(&app).await, delivery::Round::default());
    let page = app.get(&paths::webhook(id)).await.text().await.unwrap();
    assert!(page.contains("failed") && page.contains("503"));
}

#[tokio::test]
async fn reloading_after_adding_or_rotating_shows_the_secret_no_more_and_repeats_nothing() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let added = app
        .post_form(
            paths::WEBHOOKS,
            &[("url", "https://hooks.example/in"), ("events", "*")],
        )
        .await;
    assert_eq!(added.status(), StatusCode::SEE_OTHER, "post/redirect/get");
    let to = crate::helpers::location(added).await;
    let shown = app.get(&to).await.text().await.unwrap();
    assert!(shown.contains("id=\"new-secret\"") && shown.contains("Endpoint added."));
    let reloaded = app.get(&to).await.text().await.unwrap();
    assert!(!reloaded.contains("id=\"new-secret\"") && !reloaded.contains("whsec_"));
    assert_eq!(
        webhooks::list(&app.db).await.unwrap().len(),
        1,
        "no second endpoint"
    );

    let id = webhooks::list(&app.db).await.unwrap()[0].id;
    let rotated = app.post_form(&paths::webhook_rotate(id), &[]).await;
    let to = crate::helpers::location(rotated).await;
    let shown = app.get(&to).await.text().await.unwrap();
    assert!(shown.contains("id=\"new-secret\"") && shown.contains("Secret rotated"));
    let rotations: i64 = sqlx::query_scalar(
        "select count(*) from audit_events where action = 'webhook.secret_rotated'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    let reloaded = app.get(&to).await.text().await.unwrap();
    assert!(!reloaded.contains("id=\"new-secret\""));
    let after: i64 = sqlx::query_scalar(
        "select count(*) from audit_events where action = 'webhook.secret_rotated'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!((rotations, after), (1, 1), "a reload rotates nothing");
}

#[tokio::test]
async fn a_rotated_secret_signs_beside_the_old_one_during_the_overlap() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let receiver = Receiver::start().await;
    let (id, old) = add_endpoint(&app, &receiver.url, &["*"]).await;
    let page = app
        .post_and_follow(&paths::webhook_rotate(id), &[])
        .await
        .text()
        .await
        .unwrap();
    let new = page
        .split("id=\"new-secret\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    assert_ne!(new, old);
    webhooks::send_test(&app.db, id, &gangway::audit::Actor::Cli)
        .await
        .unwrap();
    deliver(&app).await;
    let got = receiver.received();
    assert_eq!(got[0].signature.split(' ').count(), 2);
    assert!(verifies(&old, &got[0]) && verifies(&new, &got[0]));

    // After the overlap only the new one signs.
    sqlx::query("update webhook_endpoints set previous_secret_until = now() - interval '1 second'")
        .execute(&app.db)
        .await
        .unwrap();
    webhooks::send_test(&app.db, id, &gangway::audit::Actor::Cli)
        .await
        .unwrap();
    deliver(&app).await;
    let got = receiver.received();
    assert!(verifies(&new, &got[1]) && !verifies(&old, &got[1]));
}

#[tokio::test]
async fn the_event_filter_is_respected_and_urls_are_checked() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let (offboards, everything) = (Receiver::start().await, Receiver::start().await);
    add_endpoint(&app, &offboards.url, &["tenant.offboarded"]).await;
    add_endpoint(&app, &everything.url, &["*"]).await;
    let mut tx = app.db.begin().await.unwrap();
    webhooks::emit(
        &mut tx,
        &webhooks::Event::new(webhooks::EventType::TenantConnected, serde_json::json!({})),
    )
    .await
    .unwrap();
    let queued: i64 = sqlx::query_scalar(
        "select count(*) from webhook_deliveries where event_type = 'tenant.connected'",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(queued, 1, "only the endpoint taking every event wants it");
    webhooks::emit(
        &mut tx,
        &webhooks::Event::new(webhooks::EventType::TenantOffboarded, serde_json::json!({})),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    deliver(&app).await;
    let types = |r: &Receiver| {
        r.received()
            .iter()
            .map(|x| x.json()["type"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(types(&offboards), ["tenant.offboarded"]);
    assert_eq!(types(&everything).len(), 2);

    for bad in ["http://example.com/hook", "ftp://127.0.0.1/x", "not a url"] {
        let response = app
            .post_form(paths::WEBHOOKS, &[("url", bad), ("events", "*")])
            .await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    let response = app
        .post_form(paths::WEBHOOKS, &[("url", "https://hooks.example/x")])
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_real_consent_and_offboarding_emit_their_events_in_their_transactions() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let receiver = Receiver::start().await;
    let (_, secret) = add_endpoint(
        &app,
        &receiver.url,
        &[
            "tenant.connected",
            "tenant.offboarded",
            "invitation.consented",
            "invitation.revoked",
        ],
    )
    .await;
    let issued = app.invite("delegated", "admin@contoso.example", None).await;
    let entra_id = Uuid::new_v4();
    let tenant_id = gangway::tenants::record_consent(
        &app.db,
        &app.state.cfg.keys,
        issued.invitation.id,
        &crate::helpers::consent(entra_id),
        &gangway::audit::Actor::System,
    )
    .await
    .unwrap();
    gangway::tenants::offboard(&app.db, tenant_id, &gangway::audit::Actor::Cli)
        .await
        .unwrap();
    // Revoked elsewhere: an invitation never opened.
    let other = app
        .invite("delegated", "admin@fabrikam.example", None)
        .await;
    gangway::invitations::revoke(&app.db, other.invitation.id, &gangway::audit::Actor::Cli)
        .await
        .unwrap();
    deliver(&app).await;
    let got = receiver.received();
    assert!(got.iter().all(|r| verifies(&secret, r)));
    let mut events: Vec<Value> = got.iter().map(Received::json).collect();
    events.sort_by_key(|e| e["timestamp"].as_str().unwrap().to_owned());
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    for t in [
        "invitation.consented",
        "tenant.connected",
        "tenant.offboarded",
        "invitation.revoked",
    ] {
        assert_eq!(
            types.iter().filter(|x| **x == t).count(),
            1,
            "{t}: {types:?}"
        );
    }
    let connected = events
        .iter()
        .find(|e| e["type"] == "tenant.connected")
        .unwrap();
    assert_eq!(connected["data"]["tenant_id"], tenant_id.to_string());
    assert_eq!(connected["data"]["entra_tenant_id"], entra_id.to_string());
    let offboarded = events
        .iter()
        .find(|e| e["type"] == "tenant.offboarded")
        .unwrap();
    assert_eq!(offboarded["data"]["tenant_id"], tenant_id.to_string());

    // A refused consent (the invitation is closed) writes no event.
    let before: i64 = sqlx::query_scalar("select count(*) from webhook_deliveries")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(
        gangway::tenants::record_consent(
            &app.db,
            &app.state.cfg.keys,
            other.invitation.id,
            &crate::helpers::consent(Uuid::new_v4()),
            &gangway::audit::Actor::System,
        )
        .await
        .is_err()
    );
    let after: i64 = sqlx::query_scalar("select count(*) from webhook_deliveries")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(before, after);
}

#[tokio::test]
async fn without_endpoints_nothing_is_written_and_a_disabled_endpoint_gets_nothing() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let issued = app.invite("delegated", "admin@contoso.example", None).await;
    gangway::invitations::revoke(&app.db, issued.invitation.id, &gangway::audit::Actor::Cli)
        .await
        .unwrap();
    let count = || async {
        sqlx::query_scalar::<_, i64>("select count(*) from webhook_deliveries")
            .fetch_one(&app.db)
            .await
            .unwrap()
    };
    assert_eq!(count().await, 0);
    let receiver = Receiver::start().await;
    let (id, _) = add_endpoint(&app, &receiver.url, &["*"]).await;
    let response = app
        .post_form(&paths::webhook_enabled(id), &[("enabled", "false")])
        .await;
    assert!(response.status().is_redirection());
    let issued = app.invite("delegated", "admin@contoso.example", None).await;
    gangway::invitations::revoke(&app.db, issued.invitation.id, &gangway::audit::Actor::Cli)
        .await
        .unwrap();
    assert_eq!(count().await, 0);
    let response = app.post_form(&paths::webhook_delete(id), &[]).await;
    assert!(response.status().is_redirection());
    assert!(webhooks::list(&app.db).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_sync_emits_one_directory_event_per_object_and_membership_and_sync_completed() {
    use crate::sync::{all_app_permissions, connect, emulator, sync_now, work};
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let receiver = Receiver::start().await;
    let (_, secret) = add_endpoint(
        &app,
        &receiver.url,
        &[
            "directory.user.created",
            "directory.user.updated",
            "directory.user.deleted",
            "directory.group.created",
            "directory.membership.added",
            "directory.membership.removed",
            "sync.completed",
        ],
    )
    .await;
    let tid = app.customer(0).id.clone();
    let tenant = connect(&app, &tid, &all_app_permissions()).await;
    work(&app).await;
    let count = |sql: &'static str| {
        let db = app.db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .bind(tenant)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };
    let users = count("select count(*) from directory_users where tenant_id = $1").await;
    let groups = count("select count(*) from directory_groups where tenant_id = $1").await;
    let memberships =
        count("select count(*) from directory_group_members where tenant_id = $1").await;
    deliver_all(&app).await;
    let events: Vec<Value> = receiver.received().iter().map(Received::json).collect();
    assert!(receiver.received().iter().all(|r| verifies(&secret, r)));
    let of = |events: &[Value], t: &str| {
        events
            .iter()
            .filter(|e| e["type"] == t)
            .cloned()
            .collect::<Vec<_>>()
    };
    // One event per object and per membership, each carrying the object as the API shows it.
    let created = of(&events, "directory.user.created");
    assert_eq!(created.len() as i64, users);
    assert!(created[0]["data"]["user_principal_name"].is_string());
    assert_eq!(created[0]["data"]["tenant_id"], tenant.to_string());
    // The event's object is the API's, field for field (events are written by Postgres, the
    // API's pages by serde: this keeps the two from drifting apart).
    let read = crate::json_api::token(&app, "events-vs-api", "read").await;
    let (_, _, page) = crate::json_api::call(
        &app,
        reqwest::Method::GET,
        &format!("/api/v1/tenants/{tenant}/users?limit=500"),
        Some(&read),
        None,
    )
    .await;
    let mut event = created[0]["data"].as_object().unwrap().clone();
    event.remove("tenant_id");
    event.remove("run_id");
    let api = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["object_id"] == event["object_id"])
        .expect("the event's user is on the API's page");
    assert_eq!(&Value::Object(event), api);
    assert_eq!(of(&events, "directory.group.created").len() as i64, groups);
    assert_eq!(
        of(&events, "directory.membership.added").len() as i64,
        memberships
    );
    assert!(of(&events, "directory.user.updated").is_empty());
    let completed = of(&events, "sync.completed");
    assert_eq!(completed.len(), 1);
    assert_eq!(
        completed[0]["data"]["added"].as_i64().unwrap(),
        users + groups
    );

    // An incremental round: one edit, one deletion for good (whose memberships go with it).
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "select object_id from directory_users u where tenant_id = $1
         order by (select count(*) from directory_group_members m
                   where m.tenant_id = u.tenant_id and m.member_id = u.object_id), object_id",
    )
    .bind(tenant)
    .fetch_all(&app.db)
    .await
    .unwrap();
    let (edited, gone) = (ids[0], *ids.last().unwrap());
    let gone_memberships: i64 = sqlx::query_scalar(
        "select count(*) from directory_group_members where tenant_id = $1 and member_id = $2",
    )
    .bind(tenant)
    .bind(gone)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(gone_memberships > 0, "the deleted user is in a group");
    let t = format!("/_emulator/tenants/{tid}");
    emulator(
        &app,
        reqwest::Method::PATCH,
        &format!("{t}/users/{edited}"),
        Some(serde_json::json!({"jobTitle": "Head of Webhooks"})),
    )
    .await;
    emulator(
        &app,
        reqwest::Method::DELETE,
        &format!("{t}/users/{gone}?hard=true"),
        None,
    )
    .await;
    sync_now(&app, tenant).await;
    work(&app).await;
    let before = events.len();
    deliver_all(&app).await;
    let events: Vec<Value> = receiver.received().iter().map(Received::json).collect();
    let later = &events[before..];
    let updated = of(later, "directory.user.updated");
    assert_eq!(updated.len(), 1, "{later:?}");
    assert_eq!(updated[0]["data"]["object_id"], edited.to_string());
    assert_eq!(updated[0]["data"]["job_title"], "Head of Webhooks");
    let deleted = of(later, "directory.user.deleted");
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0]["data"]["object_id"], gone.to_string());
    assert_eq!(deleted[0]["data"]["permanent"], true);
    assert!(deleted[0]["data"]["user_principal_name"].is_string());
    // Graph may report the departures in the groups' members too: each is logged once.
    let removed = of(later, "directory.membership.removed");
    assert_eq!(removed.len() as i64, gone_memberships, "{removed:?}");
    assert!(
        removed
            .iter()
            .all(|e| e["data"]["member_id"] == gone.to_string())
    );
    assert!(later.iter().all(|e| e["type"] != "directory.user.created"));
}

#[tokio::test]
async fn the_openapi_document_lists_every_webhook_with_its_headers_and_body() {
    let app = TestApp::spawn().await;
    let doc: Value = reqwest::get(app.url(paths::API_OPENAPI))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let all = webhooks::EventType::SUBSCRIBABLE.iter();
    for event in all
        .chain([&webhooks::EventType::WebhookTest])
        .map(|t| t.name())
    {
        let op = &doc["webhooks"][event]["post"];
        assert!(op.is_object(), "{event}");
        let headers: Vec<&str> = op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            headers,
            ["webhook-id", "webhook-timestamp", "webhook-signature"]
        );
        let body = &op["requestBody"]["content"]["application/json"]["schema"];
        assert_eq!(body["properties"]["type"]["const"], *event);
        assert!(
            body["properties"]["data"]["properties"].is_object(),
            "{event}"
        );
    }
    // The routes are still there.
    assert!(doc["paths"]["/api/v1/tenants"]["get"].is_object());
}

#[tokio::test]
async fn viewers_cannot_see_or_change_webhooks_and_old_deliveries_are_pruned() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Viewer).await;
    let page = app.get(paths::WEBHOOKS).await;
    assert!(!page.status().is_success(), "{}", page.status());
    let response = app
        .post_form(
            paths::WEBHOOKS,
            &[("url", "https://hooks.example/x"), ("events", "*")],
        )
        .await;
    assert!(!response.status().is_success());
    assert!(webhooks::list(&app.db).await.unwrap().is_empty());

    let (endpoint, _) = webhooks::create(
        &app.db,
        &app.state.cfg.keys,
        "https://hooks.example/x",
        "",
        &["*".to_owned()],
        &gangway::audit::Actor::Cli,
    )
    .await
    .unwrap();
    let old = webhooks::send_test(&app.db, endpoint.id, &gangway::audit::Actor::Cli)
        .await
        .unwrap();
    let recent = webhooks::send_test(&app.db, endpoint.id, &gangway::audit::Actor::Cli)
        .await
        .unwrap();
    let pending = webhooks::send_test(&app.db, endpoint.id, &gangway::audit::Actor::Cli)
        .await
        .unwrap();
    sqlx::query(
        "update webhook_deliveries set delivered_at = now() - interval '31 days' where id = $1",
    )
    .bind(old)
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query(
        "update webhook_deliveries set delivered_at = now() - interval '1 day' where id = $1",
    )
    .bind(recent)
    .execute(&app.db)
    .await
    .unwrap();
    assert_eq!(delivery::prune(&app.db).await.unwrap(), 1);
    let left: Vec<Uuid> = sqlx::query_scalar("select id from webhook_deliveries order by id")
        .fetch_all(&app.db)
        .await
        .unwrap();
    let mut expected = vec![recent, pending];
    expected.sort();
    assert_eq!(left, expected);
}

#[tokio::test]
async fn a_viewer_never_reads_a_webhook_urls_secret_in_the_audit_log() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let receiver = Receiver::start().await;
    let url = format!("{}?token=s3cret-in-the-url", receiver.url);
    let (id, _) = add_endpoint(&app, &url, &["*"]).await;
    webhooks::delete(&app.db, id, &gangway::audit::Actor::Cli)
        .await
        .unwrap();
    let stored = || async {
        sqlx::query_scalar::<_, String>("select detail::text from audit_events")
            .fetch_all(&app.db)
            .await
            .unwrap()
    };
    // Redacted as it is written (the endpoint added, then deleted).
    let written = stored().await;
    assert_eq!(
        written
            .iter()
            .filter(|d| d.contains(&format!("{}?[redacted]", receiver.url)))
            .count(),
        2,
        "{written:?}"
    );
    assert!(written.iter().all(|d| !d.contains("s3cret")), "{written:?}");
    // A row written before URLs were redacted, scrubbed by the migration that shipped the fix.
    sqlx::query("insert into audit_events (actor, action, detail) values ('cli', 'webhook.endpoint_created', $1)")
        .bind(serde_json::json!({ "url": "https://bob:old-password@hooks.example/in?token=old-secret" }))
        .execute(&app.db)
        .await
        .unwrap();
    sqlx::raw_sql(include_str!("../../migrations/0013_audit_url_secrets.sql"))
        .execute(&app.db)
        .await
        .unwrap();

    let viewer = crate::helpers::browser();
    let email = format!("viewer-{}@provider.test", crate::helpers::short_id());
    app.add_operator(&email, Role::Viewer).await;
    crate::helpers::sign_in_as(&viewer, &app, &email).await;
    let page = viewer
        .get(app.url(paths::AUDIT))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&format!("{}?[redacted]", receiver.url)),
        "{page}"
    );
    assert!(
        page.contains("https://hooks.example/in?[redacted]"),
        "{page}"
    );
    for secret in ["s3cret-in-the-url", "old-secret", "old-password", "bob"] {
        assert!(!page.contains(secret), "{secret} in {page}");
    }
    // Nor can a search find it out a character at a time.
    let stored = stored().await;
    for secret in ["s3cret-in-the-url", "old-secret", "old-password"] {
        assert!(stored.iter().all(|d| !d.contains(secret)), "{stored:?}");
    }
}

#[tokio::test]
async fn offboarding_erases_the_tenants_directory_data_from_the_delivery_log() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let receiver = Receiver::start().await;
    add_endpoint(&app, &receiver.url, &["*"]).await;
    let issued = app.invite("delegated", "admin@contoso.example", None).await;
    let tenant = gangway::tenants::record_consent(
        &app.db,
        &app.state.cfg.keys,
        issued.invitation.id,
        &crate::helpers::consent(Uuid::new_v4()),
        &gangway::audit::Actor::System,
    )
    .await
    .unwrap();
    let user = |tenant: Uuid, name: &str| {
        serde_json::json!({ "tenant_id": tenant, "run_id": null,
                            "objects": [{ "displayName": name, "mail": format!("{name}@contoso.example") }] })
    };
    let emit = |data: Value| {
        let db = app.db.clone();
        async move {
            let mut tx = db.begin().await.unwrap();
            webhooks::emit(
                &mut tx,
                &webhooks::Event::new(webhooks::EventType::UserCreated, data),
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
        }
    };
    *receiver.answer.lock().unwrap() = "received delivered-alice".into();
    emit(user(tenant, "delivered-alice")).await;
    deliver(&app).await;
    emit(user(tenant, "pending-bob")).await;
    let elsewhere = Uuid::new_v4();
    emit(user(elsewhere, "other-tenant-carol")).await;

    gangway::tenants::offboard(&app.db, tenant, &gangway::audit::Actor::Cli)
        .await
        .unwrap();
    let log: Vec<(Value, Option<String>, Option<String>)> = sqlx::query_as(
        "select payload, last_error, response_body from webhook_deliveries
         where event_type = 'directory.user.created'",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    let text = format!("{log:?}");
    assert!(!text.contains("alice") && !text.contains("bob"), "{text}");
    let stream: Vec<Value> = sqlx::query_scalar("select data from events order by position")
        .fetch_all(&app.db)
        .await
        .unwrap();
    let stream = format!("{stream:?}");
    assert!(
        !stream.contains("alice") && !stream.contains("bob"),
        "{stream}"
    );
    assert!(stream.contains("other-tenant-carol"), "{stream}");
    assert!(text.contains("other-tenant-carol"), "{text}");
    let erased: Vec<&Value> = log
        .iter()
        .map(|(p, _, _)| p)
        .filter(|p| p["data"]["tenant_id"] == tenant.to_string())
        .collect();
    assert_eq!(erased.len(), 2);
    assert!(erased.iter().all(|p| p["data"]["erased"].is_string()));
    assert!(
        log.iter()
            .any(|(_, e, _)| e.as_deref().is_some_and(|e| e.contains("offboarded"))),
        "{text}"
    );

    deliver(&app).await;
    let names: Vec<String> = receiver
        .received()
        .iter()
        .flat_map(|r| {
            r.json()["data"]["objects"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|o| o["displayName"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(names, ["delivered-alice", "other-tenant-carol"]);
}

#[tokio::test]
async fn webhooks_never_reach_internal_addresses_unless_an_admin_allows_them() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let receiver = Receiver::start().await;
    for (url, why) in [
        (
            "https://169.254.169.254/latest/meta-data",
            "the cloud metadata service",
        ),
        ("https://[::ffff:127.0.0.1]/hook", "loopback"),
        ("https://10.1.2.3/hook", "private"),
        ("https://[fd00::1]/hook", "unique local"),
        (receiver.url.as_str(), "loopback"),
    ] {
        let response = app
            .post_form(paths::WEBHOOKS, &[("url", url), ("events", "*")])
            .await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{url}");
        let page = response.text().await.unwrap();
        assert!(
            page.contains(why) && page.contains("Webhooks may reach"),
            "{url}: {page}"
        );
    }
    assert!(webhooks::list(&app.db).await.unwrap().is_empty());

    // An admin allows loopback in System Settings (audited): endpoints there work.
    let saved = app
        .post_form(
            paths::SETTINGS,
            &[("webhook_allowed_networks", "127.0.0.0/8\n::1")],
        )
        .await;
    assert!(saved.status().is_redirection(), "{}", saved.status());
    let changed: Vec<Value> =
        sqlx::query_scalar("select detail from audit_events where action = 'settings.changed'")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert!(
        changed
            .iter()
            .any(|d| d["setting"] == "webhook_allowed_networks"),
        "{changed:?}"
    );
    let by_address = format!("{}?via=address", receiver.url);
    let by_name = by_address.replace("127.0.0.1", "localhost");
    let mut endpoints = Vec::new();
    for url in [&by_address, &by_name] {
        let response = app
            .post_form(paths::WEBHOOKS, &[("url", url.as_str()), ("events", "*")])
            .await;
        assert!(
            response.status().is_redirection(),
            "{url}: {}",
            response.status()
        );
        endpoints.push(
            webhooks::list(&app.db)
                .await
                .unwrap()
                .into_iter()
                .find(|e| e.url == *url)
                .unwrap()
                .id,
        );
    }
    for id in &endpoints {
        webhooks::send_test(&app.db, *id, &gangway::audit::Actor::Cli)
            .await
            .unwrap();
    }
    assert_eq!(deliver(&app).await.delivered, 2);

    // Allowed no more: what was saved is checked again at every send, the name as it resolves.
    let saved = app
        .post_form(paths::SETTINGS, &[("webhook_allowed_networks", "")])
        .await;
    assert!(saved.status().is_redirection());
    for id in &endpoints {
        webhooks::send_test(&app.db, *id, &gangway::audit::Actor::Cli)
            .await
            .unwrap();
    }
    let round = deliver(&app).await;
    assert_eq!((round.delivered, round.retried), (0, 2));
    assert_eq!(
        receiver.received().len(),
        2,
        "nothing more reached the receiver"
    );
    for id in &endpoints {
        let log = webhooks::deliveries(&app.db, *id, 1).await.unwrap();
        let error = log[0].last_error.clone().unwrap_or_default();
        assert!(error.starts_with("not sent:"), "{error}");
    }
}

/// The delivery log of `endpoint` as the signed-in operator sees it.
async fn log_page(app: &TestApp, endpoint: WebhookId) -> String {
    app.get(&paths::webhook(endpoint))
        .await
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_delivery_log_shows_the_body_sent_and_the_receivers_answer_escaped_and_capped() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let receiver = Receiver::start().await;
    receiver.status.store(422, Ordering::SeqCst);
    *receiver.answer.lock().unwrap() = format!(
        "<b>unknown event</b> {}",
        "x".repeat(10 * delivery::RESPONSE_CAP)
    );
    let (id, secret) = add_endpoint(&app, &receiver.url, &["*"]).await;
    webhooks::send_test(&app.db, id, &gangway::audit::Actor::Cli)
        .await
        .unwrap();
    assert_eq!(deliver(&app).await.retried, 1);

    let page = log_page(&app, id).await;
    assert!(page.contains("A test event from Gangway."), "{page}");
    assert!(
        page.contains("&#34;type&#34;: &#34;webhook.test&#34;"),
        "{page}"
    );
    assert!(
        page.contains("&#60;b&#62;unknown event&#60;/b&#62;"),
        "{page}"
    );
    assert!(!page.contains("<b>unknown event"), "{page}");
    assert!(page.contains("Answer (422)"), "{page}");
    assert!(page.contains(&receiver.received()[0].id), "{page}");
    assert!(!page.contains(&secret));
    let stored: String = sqlx::query_scalar("select response_body from webhook_deliveries")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stored.len(), delivery::RESPONSE_CAP);
    let kept = delivery::RESPONSE_CAP - "<b>unknown event</b> ".len();
    assert!(
        page.contains(&format!("{}<", "x".repeat(kept))),
        "capped on the page too"
    );
    assert!(!page.contains(&"x".repeat(kept + 1)));
}

#[tokio::test]
async fn sending_again_delivers_the_event_once_more_under_the_same_webhook_id() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let receiver = Receiver::start().await;
    let (id, secret) = add_endpoint(&app, &receiver.url, &["*"]).await;
    let first = webhooks::send_test(&app.db, id, &gangway::audit::Actor::Cli)
        .await
        .unwrap();
    assert_eq!(deliver(&app).await.delivered, 1);

    let page = app
        .post_and_follow(
            &paths::webhook_send_again(id),
            &[("delivery", &first.to_string())],
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("queued again"), "{page}");
    // Reloading the page it led to queues nothing more.
    log_page(&app, id).await;
    assert_eq!(deliver(&app).await.delivered, 1);
    make_due(&app).await;
    assert_eq!(deliver(&app).await, delivery::Round::default());

    let got = receiver.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].id, got[1].id);
    assert_eq!(got[0].json()["data"], got[1].json()["data"]);
    assert!(verifies(&secret, &got[1]));
    let log = webhooks::deliveries(&app.db, id, 10).await.unwrap();
    assert_eq!(log.len(), 2);
    assert!(
        log.iter()
            .all(|d| d.attempts == 1 && d.delivered_at.is_some())
    );
    let audit: Vec<String> = sqlx::query_scalar(
        "select action from audit_events where action = 'webhook.delivery_resent'",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(audit.len(), 1);
}

#[tokio::test]
async fn a_viewer_cannot_send_a_webhook_event_again() {
    let app = TestApp::spawn().await;
    let (endpoint, _) = webhooks::create(
        &app.db,
        &app.state.cfg.keys,
        "https://hooks.example/x",
        "",
        &["*".to_owned()],
        &gangway::audit::Actor::Cli,
    )
    .await
    .unwrap();
    let sent = webhooks::send_test(&app.db, endpoint.id, &gangway::audit::Actor::Cli)
        .await
        .unwrap();
    app.sign_in(Role::Viewer).await;
    let response = app
        .post_form(
            &paths::webhook_send_again(endpoint.id),
            &[("delivery", &sent.to_string())],
        )
        .await;
    assert!(!response.status().is_success(), "{}", response.status());
    let count: i64 = sqlx::query_scalar("select count(*) from webhook_deliveries")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 1);
}

/// Calls the webhooks API with `token`.
async fn api(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let (status, _, body) = crate::json_api::call(app, method, path, Some(token), body).await;
    (status, body)
}

#[tokio::test]
async fn endpoints_are_managed_through_the_json_api_with_the_consoles_checks_and_audit() {
    use reqwest::Method;
    use serde_json::json;
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let read = crate::json_api::token(&app, "reader", "read").await;
    let write = crate::json_api::token(&app, "hooks", "write").await;
    allow_loopback(&app).await;
    let receiver = Receiver::start().await;
    *receiver.answer.lock().unwrap() = "thanks".into();
    let body =
        json!({ "url": receiver.url, "description": "crm", "events": ["invitation.revoked"] });

    let (status, _) = api(
        &app,
        Method::POST,
        "/api/v1/webhooks",
        &read,
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a read token adds nothing");
    let (status, _) = api(&app, Method::GET, "/api/v1/webhooks", &read, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "nor reads endpoints");

    // Bad input: each refused with a problem saying why.
    for (bad, why) in [
        (
            json!({ "url": "ftp://hooks.example/x", "events": ["*"] }),
            "full URL",
        ),
        (
            json!({ "url": receiver.url, "events": ["directory.user.exploded"] }),
            "not an event type",
        ),
        (json!({ "url": receiver.url, "events": [] }), "at least one"),
        (
            json!({ "url": receiver.url, "events": ["*"], "secret": "mine" }),
            "unknown field",
        ),
        (json!({ "events": ["*"] }), "url"),
    ] {
        let (status, problem) = api(
            &app,
            Method::POST,
            "/api/v1/webhooks",
            &write,
            Some(bad.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(why),
            "{bad}: {problem}"
        );
    }
    let (status, _, problem) =
        crate::json_api::call(&app, Method::POST, "/api/v1/webhooks", Some(&write), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");

    // Create: the secret once, then never again.
    let (status, created) = api(&app, Method::POST, "/api/v1/webhooks", &write, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let id = created["webhook"]["id"].as_str().unwrap().to_owned();
    let one = format!("/api/v1/webhooks/{id}");
    let (status, listed) = api(&app, Method::GET, "/api/v1/webhooks", &write, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["items"][0]["id"], id.as_str());
    assert!(!listed.to_string().contains(&secret));
    let (status, got) = api(&app, Method::GET, &one, &write, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["events"], json!(["invitation.revoked"]));
    assert_eq!(got["description"], "crm");

    // Update: checked as at creation; what is absent stays.
    let (status, problem) = api(
        &app,
        Method::PATCH,
        &one,
        &write,
        Some(json!({ "url": "https://10.9.8.7/hook" })),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let (status, changed) = api(
        &app,
        Method::PATCH,
        &one,
        &write,
        Some(json!({ "events": ["*"], "description": "all of it" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["events"], json!(["*"]));
    assert_eq!(changed["url"], receiver.url.as_str());
    assert_eq!(changed["enabled"], true);

    // Rotate: a new secret, the old one signing beside it.
    let (status, rotated) = api(
        &app,
        Method::POST,
        &format!("{one}/rotate-secret"),
        &write,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    let (_, got) = api(&app, Method::GET, &one, &write, None).await;
    assert!(got["previous_secret_until"].is_string());

    // Test, the delivery log with both bodies, and send again under the same webhook-id.
    let (status, queued) = api(&app, Method::POST, &format!("{one}/test"), &write, None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(deliver(&app).await.delivered, 1);
    let got = receiver.received();
    assert!(verifies(&new_secret, &got[0]) && verifies(&secret, &got[0]));
    let (status, log) = api(
        &app,
        Method::GET,
        &format!("{one}/deliveries"),
        &write,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let first = &log["items"][0];
    assert_eq!(first["id"], queued["delivery_id"]);
    assert_eq!(first["request_body"]["type"], "webhook.test");
    assert_eq!(first["response_body"], "thanks");
    assert_eq!(first["last_status"], 200);
    assert_eq!(first["webhook_id"], got[0].id.as_str());
    let (status, again) = api(
        &app,
        Method::POST,
        &format!(
            "{one}/deliveries/{}/send-again",
            queued["delivery_id"].as_str().unwrap()
        ),
        &write,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    assert_eq!(deliver(&app).await.delivered, 1);
    let got = receiver.received();
    assert_eq!(got[1].id, got[0].id);
    assert_eq!(got[1].body, got[0].body);
    let (status, _) = api(
        &app,
        Method::POST,
        &format!("{one}/deliveries/{}/send-again", Uuid::new_v4()),
        &write,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Disable: nothing queued while off.
    let (status, _) = api(
        &app,
        Method::PATCH,
        &one,
        &write,
        Some(json!({ "enabled": false })),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let issued = app.invite("delegated", "admin@contoso.example", None).await;
    gangway::invitations::revoke(&app.db, issued.invitation.id, &gangway::audit::Actor::Cli)
        .await
        .unwrap();
    assert_eq!(deliver(&app).await, delivery::Round::default());

    // Every change audited under the token's name.
    let actions: Vec<String> = sqlx::query_scalar(
        "select action from audit_events where actor like '%hooks%' order by id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    for action in [
        "webhook.endpoint_created",
        "webhook.endpoint_changed",
        "webhook.secret_rotated",
        "webhook.test_sent",
        "webhook.delivery_resent",
    ] {
        assert!(actions.iter().any(|a| a == action), "{action}: {actions:?}");
    }

    // Delete, then it is gone.
    let (status, _) = api(&app, Method::DELETE, &one, &write, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for (method, path) in [
        (Method::GET, one.clone()),
        (Method::DELETE, one.clone()),
        (Method::POST, format!("{one}/rotate-secret")),
        (Method::GET, "/api/v1/webhooks/not-an-id".to_owned()),
    ] {
        let (status, problem) = api(&app, method, &path, &write, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {problem}");
    }
}

#[tokio::test]
async fn the_api_refuses_endpoints_on_every_internal_address_class_until_allow_listed() {
    use reqwest::Method;
    use serde_json::json;
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let write = crate::json_api::token(&app, "hooks", "write").await;
    let classes = [
        ("https://127.0.0.1/hook", "loopback"),
        ("https://[::1]/hook", "loopback"),
        ("https://10.20.30.40/hook", "private"),
        ("https://172.16.5.4/hook", "private"),
        ("https://192.168.1.10/hook", "private"),
        ("https://169.254.10.20/hook", "link-local"),
        ("https://169.254.169.254/latest/meta-data", "metadata"),
        ("https://[fe80::1]/hook", "link-local"),
        ("https://[::ffff:127.0.0.1]/hook", "loopback"),
        ("https://[::ffff:10.0.0.1]/hook", "private"),
        ("https://localhost/hook", "loopback"),
    ];
    for (url, why) in classes {
        let (status, problem) = api(
            &app,
            Method::POST,
            "/api/v1/webhooks",
            &write,
            Some(json!({ "url": url, "events": ["*"] })),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {problem}");
        assert_eq!(problem["status"], 422);
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.contains(why) && detail.contains("Webhooks may reach"),
            "{url}: {detail}"
        );
    }
    assert!(webhooks::list(&app.db).await.unwrap().is_empty());

    // Allow-listed by an admin: the same addresses are accepted.
    let edit = gangway::settings::Edit {
        key: gangway::settings::Key::WebhookAllowedNetworks,
        raw:
            "127.0.0.0/8\n::1\n10.0.0.0/8\n172.16.0.0/12\n192.168.0.0/16\n169.254.0.0/16\nfe80::/10"
                .into(),
    };
    gangway::settings::save(
        &app.db,
        &app.state.cfg.keys,
        &[edit],
        &gangway::audit::Actor::Cli,
    )
    .await
    .unwrap();
    for (url, _) in classes {
        let (status, created) = api(
            &app,
            Method::POST,
            "/api/v1/webhooks",
            &write,
            Some(json!({ "url": url, "events": ["*"] })),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{url}: {created}");
    }
}
