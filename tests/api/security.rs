//! Security properties of the onboarding journey: nothing secret at rest in plaintext, and
//! forged ID tokens refused.

use gangway::crypto::EncryptionKey;
use reqwest::StatusCode;
use serde_json::json;
use sqlx::Row;

use crate::helpers::{Decision, TestApp};
use crate::wizard::{
    CUSTOMER_APP_PERMISSIONS, Customer, CustomerAppCase, customer_app_case, invitation_state,
    tenant_count,
};

/// Every value of every column of every table (all schemas but the system ones, so the session
/// store too), as raw bytes: text as UTF-8, bytea as stored, anything else as its text form.
pub async fn everything_stored(app: &TestApp) -> Vec<(String, Vec<u8>)> {
    let columns = sqlx::query(
        "select c.table_schema, c.table_name, c.column_name, c.data_type
         from information_schema.columns c
         join information_schema.tables t on t.table_schema = c.table_schema and t.table_name = c.table_name
         where t.table_type = 'BASE TABLE' and c.table_schema not in ('pg_catalog', 'information_schema')",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert!(!columns.is_empty());
    let mut values = Vec::new();
    for column in columns {
        let (schema, table, name, kind): (String, String, String, String) =
            (column.get(0), column.get(1), column.get(2), column.get(3));
        let place = format!("{schema}.{table}.{name}");
        let sql = if kind == "bytea" {
            format!(
                "select \"{name}\" as v from \"{schema}\".\"{table}\" where \"{name}\" is not null"
            )
        } else {
            format!(
                "select convert_to(\"{name}\"::text, 'UTF8') as v from \"{schema}\".\"{table}\" where \"{name}\" is not null"
            )
        };
        for row in sqlx::query(&sql).fetch_all(&app.db).await.unwrap() {
            values.push((place.clone(), row.get::<Vec<u8>, _>(0)));
        }
    }
    values
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Runs of at least `min` base64url characters that are not plain hex (hex is how sealed bytes
/// and hashes print): the shape of the emulator's refresh tokens (96 random bytes → 128 chars).
fn token_shaped(bytes: &[u8], min: usize) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .filter(|run| run.len() >= min && !run.chars().all(|c| c.is_ascii_hexdigit()))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn no_token_secret_or_refresh_token_is_stored_in_plaintext() {
    let app = TestApp::spawn().await;
    // A delegated journey (leaves a refresh token) …
    let delegated_tenant = app.customer(0).clone();
    let delegated = app
        .invite("delegated", &delegated_tenant.admin.username, None)
        .await;
    let customer = Customer::open(&app, &delegated.link).await;
    let (_, response) = customer
        .consent(&app, &delegated_tenant.admin, Decision::Accept)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    // … and a customer-app journey (leaves a client secret), with a failed attempt first.
    let CustomerAppCase {
        tenant: app_tenant,
        registered,
        issued: customer_app_invite,
        customer,
    } = customer_app_case(&app, 1, CUSTOMER_APP_PERMISSIONS, false).await;
    let wrong_secret = "Wr0ng~Secret.Value_that-must-not-be-kept";
    let response = customer
        .customer_app(&app, &app_tenant.id, &registered.client_id, wrong_secret)
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let response = customer.submit_app(&app, &app_tenant.id, &registered).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(tenant_count(&app).await, 2);
    // A pending invitation whose link was never opened, and one whose mail is still queued.
    let unopened = app.invite("application", "x@contoso.example", None).await;

    // The sealed refresh token, opened with the key, is what must not appear anywhere in clear.
    let key = EncryptionKey::from_base64(&app.key_b64).unwrap();
    let (key_id, sealed): (String, Vec<u8>) = sqlx::query_as(
        "select credential_key_id, credential_ciphertext from tenants where consent_mode = 'delegated'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    let refresh_token = String::from_utf8(key.open(&key_id, &sealed).unwrap()).unwrap();
    // The detector below would find it, were it stored in clear.
    assert_eq!(
        token_shaped(refresh_token.as_bytes(), 128),
        vec![refresh_token.clone()],
        "an emulator refresh token"
    );
    let (key_id, sealed): (String, Vec<u8>) = sqlx::query_as(
        "select credential_key_id, credential_ciphertext from tenants where consent_mode = 'customer_app'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(
        key.open(&key_id, &sealed).unwrap(),
        registered.client_secret.as_bytes()
    );

    let token = |link: &url::Url| {
        link.query_pairs()
            .find(|(k, _)| k == "token")
            .unwrap()
            .1
            .into_owned()
    };
    let secrets = [
        ("delegated link token", token(&delegated.link)),
        ("customer-app link token", token(&customer_app_invite.link)),
        ("unopened link token", token(&unopened.link)),
        ("customer app secret", registered.client_secret.clone()),
        ("wrong customer app secret", wrong_secret.to_owned()),
        ("refresh token", refresh_token.clone()),
        ("provider client secret", app.app.client_secret.clone()),
    ];
    let stored = everything_stored(&app).await;
    assert!(
        stored
            .iter()
            .any(|(place, _)| place.starts_with("public.tenants"))
    );
    for (place, value) in &stored {
        for (what, secret) in &secrets {
            assert!(
                !contains(value, secret.as_bytes()),
                "the {what} is stored in plaintext in {place}"
            );
        }
        let shaped = token_shaped(value, 128);
        assert!(
            shaped.is_empty(),
            "a refresh-token-shaped value is stored in {place}: {}",
            shaped[0].len()
        );
    }
}

/// One forged-ID-token attempt: the emulator forges the next ID token it issues that way.
async fn forged_id_token_is_refused(kind: &str, problem: &str) {
    let app = TestApp::spawn().await;
    let tenant = app.customer(0).clone();
    let issued = app.invite("delegated", &tenant.admin.username, None).await;
    let customer = Customer::open(&app, &issued.link).await;
    app.admin
        .post("/_emulator/forgeries", &json!({ "kind": kind }))
        .await
        .expect("the emulator has the forgeries knob");

    let (callback, response) = customer
        .consent(&app, &tenant.admin, Decision::Accept)
        .await;
    assert!(
        callback.query_pairs().any(|(k, _)| k == "code"),
        "{callback}"
    );
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{kind}");
    let page = response.text().await.unwrap();
    assert!(page.contains("could not be verified"), "{kind}: {page}");
    assert!(!page.contains("is connected"));
    assert_eq!(tenant_count(&app).await, 0, "{kind}: nothing is recorded");
    let granted: i64 =
        sqlx::query_scalar("select count(*) from audit_events where action = 'consent.granted'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(granted, 0);
    let (status, _, last_error) = invitation_state(&app, issued.invitation.id.into()).await;
    assert_eq!(status, "failed", "{kind}");
    let last_error = last_error.unwrap();
    assert!(
        last_error.contains("ID token rejected") && last_error.contains(problem),
        "{kind}: {last_error}"
    );
}

#[tokio::test]
async fn an_id_token_signed_with_the_wrong_key_is_refused() {
    forged_id_token_is_refused("wrong_key", "signature does not verify").await;
}

#[tokio::test]
async fn an_id_token_with_alg_none_is_refused() {
    forged_id_token_is_refused("alg_none", "algorithm not allowed").await;
}

#[tokio::test]
async fn an_id_token_for_another_audience_is_refused() {
    forged_id_token_is_refused("wrong_aud", "another application").await;
}

#[tokio::test]
async fn an_id_token_from_another_issuer_is_refused() {
    forged_id_token_is_refused("wrong_iss", "unexpected issuer").await;
}

#[tokio::test]
async fn an_expired_id_token_is_refused() {
    forged_id_token_is_refused("expired", "expired").await;
}

#[tokio::test]
async fn an_id_token_with_a_bad_nonce_is_refused() {
    forged_id_token_is_refused("bad_nonce", "nonce does not match").await;
}
