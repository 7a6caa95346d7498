//! What an API call costs and how fast a revocation bites: a read writes nothing, a revoked
//! token is refused within the documented bound (at once when revoked through this process),
//! and a token's last use is still recorded, at most an interval late.

use std::time::{Duration, Instant};

use gangway::api_tokens::{self, CHECK_TTL};
use gangway::audit::Actor;
use gangway::operators::Role;
use gangway::web::paths;
use reqwest::{Method, StatusCode};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::helpers::{Setup, TestApp};
use crate::json_api::{call, token};
use crate::sync_console::{tenant, user};

/// A token's id and, as a version of its row, the transaction that last wrote it.
async fn row_version(app: &TestApp, name: &str) -> (Uuid, String) {
    sqlx::query_as("select id, xmin::text from api_tokens where name = $1")
        .bind(name)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

async fn last_use(app: &TestApp, name: &str) -> (Option<OffsetDateTime>, Option<String>) {
    sqlx::query_as("select last_used_at, last_used_addr from api_tokens where name = $1")
        .bind(name)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// Waits until token `name`'s last use is recorded later than `after`, for at most `within`.
pub(crate) async fn last_use_recorded(
    app: &TestApp,
    name: &str,
    after: Option<OffsetDateTime>,
    within: Duration,
) -> OffsetDateTime {
    let started = Instant::now();
    loop {
        if let (Some(at), _) = last_use(app, name).await
            && after.is_none_or(|after| at > after)
        {
            return at;
        }
        assert!(
            started.elapsed() < within,
            "{name}'s use was not recorded within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Calls with `token` until it is refused; fails unless that happens within [`CHECK_TTL`] (and
/// a little for the calls themselves).
pub(crate) async fn refused_within_the_bound(app: &TestApp, token: &str) -> Duration {
    let started = Instant::now();
    loop {
        let (status, ..) = call(app, Method::GET, "/api/v1/customers", Some(token), None).await;
        if status == StatusCode::UNAUTHORIZED {
            return started.elapsed();
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            started.elapsed() < CHECK_TTL + Duration::from_secs(1),
            "the token still worked {:?} after it was revoked",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_api_read_makes_no_write() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let reader = token(&app, "dashboards", "read").await;
    let id = tenant(&app, "Contoso").await;
    user(
        &app,
        id,
        "Adele Vance",
        "adele@contoso.example",
        None,
        false,
    )
    .await;
    let users = format!("/api/v1/tenants/{id}/users?limit=100");

    // The first use is recorded (off the request path); then reads leave the row alone.
    let (status, ..) = call(&app, Method::GET, &users, Some(&reader), None).await;
    assert_eq!(status, StatusCode::OK);
    let first = last_use_recorded(&app, "dashboards", None, Duration::from_secs(5)).await;
    let before = row_version(&app, "dashboards").await;
    for path in [users.as_str(), "/api/v1/tenants", "/api/v1/customers"]
        .iter()
        .cycle()
        .take(30)
    {
        let (status, _, body) = call(&app, Method::GET, path, Some(&reader), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // Long enough for a write on its way to land.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        row_version(&app, "dashboards").await,
        before,
        "a read rewrote the token"
    );
    assert_eq!(last_use(&app, "dashboards").await.0, Some(first));
}

#[tokio::test]
async fn a_revoked_token_stops_working_within_the_documented_bound() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let names = ["console", "domain", "sql", "expired"];
    let mut tokens = Vec::new();
    for name in names {
        let token = token(&app, name, "read").await;
        // Checked once, so this process holds it.
        let (status, ..) = call(&app, Method::GET, "/api/v1/customers", Some(&token), None).await;
        assert_eq!(status, StatusCode::OK);
        tokens.push(token);
    }
    let id = |name: &str| {
        let db = app.db.clone();
        let name = name.to_owned();
        async move {
            sqlx::query_scalar::<_, Uuid>("select id from api_tokens where name = $1")
                .bind(name)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };

    // Revoked in the console: this process forgets it at once.
    let revoked = app
        .post_form(&paths::api_token_revoke(id("console").await.into()), &[])
        .await;
    assert_eq!(revoked.status(), StatusCode::SEE_OTHER);
    let (status, ..) = call(
        &app,
        Method::GET,
        "/api/v1/customers",
        Some(&tokens[0]),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "refused at once");

    // Revoked elsewhere — as the CLI or another portal process does, or straight in SQL — and
    // expired early: refused within the bound.
    api_tokens::revoke(&app.db, id("domain").await.into(), &Actor::Cli)
        .await
        .unwrap();
    refused_within_the_bound(&app, &tokens[1]).await;
    sqlx::query("update api_tokens set revoked_at = now() where name = 'sql'")
        .execute(&app.db)
        .await
        .unwrap();
    refused_within_the_bound(&app, &tokens[2]).await;
    sqlx::query("update api_tokens set expires_at = now() where name = 'expired'")
        .execute(&app.db)
        .await
        .unwrap();
    refused_within_the_bound(&app, &tokens[3]).await;
}

#[tokio::test]
async fn a_tokens_last_use_is_recorded_at_most_once_per_interval() {
    let every = Duration::from_secs(2);
    let app = TestApp::spawn_with(Setup {
        api_last_use_every: every,
        ..Setup::default()
    })
    .await;
    app.sign_in(Role::Admin).await;
    let reader = token(&app, "dashboards", "read").await;
    assert_eq!(last_use(&app, "dashboards").await, (None, None));

    let (status, ..) = call(&app, Method::GET, "/api/v1/tenants", Some(&reader), None).await;
    assert_eq!(status, StatusCode::OK);
    let first = last_use_recorded(&app, "dashboards", None, every).await;
    assert_eq!(
        last_use(&app, "dashboards").await.1.as_deref(),
        Some("127.0.0.1")
    );
    let page = app.get(paths::API_TOKENS).await.text().await.unwrap();
    assert!(page.contains("from 127.0.0.1"), "the console shows it");

    // Within the interval a use is not recorded; the first one after it is.
    let (status, ..) = call(&app, Method::GET, "/api/v1/tenants", Some(&reader), None).await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(last_use(&app, "dashboards").await.0, Some(first));
    tokio::time::sleep(every).await;
    let (status, ..) = call(&app, Method::GET, "/api/v1/tenants", Some(&reader), None).await;
    assert_eq!(status, StatusCode::OK);
    let later = last_use_recorded(&app, "dashboards", Some(first), every).await;
    assert!(later - first >= every, "{first} → {later}");
}
