//! Rate limits through HTTP: buckets per client as seen through trusted proxies (the tests
//! play the proxy from 127.0.0.1), IPv6 per /64, and the Microsoft round trip limited too.

use std::time::Duration;

use gangway::config::{RateLimit, TrustedProxies};
use gangway::invitations::InvitationToken;
use gangway::web::paths;
use reqwest::StatusCode;

use crate::helpers::{Setup, TestApp, browser};
use crate::wizard::Customer;

fn per_hour(burst: u32) -> RateLimit {
    RateLimit {
        burst,
        period: Duration::from_secs(3600),
    }
}

/// Two link opens per client, with 127.0.0.1 (the tests) as a trusted proxy or not.
async fn portal(trusted: &str) -> TestApp {
    TestApp::spawn_with(Setup {
        link_rate: per_hour(2),
        trusted_proxies: TrustedProxies::parse(trusted).unwrap(),
        ..Setup::default()
    })
    .await
}

/// Opens an unknown token link with `header: value` set, as a proxy would forward it.
async fn open_link(app: &TestApp, header: &str, value: &str) -> StatusCode {
    let path = format!(
        "{}?token={}",
        paths::AUTHENTICATE,
        InvitationToken::mint().expose()
    );
    browser()
        .get(app.url(&path))
        .header(header, value)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn clients_behind_a_trusted_proxy_get_their_own_buckets() {
    let app = portal("127.0.0.1/32").await;
    let alice = "203.0.113.7";
    for _ in 0..2 {
        assert_eq!(
            open_link(&app, "x-forwarded-for", alice).await,
            StatusCode::NOT_FOUND
        );
    }
    assert_eq!(
        open_link(&app, "x-forwarded-for", alice).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Alice, rotating the address she claims in front of the proxy's, stays Alice.
    assert_eq!(
        open_link(&app, "x-forwarded-for", &format!("198.51.100.9, {alice}")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Bob behind the same proxy is not locked out by her, whichever header the proxy uses.
    assert_eq!(
        open_link(&app, "x-forwarded-for", "203.0.113.8").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        open_link(&app, "forwarded", "for=203.0.113.8;proto=https").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        open_link(&app, "forwarded", "for=203.0.113.8").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    // A proxy is configured, but the tests' 127.0.0.1 is not it.
    let app = portal("10.0.0.0/8").await;
    assert_eq!(
        open_link(&app, "x-forwarded-for", "203.0.113.1").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        open_link(&app, "forwarded", "for=203.0.113.2").await,
        StatusCode::NOT_FOUND
    );
    // A third claimed address is still the same peer: rotating headers buys nothing.
    assert_eq!(
        open_link(&app, "x-forwarded-for", "203.0.113.3").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn ipv6_addresses_share_a_bucket_per_64() {
    let app = portal("127.0.0.1/32").await;
    for host in ["2001:db8:aa:1::1", "2001:db8:aa:1:ffff:ffff:ffff:fffe"] {
        assert_eq!(
            open_link(&app, "x-forwarded-for", host).await,
            StatusCode::NOT_FOUND
        );
    }
    // Another address in the same /64 is the same subscriber.
    assert_eq!(
        open_link(&app, "forwarded", r#"for="[2001:db8:aa:1::42]:4711""#).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // The next /64 is someone else.
    assert_eq!(
        open_link(&app, "x-forwarded-for", "2001:db8:aa:2::1").await,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn wizard_start_and_callback_are_rate_limited() {
    let app = TestApp::spawn_with(Setup {
        consent_rate: per_hour(2),
        ..Setup::default()
    })
    .await;
    let issued = app
        .invite("delegated", &app.customer(0).admin.username, None)
        .await;
    let customer = Customer::open(&app, &issued.link).await;
    for _ in 0..2 {
        customer.start(&app).await;
    }
    let response = customer.press_start(&app).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));

    // Replayed or forged callbacks: refused, then not even looked at.
    let forged = format!("{}?code=abc&state=def", paths::CALLBACK);
    for _ in 0..2 {
        let response = browser().get(app.url(&forged)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    }
    let response = browser().get(app.url(&forged)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
}
