//! The customer's journeys through HTTP only: token link, wizard, Microsoft (the emulator), the
//! OAuth2 callback and the customer-app form — and every way they can go wrong.

use std::time::Duration;

use entra_emulator::{EmulatedLogin, EmulatedTenant, RegisteredApp};
use gangway::config::RateLimit;
use gangway::invitations::{self, InvitationToken};
use gangway::web::paths;
use reqwest::StatusCode;
use serde_json::json;
use url::Url;
use uuid::Uuid;

use crate::helpers::{
    Decision, Setup, TestApp, browser, consent_at_microsoft, input_value, location,
};

/// A customer admin's browser, with the invitation open in it.
pub struct Customer {
    pub browser: reqwest::Client,
}

impl Customer {
    /// Opens `link` in a fresh browser; expects the redirect to the token-free wizard.
    pub async fn open(app: &TestApp, link: &Url) -> Self {
        let browser = app.new_browser();
        let response = browser
            .get(app.url(&app.path_of(link)))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_no_store(&response);
        let to = location(response).await;
        assert_eq!(to, paths::WIZARD);
        let token = link
            .query_pairs()
            .find(|(k, _)| k == "token")
            .unwrap()
            .1
            .into_owned();
        assert!(
            !to.contains(&token),
            "the token must not survive the redirect"
        );
        Self { browser }
    }

    /// GET a portal path.
    pub async fn get(&self, app: &TestApp, path: &str) -> reqwest::Response {
        self.browser.get(app.url(path)).send().await.unwrap()
    }

    /// The wizard page's HTML (asserting 200 and no-store).
    pub async fn wizard(&self, app: &TestApp) -> String {
        let response = self.get(app, paths::WIZARD).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_no_store(&response);
        response.text().await.unwrap()
    }

    /// Presses "Sign in with Microsoft": the portal's answer.
    pub async fn press_start(&self, app: &TestApp) -> reqwest::Response {
        let page = self.wizard(app).await;
        let csrf = input_value(&page, "csrf_token").expect("the wizard has a CSRF token");
        self.browser
            .post(app.url(paths::WIZARD_START))
            .form(&[("csrf_token", csrf)])
            .send()
            .await
            .unwrap()
    }

    /// Presses "Sign in with Microsoft": returns the Microsoft URL the wizard redirects to.
    pub async fn start(&self, app: &TestApp) -> String {
        let response = self.press_start(app).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_no_store(&response);
        location(response).await
    }

    /// Follows Microsoft's answer back to the portal, and on to the result page when the
    /// portal redirects there (as it does once an attempt is finished).
    pub async fn back(&self, callback: &Url) -> reqwest::Response {
        let response = self.browser.get(callback.clone()).send().await.unwrap();
        assert_no_store(&response);
        self.to_result(response).await
    }

    /// `response`, or the result page when `response` redirects to it.
    pub async fn to_result(&self, response: reqwest::Response) -> reqwest::Response {
        let to_result = response.status() == StatusCode::SEE_OTHER
            && response
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                == Some(paths::WIZARD_RESULT);
        if !to_result {
            return response;
        }
        let url = response.url().join(paths::WIZARD_RESULT).unwrap();
        let result = self.browser.get(url).send().await.unwrap();
        assert_no_store(&result);
        result
    }

    /// Start, go through Microsoft as `login` deciding `decision`, come back: the callback URL
    /// and the portal's answer to it.
    pub async fn consent(
        &self,
        app: &TestApp,
        login: &EmulatedLogin,
        decision: Decision,
    ) -> (Url, reqwest::Response) {
        let microsoft = self.start(app).await;
        self.through_microsoft(app, &microsoft, login, decision)
            .await
    }

    /// Goes through Microsoft from `microsoft` as `login` and comes back, as often as the portal
    /// sends the browser there again (application mode confirms a consent with a sign-in): the
    /// last callback URL and the portal's answer to it.
    pub async fn through_microsoft(
        &self,
        app: &TestApp,
        microsoft: &str,
        login: &EmulatedLogin,
        decision: Decision,
    ) -> (Url, reqwest::Response) {
        let mut microsoft = microsoft.to_owned();
        for _ in 0..3 {
            let callback = consent_at_microsoft(&self.browser, &microsoft, login, decision).await;
            assert!(
                callback.as_str().starts_with(&app.url(paths::CALLBACK)),
                "sent back to {callback}"
            );
            let response = self.back(&callback).await;
            let again = response
                .headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .filter(|l| l.starts_with(app.emulator.base_url()))
                .map(str::to_owned);
            match again {
                Some(next) if response.status() == StatusCode::SEE_OTHER => microsoft = next,
                _ => return (callback, response),
            }
        }
        panic!("the portal kept sending the browser back to Microsoft");
    }

    /// Submits the customer-app form with an app's registered credentials.
    pub async fn submit_app(
        &self,
        app: &TestApp,
        tenant: &str,
        registered: &RegisteredApp,
    ) -> reqwest::Response {
        self.customer_app(
            app,
            tenant,
            &registered.client_id,
            &registered.client_secret,
        )
        .await
    }

    /// Submits the customer-app form.
    pub async fn customer_app(
        &self,
        app: &TestApp,
        tenant: &str,
        client: &str,
        secret: &str,
    ) -> reqwest::Response {
        self.customer_app_expiring(app, tenant, client, secret, "")
            .await
    }

    /// Submits the customer-app form with the secret's expiry (`""`: not given).
    pub async fn customer_app_expiring(
        &self,
        app: &TestApp,
        tenant: &str,
        client: &str,
        secret: &str,
        expires: &str,
    ) -> reqwest::Response {
        let page = self.wizard(app).await;
        let csrf = input_value(&page, "csrf_token").unwrap();
        let form = [
            ("tenant_id", tenant),
            ("client_id", client),
            ("client_secret", secret),
            ("secret_expires", expires),
            ("csrf_token", &csrf),
        ];
        let response = self
            .browser
            .post(app.url(paths::WIZARD_CUSTOMER_APP))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_no_store(&response);
        self.to_result(response).await
    }
}

/// `url` with query parameter `key` set to `value`, the others kept in order.
fn with_param(url: &Url, key: &str, value: &str) -> Url {
    let mut changed = url.clone();
    let pairs = url
        .query_pairs()
        .map(|(k, v)| (k.clone(), if k == key { value.into() } else { v }));
    changed.query_pairs_mut().clear().extend_pairs(pairs);
    changed
}

/// Every wizard answer is `Cache-Control: no-store`.
pub fn assert_no_store(response: &reqwest::Response) {
    let value = response
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(
        value.as_deref(),
        Some("no-store"),
        "{} lacks no-store",
        response.url()
    );
}

/// (status, attempts, last_error) of an invitation.
pub async fn invitation_state(app: &TestApp, id: Uuid) -> (String, i32, Option<String>) {
    sqlx::query_as(
        "select effective_status, attempts, last_error from invitation_view where id = $1",
    )
    .bind(id)
    .fetch_one(&app.db)
    .await
    .unwrap()
}

/// How many tenants are recorded.
pub async fn tenant_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("select count(*) from tenants")
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// A tenant-wide delegated grant to the provider's app, as an earlier admin consent leaves:
/// Microsoft then issues codes to plain members without asking.
pub async fn grant_tenant_wide(app: &TestApp, tenant: &EmulatedTenant) {
    app.admin
        .grant(
            &tenant.id,
            &app.app.client_id,
            &["User.Read.All", "Group.Read.All", "User.Read"],
            &[],
        )
        .await
        .unwrap();
}

/// How many audit events of `action` exist.
pub async fn audit_count(app: &TestApp, action: &str) -> i64 {
    sqlx::query_scalar("select count(*) from audit_events where action = $1")
        .bind(action)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// Registers a single-tenant app in customer tenant `index` with `application` permissions,
/// admin-consented (as "Grant admin consent" would).
pub async fn customer_app(app: &TestApp, index: usize, application: &[&str]) -> RegisteredApp {
    let tenant = app.customer(index).id.clone();
    let registered = app
        .admin
        .register_app(&json!({
            "home_tenant": tenant,
            "multi_tenant": false,
            "display_name": "Test Provider directory sync",
            "permissions": { "application": application },
        }))
        .await
        .unwrap();
    app.admin
        .grant(&tenant, &registered.client_id, &[], application)
        .await
        .unwrap();
    registered
}

/// A customer-app invitation to customer tenant `index`, whose own app was granted
/// `application` permissions, opened in a fresh browser.
pub struct CustomerAppCase {
    pub tenant: EmulatedTenant,
    pub registered: RegisteredApp,
    pub issued: invitations::Issued,
    pub customer: Customer,
}

/// Sets up a [`CustomerAppCase`]; `restricted` limits the invitation to the tenant's domain.
pub async fn customer_app_case(
    app: &TestApp,
    index: usize,
    application: &[&str],
    restricted: bool,
) -> CustomerAppCase {
    let tenant = app.customer(index).clone();
    let registered = customer_app(app, index, application).await;
    let domain = restricted.then_some(tenant.domain.as_str());
    let issued = app
        .invite("customer-app", &tenant.admin.username, domain)
        .await;
    let customer = Customer::open(app, &issued.link).await;
    CustomerAppCase {
        tenant,
        registered,
        issued,
        customer,
    }
}

/// The permissions the customer-app instructions ask for.
pub const CUSTOMER_APP_PERMISSIONS: &[&str] =
    &["User.Read.All", "Group.Read.All", "Organization.Read.All"];

#[tokio::test]
async fn delegated_journey_records_the_tenant_and_the_link_is_then_used() {
    let app = TestApp::spawn().await;
    let tenant = app.customer(0).clone();
    let issued = app
        .invite("delegated", &tenant.admin.username, Some(&tenant.domain))
        .await;
    let customer = Customer::open(&app, &issued.link).await;

    let page = customer.wizard(&app).await;
    for expected in [
        "Test Provider",
        "Contoso Ltd",
        tenant.admin.username.as_str(),
        "User.Read.All",
        "Group.Read.All",
        "offline_access",
        "Sign in with Microsoft",
        "ms-logo",
        tenant.domain.as_str(),
        "Review",
    ] {
        assert!(page.contains(expected), "the wizard lacks {expected:?}");
    }
    assert!(
        !page.contains(issued.link.query().unwrap()),
        "the wizard must not carry the token"
    );

    let microsoft = customer.start(&app).await;
    let authorize = Url::parse(&microsoft).unwrap();
    assert!(
        authorize
            .path()
            .ends_with("/organizations/oauth2/v2.0/authorize"),
        "{microsoft}"
    );
    let params: std::collections::HashMap<_, _> = authorize.query_pairs().into_owned().collect();
    assert_eq!(
        params.get("code_challenge_method").map(String::as_str),
        Some("S256")
    );
    assert!(
        params["scope"].contains("offline_access") && params["scope"].contains("User.Read.All")
    );
    assert_eq!(params.get("login_hint"), Some(&tenant.admin.username));
    assert!(params.contains_key("nonce") && params.contains_key("state"));
    let started = audit_count(&app, "consent.started").await;
    assert_eq!(started, 1);

    let callback = consent_at_microsoft(
        &customer.browser,
        &microsoft,
        &tenant.admin,
        Decision::Accept,
    )
    .await;
    let response = customer.back(&callback).await;
    assert_eq!(response.status(), StatusCode::OK);
    let done = response.text().await.unwrap();
    assert!(done.contains("is connected"), "{done}");
    assert!(done.contains(&tenant.display_name), "{done}");
    assert!(done.contains("close this window"));

    type Row = (
        String,
        Vec<String>,
        Option<String>,
        Option<Vec<u8>>,
        Vec<String>,
    );
    let (mode, domains, upn, sealed, scopes): Row =
        sqlx::query_as(
            "select consent_mode, verified_domains, consented_by_upn, credential_ciphertext, granted_scopes
             from tenants where entra_tenant_id = $1",
        )
        .bind(Uuid::parse_str(&tenant.id).unwrap())
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(mode, "delegated");
    assert!(
        domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(&tenant.domain))
    );
    assert_eq!(upn.as_deref(), Some(tenant.admin.username.as_str()));
    assert!(
        sealed.is_some_and(|s| !s.is_empty()),
        "the refresh token is kept, sealed"
    );
    assert!(
        scopes.iter().any(|s| s.contains("User.Read.All")),
        "{scopes:?}"
    );
    let (status, _, last_error) = invitation_state(&app, issued.invitation.id.into()).await;
    assert_eq!(status, "consented");
    assert_eq!(last_error, None);
    assert_eq!(audit_count(&app, "consent.granted").await, 1);

    // The session forgot the invitation; the link is used.
    let response = customer.get(&app, paths::WIZARD).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap().contains("invitation email"));
    let again = browser()
        .get(app.url(&app.path_of(&issued.link)))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::GONE);
    assert_no_store(&again);
    assert!(again.text().await.unwrap().contains("already connected"));
}

#[tokio::test]
async fn application_journey_is_confirmed_with_an_app_token_and_records_the_tenant() {
    let app = TestApp::spawn().await;
    let tenant = app.customer(1).clone();
    let issued = app
        .invite("application", &tenant.admin.username, None)
        .await;
    let customer = Customer::open(&app, &issued.link).await;
    let page = customer.wizard(&app).await;
    assert!(page.contains("admin consent") && page.contains("Organization.Read.All"));
    assert!(!page.contains("offline_access"));

    let microsoft = customer.start(&app).await;
    assert!(
        Url::parse(&microsoft)
            .unwrap()
            .path()
            .ends_with("/organizations/v2.0/adminconsent"),
        "{microsoft}"
    );
    let callback = consent_at_microsoft(
        &customer.browser,
        &microsoft,
        &tenant.admin,
        Decision::Accept,
    )
    .await;
    assert!(
        callback
            .query_pairs()
            .any(|(k, v)| k == "admin_consent" && v == "True"),
        "{callback}"
    );
    // The unsigned answer records nothing yet: the admin is sent to sign in to that tenant,
    // silently, since they are still signed in at Microsoft.
    let response = customer.back(&callback).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(tenant_count(&app).await, 0);
    let sign_in = Url::parse(&location(response).await).unwrap();
    assert_eq!(
        sign_in.path(),
        format!("/{}/oauth2/v2.0/authorize", tenant.id)
    );
    let query: std::collections::HashMap<_, _> = sign_in.query_pairs().into_owned().collect();
    assert_eq!(query["prompt"], "none");
    assert_eq!(query["scope"], "openid profile");
    assert!(query.contains_key("nonce") && query.contains_key("code_challenge"));
    let (_, response) = customer
        .through_microsoft(&app, sign_in.as_str(), &tenant.admin, Decision::Accept)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("is connected"));

    let (mode, sealed, scopes, upn): (String, Option<Vec<u8>>, Vec<String>, Option<String>) = sqlx::query_as(
        "select consent_mode, credential_ciphertext, granted_scopes, consented_by_upn from tenants where entra_tenant_id = $1",
    )
    .bind(Uuid::parse_str(&tenant.id).unwrap())
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(mode, "application");
    assert_eq!(upn.as_deref(), Some(tenant.admin.username.as_str()));
    assert!(sealed.is_none(), "application consent keeps no credential");
    assert!(!scopes.is_empty());
    assert_eq!(
        invitation_state(&app, issued.invitation.id.into()).await.0,
        "consented"
    );
}

#[tokio::test]
async fn admin_consent_for_a_tenant_named_only_in_the_query_is_not_trusted() {
    let app = TestApp::spawn().await;
    let (consenting, other) = (app.customer(0).clone(), app.customer(1).clone());
    let issued = app
        .invite("application", &consenting.admin.username, None)
        .await;
    let customer = Customer::open(&app, &issued.link).await;
    let microsoft = customer.start(&app).await;
    let real = consent_at_microsoft(
        &customer.browser,
        &microsoft,
        &consenting.admin,
        Decision::Accept,
    )
    .await;
    // Someone rewrites the answer to name a tenant that never consented: it only decides where
    // the administrator must now sign in, and nobody signed in there.
    let forged = with_param(&real, "tenant", &other.id);
    let response = customer.back(&forged).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let silent = location(response).await;
    assert!(
        silent.contains(&format!("/{}/oauth2/v2.0/authorize", other.id)),
        "{silent}"
    );
    let answer = customer.browser.get(&silent).send().await.unwrap();
    let answer = Url::parse(&location(answer).await).unwrap();
    assert!(
        answer
            .query_pairs()
            .any(|(k, v)| k == "error" && v == "login_required")
    );
    let response = customer.back(&answer).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let interactive = location(response).await;
    assert!(
        interactive.contains(&format!("/{}/oauth2/v2.0/authorize", other.id))
            && interactive.contains("prompt=select_account"),
        "{interactive}"
    );
    assert_eq!(tenant_count(&app).await, 0);
    assert_eq!(
        invitation_state(&app, issued.invitation.id.into()).await.0,
        "opened"
    );
}

#[tokio::test]
async fn customer_app_with_a_good_secret_is_proven_and_recorded() {
    let app = TestApp::spawn().await;
    let CustomerAppCase {
        tenant,
        registered,
        issued,
        customer,
    } = customer_app_case(&app, 0, CUSTOMER_APP_PERMISSIONS, true).await;

    let page = customer.wizard(&app).await;
    for expected in [
        "Directory (tenant) ID",
        "Application (client) ID",
        "Single tenant",
        "leave it empty",
        "24 months",
        "not</em> the Secret ID",
        "User.Read.All",
        "Group.Read.All",
        "Grant admin consent",
        "Check and connect",
    ] {
        assert!(
            page.contains(expected),
            "the customer-app page lacks {expected:?}"
        );
    }
    assert!(
        !page.contains("ms-button"),
        "customer-app mode has no Microsoft sign-in"
    );

    let far = (time::OffsetDateTime::now_utc().date() + time::Duration::days(900)).to_string();
    let refused = customer
        .customer_app_expiring(
            &app,
            &tenant.id,
            &registered.client_id,
            &registered.client_secret,
            &far,
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.text().await.unwrap().contains("at most 24 months"));
    let expires = time::OffsetDateTime::now_utc().date() + time::Duration::days(40);
    let response = customer
        .customer_app_expiring(
            &app,
            &tenant.id,
            &registered.client_id,
            &registered.client_secret,
            &expires.to_string(),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let done = response.text().await.unwrap();
    assert!(done.contains("is connected"), "{done}");
    assert!(!done.contains(&registered.client_secret));
    let known: Option<time::Date> =
        sqlx::query_scalar("select credential_expires_on from tenants where entra_tenant_id = $1")
            .bind(Uuid::parse_str(&tenant.id).unwrap())
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(
        known,
        Some(expires),
        "the secret's expiry is kept for reminders"
    );

    let (mode, client_id, sealed): (String, Option<String>, Option<Vec<u8>>) = sqlx::query_as(
        "select consent_mode, customer_client_id, credential_ciphertext from tenants where entra_tenant_id = $1",
    )
    .bind(Uuid::parse_str(&tenant.id).unwrap())
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(mode, "customer_app");
    assert_eq!(client_id.as_deref(), Some(registered.client_id.as_str()));
    assert!(sealed.is_some());
    assert_eq!(
        invitation_state(&app, issued.invitation.id.into()).await.0,
        "consented"
    );
}

#[tokio::test]
async fn customer_app_with_a_wrong_secret_says_to_copy_the_value_and_saves_nothing() {
    let app = TestApp::spawn().await;
    let CustomerAppCase {
        tenant,
        registered,
        issued,
        customer,
    } = customer_app_case(&app, 0, CUSTOMER_APP_PERMISSIONS, false).await;

    let wrong = "wrong~secret-value-0123456789";
    let response = customer
        .customer_app(&app, &tenant.id, &registered.client_id, wrong)
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = response.text().await.unwrap();
    assert!(page.contains("Value, not its Secret ID"), "{page}");
    assert!(page.contains("AADSTS7000215"));
    assert!(!page.contains(wrong), "the secret is never echoed back");
    assert_eq!(
        input_value(&page, "tenant_id").as_deref(),
        Some(tenant.id.as_str())
    );
    assert_eq!(
        input_value(&page, "client_id").as_deref(),
        Some(registered.client_id.as_str())
    );

    assert_eq!(tenant_count(&app).await, 0);
    let (status, attempts, last_error) = invitation_state(&app, issued.invitation.id.into()).await;
    assert_eq!((status.as_str(), attempts), ("failed", 1));
    assert!(last_error.unwrap().contains("7000215"));

    // Then with the right one, from the same page.
    let response = customer.submit_app(&app, &tenant.id, &registered).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(tenant_count(&app).await, 1);
}

#[tokio::test]
async fn customer_app_lacking_user_read_all_names_the_missing_permission() {
    let app = TestApp::spawn().await;
    let CustomerAppCase {
        tenant,
        registered,
        issued,
        customer,
    } = customer_app_case(&app, 1, &["Group.Read.All", "Organization.Read.All"], false).await;

    let response = customer.submit_app(&app, &tenant.id, &registered).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = response.text().await.unwrap();
    assert!(
        page.contains("User.Read.All") && page.contains("Grant admin consent"),
        "{page}"
    );
    assert!(page.contains("Authorization_RequestDenied"));
    assert_eq!(tenant_count(&app).await, 0);
    let (status, attempts, _) = invitation_state(&app, issued.invitation.id.into()).await;
    assert_eq!((status.as_str(), attempts), ("failed", 1));
}

#[tokio::test]
async fn customer_app_fields_are_checked_before_asking_microsoft() {
    let app = TestApp::spawn().await;
    let tenant = app.customer(0).clone();
    let issued = app
        .invite("customer-app", &tenant.admin.username, None)
        .await;
    let customer = Customer::open(&app, &issued.link).await;

    let response = customer
        .customer_app(&app, &tenant.domain, "not-a-guid", "")
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = response.text().await.unwrap();
    assert!(page.contains("not a domain name"), "{page}");
    assert!(page.contains("This is not a client ID"));
    assert!(page.contains("Enter the client secret"));
    assert_eq!(
        input_value(&page, "tenant_id").as_deref(),
        Some(tenant.domain.as_str())
    );

    // An unknown tenant is named as such by Microsoft.
    let unknown = Uuid::new_v4().to_string();
    let response = customer
        .customer_app(&app, &unknown, &Uuid::new_v4().to_string(), "some-secret")
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = response.text().await.unwrap();
    assert!(page.contains("no tenant with this ID"), "{page}");
    assert_eq!(tenant_count(&app).await, 0);
    // Shape errors are not attempts; the unknown tenant is.
    assert_eq!(
        invitation_state(&app, issued.invitation.id.into()).await.1,
        1
    );
}

#[tokio::test]
async fn a_decline_is_recorded_and_the_link_still_works_for_a_retry() {
    let app = TestApp::spawn().await;
    let tenant = app.customer(0).clone();
    let issued = app.invite("delegated", &tenant.admin.username, None).await;
    let customer = Customer::open(&app, &issued.link).await;

    let (_, response) = customer
        .consent(&app, &tenant.admin, Decision::Decline)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let page = response.text().await.unwrap();
    assert!(page.contains("You declined"), "{page}");
    assert!(page.contains("Try again") && page.contains(paths::WIZARD));
    assert_eq!(tenant_count(&app).await, 0);
    let (status, attempts, last_error) = invitation_state(&app, issued.invitation.id.into()).await;
    assert_eq!((status.as_str(), attempts), ("declined", 1));
    assert!(last_error.unwrap().contains("65004"));
    assert_eq!(audit_count(&app, "consent.declined").await, 1);

    // The wizard shows the setback and lets the admin try again; this time they accept.
    let page = customer.wizard(&app).await;
    assert!(
        page.contains("The last attempt did not complete") && page.contains("65004"),
        "{page}"
    );
    let (_, response) = customer
        .consent(&app, &tenant.admin, Decision::Accept)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(tenant_count(&app).await, 1);
    assert_eq!(
        invitation_state(&app, issued.invitation.id.into()).await.0,
        "consented"
    );
}

#[tokio::test]
async fn an_admin_consent_decline_is_recorded() {
    let app = TestApp::spawn().await;
    let tenant = app.customer(1).clone();
    let issued = app
        .invite("application", &tenant.admin.username, None)
        .await;
    let customer = Customer::open(&app, &issued.link).await;
    let (callback, response) = customer
        .consent(&app, &tenant.admin, Decision::Decline)
        .await;
    assert!(
        callback
            .query_pairs()
            .any(|(k, v)| k == "error" && v == "consent_required"),
        "{callback}"
    );
    // Microsoft's decline carries admin_consent=True beside the error: still a decline.
    assert!(
        callback
            .query_pairs()
            .any(|(k, v)| k == "admin_consent" && v == "True"),
        "{callback}"
    );
    let page = response.text().await.unwrap();
    assert!(page.contains("You declined"), "{page}");
    assert_eq!(
        invitation_state(&app, issued.invitation.id.into()).await.0,
        "declined"
    );
    assert_eq!(tenant_count(&app).await, 0);
}

#[tokio::test]
async fn a_member_who_is_not_an_admin_cannot_consent() {
    let app = TestApp::spawn().await;
    let tenant = app.customer(0).clone();
    let member = tenant.member.clone().expect("seeded tenants have a member");
    let issued = app.invite("delegated", &tenant.admin.username, None).await;
    let customer = Customer::open(&app, &issued.link).await;

    // Microsoft's "need admin approval" page, then back without consent (AADSTS90094).
    let (callback, response) = customer.consent(&app, &member, Decision::Accept).await;
    assert!(callback.as_str().contains("90094"), "{callback}");
    let page = response.text().await.unwrap();
    assert!(
        page.contains("cannot approve") && page.contains("Global Administrator"),
        "{page}"
    );
    let (status, _, last_error) = invitation_state(&app, issued.invitation.id.into()).await;
    assert_eq!(status, "failed");
    assert!(last_error.unwrap().contains("90094"));
    assert_eq!(tenant_count(&app).await, 0);
}

#[tokio::test]
async fn a_signed_in_non_admin_is_refused_even_when_microsoft_issues_a_code() {
    let app = TestApp::spawn().await;
    let tenant = app.customer(0).clone();
    let member = tenant.member.clone().unwrap();
    // An earlier tenant-wide grant lets Microsoft issue a code to a plain member without asking.
    grant_tenant_wide(&app, &tenant).await;
    let issued = app.invite("delegated", &tenant.admin.username, None).await;
    let customer = Customer::open(&app, &issued.link).await;
    let (callback, response) = customer.consent(&app, &member, Decision::Accept).await;
    assert!(
        callback.query_pairs().any(|(k, _)| k == "code"),
        "{callback}"
    );
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let page = response.text().await.unwrap();
    assert!(
        page.contains(&format!("You signed in as {}", member.username)),
        "{page}"
    );
    assert!(page.contains("not a Global Administrator"));
    assert_eq!(tenant_count(&app).await, 0);
    let (status, _, last_error) = invitation_state(&app, issued.invitation.id.into()).await;
    assert_eq!(status, "failed");
    assert!(last_error.unwrap().contains("not a Global Administrator"));
}

#[tokio::test]
async fn consent_from_another_tenant_than_the_invited_domain_is_rejected() {
    let app = TestApp::spawn().await;
    let (invited, other) = (app.customer(0).clone(), app.customer(1).clone());
    let issued = app
        .invite("delegated", &invited.admin.username, Some(&invited.domain))
        .await;
    let customer = Customer::open(&app, &issued.link).await;
    let page = customer.wizard(&app).await;
    assert!(
        page.contains(&format!(
            "tenant verified for <strong>{}</strong>",
            invited.domain
        )),
        "{page}"
    );

    let (_, response) = customer.consent(&app, &other.admin, Decision::Accept).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let page = response.text().await.unwrap();
    assert!(
        page.contains(&format!("This invitation is for {}", invited.domain)),
        "{page}"
    );
    assert!(page.contains(&other.domain), "{page}");
    assert_eq!(tenant_count(&app).await, 0);
    let (status, _, last_error) = invitation_state(&app, issued.invitation.id.into()).await;
    assert_eq!(status, "failed");
    assert!(last_error.unwrap().contains("wrong tenant"));
}

#[tokio::test]
async fn replaying_the_callback_is_refused_and_records_nothing_twice() {
    let app = TestApp::spawn().await;
    let tenant = app.customer(0).clone();
    let issued = app.invite("delegated", &tenant.admin.username, None).await;
    let customer = Customer::open(&app, &issued.link).await;
    let (callback, response) = customer
        .consent(&app, &tenant.admin, Decision::Accept)
        .await;
    assert_eq!(response.status(), StatusCode::OK);

    // The same browser going back to the callback is shown the real outcome again (the code
    // is not redeemed twice).
    let replay = customer.back(&callback).await;
    assert_eq!(replay.status(), StatusCode::OK);
    assert!(replay.text().await.unwrap().contains("is connected"));
    // And from another browser (an attacker holding the URL).
    let stranger = browser().get(callback.clone()).send().await.unwrap();
    assert_eq!(stranger.status(), StatusCode::BAD_REQUEST);

    assert_eq!(tenant_count(&app).await, 1);
    assert_eq!(audit_count(&app, "consent.granted").await, 1);
    let (status, attempts, _) = invitation_state(&app, issued.invitation.id.into()).await;
    assert_eq!((status.as_str(), attempts), ("consented", 0));
}

#[tokio::test]
async fn a_callback_with_a_foreign_state_is_refused_and_burns_the_pending_sign_in() {
    let app = TestApp::spawn().await;
    let tenant = app.customer(0).clone();
    let issued = app.invite("delegated", &tenant.admin.username, None).await;
    let customer = Customer::open(&app, &issued.link).await;
    let microsoft = customer.start(&app).await;
    let real = consent_at_microsoft(
        &customer.browser,
        &microsoft,
        &tenant.admin,
        Decision::Accept,
    )
    .await;

    let tampered = with_param(&real, "state", "attacker-state");
    let response = customer.back(&tampered).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap().contains("does not match"));
    // The genuine answer now finds nothing pending: the state was single use.
    let response = customer.back(&real).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(tenant_count(&app).await, 0);
    // Session-level refusals are not the invitation's setbacks.
    assert_eq!(
        invitation_state(&app, issued.invitation.id.into()).await.1,
        0
    );
}

#[tokio::test]
async fn expired_revoked_and_unknown_links_get_honest_pages() {
    let app = TestApp::spawn().await;
    let expired = app.invite("delegated", "a@contoso.example", None).await;
    sqlx::query("update invitations set created_at = now() - interval '8 days', expires_at = now() - interval '1 day' where id = $1")
        .bind(expired.invitation.id)
        .execute(&app.db)
        .await
        .unwrap();
    let response = browser()
        .get(app.url(&app.path_of(&expired.link)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::GONE);
    assert_no_store(&response);
    let page = response.text().await.unwrap();
    assert!(
        page.contains("expired") && page.contains("Ask Test Provider for a new link"),
        "{page}"
    );

    let revoked = app.invite("delegated", "b@contoso.example", None).await;
    invitations::revoke(&app.db, revoked.invitation.id, &gangway::audit::Actor::Cli)
        .await
        .unwrap();
    let response = browser()
        .get(app.url(&app.path_of(&revoked.link)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::GONE);
    assert!(response.text().await.unwrap().contains("withdrew"));

    let never = InvitationToken::mint();
    let response = browser()
        .get(app.url(&format!("{}?token={}", paths::AUTHENTICATE, never.expose())))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_no_store(&response);
    assert!(response.text().await.unwrap().contains("newest"));
    for junk in ["?token=%27%20or%201%3D1%20--", "?token=", ""] {
        let response = browser()
            .get(app.url(&format!("{}{junk}", paths::AUTHENTICATE)))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{junk}");
    }

    // Resending (here: the expired one, with its original validity) kills the old link.
    let resent = invitations::resend(
        &app.db,
        app.state
            .invitation_context(&app.state.live().await.unwrap()),
        expired.invitation.id,
        &gangway::audit::Actor::Cli,
    )
    .await
    .unwrap();
    let old = browser()
        .get(app.url(&app.path_of(&expired.link)))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), StatusCode::NOT_FOUND);
    Customer::open(&app, &resent.link).await;
}

#[tokio::test]
async fn the_wizard_needs_an_opened_link_and_a_csrf_token() {
    let app = TestApp::spawn().await;
    let response = browser().get(app.url(paths::WIZARD)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_no_store(&response);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Open the link from your invitation email")
    );

    let issued = app.invite("delegated", "c@contoso.example", None).await;
    let customer = Customer::open(&app, &issued.link).await;
    let response = customer
        .browser
        .post(app.url(paths::WIZARD_START))
        .form(&[("x", "y")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // A callback nobody started.
    let response = customer
        .get(&app, &format!("{}?code=abc&state=def", paths::CALLBACK))
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_no_store(&response);
}

#[tokio::test]
async fn the_token_link_is_rate_limited_per_client() {
    let app = TestApp::spawn_with(Setup {
        link_rate: RateLimit {
            burst: 3,
            period: Duration::from_secs(3600),
        },
        ..Setup::default()
    })
    .await;
    let path = format!(
        "{}?token={}",
        paths::AUTHENTICATE,
        InvitationToken::mint().expose()
    );
    for _ in 0..3 {
        let response = browser().get(app.url(&path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
    let response = browser().get(app.url(&path)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    assert_no_store(&response);
}

#[tokio::test]
async fn a_customer_app_from_another_tenant_than_the_invited_domain_is_rejected() {
    let app = TestApp::spawn().await;
    let (invited, other) = (app.customer(0).clone(), app.customer(1).clone());
    let registered = customer_app(&app, 1, CUSTOMER_APP_PERMISSIONS).await;
    let issued = app
        .invite(
            "customer-app",
            &invited.admin.username,
            Some(&invited.domain),
        )
        .await;
    let customer = Customer::open(&app, &issued.link).await;
    let response = customer.submit_app(&app, &other.id, &registered).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let page = response.text().await.unwrap();
    assert!(
        page.contains(&format!("This invitation is for {}", invited.domain)),
        "{page}"
    );
    assert!(page.contains("the app you entered belongs to"));
    assert!(!page.contains(&registered.client_secret));
    assert_eq!(tenant_count(&app).await, 0);
    assert_eq!(
        invitation_state(&app, issued.invitation.id.into()).await.0,
        "failed"
    );
}

#[tokio::test]
async fn customer_app_checks_are_rate_limited_per_client() {
    let app = TestApp::spawn_with(Setup {
        link_rate: RateLimit {
            burst: 2,
            period: Duration::from_secs(3600),
        },
        ..Setup::default()
    })
    .await;
    let CustomerAppCase {
        tenant,
        registered,
        issued,
        customer,
    } = customer_app_case(&app, 0, CUSTOMER_APP_PERMISSIONS, false).await;
    for _ in 0..2 {
        let response = customer
            .customer_app(
                &app,
                &tenant.id,
                &registered.client_id,
                "wrong~secret-0123456789",
            )
            .await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
    // Out of checks: even the right secret must wait, and nothing is asked of Microsoft.
    let response = customer.submit_app(&app, &tenant.id, &registered).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(tenant_count(&app).await, 0);
    let (_, attempts, _) = invitation_state(&app, issued.invitation.id.into()).await;
    assert_eq!(attempts, 2, "a refused check is not an attempt");
}

/// Changes the provider's registration as an edit in the Entra admin center would.
async fn change_registration(app: &TestApp, change: serde_json::Value) {
    reqwest::Client::new()
        .patch(format!(
            "{}/_emulator/apps/{}",
            app.emulator.base_url().trim_end_matches('/'),
            app.app.client_id
        ))
        .json(&change)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
}

/// Makes the emulator's new consents usable only `millis` after they are given.
async fn consents_take(app: &TestApp, millis: u64) {
    reqwest::Client::new()
        .post(format!(
            "{}/_emulator/propagation",
            app.emulator.base_url().trim_end_matches('/')
        ))
        .json(&json!({"consent_delay_ms": millis}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
}

/// Looks at the result page again, as the finishing page does by itself, until it shows
/// something else; returns that page's status and HTML.
async fn result_after_finishing(customer: &Customer, app: &TestApp) -> (StatusCode, String) {
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let response = customer.get(app, paths::WIZARD_RESULT).await;
        assert_no_store(&response);
        let status = response.status();
        let page = response.text().await.unwrap();
        if !page.contains("Finishing the connection") {
            return (status, page);
        }
    }
    panic!("the consent was still being confirmed after 20 s");
}

#[tokio::test]
async fn consent_is_refused_without_wids_unless_graph_proves_the_role() {
    let app = TestApp::spawn().await;
    // The registration as the doctor used to approve it: no groupMembershipClaims, so Entra ID
    // puts no `wids` in ID tokens.
    change_registration(&app, json!({"group_membership_claims": "None"})).await;

    // Delegated: the admin's token may list their directory roles (User.Read) but not read
    // which they are, so nothing proves a Global Administrator.
    let tenant = app.customer(0).clone();
    let issued = app.invite("delegated", &tenant.admin.username, None).await;
    let customer = Customer::open(&app, &issued.link).await;
    let (_, response) = customer
        .consent(&app, &tenant.admin, Decision::Accept)
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let page = response.text().await.unwrap();
    assert!(
        page.contains("Your administrator role could not be confirmed"),
        "{page}"
    );
    assert_eq!(tenant_count(&app).await, 0);
    let (status, _, reason) = invitation_state(&app, issued.invitation.id.into()).await;
    assert_eq!(status, "failed");
    let reason = reason.unwrap();
    assert!(
        reason.contains("Directory roles")
            && reason.contains("\"groupMembershipClaims\": \"DirectoryRole\""),
        "the operator is told what to change: {reason}"
    );

    // Application: an app permission that reads directory roles lets Graph prove the role.
    let mut permissions = gangway::demo::provider_permissions();
    permissions["application"]
        .as_array_mut()
        .unwrap()
        .push(json!("RoleManagement.Read.Directory"));
    change_registration(&app, json!({"permissions": permissions})).await;
    let other = app.customer(1).clone();
    let issued = app.invite("application", &other.admin.username, None).await;
    let customer = Customer::open(&app, &issued.link).await;
    let (_, response) = customer.consent(&app, &other.admin, Decision::Accept).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.text().await.unwrap().contains("is connected"));
    assert_eq!(
        invitation_state(&app, issued.invitation.id.into()).await.0,
        "consented"
    );
}

#[tokio::test]
async fn an_admin_consent_still_propagating_shows_finishing_and_then_records_the_tenant() {
    let app = TestApp::spawn().await;
    consents_take(&app, 2500).await;
    let tenant = app.customer(1).clone();
    let issued = app
        .invite("application", &tenant.admin.username, None)
        .await;
    let customer = Customer::open(&app, &issued.link).await;
    let (callback, response) = customer
        .consent(&app, &tenant.admin, Decision::Accept)
        .await;
    // A calm page that looks again by itself; no token in any URL.
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.url().path(), paths::WIZARD_RESULT);
    assert!(response.url().query().is_none());
    let page = response.text().await.unwrap();
    assert!(
        page.contains("Finishing the connection") && page.contains("data-reload-after"),
        "{page}"
    );
    assert_eq!(tenant_count(&app).await, 0);
    let (status, page) = result_after_finishing(&customer, &app).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("is connected"), "{page}");
    assert_eq!(tenant_count(&app).await, 1);
    assert_eq!(
        invitation_state(&app, issued.invitation.id.into()).await.0,
        "consented"
    );
    // Post/redirect/get holds: the callback again shows the outcome, records nothing twice.
    let again = customer.back(&callback).await;
    assert!(again.text().await.unwrap().contains("is connected"));
    assert_eq!(tenant_count(&app).await, 1);
}

#[tokio::test]
async fn an_admin_consent_that_never_becomes_usable_fails_after_the_wait_with_the_real_reason() {
    let app = TestApp::spawn_with(Setup {
        consent_propagation: Duration::from_secs(3),
        ..Setup::default()
    })
    .await;
    consents_take(&app, 600_000).await;
    let tenant = app.customer(1).clone();
    let issued = app
        .invite("application", &tenant.admin.username, None)
        .await;
    let customer = Customer::open(&app, &issued.link).await;
    let (_, response) = customer
        .consent(&app, &tenant.admin, Decision::Accept)
        .await;
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Finishing the connection")
    );
    let (_, page) = result_after_finishing(&customer, &app).await;
    assert!(page.contains("AADSTS700016"), "{page}");
    assert_eq!(tenant_count(&app).await, 0);
    let (status, _, reason) = invitation_state(&app, issued.invitation.id.into()).await;
    assert_eq!(status, "failed");
    assert!(reason.unwrap().contains("700016"));
}

#[tokio::test]
async fn a_reconsent_invitation_says_in_its_mail_and_wizard_why_the_customer_is_asked_again() {
    use crate::sync::{all_app_permissions, connect, emulator, work};
    let app = TestApp::spawn().await;
    app.sign_in(gangway::operators::Role::Admin).await;
    let tid = app.customer(0).id.clone();
    let tenant = connect(&app, &tid, &all_app_permissions()).await;
    // The customer revokes the consent at Microsoft; the next sync finds out.
    emulator(
        &app,
        reqwest::Method::DELETE,
        &format!("/_emulator/tenants/{tid}/consents/{}", app.app.client_id),
        None,
    )
    .await;
    work(&app).await;
    app.deliver_mail().await;
    let first_mails = app.mail.messages().len();

    let shown = app
        .post_and_follow(&paths::reconsent_tenant(tenant.into()), &[])
        .await;
    assert!(shown.status().is_success());
    app.deliver_mail().await;
    let messages = app.mail.messages();
    assert_eq!(messages.len(), first_mails + 1);
    let mail = &messages[first_mails];
    // Without its consent the app has no service principal there: Entra ID answers AADSTS700016.
    let why = "stopped working: its application was removed from your tenant";
    assert!(mail.subject().contains("asks again"), "{}", mail.subject());
    let text = mail.text();
    assert!(text.contains(why), "{text}");
    assert!(!text.contains("AADSTS"), "no internal codes: {text}");

    let customer = Customer::open(&app, &mail.link()).await;
    let page = customer.wizard(&app).await;
    assert!(page.contains(why), "{page}");
    assert!(!page.contains("AADSTS") && !page.contains("customer's tenant"));

    // A first invitation says nothing of the kind.
    let first = app.invite("delegated", "new@contoso.example", None).await;
    let page = Customer::open(&app, &first.link).await.wizard(&app).await;
    assert!(!page.contains("stopped working"), "{page}");
}
