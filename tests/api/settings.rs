//! System Settings through the console: edited, audited, refused field by field, seen by
//! another portal process; permission profiles on invitations; secret-expiry banners.

use std::time::Duration;

use gangway::operators::Role;
use gangway::web::paths;
use reqwest::StatusCode;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::cli::gangway;
use crate::helpers::{TestApp, location};
use crate::wizard::Customer;

async fn text(response: reqwest::Response) -> String {
    response.text().await.unwrap()
}

/// The settings form as the page would send it, with `changes` applied.
pub(crate) fn form<'a>(
    app: &'a TestApp,
    changes: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut fields = vec![
        ("client_id", app.app.client_id.as_str()),
        ("client_secret", ""),
        ("client_secret_expires", ""),
        ("provider_tenant_id", ""),
        ("provider_name", "Test Provider"),
        ("logo_url", ""),
        ("support_email", ""),
        ("support_url", ""),
        ("terms_url", ""),
        ("privacy_url", ""),
        ("default_schedule", "every 1h"),
        ("local_passwords", "false"),
        ("local_passwords", "true"),
        ("sso_enabled", "false"),
        ("sso_admin_groups", ""),
        ("sso_viewer_groups", ""),
        ("sso_admin_roles", ""),
        ("sso_viewer_roles", ""),
    ];
    for (key, value) in changes {
        fields.retain(|(k, _)| k != key || *key == "local_passwords");
        fields.push((key, value));
    }
    fields
}

async fn audit_details(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar(
        "select detail::text from audit_events where action = 'settings.changed' order by id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn settings_are_edited_audited_and_seen_by_another_portal_process() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let page = text(app.get(paths::SETTINGS).await).await;
    assert!(page.contains(&app.app.client_id));
    assert!(page.contains("From the environment (GANGWAY_CLIENT_ID)"));
    assert!(page.contains(&format!("{}/authenticate/OAuth2Callback", app.address)));
    assert!(page.contains("data-copy=\"#redirect-uri\""));
    assert!(
        !page.contains(&app.app.client_secret),
        "the secret is never shown"
    );

    // Another portal process on the same database, started before the change.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut other = gangway(&app);
    other
        .env("GANGWAY_LISTEN", format!("127.0.0.1:{port}"))
        .env("GANGWAY_SYNC_WORKERS", "0")
        .arg("serve")
        .kill_on_drop(true);
    let _other = other.spawn().unwrap();
    let other_url = format!("http://127.0.0.1:{port}");
    let browser = reqwest::Client::new();
    let wizard_of_other = || async {
        let r = browser
            .get(format!("{other_url}{}", paths::WIZARD))
            .send()
            .await;
        match r {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    };
    for _ in 0..100 {
        if wizard_of_other().await.contains("Test Provider") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(wizard_of_other().await.contains("Test Provider"));

    let saved = app
        .post_form(
            paths::SETTINGS,
            &form(
                &app,
                &[
                    ("provider_name", "Northwind Telecom"),
                    ("support_email", "help@northwind.example"),
                    ("terms_url", "https://northwind.example/terms"),
                    ("client_secret", app.app.client_secret.as_str()),
                ],
            ),
        )
        .await;
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(saved).await,
        format!("{}?done=saved", paths::SETTINGS)
    );
    let page = text(app.get(&format!("{}?done=saved", paths::SETTINGS)).await).await;
    assert!(page.contains("Settings saved"));
    assert!(page.contains("Northwind Telecom"));
    assert!(page.contains("Changed "), "the origin says who changed it");
    assert!(!page.contains(&app.app.client_secret));
    let audit = audit_details(&app).await;
    assert!(
        audit
            .iter()
            .any(|d| d.contains("\"old\": \"Test Provider\"")
                && d.contains("\"new\": \"Northwind Telecom\"")),
        "{audit:?}"
    );
    assert!(audit.iter().any(|d| d.contains("secret replaced")));
    assert!(audit.iter().all(|d| !d.contains(&app.app.client_secret)));

    // The other process shows the new name and contact within seconds, without a restart.
    let mut seen = String::new();
    for _ in 0..50 {
        seen = wizard_of_other().await;
        if seen.contains("Northwind Telecom") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen.contains("Northwind Telecom"), "{seen}");
    assert!(
        seen.contains("help@northwind.example"),
        "the wizard says how to contact"
    );
    assert!(seen.contains("https://northwind.example/terms"));
    let missing = text(
        browser
            .get(format!("{other_url}/no-such-page"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        missing.contains("Contact Northwind Telecom at help@northwind.example"),
        "error pages say how to reach support: {missing}"
    );

    // The invitation mail presents the provider the same way.
    let issued = app.invite("delegated", "admin@contoso.example", None).await;
    app.deliver_mail().await;
    let mail = app.mail.messages().last().unwrap().text();
    assert!(mail.contains("Northwind Telecom asks for access"), "{mail}");
    assert!(mail.contains("help@northwind.example"));
    assert!(issued.link.as_str().contains("token="));
}

#[tokio::test]
async fn the_secret_expiry_field_is_a_date_field_whose_hint_names_no_other_format() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let page = text(app.get(paths::SETTINGS).await).await;
    let label_at = page
        .find("<label for=\"client_secret_expires\"")
        .expect("the expiry field has a label");
    let label = &page[label_at..label_at + page[label_at..].find("</label>").unwrap()];
    // The browser shows a date field in the viewer's own format (mm/dd/yyyy in Chromium's
    // en-US): a hint naming another one contradicts what is on the screen.
    assert!(
        !label.contains("YYYY") && label.contains("Certificates &#38; secrets"),
        "{label}"
    );
    assert!(page.contains("<input type=\"date\" id=\"client_secret_expires\""));
}

#[tokio::test]
async fn bad_settings_are_refused_field_by_field_and_nothing_is_saved() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let far = (OffsetDateTime::now_utc().date() + time::Duration::days(800)).to_string();
    let refused = app
        .post_form(
            paths::SETTINGS,
            &form(
                &app,
                &[
                    ("client_id", "my-app"),
                    ("provider_name", "Changed"),
                    ("logo_url", "http://northwind.example/logo.png"),
                    ("client_secret_expires", far.as_str()),
                    ("sso_admin_groups", "ops team"),
                    ("default_schedule", "every 1m"),
                ],
            ),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = text(refused).await;
    for expected in [
        "Nothing was saved",
        "Application (client) ID must be",
        "Logo URL must be an https:// address",
        "24 months",
        "ops team is not a group",
        "5 minutes",
    ] {
        assert!(page.contains(expected), "{expected}: {page}");
    }
    assert!(page.contains("value=\"Changed\""), "typed values are kept");
    assert!(page.contains("href=\"#client_id\""));
    let name: Option<serde_json::Value> =
        sqlx::query_scalar("select value from settings where key = 'provider_name'")
            .fetch_optional(&app.db)
            .await
            .unwrap();
    assert_eq!(name, Some(serde_json::json!("Test Provider")));
    assert!(audit_details(&app).await.is_empty());

    // The last way in for admins stays: no password sign-in while no admin has used Entra ID.
    let off = form(&app, &[("local_passwords", "false")]);
    let refused = app.post_form(paths::SETTINGS, &off).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        text(refused)
            .await
            .contains("cannot be turned off until an admin has signed in with Entra ID")
    );
    sqlx::query("update operators set entra_object_id = gen_random_uuid() where role = 'admin'")
        .execute(&app.db)
        .await
        .unwrap();
    let allowed = app.post_form(paths::SETTINGS, &off).await;
    assert_eq!(allowed.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn viewers_neither_see_nor_change_settings() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Viewer).await;
    assert_eq!(
        app.get(paths::SETTINGS).await.status(),
        StatusCode::FORBIDDEN
    );
    let post = app
        .post_form(
            paths::SETTINGS,
            &form(&app, &[("provider_name", "Mallory")]),
        )
        .await;
    assert_eq!(post.status(), StatusCode::FORBIDDEN);
    let page = text(app.get(paths::INVITATIONS).await).await;
    assert!(
        !page.contains(paths::SETTINGS),
        "no Settings link for viewers"
    );
}

#[tokio::test]
async fn secrets_about_to_expire_show_a_banner_on_every_console_page() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let in_days = |d: i64| (OffsetDateTime::now_utc().date() + time::Duration::days(d)).to_string();
    let expires_in = async |days: i64| {
        let date = in_days(days);
        let saved = app
            .post_form(
                paths::SETTINGS,
                &form(&app, &[("client_secret_expires", date.as_str())]),
            )
            .await;
        assert_eq!(saved.status(), StatusCode::SEE_OTHER);
        text(app.get(paths::TENANTS).await).await
    };
    let page = expires_in(61).await;
    assert!(!page.contains("banner"), "nothing to say 61 days ahead");
    let page = expires_in(59).await;
    assert!(page.contains("notice warn banner"), "{page}");
    assert!(page.contains("client secret expires in 59 days"));
    let page = expires_in(13).await;
    assert!(page.contains("notice bad banner"));
    assert!(page.contains("client secret expires in 13 days"));
    assert!(page.contains("at most 24 months"));

    // A customer app's secret, where its expiry is known.
    let tenant = crate::sync_console::tenant(&app, "Fabrikam").await;
    sqlx::query(
        "update tenants set consent_mode = 'customer_app', credential_expires_on = current_date + 10 where id = $1",
    )
    .bind(tenant)
    .execute(&app.db)
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let page = text(app.get(paths::INVITATIONS).await).await;
    assert!(
        page.contains("Fabrikam&#39;s own app secret expires in 10 days"),
        "{page}"
    );
    assert!(page.contains(&paths::tenant(tenant.into())));
}

#[tokio::test]
async fn the_profile_an_invitation_picks_decides_what_the_wizard_and_the_sign_in_ask() {
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let refused = app
        .post_form(
            paths::PROFILES,
            &[
                ("name", "Presence"),
                ("delegated", "Presence.Read.All | Read presence"),
                ("application", ""),
            ],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        text(refused)
            .await
            .contains("Permission | what it allows | why you need it")
    );
    let created = app
        .post_form(
            paths::PROFILES,
            &[
                ("name", "Telephony with presence"),
                ("description", "What the phone system needs"),
                (
                    "delegated",
                    "User.Read.All | Read all users' full profiles | to list your users in the phone system\n\
                     Presence.Read.All | Read the presence of all users | to show who is available to take a call\n\
                     User.Read | Read your organisation's name | to confirm which organisation you signed in to",
                ),
                ("application", "User.Read.All | Read all users' full profiles | to list your users"),
            ],
        )
        .await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let profile: Uuid = sqlx::query_scalar(
        "select id from permission_profiles where name = 'Telephony with presence'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    let page = text(app.get(paths::SETTINGS).await).await;
    assert!(page.contains("to show who is available to take a call"));

    // An invitation with that profile asks for presence; one with the default does not.
    let new = text(app.get(paths::NEW_INVITATION).await).await;
    assert!(
        new.contains("Telephony with presence") && new.contains("Read-only directory (default)")
    );
    let profile_id = profile.to_string();
    let page = text(
        app.post_and_follow(
            paths::NEW_INVITATION,
            &[
                ("customer_name", "Contoso"),
                ("admin_email", &app.customer(0).admin.username),
                ("mode", "delegated"),
                ("tenant_domain", ""),
                ("valid_for", "3d"),
                ("profile", &profile_id),
            ],
        )
        .await,
    )
    .await;
    let link = crate::helpers::input_value(&page, "invitation_link").expect("the link is shown");
    let customer = Customer::open(&app, &url::Url::parse(&link).unwrap()).await;
    let wizard = customer.wizard(&app).await;
    assert!(
        wizard.contains("Presence.Read.All")
            && wizard.contains("to show who is available to take a call")
    );
    let microsoft = customer.start(&app).await;
    let scope: String = url::Url::parse(&microsoft)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "scope")
        .unwrap()
        .1
        .into_owned();
    assert!(
        scope.contains("https://graph.microsoft.com/Presence.Read.All"),
        "{scope}"
    );
    app.deliver_mail().await;
    assert!(
        app.mail
            .messages()
            .last()
            .unwrap()
            .text()
            .contains("Presence.Read.All")
    );

    let plain = app
        .invite("delegated", "admin@fabrikam.example", None)
        .await;
    let customer = Customer::open(&app, &plain.link).await;
    assert!(!customer.wizard(&app).await.contains("Presence.Read.All"));
    let scope = customer.start(&app).await;
    assert!(!scope.contains("Presence.Read.All") && scope.contains("User.Read.All"));

    // A profile in use cannot be deleted; the built-in one never.
    let delete = app
        .post_form(&paths::profile_delete(profile.into()), &[])
        .await;
    assert_eq!(delete.status(), StatusCode::BAD_REQUEST);
    assert!(text(delete).await.contains("in use"));
    let default = app
        .post_form(&paths::profile_default(profile.into()), &[])
        .await;
    assert_eq!(default.status(), StatusCode::SEE_OTHER);
    let bad = app
        .post_form(
            paths::NEW_INVITATION,
            &[
                ("customer_name", "Contoso"),
                ("admin_email", "admin@contoso.example"),
                ("mode", "delegated"),
                ("valid_for", "3d"),
                ("profile", "not-a-profile"),
            ],
        )
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        text(bad)
            .await
            .contains("Choose one of the permission profiles listed.")
    );
}
