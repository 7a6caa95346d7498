//! `/v2.0/adminconsent` and legacy `/adminconsent`.

use reqwest::StatusCode;

use crate::helpers::*;

fn consent_url(base: &str, tenant: &str, client_id: &str, v2: bool) -> String {
    let mut url = url::Url::parse(&if v2 {
        format!("{base}/{tenant}/v2.0/adminconsent")
    } else {
        format!("{base}/{tenant}/adminconsent")
    })
    .unwrap();
    url.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("state", "ac-1");
    if v2 {
        url.query_pairs_mut()
            .append_pair("scope", "https://graph.microsoft.com/.default");
    }
    url.to_string()
}

#[tokio::test]
async fn global_admin_grants_and_client_credentials_then_work() {
    let t = TestEmu::start().await;
    let app = t.provider_app().await;
    let tid = t.tid(2);
    // Before consent, the app does not exist in the customer's tenant.
    let resp = t
        .token(
            &tid,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &app.client_id),
                ("client_secret", &app.secret),
                ("scope", "https://graph.microsoft.com/.default"),
            ],
        )
        .await;
    aad_error(resp, StatusCode::BAD_REQUEST, "unauthorized_client", 700016).await;

    let client = browser();
    let (_, html) = page(
        &client,
        &consent_url(&t.base, "organizations", &app.client_id, true),
    )
    .await;
    let admin = t.admin(2);
    let consent = sign_in(&client, &t.base, &html, &admin.0, &admin.1)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        consent.contains("Accept for your organization")
            && consent.contains("Organization.Read.All"),
        "{consent}"
    );
    let q = params(&location(
        &decide(&client, &t.base, &consent, "accept").await,
    ));
    assert_eq!(q["admin_consent"], "True");
    assert_eq!(q["tenant"], tid);
    assert_eq!(q["state"], "ac-1");
    let scopes: Vec<&str> = q["scope"].split(' ').collect();
    assert!(
        scopes.contains(&"https://graph.microsoft.com/User.Read.All")
            && scopes.contains(&"https://graph.microsoft.com/Organization.Read.All"),
        "{scopes:?}"
    );

    let token = t.app_token(&tid, &app).await;
    let org: serde_json::Value = t
        .graph(&token, "/v1.0/organization")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(org["value"][0]["id"], tid);
}

#[tokio::test]
async fn legacy_endpoint_and_decline() {
    let t = TestEmu::start().await;
    let app = t.provider_app().await;
    let admin = t.admin(1);
    let client = browser();
    let (_, html) = page(
        &client,
        &consent_url(&t.base, &t.tid(1), &app.client_id, false),
    )
    .await;
    let consent = sign_in(&client, &t.base, &html, &admin.0, &admin.1)
        .await
        .text()
        .await
        .unwrap();
    let q = params(&location(
        &decide(&client, &t.base, &consent, "decline").await,
    ));
    assert_eq!(q["error"], "consent_required");
    assert!(
        q["error_description"]
            .starts_with("AADSTS65004: User declined to consent to access the app.")
    );
    assert_eq!(q["state"], "ac-1");

    let (_, html) = page(
        &client,
        &consent_url(&t.base, &t.tid(1), &app.client_id, false),
    )
    .await;
    // The browser session is reused: straight to the consent page.
    assert!(!html.contains("idSIButton9"));
    let q = params(&location(&decide(&client, &t.base, &html, "accept").await));
    assert_eq!(q["admin_consent"], "True");
    assert_eq!(q["tenant"], t.tid(1));
    assert!(
        !q.contains_key("scope"),
        "the legacy endpoint returns no scope"
    );
}

#[tokio::test]
async fn a_member_cannot_grant_admin_consent() {
    let t = TestEmu::start().await;
    let app = t.provider_app().await;
    let member = t.member(1);
    let client = browser();
    let (_, html) = page(
        &client,
        &consent_url(&t.base, "organizations", &app.client_id, true),
    )
    .await;
    let resp = sign_in(&client, &t.base, &html, &member.0, &member.1).await;
    let body = resp.text().await.unwrap();
    assert!(body.contains("Need admin approval") && !body.contains("idBtn_Accept"));
    let start = body.find("href=\"").unwrap() + 6;
    let href = &body[start..start + body[start..].find('"').unwrap()];
    let q = params(&location(
        &client
            .get(format!("{}{href}", t.base))
            .send()
            .await
            .unwrap(),
    ));
    assert_eq!(q["error"], "access_denied");
    assert!(q["error_description"].starts_with("AADSTS90094"));
    let resp = t
        .token(
            &t.tid(1),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &app.client_id),
                ("client_secret", &app.secret),
                ("scope", "https://graph.microsoft.com/.default"),
            ],
        )
        .await;
    aad_error(resp, StatusCode::BAD_REQUEST, "unauthorized_client", 700016).await;
}
