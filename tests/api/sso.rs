//! Operators signing in with Entra ID of the provider's tenant, through the real pages against
//! the emulator: roles from groups and app roles, refusals (page and audit), front-channel
//! logout, the local-password switch, and when role changes take effect.

use entra_emulator::EmulatedLogin;
use gangway::audit::Actor;
use gangway::operators::{self, Role};
use gangway::settings::{self, Edit, Key};
use gangway::web::paths;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    Decision, TestApp, browser, consent_at_microsoft, csrf_token, location, post_with_csrf,
    short_id,
};

/// The provider's tenant in the emulator, set up for operator sign-in: the app registration
/// with the SSO callback and the sign-in page as redirect URIs, the groups claim, app roles
/// and the front-channel logout URL; an admin group and a viewer group.
pub struct Sso {
    pub tenant: String,
    pub domain: String,
    pub admin_group: String,
    pub viewer_group: String,
}

const ADMIN_ROLE: &str = "Gangway.Admin";
const VIEWER_ROLE: &str = "Gangway.Viewer";

impl Sso {
    /// Registers what the provider registers and turns sign-in with Entra ID on, mapping the
    /// two groups and the two app roles.
    pub async fn set_up(app: &TestApp) -> Self {
        let provider = app.admin.tenants().await.unwrap().remove(0);
        let patch = reqwest::Client::new()
            .patch(format!(
                "{}/_emulator/apps/{}",
                app.emulator.base_url(),
                app.app.client_id
            ))
            .json(&json!({
                "redirect_uris": [
                    app.url(paths::CALLBACK),
                    app.url(paths::SSO_CALLBACK),
                    app.url(paths::LOGIN),
                ],
                "logout_url": app.url(paths::SSO_LOGOUT),
                "group_membership_claims": "SecurityGroup",
                "app_roles": [
                    {"value": ADMIN_ROLE, "id": Uuid::new_v4(), "allowedMemberTypes": ["User"]},
                    {"value": VIEWER_ROLE, "id": Uuid::new_v4(), "allowedMemberTypes": ["User"]},
                ],
            }))
            .send()
            .await
            .unwrap();
        assert!(patch.status().is_success(), "{}", patch.status());
        let mut sso = Self {
            tenant: provider.id.clone(),
            domain: provider.domain.clone(),
            admin_group: String::new(),
            viewer_group: String::new(),
        };
        sso.admin_group = sso.group(app, "Gangway admins").await;
        sso.viewer_group = sso.group(app, "Gangway viewers").await;
        sso.configure(
            app,
            &[
                (Key::ProviderTenantId, sso.tenant.clone()),
                (Key::SsoEnabled, "true".into()),
                (Key::SsoAdminGroups, sso.admin_group.clone()),
                (Key::SsoViewerGroups, sso.viewer_group.clone()),
                (Key::SsoAdminRoles, ADMIN_ROLE.into()),
                (Key::SsoViewerRoles, VIEWER_ROLE.into()),
            ],
        )
        .await;
        sso
    }

    /// Saves settings as an admin would, and makes this process read them at once.
    pub async fn configure(&self, app: &TestApp, values: &[(Key, String)]) {
        let edits: Vec<Edit> = values
            .iter()
            .map(|(key, raw)| Edit {
                key: *key,
                raw: raw.clone(),
            })
            .collect();
        settings::save(&app.db, &app.state.cfg.keys, &edits, &Actor::Cli)
            .await
            .unwrap();
        app.state.settings.invalidate();
    }

    async fn group(&self, app: &TestApp, name: &str) -> String {
        let group = app
            .admin
            .post(
                &format!("/_emulator/tenants/{}/groups", self.tenant),
                &json!({"displayName": name}),
            )
            .await
            .unwrap();
        group["id"].as_str().unwrap().to_owned()
    }

    /// A new user of the provider's tenant, member of `groups`.
    pub async fn user(&self, app: &TestApp, name: &str, groups: &[&str]) -> EmulatedLogin {
        let upn = format!("{name}-{}@{}", short_id(), self.domain);
        let user = app
            .admin
            .post(
                &format!("/_emulator/tenants/{}/users", self.tenant),
                &json!({"userPrincipalName": upn, "displayName": name, "password": "Sso-Pa55word!"}),
            )
            .await
            .unwrap();
        let id = user["id"].as_str().unwrap().to_owned();
        for group in groups {
            self.join(app, &id, group).await;
        }
        EmulatedLogin {
            username: upn,
            password: "Sso-Pa55word!".into(),
            id,
        }
    }

    pub async fn join(&self, app: &TestApp, user: &str, group: &str) {
        app.admin
            .post(
                &format!("/_emulator/tenants/{}/groups/{group}/members", self.tenant),
                &json!({"id": user}),
            )
            .await
            .unwrap();
    }

    pub async fn leave(&self, app: &TestApp, user: &str, group: &str) {
        let gone = reqwest::Client::new()
            .delete(format!(
                "{}/_emulator/tenants/{}/groups/{group}/members/{user}",
                app.emulator.base_url(),
                self.tenant
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    }

    pub async fn assign(&self, app: &TestApp, user: &EmulatedLogin, role: &str) {
        app.admin
            .post(
                &format!(
                    "/_emulator/tenants/{}/apps/{}/role-assignments",
                    self.tenant, app.app.client_id
                ),
                &json!({"user": user.id, "role": role}),
            )
            .await
            .unwrap();
    }
}

/// Clicks "Sign in with Microsoft" on the sign-in page in `browser`, signs in at the emulator
/// as `login` and follows Microsoft's answer back to Gangway; returns that last response.
pub async fn sign_in_with_microsoft(
    app: &TestApp,
    browser: &reqwest::Client,
    login: &EmulatedLogin,
    decision: Decision,
) -> reqwest::Response {
    let page = browser
        .get(app.url(paths::LOGIN))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Sign in with Microsoft"), "{page}");
    let start = browser.get(app.url(paths::SSO_START)).send().await.unwrap();
    let authorize = location(start).await;
    assert!(
        authorize.starts_with(app.emulator.base_url()),
        "{authorize}"
    );
    let back = consent_at_microsoft(browser, &authorize, login, decision).await;
    assert!(
        back.as_str().starts_with(&app.url(paths::SSO_CALLBACK)),
        "{back}"
    );
    browser.get(back).send().await.unwrap()
}

/// Signs `login` in and expects to land in the console.
pub async fn signed_in_with_microsoft(
    app: &TestApp,
    browser: &reqwest::Client,
    login: &EmulatedLogin,
) {
    let response = sign_in_with_microsoft(app, browser, login, Decision::Accept).await;
    assert_eq!(location(response).await, paths::INVITATIONS);
}

/// The operator Entra ID object `oid` signs in as: (email, role).
async fn operator_of(app: &TestApp, oid: &str) -> Option<(String, Role)> {
    sqlx::query_as("select email::text, role from operators where entra_object_id = $1")
        .bind(Uuid::parse_str(oid).unwrap())
        .fetch_optional(&app.db)
        .await
        .unwrap()
}

/// The details of the latest `action` audit events, newest first.
async fn audited(app: &TestApp, action: &str) -> Vec<(String, Value)> {
    sqlx::query_as("select actor, detail from audit_events where action = $1 order by id desc")
        .bind(action)
        .fetch_all(&app.db)
        .await
        .unwrap()
}

/// The status of `path` for `browser`: 200, 403, or the sign-in page's path when sent there.
async fn status_of(app: &TestApp, browser: &reqwest::Client, path: &str) -> String {
    let response = browser.get(app.url(path)).send().await.unwrap();
    if response.status().is_redirection() {
        let to = location(response).await;
        return to.split('?').next().unwrap().to_owned();
    }
    response.status().as_u16().to_string()
}

async fn refused_page(response: reqwest::Response) -> String {
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    response.text().await.unwrap()
}

#[tokio::test]
async fn groups_map_to_admin_and_viewer_and_admin_wins() {
    let app = TestApp::spawn().await;
    let sso = Sso::set_up(&app).await;
    let admin = sso.user(&app, "ada", &[&sso.admin_group]).await;
    let viewer = sso.user(&app, "vic", &[&sso.viewer_group]).await;
    let both = sso
        .user(&app, "bo", &[&sso.viewer_group, &sso.admin_group])
        .await;

    let browser_a = browser();
    signed_in_with_microsoft(&app, &browser_a, &admin).await;
    assert_eq!(
        operator_of(&app, &admin.id).await,
        Some((admin.username.clone(), Role::Admin))
    );
    assert_eq!(status_of(&app, &browser_a, paths::OPERATORS).await, "200");
    let console = browser_a
        .get(app.url(paths::INVITATIONS))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(console.contains(&admin.username), "the top bar names them");

    let browser_v = browser();
    signed_in_with_microsoft(&app, &browser_v, &viewer).await;
    assert_eq!(
        operator_of(&app, &viewer.id).await,
        Some((viewer.username.clone(), Role::Viewer))
    );
    assert_eq!(status_of(&app, &browser_v, paths::INVITATIONS).await, "200");
    assert_eq!(status_of(&app, &browser_v, paths::OPERATORS).await, "403");

    signed_in_with_microsoft(&app, &browser(), &both).await;
    assert_eq!(operator_of(&app, &both.id).await.unwrap().1, Role::Admin);

    // A second sign-in finds the same operator (by object id), not a new one.
    signed_in_with_microsoft(&app, &browser(), &admin).await;
    let count: i64 = sqlx::query_scalar("select count(*) from operators where email = $1")
        .bind(&admin.username)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 1);

    let added = audited(&app, "operator.added").await;
    assert_eq!(added.len(), 3);
    assert!(added.iter().all(|(_, d)| d["source"] == "entra"));
    let signed = audited(&app, "operator.signed_in").await;
    assert_eq!(signed.len(), 4);
    assert_eq!(signed[0].0, format!("operator:{}", admin.username));
    assert_eq!(signed[0].1["method"], "entra");
    assert_eq!(signed[0].1["entra_object_id"], admin.id.as_str());
}

#[tokio::test]
async fn app_roles_map_to_admin_and_viewer() {
    let app = TestApp::spawn().await;
    let sso = Sso::set_up(&app).await;
    let admin = sso.user(&app, "rae", &[]).await;
    let viewer = sso.user(&app, "rex", &[]).await;
    sso.assign(&app, &admin, ADMIN_ROLE).await;
    sso.assign(&app, &viewer, VIEWER_ROLE).await;

    let browser_a = browser();
    signed_in_with_microsoft(&app, &browser_a, &admin).await;
    assert_eq!(operator_of(&app, &admin.id).await.unwrap().1, Role::Admin);
    assert_eq!(status_of(&app, &browser_a, paths::OPERATORS).await, "200");
    let browser_v = browser();
    signed_in_with_microsoft(&app, &browser_v, &viewer).await;
    assert_eq!(operator_of(&app, &viewer.id).await.unwrap().1, Role::Viewer);
    assert_eq!(status_of(&app, &browser_v, paths::OPERATORS).await, "403");
}

#[tokio::test]
async fn a_user_in_no_mapped_group_is_refused_and_told_why() {
    let app = TestApp::spawn().await;
    let sso = Sso::set_up(&app).await;
    let outsider = sso.user(&app, "olaf", &[]).await;
    let browser = browser();
    let page =
        refused_page(sign_in_with_microsoft(&app, &browser, &outsider, Decision::Accept).await)
            .await;
    assert!(page.contains("none of your groups or app roles"), "{page}");
    assert!(page.contains("Ask a Gangway admin"), "{page}");
    assert!(page.contains(&outsider.username));
    assert!(operator_of(&app, &outsider.id).await.is_none());
    assert_eq!(
        status_of(&app, &browser, paths::INVITATIONS).await,
        paths::LOGIN
    );
    let failed = audited(&app, "operator.sign_in_failed").await;
    assert_eq!(failed.len(), 1);
    let detail = &failed[0].1;
    assert_eq!(detail["method"], "entra");
    assert_eq!(
        detail["reason"],
        "none of the user's groups or app roles is mapped to admin or viewer"
    );
    assert_eq!(detail["username"], outsider.username.as_str());
    assert_eq!(detail["entra_object_id"], outsider.id.as_str());
    assert!(failed[0].0.starts_with("anonymous:"));
}

#[tokio::test]
async fn a_user_of_another_tenant_is_refused() {
    let app = TestApp::spawn().await;
    let sso = Sso::set_up(&app).await;
    let stranger = app.customer(0).admin.clone();
    let browser = browser();

    // At the provider's tenant, Microsoft does not know them.
    let authorize = location(browser.get(app.url(paths::SSO_START)).send().await.unwrap()).await;
    assert!(authorize.contains(&format!("/{}/oauth2/v2.0/authorize", sso.tenant)));

    // Sent to their own tenant's sign-in with this browser's state (the app is multi-tenant),
    // they come back with a code the provider's tenant does not honour.
    let elsewhere = authorize.replace(
        &format!("/{}/", sso.tenant),
        &format!("/{}/", app.customer(0).id),
    );
    let back = consent_at_microsoft(&browser, &elsewhere, &stranger, Decision::Accept).await;
    let page = refused_page(browser.get(back).send().await.unwrap()).await;
    assert!(page.contains("another organization"), "{page}");
    assert!(page.contains("Test Provider"), "{page}");
    assert_eq!(
        status_of(&app, &browser, paths::INVITATIONS).await,
        paths::LOGIN
    );
    let failed = audited(&app, "operator.sign_in_failed").await;
    let reason = failed[0].1["reason"].as_str().unwrap();
    assert!(
        reason.contains("another tenant") && reason.contains("700005"),
        "{reason}"
    );
    let none: i64 = sqlx::query_scalar("select count(*) from operators")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(none, 0);
}

#[tokio::test]
async fn a_bad_state_and_microsofts_errors_are_refused_and_audited() {
    let app = TestApp::spawn().await;
    let sso = Sso::set_up(&app).await;
    let user = sso.user(&app, "dee", &[&sso.admin_group]).await;

    // A callback nobody started here.
    let browser = browser();
    let forged = format!("{}?code=abc&state=forged", paths::SSO_CALLBACK);
    let page = refused_page(browser.get(app.url(&forged)).send().await.unwrap()).await;
    assert!(page.contains("expired or was already used"), "{page}");
    // A state that is not this browser's.
    browser.get(app.url(paths::SSO_START)).send().await.unwrap();
    let page = refused_page(browser.get(app.url(&forged)).send().await.unwrap()).await;
    assert!(page.contains("expired or was already used"), "{page}");

    // Declining at Microsoft.
    let page =
        refused_page(sign_in_with_microsoft(&app, &browser, &user, Decision::Decline).await).await;
    assert!(
        page.contains("Microsoft did not sign you in (AADSTS65004)"),
        "{page}"
    );

    let reasons: Vec<String> = audited(&app, "operator.sign_in_failed")
        .await
        .into_iter()
        .map(|(_, d)| d["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons[0].starts_with("Microsoft answered access_denied (AADSTS65004)"),
        "{reasons:?}"
    );
    assert_eq!(
        reasons[1],
        "state missing or does not match this browser's sign-in"
    );
    assert_eq!(
        reasons[2],
        "no sign-in with Microsoft was under way in this browser"
    );
    assert!(operator_of(&app, &user.id).await.is_none());
}

#[tokio::test]
async fn a_groups_overage_is_refused_with_advice_to_use_app_roles() {
    let app = TestApp::spawn().await;
    let sso = Sso::set_up(&app).await;
    let busy = sso.user(&app, "max", &[&sso.admin_group]).await;
    for i in 0..200 {
        let group = sso.group(&app, &format!("Team {i}")).await;
        sso.join(&app, &busy.id, &group).await;
    }
    let page =
        refused_page(sign_in_with_microsoft(&app, &browser(), &busy, Decision::Accept).await).await;
    assert!(page.contains("too many groups"), "{page}");
    assert!(page.contains("app roles"), "{page}");
    let failed = audited(&app, "operator.sign_in_failed").await;
    assert!(failed[0].1["reason"].as_str().unwrap().contains("overage"));
    // An app role gets them in all the same.
    sso.assign(&app, &busy, ADMIN_ROLE).await;
    let response = sign_in_with_microsoft(&app, &browser(), &busy, Decision::Accept).await;
    let page = refused_page(response).await;
    assert!(
        page.contains("too many groups"),
        "the overage still hides the groups: {page}"
    );
}

#[tokio::test]
async fn front_channel_logout_ends_the_gangway_session_of_that_microsoft_session() {
    let app = TestApp::spawn().await;
    let sso = Sso::set_up(&app).await;
    let user = sso.user(&app, "fay", &[&sso.admin_group]).await;
    let operator = browser();
    signed_in_with_microsoft(&app, &operator, &user).await;
    let other = browser();
    let other_user = sso.user(&app, "gus", &[&sso.viewer_group]).await;
    signed_in_with_microsoft(&app, &other, &other_user).await;
    assert_eq!(status_of(&app, &operator, paths::INVITATIONS).await, "200");

    // The operator signs out at Microsoft (elsewhere, in the same browser).
    let logout = format!(
        "{}/{}/oauth2/v2.0/logout?post_logout_redirect_uri={}",
        app.emulator.base_url(),
        sso.tenant,
        urlencode(&app.url(paths::LOGIN))
    );
    let page = operator
        .get(&logout)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let src = iframe_src(&page);
    assert!(src.starts_with(&app.url(paths::SSO_LOGOUT)), "{src}");
    assert!(src.contains("sid="), "{src}");
    assert!(
        page.contains(&format!("href=\"{}\"", app.url(paths::LOGIN))),
        "{page}"
    );

    // The frame loads without Gangway's cookies (third-party), and only Entra may frame it.
    let frame = browser().get(&src).send().await.unwrap();
    assert_eq!(frame.status(), StatusCode::OK);
    let csp = frame.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains(&format!("frame-ancestors {}", app.emulator.base_url())),
        "{csp}"
    );
    assert!(frame.headers().get("x-frame-options").is_none());
    assert!(frame.text().await.unwrap().contains("Signed out"));

    assert_eq!(
        status_of(&app, &operator, paths::INVITATIONS).await,
        paths::LOGIN
    );
    assert_eq!(
        status_of(&app, &other, paths::INVITATIONS).await,
        "200",
        "another Microsoft session stays"
    );
    let out = audited(&app, "operator.signed_out").await;
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, format!("operator:{}", user.username));
    assert_eq!(out[0].1["method"], "entra front-channel logout");

    // Replayed or made up: nothing more ends. Other pages still refuse to be framed.
    assert_eq!(
        browser().get(&src).send().await.unwrap().status(),
        StatusCode::OK
    );
    let made_up = format!("{}?sid=nobody", paths::SSO_LOGOUT);
    browser().get(app.url(&made_up)).send().await.unwrap();
    assert_eq!(status_of(&app, &other, paths::INVITATIONS).await, "200");
    let login = app.get(paths::LOGIN).await;
    assert_eq!(login.headers()["x-frame-options"], "DENY");
}

#[tokio::test]
async fn signing_out_offers_to_sign_out_of_microsoft_too() {
    let app = TestApp::spawn().await;
    let sso = Sso::set_up(&app).await;
    let user = sso.user(&app, "hal", &[&sso.admin_group]).await;
    let operator = browser();
    signed_in_with_microsoft(&app, &operator, &user).await;
    let out = post_with_csrf(&operator, &app, paths::LOGOUT, &[]).await;
    let to = location(out).await;
    assert_eq!(to, format!("{}?signed_out=microsoft", paths::LOGIN));
    let page = operator
        .get(app.url(&to))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let expected = format!(
        "{}/{}/oauth2/v2.0/logout?post_logout_redirect_uri={}",
        app.emulator.base_url(),
        sso.tenant,
        urlencode(&app.url(paths::LOGIN))
    );
    assert!(
        page.contains(&expected.replace('&', "&amp;")) || page.contains(&expected),
        "{page}"
    );
    // Following it ends the Microsoft session and comes back to the sign-in page.
    let page = operator
        .get(&expected)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&format!("href=\"{}\"", app.url(paths::LOGIN))),
        "{page}"
    );
    assert!(iframe_src(&page).starts_with(&app.url(paths::SSO_LOGOUT)));
    // Signing in with Microsoft now asks for the password again.
    let start = location(
        operator
            .get(app.url(paths::SSO_START))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let at_microsoft = operator
        .get(&start)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(at_microsoft.contains("name=\"passwd\""), "{at_microsoft}");
    // A password session's sign-out has nothing to offer, even in a browser that signed in
    // with Microsoft before.
    let switching = browser();
    signed_in_with_microsoft(&app, &switching, &user).await;
    app.add_operator("local@provider.test", Role::Admin).await;
    crate::helpers::sign_in_as(&switching, &app, "local@provider.test").await;
    let out = post_with_csrf(&switching, &app, paths::LOGOUT, &[]).await;
    assert_eq!(location(out).await, paths::LOGIN);
}

#[tokio::test]
async fn local_passwords_can_be_turned_off_once_an_admin_signs_in_with_microsoft() {
    let app = TestApp::spawn().await;
    let sso = Sso::set_up(&app).await;
    let local = app.sign_in(Role::Admin).await;
    // Refused while no admin has signed in with Entra ID: that would lock every admin out.
    let edits = [Edit {
        key: Key::LocalPasswords,
        raw: "false".into(),
    }];
    let err = settings::save(&app.db, &app.state.cfg.keys, &edits, &Actor::Cli)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot be turned off"), "{err}");

    let admin = sso.user(&app, "ivy", &[&sso.admin_group]).await;
    signed_in_with_microsoft(&app, &browser(), &admin).await;
    // A browser that got its form token while the form was still shown.
    let stale = browser();
    let token = csrf_token(&stale, &app).await;
    sso.configure(&app, &[(Key::LocalPasswords, "false".into())])
        .await;

    let page = app.get(paths::LOGIN).await.text().await.unwrap();
    assert!(page.contains("Sign in with Microsoft"));
    assert!(!page.contains("name=\"password\""), "{page}");
    let refused = stale
        .post(app.url(paths::LOGIN))
        .form(&[
            ("email", local.as_str()),
            ("password", crate::helpers::OPERATOR_PASSWORD),
            ("csrf_token", &token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let text = refused.text().await.unwrap();
    assert!(
        text.contains("Signing in with a password is turned off: sign in with Microsoft."),
        "{text}"
    );
    let failed = audited(&app, "operator.sign_in_failed").await;
    assert_eq!(failed[0].1["reason"], "local passwords are turned off");
    assert_eq!(failed[0].1["email"], local.as_str());

    // Back on: the form returns and the password works again.
    sso.configure(&app, &[(Key::LocalPasswords, "true".into())])
        .await;
    assert!(
        app.get(paths::LOGIN)
            .await
            .text()
            .await
            .unwrap()
            .contains("name=\"password\"")
    );
    let again = post_with_csrf(
        &browser(),
        &app,
        paths::LOGIN,
        &[
            ("email", &local),
            ("password", crate::helpers::OPERATOR_PASSWORD),
        ],
    )
    .await;
    assert!(again.status().is_redirection());

    // Without sign-in with Microsoft the button is gone.
    sso.configure(&app, &[(Key::SsoEnabled, "false".into())])
        .await;
    let page = app.get(paths::LOGIN).await.text().await.unwrap();
    assert!(!page.contains("Sign in with Microsoft"));
    assert_eq!(
        app.get(paths::SSO_START).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn turning_local_passwords_off_ends_every_session_signed_in_with_a_password() {
    let app = TestApp::spawn().await;
    let sso = Sso::set_up(&app).await;
    let microsoft = browser();
    let ivy = sso.user(&app, "ivy", &[&sso.admin_group]).await;
    signed_in_with_microsoft(&app, &microsoft, &ivy).await;
    let admin = app.sign_in(Role::Admin).await;
    let viewer = browser();
    let viewer_email = format!("viewer-{}@provider.test", short_id());
    app.add_operator(&viewer_email, Role::Viewer).await;
    crate::helpers::sign_in_as(&viewer, &app, &viewer_email).await;

    // The password admin turns passwords off from the console: their own session ends too.
    let saved = app
        .post_form(paths::SETTINGS, &[("local_passwords", "false")])
        .await;
    assert_eq!(location(saved).await, paths::LOGIN);
    assert_eq!(
        status_of(&app, &app.client, paths::INVITATIONS).await,
        paths::LOGIN
    );
    assert_eq!(
        status_of(&app, &viewer, paths::INVITATIONS).await,
        paths::LOGIN
    );
    assert_eq!(status_of(&app, &microsoft, paths::INVITATIONS).await, "200");
    let ended = audited(&app, "operator.sessions_ended").await;
    let mut who: Vec<&str> = ended.iter().map(|(actor, _)| actor.as_str()).collect();
    who.sort_unstable();
    let mut expected = [
        format!("operator:{admin}"),
        format!("operator:{viewer_email}"),
    ];
    expected.sort_unstable();
    assert_eq!(who, expected);
    assert!(
        ended
            .iter()
            .all(|(_, d)| d["reason"] == "local passwords were turned off" && d["sessions"] == 1)
    );
}

#[tokio::test]
async fn a_removed_operator_stays_out_at_their_next_microsoft_sign_in_until_restored() {
    let app = TestApp::spawn().await;
    let sso = Sso::set_up(&app).await;
    let lee = sso.user(&app, "lee", &[&sso.admin_group]).await;
    signed_in_with_microsoft(&app, &browser(), &lee).await;
    app.sign_in(Role::Admin).await;
    let id: Uuid = sqlx::query_scalar("select id from operators where entra_object_id = $1")
        .bind(Uuid::parse_str(&lee.id).unwrap())
        .fetch_one(&app.db)
        .await
        .unwrap();
    let removed = app.post_form(&paths::remove_operator(id.into()), &[]).await;
    assert!(removed.status().is_redirection());

    // Still in the admin group at Microsoft: refused, told why, audited.
    let page =
        refused_page(sign_in_with_microsoft(&app, &browser(), &lee, Decision::Accept).await).await;
    assert!(page.contains("was removed by an admin"), "{page}");
    assert!(page.contains("restore"), "{page}");
    assert_eq!(operator_of(&app, &lee.id).await, None);
    let failed = audited(&app, "operator.sign_in_failed").await;
    assert!(
        failed[0].1["reason"]
            .as_str()
            .unwrap()
            .contains("removed by an admin"),
        "{failed:?}"
    );
    assert_eq!(failed[0].1["username"], lee.username.as_str());

    // The Operators page lists them with Restore; restoring lets them in, the mapping deciding.
    let operators = app.get(paths::OPERATORS).await.text().await.unwrap();
    assert!(
        operators.contains("Removed operators") && operators.contains(&lee.username),
        "{operators}"
    );
    let restored = app
        .post_form(paths::RESTORE_OPERATOR, &[("email", &lee.username)])
        .await;
    assert!(restored.status().is_redirection());
    signed_in_with_microsoft(&app, &browser(), &lee).await;
    assert_eq!(
        operator_of(&app, &lee.id).await,
        Some((lee.username.clone(), Role::Admin))
    );
    assert_eq!(audited(&app, "operator.restored").await.len(), 1);

    // The same from the command line.
    let id: Uuid = sqlx::query_scalar("select id from operators where entra_object_id = $1")
        .bind(Uuid::parse_str(&lee.id).unwrap())
        .fetch_one(&app.db)
        .await
        .unwrap();
    operators::remove(&app.db, id, &Actor::Cli).await.unwrap();
    let listed = crate::cli::run(crate::cli::gangway(&app), &["operator", "list"]).await;
    assert!(crate::cli::stdout(&listed).contains(&format!("removed: {}", lee.username)));
    let cli = crate::cli::run(
        crate::cli::gangway(&app),
        &["operator", "restore", &lee.username],
    )
    .await;
    assert!(cli.status.success(), "{}", crate::cli::stderr(&cli));
    signed_in_with_microsoft(&app, &browser(), &lee).await;
}

#[tokio::test]
async fn role_changes_take_effect_at_the_next_request_or_the_next_sign_in() {
    let app = TestApp::spawn().await;
    let sso = Sso::set_up(&app).await;
    let user = sso.user(&app, "jo", &[&sso.viewer_group]).await;
    let operator = browser();
    signed_in_with_microsoft(&app, &operator, &user).await;
    assert_eq!(status_of(&app, &operator, paths::OPERATORS).await, "403");

    // Promoted in Gangway: admin at the very next request.
    let id: Uuid = sqlx::query_scalar("select id from operators where entra_object_id = $1")
        .bind(Uuid::parse_str(&user.id).unwrap())
        .fetch_one(&app.db)
        .await
        .unwrap();
    operators::set_role(&app.db, id, Role::Admin, &Actor::Cli)
        .await
        .unwrap();
    assert_eq!(status_of(&app, &operator, paths::OPERATORS).await, "200");

    // Their groups change at Microsoft: nothing changes until they sign in again …
    sso.leave(&app, &user.id, &sso.viewer_group).await;
    sso.join(&app, &user.id, &sso.admin_group).await;
    assert_eq!(status_of(&app, &operator, paths::OPERATORS).await, "200");
    signed_in_with_microsoft(&app, &browser(), &user).await;
    assert_eq!(operator_of(&app, &user.id).await.unwrap().1, Role::Admin);
    assert!(
        audited(&app, "operator.role_changed")
            .await
            .iter()
            .all(|(_, d)| d["source"] != "entra groups and app roles")
    );

    // … then the mapping decides: out of the admin group and into the viewer group, a viewer,
    // and (as with any demotion) their other sessions end.
    sso.leave(&app, &user.id, &sso.admin_group).await;
    sso.join(&app, &user.id, &sso.viewer_group).await;
    assert_eq!(status_of(&app, &operator, paths::OPERATORS).await, "200");
    let again = browser();
    signed_in_with_microsoft(&app, &again, &user).await;
    assert_eq!(operator_of(&app, &user.id).await.unwrap().1, Role::Viewer);
    assert_eq!(status_of(&app, &again, paths::OPERATORS).await, "403");
    assert_eq!(
        status_of(&app, &operator, paths::OPERATORS).await,
        paths::LOGIN
    );
    let changed = audited(&app, "operator.role_changed").await;
    assert_eq!(changed[0].1["source"], "entra groups and app roles");
    assert_eq!(changed[0].1["previous"], "admin");
    assert_eq!(changed[0].1["role"], "viewer");
}

#[tokio::test]
async fn a_local_account_with_the_same_email_is_linked_once() {
    let app = TestApp::spawn().await;
    let sso = Sso::set_up(&app).await;
    let user = sso.user(&app, "kim", &[&sso.viewer_group]).await;
    app.add_operator(&user.username, Role::Admin).await;
    signed_in_with_microsoft(&app, &browser(), &user).await;
    // Linked, and the mapping decides the role from now on.
    assert_eq!(
        operator_of(&app, &user.id).await,
        Some((user.username.clone(), Role::Viewer))
    );
    let signed = audited(&app, "operator.signed_in").await;
    assert_eq!(signed[0].1["linked"], true);
    // Another Microsoft account with that name later is refused, not merged.
    sqlx::query("update operators set entra_object_id = $2 where email = $1")
        .bind(&user.username)
        .bind(Uuid::new_v4())
        .execute(&app.db)
        .await
        .unwrap();
    let page =
        refused_page(sign_in_with_microsoft(&app, &browser(), &user, Decision::Accept).await).await;
    assert!(
        page.contains("belongs to another Microsoft account"),
        "{page}"
    );
}

/// The `src` of the first iframe of `html`.
fn iframe_src(html: &str) -> String {
    let at = html.find("<iframe").expect("an iframe");
    let start = at + html[at..].find("src=\"").unwrap() + 5;
    let end = start + html[start..].find('"').unwrap();
    html[start..end].replace("&amp;", "&")
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
