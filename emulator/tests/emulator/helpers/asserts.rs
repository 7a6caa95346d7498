//! Assertions on Microsoft's error shapes.

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

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
