//! Gangway: onboard a customer's Microsoft Entra ID tenant by invitation and consent.
#![warn(missing_docs)]

pub mod api_tokens;
pub mod audit;
pub mod background;
pub mod bench;
pub mod cli;
pub mod config;
pub mod consent;
pub mod credentials;
pub mod crypto;
pub mod customers;
pub mod db;
pub mod demo;
pub mod directory;
pub mod doctor;
pub mod events;
pub mod format;
pub mod graph;
pub mod identity;
pub mod invitations;
pub mod jobs;
#[cfg(test)]
mod layering;
pub mod metrics;
pub mod onboarding;
pub mod operator_invites;
pub mod operators;
pub mod private_postgres;
pub mod rekey;
pub mod runtime;
pub mod scim;
pub mod settings;
pub mod setup;
pub mod signin;
pub mod telemetry;
pub mod tenants;
pub mod types;
pub mod web;
pub mod webhooks;
