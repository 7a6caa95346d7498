//! Graph's resource-unit limits, scaled down through the admin API so a few requests reach them.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn a_scaled_down_pair_limit_answers_429_with_retry_after_and_counts_it() {
    let t = TestEmu::start().await;
    let token = t.reader(0).await;
    // 25 users: a small tenant, 3,500 units per 10 s; at 0.002, 7 units.
    let resp = t.admin_post("/throttle", json!({"scale": 0.002})).await;
    assert_eq!(resp.status(), StatusCode::OK);

    // `GET users` costs 2, 1 with `$select`.
    let resp = t.graph(&token, "/v1.0/users").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-ms-resource-unit"], "2");
    let resp = t.graph(&token, "/v1.0/users?$select=id").await;
    assert_eq!(resp.headers()["x-ms-resource-unit"], "1");
    let low = t
        .http
        .get(format!("{}/v1.0/users/delta", t.base))
        .bearer_auth(&token)
        .header("x-ms-throttle-priority", "low")
        .send()
        .await
        .unwrap();
    assert_eq!(low.headers()["x-ms-resource-unit"], "1");
    // 4 of 7 used: past 0.8 after the next 2.
    let resp = t.graph(&token, "/v1.0/users").await;
    assert_eq!(resp.headers()["x-ms-throttle-limit-percentage"], "0.9");

    let resp = t.graph(&token, "/v1.0/users").await;
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry), "{retry}");
    assert!(
        resp.headers()["x-ms-throttle-scope"]
            .to_str()
            .unwrap()
            .starts_with("Tenant_Application/ReadWrite/")
    );
    assert_eq!(
        graph_error(resp, StatusCode::TOO_MANY_REQUESTS).await,
        "TooManyRequests"
    );

    // Another app in another tenant has buckets of its own.
    let other = t.reader(1).await;
    assert_eq!(
        t.graph(&other, "/v1.0/users").await.status(),
        StatusCode::OK
    );

    let report = t.get_json("/_emulator/throttle").await;
    assert_eq!(report["scale"], 0.002);
    assert_eq!(
        report["counts"],
        json!({"requests": 6, "resource_units": 8, "throttled": 1, "low_priority": 1})
    );

    // Scale 0 is off, and configuring resets the counts.
    t.admin_post("/throttle", json!({"scale": 0})).await;
    for _ in 0..20 {
        assert_eq!(
            t.graph(&token, "/v1.0/users").await.status(),
            StatusCode::OK
        );
    }
    let report = t.get_json("/_emulator/throttle").await;
    assert_eq!(report["counts"]["throttled"], 0);
    assert_eq!(report["counts"]["requests"], 20);
    let bad = t.admin_post("/throttle", json!({"scale": -1})).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}
