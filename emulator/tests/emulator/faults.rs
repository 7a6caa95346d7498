//! Fault injection: 429 with fractional Retry-After, 503, dropped connections, latency, counts.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn injected_faults_are_answered_and_counted() {
    let t = TestEmu::start().await;
    let token = t.reader(0).await;

    let resp = t
        .admin_post("/faults", json!({"rate_429": 1.0, "retry_after": 0.5}))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    for _ in 0..3 {
        let resp = t.graph(&token, "/v1.0/users").await;
        assert_eq!(resp.headers()["retry-after"], "0.5");
        assert_eq!(
            graph_error(resp, StatusCode::TOO_MANY_REQUESTS).await,
            "TooManyRequests"
        );
    }
    // The token endpoint is not under the default prefix.
    assert_eq!(
        t.http
            .get(format!("{}/common/discovery/v2.0/keys", t.base))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    t.admin_post("/faults", json!({"rate_503": 1.0, "retry_after": null}))
        .await;
    let resp = t.graph(&token, "/v1.0/users").await;
    assert!(resp.headers().get("retry-after").is_none());
    assert_eq!(
        graph_error(resp, StatusCode::SERVICE_UNAVAILABLE).await,
        "serviceNotAvailable"
    );

    t.admin_post("/faults", json!({"rate_drop": 1.0})).await;
    let dropped = match t
        .http
        .get(format!("{}/v1.0/users", t.base))
        .bearer_auth(&token)
        .send()
        .await
    {
        Err(_) => true,
        Ok(resp) => resp.bytes().await.is_err(),
    };
    assert!(dropped, "the connection breaks before a complete answer");

    t.admin_post("/faults", json!({"rate_429": 0.5, "latency_ms": 20}))
        .await;
    let mut throttled = 0;
    let started = std::time::Instant::now();
    for _ in 0..40 {
        if t.graph(&token, "/v1.0/organization").await.status() == StatusCode::TOO_MANY_REQUESTS {
            throttled += 1;
        }
    }
    assert!(started.elapsed().as_millis() >= 800, "latency is added");
    let report = t.get_json("/_emulator/faults").await;
    assert_eq!(report["injected"]["requests"], 40);
    assert_eq!(report["injected"]["throttled"], throttled);
    assert_eq!(report["injected"]["delayed"], 40);
    assert!((5..=35).contains(&throttled), "about half: {throttled}");
    assert_eq!(report["config"]["rate_429"], 0.5);

    let resp = t
        .admin_post("/faults", json!({"rate_429": 0.8, "rate_503": 0.8}))
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    t.admin_post("/faults", json!({})).await;
    assert_eq!(
        t.graph(&token, "/v1.0/users").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_stale_token_is_refused_with_any_4xx_and_a_resync_code_and_5xx_are_injected() {
    let t = TestEmu::start().await;
    let token = t.reader(0).await;
    let first = t.graph_json(&token, "/v1.0/users/delta").await;
    let delta = first["@odata.deltaLink"].as_str().unwrap().to_owned();

    let resp = t
        .admin_post(
            "/faults",
            json!({"stale_token": {"status": 404, "code": "resyncApplyDifferences", "count": 1}}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    // A round's first request carries no token: it is never refused.
    assert_eq!(
        t.graph(&token, "/v1.0/users/delta").await.status(),
        StatusCode::OK
    );
    let path = delta.strip_prefix(&t.base).unwrap().to_owned();
    let resp = t.graph(&token, &path).await;
    assert_eq!(
        graph_error(resp, StatusCode::NOT_FOUND).await,
        "resyncApplyDifferences"
    );
    assert_eq!(
        t.graph(&token, &path).await.status(),
        StatusCode::OK,
        "only `count` requests are refused"
    );
    let report = t.get_json("/_emulator/faults").await;
    assert_eq!(report["injected"]["stale_tokens"], 1);

    for wrong in [
        json!({"stale_token": {"status": 500, "code": "syncStateNotFound"}}),
        json!({"stale_token": {"status": 400, "code": "Request_BadRequest"}}),
    ] {
        assert_eq!(
            t.admin_post("/faults", wrong).await.status(),
            StatusCode::BAD_REQUEST
        );
    }

    t.admin_post("/faults", json!({"rate_5xx": 1.0})).await;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..30 {
        let resp = t.graph(&token, "/v1.0/users").await;
        seen.insert(resp.status().as_u16());
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "generalException");
    }
    assert_eq!(
        seen,
        [500, 502, 504].into(),
        "500, 502 and 504 are all drawn"
    );
    t.admin_post("/faults", json!({})).await;
}
