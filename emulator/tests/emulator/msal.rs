//! Microsoft's own client library works against the emulator unchanged: MSAL for Python over
//! HTTPS, trusting the emulator's CA, client credentials, then a Graph read.

use std::path::PathBuf;
use std::process::Command;

use entra_emulator::{EmulatorAdmin, Options};
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn msal_python_gets_a_client_credentials_token_and_reads_users() {
    let dir = std::env::temp_dir().join(format!("entra-emulator-msal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("ca.pem");
    let opts = Options {
        tls: true,
        ca_out: Some(ca_file.clone()),
        tenants: 2,
        users: 12,
        groups: 1,
        ..Options::default()
    };
    let emu = entra_emulator::Emulator::start(opts)
        .await
        .expect("TLS emulator starts");
    let base = emu.base_url().to_string();
    assert!(base.starts_with("https://localhost:"), "{base}");
    assert_eq!(
        std::fs::read_to_string(&ca_file).unwrap(),
        emu.ca_pem().unwrap()
    );

    // The same CA works for a Rust client, which is how Gangway is configured to trust it.
    let admin = EmulatorAdmin::new(&emu).unwrap();
    let tenants = admin.tenants().await.unwrap();
    let tid = tenants[1].id.clone();
    let app = admin
        .register_app(&serde_json::json!({"home_tenant": tenants[0].id, "multi_tenant": true, "redirect_uris": [REDIRECT], "permissions": {"application": ["User.Read.All"]}}))
        .await
        .unwrap();
    admin
        .grant(&tid, &app.client_id, &[], &["User.Read.All"])
        .await
        .unwrap();

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/msal_client.py");
    let (client_id, secret) = (app.client_id, app.client_secret);
    let args = [
        "--authority".to_string(),
        format!("{base}/{tid}"),
        "--client-id".into(),
        client_id,
        "--client-secret".into(),
        secret,
        "--ca-file".into(),
        ca_file.display().to_string(),
        "--graph".into(),
        base.clone(),
    ];
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3").arg(&script).args(&args).output()
    })
    .await
    .unwrap();
    let output = output
        .unwrap_or_else(|e| panic!("python3 is required for this test and could not be run: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(
        output.status.code(),
        Some(3),
        "MSAL for Python is not installed: run `pip install msal`.\n{stderr}"
    );
    assert!(
        output.status.success(),
        "msal_client.py failed ({:?}):\n{stderr}",
        output.status
    );
    let result: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "bad output {e}: {}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    assert_eq!(result["token_type"], "Bearer");
    assert_eq!(result["users"], 12);
    assert_eq!(result["first"], tenants[1].admin.username);
    emu.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
