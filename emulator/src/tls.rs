//! HTTPS: a throw-away CA and a server certificate for localhost/127.0.0.1 signed by it.

use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Generated PEMs.
pub struct Certs {
    /// The CA certificate clients must trust.
    pub ca_pem: String,
    chain_pem: String,
    key_pem: String,
}

/// Generates a CA and a server certificate for `localhost`, `127.0.0.1` and `::1`.
pub fn generate() -> anyhow::Result<Certs> {
    let ca_key = KeyPair::generate().context("CA key")?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Entra emulator test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca_params.self_signed(&ca_key).context("CA certificate")?;

    let key = KeyPair::generate().context("server key")?;
    let mut params = CertificateParams::new(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ])?;
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = params
        .signed_by(&key, &ca, &ca_key)
        .context("server certificate")?;
    Ok(Certs {
        ca_pem: ca.pem(),
        chain_pem: format!("{}{}", cert.pem(), ca.pem()),
        key_pem: key.serialize_pem(),
    })
}

/// Serves `app` over TLS on `listener` until `stopped` fires.
pub async fn serve(
    listener: std::net::TcpListener,
    certs: &Certs,
    app: Router,
    stopped: oneshot::Receiver<()>,
) -> anyhow::Result<JoinHandle<()>> {
    // rustls needs a process-wide crypto provider; another part of the process may have set it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = RustlsConfig::from_pem(
        certs.chain_pem.clone().into_bytes(),
        certs.key_pem.clone().into_bytes(),
    )
    .await
    .context("TLS configuration")?;
    let handle = Handle::new();
    let shutdown = handle.clone();
    tokio::spawn(async move {
        let _ = stopped.await;
        shutdown.graceful_shutdown(Some(Duration::from_secs(1)));
    });
    Ok(tokio::spawn(async move {
        let server = axum_server::from_tcp_rustls(listener, config)
            .handle(handle)
            .serve(app.into_make_service());
        if let Err(err) = server.await {
            tracing::error!(%err, "emulator TLS server failed");
        }
    }))
}
