//! Gangway's integration tests: one binary, real Postgres, the emulator and the portal on loopback.

mod attacks;
mod browser;
mod cli;
mod console;
mod customers;
mod directory;
mod doctor;
mod entra_api;
mod headers;
mod helpers;
mod jobs;
mod json_api;
mod limits;
mod mail;
mod operator_invites;
mod ops;
mod polish;
mod security;
mod sessions;
mod settings;
mod sso;
mod sync;
mod sync_console;
mod tls;
mod webhooks;
mod wizard;
