//! The `gangway` command: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = gangway::cli::Cli::parse();
    gangway::telemetry::init_with_default(cli.default_log_filter());
    gangway::cli::run(cli).await
}
