//! The `gangway` command as scripts use it: output, JSON, exit codes, configuration errors.

use std::process::Output;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::helpers::{TestApp, location};

/// The `gangway` binary configured for `app`'s database, emulator and mail catcher.
pub fn gangway(app: &TestApp) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gangway"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &app.database_url)
        .env("GANGWAY_PUBLIC_URL", &app.address)
        .env("GANGWAY_AUTHORITY", app.emulator.base_url())
        .env("GANGWAY_GRAPH_URL", app.emulator.base_url())
        .env("GANGWAY_ENCRYPTION_KEY", &app.key_b64)
        .env("GANGWAY_SMTP_URL", app.mail.url())
        .env("RUST_LOG", "warn");
    // As the portal was started: a first run has no app in its environment.
    if let (Some(id), Some(secret)) = (&app.state.cfg.client_id, &app.state.cfg.client_secret) {
        command
            .env("GANGWAY_CLIENT_ID", id)
            .env("GANGWAY_CLIENT_SECRET", secret.expose());
    }
    command
}

/// Runs `command` with `args` to the end.
pub async fn run(mut command: Command, args: &[&str]) -> Output {
    command
        .args(args)
        .output()
        .await
        .expect("the gangway binary runs")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn invite_create_prints_id_link_and_expiry_and_sends_the_mail() {
    let app = TestApp::spawn().await;
    let args = [
        "invite",
        "create",
        "--customer",
        "Fabrikam",
        "--email",
        "admin@fabrikam.example",
        "--mode",
        "customer-app",
        "--expires-in",
        "48h",
        "--scope-group",
        "Sales",
        "--scope-group",
        "Field Team",
        "--json",
    ];
    let output = run(gangway(&app), &args).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let created: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(created["sync_scope"], "groups");
    assert_eq!(
        created["scope_groups"],
        serde_json::json!(["Sales", "Field Team"])
    );
    let link = created["link"].as_str().unwrap();
    assert!(
        link.starts_with(&format!("{}/authenticate?token=", app.address)),
        "{link}"
    );
    assert_eq!(created["mode"], "customer_app");
    assert_eq!(created["status"], "pending");
    let expires = time::OffsetDateTime::parse(
        created["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let hours = (expires - time::OffsetDateTime::now_utc()).whole_hours();
    assert!((47..=48).contains(&hours), "expires in {hours}h");

    // The mail went out during the command, carrying the same link.
    let messages = app.mail.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].link().as_str(), link);
    // The database holds only the hash.
    let token = link.split("token=").nth(1).unwrap();
    let hits: i64 = sqlx::query_scalar(
        "select count(*) from invitations where token_sha256 = sha256($1::bytea)",
    )
    .bind(token.as_bytes())
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(hits, 1);

    // Text output names the same three facts.
    let output = run(
        gangway(&app),
        &[
            "invite",
            "create",
            "--customer",
            "Tailspin",
            "--email",
            "it@tailspin.example",
            "--mode",
            "delegated",
        ],
    )
    .await;
    let text = stdout(&output);
    assert!(
        text.contains("id:") && text.contains("link:") && text.contains("expires:"),
        "{text}"
    );
}

#[tokio::test]
async fn bad_input_exits_2_and_says_what_is_wrong() {
    let app = TestApp::spawn().await;
    for (args, expected) in [
        (
            vec!["--email", "not-an-email", "--mode", "delegated"],
            "not an email address",
        ),
        (
            vec!["--email", "a@b.example", "--mode", "sideways"],
            "mode must be delegated, application or customer-app",
        ),
        (
            vec![
                "--email",
                "a@b.example",
                "--mode",
                "delegated",
                "--expires-in",
                "90d",
            ],
            "between 1h and 30d",
        ),
        (
            vec![
                "--email",
                "a@b.example",
                "--mode",
                "delegated",
                "--tenant-domain",
                "not a domain",
            ],
            "not a domain name",
        ),
        (
            vec![
                "--email",
                "a@b.example",
                "--mode",
                "delegated",
                "--scope",
                "sideways",
            ],
            "is not a sync scope",
        ),
        (
            vec![
                "--email",
                "a@b.example",
                "--mode",
                "delegated",
                "--scope",
                "app-assignments",
                "--scope-group",
                "Sales",
            ],
            "--scope-group goes with --scope groups",
        ),
    ] {
        let mut all = vec!["invite", "create", "--customer", "X"];
        all.extend(args);
        let output = run(gangway(&app), &all).await;
        assert_eq!(output.status.code(), Some(2), "{all:?}");
        assert!(
            stderr(&output).contains(expected),
            "{all:?}: {}",
            stderr(&output)
        );
    }
    let count: i64 = sqlx::query_scalar("select count(*) from invitations")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 0, "nothing is created from bad input");

    let output = run(
        gangway(&app),
        &["invite", "revoke", "8d1c7f8e-0000-4000-8000-000000000000"],
    )
    .await;
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("no such invitation"));
}

#[tokio::test]
async fn missing_or_malformed_configuration_exits_78_naming_each_variable() {
    let app = TestApp::spawn().await;
    let mut bare = gangway(&app);
    bare.env_remove("GANGWAY_PUBLIC_URL")
        .env_remove("GANGWAY_CLIENT_ID")
        .env("GANGWAY_ENCRYPTION_KEY", "short");
    let output = run(bare, &["invite", "list"]).await;
    assert_eq!(output.status.code(), Some(78));
    let message = stderr(&output);
    for expected in [
        "GANGWAY_PUBLIC_URL: is not set",
        "GANGWAY_CLIENT_SECRET: is a secret of the app GANGWAY_CLIENT_ID names",
        "GANGWAY_ENCRYPTION_KEY: must be 32 random bytes",
    ] {
        assert!(
            message.contains(expected),
            "missing {expected:?} in:\n{message}"
        );
    }
    assert!(!message.contains("panicked"));

    let mut insecure = gangway(&app);
    insecure.env("GANGWAY_PUBLIC_URL", "http://portal.example.com");
    let output = run(insecure, &["tenant", "list"]).await;
    assert_eq!(output.status.code(), Some(78));
    assert!(stderr(&output).contains("must be https://"));
}

#[tokio::test]
async fn list_resend_revoke_and_tenants_work_for_scripts() {
    let app = TestApp::spawn().await;
    let created = run(
        gangway(&app),
        &[
            "invite",
            "create",
            "--customer",
            "Northwind",
            "--email",
            "it@northwind.example",
            "--mode",
            "application",
            "--json",
        ],
    )
    .await;
    let created: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    let id = created["id"].as_str().unwrap();

    let listed = run(
        gangway(&app),
        &["invite", "list", "--status", "pending", "--json"],
    )
    .await;
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["customer_name"], "Northwind");

    let resent = run(gangway(&app), &["invite", "resend", id, "--json"]).await;
    assert!(resent.status.success(), "{}", stderr(&resent));
    let resent: serde_json::Value = serde_json::from_slice(&resent.stdout).unwrap();
    assert_ne!(resent["link"], created["link"]);
    // The old link is dead, the new one works.
    let browser = crate::helpers::browser();
    let old = browser
        .get(created["link"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 404);
    let new = browser
        .get(resent["link"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(location(new).await, "/invitation");

    let revoked = run(gangway(&app), &["invite", "revoke", id]).await;
    assert!(revoked.status.success());
    let again = run(gangway(&app), &["invite", "revoke", id]).await;
    assert_eq!(again.status.code(), Some(2), "revoking twice is refused");
    let listed = run(gangway(&app), &["invite", "list", "--status", "revoked"]).await;
    assert!(stdout(&listed).contains("Northwind"));
    let bad_status = run(gangway(&app), &["invite", "list", "--status", "lost"]).await;
    assert_eq!(bad_status.status.code(), Some(2));

    let tenants = run(gangway(&app), &["tenant", "list", "--json"]).await;
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&tenants.stdout).unwrap(),
        serde_json::json!([])
    );
}

#[tokio::test]
async fn operator_add_reads_the_password_from_stdin_and_that_operator_can_sign_in() {
    let app = TestApp::spawn().await;
    let mut command = gangway(&app);
    command.args([
        "operator",
        "add",
        "--email",
        "ops@provider.test",
        "--role",
        "viewer",
        "--password-stdin",
    ]);
    command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a long enough passphrase\n")
        .await
        .unwrap();
    let output = child.wait_with_output().await.unwrap();
    assert!(output.status.success(), "{}", stderr(&output));

    let response = app
        .post_form(
            gangway::web::paths::LOGIN,
            &[
                ("email", "ops@provider.test"),
                ("password", "a long enough passphrase"),
            ],
        )
        .await;
    assert!(response.status().is_redirection());

    let mut short = gangway(&app);
    short
        .args([
            "operator",
            "add",
            "--email",
            "x@provider.test",
            "--password-stdin",
        ])
        .stdin(std::process::Stdio::null());
    let output = short.output().await.unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("at least 12 characters"));
}

#[tokio::test]
async fn operator_list_set_role_and_remove_manage_operators_but_keep_one_admin() {
    use gangway::operators::Role;

    let app = TestApp::spawn().await;
    let admin = app.sign_in(Role::Admin).await;
    app.add_operator("viewer@provider.test", Role::Viewer).await;

    let json: serde_json::Value = serde_json::from_slice(
        &run(gangway(&app), &["operator", "list", "--json"])
            .await
            .stdout,
    )
    .unwrap();
    let listed: Vec<(&str, &str, i64)> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["email"].as_str().unwrap(),
                o["role"].as_str().unwrap(),
                o["sessions"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            (admin.as_str(), "admin", 1),
            ("viewer@provider.test", "viewer", 0)
        ]
    );
    assert!(json[0]["last_login_at"].is_string() && json[1]["last_login_at"].is_null());
    let text = stdout(&run(gangway(&app), &["operator", "list"]).await);
    assert!(
        text.contains("never") && text.contains("2 operator(s)"),
        "{text}"
    );

    // The last admin stays.
    for args in [
        &["operator", "set-role", admin.as_str(), "viewer"][..],
        &["operator", "remove", admin.as_str()][..],
    ] {
        let output = run(gangway(&app), args).await;
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&output).contains("last admin"),
            "{}",
            stderr(&output)
        );
    }
    let output = run(
        gangway(&app),
        &["operator", "remove", "nobody@provider.test"],
    )
    .await;
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("no such operator"));
    let output = run(
        gangway(&app),
        &["operator", "set-role", admin.as_str(), "owner"],
    )
    .await;
    assert_eq!(output.status.code(), Some(2));

    // Promote the viewer, then demote the first admin: signed out at once; then remove them.
    let output = run(
        gangway(&app),
        &["operator", "set-role", "viewer@provider.test", "admin"],
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("is now admin"));
    let output = run(
        gangway(&app),
        &["operator", "set-role", admin.as_str(), "viewer"],
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        location(app.get(gangway::web::paths::INVITATIONS).await)
            .await
            .starts_with(gangway::web::paths::LOGIN)
    );
    let output = run(gangway(&app), &["operator", "remove", admin.as_str()]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("removed"));
    let actions: Vec<(String, String)> = sqlx::query_as(
        "select actor, action from audit_events where action in
         ('operator.role_changed', 'operator.removed') order by id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    let cli = |action: &str| ("cli".to_owned(), action.to_owned());
    assert_eq!(
        actions,
        [
            cli("operator.role_changed"),
            cli("operator.role_changed"),
            cli("operator.removed")
        ]
    );
}

#[tokio::test]
async fn help_documents_every_command_and_the_exit_codes() {
    let output = Command::new(env!("CARGO_BIN_EXE_gangway"))
        .arg("--help")
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "serve",
        "migrate",
        "demo",
        "operator",
        "invite",
        "tenant",
        "Exit codes",
        "78",
    ] {
        assert!(help.contains(expected), "--help lacks {expected}");
    }
    let output = Command::new(env!("CARGO_BIN_EXE_gangway"))
        .args(["invite", "create", "--help"])
        .output()
        .await
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "--customer",
        "--email",
        "--mode",
        "--tenant-domain",
        "--expires-in",
        "--json",
    ] {
        assert!(
            help.contains(expected),
            "invite create --help lacks {expected}"
        );
    }
}

/// Every column naming the key a value is sealed with (`…key_id`, text) is one `gangway rekey`
/// re-seals: a sealed column added later and forgotten there would be lost with the old key.
#[tokio::test]
async fn every_sealed_column_is_resealed_by_rekey() {
    let app = TestApp::spawn().await;
    let columns: Vec<(String, String)> = sqlx::query_as(
        "select table_name::text, column_name::text from information_schema.columns
         where table_schema = 'public' and column_name like '%key_id' and data_type = 'text'
         order by 1, 2",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert!(columns.len() >= 10, "{columns:?}");
    let rekey = include_str!("../../src/rekey.rs");
    for (table, column) in columns {
        // Each statement is `update {table} set {ciphertext} = $2, {key id} = $3 where …`.
        let resealed = rekey
            .split(&format!("update {table} set "))
            .skip(1)
            .any(|rest| {
                rest.split("where")
                    .next()
                    .is_some_and(|set| set.contains(&format!(", {column} = $3")))
            });
        assert!(resealed, "gangway rekey does not re-seal {table}.{column}");
    }
}

#[tokio::test]
async fn rekey_moves_every_sealed_secret_to_the_new_key_or_nothing() {
    use gangway::crypto::EncryptionKey;
    use gangway::tenants;

    let app = TestApp::spawn().await;
    // One tenant credential and one queued email, sealed with the old key (the app's): the
    // consented invitation's mail is dropped with its used link.
    let issued = app.invite("delegated", "admin@contoso.example", None).await;
    let consent = crate::helpers::consent(uuid::Uuid::new_v4());
    tenants::record_consent(
        &app.db,
        &app.state.cfg.keys,
        issued.invitation.id,
        &consent,
        &gangway::audit::Actor::System,
    )
    .await
    .unwrap();
    app.invite("application", "it@fabrikam.example", None).await;
    // And one signed-in operator's session.
    app.sign_in(gangway::operators::Role::Admin).await;
    // And a setup sign-in still waiting for its administrator: its device code is sealed.
    sqlx::query(
        "insert into setup_sign_ins (id, tenant_id, device_code, key_id, user_code, verification_uri,
                                     interval_secs, expires_at)
         values ($1, $1, $2, $3, 'ABCD-EFGH', 'https://microsoft.com/devicelogin', 5, now() + interval '15 minutes')",
    )
    .bind(uuid::Uuid::new_v4())
    .bind(app.state.cfg.keys.seal(b"the-device-code"))
    .bind(app.state.cfg.keys.id())
    .execute(&app.db)
    .await
    .unwrap();

    let new_b64 = EncryptionKey::generate_base64();
    let new = EncryptionKey::from_base64(&new_b64).unwrap();
    let mut rotated = gangway(&app);
    rotated
        .env("GANGWAY_ENCRYPTION_KEY", &new_b64)
        .env("GANGWAY_PREVIOUS_ENCRYPTION_KEYS", &app.key_b64);
    let output = run(rotated, &["rekey"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains(
            ": 1 tenant credential(s), 1 queued email(s), 1 session(s), 1 secret setting(s)"
        ),
        "{}",
        stdout(&output)
    );
    let (key_id, sealed): (String, Vec<u8>) =
        sqlx::query_as("select credential_key_id, credential_ciphertext from tenants")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(key_id, new.id());
    assert_eq!(new.open(&key_id, &sealed).unwrap(), b"the-refresh-token");
    let (key_id, sealed): (String, Vec<u8>) =
        sqlx::query_as("select key_id, ciphertext from settings where key = 'client_secret'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(
        new.open(&key_id, &sealed).unwrap(),
        app.app.client_secret.as_bytes(),
        "the provider's client secret moves too"
    );
    let (key_id, sealed): (String, Vec<u8>) =
        sqlx::query_as("select key_id, device_code from setup_sign_ins")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(new.open(&key_id, &sealed).unwrap(), b"the-device-code");
    assert!(stdout(&output).contains(", 1 setup device code(s), "));
    for table in ["outbox", "sessions"] {
        let other_keys: i64 = sqlx::query_scalar(&format!(
            "select count(*) from {table} where payload_key_id <> $1"
        ))
        .bind(new.id())
        .fetch_one(&app.db)
        .await
        .unwrap();
        assert_eq!(other_keys, 0, "{table}");
    }

    // A key that cannot open what is stored changes nothing and says which key to add.
    let mut wrong = gangway(&app);
    wrong.env("GANGWAY_ENCRYPTION_KEY", EncryptionKey::generate_base64());
    let output = run(wrong, &["rekey"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("GANGWAY_PREVIOUS_ENCRYPTION_KEYS"),
        "{}",
        stderr(&output)
    );
    let still: String = sqlx::query_scalar("select credential_key_id from tenants")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(still, new.id(), "nothing moved");
}

#[tokio::test]
async fn a_first_run_needs_no_app_in_the_environment_and_the_doctor_says_to_run_the_setup() {
    let app = TestApp::spawn_with(crate::helpers::Setup {
        empty_provider: true,
        ..crate::helpers::Setup::default()
    })
    .await;
    // `gangway(&app)` passes no GANGWAY_CLIENT_ID or GANGWAY_CLIENT_SECRET here.
    let output = run(gangway(&app), &["doctor"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let report = stdout(&output);
    assert!(report.contains("Not set up"), "{report}");
    assert!(report.contains("gangway setup --tenant"), "{report}");
    let output = run(gangway(&app), &["tenant", "list"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
}

#[tokio::test]
async fn serve_answers_health_and_stops_cleanly_on_sigterm() {
    let app = TestApp::spawn().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut serve = gangway(&app);
    serve
        .env("GANGWAY_LISTEN", format!("127.0.0.1:{port}"))
        .arg("serve")
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = serve.spawn().unwrap();
    let health = format!("http://127.0.0.1:{port}/health");
    let mut up = false;
    for _ in 0..100 {
        if let Ok(response) = reqwest::get(&health).await {
            assert_eq!(response.text().await.unwrap(), "ok");
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(up, "gangway serve never answered /health");

    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait())
        .await
        .expect("serve stops within 10 s of SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0), "a clean exit, not death by signal");
}

#[tokio::test]
async fn tenant_list_shows_connected_tenants_as_text_and_json() {
    let app = TestApp::spawn().await;
    let issued = app.invite("delegated", "admin@contoso.example", None).await;
    let entra_id = uuid::Uuid::new_v4();
    gangway::tenants::record_consent(
        &app.db,
        &app.state.cfg.keys,
        issued.invitation.id,
        &crate::helpers::consent(entra_id),
        &gangway::audit::Actor::System,
    )
    .await
    .unwrap();

    let text = stdout(&run(gangway(&app), &["tenant", "list"]).await);
    assert!(
        text.contains(&entra_id.to_string()) && text.contains("Contoso"),
        "{text}"
    );
    assert!(
        text.contains("delegated") && text.contains("1 tenant(s)"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_slice(
        &run(gangway(&app), &["tenant", "list", "--json"])
            .await
            .stdout,
    )
    .unwrap();
    assert_eq!(json.as_array().unwrap().len(), 1);
    assert_eq!(json[0]["entra_tenant_id"], entra_id.to_string());
    assert_eq!(
        json[0]["verified_domains"],
        serde_json::json!(["contoso.example"])
    );
    assert!(
        !json.to_string().contains("the-refresh-token"),
        "credentials never printed"
    );
}

#[tokio::test]
async fn migrate_prepares_an_empty_database_and_is_idempotent() {
    let app = TestApp::spawn().await;
    let mut url = url::Url::parse(&app.database_url).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    url.set_path(&format!(
        "gangway_test_{now}_{}",
        uuid::Uuid::new_v4().simple()
    ));
    gangway::db::create_if_missing(url.as_str()).await.unwrap();

    for _ in 0..2 {
        let mut migrate = gangway(&app);
        migrate.env("DATABASE_URL", url.as_str());
        let output = run(migrate, &["migrate"]).await;
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(stdout(&output).contains("database is up to date"));
    }
    let db = gangway::db::connect(url.as_str(), gangway::db::DEFAULT_POOL_SIZE)
        .await
        .unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "select table_schema || '.' || table_name from information_schema.tables
         where table_name in ('invitations', 'tenants', 'audit_events', 'outbox', 'operators', 'sessions')
         order by 1",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(
        tables,
        [
            "public.audit_events",
            "public.invitations",
            "public.operators",
            "public.outbox",
            "public.sessions",
            "public.tenants"
        ]
    );

    db.close().await;
    gangway::db::drop_scratch(url.as_str()).await.unwrap();

    let mut unreachable = gangway(&app);
    unreachable.env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/nowhere");
    let output = run(unreachable, &["migrate"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("cannot connect to DATABASE_URL"),
        "{}",
        stderr(&output)
    );
}

/// A free loopback port.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A directory for one demo (`--dir`).
fn demo_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("gangway-demo-{}", uuid::Uuid::new_v4()))
}

/// `gangway demo --dir DIR` with `args` and `env` (and PATH only): the process and what it
/// printed up to "Ctrl-C stops".
async fn start_demo(
    dir: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;

    let mut demo = Command::new(env!("CARGO_BIN_EXE_gangway"));
    demo.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .args(["demo", "--users", "5", "--dir"])
        .arg(dir)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let mut child = demo.spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    tokio::time::timeout(std::time::Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            printed.push_str(&line);
            printed.push('\n');
            if line.contains("Ctrl-C stops") {
                break;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the demo did not announce itself in time:\n{printed}"));
    assert!(
        printed.contains("Ctrl-C stops"),
        "the demo stopped:\n{printed}"
    );
    (child, printed)
}

/// Stops the demo as a service manager would and expects it to exit cleanly.
async fn stop_demo(mut child: tokio::process::Child) {
    let pid = child.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait())
        .await
        .expect("the demo stops on SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

/// `gangway ARGS` in a shell that read the demo's `demo.env` as the README says.
async fn cli_with_demo_env(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new("sh")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .args(["-c", r#"set -a; . "$0"; set +a; exec "$@""#])
        .arg(dir.join("demo.env"))
        .arg(env!("CARGO_BIN_EXE_gangway"))
        .args(args)
        .output()
        .await
        .unwrap()
}

const DEMO_INVITE: [&str; 9] = [
    "invite",
    "create",
    "--customer",
    "Fabrikam",
    "--email",
    "admin@fabrikam.example",
    "--mode",
    "delegated",
    "--json",
];

#[tokio::test]
async fn demo_creates_its_database_and_prints_logins_that_work() {
    let app = TestApp::spawn().await;
    // A database that does not exist yet: the demo creates it.
    let mut url = url::Url::parse(&app.database_url).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    url.set_path(&format!(
        "gangway_test_{now}_{}",
        uuid::Uuid::new_v4().simple()
    ));
    let (portal, emulator) = (free_port(), free_port());
    let dir = demo_dir();
    let (child, printed) = start_demo(
        &dir,
        &[
            "--database-url",
            url.as_str(),
            "--listen",
            &format!("127.0.0.1:{portal}"),
            "--emulator-listen",
            &format!("127.0.0.1:{emulator}"),
        ],
        &[],
    )
    .await;

    let console = format!("http://127.0.0.1:{portal}/console");
    assert!(printed.contains(&console), "{printed}");
    assert_eq!(printed.matches("Global admin").count(), 2, "{printed}");
    assert!(
        printed.contains("Plain member") && printed.contains("Client ID"),
        "{printed}"
    );
    let login = printed
        .lines()
        .find(|l| l.contains("Operator login"))
        .unwrap();
    let (email, password) = login
        .split_once("Operator login")
        .unwrap()
        .1
        .trim()
        .split_once(" / ")
        .unwrap();

    // The printed operator login signs in.
    let browser = crate::helpers::browser();
    let page = browser
        .get(format!("{console}/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = crate::helpers::input_value(&page, "csrf_token").unwrap();
    let form = [
        ("email", email),
        ("password", password),
        ("csrf_token", &csrf),
    ];
    let response = browser
        .post(format!("{console}/login"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(location(response).await, "/console/invitations");
    // The printed customer admins are real users at the emulator.
    let tenants: serde_json::Value =
        reqwest::get(format!("http://127.0.0.1:{emulator}/_emulator/tenants"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    for tenant in tenants.as_array().unwrap().iter().skip(1) {
        let admin = tenant["admin"]["username"].as_str().unwrap();
        assert!(printed.contains(admin), "{admin} missing from:\n{printed}");
    }

    stop_demo(child).await;
    gangway::db::drop_scratch(url.as_str()).await.unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn the_cli_reaches_the_demo_through_the_environment_file_it_names() {
    use std::os::unix::fs::PermissionsExt;

    let database = crate::helpers::fresh_database().await;
    let portal = free_port();
    let dir = demo_dir();
    let (child, printed) = start_demo(
        &dir,
        &[
            "--database-url",
            &database.url,
            "--listen",
            &format!("127.0.0.1:{portal}"),
            "--emulator-listen",
            "127.0.0.1:0",
        ],
        &[],
    )
    .await;
    let file = dir.join("demo.env");
    assert!(
        printed.contains(&format!("set -a; . {}; set +a", file.display())),
        "{printed}"
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "it holds the demo's key and secret");

    let output = cli_with_demo_env(&dir, &DEMO_INVITE).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let created: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let link = created["link"].as_str().unwrap();
    assert!(
        link.starts_with(&format!("http://127.0.0.1:{portal}/authenticate?token=")),
        "{created}"
    );
    // The invitation is the demo's: its link opens the wizard on the running portal.
    let opened = crate::helpers::browser().get(link).send().await.unwrap();
    assert!(opened.status().is_redirection(), "{}", opened.status());

    stop_demo(child).await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn demo_without_a_postgres_server_starts_a_private_one_and_stops_it_on_exit() {
    let closed = free_port().to_string();
    let portal = free_port();
    let listen = format!("127.0.0.1:{portal}");
    let args = ["--listen", &listen, "--emulator-listen", "127.0.0.1:0"];
    let dir = demo_dir();
    let (child, printed) = start_demo(&dir, &args, &[("PGPORT", &closed)]).await;
    let data = dir.join("postgres");
    assert!(
        printed.contains(&format!(
            "No PostgreSQL answers on 127.0.0.1:{closed}: starting a private one in {}",
            data.display()
        )),
        "{printed}"
    );
    let ready = reqwest::get(format!("http://127.0.0.1:{portal}/readyz"))
        .await
        .unwrap();
    assert_eq!(ready.status(), reqwest::StatusCode::OK);
    let env = std::fs::read_to_string(dir.join("demo.env")).unwrap();
    let server = env
        .lines()
        .find_map(|l| l.strip_prefix("DATABASE_URL='"))
        .and_then(|url| url.strip_suffix('\''))
        .map(|url| url::Url::parse(url).unwrap())
        .unwrap();
    assert_eq!(server.path(), "/gangway_demo", "{env}");
    let port = server.port().unwrap();
    assert_ne!(port.to_string(), closed);
    // The CLI works against it too.
    let output = cli_with_demo_env(&dir, &DEMO_INVITE).await;
    assert!(output.status.success(), "{}", stderr(&output));

    stop_demo(child).await;
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "the private server still answers after the demo stopped"
    );
    assert!(!data.join("postmaster.pid").exists());

    // A second start reuses the data directory: the invitation made above is still there.
    let (child, _) = start_demo(&dir, &args, &[("PGPORT", &closed)]).await;
    let output = cli_with_demo_env(&dir, &["invite", "list", "--json"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("admin@fabrikam.example"));
    stop_demo(child).await;
    std::fs::remove_dir_all(dir).unwrap();
}
#[tokio::test]
async fn invite_create_picks_an_existing_customer_whatever_the_case_and_tenant_list_names_it() {
    let app = TestApp::spawn().await;
    let first = app.invite("delegated", "admin@contoso.example", None).await;
    let output = run(
        gangway(&app),
        &[
            "invite",
            "create",
            "--customer",
            "  CONTOSO ltd ",
            "--email",
            "it@contoso.example",
            "--mode",
            "application",
            "--json",
        ],
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let customers: Vec<(uuid::Uuid, String)> =
        sqlx::query_as("select id, name::text from customers")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(customers.len(), 1, "{customers:?}");
    assert_eq!(
        customers[0].1, "Contoso Ltd",
        "the existing spelling is kept"
    );
    let owners: Vec<uuid::Uuid> =
        sqlx::query_scalar("select distinct customer_id from invitations")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(owners, [customers[0].0]);

    gangway::tenants::record_consent(
        &app.db,
        &app.state.cfg.keys,
        first.invitation.id,
        &crate::helpers::consent(uuid::Uuid::new_v4()),
        &gangway::audit::Actor::System,
    )
    .await
    .unwrap();
    let text = stdout(&run(gangway(&app), &["tenant", "list"]).await);
    assert!(
        text.contains("CUSTOMER") && text.contains("Contoso Ltd"),
        "{text}"
    );
}

#[tokio::test]
async fn the_doctor_finds_nothing_failing_in_a_fresh_demo() {
    let database = crate::helpers::fresh_database().await;
    let portal = free_port();
    let dir = demo_dir();
    let (child, _) = start_demo(
        &dir,
        &[
            "--database-url",
            &database.url,
            "--listen",
            &format!("127.0.0.1:{portal}"),
            "--emulator-listen",
            "127.0.0.1:0",
        ],
        &[],
    )
    .await;

    let output = cli_with_demo_env(&dir, &["doctor", "--json"]).await;
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("no report ({e}): {}", stderr(&output)));
    let failing: Vec<&serde_json::Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .collect();
    assert!(failing.is_empty(), "{failing:#?}");
    // What the demo can not meet says why in words.
    for check in report["checks"].as_array().unwrap() {
        if check["status"] != "pass" {
            assert!(
                !check["detail"].as_str().unwrap_or_default().is_empty(),
                "{check:#}"
            );
        }
    }

    // Once an application signs users in, what sign-in needs of the registration is there.
    let db = gangway::db::connect(&database.url, 1).await.unwrap();
    gangway::signin::applications::register(
        &db,
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
        &gangway::audit::Actor::Cli,
    )
    .await
    .unwrap();
    let output = cli_with_demo_env(&dir, &["doctor", "--json"]).await;
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("no report ({e}): {}", stderr(&output)));
    for id in ["signin_redirect_uri", "signin_permissions"] {
        let check = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no {id} check: {report:#}"));
        assert_eq!(check["status"], "pass", "{check:#}");
    }
    db.close().await;

    stop_demo(child).await;
    std::fs::remove_dir_all(dir).unwrap();
}

/// `gangway bench sync` on the Postgres server the tests use.
async fn bench_sync(args: &[&str]) -> Output {
    let server = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    Command::new(env!("CARGO_BIN_EXE_gangway"))
        .env("DATABASE_URL", server)
        .env("RUST_LOG", "warn")
        .args(["bench", "sync"])
        .args(args)
        .output()
        .await
        .expect("the gangway binary runs")
}

#[tokio::test]
async fn bench_sync_counts_each_phases_budget_round_trips_and_refuses_a_pool_past_the_server() {
    let output = bench_sync(&["--users", "5", "--groups", "1", "--tenants", "2", "--json"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    // Each phase reads Graph, so each draws on the budget in Postgres at least once: what the
    // serial phase took and did not spend does not pay for the next ones.
    for phase in ["serial", "full", "incremental", "idle"] {
        let trips = report[phase]["budget_round_trips"].as_u64().unwrap();
        assert!(trips > 0, "{phase}: {}", report[phase]);
        // And says where the machine's CPU time went (Linux's /proc gives it here).
        for part in ["machine", "engine", "emulator", "rest", "busy_share"] {
            let spent = report[phase]["cpu"][part].as_f64();
            assert!(
                spent.is_some_and(|s| s >= 0.0),
                "{phase}.cpu.{part}: {}",
                report[phase]
            );
        }
    }

    let output = bench_sync(&[
        "--users",
        "1",
        "--groups",
        "1",
        "--tenants",
        "1000",
        "--concurrency",
        "1000",
    ])
    .await;
    assert!(!output.status.success());
    let said = stderr(&output);
    assert!(
        said.contains("a pool of 1010 connections for 1000 sync workers does not fit")
            && said.contains("--concurrency"),
        "{said}"
    );
}

#[tokio::test]
async fn bench_sync_peer_copies_what_the_emulator_holds_and_refuses_several_tenants() {
    let output = bench_sync(&["--users", "1", "--groups", "1", "--tenants", "2", "--peer"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("--peer compares one tenant's full sync"),
        "{}",
        stderr(&output)
    );

    let output = bench_sync(&[
        "--users",
        "50",
        "--groups",
        "2",
        "--changes",
        "10",
        "--peer",
        "--json",
    ])
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    if let Some(why) = report["peer_skipped"].as_str() {
        eprintln!("skipped: the peer's Python libraries are missing: {why}");
        return;
    }
    // The emulator holds 50 users (its administrator among them), 2 groups and, by default,
    // as many memberships as users; the peer's tables hold as many, Gangway's copy too.
    let peer = &report["peer"];
    assert_eq!(peer["users"], 50, "{report:#}");
    assert_eq!(peer["groups"], 2, "{report:#}");
    assert_eq!(peer["memberships"], 50, "{report:#}");
    assert_eq!(report["full"]["objects"], 52, "{report:#}");
    assert_eq!(report["full"]["memberships"], 50, "{report:#}");
    // One users page and one groups page at least, and a ratio from both timings.
    assert!(peer["pages"].as_i64().unwrap() >= 2, "{report:#}");
    assert!(peer["seconds"].as_f64().unwrap() > 0.0, "{report:#}");
    assert!(
        peer["process_seconds"].as_f64().unwrap() >= peer["seconds"].as_f64().unwrap(),
        "{report:#}"
    );
    assert!(report["peer_to_full"].as_f64().unwrap() > 0.0, "{report:#}");
}
