//! The binary's `--help` documents every flag.

#[test]
fn help_lists_every_flag() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_entra-emulator"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen",
        "--tenants",
        "--users",
        "--groups",
        "--seed",
        "--tls",
        "--ca-out",
        "--app-client-id",
        "--app-client-secret",
        "--app-redirect-uri",
        "--app-delegated-permissions",
        "--app-application-permissions",
        "--app-display-name",
        "--secret-lifetime-days",
        "--refresh-token-inactivity-secs",
        "--access-token-lifetime-secs",
        "--delta-token-lifetime-secs",
        "--page-size",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}
