//! The event stream through the real JSON API: the same events in the same order on every
//! read, a consumer resuming from a saved cursor while events are written concurrently (some
//! transactions held open, so positions commit out of order), filters, expired and foreign
//! cursors, and one id per event whether read from the stream or received by webhook.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use gangway::audit::Actor;
use gangway::operators::Role;
use gangway::webhooks::{self, Event, EventType};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::TestApp;
use crate::json_api::{call, token};
use crate::webhooks::{Receiver, add_endpoint, deliver};

/// Appends one event of `event_type` carrying `data`, in a transaction of its own.
async fn emit(app: &TestApp, event_type: EventType, data: Value) {
    let mut tx = app.db.begin().await.unwrap();
    webhooks::emit(&mut tx, &Event::new(event_type, data))
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// One read of the stream: its status and body.
async fn read(app: &TestApp, token: &str, query: &str) -> (StatusCode, Value) {
    let (status, _, body) = call(
        app,
        Method::GET,
        &format!("/api/v1/events{query}"),
        Some(token),
        None,
    )
    .await;
    (status, body)
}

/// Reads everything readable after `after` (a page of `limit` at a time); returns the items
/// and the cursor to save.
async fn drain(
    app: &TestApp,
    token: &str,
    after: Option<&str>,
    filters: &str,
    limit: u32,
) -> (Vec<Value>, String) {
    let mut cursor = after.map(str::to_owned);
    let mut items = Vec::new();
    loop {
        let query = match &cursor {
            Some(c) => format!("?after={c}&limit={limit}{filters}"),
            None => format!("?limit={limit}{filters}"),
        };
        let (status, page) = read(app, token, &query).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let got = page["items"].as_array().unwrap().clone();
        let next = page["next"].as_str().unwrap().to_owned();
        if got.is_empty() {
            return (items, next);
        }
        items.extend(got);
        cursor = Some(next);
    }
}

/// Reads everything from the start until `n` events are readable: an event becomes readable
/// once every transaction on the server older than it has ended, and other tests' run beside.
async fn drain_until(app: &TestApp, token: &str, filters: &str, n: usize) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let (items, _) = drain(app, token, None, filters, 100).await;
        if items.len() >= n || started.elapsed() > Duration::from_secs(30) {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_stream_reads_the_same_events_in_the_same_order_and_filters_them() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let reader = token(&app, "stream", "read").await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    for n in 0..7 {
        let tenant = if n % 2 == 0 { a } else { b };
        emit(
            &app,
            EventType::UserCreated,
            json!({ "tenant_id": tenant, "run_id": n, "object_id": Uuid::new_v4() }),
        )
        .await;
        emit(
            &app,
            EventType::SyncCompleted,
            json!({ "tenant_id": tenant, "run_id": n }),
        )
        .await;
    }
    drain_until(&app, &reader, "", 14).await;
    let (first, _) = drain(&app, &reader, None, "", 3).await;
    let (second, _) = drain(&app, &reader, None, "", 100).await;
    assert_eq!(first.len(), 14);
    assert_eq!(first, second, "the same events, in the same order");
    assert_eq!(first[0]["type"], "directory.user.created");
    assert_eq!(first[1]["type"], "sync.completed");
    assert_eq!(first[0]["tenant_id"], a.to_string());
    assert!(first[0]["occurred_at"].as_str().unwrap().ends_with('Z'));
    // Ids are UUIDv7 (RFC 9562), distinct, and their millisecond times never go back in the
    // log's order: new ones land at the edge of the id index.
    let v7: Vec<Uuid> = ids(&first)
        .iter()
        .map(|id| Uuid::parse_str(id).unwrap())
        .collect();
    assert!(v7.iter().all(|id| id.get_version_num() == 7), "{v7:?}");
    let times: Vec<u64> = v7
        .iter()
        .map(|id| {
            let (seconds, nanos) = id.get_timestamp().unwrap().to_unix();
            seconds * 1000 + u64::from(nanos) / 1_000_000
        })
        .collect();
    assert!(times.is_sorted(), "{v7:?}");
    assert_eq!(v7.iter().collect::<HashSet<_>>().len(), v7.len());

    let (created, _) = drain(&app, &reader, None, "&types=directory.user.created", 2).await;
    assert_eq!(created.len(), 7);
    assert!(
        created
            .iter()
            .all(|e| e["type"] == "directory.user.created")
    );
    let (of_b, _) = drain(
        &app,
        &reader,
        None,
        &format!("&tenant={b}&types=sync.completed,directory.user.created"),
        100,
    )
    .await;
    assert_eq!(of_b.len(), 6);
    assert!(of_b.iter().all(|e| e["tenant_id"] == b.to_string()));
    // The filtered reads keep the stream's order.
    let all = ids(&first);
    let positions: Vec<usize> = ids(&of_b)
        .iter()
        .map(|id| all.iter().position(|x| x == id).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");

    // An empty read hands back the cursor it was given, to poll with.
    let (_, end) = drain(&app, &reader, None, "", 100).await;
    let (status, page) = read(&app, &reader, &format!("?after={end}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"], json!([]));
    assert_eq!(page["next"], end.as_str());

    for (query, why) in [
        ("?types=directory.user.exploded", "directory.user.exploded"),
        ("?after=not-a-cursor", "after"),
        ("?limit=0", "limit"),
        ("?tenant=nobody", "tenant"),
    ] {
        let (status, problem) = read(&app, &reader, query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(why),
            "{query}: {problem}"
        );
    }
    let (status, _, _) = call(&app, Method::GET, "/api/v1/events", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_consumer_resuming_from_its_saved_cursor_misses_nothing_and_sees_nothing_twice() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let reader = token(&app, "consumer", "read").await;
    let tenant = Uuid::new_v4();
    // Writers whose transactions overlap: each takes its position, then some hold the
    // transaction open while others behind them commit — positions commit out of order.
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let db = app.db.clone();
            tokio::spawn(async move {
                let mut written = Vec::new();
                for n in 0..15 {
                    let mut tx = db.begin().await.unwrap();
                    let data = json!({ "tenant_id": tenant, "writer": w, "n": n });
                    webhooks::emit(&mut tx, &Event::new(EventType::SyncCompleted, data))
                        .await
                        .unwrap();
                    let id: Uuid = sqlx::query_scalar(
                        "select id from events where writer_xid = pg_current_xact_id()",
                    )
                    .fetch_one(&mut *tx)
                    .await
                    .unwrap();
                    written.push(id.to_string());
                    let hold = if (w + n) % 4 == 0 { 120 } else { 5 };
                    tokio::time::sleep(Duration::from_millis(hold)).await;
                    tx.commit().await.unwrap();
                }
                written
            })
        })
        .collect();

    // The consumer reads a little at a time and "restarts" after every read: all it keeps is
    // the cursor it saved.
    let mut saved: Option<String> = None;
    let mut seen: Vec<String> = Vec::new();
    let started = Instant::now();
    let filter = format!("&tenant={tenant}");
    loop {
        let done = writers.iter().all(|w| w.is_finished());
        let (items, next) = drain(&app, &reader, saved.as_deref(), &filter, 4).await;
        seen.extend(ids(&items));
        saved = Some(next);
        if done && seen.len() >= 90 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{}",
            seen.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut written = HashSet::new();
    for w in writers {
        written.extend(w.await.unwrap());
    }
    assert_eq!(written.len(), 90);
    let unique: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "nothing seen twice");
    assert_eq!(unique, written, "nothing missed");
    // And a fresh read from the start gives them in the order the consumer saw them.
    let (again, _) = drain(&app, &reader, None, &filter, 1000).await;
    assert_eq!(ids(&again), seen);
}

#[tokio::test]
async fn a_cursor_older_than_the_retention_period_gets_a_410_problem() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let reader = token(&app, "late", "read").await;
    let tenant = Uuid::new_v4();
    for n in 0..4 {
        emit(
            &app,
            EventType::SyncFailed,
            json!({ "tenant_id": tenant, "run_id": n }),
        )
        .await;
    }
    let items = drain_until(&app, &reader, "", 4).await;
    let early = items[0]["cursor"].as_str().unwrap().to_owned();
    let late = items[2]["cursor"].as_str().unwrap().to_owned();
    // The first two events happened 40 days ago; the default retention is 30.
    sqlx::query(
        "update events set occurred_at = now() - interval '40 days'
         where id = any($1::uuid[])",
    )
    .bind(vec![
        Uuid::parse_str(items[0]["id"].as_str().unwrap()).unwrap(),
        Uuid::parse_str(items[1]["id"].as_str().unwrap()).unwrap(),
    ])
    .execute(&app.db)
    .await
    .unwrap();
    assert_eq!(gangway::events::prune(&app.db).await.unwrap(), 2);

    let (status, problem) = read(&app, &reader, &format!("?after={early}")).await;
    assert_eq!(status, StatusCode::GONE, "{problem}");
    assert_eq!(problem["status"], 410);
    assert_eq!(problem["title"], "Gone");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("retention period"),
        "{problem}"
    );
    // A cursor past what was pruned reads on; from the start reads what is kept.
    let (status, page) = read(&app, &reader, &format!("?after={late}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let (kept, _) = drain(&app, &reader, None, "", 100).await;
    assert_eq!(ids(&kept), ids(&items[2..]));

    // A shorter retention (System Setting) prunes sooner.
    let edit = gangway::settings::Edit {
        key: gangway::settings::Key::EventRetentionDays,
        raw: "1".into(),
    };
    gangway::settings::save(&app.db, &app.state.cfg.keys, &[edit], &Actor::Cli)
        .await
        .unwrap();
    sqlx::query("update events set occurred_at = now() - interval '2 days'")
        .execute(&app.db)
        .await
        .unwrap();
    assert_eq!(gangway::events::prune(&app.db).await.unwrap(), 2);
    let (status, _) = read(&app, &reader, &format!("?after={late}")).await;
    assert_eq!(status, StatusCode::GONE);
}

#[tokio::test]
async fn a_webhook_carries_the_id_the_stream_shows_for_the_same_event() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let reader = token(&app, "both-ways", "read").await;
    let receiver = Receiver::start().await;
    add_endpoint(&app, &receiver.url, &["invitation.revoked"]).await;
    let issued = app.invite("delegated", "admin@contoso.example", None).await;
    gangway::invitations::revoke(&app.db, issued.invitation.id, &Actor::Cli)
        .await
        .unwrap();
    assert_eq!(deliver(&app).await.delivered, 1);
    let got = receiver.received();
    let body = got[0].json();
    let items = drain_until(&app, &reader, "&types=invitation.revoked", 1).await;
    assert_eq!(items.len(), 1);
    let event = &items[0];
    assert_eq!(body["id"], event["id"]);
    assert_eq!(body["data"], event["data"]);
    assert_eq!(body["timestamp"], event["occurred_at"]);
    let simple = Uuid::parse_str(event["id"].as_str().unwrap())
        .unwrap()
        .simple()
        .to_string();
    assert_eq!(got[0].id, format!("msg_{simple}"));
}

#[tokio::test]
async fn the_openapi_document_lists_the_event_types_from_the_code() {
    let app = TestApp::spawn().await;
    let doc: Value = reqwest::get(app.url(gangway::web::paths::API_OPENAPI))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let op = &doc["paths"]["/api/v1/events"]["get"];
    assert!(op["responses"]["410"].is_object(), "{op}");
    let names: Vec<&str> = doc["components"]["schemas"]["EventOut"]["properties"]["type"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let expected: Vec<&str> = EventType::SUBSCRIBABLE.iter().map(|t| t.name()).collect();
    assert_eq!(names, expected);
    for path in [
        "/api/v1/webhooks",
        "/api/v1/webhooks/{id}",
        "/api/v1/webhooks/{id}/rotate-secret",
        "/api/v1/webhooks/{id}/test",
        "/api/v1/webhooks/{id}/deliveries",
        "/api/v1/webhooks/{id}/deliveries/{delivery_id}/send-again",
    ] {
        assert!(doc["paths"][path].is_object(), "{path}");
    }
}
