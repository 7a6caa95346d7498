//! The `gangway` command: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    gangway::telemetry::init();
    gangway::cli::run(gangway::cli::Cli::parse()).await
}
