//! Sign-in refusals of the customer's side, driven through HTTP as a browser meets them: an
//! organization whose connection needs a new consent, that withdrew its consent at Microsoft,
//! or that the application does not admit; a user deleted in the copy or outside the tenant's
//! sync scope; a Microsoft answer for
//! another tenant than the one Gangway routed to; a user the first copy has not reached yet
//! (admitted on Microsoft's word, without groups). And the token endpoint's guards: refused
//! requests slowed down per address, browsers' calls allowed only from single-page
//! applications' origins.

use gangway::audit::Actor;
use gangway::customers::CustomerDetails;
use gangway::signin::AppKind;
use gangway::signin::applications;
use gangway::web::paths;
use reqwest::StatusCode;
use serde_json::{Value, json};
use url::Url;

use crate::helpers::{Decision, consent_at_microsoft, location};
use crate::signin::{
    APP_CALLBACK, Case, authorize_url, authorize_url_of, code_from, sample_application,
    sign_in_through,
};
use crate::sync;

/// The authorize URL of the case's application hinting the case's member.
fn hinted(case: &Case) -> String {
    authorize_url(
        case,
        APP_CALLBACK,
        &[("login_hint", case.member.username.as_str())],
    )
}

/// A page (never a redirect, never Microsoft) with `status` that says `words`.
async fn assert_page(response: reqwest::Response, status: StatusCode, words: &str) {
    assert_eq!(response.status(), status);
    assert!(response.headers().get("location").is_none());
    let page = response.text().await.unwrap();
    assert!(page.contains(words), "the page says {words:?}: {page}");
}

/// How many sign-ins of the case's tenant were refused for `reason`.
async fn refusals(case: &Case, reason: &str) -> i64 {
    sqlx::query_scalar(
        "select count(*) from audit_events
         where action = 'signin.refused' and detail->>'reason' like $1",
    )
    .bind(format!("%{reason}%"))
    .fetch_one(&case.app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn an_organization_that_must_consent_again_gets_a_page_before_microsoft() {
    let case = Case::new(AppKind::Web).await;
    gangway::tenants::require_reconsent(&case.app.db, case.tenant_id, "invalid_grant")
        .await
        .unwrap();
    let response = case
        .app
        .new_browser()
        .get(hinted(&case))
        .send()
        .await
        .unwrap();
    assert_page(
        response,
        StatusCode::FORBIDDEN,
        "needs to renew its connection",
    )
    .await;
    assert_eq!(refusals(&case, "needs a new consent").await, 1);
}

#[tokio::test]
async fn a_customer_the_application_does_not_admit_gets_a_page_before_microsoft() {
    let case = Case::new(AppKind::Web).await;
    let other = gangway::customers::create(
        &case.app.db,
        &CustomerDetails::parse("Another customer", "", "").unwrap(),
        &Actor::Cli,
    )
    .await
    .unwrap();
    let mut only_other = sample_application("Agent Toolbar", AppKind::Web);
    only_other.customers = Some(vec![other.id.into()]);
    let toolbar = applications::register(&case.app.db, &only_other, &Actor::Cli)
        .await
        .unwrap();
    let url = authorize_url_of(
        &case,
        &toolbar.application.client_id,
        APP_CALLBACK,
        &[("login_hint", case.member.username.as_str())],
    );
    let response = case.app.new_browser().get(url).send().await.unwrap();
    assert_page(response, StatusCode::FORBIDDEN, "is not available to").await;
    assert_eq!(refusals(&case, "does not admit").await, 1);
    // The application that admits every customer still signs the same user in.
    let browser = case.app.new_browser();
    code_from(sign_in_through(&case, &browser, &hinted(&case), &case.member).await).await;
}

#[tokio::test]
async fn a_tenant_that_withdrew_the_consent_gets_a_page_naming_the_organization() {
    let case = Case::new(AppKind::Web).await;
    let tid = &case.entra_tenant_id;
    // At Microsoft the consent is gone and members may not consent for themselves.
    sync::emulator(
        &case.app,
        reqwest::Method::DELETE,
        &format!(
            "/_emulator/tenants/{tid}/consents/{}",
            case.app.app.client_id
        ),
        None,
    )
    .await;
    sync::emulator(
        &case.app,
        reqwest::Method::PATCH,
        &format!("/_emulator/tenants/{tid}"),
        Some(json!({"user_consent": false})),
    )
    .await;
    let browser = case.app.new_browser();
    let response = browser.get(hinted(&case)).send().await.unwrap();
    let to = location(response).await;
    let back = consent_at_microsoft(&browser, &to, &case.member, Decision::Accept).await;
    assert!(
        back.as_str()
            .starts_with(&case.app.url(paths::SIGNIN_CALLBACK))
    );
    let response = browser.get(back).send().await.unwrap();
    assert_page(
        response,
        StatusCode::FORBIDDEN,
        "has not allowed this application to sign its people in",
    )
    .await;
    assert_eq!(refusals(&case, "AADSTS90093").await, 1);
}

#[tokio::test]
async fn a_user_deleted_in_the_copy_is_refused_even_when_microsoft_signs_them_in() {
    let case = Case::new(AppKind::Web).await;
    let user = format!(
        "/_emulator/tenants/{}/users/{}",
        case.entra_tenant_id, case.member.id
    );
    sync::emulator(&case.app, reqwest::Method::DELETE, &user, None).await;
    sync::sync_now(&case.app, case.tenant_id).await;
    sync::work(&case.app).await;
    // Restored at Microsoft after the copy learned of the deletion: the copy decides.
    sync::emulator(
        &case.app,
        reqwest::Method::POST,
        &format!("{user}/restore"),
        None,
    )
    .await;
    let browser = case.app.new_browser();
    let response = sign_in_through(&case, &browser, &hinted(&case), &case.member).await;
    assert_page(response, StatusCode::FORBIDDEN, "was deleted").await;
    assert_eq!(refusals(&case, "deleted in the directory").await, 1);
}

#[tokio::test]
async fn a_user_outside_the_tenants_sync_scope_is_refused_as_entra_refuses_an_unassigned_one() {
    let case = Case::new(AppKind::Web).await;
    let made = sync::emulator(
        &case.app,
        reqwest::Method::POST,
        &format!("/_emulator/tenants/{}/groups", case.entra_tenant_id),
        Some(json!({"displayName": "Sales", "members": []})),
    )
    .await;
    let sales: uuid::Uuid = made["id"].as_str().unwrap().parse().unwrap();
    sync::sync_now(&case.app, case.tenant_id).await;
    sync::work(&case.app).await;
    // The provider serves only Sales, which the member is not in.
    gangway::directory::scope::set(
        &case.app.db,
        case.tenant_id,
        gangway::directory::scope::ScopeKind::Groups,
        &[sales],
        &Actor::Cli,
    )
    .await
    .unwrap();
    let browser = case.app.new_browser();
    let response = sign_in_through(&case, &browser, &hinted(&case), &case.member).await;
    assert_page(
        response,
        StatusCode::FORBIDDEN,
        "your account is not among them",
    )
    .await;
    assert_eq!(refusals(&case, "outside the tenant's sync scope").await, 1);
}

#[tokio::test]
async fn a_microsoft_answer_for_another_tenant_than_the_routed_one_is_refused() {
    let case = Case::new(AppKind::Web).await;
    let browser = case.app.new_browser();
    let response = browser.get(hinted(&case)).send().await.unwrap();
    let to = Url::parse(&location(response).await).unwrap();
    let state = to
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    // Another organization's user signs in to the provider's app with this browser's state,
    // and the answer is delivered to Gangway's callback as if it were the routed tenant's.
    let other = case.app.customer(1).clone();
    let mut elsewhere = to.clone();
    elsewhere.set_path(&format!("/{}/oauth2/v2.0/authorize", other.id));
    let member = other.member.clone().expect("a plain member");
    let forged = consent_at_microsoft(
        &case.app.new_browser(),
        elsewhere.as_str(),
        &member,
        Decision::Accept,
    )
    .await;
    let forged_state = forged
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned());
    assert_eq!(forged_state.as_deref(), Some(state.as_str()));
    let response = browser.get(forged).send().await.unwrap();
    assert_page(
        response,
        StatusCode::FORBIDDEN,
        "You could not be signed in",
    )
    .await;
    // No Gangway session came of it.
    let silent = authorize_url(&case, APP_CALLBACK, &[("prompt", "none")]);
    let to = location(browser.get(silent).send().await.unwrap()).await;
    assert!(to.contains("error=login_required"), "{to}");
    let refused: Value = sqlx::query_scalar(
        "select detail from audit_events where action = 'signin.refused' order by id desc limit 1",
    )
    .fetch_one(&case.app.db)
    .await
    .unwrap();
    assert_eq!(
        refused["user"],
        Value::Null,
        "nobody was signed in: {refused}"
    );
}

#[tokio::test]
async fn refused_token_requests_from_one_address_are_slowed_down_and_good_ones_still_answered() {
    let case = Case::new(AppKind::Web).await;
    let browser = case.app.new_browser();
    let (code, _) =
        code_from(sign_in_through(&case, &browser, &hinted(&case), &case.member).await).await;
    let token = |secret: &str, form: &[(&str, &str)]| {
        reqwest::Client::new()
            .post(case.app.url(paths::SIGNIN_TOKEN))
            .basic_auth(case.client_id(), Some(secret))
            .form(form)
            .send()
    };
    let guess = [
        ("grant_type", "refresh_token"),
        ("refresh_token", "a-guess"),
    ];
    for _ in 0..20 {
        let refused = token("not-the-secret", &guess).await.unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    }
    let slowed = token("not-the-secret", &guess).await.unwrap();
    assert_eq!(slowed.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(slowed.headers().contains_key("retry-after"));
    // A request that succeeds is answered and never counted.
    let secret = case.registered.client_secret.as_ref().unwrap().expose();
    let redeemed = token(
        secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", APP_CALLBACK),
        ],
    )
    .await
    .unwrap();
    assert_eq!(redeemed.status(), StatusCode::OK);
}

#[tokio::test]
async fn only_single_page_applications_origins_may_call_the_token_endpoint_from_a_browser() {
    let case = Case::new(AppKind::Spa).await;
    let spa = "http://127.0.0.1:9";
    let http = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        http.request(reqwest::Method::OPTIONS, case.app.url(paths::SIGNIN_TOKEN))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let allowed = preflight(spa).await.unwrap();
    assert_eq!(allowed.status(), StatusCode::NO_CONTENT);
    assert_eq!(allowed.headers()["access-control-allow-origin"], spa);
    let other = preflight("https://evil.example").await.unwrap();
    assert_eq!(other.status(), StatusCode::FORBIDDEN);
    assert!(!other.headers().contains_key("access-control-allow-origin"));

    // The answer itself (here a refusal) is readable by the application's origin only.
    let post = |origin: &'static str| {
        http.post(case.app.url(paths::SIGNIN_TOKEN))
            .header("origin", origin)
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", "nothing"),
                ("client_id", case.client_id()),
            ])
            .send()
    };
    let answer = post(spa).await.unwrap();
    assert_eq!(answer.headers()["access-control-allow-origin"], spa);
    let answer = post("https://evil.example").await.unwrap();
    assert!(!answer.headers().contains_key("access-control-allow-origin"));

    // Discovery, the JWKS and userinfo are open to any origin.
    for path in [
        paths::OIDC_DISCOVERY,
        paths::SIGNIN_JWKS,
        paths::SIGNIN_USERINFO,
    ] {
        let response = http
            .get(case.app.url(path))
            .header("origin", "https://any.example")
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers()["access-control-allow-origin"],
            "*",
            "{path}"
        );
    }
}

#[tokio::test]
async fn while_the_first_copy_runs_a_user_it_has_not_reached_is_admitted_on_microsofts_word() {
    let case = Case::copied(AppKind::Web, false).await;
    let browser = case.app.new_browser();
    let (code, _) =
        code_from(sign_in_through(&case, &browser, &hinted(&case), &case.member).await).await;
    let secret = case.registered.client_secret.as_ref().unwrap().expose();
    let tokens: Value = reqwest::Client::new()
        .post(case.app.url(paths::SIGNIN_TOKEN))
        .basic_auth(case.client_id(), Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", APP_CALLBACK),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let claims = crate::signin::payload(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["oid"], case.member.id);
    assert_eq!(claims["preferred_username"], case.member.username);
    // The copy knows no groups of theirs yet: none are claimed.
    assert!(
        claims["groups"].as_array().is_none_or(|g| g.is_empty()),
        "{claims}"
    );
}
