//! `entra-emulator`: runs the Entra ID + Microsoft Graph emulator until Ctrl-C.

use clap::Parser;
use entra_emulator::{Emulator, Options};

/// Local stand-in for Microsoft Entra ID (login.microsoftonline.com) and Microsoft Graph.
#[derive(Parser)]
#[command(name = "entra-emulator", version, about)]
struct Cli {
    #[command(flatten)]
    opts: Options,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let emu = Emulator::start(Cli::parse().opts).await?;
    tracing::info!(base_url = emu.base_url(), "emulator ready");
    tokio::signal::ctrl_c().await?;
    emu.shutdown().await;
    Ok(())
}
