//! Microsoft's own client libraries work against the emulator unchanged, over HTTPS and trusting
//! the emulator's CA: MSAL for Python (client credentials, then a Graph read) and the Graph SDK
//! for Python with azure-identity (paging `/users` with its PageIterator, a `/users/delta` round,
//! a `/groups/delta` round with a nested group and members of other kinds, in slices).

use std::path::PathBuf;
use std::process::Command;

use entra_emulator::{EmulatedTenant, Emulator, EmulatorAdmin, Options, RegisteredApp};
use serde_json::{Value, json};

use crate::helpers::*;

/// A TLS emulator whose CA is written to a file, with an app of tenant 0 granted
/// `User.Read.All` and `Group.Read.All` in tenant 1.
struct TlsEmulator {
    emu: Emulator,
    dir: PathBuf,
    ca_file: PathBuf,
    tenants: Vec<EmulatedTenant>,
    app: RegisteredApp,
}

impl TlsEmulator {
    async fn start(name: &str, users: usize, page_size: usize) -> Self {
        let dir =
            std::env::temp_dir().join(format!("entra-emulator-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_file = dir.join("ca.pem");
        let opts = Options {
            tls: true,
            ca_out: Some(ca_file.clone()),
            tenants: 2,
            users,
            groups: 1,
            page_size,
            // The SDK test's notification listener is plain HTTP on loopback.
            notifications_over_http: true,
            ..Options::default()
        };
        let emu = Emulator::start(opts).await.expect("TLS emulator starts");
        assert!(
            emu.base_url().starts_with("https://localhost:"),
            "{}",
            emu.base_url()
        );
        assert_eq!(
            std::fs::read_to_string(&ca_file).unwrap(),
            emu.ca_pem().unwrap()
        );

        // The same CA works for a Rust client, which is how Gangway is configured to trust it.
        let admin = EmulatorAdmin::new(&emu).unwrap();
        let tenants = admin.tenants().await.unwrap();
        let app = admin
            .register_app(&json!({"home_tenant": tenants[0].id, "multi_tenant": true, "redirect_uris": [REDIRECT], "permissions": {"application": ["User.Read.All", "Group.Read.All"]}}))
            .await
            .unwrap();
        admin
            .grant(
                &tenants[1].id,
                &app.client_id,
                &[],
                &["User.Read.All", "Group.Read.All"],
            )
            .await
            .unwrap();
        Self {
            emu,
            dir,
            ca_file,
            tenants,
            app,
        }
    }

    fn base(&self) -> String {
        self.emu.base_url().to_string()
    }

    /// The arguments both scripts take: the app's credentials, the CA and the Graph base.
    fn client_args(&self) -> Vec<String> {
        vec![
            "--client-id".into(),
            self.app.client_id.clone(),
            "--client-secret".into(),
            self.app.client_secret.clone(),
            "--ca-file".into(),
            self.ca_file.display().to_string(),
            "--graph".into(),
            self.base(),
        ]
    }

    /// Runs `tests/<script>` with `args` and parses the JSON line it prints; exit code 3 means
    /// the library is missing, which `install` says how to fix.
    async fn run_python(&self, script: &str, args: Vec<String>, install: &str) -> Value {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join(script);
        let output = tokio::task::spawn_blocking(move || {
            Command::new("python3").arg(&script).args(&args).output()
        })
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("python3 is required for this test and could not be run: {e}"));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_ne!(
            output.status.code(),
            Some(3),
            "a Python library is not installed: run `{install}`.\n{stderr}"
        );
        assert!(
            output.status.success(),
            "failed ({:?}):\n{stderr}",
            output.status
        );
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "bad output {e}: {}",
                String::from_utf8_lossy(&output.stdout)
            )
        })
    }

    async fn stop(self) {
        self.emu.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn msal_python_gets_a_client_credentials_token_and_reads_users() {
    let emu = TlsEmulator::start("msal", 12, 100).await;
    let mut args = vec![
        "--authority".to_string(),
        format!("{}/{}", emu.base(), emu.tenants[1].id),
    ];
    args.extend(emu.client_args());
    let result = emu
        .run_python("msal_client.py", args, "pip install msal")
        .await;
    assert_eq!(result["token_type"], "Bearer");
    assert_eq!(result["users"], 12);
    assert_eq!(result["first"], emu.tenants[1].admin.username);
    emu.stop().await;
}

#[tokio::test]
async fn msal_python_gets_a_token_with_a_certificate() {
    let emu = TlsEmulator::start("msal-cert", 3, 100).await;
    let cert = crate::certificates::Cert::new();
    let admin = EmulatorAdmin::new(&emu.emu).unwrap();
    admin
        .post(
            &format!("/_emulator/apps/{}/certificates", emu.app.client_id),
            &json!({"certificate": cert.pem}),
        )
        .await
        .unwrap();
    let key_file = emu.dir.join("key.pem");
    std::fs::write(&key_file, &cert.pkcs8_pem).unwrap();
    let args = vec![
        "--authority".to_string(),
        format!("{}/{}", emu.base(), emu.tenants[1].id),
        "--client-id".into(),
        emu.app.client_id.clone(),
        "--private-key-file".into(),
        key_file.display().to_string(),
        "--thumbprint".into(),
        cert.thumbprint(),
        "--ca-file".into(),
        emu.ca_file.display().to_string(),
        "--graph".into(),
        emu.base(),
    ];
    let result = emu
        .run_python("msal_client.py", args, "pip install msal")
        .await;
    assert_eq!(result["token_type"], "Bearer");
    assert_eq!(result["users"], 3);
    emu.stop().await;
}

#[tokio::test]
async fn the_python_graph_sdk_pages_users_and_completes_a_delta_round() {
    let emu = TlsEmulator::start("graph-sdk", 23, 10).await;
    let mut args = vec![
        "--authority".to_string(),
        emu.base(),
        "--tenant".into(),
        emu.tenants[1].id.clone(),
        "--page-size".into(),
        "5".into(),
    ];
    args.extend(emu.client_args());
    let result = emu
        .run_python(
            "graph_sdk_client.py",
            args,
            "pip install msgraph-sdk azure-identity",
        )
        .await;
    // A subscription the SDK created, a change notified with its clientState, the renewal
    // and the deletion the SDK parsed.
    let sub = &result["subscription"];
    assert_eq!(sub["resource"], "users", "{result}");
    assert_eq!(sub["change_type"], "updated,deleted", "{result}");
    assert_eq!(sub["notified_client_state"], "sdk-secret", "{result}");
    assert_eq!(sub["notified_change"], "updated", "{result}");
    assert_eq!(sub["renewed"], true, "{result}");
    assert_eq!(sub["left_after_delete"], 0, "{result}");
    assert_eq!(result["users"], 23, "{result}");
    assert_eq!(result["pages"], 5, "23 users at $top=5: {result}");
    assert_eq!(result["first"], emu.tenants[1].admin.username);
    assert_eq!(result["delta_users"], 23, "{result}");
    assert_eq!(
        result["delta_pages"], 3,
        "23 users at page size 10: {result}"
    );
    assert!(
        result["delta_paths"]
            .as_array()
            .unwrap()
            .contains(&json!("/v1.0/users/delta()")),
        "the SDK calls the OData function form: {result}"
    );
    let link = result["delta_link"].as_str().unwrap();
    assert!(
        link.starts_with(&format!("{}/v1.0/users/delta?$deltatoken=", emu.base())),
        "{link}"
    );
    emu.stop().await;
}

#[tokio::test]
async fn the_python_graph_sdk_reads_a_nested_group_and_members_of_every_kind_through_delta() {
    let emu = TlsEmulator::start("graph-sdk-groups", 6, 10).await;
    let admin = EmulatorAdmin::new(&emu.emu).unwrap();
    let tid = emu.tenants[1].id.clone();
    let t = format!("/_emulator/tenants/{tid}");
    let users: Vec<String> = (0..5)
        .map(|i| format!("slice{i}@{}", emu.tenants[1].domain))
        .collect();
    let mut members = Vec::new();
    for upn in &users {
        let made = admin
            .post(&format!("{t}/users"), &json!({"userPrincipalName": upn}))
            .await
            .unwrap();
        members.push(made["id"].clone());
    }
    let nested = admin
        .post(
            &format!("{t}/groups"),
            &json!({"displayName": "Night shift"}),
        )
        .await
        .unwrap();
    members.push(nested["id"].clone());
    let contact = admin
        .post(
            &format!("{t}/objects"),
            &json!({"@odata.type": "#microsoft.graph.orgContact", "displayName": "Auditor"}),
        )
        .await
        .unwrap();
    members.push(contact["id"].clone());
    let parent = admin
        .post(
            &format!("{t}/groups"),
            &json!({"displayName": "Everyone on call", "members": members}),
        )
        .await
        .unwrap();
    // Three members a slice: the parent's seven come on three pages.
    admin
        .post("/_emulator/graph", &json!({"members_per_slice": 3}))
        .await
        .unwrap();
    let mut args = vec![
        "--authority".to_string(),
        emu.base(),
        "--tenant".into(),
        tid,
        "--groups".into(),
    ];
    args.extend(emu.client_args());
    let result = emu
        .run_python(
            "graph_sdk_client.py",
            args,
            "pip install msgraph-sdk azure-identity",
        )
        .await;
    let seen = &result["groups"][parent["id"].as_str().unwrap()];
    assert_eq!(seen["name"], "Everyone on call", "{result}");
    assert_eq!(seen["sightings"], 3, "{result}");
    let kinds = seen["members"].as_object().unwrap();
    assert_eq!(kinds.len(), 7, "{result}");
    assert_eq!(
        kinds[nested["id"].as_str().unwrap()],
        "#microsoft.graph.group"
    );
    assert_eq!(
        kinds[contact["id"].as_str().unwrap()],
        "#microsoft.graph.orgContact"
    );
    assert_eq!(
        kinds
            .values()
            .filter(|k| *k == "#microsoft.graph.user")
            .count(),
        5
    );
    emu.stop().await;
}

/// A client trusting the emulator's CA.
fn trusting(emu: &TlsEmulator) -> reqwest::ClientBuilder {
    let ca = emu.emu.ca_pem().unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
}

/// Signs `login` in to the app through MSAL for Python's authorization code flow on `authority`,
/// driving the emulator's pages over HTTPS as a browser would; the ID token claims MSAL read.
async fn msal_sign_in(
    emu: &TlsEmulator,
    authority: &str,
    login: &entra_emulator::EmulatedLogin,
) -> Value {
    use std::io::{BufRead, BufReader, Write};
    use std::process::Stdio;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("msal_sign_in.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .args([
            "--authority",
            authority,
            "--client-id",
            &emu.app.client_id,
            "--client-secret",
            &emu.app.client_secret,
            "--ca-file",
            &emu.ca_file.display().to_string(),
            "--redirect-uri",
            REDIRECT,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("python3 is required for this test and could not be run: {e}"));
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (first, mut lines) = tokio::task::spawn_blocking(move || {
        let mut lines = stdout.lines();
        (lines.next(), lines)
    })
    .await
    .unwrap();
    let first = first
        .expect("MSAL printed no authorize URL: is it installed? pip install msal")
        .unwrap();
    let auth_uri: Value = serde_json::from_str(&first).unwrap();
    let browser = trusting(emu)
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    let user = (login.username.clone(), login.password.clone());
    let back = consent_flow(
        &browser,
        &emu.base(),
        auth_uri["auth_uri"].as_str().unwrap(),
        &user,
    )
    .await;
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{back}").unwrap();
    drop(stdin);
    let (answer, status) = tokio::task::spawn_blocking(move || {
        let answer = lines.next().map(|l| l.unwrap()).unwrap_or_default();
        (answer, child.wait().unwrap())
    })
    .await
    .unwrap();
    assert!(status.success(), "MSAL failed: {answer}");
    serde_json::from_str::<Value>(&answer).unwrap()["id_token_claims"].clone()
}

#[tokio::test]
async fn msal_python_reads_wids_in_id_tokens_only_when_group_membership_claims_ask_for_them() {
    let emu = TlsEmulator::start("msal-wids", 4, 100).await;
    let authority = format!("{}/{}", emu.base(), emu.tenants[1].id);
    let set = async |value: &str| {
        trusting(&emu)
            .build()
            .unwrap()
            .patch(format!(
                "{}/_emulator/apps/{}",
                emu.base(),
                emu.app.client_id
            ))
            .json(&json!({"group_membership_claims": value}))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
    };

    let claims = msal_sign_in(&emu, &authority, &emu.tenants[1].admin).await;
    assert_eq!(claims["tid"], emu.tenants[1].id.as_str(), "{claims}");
    assert!(
        claims.get("wids").is_none(),
        "no groupMembershipClaims, no wids: {claims}"
    );

    set("DirectoryRole").await;
    let claims = msal_sign_in(&emu, &authority, &emu.tenants[1].admin).await;
    assert_eq!(claims["wids"], json!([GLOBAL_ADMIN]), "{claims}");
    emu.stop().await;
}

#[tokio::test]
async fn msal_python_signs_a_plain_member_in_to_the_multi_tenant_app() {
    let emu = TlsEmulator::start("msal-member", 20, 100).await;
    let tenant = &emu.tenants[1];
    let authority = format!("{}/{}", emu.base(), tenant.id);
    let member = tenant
        .member
        .clone()
        .expect("the tenant has a plain member");
    let claims = msal_sign_in(&emu, &authority, &member).await;
    assert_eq!(claims["oid"], member.id.as_str(), "{claims}");
    assert_eq!(claims["tid"], tenant.id.as_str());
    assert_eq!(claims["preferred_username"], member.username.as_str());
    emu.stop().await;
}

#[tokio::test]
async fn msal_python_signs_an_admin_in_with_the_device_code_flow_as_a_public_client() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let emu = TlsEmulator::start("msal-device", 4, 100).await;
    let tenant = &emu.tenants[0];
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("msal_device_flow.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .args([
            "--authority",
            &format!("{}/{}", emu.base(), tenant.id),
            "--client-id",
            "14d82eec-204b-4c2f-b7e8-296a70dab67e",
            "--scope",
            "https://graph.microsoft.com/Application.ReadWrite.All",
            "--ca-file",
            &emu.ca_file.display().to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("python3 is required for this test and could not be run: {e}"));
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (first, mut lines) = tokio::task::spawn_blocking(move || {
        let mut lines = stdout.lines();
        (lines.next(), lines)
    })
    .await
    .unwrap();
    let first = first
        .expect("MSAL printed no device code: is it installed? pip install msal")
        .unwrap();
    let started: Value = serde_json::from_str(&first).unwrap();
    assert!(started.get("error").is_none(), "{started}");
    assert_eq!(started["interval"], 5, "{started}");
    assert_eq!(
        started["verification_uri"],
        format!("{}/devicelogin", emu.base())
    );

    // The admin's part, in a browser elsewhere, while MSAL polls.
    let browser = trusting(&emu)
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    let admin = (tenant.admin.username.clone(), tenant.admin.password.clone());
    let (status, html) = device_sign_in(
        &browser,
        &emu.base(),
        started["user_code"].as_str().unwrap(),
        &admin,
        "accept",
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{html}");

    let (answer, status) = tokio::task::spawn_blocking(move || {
        let answer = lines.next().map(|l| l.unwrap()).unwrap_or_default();
        (answer, child.wait().unwrap())
    })
    .await
    .unwrap();
    assert!(status.success(), "MSAL failed: {answer}");
    let result: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(result["token_type"], "Bearer", "{result}");
    assert!(
        result["scope"]
            .as_str()
            .unwrap()
            .contains("Application.ReadWrite.All"),
        "{result}"
    );
    assert_eq!(result["id_token_claims"]["tid"], tenant.id.as_str());
    assert_eq!(
        result["id_token_claims"]["aud"],
        "14d82eec-204b-4c2f-b7e8-296a70dab67e"
    );
    emu.stop().await;
}
