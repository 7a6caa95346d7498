//! The app-registration doctor against the emulator, through `gangway doctor` and the console's
//! Doctor page: it passes a registration with every right value, and names each fault of a
//! broken one.

use gangway::audit::Actor;
use gangway::invitations::{self, NewInvitation};
use gangway::operators::Role;
use gangway::settings::{self, Edit, Key, profiles};
use gangway::web::paths;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::cli::{gangway, run, stderr, stdout};
use crate::helpers::TestApp;

/// The provider app registered with every right value, and Gangway set up to use it.
struct Registration {
    client_id: String,
    secret: String,
    /// The provider's tenant (the app's home).
    tenant: String,
}

/// Saves `edits` in System Settings as an admin would, and makes the portal read them at once.
async fn set(app: &TestApp, edits: &[(Key, &str)]) {
    let edits: Vec<Edit> = edits
        .iter()
        .map(|(key, raw)| Edit {
            key: *key,
            raw: (*raw).to_owned(),
        })
        .collect();
    settings::save(&app.db, &app.state.cfg.keys, &edits, &Actor::Cli)
        .await
        .unwrap();
    app.state.settings.invalidate();
}

fn public(app: &TestApp, path: &str) -> String {
    format!("{}{path}", app.address)
}

/// Registers the provider app as the doctor wants it — the three redirect URIs, multi-tenant,
/// directory roles (`wids`) in ID tokens, the front-channel logout URL, the built-in profile's permissions, a
/// one-year secret — grants it Application.Read.All in its home tenant, and points Gangway's
/// settings at it.
async fn good_setup(app: &TestApp) -> Registration {
    let tenant = app.admin.tenants().await.unwrap().remove(0).id;
    let registered = app
        .admin
        .register_app(&json!({
            "home_tenant": tenant,
            "multi_tenant": true,
            "display_name": "Gangway (doctor test)",
            "redirect_uris": [
                public(app, paths::CALLBACK),
                public(app, "/console/sso/callback"),
                public(app, paths::SIGNIN_CALLBACK),
            ],
            "logout_url": public(app, "/console/sso/logout"),
            "group_membership_claims": "DirectoryRole",
            "permissions": gangway::demo::provider_permissions(),
            "secret_lifetime_days": 365,
        }))
        .await
        .unwrap();
    app.admin
        .grant(
            &tenant,
            &registered.client_id,
            &[],
            &["Application.Read.All"],
        )
        .await
        .unwrap();
    set(
        app,
        &[
            (Key::ClientId, &registered.client_id),
            (Key::ClientSecret, &registered.client_secret),
            (Key::ProviderTenantId, &tenant),
        ],
    )
    .await;
    Registration {
        client_id: registered.client_id,
        secret: registered.client_secret,
        tenant,
    }
}

/// Changes the registration the way an edit in the Entra admin center would.
async fn patch(app: &TestApp, client_id: &str, change: Value) {
    reqwest::Client::new()
        .patch(format!(
            "{}/_emulator/apps/{client_id}",
            app.emulator.base_url().trim_end_matches('/')
        ))
        .json(&change)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
}

/// `gangway doctor --json`: its exit code and report.
async fn doctor(app: &TestApp) -> (i32, Value) {
    let output = run(gangway(app), &["doctor", "--json"]).await;
    let report = serde_json::from_str(&stdout(&output)).unwrap_or_else(|e| {
        panic!(
            "doctor --json printed no report ({e}): {}{}",
            stdout(&output),
            stderr(&output)
        )
    });
    (output.status.code().unwrap(), report)
}

fn check<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id} in {report:#}"))
}

/// The ids of the checks that came out `status`.
fn with_status(report: &Value, status: &str) -> Vec<String> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == status)
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

fn text(check: &Value) -> String {
    format!("{} | {}", check["detail"], check["fix"])
}

#[tokio::test]
async fn the_doctor_passes_a_good_setup_through_the_cli_and_the_page() {
    let app = TestApp::spawn().await;
    let reg = good_setup(&app).await;

    let output = run(gangway(&app), &["doctor"]).await;
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}{}", stderr(&output));
    for line in out.lines().filter(|l| !l.is_empty()) {
        assert!(
            line.starts_with("PASS  ")
                || line.starts_with("Stored the client secret's expiry")
                || line.ends_with("0 warnings, 0 failed"),
            "unexpected line: {line}\n{out}"
        );
    }
    for title in [
        "Entra ID answers",
        "Your tenant accepts the app's client secret",
        "Redirect URI for customers' consent",
        "Redirect URI for operator sign-in",
        "Front-channel logout URL",
        "Supported account types: multiple tenants",
        "ID tokens carry directory roles (groupMembershipClaims)",
        "Client secret expiry",
        "Permissions of profile “Read-only directory”",
    ] {
        assert!(
            out.contains(&format!("PASS  {title} — ")),
            "{title}:\n{out}"
        );
    }

    // The secret's expiry, read from the registration, is now in System Settings.
    let expires = (OffsetDateTime::now_utc() + time::Duration::days(365)).date();
    assert!(
        out.contains(&format!("Stored the client secret's expiry, {expires}")),
        "{out}"
    );
    let stored = settings::load(&app.db, &app.state.cfg.keys).await.unwrap();
    assert_eq!(stored.client_secret_expires, Some(expires));
    let by: String = sqlx::query_scalar(
        "select actor from audit_events where detail->>'setting' = 'client_secret_expires'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(by, "system");

    // JSON: every check passes, the values to enter are listed; nothing stored a second time.
    let (code, report) = doctor(&app).await;
    assert_eq!(code, 0);
    assert_eq!(with_status(&report, "pass").len(), 13, "{report:#}");
    assert_eq!(report["stored_secret_expiry"], Value::Null);
    set(&app, &[(Key::ClientSecretExpires, "")]).await;
    let (_, again) = doctor(&app).await;
    assert_eq!(again["stored_secret_expiry"], expires.to_string());
    assert_eq!(report["expected"]["client_id"], reg.client_id);
    assert_eq!(report["expected"]["tenant_id"], reg.tenant);
    assert_eq!(
        report["expected"]["redirect_uris"][0]["uri"],
        public(&app, paths::CALLBACK)
    );
    assert_eq!(
        report["expected"]["logout_url"],
        public(&app, "/console/sso/logout")
    );
    assert_eq!(
        report["expected"]["sign_in_audience"],
        "AzureADMultipleOrgs"
    );
    assert_eq!(
        report["expected"]["profiles"][0]["application"],
        json!(["User.Read.All", "Group.Read.All", "Organization.Read.All"])
    );
    assert!(
        check(&report, "secret_expiry")["detail"]
            .as_str()
            .unwrap()
            .contains(&expires.to_string())
    );

    // The page: admins only, linked from the console's navigation for them alone.
    app.sign_in(Role::Admin).await;
    let page = app.get(paths::DOCTOR).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Everything checks out."), "{html}");
    assert!(html.contains("Run again") && html.contains(r#"method="get""#));
    assert_eq!(html.matches(r#"class="badge succeeded">Pass<"#).count(), 13);
    for value in [
        public(&app, paths::CALLBACK),
        public(&app, "/console/sso/callback"),
        public(&app, "/console/sso/logout"),
    ] {
        assert!(html.contains(&format!(r#"value="{value}""#)), "{value}");
    }
    assert!(html.contains(r##"data-copy="#expected-redirect-0""##));
    let anonymous = crate::helpers::browser()
        .get(app.url(paths::DOCTOR))
        .send()
        .await
        .unwrap();
    assert!(
        crate::helpers::location(anonymous)
            .await
            .starts_with(paths::LOGIN)
    );
    assert!(html.contains(&format!(r#"href="{}""#, paths::DOCTOR)));
    assert!(
        !html.contains(&reg.secret),
        "the page never shows the secret"
    );

    let viewer = crate::helpers::browser();
    app.add_operator("viewer@provider.test", Role::Viewer).await;
    crate::helpers::sign_in_as(&viewer, &app, "viewer@provider.test").await;
    let refused = viewer.get(app.url(paths::DOCTOR)).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    let tenants = viewer
        .get(app.url(paths::TENANTS))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!tenants.contains(&format!(r#"href="{}""#, paths::DOCTOR)));
}

#[tokio::test]
async fn the_doctor_names_each_fault_of_a_broken_registration() {
    let app = TestApp::spawn().await;
    let reg = good_setup(&app).await;
    let redirects = json!([
        public(&app, paths::CALLBACK),
        public(&app, "/console/sso/callback"),
        public(&app, paths::SIGNIN_CALLBACK)
    ]);
    let (code, _) = doctor(&app).await;
    assert_eq!(code, 0);

    // A redirect URI with the wrong case: Microsoft compares exactly.
    let wrong = public(&app, "/authenticate/oauth2callback");
    patch(
        &app,
        &reg.client_id,
        json!({"redirect_uris": [wrong, public(&app, "/console/sso/callback"), public(&app, paths::SIGNIN_CALLBACK)]}),
    )
    .await;
    let (code, report) = doctor(&app).await;
    assert_eq!(code, 1);
    assert_eq!(with_status(&report, "fail"), ["redirect_uri"], "{report:#}");
    let found = text(check(&report, "redirect_uri"));
    assert!(
        found.contains(&wrong) && found.contains(&public(&app, paths::CALLBACK)),
        "{found}"
    );
    assert!(found.contains("exactly"), "{found}");
    // The page says the same, with the value to paste and its copy button.
    app.sign_in(Role::Admin).await;
    let html = app.get(paths::DOCTOR).await.text().await.unwrap();
    assert!(html.contains("Something needs fixing."), "{html}");
    assert!(html.contains(r#"<li id="check-redirect_uri">"#));
    assert!(html.contains(r#"class="badge failed">Fail<"#));
    assert!(html.contains(r##"data-copy="#check-4-value-0""##), "{html}");

    // Operator sign-in's redirect URI missing: a warning while it is off, a failure once on.
    patch(
        &app,
        &reg.client_id,
        json!({"redirect_uris": [public(&app, paths::CALLBACK)]}),
    )
    .await;
    let (code, report) = doctor(&app).await;
    assert_eq!(code, 0, "a warning alone passes");
    assert_eq!(
        with_status(&report, "warn"),
        ["sso_redirect_uri", "signin_redirect_uri"]
    );
    set(&app, &[(Key::SsoEnabled, "true")]).await;
    let (code, report) = doctor(&app).await;
    assert_eq!(code, 1);
    assert_eq!(with_status(&report, "fail"), ["sso_redirect_uri"]);
    set(&app, &[(Key::SsoEnabled, "false")]).await;
    patch(&app, &reg.client_id, json!({"redirect_uris": redirects})).await;

    // Single tenant: customers cannot consent.
    patch(&app, &reg.client_id, json!({"multi_tenant": false})).await;
    let (code, report) = doctor(&app).await;
    assert_eq!(code, 1);
    assert_eq!(with_status(&report, "fail"), ["audience"], "{report:#}");
    let found = text(check(&report, "audience"));
    assert!(
        found.contains("AzureADMyOrg") && found.contains("Multitenant"),
        "{found}"
    );
    patch(&app, &reg.client_id, json!({"multi_tenant": true})).await;

    // No groupMembershipClaims: ID tokens carry no wids.
    patch(
        &app,
        &reg.client_id,
        json!({"group_membership_claims": "None"}),
    )
    .await;
    let (_, report) = doctor(&app).await;
    assert_eq!(with_status(&report, "fail"), ["wids"]);
    let wids = check(&report, "wids");
    let (detail, fix) = (
        wids["detail"].as_str().unwrap(),
        wids["fix"].as_str().unwrap(),
    );
    assert!(
        detail.contains("groupMembershipClaims is not set"),
        "{detail}"
    );
    assert!(
        fix.contains("Directory roles")
            && fix.contains("\"groupMembershipClaims\": \"DirectoryRole\""),
        "{fix}"
    );
    patch(
        &app,
        &reg.client_id,
        json!({"group_membership_claims": "DirectoryRole"}),
    )
    .await;

    // A second profile in use needs a permission the registration lacks.
    let teams = profiles::create(
        &app.db,
        &profiles::NewProfile::parse(
            "Live Teams",
            "Presence for the Teams integration",
            "User.Read.All | Read all users | to list your users\nPresence.Read.All | Read presence | to show who is available",
            "Presence.Read.All | Read presence | to show who is available",
        )
        .unwrap(),
        &Actor::Cli,
    )
    .await
    .unwrap();
    let mut new = NewInvitation::parse(
        "Northwind",
        "admin@northwind.example",
        "delegated",
        None,
        Some("7d"),
    )
    .unwrap();
    new.profile = Some(teams.into());
    let live = app.state.live().await.unwrap();
    let invitation = invitations::create(
        &app.db,
        app.state.invitation_context(&live),
        &new,
        &Actor::Cli,
        None,
    )
    .await
    .unwrap();
    let (code, report) = doctor(&app).await;
    assert_eq!(code, 1);
    let id = format!("permissions:{teams}");
    assert_eq!(with_status(&report, "fail"), vec![id.clone()], "{report:#}");
    let found = text(check(&report, &id));
    assert!(
        found.contains("lacks Presence.Read.All (delegated) and Presence.Read.All (application)"),
        "{found}"
    );
    assert!(found.contains("Live Teams"));
    assert_eq!(check(&report, &id)["values"], json!(["Presence.Read.All"]));
    assert_eq!(
        check(&report, &format!("permissions:{}", profiles::BUILT_IN))["status"],
        "pass"
    );
    invitations::revoke(&app.db, invitation.invitation.id, &Actor::Cli)
        .await
        .unwrap();
    let (code, report) = doctor(&app).await;
    assert_eq!(code, 0, "a profile nothing uses is not checked: {report:#}");

    // A secret expiring in 10 days: an urgent warning, and the new date is stored.
    patch(&app, &reg.client_id, json!({"secret_expires_in_days": 10})).await;
    let output = run(gangway(&app), &["doctor"]).await;
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("WARN  Client secret expiry — "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("Urgent: the client secret expires in 10 days"),
        "{line}"
    );
    assert!(
        out.contains("      fix: Replace it now.") && out.contains("24 months"),
        "{out}"
    );
    let in_ten = (OffsetDateTime::now_utc() + time::Duration::days(10)).date();
    let stored = settings::load(&app.db, &app.state.cfg.keys).await.unwrap();
    assert_eq!(stored.client_secret_expires, Some(in_ten));

    // An expired secret: Entra ID refuses it, so the registration cannot be read either.
    patch(&app, &reg.client_id, json!({"secret_expires_in_days": -1})).await;
    let (code, report) = doctor(&app).await;
    assert_eq!(code, 1);
    assert_eq!(
        with_status(&report, "fail"),
        ["client_credentials", "secret_expiry"],
        "{report:#}"
    );
    assert!(text(check(&report, "client_credentials")).contains("AADSTS7000222"));
    assert!(text(check(&report, "secret_expiry")).contains("24 months"));
    assert_eq!(check(&report, "redirect_uri")["status"], "skip");
    assert!(
        text(check(&report, "redirect_uri")).contains(&public(&app, paths::CALLBACK)),
        "a skipped check still says what to look at"
    );
    patch(&app, &reg.client_id, json!({"secret_expires_in_days": 365})).await;

    // A wrong secret in System Settings.
    set(&app, &[(Key::ClientSecret, "not-the-secret-value")]).await;
    let output = run(gangway(&app), &["doctor"]).await;
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(1));
    let line = out
        .lines()
        .find(|l| l.starts_with("FAIL  Your tenant accepts the app's client secret — "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("AADSTS7000215") && line.contains("invalid client secret"),
        "{line}"
    );
    assert!(out.contains("Value, not its Secret ID"), "{out}");
    assert!(
        stderr(&output).contains("check(s) failed"),
        "{}",
        stderr(&output)
    );
    set(&app, &[(Key::ClientSecret, &reg.secret)]).await;

    // Application.Read.All not granted: the fix says how.
    let other = app
        .admin
        .register_app(&json!({
            "home_tenant": reg.tenant,
            "multi_tenant": true,
            "permissions": gangway::demo::provider_permissions(),
        }))
        .await
        .unwrap();
    set(
        &app,
        &[
            (Key::ClientId, &other.client_id),
            (Key::ClientSecret, &other.client_secret),
        ],
    )
    .await;
    let (code, report) = doctor(&app).await;
    assert_eq!(code, 1);
    assert_eq!(with_status(&report, "fail"), ["registration"]);
    assert!(text(check(&report, "registration")).contains("Grant admin consent"));

    // No tenant ID: named, with the fix.
    set(&app, &[(Key::ProviderTenantId, "")]).await;
    let (code, report) = doctor(&app).await;
    assert_eq!(code, 1);
    assert_eq!(with_status(&report, "fail"), ["provider_tenant"]);
    assert!(
        text(check(&report, "provider_tenant")).contains("Enter your tenant ID in System Settings")
    );
}

#[tokio::test]
async fn the_doctor_exits_78_when_it_cannot_read_the_configuration() {
    let app = TestApp::spawn().await;
    let mut command = gangway(&app);
    command.env_remove("GANGWAY_PUBLIC_URL");
    let output = run(command, &["doctor"]).await;
    assert_eq!(output.status.code(), Some(78));
    assert!(
        stderr(&output).contains("GANGWAY_PUBLIC_URL"),
        "{}",
        stderr(&output)
    );

    // System Settings sealed with a key this process does not have.
    let mut command = gangway(&app);
    command.env(
        "GANGWAY_ENCRYPTION_KEY",
        gangway::crypto::EncryptionKey::generate_base64(),
    );
    let output = run(command, &["doctor", "--json"]).await;
    assert_eq!(output.status.code(), Some(78), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("sealed with key"),
        "{}",
        stderr(&output)
    );
    assert!(stdout(&output).is_empty());
}

#[tokio::test]
async fn the_doctor_page_works_at_phone_and_laptop_width_in_a_real_browser() {
    use crate::browser::{ChromeDriver, check_page, click, eval, fill, wait_for_text};

    let app = TestApp::spawn().await;
    let reg = good_setup(&app).await;
    // Broken three ways, so the page shows failures with their fixes, values to paste and a
    // warning.
    patch(
        &app,
        &reg.client_id,
        json!({
            "redirect_uris": [public(&app, "/authenticate/oauth2callback")],
            "group_membership_claims": "None",
            "secret_expires_in_days": 10,
        }),
    )
    .await;
    app.add_operator("ops@provider.test", Role::Admin).await;
    let driver = ChromeDriver::start().await;
    let browser = driver.browser().await;
    browser.goto(&app.url(paths::LOGIN)).await.unwrap();
    fill(&browser, "input[name=email]", "ops@provider.test").await;
    fill(
        &browser,
        "input[name=password]",
        crate::helpers::OPERATOR_PASSWORD,
    )
    .await;
    click(
        &browser,
        "form[action='/console/login'] button[type=submit]",
    )
    .await;
    wait_for_text(&browser, "New invitation").await;
    click(
        &browser,
        &format!(".topbar nav a[href='{}']", paths::DOCTOR),
    )
    .await;
    wait_for_text(&browser, "Something needs fixing.").await;
    check_page(&browser, "doctor-faults", true).await;

    // A value's copy button copies it (and says so).
    click(&browser, "#check-redirect_uri button[data-copy]").await;
    wait_for_text(&browser, ">Copied<").await;

    // Fixed in the admin center, Run again shows every check passing.
    patch(
        &app,
        &reg.client_id,
        json!({
            "redirect_uris": [
                public(&app, paths::CALLBACK),
                public(&app, "/console/sso/callback"),
                public(&app, paths::SIGNIN_CALLBACK),
            ],
            "group_membership_claims": "DirectoryRole",
            "secret_expires_in_days": 365,
        }),
    )
    .await;
    click(
        &browser,
        &format!("form[action='{}'] button[type=submit]", paths::DOCTOR),
    )
    .await;
    wait_for_text(&browser, "Everything checks out.").await;
    assert_eq!(
        eval(
            &browser,
            "document.querySelectorAll('.badge.succeeded').length"
        )
        .await,
        json!(13)
    );
    check_page(&browser, "doctor-pass", true).await;
    browser.close().await.unwrap();
}

#[tokio::test]
async fn the_doctor_names_a_registration_with_v1_access_tokens_and_an_audience_gangway_would_refuse()
 {
    let app = TestApp::spawn().await;
    let reg = good_setup(&app).await;
    // Registered without api.requestedAccessTokenVersion: Microsoft's default, v1.0 tokens.
    let (_, report) = doctor(&app).await;
    let found = check(&report, "access_token_version");
    assert_eq!(found["status"], "pass", "{found}");
    let said = text(found);
    assert!(said.contains("v1.0 tokens"), "{said}");
    assert!(said.contains("null, Microsoft's default"), "{said}");
    assert!(
        said.contains(&format!("https://sts.windows.net/{}/", reg.tenant)),
        "{said}"
    );

    // A v1.0 token's audience is the URI the client asked for: without api://{client id}
    // among the identifier URIs, clients get tokens Gangway refuses.
    patch(
        &app,
        &reg.client_id,
        json!({"identifier_uris": ["https://api.contoso.example/gangway"]}),
    )
    .await;
    let (_, report) = doctor(&app).await;
    let found = check(&report, "access_token_version");
    assert_eq!(found["status"], "warn", "{found}");
    assert!(
        text(found).contains("\\\"requestedAccessTokenVersion\\\": 2"),
        "{found}"
    );

    // v2.0 tokens always name the client id: the identifier URI no longer matters.
    patch(
        &app,
        &reg.client_id,
        json!({"requested_access_token_version": 2}),
    )
    .await;
    let (_, report) = doctor(&app).await;
    let found = check(&report, "access_token_version");
    assert_eq!(found["status"], "pass", "{found}");
    assert!(text(found).contains("v2.0 tokens"), "{found}");
}

#[tokio::test]
async fn users_sign_in_needs_its_redirect_uri_and_openid_profile_email_once_an_application_exists()
{
    let app = TestApp::spawn().await;
    let reg = good_setup(&app).await;
    let signin_callback = public(&app, paths::SIGNIN_CALLBACK);
    let (code, report) = doctor(&app).await;
    assert_eq!(code, 0);
    assert_eq!(check(&report, "signin_redirect_uri")["status"], "pass");
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["id"] != "signin_permissions"),
        "no application asks for them yet"
    );
    assert_eq!(
        report["expected"]["redirect_uris"][2]["uri"],
        signin_callback
    );
    assert_eq!(
        report["expected"]["signin_scopes"],
        json!(["openid", "profile", "email"])
    );

    // Without the sign-in redirect URI: a warning while no application signs users in.
    patch(
        &app,
        &reg.client_id,
        json!({"redirect_uris": [public(&app, paths::CALLBACK), public(&app, "/console/sso/callback")]}),
    )
    .await;
    let (code, report) = doctor(&app).await;
    assert_eq!(code, 0);
    assert_eq!(with_status(&report, "warn"), ["signin_redirect_uri"]);
    assert!(
        text(check(&report, "signin_redirect_uri")).contains("once an application signs users in")
    );

    // Once one does: the URI and the permissions are failures, with what to enter.
    gangway::signin::applications::register(
        &app.db,
        &gangway::signin::NewApplication {
            name: "Workspace".into(),
            kind: gangway::signin::AppKind::Spa,
            redirect_uris: vec!["https://workspace.example/cb".into()],
            post_logout_redirect_uris: Vec::new(),
            backchannel_logout_uri: None,
            customers: None,
            pairwise_subject: false,
            groups: gangway::signin::GroupsClaim::None,
            role_mapping: Default::default(),
            require_account_link: false,
        },
        &Actor::Cli,
    )
    .await
    .unwrap();
    let (code, report) = doctor(&app).await;
    assert_eq!(code, 1);
    // The registration requests openid, profile and email (Graph's ids in
    // `requiredResourceAccess`): only the redirect URI is missing.
    assert_eq!(
        with_status(&report, "fail"),
        ["signin_redirect_uri"],
        "{report:#}"
    );
    let uri = check(&report, "signin_redirect_uri");
    assert_eq!(uri["values"], json!([signin_callback]));
    assert_eq!(check(&report, "signin_permissions")["status"], "pass");

    // Without them, as a registration made before sign-in existed: named, with what to add.
    let mut without_signin = gangway::demo::provider_permissions();
    without_signin["delegated"] = json!(gangway::types::permissions::delegated_scopes());
    patch(&app, &reg.client_id, json!({"permissions": without_signin})).await;
    let (code, report) = doctor(&app).await;
    assert_eq!(code, 1);
    assert_eq!(
        with_status(&report, "fail"),
        ["signin_redirect_uri", "signin_permissions"],
        "{report:#}"
    );
    let permissions = check(&report, "signin_permissions");
    assert!(
        text(permissions).contains("openid (delegated)"),
        "{permissions}"
    );
    assert_eq!(permissions["values"], json!(["openid", "profile", "email"]));
    assert!(text(permissions).contains("Delegated permissions: openid, profile, email"));
}
