//! Discovery documents, JWKS and key rotation.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn discovery_for_a_tenant_and_tenant_independent_authorities() {
    let t = TestEmu::start().await;
    let tid = t.tid(0);
    let doc = t
        .get_json(&format!("/{tid}/v2.0/.well-known/openid-configuration"))
        .await;
    assert_eq!(doc["issuer"], format!("{}/{tid}/v2.0", t.base));
    assert_eq!(
        doc["token_endpoint"],
        format!("{}/{tid}/oauth2/v2.0/token", t.base)
    );
    assert_eq!(
        doc["authorization_endpoint"],
        format!("{}/{tid}/oauth2/v2.0/authorize", t.base)
    );
    assert_eq!(
        doc["jwks_uri"],
        format!("{}/{tid}/discovery/v2.0/keys", t.base)
    );
    assert_eq!(doc["id_token_signing_alg_values_supported"][0], "RS256");
    for seg in ["organizations", "common"] {
        let doc = t
            .get_json(&format!("/{seg}/v2.0/.well-known/openid-configuration"))
            .await;
        assert_eq!(doc["issuer"], format!("{}/{{tenantid}}/v2.0", t.base));
        assert_eq!(
            doc["authorization_endpoint"],
            format!("{}/{seg}/oauth2/v2.0/authorize", t.base)
        );
    }
    // A verified domain resolves to the tenant's GUID.
    let domain = t.tenants[0]["domain"].as_str().unwrap();
    let doc = t
        .get_json(&format!("/{domain}/v2.0/.well-known/openid-configuration"))
        .await;
    assert_eq!(doc["issuer"], format!("{}/{tid}/v2.0", t.base));
    let resp = t
        .http
        .get(format!(
            "{}/00000000-0000-0000-0000-000000000001/v2.0/.well-known/openid-configuration",
            t.base
        ))
        .send()
        .await
        .unwrap();
    aad_error(resp, StatusCode::BAD_REQUEST, "invalid_tenant", 90002).await;
}

#[tokio::test]
async fn jwks_lists_keys_with_issuer_and_rotation_adds_a_key_that_signs() {
    let t = TestEmu::start().await;
    let jwks = async |seg: &str| t.get_json(&format!("/{seg}/discovery/v2.0/keys")).await;
    let before = jwks("common").await;
    let keys = before["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    for field in ["kid", "kty", "use", "n", "e", "x5t"] {
        assert!(keys[0][field].is_string(), "{field}");
    }
    assert_eq!(keys[0]["issuer"], format!("{}/{{tenantid}}/v2.0", t.base));
    assert_eq!(jwks(&t.tid(1)).await, before);

    let rotated: Value = t
        .admin_post("/keys/rotate", serde_json::json!({}))
        .await
        .json()
        .await
        .unwrap();
    let new_kid = rotated["kid"].as_str().unwrap();
    let after = jwks("common").await;
    let kids: Vec<&str> = after["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(
        kids.contains(&new_kid) && kids.contains(&keys[0]["kid"].as_str().unwrap()),
        "old key stays published"
    );

    let app = t.provider_app().await;
    let tokens = tokens_for(&t, "organizations", &app, "openid", "", &t.admin(0)).await;
    let header = jsonwebtoken::decode_header(tokens["id_token"].as_str().unwrap()).unwrap();
    assert_eq!(header.kid.as_deref(), Some(new_kid));
}

#[tokio::test]
async fn armed_forgeries_spoil_exactly_the_next_id_token() {
    let t = TestEmu::start().await;
    let app = t.provider_app().await;
    let tid = t.tid(0);
    let jwks = t.get_json("/common/discovery/v2.0/keys").await;
    let jwk = &jwks["keys"][0];
    let key = jsonwebtoken::DecodingKey::from_rsa_components(
        jwk["n"].as_str().unwrap(),
        jwk["e"].as_str().unwrap(),
    )
    .unwrap();
    let next_id_token = async || {
        let tokens = tokens_for(&t, &tid, &app, "openid", "&prompt=consent", &t.admin(0)).await;
        tokens["id_token"].as_str().unwrap().to_string()
    };
    let validate = |jwt: &str| {
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        v.set_audience(&[&app.client_id]);
        v.set_issuer(&[format!("{}/{tid}/v2.0", t.base)]);
        v.leeway = 0;
        jsonwebtoken::decode::<Value>(jwt, &key, &v).map(|d| d.claims)
    };
    for kind in [
        "wrong_key",
        "alg_none",
        "wrong_aud",
        "wrong_iss",
        "expired",
        "bad_nonce",
    ] {
        let resp = t
            .admin_post("/forgeries", serde_json::json!({"kind": kind}))
            .await;
        assert_eq!(resp.status(), StatusCode::OK, "{kind}");
        let jwt = next_id_token().await;
        match kind {
            "bad_nonce" => assert_ne!(validate(&jwt).unwrap()["nonce"], "n-1"),
            _ => assert!(validate(&jwt).is_err(), "{kind} must not validate"),
        }
        assert_eq!(
            validate(&next_id_token().await).unwrap()["nonce"],
            "n-1",
            "only one token is forged"
        );
    }
    let resp = t
        .admin_post("/forgeries", serde_json::json!({"kind": "nonsense"}))
        .await;
    assert!(resp.status().is_client_error());
}
