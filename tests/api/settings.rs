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

/// Runs `gangway settings …` against `app`, with `stdin` when given.
async fn settings_cli(app: &TestApp, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use tokio::io::AsyncWriteExt;
    let mut command = gangway(app);
    command
        .arg("settings")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(stdin) = stdin {
        input.write_all(stdin.as_bytes()).await.unwrap();
    }
    drop(input);
    child.wait_with_output().await.unwrap()
}

fn out(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn err(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn settings_are_read_and_set_through_the_json_api_with_the_consoles_checks() {
    use crate::json_api::{call, token};
    use reqwest::Method;
    use serde_json::json;
    let app = TestApp::spawn().await;
    app.sign_in(Role::Admin).await;
    let write = token(&app, "config-as-code", "write").await;
    let read = token(&app, "dashboard", "read").await;

    let (status, _, body) = call(&app, Method::GET, "/api/v1/settings", Some(&write), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["format"], "gangway-settings/1");
    assert_eq!(body["settings"]["provider_name"], "Test Provider");
    assert_eq!(body["settings"]["client_id"], app.app.client_id.as_str());
    assert_eq!(body["settings"]["local_passwords"], true);
    assert!(
        body["settings"].get("client_secret").is_none(),
        "the secret is write-only"
    );
    assert!(!body.to_string().contains(&app.app.client_secret));

    // Settings are an admin's: a read token neither sees nor changes them.
    let (status, _, _) = call(&app, Method::GET, "/api/v1/settings", Some(&read), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = call(
        &app,
        Method::PATCH,
        "/api/v1/settings",
        Some(&read),
        Some(json!({"provider_name": "Nope"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let group = Uuid::new_v4();
    let (status, _, body) = call(
        &app,
        Method::PATCH,
        "/api/v1/settings",
        Some(&write),
        Some(json!({
            "provider_name": "Northwind Telecom",
            "support_email": "help@northwind.example",
            "sso_admin_groups": [group.to_string().to_uppercase()],
            "api_calls_per_second": 40,
            "client_secret": "a-new-secret-from-the-portal",
        })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["settings"]["provider_name"], "Northwind Telecom");
    assert_eq!(
        body["settings"]["sso_admin_groups"],
        json!([group.to_string()])
    );
    assert_eq!(body["settings"]["api_calls_per_second"], 40);
    assert!(!body.to_string().contains("a-new-secret-from-the-portal"));
    let audited = audit_details(&app).await;
    assert!(
        audited
            .iter()
            .any(|d| d.contains("Northwind Telecom") && d.contains("Test Provider")),
        "{audited:?}"
    );
    assert!(audited.iter().any(|d| d.contains("secret replaced")));
    assert!(
        !audited
            .iter()
            .any(|d| d.contains("a-new-secret-from-the-portal")),
        "the secret is never audited"
    );
    // The console shows what the API set.
    let page = text(app.get(paths::SETTINGS).await).await;
    assert!(page.contains("Northwind Telecom"));

    // Bad values are refused by name, all or nothing, as problem details.
    let before = audit_details(&app).await.len();
    let (status, headers, body) = call(
        &app,
        Method::PATCH,
        "/api/v1/settings",
        Some(&write),
        Some(json!({
            "provider_name": "Contoso",
            "logo_url": "http://contoso.example/logo.png",
            "sso_enabled": "yes",
            "default_schedule": "every 1m",
        })),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(headers["content-type"], "application/problem+json");
    let detail = body["detail"].as_str().unwrap();
    for named in [
        "logo_url",
        "sso_enabled",
        "default_schedule",
        "https",
        "true or false",
    ] {
        assert!(detail.contains(named), "{detail} names {named}");
    }
    assert!(!detail.contains("provider_name"), "{detail}");
    let (_, _, now) = call(&app, Method::GET, "/api/v1/settings", Some(&write), None).await;
    assert_eq!(now["settings"]["provider_name"], "Northwind Telecom");
    assert_eq!(audit_details(&app).await.len(), before, "nothing was saved");

    for body in [json!({"colour": "red"}), json!(["provider_name"])] {
        let (status, _, problem) = call(
            &app,
            Method::PATCH,
            "/api/v1/settings",
            Some(&write),
            Some(body),
        )
        .await;
        assert!(
            status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::BAD_REQUEST,
            "{status} {problem}"
        );
        assert!(problem["detail"].is_string());
    }
}

#[tokio::test]
async fn settings_are_read_and_set_from_the_cli_with_exit_codes_and_no_secret_printed() {
    let app = TestApp::spawn().await;
    let set = settings_cli(&app, &["set", "provider_name", "Fabrikam Cloud"], None).await;
    assert!(set.status.success(), "{}", err(&set));
    assert_eq!(out(&set).trim(), "\"Fabrikam Cloud\"");
    let got = settings_cli(&app, &["get", "provider_name"], None).await;
    assert_eq!(out(&got).trim(), "\"Fabrikam Cloud\"");
    let set = settings_cli(
        &app,
        &["set", "sso_viewer_roles", "Gangway.Viewer,Ops.Read"],
        None,
    )
    .await;
    assert!(set.status.success(), "{}", err(&set));
    let set = settings_cli(
        &app,
        &["set", "sso_admin_roles", "[\"Gangway.Admin\"]"],
        None,
    )
    .await;
    assert!(set.status.success(), "{}", err(&set));
    let all: serde_json::Value =
        serde_json::from_str(&out(&settings_cli(&app, &["get"], None).await)).unwrap();
    assert_eq!(
        all["sso_viewer_roles"],
        serde_json::json!(["Gangway.Viewer", "Ops.Read"])
    );
    assert_eq!(all["sso_admin_roles"], serde_json::json!(["Gangway.Admin"]));
    assert!(all.get("client_secret").is_none());

    // The secret: set from stdin, never printed, audited as replaced.
    let secret = settings_cli(
        &app,
        &["set", "client_secret", "-"],
        Some("from-stdin-secret\n"),
    )
    .await;
    assert!(secret.status.success(), "{}", err(&secret));
    assert_eq!(out(&secret).trim(), "replaced");
    let refused = settings_cli(&app, &["get", "client_secret"], None).await;
    assert_eq!(refused.status.code(), Some(2));
    assert!(err(&refused).contains("write-only"));
    let live = gangway::settings::load(&app.db, &app.state.cfg.keys)
        .await
        .unwrap();
    assert_eq!(
        live.client_secret
            .as_ref()
            .map(gangway::types::Secret::expose),
        Some("from-stdin-secret")
    );
    let audited = audit_details(&app).await;
    assert!(audited.iter().any(|d| d.contains("Fabrikam Cloud")));
    assert!(!audited.iter().any(|d| d.contains("from-stdin-secret")));

    // Bad input: exit 2 with the reason, nothing saved.
    for (args, says) in [
        (vec!["set", "sso_enabled", "yes"], "true or false"),
        (
            vec!["set", "logo_url", "http://fabrikam.example/l.png"],
            "https",
        ),
        (vec!["set", "colour", "red"], "no setting is named colour"),
        (vec!["get", "colour"], "no setting is named colour"),
        (vec!["import", "/nonexistent/settings.json"], "cannot read"),
    ] {
        let output = settings_cli(&app, &args, None).await;
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", err(&output));
        assert!(err(&output).contains(says), "{args:?}: {}", err(&output));
    }
    let got = settings_cli(&app, &["get", "logo_url"], None).await;
    assert_eq!(out(&got).trim(), "null");
    let help = settings_cli(&app, &["--help"], None).await;
    for command in ["get", "set", "export", "import"] {
        assert!(out(&help).contains(command), "{}", out(&help));
    }
}

#[tokio::test]
async fn an_export_imported_into_a_fresh_installation_gives_identical_settings() {
    let app = TestApp::spawn().await;
    for (key, value) in [
        ("provider_name", "Tailspin Toys"),
        ("support_url", "https://tailspin.example/help"),
        ("client_secret_expires", "2027-06-30"),
        ("provider_tenant_id", "0A5B8C7D-2C3B-4F7A-9E1D-6F1D9A4E6E5F"),
        ("default_schedule", "daily 02:30 Europe/Berlin"),
        ("sso_admin_groups", "6f1d9a4e-2c3b-4f7a-9e1d-0a5b8c7d6e5f"),
        (
            "webhook_allowed_networks",
            "[\"10.0.0.0/8\", \"hooks.internal\"]",
        ),
        ("api_calls_per_second", "35"),
    ] {
        let set = settings_cli(&app, &["set", key, value], None).await;
        assert!(set.status.success(), "{key}: {}", err(&set));
    }
    let dir = std::env::temp_dir().join(format!("gangway-settings-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("settings.json");
    let export = settings_cli(&app, &["export", "--file", file.to_str().unwrap()], None).await;
    assert!(export.status.success(), "{}", err(&export));
    assert!(err(&export).contains("client_secret is not exported"));
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(!written.contains(&app.app.client_secret));

    let fresh = TestApp::spawn().await;
    let import = settings_cli(&fresh, &["import", file.to_str().unwrap()], None).await;
    assert!(import.status.success(), "{}", err(&import));
    let original = out(&settings_cli(&app, &["get"], None).await);
    let imported = out(&settings_cli(&fresh, &["get"], None).await);
    assert_eq!(imported, original);
    assert!(imported.contains("Tailspin Toys"));
    // Importing it again changes nothing and records nothing.
    let before = audit_details(&fresh).await.len();
    let again = settings_cli(&fresh, &["import", file.to_str().unwrap()], None).await;
    assert_eq!(out(&again).trim(), "0 setting(s) changed");
    assert_eq!(audit_details(&fresh).await.len(), before);

    // A file that is not an export is refused with exit 2.
    std::fs::write(&file, "{\"settings\": {}}").unwrap();
    let bad = settings_cli(&fresh, &["import", file.to_str().unwrap()], None).await;
    assert_eq!(bad.status.code(), Some(2), "{}", err(&bad));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn the_providers_tenant_id_is_seeded_from_the_environment() {
    let app = TestApp::spawn().await;
    let tenant = "6f1d9a4e-2c3b-4f7a-9e1d-0a5b8c7d6e5f";
    let mut command = gangway(&app);
    command.env("GANGWAY_PROVIDER_TENANT_ID", tenant).args([
        "settings",
        "get",
        "provider_tenant_id",
    ]);
    let output = command.output().await.unwrap();
    assert!(output.status.success(), "{}", err(&output));
    assert_eq!(out(&output).trim(), format!("\"{tenant}\""));
    let mut command = gangway(&app);
    command
        .env("GANGWAY_PROVIDER_TENANT_ID", "not-a-guid")
        .args(["settings", "get"]);
    let output = command.output().await.unwrap();
    assert_eq!(output.status.code(), Some(78), "{}", err(&output));
    assert!(err(&output).contains("GANGWAY_PROVIDER_TENANT_ID"));
}
