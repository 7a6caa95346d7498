//! Gangway's integration tests: one binary, real Postgres, the emulator and the portal on loopback.

mod browser;
mod cli;
mod console;
mod headers;
mod helpers;
mod limits;
mod mail;
mod security;
mod tls;
mod wizard;
